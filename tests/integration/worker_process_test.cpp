// hsm-worker as a real process over a socketpair: hello, pipelined requests, errors, exit codes.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <optional>

#include "hsm_backends/hsm_error.h"
#include "hsm_backends/wire/frame.h"
#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/messages.h"
#include "tests/lib/softhsm_token.h"

using namespace hsmb;
using namespace std::chrono_literals;

namespace {

constexpr int timeout_ms = 20000;

// One token for the run; SOFTHSM2_CONF is set before any worker inherits our environment.
test::softhsm_token& token() {
  static test::softhsm_token t;
  static bool conf_set = (t.use_conf(), true);
  (void)conf_set;
  return t;
}

struct frame {
  wire::frame_header header;
  bytes payload;
};

// A worker child process on one end of a socketpair, reaped on destruction.
class worker_process {
 public:
  worker_process() {
    token();  // SOFTHSM2_CONF is in our environment before the child inherits it
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      if (sv[1] == 3) fcntl(3, F_SETFD, 0);
      else dup2(sv[1], 3);  // dup2 clears FD_CLOEXEC on the copy
      execl(HSM_WORKER_PATH, "hsm-worker", "--fd", "3", static_cast<char*>(nullptr));
      _exit(127);
    }
    close(sv[1]);
    fd_ = sv[0];
    pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
    REQUIRE(pidfd_ >= 0);
  }
  ~worker_process() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
    close(pidfd_);
  }

  void send_raw(const std::uint8_t* data, std::size_t size) {
    REQUIRE(::write(fd_, data, size) == static_cast<ssize_t>(size));
  }
  void send(wire::op o, std::uint64_t id, byte_view payload) {
    bytes out(wire::header_size);
    wire::encode_header({static_cast<std::uint32_t>(payload.size()), o, wire::status::ok, id}, out.data());
    out.insert(out.end(), payload.begin(), payload.end());
    send_raw(out.data(), out.size());
  }

  std::optional<frame> receive() {
    std::uint8_t raw[wire::header_size];
    if (!read_exact(raw, sizeof raw)) return std::nullopt;
    auto h = wire::decode_header(raw);
    REQUIRE(h.has_value());
    frame f{*h, bytes(h->payload_size)};
    if (!read_exact(f.payload.data(), f.payload.size())) return std::nullopt;
    return f;
  }

  frame call(wire::op o, std::uint64_t id, byte_view payload) {
    send(o, id, payload);
    auto f = receive();
    REQUIRE(f.has_value());
    CHECK(f->header.id == id);
    CHECK(f->header.operation == o);
    return *f;
  }

  token_description hello(const std::string& pin) {
    member_settings s;
    s.module = test::softhsm_token::module_path();
    s.token_label = token().label();
    s.pin = pin.c_str();
    s.sessions = 4;
    bytes p;
    wire::encode_hello(p, s);
    frame f = call(wire::op::hello, 1, p);
    if (f.header.result != wire::status::ok) FAIL(wire::decode_error(f.payload)->message);
    return *wire::decode_token(f.payload);
  }

  void close_socket() {
    close(fd_);
    fd_ = -1;
  }

  // The exit code once the process ends, or nullopt after the timeout.
  std::optional<int> wait_exit() {
    pollfd p{pidfd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    int status = 0;
    REQUIRE(waitpid(pid_, &status, 0) == pid_);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  bool read_exact(std::uint8_t* data, std::size_t size) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (std::size_t done = 0; done < size;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
      ssize_t n = ::read(fd_, data + done, size - done);
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  pid_t pid_ = -1;
  int fd_ = -1;
  int pidfd_ = -1;
};

hsm_error error_of(const frame& f) {
  REQUIRE(f.header.result == wire::status::error);
  auto e = wire::decode_error(f.payload);
  REQUIRE(e.has_value());
  return *e;
}

bytes ok_blob(const frame& f) {
  if (f.header.result != wire::status::ok) FAIL(error_of(f).message);
  auto b = wire::decode_blob(f.payload);
  REQUIRE(b.has_value());
  return *b;
}

bytes b(std::string_view s) { return bytes(s.begin(), s.end()); }

}  // namespace

TEST_CASE("hello opens the token, then pipelined requests are answered by id") {
  worker_process w;
  CHECK(w.hello(token().pin()).label == token().label());

  bytes p;
  wire::encode_generate_key(p, "pipe/v1", key_type::aes256_gcm96);
  frame gen = w.call(wire::op::generate_key, 2, p);
  REQUIRE(gen.header.result == wire::status::ok);
  CHECK(wire::decode_public_key(gen.payload)->k == public_key_blob::kind::none);

  constexpr int n = 50;
  for (int i = 0; i < n; ++i) {
    bytes req;
    wire::encode_cipher(req, "pipe/v1", b("message " + std::to_string(i)), b("aad"));
    w.send(wire::op::encrypt, 1000 + i, req);
  }
  std::map<std::uint64_t, bytes> sealed;
  for (int i = 0; i < n; ++i) {
    auto f = w.receive();
    REQUIRE(f.has_value());
    CHECK(f->header.operation == wire::op::encrypt);
    sealed[f->header.id] = ok_blob(*f);
  }
  REQUIRE(sealed.size() == n);
  CHECK(sealed.begin()->first == 1000);

  for (auto& [id, ct] : sealed) {
    bytes req;
    wire::encode_cipher(req, "pipe/v1", ct, b("aad"));
    w.send(wire::op::decrypt, id + 1000, req);
  }
  for (int i = 0; i < n; ++i) {
    auto f = w.receive();
    REQUIRE(f.has_value());
    CHECK(ok_blob(*f) == b("message " + std::to_string(f->header.id - 2000)));
  }

  bytes rnd;
  wire::encode_random(rnd, 33);
  CHECK(ok_blob(w.call(wire::op::random, 3, rnd)).size() == 33);
  CHECK(w.call(wire::op::probe, 4, {}).header.result == wire::status::ok);

  bytes bad_tag;
  bytes ct = sealed.begin()->second;
  ct.back() ^= 1;
  wire::encode_cipher(bad_tag, "pipe/v1", ct, b("aad"));
  CHECK(error_of(w.call(wire::op::decrypt, 5, bad_tag)).ckr == CKR_ENCRYPTED_DATA_INVALID);

  bytes del;
  wire::encode_label(del, "pipe/");
  frame destroyed = w.call(wire::op::destroy_objects, 6, del);
  CHECK(wire::decode_count(destroyed.payload) == 1u);
}

TEST_CASE("metadata and errors travel as frames") {
  worker_process w;
  w.hello(token().pin());
  bytes put;
  wire::encode_put_metadata(put, "wire-record", b("value"));
  CHECK(w.call(wire::op::put_metadata, 7, put).header.result == wire::status::ok);
  auto list = wire::decode_metadata_list(w.call(wire::op::list_metadata, 8, {}).payload);
  REQUIRE(list.has_value());
  bool found = false;
  for (auto& r : *list) found |= r.name == "wire-record" && r.value == b("value");
  CHECK(found);

  bytes sign;
  wire::encode_sign(sign, "missing", sign_mechanism::ecdsa, hash_alg::sha256, bytes(32));
  hsm_error e = error_of(w.call(wire::op::sign, 9, sign));
  CHECK(e.ckr == ckr_object_not_found);
  CHECK(e.message.find("missing") != std::string::npos);

  CHECK(error_of(w.call(wire::op::hello, 10, {})).ckr == ckr_bad_request);  // already open
}

TEST_CASE("an op before hello is refused, and a failed hello can be retried") {
  worker_process w;
  CHECK(error_of(w.call(wire::op::probe, 1, {})).ckr == ckr_bad_request);
  bytes rnd;
  wire::encode_random(rnd, 8);
  CHECK(error_of(w.call(wire::op::random, 2, rnd)).ckr == ckr_bad_request);

  member_settings s;
  s.module = test::softhsm_token::module_path();
  s.token_label = token().label();
  s.pin = "wrong-pin";
  bytes hello;
  wire::encode_hello(hello, s);
  CHECK(error_of(w.call(wire::op::hello, 3, hello)).ckr == CKR_PIN_INCORRECT);
  CHECK(w.hello(token().pin()).label == token().label());
}

TEST_CASE("a malformed payload is answered with an error and the worker keeps serving") {
  worker_process w;
  CHECK(error_of(w.call(wire::op::hello, 1, b("junk"))).ckr == ckr_bad_request);
  w.hello(token().pin());
  CHECK(error_of(w.call(wire::op::encrypt, 2, b("\x05\x00\x00"))).ckr == ckr_bad_request);
  CHECK(error_of(w.call(wire::op::probe, 3, b("extra"))).ckr == ckr_bad_request);
  bytes gen;
  wire::encode_generate_key(gen, "x", key_type::aes256_gcm96);
  gen.back() = 99;  // no such key type
  CHECK(error_of(w.call(wire::op::generate_key, 4, gen)).ckr == ckr_bad_request);
  CHECK(w.call(wire::op::probe, 5, {}).header.result == wire::status::ok);
}

TEST_CASE("closing the socket makes the worker exit 0; a broken header exits 2") {
  {
    worker_process w;
    w.hello(token().pin());
    w.close_socket();
    CHECK(w.wait_exit() == 0);
  }
  {
    worker_process w;
    std::uint8_t garbage[wire::header_size];
    std::memset(garbage, 0xff, sizeof garbage);
    w.send_raw(garbage, sizeof garbage);
    CHECK(w.wait_exit() == 2);
  }
}
