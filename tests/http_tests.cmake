# HTTP server, client and hsmctl tests: a stub handler, a temporary Unix socket, loopback TCP.
add_executable(http_tests ${CMAKE_SOURCE_DIR}/tests/unit/http_server_test.cpp ${CMAKE_SOURCE_DIR}/tests/unit/tls_test.cpp)
target_link_libraries(http_tests PRIVATE hsmb_http hsmb_client Boost::json doctest::doctest)
target_compile_definitions(http_tests PRIVATE HSMCTL_PATH="$<TARGET_FILE:hsmctl>"
                                              HSMB_MAKE_TLS_CERTS="${CMAKE_SOURCE_DIR}/tests/lib/make_tls_certs.sh")
add_dependencies(http_tests hsmctl)
add_test(NAME http_server COMMAND http_tests)
add_test(NAME hsmctl_help COMMAND hsmctl --help)
