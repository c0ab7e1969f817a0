# Unit tests: no HSM, no processes.
add_executable(unit_tests
  ${CMAKE_CURRENT_LIST_DIR}/unit/main.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/config_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/formats_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/wire_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/json_codec_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/router_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/secrets_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/error_test.cpp
  ${CMAKE_CURRENT_LIST_DIR}/unit/coro_test.cpp)
target_link_libraries(unit_tests PRIVATE hsmb_transit doctest::doctest)
add_test(NAME unit COMMAND unit_tests)
