# Unit tests: no HSM, no processes.
add_executable(unit_tests
  ${CMAKE_CURRENT_LIST_DIR}/unit/main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/config_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/service_settings_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/formats_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/wire_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/protocol_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/typed_call_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/json_codec_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/router_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/route_table_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/policy_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/auth_config_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/gate_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/secrets_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/error_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/coro_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/audit_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/observability_test.cpp)
target_link_libraries(unit_tests PRIVATE hsmb_transit hsmb_worker doctest::doctest)
target_compile_definitions(unit_tests PRIVATE HSMB_SOURCE_DIR="${CMAKE_SOURCE_DIR}")  # docs/openapi.json
add_test(NAME unit COMMAND unit_tests)

# Fake workers (no process, no HSM) for tests of the member layer and what runs on it.
add_library(hsmb_fake_worker STATIC
  ${CMAKE_CURRENT_LIST_DIR}/lib/fake_worker.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/fake_token.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/fake_pool.cpp)
target_link_libraries(hsmb_fake_worker PUBLIC hsmb_broker doctest::doctest)

# The member state machine, failover, hedging, back-off and recycling on fake workers.
add_executable(member_unit_tests
  ${CMAKE_CURRENT_LIST_DIR}/unit/main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/member_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/member_pool_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/name_claims_test.cpp)
target_link_libraries(member_unit_tests PRIVATE hsmb_fake_worker)
add_test(NAME member_unit COMMAND member_unit_tests)
