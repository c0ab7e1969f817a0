# PKCS#11 backend and worker process tests, against real SoftHSM2 tokens.

# Test helpers shared with later integration tests (temporary SoftHSM2 tokens).
add_library(hsmb_testlib STATIC ${CMAKE_SOURCE_DIR}/tests/lib/softhsm_token.cpp)

add_executable(pkcs11_backend_test ${CMAKE_SOURCE_DIR}/tests/integration/pkcs11_backend_test.cpp)
target_link_libraries(pkcs11_backend_test PRIVATE hsmb_pkcs11 hsmb_testlib doctest::doctest OpenSSL::Crypto)
add_test(NAME pkcs11_backend COMMAND pkcs11_backend_test)

add_executable(worker_process_test ${CMAKE_SOURCE_DIR}/tests/integration/worker_process_test.cpp)
target_link_libraries(worker_process_test PRIVATE hsmb_wire hsmb_testlib doctest::doctest)
target_compile_definitions(worker_process_test PRIVATE HSM_WORKER_PATH="$<TARGET_FILE:hsm-worker>")
add_dependencies(worker_process_test hsm-worker)
add_test(NAME worker_process COMMAND worker_process_test)
