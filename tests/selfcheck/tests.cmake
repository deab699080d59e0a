# The main job's self-check, as a test: a real node, probes through every
# worker, a clean stop with nothing left behind.
if(WISP_BUILD_TOOLS)
  add_test(NAME selfcheck COMMAND wisp-node --self-check --duration 1)
  set_tests_properties(selfcheck PROPERTIES TIMEOUT 60 LABELS "unit;threaded"
    ENVIRONMENT "${WISP_SANITIZER_ENV}")
endif()
