// p11-kit's pkcs11.h with the standard CK_ names, for the two PKCS#11 users: the backend
// (hsm_backends/pkcs11, a caller of vendors' modules) and the front module (pkcs11_front, a module
// for applications). Whoever includes it needs p11-kit's include directory (PKCS11_INCLUDE_DIR).
#pragma once

#include <p11-kit/pkcs11.h>

// p11-kit's compatibility mode renames struct members with lower-case macros (`hash_alg`, `value`,
// `count`, ...). The structs are already declared with the standard names (hashAlg, pValue, ...),
// so the macros only rewrite our own identifiers (hsmb::hash_alg, metadata_record::value): drop them.
#undef hash_alg
#undef value
#undef value_len
#undef count
#undef params
#undef parameter
#undef parameter_len
#undef reserved
#undef slot_id
#undef s_len
#undef source_data
#undef source_data_len
#undef counter_bits
#undef iv_ptr
#undef iv_len
#undef iv_bits
#undef aad_ptr
#undef aad_len
#undef tag_bits
#undef shared_data
#undef shared_data_len
#undef public_data
#undef public_data_len
#undef string_data
#undef string_data_len
#undef data_params
#undef manufacturer_id
#undef serial_number
#undef device_error
#undef session_count
#undef create_mutex
#undef destroy_mutex
#undef lock_mutex
#undef unlock_mutex

// PKCS#11 v2.40's SHA-3 mechanisms, which p11-kit 0.24's header does not define yet.
#ifndef CKM_SHA3_256
#define CKM_SHA3_256 (0x2b0UL)
#define CKM_SHA3_256_HMAC (0x2b1UL)
#define CKM_SHA3_224 (0x2b5UL)
#define CKM_SHA3_224_HMAC (0x2b6UL)
#define CKM_SHA3_384 (0x2c0UL)
#define CKM_SHA3_384_HMAC (0x2c1UL)
#define CKM_SHA3_512 (0x2d0UL)
#define CKM_SHA3_512_HMAC (0x2d1UL)
#endif
#ifndef CKG_MGF1_SHA3_224
#define CKG_MGF1_SHA3_224 (0x6UL)
#define CKG_MGF1_SHA3_256 (0x7UL)
#define CKG_MGF1_SHA3_384 (0x8UL)
#define CKG_MGF1_SHA3_512 (0x9UL)
#endif
