// The fault-injection PKCS#11 module over a real SoftHSM2 token: forwarding, down, hang and recovery.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <future>
#include <string>
#include <string_view>
#include <vector>

#include "hsm_backends/pkcs11/p11.h"
#include "tests/lib/fault_hsm.h"

using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

// The fault module loaded and initialised in this process with a fault_hsm's environment.
class loaded_module {
 public:
  explicit loaded_module(const fault_hsm& hsm) {
    for (const auto& [name, value] : hsm.environment()) setenv(name.c_str(), value.c_str(), 1);
    handle_ = dlopen(fault_hsm::module_path().c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE_MESSAGE(handle_ != nullptr, dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(handle_, "C_GetFunctionList"));
    REQUIRE(static_cast<bool>(get));
    REQUIRE(get(&fn_) == CKR_OK);
    REQUIRE(initialize() == CKR_OK);
  }
  ~loaded_module() {
    fn_->C_Finalize(nullptr);
    dlclose(handle_);
  }
  loaded_module(const loaded_module&) = delete;
  loaded_module& operator=(const loaded_module&) = delete;

  CK_FUNCTION_LIST* operator->() const { return fn_; }
  CK_RV initialize() const {
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    return fn_->C_Initialize(&args);
  }

 private:
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* fn_ = nullptr;
};

std::vector<CK_SLOT_ID> slots_with_token(const loaded_module& m) {
  CK_ULONG count = 0;
  REQUIRE(m->C_GetSlotList(CK_TRUE, nullptr, &count) == CKR_OK);
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) REQUIRE(m->C_GetSlotList(CK_TRUE, slots.data(), &count) == CKR_OK);
  slots.resize(count);
  return slots;
}

// The slot whose token carries `label` (token labels are blank-padded to 32 bytes).
CK_SLOT_ID find_slot(const loaded_module& m, std::string_view label) {
  for (CK_SLOT_ID slot : slots_with_token(m)) {
    CK_TOKEN_INFO info{};
    REQUIRE(m->C_GetTokenInfo(slot, &info) == CKR_OK);
    std::string_view l(reinterpret_cast<const char*>(info.label), sizeof info.label);
    if (l.substr(0, l.find_last_not_of(' ') + 1) == label) return slot;
  }
  FAIL("no token labelled " << label);
  return 0;
}

CK_SESSION_HANDLE open_user_session(const loaded_module& m, const fault_hsm& hsm) {
  CK_SESSION_HANDLE s = 0;
  REQUIRE(m->C_OpenSession(find_slot(m, hsm.label()), CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) ==
          CKR_OK);
  std::string pin = hsm.token().pin();
  REQUIRE(m->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size()) == CKR_OK);
  return s;
}

CK_RV random_bytes(const loaded_module& m, CK_SESSION_HANDLE s) {
  unsigned char buf[16];
  return m->C_GenerateRandom(s, buf, sizeof buf);
}

// Runs a function on scope exit.
template <typename F>
struct scope_exit {
  F f;
  ~scope_exit() { f(); }
};

}  // namespace

TEST_CASE("ok forwards, down fails like an unreachable HSM, up recovers") {
  fault_hsm hsm("fault-a");
  loaded_module m(hsm);
  CK_SESSION_HANDLE s = open_user_session(m, hsm);
  CHECK(random_bytes(m, s) == CKR_OK);

  hsm.down();
  CHECK(random_bytes(m, s) == CKR_DEVICE_ERROR);
  CHECK(slots_with_token(m).empty());
  CK_TOKEN_INFO info{};
  CHECK(m->C_GetTokenInfo(0, &info) == CKR_DEVICE_ERROR);

  hsm.up();
  CHECK(random_bytes(m, s) == CKR_OK);
  find_slot(m, hsm.label());  // fails the test when the token is missing
}

TEST_CASE("hang blocks a call until up") {
  fault_hsm hsm("fault-b");
  loaded_module m(hsm);
  CK_SESSION_HANDLE s = open_user_session(m, hsm);

  hsm.hang();
  auto call = std::async(std::launch::async, [&] { return random_bytes(m, s); });
  scope_exit release{[&] { hsm.up(); }};  // a failed check must not leave the call (and ~future) hung
  CHECK(call.wait_for(200ms) == std::future_status::timeout);

  hsm.up();
  REQUIRE(call.wait_for(2s) == std::future_status::ready);
  CHECK(call.get() == CKR_OK);
}

TEST_CASE("finalize and initialize succeed while down, and find no token") {
  fault_hsm hsm("fault-c");
  loaded_module m(hsm);
  hsm.down();
  CHECK(m->C_Finalize(nullptr) == CKR_OK);
  CHECK(m.initialize() == CKR_OK);
  CHECK(slots_with_token(m).empty());

  hsm.up();
  find_slot(m, hsm.label());
}

// `serve <us> <n>`: six calls at once on a station of two servers of 100 ms each take three
// rounds; a length query is not charged. (Lower bounds only: a busy machine can only add time.)
TEST_CASE("serve: calls beyond the station's servers queue for their service time") {
  fault_hsm hsm("fault-d");
  loaded_module m(hsm);
  std::vector<CK_SESSION_HANDLE> sessions{open_user_session(m, hsm)};  // a login is the token's, for all sessions
  for (int i = 1; i < 6; ++i) {
    CK_SESSION_HANDLE s = 0;
    REQUIRE(m->C_OpenSession(find_slot(m, hsm.label()), CKF_SERIAL_SESSION, nullptr, nullptr, &s) == CKR_OK);
    sessions.push_back(s);
  }
  hsm.serve(100'000, 2);
  auto start = std::chrono::steady_clock::now();
  std::vector<std::future<std::chrono::steady_clock::duration>> calls;
  for (auto s : sessions)
    calls.push_back(std::async(std::launch::async, [&m, s, start] {
      CHECK(random_bytes(m, s) == CKR_OK);
      return std::chrono::steady_clock::now() - start;
    }));
  std::vector<std::chrono::steady_clock::duration> took;
  for (auto& c : calls) took.push_back(c.get());
  std::sort(took.begin(), took.end());
  CHECK(took[1] >= 100ms);  // the first two are served at once...
  CHECK(took[3] >= 200ms);  // ...the next two wait for them...
  CHECK(took[5] >= 300ms);  // ...and the last two for those
  hsm.up();
  auto quick = std::chrono::steady_clock::now();
  CHECK(random_bytes(m, sessions[0]) == CKR_OK);
  CHECK(std::chrono::steady_clock::now() - quick < 100ms);  // `ok` charges nothing
}
