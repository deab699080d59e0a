# install_consumer: `cmake --install` this build into a fresh prefix inside the
# build dir (<build>/install-test/prefix), then build tests/install/consumer.c
# against the installed copy only (CMake package with wisp::wisp_shared and
# wisp::wisp_static, pkg-config shared and --static), run the four binaries,
# and check the exported symbols and the installed headers. See run.sh.
# Runs after the build (it installs what was built); labels unit;install.

# The consumer must be linked with the sanitizer runtime the library was
# built with (a fuzz build instruments the library with ASan+UBSan).
if(WISP_SANITIZE STREQUAL "address" OR WISP_BUILD_FUZZ)
  set(_install_sanitize address)
elseif(WISP_SANITIZE STREQUAL "thread")
  set(_install_sanitize thread)
else()
  set(_install_sanitize none)
endif()

set(_install_tools)
if(CMAKE_NM)
  list(APPEND _install_tools --nm ${CMAKE_NM})
endif()
if(CMAKE_READELF)
  list(APPEND _install_tools --readelf ${CMAKE_READELF})
endif()

add_test(NAME install_consumer
  COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run.sh
          --build ${PROJECT_BINARY_DIR}
          --source ${PROJECT_SOURCE_DIR}
          --libdir ${CMAKE_INSTALL_LIBDIR}
          --includedir ${CMAKE_INSTALL_INCLUDEDIR}
          --cc ${CMAKE_C_COMPILER}
          --cmake ${CMAKE_COMMAND}
          --pkg-config ${PKG_CONFIG_EXECUTABLE}
          --sanitize ${_install_sanitize}
          ${_install_tools})
set_tests_properties(install_consumer PROPERTIES
  LABELS "unit;install" TIMEOUT 300
  ENVIRONMENT "${WISP_SANITIZER_ENV}")
