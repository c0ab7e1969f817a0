// hsm-kms-plugin end to end: a real gRPC client (the C++ stubs of kms_plugin/proto/api.proto)
// calls a real plugin process, which calls a real broker on SoftHSM2 tokens. Round trip, key_id
// semantics across rotation and restarts, refusals, health, and Decrypts under load through a
// broker restart, a supervisor hand-off and HSM failover with none failed.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <mutex>
#include <thread>

#include "kms_v2/api.grpc.pb.h"
#include "tests/integration/broker_fixture.h"
#include "tests/lib/fault_hsm.h"
#include "tests/lib/temp_dir.h"

using namespace hsmb::test;
using namespace std::chrono_literals;

namespace {

const std::string fast_health = "health: { probe_interval: 200ms, idle_probe_interval: 200ms }\ntimeouts: { request: 5s, call: 1s }\n";

// A running hsm-kms-plugin, stopped (SIGTERM) on destruction.
class plugin_process {
 public:
  plugin_process(const std::string& broker_socket, const std::string& key, const std::string& token_file = "")
      : socket_((dir_.path / "kms.sock").string()), log_((dir_.path / "plugin.log").string()) {
    std::vector<std::string> args = {HSMB_BIN_DIR "/hsm-kms-plugin", "--listen", socket_, "--broker-socket", broker_socket, "--key", key};
    if (!token_file.empty()) args.insert(args.end(), {"--token-file", token_file});
    pid_ = ::fork();
    if (pid_ == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    REQUIRE_MESSAGE(eventually([&] { return std::filesystem::exists(socket_); }, 10s), log_tail());
  }
  ~plugin_process() { stop(); }
  int stop() {
    if (pid_ <= 0) return 0;
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool gone = eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, 10s);
    if (!gone) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    pid_ = -1;
    return status;
  }
  const std::string& socket() const { return socket_; }
  std::string log_tail() const {
    std::string all;
    for (auto& l : read_lines(log_)) all += l + "\n";
    return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
  }

 private:
  temp_dir dir_{"hsmb-kms"};
  std::string socket_, log_;
  pid_t pid_ = -1;
};

// The apiserver's side: v2.KeyManagementService over the plugin's socket.
struct kms_client {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v2::KeyManagementService::Stub> stub;
  explicit kms_client(const std::string& socket)
      : channel(grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials())),
        stub(v2::KeyManagementService::NewStub(channel)) {}

  static void set_deadline(grpc::ClientContext& ctx, std::chrono::milliseconds budget) {
    ctx.set_deadline(std::chrono::system_clock::now() + budget);
  }
  v2::StatusResponse status(grpc::Status* out = nullptr) {
    grpc::ClientContext ctx;
    set_deadline(ctx, 5s);
    v2::StatusResponse r;
    auto s = stub->Status(&ctx, v2::StatusRequest{}, &r);
    if (out) *out = s;
    if (!s.ok()) r.set_healthz("rpc failed: " + s.error_message());
    return r;
  }
  grpc::Status encrypt(const std::string& plaintext, v2::EncryptResponse& r, std::chrono::milliseconds budget = 5s) {
    grpc::ClientContext ctx;
    set_deadline(ctx, budget);
    v2::EncryptRequest q;
    q.set_plaintext(plaintext);
    q.set_uid("test-encrypt");
    return stub->Encrypt(&ctx, q, &r);
  }
  grpc::Status decrypt(const std::string& ciphertext, const std::string& key_id, std::string* plaintext,
                       std::chrono::milliseconds budget = 5s) {
    grpc::ClientContext ctx;
    set_deadline(ctx, budget);
    v2::DecryptRequest q;
    q.set_ciphertext(ciphertext);
    q.set_key_id(key_id);
    q.set_uid("test-decrypt");
    v2::DecryptResponse r;
    auto s = stub->Decrypt(&ctx, q, &r);
    if (plaintext) *plaintext = r.plaintext();
    return s;
  }
};

member_spec local_member(const softhsm_token& t) {
  return {"hsm-a", softhsm_token::module_path(), t.label(), t.pin(), {{"SOFTHSM2_CONF", t.conf_path()}}};
}

std::string dek(int n) {  // a 32-byte "data encryption key", distinct per n
  std::string k(32, '\0');
  for (int i = 0; i < 32; ++i) k[static_cast<std::size_t>(i)] = static_cast<char>((n * 31 + i * 7) & 0xff);
  return k;
}

void create_key(broker_process& b, const std::string& name, const std::string& type = "aes256-gcm96") {
  auto c = b.unix_client();
  auto r = call(c, "POST", "/v1/transit/keys/" + name, {{"type", type}});
  REQUIRE_MESSAGE(r.status == 200, r.error());
}

bool healthy(kms_client& k) { return k.status().healthz() == "ok"; }

// Decrypts of known ciphertexts from several threads until stopped; counts every failure.
class decrypt_load {
 public:
  decrypt_load(const std::string& socket, std::vector<std::pair<std::string, std::string>> samples, int threads,
               std::chrono::milliseconds budget)
      : samples_(std::move(samples)) {
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, socket, budget, t] {
        kms_client k(socket);
        for (int n = t; !stop_; ++n) {
          auto& [ct, id] = samples_[static_cast<std::size_t>(n) % samples_.size()];
          std::string plain;
          auto start = std::chrono::steady_clock::now();
          auto s = k.decrypt(ct, id, &plain, budget);
          double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
          std::lock_guard lock(mu_);
          ++sent_;
          worst_ms_ = std::max(worst_ms_, ms);
          if (!s.ok() || plain != dek(static_cast<int>(static_cast<std::size_t>(n) % samples_.size()))) {
            ++failed_;
            if (first_failure_.empty()) first_failure_ = s.ok() ? "wrong plaintext" : s.error_message();
          }
        }
      });
  }
  ~decrypt_load() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  int sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }
  int failed() {
    std::lock_guard lock(mu_);
    return failed_;
  }
  std::string summary() {
    std::lock_guard lock(mu_);
    return std::to_string(sent_) + " decrypts, " + std::to_string(failed_) + " failed" +
           (first_failure_.empty() ? "" : " (first: " + first_failure_ + ")") + ", slowest " + std::to_string(worst_ms_) + " ms";
  }

 private:
  std::vector<std::pair<std::string, std::string>> samples_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  int sent_ = 0, failed_ = 0;
  double worst_ms_ = 0;
  std::string first_failure_;
  std::vector<std::thread> threads_;
};

// Ciphertexts of dek(0..n-1) with their key_ids.
std::vector<std::pair<std::string, std::string>> encrypt_samples(kms_client& k, int n) {
  std::vector<std::pair<std::string, std::string>> out;
  for (int i = 0; i < n; ++i) {
    v2::EncryptResponse r;
    auto s = k.encrypt(dek(i), r);
    REQUIRE_MESSAGE(s.ok(), s.error_message());
    out.emplace_back(r.ciphertext(), r.key_id());
  }
  return out;
}

bool all_serving(broker_process& b, int n) {
  auto c = b.unix_client();
  auto h = call(c, "GET", "/v1/sys/health");
  return h.status == 200 && h.body.at("members").at("serving").to_number<int>() == n;
}

// Two SoftHSM2 tokens behind the fault-injection module (up, down, hung at the test's word), a
// cluster key enrolled on both, and a broker over them with the key "kek" copied to both. (The
// simulated network HSMs of tests/lib/network_hsm cannot serve this key: p11-kit's RPC carries
// neither AES-GCM parameters nor key wrap.)
struct two_fault_hsms {
  fault_hsm h1{"kms-f1"}, h2{"kms-f2"};
  std::unique_ptr<broker_process> broker;
  two_fault_hsms() {
    broker = std::make_unique<broker_process>(std::vector<member_spec>{spec_of("hsm1", h1), spec_of("hsm2", h2)},
                                              fast_health + "replication: { mode: broker, min_copies: 2 }\n");
    auto so_pin = broker->dir() + "/so.pin";
    std::ofstream(so_pin) << h1.token().so_pin() << "\n";
    std::string out;
    REQUIRE_MESSAGE(run_command(std::string(HSMB_BIN_DIR) + "/hsm-broker --config " + broker->config_path() +
                                    " --enroll --so-pin-file " + so_pin + " 2>&1", &out) == 0, out);
    broker->start();
    REQUIRE_MESSAGE(eventually([&] { return all_serving(*broker, 2); }, 10s), broker->log_tail());
    create_key(*broker, "kek");  // on both members (min_copies 2)
  }
  static member_spec spec_of(const std::string& name, const fault_hsm& h) {
    member_spec s{name, fault_hsm::module_path(), h.label(), h.token().pin(), {}};
    for (auto& [k, v] : h.environment()) s.env[k] = v;
    return s;
  }
  fault_hsm& operator[](std::size_t i) { return i == 0 ? h1 : h2; }
};

}  // namespace

TEST_CASE("round trip: Status v2 ok with a key_id, Encrypt gives that key_id and under 1 kB, Decrypt gives the plaintext") {
  softhsm_token t("kms-a");
  broker_process b({local_member(t)});
  b.start();
  create_key(b, "kek");
  std::string first_id;
  {
    plugin_process p(b.socket_path(), "kek");
    kms_client k(p.socket());
    REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), k.status().healthz() << "\n" << p.log_tail());
    auto st = k.status();
    CHECK(st.version() == "v2");
    CHECK(st.key_id().size() == 32);
    CHECK(st.key_id().find_first_not_of("0123456789abcdef") == std::string::npos);
    v2::EncryptResponse e;
    auto s = k.encrypt(dek(1), e);
    REQUIRE_MESSAGE(s.ok(), s.error_message());
    CHECK(e.key_id() == st.key_id());
    CHECK(e.ciphertext().size() <= 1024);
    CHECK(e.ciphertext().find(dek(1)) == std::string::npos);
    MESSAGE("ciphertext of a 32-byte DEK: " << e.ciphertext().size() << " bytes");
    std::string plain;
    s = k.decrypt(e.ciphertext(), e.key_id(), &plain);
    REQUIRE_MESSAGE(s.ok(), s.error_message());
    CHECK(plain == dek(1));
    first_id = st.key_id();
    // SIGTERM with the client's connection still open (as the apiserver's always is): a clean
    // exit at once, not after a shutdown deadline.
    auto stopping = std::chrono::steady_clock::now();
    int status = p.stop();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(std::chrono::steady_clock::now() - stopping < 2s);
    CHECK(!std::filesystem::exists(p.socket()));
  }
  // Stable: a new plugin process (and a restarted broker) gives the same key_id.
  b.stop();
  b.start();
  plugin_process p(b.socket_path(), "kek");
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), p.log_tail());
  CHECK(k.status().key_id() == first_id);
}

TEST_CASE("rotation: a new key_id from Status and Encrypt; ciphertexts of every version still decrypt") {
  softhsm_token t("kms-rot");
  broker_process b({local_member(t)});
  b.start();
  create_key(b, "kek");
  plugin_process p(b.socket_path(), "kek");
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), p.log_tail());
  auto id1 = k.status().key_id();
  v2::EncryptResponse e1;
  REQUIRE(k.encrypt(dek(1), e1).ok());
  CHECK(e1.key_id() == id1);

  auto c = b.unix_client();
  REQUIRE(call(c, "POST", "/v1/transit/keys/kek/rotate").status == 200);
  // Status notices within its cache time (1 s); Encrypt at once.
  v2::EncryptResponse e2;
  REQUIRE(k.encrypt(dek(2), e2).ok());
  CHECK(e2.key_id() != id1);
  REQUIRE_MESSAGE(eventually([&] { return k.status().key_id() == e2.key_id(); }, 5s), p.log_tail());
  CHECK(e2.ciphertext().starts_with("vault:v2:"));

  std::string plain;
  REQUIRE(k.decrypt(e1.ciphertext(), e1.key_id(), &plain).ok());
  CHECK(plain == dek(1));
  REQUIRE(k.decrypt(e2.ciphertext(), e2.key_id(), &plain).ok());
  CHECK(plain == dek(2));
  // Each ciphertext goes with its own key_id only.
  CHECK(k.decrypt(e1.ciphertext(), e2.key_id(), nullptr).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  // A third version, rotated while the plugin was not looking: old ids still accepted, never reused.
  REQUIRE(call(c, "POST", "/v1/transit/keys/kek/rotate").status == 200);
  v2::EncryptResponse e3;
  REQUIRE(k.encrypt(dek(3), e3).ok());
  CHECK(e3.key_id() != id1);
  CHECK(e3.key_id() != e2.key_id());
  REQUIRE(k.decrypt(e1.ciphertext(), e1.key_id(), &plain).ok());
  CHECK(plain == dek(1));
}

TEST_CASE("refusals: unknown key_id, a foreign or tampered ciphertext, annotations, bad plaintexts; a missing or wrong key is unhealthy") {
  softhsm_token t("kms-bad");
  broker_process b({local_member(t)});
  b.start();
  create_key(b, "kek");
  create_key(b, "other");
  create_key(b, "signer", "ecdsa-p256");
  plugin_process p(b.socket_path(), "kek");
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), p.log_tail());
  v2::EncryptResponse e;
  REQUIRE(k.encrypt(dek(1), e).ok());

  auto s = k.decrypt(e.ciphertext(), "0123456789abcdef0123456789abcdef", nullptr);
  CHECK(s.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_MESSAGE(s.error_message().find("unknown key_id") != std::string::npos, s.error_message());
  CHECK(k.decrypt(e.ciphertext(), "", nullptr).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // A version the key never had.
  std::string future = "vault:v9" + e.ciphertext().substr(7);
  CHECK(k.decrypt(future, e.key_id(), nullptr).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // The ids of another key's plugin are not this key's.
  {
    plugin_process other(b.socket_path(), "other");
    kms_client ko(other.socket());
    v2::EncryptResponse eo;
    REQUIRE_MESSAGE(ko.encrypt(dek(2), eo).ok(), other.log_tail());
    CHECK(eo.key_id() != e.key_id());
    CHECK(k.decrypt(eo.ciphertext(), eo.key_id(), nullptr).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  CHECK(k.decrypt("not a ciphertext", e.key_id(), nullptr).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  std::string tampered = e.ciphertext();
  tampered[tampered.size() - 3] = tampered[tampered.size() - 3] == 'A' ? 'B' : 'A';
  CHECK(k.decrypt(tampered, e.key_id(), nullptr).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  {
    grpc::ClientContext ctx;
    v2::DecryptRequest q;
    q.set_ciphertext(e.ciphertext());
    q.set_key_id(e.key_id());
    (*q.mutable_annotations())["key.example.com"] = "x";
    v2::DecryptResponse r;
    CHECK(k.stub->Decrypt(&ctx, q, &r).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  }
  v2::EncryptResponse r;
  CHECK(k.encrypt("", r).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(k.encrypt(std::string(513, 'x'), r).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // The original still decrypts after all that.
  std::string plain;
  CHECK(k.decrypt(e.ciphertext(), e.key_id(), &plain).ok());
  CHECK(plain == dek(1));

  // No such key: Status says so (the plugin never creates a key), Encrypt is refused.
  plugin_process missing(b.socket_path(), "no-such-key");
  kms_client km(missing.socket());
  auto st = km.status();
  CHECK(st.version() == "v2");
  CHECK(st.healthz() != "ok");
  CHECK_MESSAGE(st.healthz().find("404") != std::string::npos, st.healthz());
  CHECK(km.encrypt(dek(1), r).error_code() == grpc::StatusCode::NOT_FOUND);
  // A key of the wrong type.
  plugin_process wrong(b.socket_path(), "signer");
  kms_client kw(wrong.socket());
  st = kw.status();
  CHECK(st.healthz() != "ok");
  MESSAGE("wrong key type: " << st.healthz());

  // Bad command lines exit 2 with a message.
  std::string out;
  CHECK(run_command(std::string(HSMB_BIN_DIR) + "/hsm-kms-plugin --listen /tmp/x.sock --key kek 2>&1", &out) != 0);
  CHECK_MESSAGE(out.find("--broker-socket is required") != std::string::npos, out);
  CHECK(run_command(std::string(HSMB_BIN_DIR) + "/hsm-kms-plugin --listen /tmp/x.sock --broker-socket /x --key 'a/b' 2>&1", &out) != 0);
  CHECK_MESSAGE(out.find("not a valid key name") != std::string::npos, out);
}

TEST_CASE("a token from --token-file is sent to a broker with auth; a broker without it refuses") {
  softhsm_token t("kms-auth");
  temp_dir dir{"hsmb-kms-token"};
  // sha256("kms-test-token")
  std::string token = "kms-test-token";
  std::string out;
  REQUIRE(run_command("printf %s " + token + " | sha256sum | cut -d' ' -f1", &out) == 0);
  out.erase(out.find_last_not_of(" \n") + 1);
  std::string auth = "auth:\n  tokens:\n    - { name: kms, sha256: \"" + out + "\", policies: [kms] }\n"
                     "  unix:\n    - { uid: " + std::to_string(::getuid()) + ", policies: [admin] }\n"
                     "policies:\n  kms:\n    - { path: \"transit/encrypt/kek\", capabilities: [update] }\n"
                     "    - { path: \"transit/decrypt/kek\", capabilities: [update] }\n"
                     "    - { path: \"transit/keys/kek\", capabilities: [read] }\n"
                     "  admin:\n    - { path: \"*\", capabilities: [create, read, update, delete, list, sudo] }\n";
  broker_process b({local_member(t)}, auth);
  b.start();
  create_key(b, "kek");
  create_key(b, "kek2");
  auto file = (dir.path / "token").string();
  { std::ofstream(file) << token << "\n"; }
  plugin_process p(b.socket_path(), "kek", file);
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), k.status().healthz() << "\n" << p.log_tail());
  v2::EncryptResponse e;
  REQUIRE(k.encrypt(dek(1), e).ok());
  std::string plain;
  REQUIRE(k.decrypt(e.ciphertext(), e.key_id(), &plain).ok());
  CHECK(plain == dek(1));
  // The token's policy does not cover kek2: Status names the refusal, Encrypt is PERMISSION_DENIED.
  plugin_process denied(b.socket_path(), "kek2", file);
  kms_client kd(denied.socket());
  CHECK_MESSAGE(kd.status().healthz().find("403") != std::string::npos, kd.status().healthz());
  CHECK(kd.encrypt(dek(1), e).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("healthz is not ok while no member serves, and ok again when one returns") {
  two_fault_hsms env;
  auto& b = *env.broker;
  plugin_process p(b.socket_path(), "kek");
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), p.log_tail());
  auto id = k.status().key_id();
  env[0].down();
  env[1].down();
  REQUIRE_MESSAGE(eventually([&] { return !healthy(k); }, 10s), p.log_tail());
  auto st = k.status();
  MESSAGE("no member: healthz \"" << st.healthz() << "\"");
  CHECK(st.version() == "v2");
  CHECK(st.key_id() == id);  // the last key known, while unhealthy
  v2::EncryptResponse e;
  CHECK(k.encrypt(dek(1), e, 2s).error_code() != grpc::StatusCode::OK);
  env[1].up();
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 15s), k.status().healthz() << "\n" << b.log_tail());
  CHECK(k.status().key_id() == id);

  // A hung broker: Status still answers, within the apiserver's 3 s, and not "ok".
  b.signal(SIGSTOP);
  bool answered_in_time = true;
  bool unhealthy = eventually([&] {
    auto start = std::chrono::steady_clock::now();
    grpc::Status rpc;
    auto st = k.status(&rpc);
    answered_in_time = answered_in_time && rpc.ok() && std::chrono::steady_clock::now() - start < 3s;
    return st.healthz() != "ok";
  }, 10s);
  b.signal(SIGCONT);
  CHECK(unhealthy);
  CHECK(answered_in_time);
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), k.status().healthz());
}

TEST_CASE("Decrypts under load through a broker restart and a supervisor hand-off: none fails") {
  softhsm_token t("kms-restart");
  broker_process b({local_member(t)});
  b.start();
  create_key(b, "kek");
  plugin_process p(b.socket_path(), "kek");
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), p.log_tail());
  auto samples = encrypt_samples(k, 16);
  {
    decrypt_load load(p.socket(), samples, 4, 3s);  // the apiserver's default KMS timeout
    REQUIRE(eventually([&] { return load.sent() > 200; }, 10s));
    b.stop();  // SIGTERM: the broker drains and exits; requests wait for the next one
    b.start();
    int at = load.sent();
    REQUIRE_MESSAGE(eventually([&] { return load.sent() > at + 200; }, 15s), p.log_tail());
    load.stop();
    CHECK_MESSAGE(load.failed() == 0, load.summary() << "\n" << p.log_tail());
    MESSAGE("broker restart: " << load.summary());
  }
  b.stop();
  // The same token under hsm-supervisor: two hand-offs (SIGHUP) under load.
  broker_process s({local_member(t)},
                   "supervisor: { restart_interval: 1h, drain_timeout: 5s }\n");
  s.use_supervisor();
  s.start();
  plugin_process ps(s.socket_path(), "kek");
  kms_client ks(ps.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(ks); }, 10s), ps.log_tail());
  decrypt_load load(ps.socket(), samples, 4, 3s);
  REQUIRE(eventually([&] { return load.sent() > 200; }, 10s));
  for (int gen = 2; gen <= 3; ++gen) {
    s.signal(SIGHUP);
    REQUIRE_MESSAGE(s.await_notification("STATUS=generation " + std::to_string(gen) + ": serving", 15s), s.log_tail());
    int at = load.sent();
    REQUIRE(eventually([&] { return load.sent() > at + 200; }, 10s));
  }
  load.stop();
  CHECK_MESSAGE(load.failed() == 0, load.summary() << "\n" << ps.log_tail());
  MESSAGE("supervisor hand-offs: " << load.summary());
}

TEST_CASE("Decrypts under load while HSMs fail, hang and return in turn: none fails") {
  two_fault_hsms env;
  auto& b = *env.broker;
  plugin_process p(b.socket_path(), "kek");
  kms_client k(p.socket());
  REQUIRE_MESSAGE(eventually([&] { return healthy(k); }, 10s), p.log_tail());
  auto samples = encrypt_samples(k, 16);
  decrypt_load load(p.socket(), samples, 4, 3s);  // the apiserver's default KMS timeout
  REQUIRE(eventually([&] { return load.sent() > 200; }, 10s));
  // hsm1 fails and returns, then hsm2 (the seeds' story), then hsm1 hangs and returns.
  for (int step = 0; step < 3; ++step) {
    auto& hsm = env[static_cast<std::size_t>(step % 2)];
    std::string name = step % 2 == 0 ? "hsm1" : "hsm2";
    if (step < 2) {
      hsm.down();
      REQUIRE_MESSAGE(eventually([&] { return member_state(b, name) == "down"; }, 5s), b.log_tail());
    } else {
      hsm.hang();
      REQUIRE_MESSAGE(eventually([&] { return member_state(b, name) != "serving"; }, 5s), b.log_tail());
    }
    int at = load.sent();
    REQUIRE(eventually([&] { return load.sent() > at + 200; }, 10s));  // served on without it
    hsm.up();
    REQUIRE_MESSAGE(eventually([&] { return member_state(b, name) == "serving"; }, 10s), b.log_tail());
  }
  load.stop();
  CHECK_MESSAGE(load.failed() == 0, load.summary() << "\n" << p.log_tail());
  MESSAGE("HSM failover: " << load.summary());
}
