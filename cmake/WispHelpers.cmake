# wisp_test(name [THREADED] [TIMEOUT s] [SOURCES ...] [LABELS ...])
# One cmocka test binary from tests/unit/<name>.c, registered with ctest.
# THREADED marks tests that run the multi-threaded runtime: .ci/run runs those
# again under TSan (ctest -L threaded).
function(wisp_test name)
  cmake_parse_arguments(T "THREADED" "TIMEOUT" "SOURCES;LABELS" ${ARGN})
  if(NOT T_SOURCES)
    set(T_SOURCES ${PROJECT_SOURCE_DIR}/tests/unit/${name}.c)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE wisp_internal wisp_testlib PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  set(labels unit ${T_LABELS})
  if(T_THREADED)
    list(APPEND labels threaded)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${labels}"
    ENVIRONMENT "WISP_SOURCE_DIR=${PROJECT_SOURCE_DIR};${WISP_SANITIZER_ENV}")
endfunction()

# Sanitizer settings every test runs with (set once, used by wisp_test and
# the scripted tests).
if(WISP_SANITIZE STREQUAL "thread")
  set(WISP_SANITIZER_ENV "TSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/tsan.supp:halt_on_error=1:second_deadlock_stack=1")
elseif(WISP_SANITIZE STREQUAL "address")
  set(WISP_SANITIZER_ENV "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1;UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1")
else()
  set(WISP_SANITIZER_ENV "")
endif()
