// The token's objects: per broker key version a private and a public key object (asymmetric) or a
// secret key object, with stable handles for the life of the module, and their attributes.
#pragma once

#include <cstdint>
#include <expected>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "common/bytes.h"
#include "pkcs11_front/cryptoki.h"
#include "pkcs11_front/key_info.h"

namespace hsmb::p11 {

struct object {
  CK_OBJECT_HANDLE handle = 0;
  CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
  std::shared_ptr<const key_info> key;  // as last read from the broker
  std::uint32_t version = 0;
  std::shared_ptr<const public_key_info> pub;  // asymmetric keys
  std::string id() const;                      // CKA_ID: NAME:vN
};

// One attribute's value, or CKR_ATTRIBUTE_SENSITIVE / CKR_ATTRIBUTE_TYPE_INVALID.
std::expected<bytes, CK_RV> attribute(const object& o, CK_ATTRIBUTE_TYPE type);
bool matches(const object& o, std::span<const CK_ATTRIBUTE> tmpl);

class object_table {
 public:
  // Records `k`'s objects (new handles for new versions, fresh key data for known ones) and
  // returns them, oldest version first: a client that takes the last of several matches
  // (libp11) takes the latest.
  std::vector<object> add(const std::shared_ptr<const key_info>& k);
  void remove_key(const std::string& name);
  std::optional<object> find(CK_OBJECT_HANDLE h) const;
  void clear();

 private:
  using ident = std::tuple<std::string, std::uint32_t, CK_OBJECT_CLASS>;
  std::map<ident, CK_OBJECT_HANDLE> handles_;
  std::map<CK_OBJECT_HANDLE, object> objects_;
  CK_OBJECT_HANDLE next_ = 1;
};

}  // namespace hsmb::p11
