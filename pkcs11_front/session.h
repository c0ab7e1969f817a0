// A PKCS#11 session: its flags and the operations in progress on it (find, sign, verify,
// encrypt, decrypt), each started by an *Init call and ended by its final call or an error.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/mechanisms.h"
#include "pkcs11_front/objects.h"

typedef struct evp_md_ctx_st EVP_MD_CTX;

namespace hsmb::p11 {

struct md_ctx_free { void operator()(EVP_MD_CTX* c) const; };

// Sign or verify: hashing mechanisms hash here as data arrives (the broker gets the digest,
// `prehashed`); raw, EdDSA and HMAC input is buffered until the final call.
struct sign_state {
  const mechanism_desc* mech = nullptr;
  object key;
  hash digest = hash::none;  // the signature's hash: the mechanism's, the PSS parameters', or by input size
  std::unique_ptr<EVP_MD_CTX, md_ctx_free> md;
  secure_bytes buffer;
};

// AES-GCM: the caller's IV buffer receives the nonce the broker chose (encrypt); input is buffered.
struct cipher_state {
  object key;
  bool encrypt = true;
  CK_BYTE* iv_out = nullptr;
  bytes iv, aad;
  secure_bytes buffer;
};

struct session {
  CK_SESSION_HANDLE handle = 0;
  CK_FLAGS flags = 0;
  std::optional<std::vector<CK_OBJECT_HANDLE>> found;  // C_FindObjects in progress
  std::size_t found_at = 0;
  std::optional<sign_state> sign, verify;
  std::optional<cipher_state> encrypt, decrypt;
};

}  // namespace hsmb::p11
