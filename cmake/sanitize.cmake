# FLOWINFER_SANITIZE: instrument flowinfer's own targets (library, CLI, tests, fuzzers) with
# the sanitizers named, e.g. "address,undefined" or "thread". Included from the top-level
# CMakeLists.txt before any target is created, so add_compile_options() reaches every target
# of this project and none of the prebuilt libraries it links (LibTorch, oneTBB, libgomp,
# OpenSlide, libtiff stay uninstrumented).
#
# Sets FLOWINFER_SANITIZE_ENV: the environment tests/CMakeLists.txt gives every ctest test, so
# that a finding fails the test (halt_on_error, no recovery) and the checked-in suppression
# files (tests/lsan.supp, tests/ubsan.supp, tests/tsan.supp; each entry is justified there) are used.

set(FLOWINFER_SANITIZE_ENV "")
if(NOT FLOWINFER_SANITIZE)
  return()
endif()

if(FLOWINFER_SANITIZE MATCHES "thread" AND FLOWINFER_SANITIZE MATCHES "address|leak|memory")
  message(FATAL_ERROR "FLOWINFER_SANITIZE: thread cannot be combined with ${FLOWINFER_SANITIZE}")
endif()
if(NOT CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
  message(FATAL_ERROR "FLOWINFER_SANITIZE needs GCC or Clang")
endif()

set(_fi_san_compile -fsanitize=${FLOWINFER_SANITIZE} -fno-omit-frame-pointer)
if(FLOWINFER_SANITIZE MATCHES "undefined")
  # A UBSan finding must fail the test, not print a line and go on. The one exception is the
  # vptr check: an unrecoverable check ignores the runtime suppressions, and tests/ubsan.supp
  # must be able to silence one oneTBB header function. halt_on_error=1 (below) still makes
  # every vptr finding that is not suppressed fatal.
  list(APPEND _fi_san_compile -fno-sanitize-recover=all -fsanitize-recover=vptr)
endif()
add_compile_options(${_fi_san_compile})
add_link_options(-fsanitize=${FLOWINFER_SANITIZE})
message(STATUS "flowinfer: sanitizers ${FLOWINFER_SANITIZE}")

set(_fi_supp ${PROJECT_SOURCE_DIR}/tests)
if(FLOWINFER_SANITIZE MATCHES "address")
  list(APPEND FLOWINFER_SANITIZE_ENV
    "ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=0"
    "LSAN_OPTIONS=suppressions=${_fi_supp}/lsan.supp:print_suppressions=0")
endif()
if(FLOWINFER_SANITIZE MATCHES "undefined")
  list(APPEND FLOWINFER_SANITIZE_ENV "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:suppressions=${_fi_supp}/ubsan.supp")
endif()
if(FLOWINFER_SANITIZE MATCHES "thread")
  # The flow graph's hand-offs go through libtbb's scheduler: TSan must see them, so TBB itself
  # has to be instrumented (scripts/build-tsan-tbb.sh builds it; pass -DTBB_DIR=...).
  if(NOT TBB_DIR OR TBB_DIR MATCHES "^/usr/")
    message(WARNING "FLOWINFER_SANITIZE=thread with an uninstrumented oneTBB: every message "
            "hand-off between TBB threads is reported as a race. Configure with "
            "-DTBB_DIR=\"$(scripts/build-tsan-tbb.sh build-tsan/tbb)\" (README, \"Sanitizers and fuzzing\").")
  endif()
  # ignore_noninstrumented_modules: memcpy/memset/malloc/free called from libraries that are
  # not instrumented (LibTorch, libgomp, OpenSlide, GLib, libtiff, libstdc++) are not checked.
  # Their other memory accesses are invisible to TSan anyway, and their own synchronization
  # (libgomp's and GLib's futexes) is too, so checking only their intercepted calls gives
  # nothing but reports about memory they hand between their own threads. flowinfer's and
  # TBB's accesses are all checked; mutexes taken in those libraries still count.
  # report_thread_leaks=0: a second SIGINT/SIGTERM makes the CLI _exit() from the signal
  # handler by design (test_cli "a_second_signal_exits_at_once"), with its signal-watcher
  # std::thread finished but not joined; TSan's _exit hook reports that as a leaked thread and
  # exits 66. flowinfer's threads are std::threads (joined by their destructors) or TBB's, so a
  # leak report has nothing else to find; a `thread:` suppression would have to name
  # flowinfer's own frame, which tests/tsan.supp never does.
  list(APPEND FLOWINFER_SANITIZE_ENV
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:report_thread_leaks=0:suppressions=${_fi_supp}/tsan.supp:print_suppressions=0")
endif()
