# The PKCS#11 front module with real clients: pkcs11-tool, OpenSSL's pkcs11 engine (libp11),
# Java's SunPKCS11 and p11_app, a PKCS#11 application that dlopens the module.
add_executable(p11_app ${CMAKE_CURRENT_LIST_DIR}/integration/p11_app.cpp)
target_include_directories(p11_app PRIVATE ${PKCS11_INCLUDE_DIR})
target_link_libraries(p11_app PRIVATE Threads::Threads ${CMAKE_DL_LIBS})

foreach(name pkcs11_front pkcs11_front_failover)
  add_executable(${name}_test ${CMAKE_CURRENT_LIST_DIR}/integration/${name}_test.cpp)
  target_link_libraries(${name}_test PRIVATE hsmb_broker_testlib)
  target_compile_definitions(${name}_test PRIVATE HSMB_PKCS11_MODULE="$<TARGET_FILE:hsm-broker-pkcs11>"
    HSMB_P11_APP="$<TARGET_FILE:p11_app>" HSMB_JAVA_DIR="${CMAKE_CURRENT_LIST_DIR}/integration/java")
  target_compile_options(${name}_test PRIVATE -Wno-restrict)  # GCC bug 105329, as the other suites
  add_dependencies(${name}_test hsm-broker hsm-worker hsm-broker-pkcs11 p11_app)
  add_test(NAME ${name} COMMAND ${name}_test)
endforeach()
