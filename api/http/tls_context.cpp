#include "api/http/tls_context.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>

#include "common/bytes.h"
#include "common/config_error.h"

namespace hsmb::api {
namespace {

namespace ssl = boost::asio::ssl;

// Mozilla's "intermediate" TLS 1.2 suites (forward secrecy, AEAD only); TLS 1.3 keeps its defaults.
constexpr const char* tls12_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr std::size_t max_key_file = 1u << 20;

[[noreturn]] void fail(const std::string& key, const std::string& file, const std::string& why) {
  throw config_error("listen.http.tls." + key + ": cannot use " + file + ": " + why);
}

// OpenSSL's reason for the last failure (its queue is cleared): names a format, never key bytes.
std::string openssl_reason() {
  unsigned long code = ERR_peek_last_error();
  ERR_clear_error();
  if (code == 0) return "not accepted by OpenSSL";
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : "error " + std::to_string(code);
}

// The private key file, straight into wiping memory: no stream buffer keeps a copy.
secure_bytes read_key_file(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("key", file, std::strerror(errno));
  secure_bytes out;
  out.reserve(16u << 10);
  std::array<std::uint8_t, 4096> chunk;
  ssize_t n = 0;
  while (out.size() <= max_key_file && ((n = ::read(fd, chunk.data(), chunk.size())) > 0 || (n < 0 && errno == EINTR)))
    if (n > 0) out.insert(out.end(), chunk.begin(), chunk.begin() + n);
  int read_errno = errno;
  secure_wipe(chunk.data(), chunk.size());
  ::close(fd);
  if (n < 0) fail("key", file, std::strerror(read_errno));
  if (out.size() > max_key_file) fail("key", file, "larger than a key file (1 MiB)");
  return out;
}

void require_readable(const std::string& key, const std::string& file) {
  if (::access(file.c_str(), R_OK) != 0) fail(key, file, std::strerror(errno));
}

void harden(ssl::context& c) {
  SSL_CTX* ctx = c.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(ctx, tls12_ciphers);
}

void use_certificate(ssl::context& c, const std::string& file) {
  require_readable("cert", file);
  if (SSL_CTX_use_certificate_chain_file(c.native_handle(), file.c_str()) != 1) fail("cert", file, openssl_reason());
}

void use_key(ssl::context& c, const std::string& file) {
  auto pem = read_key_file(file);
  boost::system::error_code ec;
  c.use_private_key(boost::asio::buffer(pem.data(), pem.size()), ssl::context::pem, ec);
  ERR_clear_error();  // Asio has taken the reason into ec
  if (ec && ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == X509_R_KEY_VALUES_MISMATCH)
    fail("key", file, "does not match the certificate");
  if (ec) fail("key", file, ec.message());
  if (SSL_CTX_check_private_key(c.native_handle()) != 1) fail("key", file, "does not match the certificate");
}

// mTLS: a client certificate signed by this CA is required; the list is also sent to clients.
void require_client_cert(ssl::context& c, const std::string& file) {
  require_readable("client_ca", file);
  SSL_CTX* ctx = c.native_handle();
  if (SSL_CTX_load_verify_locations(ctx, file.c_str(), nullptr) != 1) fail("client_ca", file, openssl_reason());
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(file.c_str());
  if (!names) fail("client_ca", file, "holds no certificate");
  SSL_CTX_set_client_CA_list(ctx, names);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // Resumed sessions are bound to this context (OpenSSL refuses resumption with verification otherwise).
  static constexpr unsigned char id[] = "hsm-broker";
  SSL_CTX_set_session_id_context(ctx, id, sizeof id - 1);
}

}  // namespace

tls_context::tls_context() : context_(std::make_unique<ssl::context>(ssl::context::tls_server)) {}
tls_context::~tls_context() = default;

std::shared_ptr<tls_context> tls_context::load(const tls_files& files) {
  std::shared_ptr<tls_context> out(new tls_context());
  ERR_clear_error();
  harden(*out->context_);
  use_certificate(*out->context_, files.cert);
  use_key(*out->context_, files.key);
  if (!files.client_ca.empty()) {
    require_client_cert(*out->context_, files.client_ca);
    out->requires_client_cert_ = true;
  }
  return out;
}

}  // namespace hsmb::api
