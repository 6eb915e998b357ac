# ctest driver: install the built flowinfer into a scratch prefix, build a find_package
# consumer against it and run the consumer.
file(REMOVE_RECURSE ${BIN})
file(MAKE_DIRECTORY ${BIN}/work)
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${BIN}/prefix
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "install failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/tests/consumer -B ${BIN}/build -G ${GENERATOR}
                        -DCMAKE_PREFIX_PATH=${BIN}/prefix -DCMAKE_BUILD_TYPE=Release
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer configure failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN}/build RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer build failed: ${rc}")
endif()
execute_process(COMMAND ${BIN}/build/consumer ${BIN}/work RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "consumer run failed: ${rc}")
endif()
