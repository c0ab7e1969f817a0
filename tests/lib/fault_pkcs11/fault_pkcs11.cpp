// Fault-injection PKCS#11 module for tests: forwards every call to a real module and, driven by a
// control file ("ok", "down", "hang", "badsig", "slowgen <ms>", "slowlogin <ms>"), makes the HSM
// look unreachable, hung, computing wrong signatures (a token that answers but is broken), slow at
// generating keys, or slow to log in (so a fresh worker takes that long to start).
//
// Environment: HSMB_FAULT_MODULE (the real module, default SoftHSM2), HSMB_FAULT_CONTROL (the file).
// Built with -fno-exceptions and without libstdc++ symbols, so it links only libc/libdl/pthread.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "hsm_backends/pkcs11/p11.h"

namespace {

constexpr const char* default_module = "/usr/lib/softhsm/libsofthsm2.so";

enum class fault_state { ok, down, hang, badsig, slowgen, slowlogin };

// Closes a file descriptor on scope exit.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// remove_prefix/suffix rather than substr, which can throw (and pull in libstdc++).
std::string_view trim(std::string_view s) {
  constexpr std::string_view space = " \t\r\n\v\f";
  while (!s.empty() && space.find(s.front()) != std::string_view::npos) s.remove_prefix(1);
  while (!s.empty() && space.find(s.back()) != std::string_view::npos) s.remove_suffix(1);
  return s;
}

// The delay of states `slowgen` and `slowlogin`, in milliseconds.
long slowgen_ms(std::string_view arg) noexcept {
  long ms = 0;
  for (char c : arg) {
    if (c < '0' || c > '9') break;
    ms = ms * 10 + (c - '0');
  }
  return ms > 0 ? ms : 1000;
}

// Reads the control file into a stack buffer (no heap allocation on the call path).
// A missing, empty or unrecognised file means `ok`. `delay_ms` receives slowgen's argument.
fault_state read_state(long* delay_ms = nullptr) noexcept {
  const char* path = std::getenv("HSMB_FAULT_CONTROL");
  if (path == nullptr || *path == '\0') return fault_state::ok;
  fd_guard file{::open(path, O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) return fault_state::ok;
  char buf[64];
  ssize_t n;
  do {
    n = ::read(file.fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return fault_state::ok;
  auto word = trim({buf, static_cast<size_t>(n)});
  if (word == "down") return fault_state::down;
  if (word == "hang") return fault_state::hang;
  if (word == "badsig") return fault_state::badsig;
  if (word.starts_with("slowgen")) {
    word.remove_prefix(7);
    if (delay_ms) *delay_ms = slowgen_ms(trim(word));
    return fault_state::slowgen;
  }
  if (word.starts_with("slowlogin")) {
    word.remove_prefix(9);
    if (delay_ms) *delay_ms = slowgen_ms(trim(word));
    return fault_state::slowlogin;
  }
  return fault_state::ok;
}

// The current state, blocking (polling every 10 ms) for as long as it is `hang`.
fault_state await_state(long* delay_ms = nullptr) noexcept {
  for (;;) {
    auto state = read_state(delay_ms);
    if (state != fault_state::hang) return state;
    timespec ten_ms{0, 10'000'000};
    ::nanosleep(&ten_ms, nullptr);
  }
}

// The real module, loaded once. Never dlclosed: callers may still hold its sessions at exit.
CK_FUNCTION_LIST* real = nullptr;
CK_FUNCTION_LIST ours{};
pthread_once_t load_once = PTHREAD_ONCE_INIT;

const CK_FUNCTION_LIST& fn() { return *real; }  // only reachable through `ours`, after a load

// Forwarders for every CK_FUNCTION_LIST member of type CK_RV (*)(A...).
template <typename F>
struct forward;

template <typename... A>
struct forward<CK_RV (*)(A...)> {
  // Always forwarded, whatever the control file says.
  template <auto member>
  static CK_RV plain(A... args) noexcept {
    return (fn().*member)(args...);
  }
  // Consults the control file first: `down` fails as an unreachable device would.
  template <auto member>
  static CK_RV gated(A... args) noexcept {
    if (await_state() == fault_state::down) return CKR_DEVICE_ERROR;
    return (fn().*member)(args...);
  }
};

template <typename C, typename T>
T member_type(T C::*);

template <auto member>
using forward_for = forward<decltype(member_type(member))>;

// An unreachable HSM has no slots rather than failing the enumeration.
CK_RV get_slot_list(CK_BBOOL token_present, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count) noexcept {
  if (await_state() == fault_state::down) {
    if (count == nullptr) return CKR_ARGUMENTS_BAD;
    *count = 0;
    return CKR_OK;
  }
  return fn().C_GetSlotList(token_present, slots, count);
}

CK_RV get_function_list(CK_FUNCTION_LIST_PTR_PTR list) noexcept;

// `badsig`: the token signs, but the signature is wrong (its first byte flipped), as a token with a
// damaged key or a broken firmware would answer. Only a check of the answer can tell.
void spoil(CK_BYTE_PTR signature, CK_ULONG_PTR length) noexcept {
  if (signature != nullptr && length != nullptr && *length > 0) signature[0] ^= 0xA5;
}

CK_RV sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR signature, CK_ULONG_PTR sig_len) noexcept {
  auto state = await_state();
  if (state == fault_state::down) return CKR_DEVICE_ERROR;
  CK_RV rv = fn().C_Sign(s, data, len, signature, sig_len);
  if (rv == CKR_OK && state == fault_state::badsig) spoil(signature, sig_len);
  return rv;
}

CK_RV sign_final(CK_SESSION_HANDLE s, CK_BYTE_PTR signature, CK_ULONG_PTR sig_len) noexcept {
  auto state = await_state();
  if (state == fault_state::down) return CKR_DEVICE_ERROR;
  CK_RV rv = fn().C_SignFinal(s, signature, sig_len);
  if (rv == CKR_OK && state == fault_state::badsig) spoil(signature, sig_len);
  return rv;
}

// `slowgen <ms>`: key generation takes that long (an RSA-4096 key on a real HSM takes seconds);
// `slowlogin <ms>`: so does C_Login.
void delay_if(fault_state state, fault_state wanted, long delay_ms) noexcept {
  if (state != wanted) return;
  timespec d{delay_ms / 1000, (delay_ms % 1000) * 1'000'000};
  while (::nanosleep(&d, &d) != 0 && errno == EINTR) {
  }
}

CK_RV login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len) noexcept {
  long delay = 0;
  auto state = await_state(&delay);
  if (state == fault_state::down) return CKR_DEVICE_ERROR;
  delay_if(state, fault_state::slowlogin, delay);
  return fn().C_Login(s, user, pin, len);
}

CK_RV generate_key(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k) noexcept {
  long delay = 0;
  auto state = await_state(&delay);
  if (state == fault_state::down) return CKR_DEVICE_ERROR;
  delay_if(state, fault_state::slowgen, delay);
  return fn().C_GenerateKey(s, m, t, n, k);
}

CK_RV generate_key_pair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub, CK_ULONG npub,
                        CK_ATTRIBUTE_PTR priv, CK_ULONG npriv, CK_OBJECT_HANDLE_PTR hpub,
                        CK_OBJECT_HANDLE_PTR hpriv) noexcept {
  long delay = 0;
  auto state = await_state(&delay);
  if (state == fault_state::down) return CKR_DEVICE_ERROR;
  delay_if(state, fault_state::slowgen, delay);
  return fn().C_GenerateKeyPair(s, m, pub, npub, priv, npriv, hpub, hpriv);
}

// Every member except C_GetFunctionList (ours), C_GetSlotList (special) and the ungated ones.
#define HSMB_FAULT_GATED_FUNCTIONS(X)                                                                 \
  X(C_GetSlotInfo) X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken)       \
  X(C_InitPIN) X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions)                   \
  X(C_GetSessionInfo) X(C_GetOperationState) X(C_SetOperationState) X(C_Login) X(C_Logout)            \
  X(C_CreateObject) X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize) X(C_GetAttributeValue)      \
  X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) X(C_FindObjectsFinal)                  \
  X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt)    \
  X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey)   \
  X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)        \
  X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal)                     \
  X(C_VerifyRecoverInit) X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate)         \
  X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey)  \
  X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus)            \
  X(C_CancelFunction) X(C_WaitForSlotEvent)

#define HSMB_FAULT_PLAIN_FUNCTIONS(X) X(C_Initialize) X(C_Finalize) X(C_GetInfo)

void fill_function_list() {
#define HSMB_GATED(name) \
  ours.name = forward_for<&CK_FUNCTION_LIST::name>::gated<&CK_FUNCTION_LIST::name>;
#define HSMB_PLAIN(name) \
  ours.name = forward_for<&CK_FUNCTION_LIST::name>::plain<&CK_FUNCTION_LIST::name>;
  HSMB_FAULT_GATED_FUNCTIONS(HSMB_GATED)
  HSMB_FAULT_PLAIN_FUNCTIONS(HSMB_PLAIN)
#undef HSMB_GATED
#undef HSMB_PLAIN
  ours.C_GetSlotList = get_slot_list;
  ours.C_Sign = sign;
  ours.C_SignFinal = sign_final;
  ours.C_GenerateKey = generate_key;
  ours.C_Login = login;
  ours.C_GenerateKeyPair = generate_key_pair;
  ours.C_GetFunctionList = get_function_list;
  ours.version = real->version;
}

void load_real_module() {
  const char* path = std::getenv("HSMB_FAULT_MODULE");
  if (path == nullptr || *path == '\0') path = default_module;
  void* handle = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    std::fprintf(stderr, "hsmb-fault-pkcs11: %s\n", ::dlerror());
    return;
  }
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
  CK_FUNCTION_LIST* list = nullptr;
  if (get == nullptr || get(&list) != CKR_OK || list == nullptr) {
    std::fprintf(stderr, "hsmb-fault-pkcs11: no function list in %s\n", path);
    return;
  }
  real = list;
  fill_function_list();
}

CK_RV get_function_list(CK_FUNCTION_LIST_PTR_PTR list) noexcept {
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  ::pthread_once(&load_once, load_real_module);
  if (real == nullptr) return CKR_GENERAL_ERROR;
  *list = &ours;
  return CKR_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  return get_function_list(list);
}
