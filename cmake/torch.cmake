# LibTorch, after find_package(Torch): Debian's libtorch-dev (1.13, CPU only) or the LibTorch
# inside a PyPI torch wheel (2.x, built with CUDA; scripts/torch-venv.sh configures that build).
# Defines flowinfer_torch, the object library of the only files that include LibTorch, and
# FLOWINFER_WITH_CUDA. README, "PyTorch 2.x and CUDA", says what is checked here and why.

get_filename_component(_fi_torch_prefix "${TORCH_INSTALL_PREFIX}" REALPATH)
get_filename_component(_fi_torch_lib "${TORCH_LIBRARY}" REALPATH)
get_filename_component(_fi_torch_lib_dir "${_fi_torch_lib}" DIRECTORY)

# TorchConfig's find_library(torch) searches the system's directories before its own lib/, so
# with libtorch-dev installed a wheel's config can pick Debian's libtorch.so: headers of one
# version, libraries of another. Point CMAKE_PREFIX_PATH at the torch package itself
# (torch.utils.cmake_prefix_path/../..) and <prefix>/lib is searched first.
string(FIND "${_fi_torch_lib_dir}/" "${_fi_torch_prefix}/" _fi_at)
if(NOT _fi_at EQUAL 0)
  message(FATAL_ERROR "flowinfer: LibTorch's config is from ${_fi_torch_prefix} but its library "
    "is ${TORCH_LIBRARY}: two LibTorch installs are mixed. Put the torch package directory "
    "itself first in CMAKE_PREFIX_PATH, as scripts/torch-venv.sh does: "
    "-DCMAKE_PREFIX_PATH=$(python -c 'import os, torch; print(os.path.dirname(torch.__file__))')")
endif()

# Every Debian library flowinfer links (oneTBB, fmt, toml++, OpenSlide, Boost) is built with the
# C++11 ABI of std::string and std::list; a LibTorch built with the old ABI (pre-2.7 wheels)
# would link and then fail at run time on the first string crossing the boundary.
find_library(_fi_c10 c10 PATHS "${_fi_torch_lib_dir}" NO_DEFAULT_PATH REQUIRED)
file(STRINGS "${_fi_c10}" _fi_abi LIMIT_COUNT 1 REGEX "NSt7__cxx1112basic_string")
if(NOT _fi_abi)
  message(FATAL_ERROR "flowinfer: ${_fi_c10} is built with the pre-C++11 std::string ABI "
    "(_GLIBCXX_USE_CXX11_ABI=0); Debian's libraries use the C++11 ABI. Use a LibTorch built "
    "with it (every PyPI torch wheel since 2.7, or the cxx11-abi LibTorch archive).")
endif()

# Installed, libflowinfer and the CLI keep the run-time path to a LibTorch (and CUDA runtime)
# outside the system's directories: one built against a torch wheel finds it in that venv.
set(FLOWINFER_TORCH_RPATH "")
foreach(_fi_dir IN ITEMS "${_fi_torch_lib_dir}" "${CUDAToolkit_LIBRARY_DIR}")
  if(_fi_dir AND NOT _fi_dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
    list(APPEND FLOWINFER_TORCH_RPATH "${_fi_dir}")
  endif()
endforeach()

# A LibTorch built with CUDA exports c10_cuda; only then is the CUDA branch compiled in.
if(TARGET c10_cuda OR TORCH_CUDA_LIBRARIES)
  set(FLOWINFER_WITH_CUDA ON)
else()
  set(FLOWINFER_WITH_CUDA OFF)
endif()
set(FLOWINFER_WITH_CUDA ${FLOWINFER_WITH_CUDA} CACHE INTERNAL "LibTorch is built with CUDA")
message(STATUS "flowinfer: LibTorch ${Torch_VERSION} in ${_fi_torch_prefix}, CUDA support ${FLOWINFER_WITH_CUDA}")

add_library(flowinfer_torch OBJECT stages/model.cpp stages/model_select.cpp stages/model_file.cpp
            pipeline/demo_models.cpp pipeline/demo_encoders.cpp pipeline/demo_layouts.cpp)
target_include_directories(flowinfer_torch PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(flowinfer_torch PRIVATE ${TORCH_LIBRARIES} TBB::tbb)
target_compile_definitions(flowinfer_torch PRIVATE FLOWINFER_VERSION="${PROJECT_VERSION}")
if(FLOWINFER_WITH_CUDA)
  target_compile_definitions(flowinfer_torch PRIVATE FLOWINFER_WITH_CUDA=1)
endif()
if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  target_compile_options(flowinfer_torch PRIVATE -Wall -Wextra)
endif()
# A wheel's include/ carries the fmt headers torch was built with (fmt 12 in torch 2.11), and
# they shadow Debian's fmt 9 in these two files. Header-only there: each side keeps its own
# fmt (their inline namespaces, fmt::v9 and fmt::v12, differ, so nothing clashes) and nothing
# links against fmt symbols torch does not export.
if(EXISTS "${_fi_torch_prefix}/include/fmt/format.h")
  target_compile_definitions(flowinfer_torch PRIVATE FMT_HEADER_ONLY=1)
else()
  target_link_libraries(flowinfer_torch PRIVATE fmt::fmt)
endif()
