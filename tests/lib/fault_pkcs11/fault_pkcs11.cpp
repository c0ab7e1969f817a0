// Fault-injection PKCS#11 module for tests: forwards every call to a real module and, driven by a
// control file ("ok", "down", "hang", "badsig", "slowgen <ms>", "slowlogin <ms>",
// "serve <us> <n>"), makes the HSM look unreachable, hung, computing wrong signatures (a token that
// answers but is broken), slow at generating keys, slow to log in (so a fresh worker takes that
// long to start), or a remote HSM of a given capacity: each cryptographic call takes <us>
// microseconds of service and at most <n> are served at once, the rest queue (benchmarks of [14]).
//
// Environment: HSMB_FAULT_MODULE (the real module, default SoftHSM2), HSMB_FAULT_CONTROL (the file).
// Built with -fno-exceptions and without libstdc++ symbols, so it links only libc/libdl/pthread.
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string_view>

#include "hsm_backends/pkcs11/p11.h"

namespace {

constexpr const char* default_module = "/usr/lib/softhsm/libsofthsm2.so";

enum class fault_state { ok, down, hang, badsig, slowgen, slowlogin, serve };

// The `serve` state's parameters.
struct service {
  long us = 0;     // service time per cryptographic call
  long slots = 1;  // calls served at once
};

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

// The leading decimal number of `arg` (0 if none); `arg` moves past it and the spaces after it.
long take_number(std::string_view& arg) noexcept {
  long n = 0;
  while (!arg.empty() && arg.front() >= '0' && arg.front() <= '9') {
    n = n * 10 + (arg.front() - '0');
    arg.remove_prefix(1);
  }
  arg = trim(arg);
  return n;
}

// The delay of states `slowgen` and `slowlogin`, in milliseconds.
long slowgen_ms(std::string_view arg) noexcept {
  long ms = take_number(arg);
  return ms > 0 ? ms : 1000;
}

// Reads the control file into a stack buffer (no heap allocation on the call path).
// A missing, empty or unrecognised file means `ok`. `delay_ms` receives slowgen's argument.
fault_state read_state(long* delay_ms = nullptr, service* serve = nullptr) noexcept {
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
  if (word.starts_with("serve")) {
    word = trim(word.substr(5));
    service sv;
    sv.us = take_number(word);
    sv.slots = take_number(word);
    if (sv.slots < 1) sv.slots = 1;
    if (serve) *serve = sv;
    return fault_state::serve;
  }
  return fault_state::ok;
}

// The current state, blocking (polling every 10 ms) for as long as it is `hang`.
fault_state await_state(long* delay_ms = nullptr, service* serve = nullptr) noexcept {
  for (;;) {
    auto state = read_state(delay_ms, serve);
    if (state != fault_state::hang) return state;
    timespec ten_ms{0, 10'000'000};
    ::nanosleep(&ten_ms, nullptr);
  }
}

template <typename T>
bool is_null(T* p) noexcept { return p == nullptr; }
template <typename T>
bool is_null(T) noexcept { return false; }
// Whether argument number `n` (from 0) is a null pointer.
template <int n, typename... T>
bool null_at(T... args) noexcept {
  int i = 0;
  bool found = false;
  ((found = found || (i++ == n && is_null(args))), ...);
  return found;
}

// `serve <us> <n>`: a station of <n> servers in this process (a member's worker), first come first
// served. Each call books the server that is free first: it starts when that server is free (or
// now) and ends <us> later, and the caller returns at the end, the real module's work included.
// Booking on the servers' own timeline, not on when a sleeping thread happens to wake, keeps the
// capacity exactly <n> per <us> on a busy machine.
class station {
 public:
  static constexpr long max_slots = 256;
  std::int64_t book(long us, long slots) noexcept {
    if (slots > max_slots) slots = max_slots;
    ::pthread_mutex_lock(&lock_);
    long first = 0;
    for (long i = 1; i < slots; ++i)
      if (free_at_[i] < free_at_[first]) first = i;
    std::int64_t start = now_ns();
    if (free_at_[first] > start) start = free_at_[first];
    free_at_[first] = start + us * 1000;
    std::int64_t end = free_at_[first];
    ::pthread_mutex_unlock(&lock_);
    return end;
  }
  static std::int64_t now_ns() noexcept {
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    return std::int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  }

 private:
  pthread_mutex_t lock_ = PTHREAD_MUTEX_INITIALIZER;
  std::int64_t free_at_[max_slots] = {};
};
station the_station;

// One cryptographic call's service: in state `serve`, it returns no sooner than the end of the
// service the station booked for it. A length query (no output buffer) is answered at once, as a
// real HSM's library does without a round trip.
class service_slot {
 public:
  explicit service_slot(bool length_query) noexcept {
    service sv;
    state_ = await_state(nullptr, &sv);
    if (state_ == fault_state::serve && !length_query) end_ns_ = the_station.book(sv.us, sv.slots);
  }
  ~service_slot() {
    if (end_ns_ == 0) return;
    ::prctl(PR_SET_TIMERSLACK, 1UL);  // the default 50 µs of slack would lengthen every service
    timespec until{static_cast<time_t>(end_ns_ / 1'000'000'000), static_cast<long>(end_ns_ % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {
    }
  }
  service_slot(const service_slot&) = delete;
  service_slot& operator=(const service_slot&) = delete;
  bool down() const noexcept { return state_ == fault_state::down; }
  fault_state state() const noexcept { return state_; }

 private:
  fault_state state_;
  std::int64_t end_ns_ = 0;
};

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
  // A cryptographic call: gated, and in state `serve` it takes its service time first.
  // `out`: the position of its output buffer (a null one is a length query), -1 for none.
  template <auto member, int out>
  static CK_RV charged(A... args) noexcept {
    service_slot slot(null_at<out>(args...));
    if (slot.down()) return CKR_DEVICE_ERROR;
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
  service_slot slot(signature == nullptr);  // reads the state once, for the fault and the service
  auto state = slot.state();
  if (state == fault_state::down) return CKR_DEVICE_ERROR;
  CK_RV rv = fn().C_Sign(s, data, len, signature, sig_len);
  if (rv == CKR_OK && state == fault_state::badsig) spoil(signature, sig_len);
  return rv;
}

CK_RV sign_final(CK_SESSION_HANDLE s, CK_BYTE_PTR signature, CK_ULONG_PTR sig_len) noexcept {
  service_slot slot(signature == nullptr);
  auto state = slot.state();
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
  X(C_EncryptInit) X(C_EncryptUpdate) X(C_DecryptInit) X(C_DecryptUpdate) X(C_DigestInit)             \
  X(C_DigestUpdate) X(C_DigestKey) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal)             \
  X(C_SignRecoverInit) X(C_SignRecover) X(C_VerifyInit) X(C_VerifyUpdate) X(C_VerifyRecoverInit)      \
  X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate)         \
  X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_DeriveKey) X(C_SeedRandom)       \
  X(C_GetFunctionStatus) X(C_CancelFunction) X(C_WaitForSlotEvent)

#define HSMB_FAULT_PLAIN_FUNCTIONS(X) X(C_Initialize) X(C_Finalize) X(C_GetInfo)

// The cryptographic calls a `serve` state charges, with the position of each one's output buffer.
#define HSMB_FAULT_CHARGED_FUNCTIONS(X)                                                             \
  X(C_Encrypt, 3) X(C_EncryptFinal, 1) X(C_Decrypt, 3) X(C_DecryptFinal, 1) X(C_Digest, 3)          \
  X(C_DigestFinal, 1) X(C_Verify, -1) X(C_VerifyFinal, -1) X(C_WrapKey, 4) X(C_UnwrapKey, -1)      \
  X(C_GenerateRandom, -1)

void fill_function_list() {
#define HSMB_GATED(name) \
  ours.name = forward_for<&CK_FUNCTION_LIST::name>::gated<&CK_FUNCTION_LIST::name>;
#define HSMB_PLAIN(name) \
  ours.name = forward_for<&CK_FUNCTION_LIST::name>::plain<&CK_FUNCTION_LIST::name>;
#define HSMB_CHARGED(name, out) \
  ours.name = forward_for<&CK_FUNCTION_LIST::name>::charged<&CK_FUNCTION_LIST::name, out>;
  HSMB_FAULT_GATED_FUNCTIONS(HSMB_GATED)
  HSMB_FAULT_PLAIN_FUNCTIONS(HSMB_PLAIN)
  HSMB_FAULT_CHARGED_FUNCTIONS(HSMB_CHARGED)
#undef HSMB_GATED
#undef HSMB_PLAIN
#undef HSMB_CHARGED
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
