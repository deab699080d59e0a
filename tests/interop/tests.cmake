# Tests that run programs: the wisp identity tools end to end, and the interop
# tests against the js-libp2p reference peer (label "interop"; they need node
# and npm, and the network or a warm npm cache for the first `npm ci`).
set(_interop_dir ${CMAKE_CURRENT_LIST_DIR})

find_program(WISP_NODE node)
find_program(WISP_NPM npm)
if(WISP_NODE AND WISP_NPM)
  # Installs the pinned packages (package-lock.json) once for all js tests.
  add_test(NAME interop_npm_setup COMMAND sh ${_interop_dir}/npm-setup.sh)
  set_tests_properties(interop_npm_setup PROPERTIES
    FIXTURES_SETUP interop_js LABELS interop TIMEOUT 600
    RESOURCE_LOCK interop_node_modules)

  # js-peer.mjs against itself: connect, identify, ping, echo, rtt, perf.
  # Exit 77 (skipped) when node is older than 20 or node_modules is missing.
  add_test(NAME interop_js_selftest
    COMMAND ${WISP_NODE} ${_interop_dir}/js_selftest.mjs --quiet)
  set_tests_properties(interop_js_selftest PROPERTIES
    FIXTURES_REQUIRED interop_js LABELS interop TIMEOUT 300
    SKIP_RETURN_CODE 77 PROCESSORS 2)

  # gossipsub in js-peer.mjs: 6 js peers in a mesh, StrictSign and
  # StrictNoSign, default and content message ids; exactly-once delivery,
  # publish failures, bad signatures, unsubscribe, and the js burst baseline
  # (prints "row {...}" lines). About 1.5 min on 2 vCPUs.
  add_test(NAME interop_js_gossip
    COMMAND ${WISP_NODE} ${_interop_dir}/js_gossip_selftest.mjs --quiet)
  set_tests_properties(interop_js_gossip PROPERTIES
    FIXTURES_REQUIRED interop_js LABELS interop TIMEOUT 900
    SKIP_RETURN_CODE 77 PROCESSORS 2)
else()
  message(STATUS "interop tests: node/npm not found, js interop tests not registered")
endif()

if(TARGET wisp-keygen AND TARGET wisp-peerid)
  add_test(NAME identity_tools
    COMMAND sh ${_interop_dir}/tools_test.sh $<TARGET_FILE:wisp-keygen> $<TARGET_FILE:wisp-peerid>)
  set_tests_properties(identity_tools PROPERTIES TIMEOUT 60 LABELS unit)

  if(WISP_NODE AND WISP_NPM)
    add_executable(wisp-interop-identity ${_interop_dir}/identity_helper.c)
    target_link_libraries(wisp-interop-identity PRIVATE wisp_internal)

    add_test(NAME interop_identity
      COMMAND ${WISP_NODE} ${_interop_dir}/identity.mjs
              --keygen $<TARGET_FILE:wisp-keygen> --peerid $<TARGET_FILE:wisp-peerid>
              --helper $<TARGET_FILE:wisp-interop-identity>)
    set_tests_properties(interop_identity PROPERTIES
      FIXTURES_REQUIRED interop_js LABELS interop TIMEOUT 120)
  endif()
else()
  message(STATUS "identity tool tests need WISP_BUILD_TOOLS=ON")
endif()

# wisp-node against js-peer.mjs, both dialing directions: connect, identify,
# ping, echo, rtt, perf, keep-alive, close, stats, quit (wisp_js_interop.mjs).
# Exit 77 (skipped) when node is older than 20 or node_modules is missing.
if(WISP_NODE AND WISP_NPM AND TARGET wisp-node AND TARGET wisp-keygen)
  add_test(NAME interop_wisp_js
    COMMAND ${WISP_NODE} ${_interop_dir}/wisp_js_interop.mjs
            --wisp-node $<TARGET_FILE:wisp-node> --wisp-keygen $<TARGET_FILE:wisp-keygen>)
  set_tests_properties(interop_wisp_js PROPERTIES
    FIXTURES_REQUIRED interop_js LABELS interop TIMEOUT 300
    SKIP_RETURN_CODE 77 PROCESSORS 2)
endif()

# gossipsub between wisp-node and js-peer.mjs (wisp_js_gossip.mjs): 3 wisp and
# 3 js processes in bipartite meshes (ring, complete), StrictSign (wisp
# --msg-id js) and StrictNoSign; exactly-once delivery across the
# implementations with the same message ids, bad signatures from js rejected
# and counted by wisp, and a burst of 100 x 100000-byte messages from js.
# About 15 s. --quiet prints failed checks, step results and the processes'
# stderr only. Exit 77 (skipped) without node >= 20 or node_modules.
if(WISP_NODE AND WISP_NPM AND TARGET wisp-node AND TARGET wisp-keygen)
  add_test(NAME interop_wisp_js_gossip
    COMMAND ${WISP_NODE} ${_interop_dir}/wisp_js_gossip.mjs --quiet
            --wisp-node $<TARGET_FILE:wisp-node> --wisp-keygen $<TARGET_FILE:wisp-keygen>)
  set_tests_properties(interop_wisp_js_gossip PROPERTIES
    FIXTURES_REQUIRED interop_js LABELS interop TIMEOUT 300
    SKIP_RETURN_CODE 77 PROCESSORS 2)
endif()

# request/response between wisp-node and js-libp2p (wisp_js_reqresp.mjs): the
# Atlas framing (uvarint length + one zstd frame per request and per chunk,
# result bytes) written and read strictly in js, both ways: one, many, 1 MiB
# and no chunks, results 1/2/3, echoes, refused/canceled/timed-out requests,
# a request over wisp's max_request, wisp's app responder, wisp's counters.
# About 2 s. Exit 77 (skipped) without node >= 20 or node_modules.
if(WISP_NODE AND WISP_NPM AND TARGET wisp-node)
  add_test(NAME interop_wisp_js_reqresp
    COMMAND ${WISP_NODE} ${_interop_dir}/wisp_js_reqresp.mjs --quiet --wisp-node $<TARGET_FILE:wisp-node>)
  set_tests_properties(interop_wisp_js_reqresp PROPERTIES
    FIXTURES_REQUIRED interop_js LABELS interop TIMEOUT 120
    SKIP_RETURN_CODE 77 PROCESSORS 2)
endif()
