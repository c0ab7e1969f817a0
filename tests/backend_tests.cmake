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

# Fault-injection PKCS#11 module: forwards to a real module (SoftHSM2); a control file makes the
# HSM down or hung. Links nothing but libdl/pthread; only C_GetFunctionList is exported.
add_library(hsmb_fault_pkcs11 SHARED ${CMAKE_SOURCE_DIR}/tests/lib/fault_pkcs11/fault_pkcs11.cpp)
set_target_properties(hsmb_fault_pkcs11 PROPERTIES
  OUTPUT_NAME hsmb-fault-pkcs11
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lib
  CXX_VISIBILITY_PRESET hidden
  VISIBILITY_INLINES_HIDDEN ON)
target_include_directories(hsmb_fault_pkcs11 PRIVATE ${CMAKE_SOURCE_DIR} ${PKCS11_INCLUDE_DIR})
target_compile_options(hsmb_fault_pkcs11 PRIVATE -fno-exceptions -fno-rtti)
target_link_options(hsmb_fault_pkcs11 PRIVATE -Wl,--as-needed -Wl,--no-undefined)
target_link_libraries(hsmb_fault_pkcs11 PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)

# Test helper: a SoftHSM2 token behind the fault module (fault_hsm).
add_library(hsmb_fault_testlib STATIC ${CMAKE_SOURCE_DIR}/tests/lib/fault_hsm.cpp)
target_link_libraries(hsmb_fault_testlib PUBLIC hsmb_testlib)
target_compile_definitions(hsmb_fault_testlib PUBLIC HSMB_FAULT_MODULE_PATH="$<TARGET_FILE:hsmb_fault_pkcs11>")
add_dependencies(hsmb_fault_testlib hsmb_fault_pkcs11)

add_executable(fault_pkcs11_test ${CMAKE_SOURCE_DIR}/tests/integration/fault_pkcs11_test.cpp)
target_include_directories(fault_pkcs11_test PRIVATE ${PKCS11_INCLUDE_DIR})
target_link_libraries(fault_pkcs11_test PRIVATE hsmb_fault_testlib doctest::doctest Threads::Threads ${CMAKE_DL_LIBS})
target_compile_options(fault_pkcs11_test PRIVATE -Wno-restrict)
add_dependencies(fault_pkcs11_test hsmb_fault_pkcs11)
add_test(NAME fault_pkcs11 COMMAND fault_pkcs11_test)

# Replication primitives: the cluster-key ceremony and wrapped copies between two tokens.
add_executable(key_transfer_test ${CMAKE_SOURCE_DIR}/tests/integration/key_transfer_test.cpp)
target_link_libraries(key_transfer_test PRIVATE hsmb_pkcs11 hsmb_testlib doctest::doctest)
target_compile_options(key_transfer_test PRIVATE -Wno-restrict)
add_test(NAME key_transfer COMMAND key_transfer_test)
