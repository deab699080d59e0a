# The main job's self-check, as a test: a real node, probes through every
# worker, a clean stop with nothing left behind.
if(WISP_BUILD_TOOLS)
  add_test(NAME selfcheck COMMAND wisp-node --self-check --duration 1)
  set_tests_properties(selfcheck PROPERTIES TIMEOUT 60 LABELS "unit;threaded"
    ENVIRONMENT "${WISP_SANITIZER_ENV}")
endif()

# The main job: a local Atlas validator network, every message to every node.
if(WISP_BUILD_TOOLS)
  add_test(NAME devnet COMMAND wisp-devnet --nodes 6 --duration 3 --tx-rate 100)
  set_tests_properties(devnet PROPERTIES TIMEOUT 120 LABELS "unit" PROCESSORS 2
    ENVIRONMENT "${WISP_SANITIZER_ENV}")
endif()
