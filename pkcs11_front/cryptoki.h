// The PKCS#11 header for the front module: p11-kit's pkcs11.h with the standard CK_ names.
#pragma once

#include <p11-kit/pkcs11.h>

// p11-kit's compatibility mode leaves lower-case macros (`iv_ptr`, `hash_alg`, ...) that would
// rewrite our own identifiers; the structs already carry the standard names.
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
#undef mgf
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
