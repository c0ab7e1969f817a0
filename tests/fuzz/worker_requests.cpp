// The worker's side of the protocol: a real worker_server (hsm_backends/worker/worker_server.cpp)
// reads the fuzzer's bytes as the frames a broker sends, with a stand-in backend, and answers.
// It must not crash or hang, and what it writes back must be whole, well-formed frames, each
// answering a request that was sent (same id and op).
//
// Input: the byte stream the broker would write (frames: hello, then requests).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <thread>
#include <utility>

#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/frame.h"
#include "hsm_backends/wire/messages.h"
#include "hsm_backends/worker/worker_server.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb;

namespace {

// Answers everything from its arguments alone; a label starting with '!' fails, as an HSM would.
class fake_backend : public hsm_backend {
 public:
  hsm_result<token_description> open(const member_settings& s) override {
    if (s.sessions > 4) return fail("too many sessions for the fuzz target");  // threads per input
    if (s.pin == "wrong") return std::unexpected(hsm_error{CKR_PIN_INCORRECT, "pin incorrect"});
    return token_description{s.token_label, "hsm-broker", "fuzz", "1", {CKM_AES_GCM, CKM_ECDSA}};
  }
  hsm_result<void> probe() override { return {}; }
  hsm_result<secure_bytes> random(std::size_t n) override {
    if (n > 65536) return fail("random: too many bytes for the fuzz target");
    return secure_bytes(n, 0x5a);
  }
  hsm_result<public_key_blob> generate_key(const std::string& label, key_type type) override {
    if (bad(label)) return fail("generate");
    return blob_for(label, type);
  }
  hsm_result<public_key_blob> public_key(const std::string& label) override {
    if (bad(label)) return std::unexpected(hsm_error{ckr_object_not_found, "no such object"});
    return blob_for(label, key_type::ecdsa_p256);
  }
  hsm_result<std::uint32_t> destroy_objects(const std::string& prefix) override {
    if (bad(prefix)) return fail("destroy");
    return static_cast<std::uint32_t>(prefix.size());
  }
  hsm_result<std::vector<metadata_record>> list_metadata() override {
    return std::vector<metadata_record>{{"a", bytes{'{', '}'}}, {"b", {}}};
  }
  hsm_result<void> put_metadata(const std::string& name, byte_view) override {
    if (bad(name)) return fail("put");
    return {};
  }
  hsm_result<void> delete_metadata(const std::string& name) override {
    if (bad(name)) return fail("delete");
    return {};
  }
  hsm_result<bytes> encrypt(const std::string& label, byte_view plaintext, byte_view) override {
    if (bad(label)) return fail("encrypt");
    bytes out(12, 0);
    out.insert(out.end(), plaintext.begin(), plaintext.end());
    out.resize(out.size() + 16, 0);
    return out;
  }
  hsm_result<secure_bytes> decrypt(const std::string& label, byte_view sealed, byte_view) override {
    if (bad(label)) return fail("decrypt");
    if (sealed.size() < 28) return std::unexpected(hsm_error{CKR_ENCRYPTED_DATA_LEN_RANGE, "too short"});
    return secure_bytes(sealed.begin() + 12, sealed.end() - 16);
  }
  hsm_result<bytes> sign(const std::string& label, sign_mechanism m, hash_alg, byte_view, std::uint32_t) override {
    if (bad(label)) return fail("sign");
    return bytes(m == sign_mechanism::ecdsa ? 64 : 256, 1);
  }
  hsm_result<bytes> hmac(const std::string& label, hash_alg, byte_view) override {
    if (bad(label)) return fail("hmac");
    return bytes(32, 2);
  }
  hsm_result<bytes> key_check_value(const std::string& label, key_type) override {
    if (bad(label)) return fail("kcv");
    return bytes(16, 3);
  }
  hsm_result<wrapped_key> export_key(const std::string& label, key_type type) override {
    if (bad(label)) return fail("export");
    return wrapped_key{type, bytes(40, 4), blob_for(label, type)};
  }
  hsm_result<void> import_key(const std::string& label, const wrapped_key&) override {
    if (bad(label)) return std::unexpected(hsm_error{ckr_object_exists, "exists"});
    return {};
  }
  hsm_result<bytes> cluster_key_check() override { return bytes(16, 5); }
  hsm_result<void> create_cluster_key() override { return fail("no SO PIN"); }
  hsm_result<public_key_blob> create_transport_key() override { return blob_for("transport", key_type::rsa_3072); }
  hsm_result<bytes> export_cluster_key(const public_key_blob& transport) override {
    if (transport.k != public_key_blob::kind::rsa) return fail("not an RSA key");
    return bytes(384, 6);
  }
  hsm_result<void> import_cluster_key(byte_view wrapped) override {
    if (wrapped.empty()) return fail("empty");
    return {};
  }

 private:
  static bool bad(const std::string& label) { return !label.empty() && label[0] == '!'; }
  static std::unexpected<hsm_error> fail(std::string why) {
    return std::unexpected(hsm_error{CKR_FUNCTION_FAILED, std::move(why)});
  }
  static public_key_blob blob_for(const std::string& label, key_type type) {
    public_key_blob b;
    b.k = is_rsa(type) ? public_key_blob::kind::rsa
          : type == key_type::ed25519 ? public_key_blob::kind::eddsa
          : is_ecdsa(type) ? public_key_blob::kind::ec
                           : public_key_blob::kind::none;
    b.a.assign(label.begin(), label.end());
    b.b.assign(32, 7);
    return b;
  }
};

// The broker's end: writes the input, reads every answer, checks each against the requests sent.
void broker_end(int fd, byte_view input) {
  std::multimap<std::uint64_t, wire::op> requests;
  for (std::size_t at = 0;;) {
    auto f = wire::peek_frame(input.subspan(at));
    if (f.is != wire::frame_at_front::state::whole) break;
    requests.emplace(f.header.id, f.header.operation);
    at += f.size;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::size_t sent = 0;
  bool write_open = true;
  secure_bytes answers;
  std::size_t taken = 0;
  std::uint8_t chunk[65536];
  for (;;) {
    if (write_open && sent == input.size()) {
      ::shutdown(fd, SHUT_WR);  // the worker sees EOF after the last request
      write_open = false;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write_open ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 1000) < 0) continue;
    if (write_open && (p.revents & POLLOUT)) {
      ssize_t n = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) write_open = false;  // the worker stopped reading
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::read(fd, chunk, sizeof chunk);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;
      if (n > 0) answers.insert(answers.end(), chunk, chunk + n);
    }
    for (;;) {
      auto f = wire::peek_frame(byte_view(answers).subspan(taken));
      FUZZ_CHECK(f.is != wire::frame_at_front::state::broken);
      if (f.is == wire::frame_at_front::state::partial) break;
      auto it = requests.find(f.header.id);
      while (it != requests.end() && it->first == f.header.id && it->second != f.header.operation) ++it;
      FUZZ_CHECK(it != requests.end() && it->first == f.header.id);  // answers a request, once
      requests.erase(it);
      auto payload = byte_view(answers).subspan(taken + wire::header_size, f.header.payload_size);
      if (f.header.result == wire::status::error) FUZZ_CHECK(wire::decode_error(payload));
      taken += f.size;
    }
  }
  FUZZ_CHECK(taken == answers.size());  // nothing but whole frames
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static bool once = (::signal(SIGPIPE, SIG_IGN), true);
  (void)once;
  int sv[2];
  FUZZ_CHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  std::thread broker([&] { broker_end(sv[0], byte_view(data, size)); });
  {
    fake_backend backend;
    worker_server server(sv[1], backend);
    int rc = server.run();
    FUZZ_CHECK(rc == 0 || rc == 2);
  }
  ::close(sv[1]);  // the broker's end reads EOF after the last answer
  broker.join();
  ::close(sv[0]);
  return 0;
}
