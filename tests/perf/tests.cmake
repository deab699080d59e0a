# Smoke test of perf/gossip-bench (label perf): a tiny wisp-only run must
# exit 0 with well-formed rows. A few seconds; no figure is asserted.
if(TARGET gossip-bench)
  add_test(NAME perf_gossip_bench_smoke
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/gossip_bench_smoke.sh $<TARGET_FILE:gossip-bench>)
  set_tests_properties(perf_gossip_bench_smoke PROPERTIES TIMEOUT 60 LABELS perf PROCESSORS 2)
endif()

# Smoke test of perf/reqresp-bench (label perf): a tiny run must exit 0 with
# well-formed rows. A few seconds; no figure is asserted.
if(TARGET reqresp-bench)
  add_test(NAME perf_reqresp_bench_smoke
    COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/reqresp_bench_smoke.sh $<TARGET_FILE:reqresp-bench>)
  set_tests_properties(perf_reqresp_bench_smoke PROPERTIES TIMEOUT 120 LABELS perf PROCESSORS 2)
endif()
