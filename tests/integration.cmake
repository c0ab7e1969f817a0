# The broker end to end: real hsm-broker and hsm-worker processes on real SoftHSM2 tokens.
add_library(hsmb_broker_testlib STATIC
  ${CMAKE_CURRENT_LIST_DIR}/lib/broker_process.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/network_hsm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/load_generator.cpp
  ${CMAKE_CURRENT_LIST_DIR}/integration/broker_fixture.cpp)
target_compile_definitions(hsmb_broker_testlib PUBLIC HSMB_BIN_DIR="${CMAKE_BINARY_DIR}/bin"
  HSMB_NODE_MODULES="${CMAKE_SOURCE_DIR}/tests/clients/node_modules")  # node-vault, from deploy/install-deps.sh
target_link_libraries(hsmb_broker_testlib PUBLIC hsmb_client hsmb_testlib hsmb_common Boost::json doctest::doctest)

foreach(name broker_api broker_recovery failover key_sync key_presence callers audit hsmctl logs metrics auto_rotate)
  add_executable(${name}_test ${CMAKE_CURRENT_LIST_DIR}/integration/${name}_test.cpp)
  target_link_libraries(${name}_test PRIVATE hsmb_broker_testlib)
  add_dependencies(${name}_test hsm-broker hsm-worker hsmctl)
  add_test(NAME ${name} COMMAND ${name}_test)
endforeach()
target_link_libraries(callers_test PRIVATE hsmb_auth)  # sha256_hex for the config's token hashes
target_link_libraries(audit_test PRIVATE hsmb_auth)

# TLS and mutual TLS on the TCP listener: curl, openssl s_client and hvac on certificates made at test time.
add_executable(tls_test ${CMAKE_CURRENT_LIST_DIR}/integration/tls_test.cpp)
target_link_libraries(tls_test PRIVATE hsmb_broker_testlib)
target_compile_definitions(tls_test PRIVATE HSMB_MAKE_TLS_CERTS="${CMAKE_SOURCE_DIR}/tests/lib/make_tls_certs.sh")
add_dependencies(tls_test hsm-supervisor hsm-broker hsm-worker)
add_test(NAME tls COMMAND tls_test)

# The broker's end of a worker process: call deadlines against a token the fault module hangs.
add_executable(worker_client_test ${CMAKE_CURRENT_LIST_DIR}/integration/worker_client_test.cpp)
target_link_libraries(worker_client_test PRIVATE hsmb_broker hsmb_fault_testlib doctest::doctest)
target_compile_definitions(worker_client_test PRIVATE HSM_WORKER_PATH="$<TARGET_FILE:hsm-worker>")
add_dependencies(worker_client_test hsm-worker hsmb_fault_pkcs11)
add_test(NAME worker_client COMMAND worker_client_test)

# Replication: members are SoftHSM2 tokens behind the fault-injection module.
add_executable(replication_test ${CMAKE_CURRENT_LIST_DIR}/integration/replication_test.cpp)
target_link_libraries(replication_test PRIVATE hsmb_broker_testlib hsmb_fault_testlib)
add_dependencies(replication_test hsm-broker hsm-worker hsmb_fault_pkcs11)
add_test(NAME replication COMMAND replication_test)

# hsm-supervisor: generations, hand-off, crash and hang recovery, socket activation.
add_executable(supervisor_test ${CMAKE_CURRENT_LIST_DIR}/integration/supervisor_test.cpp)
target_link_libraries(supervisor_test PRIVATE hsmb_broker_testlib)
add_dependencies(supervisor_test hsm-supervisor hsm-broker hsm-worker)
add_test(NAME supervisor COMMAND supervisor_test)

# The systemd units: verify, and an exposure score of at most 2.5.
# bench/compare.sh, short: every operation in all three modes, tables complete.
add_test(NAME bench_compare
         COMMAND /bin/bash ${CMAKE_CURRENT_LIST_DIR}/integration/bench_compare_test.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/bin)
# Alone: it loads both cores for a minute, which starves a neighbour's 1 s call deadlines (a
# worker start, a keygen through p11-kit) and turns them into 503s; and its numbers need the cores.
set_tests_properties(bench_compare PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE)
add_test(NAME systemd_units
         COMMAND /bin/bash ${CMAKE_CURRENT_LIST_DIR}/integration/systemd_units_test.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/bin)

# An unmodified Vault client library (Debian's python3-hvac) against the TCP listener.
add_test(NAME vault_client
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/integration/vault_client_test.py ${CMAKE_BINARY_DIR}/bin
                 ${CMAKE_SOURCE_DIR}/tests/clients/node_modules)

# A fleet of 20 sidecars on two shared network HSMs with a call counter (pkcs11-spy) in front of
# each: simultaneous start on fresh tokens, idle load per broker, an HSM killed and restarted.
# HSMB_FLEET_BROKERS sets the fleet's size.
add_test(NAME fleet
         COMMAND /bin/bash ${CMAKE_CURRENT_LIST_DIR}/integration/fleet_test.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(fleet PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)  # its 10 s start bound is about CPU

# Bad input, class by class (the table behind docs/bad-input.md), against a real broker.
add_test(NAME bad_input
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/integration/bad_input_test.py ${CMAKE_BINARY_DIR}/bin ${CMAKE_SOURCE_DIR})

# Hostile clients from another uid (setpriv) on both listeners while root is served; abandoned
# batches; --check against the descriptor limit. HSMB_FLOOD_SECONDS sets the flood's length.
add_test(NAME hostile_flood
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/integration/hostile_flood_test.py ${CMAKE_BINARY_DIR}/bin)
set_tests_properties(hostile_flood PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE)  # a flood, as bench_compare

# /metrics: promtool (Debian's prometheus package) and the example Grafana dashboard in deploy/.
target_link_libraries(metrics_test PRIVATE hsmb_auth)  # sha256_hex for the config's token hash
target_compile_definitions(metrics_test PRIVATE HSMB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
add_dependencies(logs_test hsm-supervisor)
