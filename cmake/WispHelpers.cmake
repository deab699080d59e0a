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
    ENVIRONMENT "WISP_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
endfunction()
