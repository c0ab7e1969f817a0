# hsm-kms-plugin: its gRPC-free parts (always built), and end to end with a C++ gRPC client (only
# when gRPC++ is installed: the plugin's target exists).
add_executable(kms_plugin_unit_test ${CMAKE_CURRENT_LIST_DIR}/unit/kms_plugin_unit_test.cpp)
target_link_libraries(kms_plugin_unit_test PRIVATE hsmb_kms_core doctest::doctest)
add_test(NAME kms_plugin_unit COMMAND kms_plugin_unit_test)

if(TARGET hsm-kms-plugin)
  add_executable(kms_plugin_test ${CMAKE_CURRENT_LIST_DIR}/integration/kms_plugin_test.cpp)
  target_link_libraries(kms_plugin_test PRIVATE hsmb_broker_testlib hsmb_fault_testlib hsmb_kms_proto)
  add_dependencies(kms_plugin_test hsm-kms-plugin hsm-broker hsm-supervisor hsm-worker hsmb_fault_pkcs11)
  # One ctest per concern, each well under a minute.
  add_test(NAME kms_plugin COMMAND kms_plugin_test "--test-case=round trip*,rotation*,refusals*,a token*")
  add_test(NAME kms_plugin_health COMMAND kms_plugin_test "--test-case=healthz*")
  add_test(NAME kms_plugin_restart COMMAND kms_plugin_test "--test-case=Decrypts under load through*")
  add_test(NAME kms_plugin_failover COMMAND kms_plugin_test "--test-case=Decrypts under load while*")
  # A second gRPC implementation: Python's grpcio, stubs generated at test time by protoc.
  add_test(NAME kms_python_client
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/integration/kms_python_client_test.py ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}/bin)
endif()
