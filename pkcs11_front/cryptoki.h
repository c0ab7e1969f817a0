// The PKCS#11 header for the front module: p11-kit's pkcs11.h with the standard CK_ names.
#pragma once

#include "common/pkcs11_standard.h"
