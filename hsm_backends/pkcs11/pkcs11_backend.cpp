// The PKCS#11 implementation of hsm_backend.
#include "hsm_backends/pkcs11/pkcs11_backend.h"

#include <map>

#include <algorithm>
#include <chrono>
#include <thread>
#include <cstring>
#include <optional>

#include "hsm_backends/pkcs11/guarded.h"
#include "hsm_backends/pkcs11/mechanisms.h"
#include "hsm_backends/pkcs11/templates.h"

namespace hsmb {

std::unique_ptr<hsm_backend> make_pkcs11_backend() { return std::make_unique<pkcs11::pkcs11_backend>(); }

namespace pkcs11 {
namespace {

constexpr std::string_view metadata_prefix = "hsmb-meta/";
constexpr std::string_view metadata_application = "hsm-broker";
constexpr std::size_t gcm_nonce = 12, gcm_tag = 16;
constexpr std::size_t random_chunk = 64 * 1024;  // some tokens cap one C_GenerateRandom

// Token info fields are fixed-width, space-padded and not NUL-terminated.
std::string trimmed(const unsigned char* field, std::size_t size) {
  std::string s(reinterpret_cast<const char*>(field), size);
  s.erase(s.find_last_not_of(std::string_view(" \0", 2)) + 1);
  return s;
}

bool token_matches(CK_SLOT_ID id, const CK_TOKEN_INFO& info, const member_settings& m) {
  if (m.slot && *m.slot != id) return false;
  return m.token_label.empty() || trimmed(info.label, sizeof info.label) == m.token_label;
}

hsm_result<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>> find_token(CK_FUNCTION_LIST* fn, const member_settings& m) {
  CK_ULONG n = 0;
  if (CK_RV rv = fn->C_GetSlotList(CK_TRUE, nullptr, &n); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_GetSlotList"));
  std::vector<CK_SLOT_ID> slots(n);
  if (CK_RV rv = fn->C_GetSlotList(CK_TRUE, slots.data(), &n); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_GetSlotList"));
  slots.resize(n);
  for (CK_SLOT_ID id : slots) {
    CK_TOKEN_INFO info{};
    if (fn->C_GetTokenInfo(id, &info) == CKR_OK && token_matches(id, info, m)) return std::pair{id, info};
  }
  std::string which = m.slot ? "in slot " + std::to_string(*m.slot) : "labelled '" + m.token_label + "'";
  if (m.slot && !m.token_label.empty()) which += " labelled '" + m.token_label + "'";
  return fail<std::pair<CK_SLOT_ID, CK_TOKEN_INFO>>(ckr_token_not_found, "no token " + which);
}


// CKA_EC_POINT is a DER OCTET STRING around the raw point (some tokens return the raw point).
std::optional<byte_view> der_octet_string(byte_view der) {
  if (der.size() < 2 || der[0] != 0x04) return std::nullopt;
  std::size_t len = der[1], header = 2;
  if (len & 0x80) {
    std::size_t n = len & 0x7f;
    if (n == 0 || n > 2 || der.size() < 2 + n) return std::nullopt;
    len = 0;
    for (std::size_t i = 0; i < n; ++i) len = (len << 8) | der[2 + i];
    header += n;
  }
  if (der.size() != header + len) return std::nullopt;
  return der.subspan(header);
}

hsm_result<bytes> raw_point(byte_view point, byte_view params, const std::string& label) {
  std::size_t expected = ec_point_size(params);
  if (expected && point.size() == expected) return bytes(point.begin(), point.end());
  auto inner = der_octet_string(point);
  if (inner && (!expected || inner->size() == expected)) return bytes(inner->begin(), inner->end());
  if (!expected) return bytes(point.begin(), point.end());
  return fail<bytes>(CKR_ATTRIBUTE_VALUE_INVALID, "unexpected CKA_EC_POINT encoding on '" + label + "'");
}

// SoftHSM2 (2.6.1) answers a failed GCM tag check, or RSA input it cannot pad, with
// CKR_GENERAL_ERROR, a device-class code that would get the worker replaced. If the token still
// does work that reaches it (one random byte; C_GetSessionInfo is often answered from a cache),
// the failure was the data's: report `data_code` instead.
CK_RV normalise_data_failure(CK_FUNCTION_LIST* fn, CK_SESSION_HANDLE s, CK_RV rv, CK_RV data_code) {
  if (rv != CKR_GENERAL_ERROR) return rv;
  CK_BYTE probe = 0;
  CK_RV alive = fn->C_GenerateRandom(s, &probe, 1);
  secure_wipe(&probe, 1);
  return alive == CKR_OK ? data_code : rv;
}

CK_GCM_PARAMS gcm_params(const std::uint8_t* nonce, byte_view aad) {
  return CK_GCM_PARAMS{const_cast<std::uint8_t*>(nonce), gcm_nonce, gcm_nonce * 8,
                       const_cast<std::uint8_t*>(aad.data()), aad.size(), gcm_tag * 8};
}

// Input pointer that is never NULL: SoftHSM2 answers an empty input passed as NULL with
// CKR_ARGUMENTS_BAD and leaves the operation active, which blocks the session.
CK_BYTE* in_ptr(byte_view v) {
  static CK_BYTE none = 0;
  return v.empty() ? &none : const_cast<CK_BYTE*>(v.data());
}

hsm_result<void> check_digest_size(hash_alg hash, byte_view data) {
  if (hash == hash_alg::none || data.size() == digest_size(hash)) return {};
  return fail<void>(CKR_DATA_LEN_RANGE, "digest length " + std::to_string(data.size()) + " does not match " +
                                            std::string(to_string(hash)));
}

std::string metadata_label(const std::string& name) { return std::string(metadata_prefix) + name; }

}  // namespace

hsm_result<session_pool::lease> pkcs11_backend::session() {
  if (!pool_) return std::unexpected(hsm_error{CKR_CRYPTOKI_NOT_INITIALIZED, "backend not open"});
  return pool_->acquire();
}

namespace {

// Empty when the module will not say: the broker then assumes every mechanism is there.
std::vector<std::uint64_t> mechanism_list(CK_FUNCTION_LIST* fn, CK_SLOT_ID slot) {
  CK_ULONG n = 0;
  if (fn->C_GetMechanismList(slot, nullptr, &n) != CKR_OK || n == 0) return {};
  // One spare slot: p11-kit 0.24's client, dropping mechanisms its RPC cannot carry, moves one
  // element too many and reads past the list (ASan showed it; later p11-kit fixed it).
  std::vector<CK_MECHANISM_TYPE> list(n + 1);
  if (fn->C_GetMechanismList(slot, list.data(), &n) != CKR_OK) return {};
  return std::vector<std::uint64_t>(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace

hsm_result<token_description> pkcs11_backend::open(const member_settings& settings) {
  return guarded("open", [&]() -> hsm_result<token_description> {
    if (pool_) return fail<token_description>(CKR_CRYPTOKI_ALREADY_INITIALIZED, "backend already open");
    auto mod = module::acquire(settings.module);
    if (!mod) return std::unexpected(mod.error());
    auto token = find_token((*mod)->fn(), settings);
    // SoftHSM2 (2.6.1) lists only the tokens it could read at C_Initialize: while another process
    // writes the token's files (two nodes of one cluster starting at once) it may be missing until
    // the module is initialised again. A token that is really absent is reported within 0.1 s.
    for (int retry = 0; retry < 4 && !token && token.error().ckr == ckr_token_not_found; ++retry) {
      mod->reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
      mod = module::acquire(settings.module);
      if (!mod) return std::unexpected(mod.error());
      token = find_token((*mod)->fn(), settings);
    }
    if (!token) return std::unexpected(token.error());
    auto pool = session_pool::open(*mod, token->first, settings.sessions, settings.pin);
    if (!pool) return std::unexpected(pool.error());
    pool_ = std::move(*pool);
    if (!settings.so_pin.empty()) {
      user_pin_ = settings.pin;
      so_pin_ = settings.so_pin;
    }
    const CK_TOKEN_INFO& i = token->second;
    token_description d{trimmed(i.label, sizeof i.label), trimmed(i.manufacturerID, sizeof i.manufacturerID),
                        trimmed(i.model, sizeof i.model), trimmed(i.serialNumber, sizeof i.serialNumber), {}};
    d.mechanisms = mechanism_list((*mod)->fn(), token->first);
    return d;
  });
}

hsm_result<void> pkcs11_backend::probe() {
  return guarded("probe", [&]() -> hsm_result<void> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    CK_SESSION_INFO info{};
    if (CK_RV rv = fn()->C_GetSessionInfo(s->get(), &info); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_GetSessionInfo"));
    // A token that lost our login fails every key operation: report it as such.
    if (info.state != CKS_RW_USER_FUNCTIONS) return fail<void>(CKR_USER_NOT_LOGGED_IN, "session is not logged in");
    return {};
  });
}

hsm_result<secure_bytes> pkcs11_backend::random(std::size_t n) {
  return guarded("random", [&]() -> hsm_result<secure_bytes> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    secure_bytes out(n);
    for (std::size_t done = 0; done < n; done += random_chunk) {
      CK_ULONG len = std::min(random_chunk, n - done);
      if (CK_RV rv = fn()->C_GenerateRandom(s->get(), out.data() + done, len); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_GenerateRandom"));
    }
    return out;
  });
}

hsm_result<public_key_blob> pkcs11_backend::generate_key(const std::string& label, key_type type) {
  return guarded("generate_key", [&]() -> hsm_result<public_key_blob> {
    if (label.empty()) return fail<public_key_blob>(CKR_ATTRIBUTE_VALUE_INVALID, "empty key label");
    auto s = session();
    if (!s) return std::unexpected(s.error());
    keygen_spec spec = keygen_template(label, type);
    CK_MECHANISM mech{spec.mechanism, nullptr, 0};
    if (!spec.pair) {
      CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
      auto& t = spec.secret_template;
      if (CK_RV rv = fn()->C_GenerateKey(s->get(), &mech, t.data(), t.size(), &key); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_GenerateKey", label));
      cache_.put(label, CKO_SECRET_KEY, key);
      return public_key_blob{};
    }
    CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE, priv = CK_INVALID_HANDLE;
    auto &pt = spec.public_template, &st = spec.secret_template;
    if (CK_RV rv = fn()->C_GenerateKeyPair(s->get(), &mech, pt.data(), pt.size(), st.data(), st.size(), &pub, &priv);
        rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_GenerateKeyPair", label));
    cache_.put(label, CKO_PUBLIC_KEY, pub);
    cache_.put(label, CKO_PRIVATE_KEY, priv);
    return read_public(s->get(), pub, label);
  });
}

hsm_result<public_key_blob> pkcs11_backend::read_public(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                                                        const std::string& label) {
  auto type = get_ulong_attribute(fn(), s, h, CKA_KEY_TYPE, label);
  if (!type) return std::unexpected(type.error());
  public_key_blob blob;
  if (*type == CKK_RSA) {
    auto n = get_attribute(fn(), s, h, CKA_MODULUS, label);
    auto e = n ? get_attribute(fn(), s, h, CKA_PUBLIC_EXPONENT, label) : n;
    if (!e) return std::unexpected(e.error());
    return public_key_blob{public_key_blob::kind::rsa, std::move(*n), std::move(*e)};
  }
  if (*type != CKK_EC && *type != CKK_EC_EDWARDS)
    return fail<public_key_blob>(CKR_KEY_TYPE_INCONSISTENT, "unsupported public key type on '" + label + "'");
  auto params = get_attribute(fn(), s, h, CKA_EC_PARAMS, label);
  auto point = params ? get_attribute(fn(), s, h, CKA_EC_POINT, label) : params;
  if (!point) return std::unexpected(point.error());
  auto raw = raw_point(*point, *params, label);
  if (!raw) return std::unexpected(raw.error());
  auto kind = *type == CKK_EC ? public_key_blob::kind::ec : public_key_blob::kind::eddsa;
  return public_key_blob{kind, std::move(*params), std::move(*raw)};
}

hsm_result<public_key_blob> pkcs11_backend::public_key(const std::string& label) {
  return guarded("public_key", [&]() -> hsm_result<public_key_blob> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    auto read = [&] {
      return with_object(s->get(), label, CKO_PUBLIC_KEY, [&](CK_OBJECT_HANDLE h) { return read_public(s->get(), h, label); });
    };
    if (label != canary_label) return read();
    // Another node of a cluster pruning at the same moment may destroy the pair this one chose
    // between the choice and the read: choose again. The kept handle is read as it is, never
    // searched for by label, which could find a young half without its private key.
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto kept = prune_canaries(s->get());
      if (!kept) return std::unexpected(kept.error());
      // Half a pair alone is another broker's generation under way: its private half may not be
      // written yet, and a sign would find none. This broker makes its own; prunes converge.
      if (!*kept) return std::unexpected(hsm_error{ckr_object_not_found, "no whole canary pair"});
      auto out = read_public(s->get(), **kept, label);
      if (out || !stale_handle(out.error().ckr)) return out;
    }
    return std::unexpected(hsm_error{ckr_object_not_found, "the canary pair changed during every read"});
  });
}

// Only the canary is pruned: duplicates of a real key may each have encrypted data (they are
// left for an operator, and every broker uses the same one meanwhile). One search sees both
// halves, and the pair is chosen whole: choosing each half by itself would pair a private key
// with a stray public one wherever a prune or a generation elsewhere left half a pair.
hsm_result<std::optional<CK_OBJECT_HANDLE>> pkcs11_backend::prune_canaries(CK_SESSION_HANDLE s) {
  const std::string label = canary_label;
  attribute_list query;
  query.add(CKA_LABEL, label);
  auto found = find_objects(fn(), s, query);
  if (!found) return std::unexpected(found.error());
  struct halves {
    std::vector<CK_OBJECT_HANDLE> pub, priv;
  };
  std::map<bytes, halves> by_id;
  std::vector<CK_OBJECT_HANDLE> doomed;
  for (CK_OBJECT_HANDLE h : *found) {
    auto cls = get_ulong_attribute(fn(), s, h, CKA_CLASS, label);
    auto id = cls ? get_attribute(fn(), s, h, CKA_ID, label) : std::unexpected(cls.error());
    if (!id) {
      if (stale_handle(id.error().ckr)) continue;  // another broker's prune
      return std::unexpected(id.error());
    }
    if (*cls == CKO_PUBLIC_KEY) by_id[*id].pub.push_back(h);
    else if (*cls == CKO_PRIVATE_KEY) by_id[*id].priv.push_back(h);
    else doomed.push_back(h);
  }
  const halves* keep = nullptr;  // the smallest CKA_ID with one whole pair
  auto now = std::chrono::system_clock::now();
  for (auto& [id, pair] : by_id) {
    bool whole = pair.pub.size() == 1 && pair.priv.size() == 1;
    if (!keep && whole) {
      keep = &pair;
      continue;
    }
    // Half a pair made a moment ago is another process's C_GenerateKeyPair under way (SoftHSM2
    // writes the halves one after the other): destroying it would fail that generation.
    auto made = object_id_time(id);
    if (!whole && made && now - *made < std::chrono::minutes(1)) continue;
    doomed.insert(doomed.end(), pair.pub.begin(), pair.pub.end());
    doomed.insert(doomed.end(), pair.priv.begin(), pair.priv.end());
  }
  cache_.drop(label, CKO_PUBLIC_KEY);
  cache_.drop(label, CKO_PRIVATE_KEY);
  // Best effort: another broker pruning at the same moment destroys them first (SoftHSM2 then
  // answers CKR_FUNCTION_FAILED), and what stays is pruned at a later start.
  for (auto h : doomed) fn()->C_DestroyObject(s, h);
  if (!keep) return std::nullopt;  // public_key answers ckr_object_not_found and the broker makes a new pair
  cache_.put(label, CKO_PUBLIC_KEY, keep->pub.front());
  cache_.put(label, CKO_PRIVATE_KEY, keep->priv.front());
  return keep->pub.front();
}

hsm_result<std::uint32_t> pkcs11_backend::destroy_class(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                                                        const std::string& prefix) {
  attribute_list query;
  query.add_ulong(CKA_CLASS, cls);
  auto found = find_objects(fn(), s, query);
  if (!found) return std::unexpected(found.error());
  std::uint32_t destroyed = 0;
  for (CK_OBJECT_HANDLE h : *found) {
    auto label = get_attribute(fn(), s, h, CKA_LABEL, prefix);
    if (!label) return std::unexpected(label.error());
    std::string name(as_chars(*label));
    if (!name.starts_with(prefix)) continue;
    if (CK_RV rv = fn()->C_DestroyObject(s, h); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_DestroyObject", name));
    cache_.drop(name, cls);
    ++destroyed;
  }
  return destroyed;
}

hsm_result<std::uint32_t> pkcs11_backend::destroy_objects(const std::string& label_prefix) {
  return guarded("destroy_objects", [&]() -> hsm_result<std::uint32_t> {
    // An empty prefix would wipe every key on the token: never what a caller means.
    if (label_prefix.empty()) return fail<std::uint32_t>(CKR_ARGUMENTS_BAD, "destroy_objects: empty label prefix");
    auto s = session();
    if (!s) return std::unexpected(s.error());
    std::uint32_t total = 0;
    for (CK_OBJECT_CLASS cls : {CKO_SECRET_KEY, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
      auto n = destroy_class(s->get(), cls, label_prefix);
      if (!n) return std::unexpected(n.error());
      total += *n;
    }
    return total;
  });
}

hsm_result<std::vector<metadata_record>> pkcs11_backend::list_metadata() {
  return guarded("list_metadata", [&]() -> hsm_result<std::vector<metadata_record>> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    attribute_list query;
    query.add_ulong(CKA_CLASS, CKO_DATA).add(CKA_APPLICATION, metadata_application);
    auto found = find_objects(fn(), s->get(), query);
    if (!found) return std::unexpected(found.error());
    std::vector<metadata_record> records;
    for (CK_OBJECT_HANDLE h : *found) {
      // Another process (a second broker releasing a claim) may destroy a record meanwhile.
      auto label = get_attribute(fn(), s->get(), h, CKA_LABEL, "metadata");
      if (!label && stale_handle(label.error().ckr)) continue;
      if (!label) return std::unexpected(label.error());
      std::string name(as_chars(*label));
      if (!name.starts_with(metadata_prefix)) continue;
      auto value = get_attribute(fn(), s->get(), h, CKA_VALUE, name);
      if (!value && stale_handle(value.error().ckr)) continue;
      if (!value) return std::unexpected(value.error());
      records.push_back({name.substr(metadata_prefix.size()), std::move(*value)});
    }
    return records;
  });
}

hsm_result<void> pkcs11_backend::create_metadata(CK_SESSION_HANDLE s, const std::string& label, byte_view value) {
  attribute_list t;
  t.add_ulong(CKA_CLASS, CKO_DATA).add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, true)
      .add_bool(CKA_MODIFIABLE, true).add(CKA_APPLICATION, metadata_application).add(CKA_LABEL, label)
      .add(CKA_VALUE, value);
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  if (CK_RV rv = fn()->C_CreateObject(s, t.data(), t.size(), &h); rv != CKR_OK)
    return std::unexpected(p11_error(rv, "C_CreateObject", label));
  cache_.put(label, CKO_DATA, h);
  return {};
}

// For tokens that refuse C_SetAttributeValue on CKA_VALUE: write the new record, then drop the old.
hsm_result<void> pkcs11_backend::replace_metadata(CK_SESSION_HANDLE s, const std::string& label,
                                                  CK_OBJECT_HANDLE old, byte_view value) {
  if (auto created = create_metadata(s, label, value); !created) return created;
  if (CK_RV rv = fn()->C_DestroyObject(s, old); rv != CKR_OK && !stale_handle(rv))
    return std::unexpected(p11_error(rv, "C_DestroyObject", label));
  return {};
}

hsm_result<void> pkcs11_backend::put_metadata(const std::string& name, byte_view value) {
  return guarded("put_metadata", [&]() -> hsm_result<void> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    std::lock_guard lock(metadata_mutex_);
    std::string label = metadata_label(name);
    auto updated = with_object(s->get(), label, CKO_DATA, [&](CK_OBJECT_HANDLE h) -> hsm_result<void> {
      CK_ATTRIBUTE a{CKA_VALUE, const_cast<std::uint8_t*>(value.data()), value.size()};
      CK_RV rv = fn()->C_SetAttributeValue(s->get(), h, &a, 1);
      if (rv == CKR_OK) return {};
      if (stale_handle(rv) || is_device_error(rv)) return std::unexpected(p11_error(rv, "C_SetAttributeValue", label));
      return replace_metadata(s->get(), label, h, value);
    });
    if (!updated && updated.error().ckr == ckr_object_not_found) return create_metadata(s->get(), label, value);
    return updated;
  });
}

hsm_result<void> pkcs11_backend::delete_metadata(const std::string& name) {
  return guarded("delete_metadata", [&]() -> hsm_result<void> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    std::lock_guard lock(metadata_mutex_);
    std::string label = metadata_label(name);
    auto deleted = with_object(s->get(), label, CKO_DATA, [&](CK_OBJECT_HANDLE h) -> hsm_result<void> {
      if (CK_RV rv = fn()->C_DestroyObject(s->get(), h); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_DestroyObject", label));
      return {};
    });
    cache_.drop(label, CKO_DATA);
    if (!deleted && deleted.error().ckr == ckr_object_not_found) return {};
    return deleted;
  });
}

hsm_result<bytes> pkcs11_backend::encrypt(const std::string& label, byte_view plaintext, byte_view aad) {
  return guarded("encrypt", [&]() -> hsm_result<bytes> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    return with_object(s->get(), label, CKO_SECRET_KEY, [&](CK_OBJECT_HANDLE key) -> hsm_result<bytes> {
      auto nonce = nonces_.take(fn(), s->get());
      if (!nonce) return std::unexpected(nonce.error());
      CK_GCM_PARAMS params = gcm_params(nonce->data(), aad);
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
      if (CK_RV rv = fn()->C_EncryptInit(s->get(), &mech, key); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_EncryptInit", label));
      bytes out(gcm_nonce + plaintext.size() + 2 * gcm_tag);  // one block of slack for tokens that round up
      std::memcpy(out.data(), nonce->data(), gcm_nonce);
      CK_ULONG len = out.size() - gcm_nonce;
      if (CK_RV rv = fn()->C_Encrypt(s->get(), in_ptr(plaintext), plaintext.size(), out.data() + gcm_nonce, &len);
          rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_Encrypt", label));
      out.resize(gcm_nonce + len);
      return out;
    });
  });
}

hsm_result<secure_bytes> pkcs11_backend::decrypt(const std::string& label, byte_view sealed, byte_view aad) {
  return guarded("decrypt", [&]() -> hsm_result<secure_bytes> {
    if (sealed.size() < gcm_nonce + gcm_tag)
      return fail<secure_bytes>(CKR_ENCRYPTED_DATA_LEN_RANGE, "ciphertext shorter than nonce and tag");
    auto s = session();
    if (!s) return std::unexpected(s.error());
    return with_object(s->get(), label, CKO_SECRET_KEY, [&](CK_OBJECT_HANDLE key) -> hsm_result<secure_bytes> {
      CK_GCM_PARAMS params = gcm_params(sealed.data(), aad);
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
      if (CK_RV rv = fn()->C_DecryptInit(s->get(), &mech, key); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_DecryptInit", label));
      byte_view body = sealed.subspan(gcm_nonce);
      secure_bytes out(body.size());
      CK_ULONG len = out.size();
      if (CK_RV rv = fn()->C_Decrypt(s->get(), in_ptr(body), body.size(), out.data(), &len); rv != CKR_OK)
        return std::unexpected(p11_error(normalise_data_failure(fn(), s->get(), rv, CKR_ENCRYPTED_DATA_INVALID), "C_Decrypt", label));
      out.resize(len);
      return out;
    });
  });
}

hsm_result<bytes> pkcs11_backend::sign_with(CK_SESSION_HANDLE s, const std::string& label, CK_OBJECT_CLASS cls,
                                            CK_MECHANISM mech, byte_view input) {
  return with_object(s, label, cls, [&](CK_OBJECT_HANDLE key) -> hsm_result<bytes> {
    if (CK_RV rv = fn()->C_SignInit(s, &mech, key); rv != CKR_OK)
      return std::unexpected(p11_error(rv, "C_SignInit", label));
    bytes out(1024);  // RSA-8192; a larger signature is asked for again below
    CK_ULONG len = out.size();
    CK_RV rv = fn()->C_Sign(s, in_ptr(input), input.size(), out.data(), &len);
    if (rv == CKR_BUFFER_TOO_SMALL) {  // the operation stays active: finish it with the size asked for
      out.resize(len);
      rv = fn()->C_Sign(s, in_ptr(input), input.size(), out.data(), &len);
    }
    if (rv != CKR_OK) return std::unexpected(p11_error(normalise_data_failure(fn(), s, rv, CKR_DATA_INVALID), "C_Sign", label));
    out.resize(len);
    return out;
  });
}

hsm_result<bytes> pkcs11_backend::sign(const std::string& label, sign_mechanism mech, hash_alg hash, byte_view data,
                                       std::uint32_t salt) {
  return guarded("sign", [&]() -> hsm_result<bytes> {
    if (mech != sign_mechanism::eddsa)
      if (auto size_ok = check_digest_size(hash, data); !size_ok) return std::unexpected(size_ok.error());
    auto s = session();
    if (!s) return std::unexpected(s.error());
    switch (mech) {
      case sign_mechanism::ecdsa: return sign_with(s->get(), label, CKO_PRIVATE_KEY, {CKM_ECDSA, nullptr, 0}, data);
      case sign_mechanism::eddsa: return sign_with(s->get(), label, CKO_PRIVATE_KEY, {CKM_EDDSA, nullptr, 0}, data);
      case sign_mechanism::rsa_pkcs1v15: {
        byte_view prefix = digest_info_prefix(hash);
        bytes input(prefix.begin(), prefix.end());
        input.insert(input.end(), data.begin(), data.end());
        return sign_with(s->get(), label, CKO_PRIVATE_KEY, {CKM_RSA_PKCS, nullptr, 0}, input);
      }
      case sign_mechanism::rsa_pss: {
        auto params = pss_params(hash, salt);
        if (!params) return fail<bytes>(CKR_MECHANISM_PARAM_INVALID, "RSA-PSS needs a hash algorithm");
        return sign_with(s->get(), label, CKO_PRIVATE_KEY, {CKM_RSA_PKCS_PSS, &*params, sizeof *params}, data);
      }
    }
    return fail<bytes>(CKR_MECHANISM_INVALID, "unknown signature mechanism");
  });
}

hsm_result<bytes> pkcs11_backend::hmac(const std::string& label, hash_alg hash, byte_view data) {
  return guarded("hmac", [&]() -> hsm_result<bytes> {
    auto mech = hmac_mechanism(hash);
    if (!mech) return fail<bytes>(CKR_MECHANISM_INVALID, "HMAC needs a hash algorithm");
    auto s = session();
    if (!s) return std::unexpected(s.error());
    return sign_with(s->get(), label, CKO_SECRET_KEY, {*mech, nullptr, 0}, data);
  });
}

// AES: the GCM tag of an empty message under a fixed all-zero IV and fixed AAD. The input never
// varies, so this one fixed IV reveals nothing an attacker could combine (no second message);
// data encryption never uses it (its IVs are random). HMAC keys: HMAC-SHA256 of the same string.
hsm_result<bytes> pkcs11_backend::key_check_value(const std::string& label, key_type type) {
  static constexpr std::string_view kcv_input = "hsm-broker key check value";
  return guarded("key_check_value", [&]() -> hsm_result<bytes> {
    auto s = session();
    if (!s) return std::unexpected(s.error());
    if (type == key_type::hmac) return sign_with(s->get(), label, CKO_SECRET_KEY, {CKM_SHA256_HMAC, nullptr, 0}, as_bytes(kcv_input));
    if (!is_symmetric_cipher(type)) return fail<bytes>(CKR_KEY_TYPE_INCONSISTENT, "no key check value for asymmetric keys");
    return with_object(s->get(), label, CKO_SECRET_KEY, [&](CK_OBJECT_HANDLE key) -> hsm_result<bytes> {
      std::uint8_t zero_iv[gcm_nonce] = {};
      CK_GCM_PARAMS params = gcm_params(zero_iv, as_bytes(kcv_input));
      CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof params};
      if (CK_RV rv = fn()->C_EncryptInit(s->get(), &mech, key); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_EncryptInit", label));
      bytes tag(2 * gcm_tag);
      CK_ULONG len = tag.size();
      std::uint8_t nothing = 0;  // SoftHSM refuses a NULL input pointer even for zero bytes
      if (CK_RV rv = fn()->C_Encrypt(s->get(), &nothing, 0, tag.data(), &len); rv != CKR_OK)
        return std::unexpected(p11_error(rv, "C_Encrypt", label));
      tag.resize(len);
      return tag;
    });
  });
}

}  // namespace pkcs11
}  // namespace hsmb
