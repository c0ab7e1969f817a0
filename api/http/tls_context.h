// The TCP listener's TLS (listen.http.tls): an OpenSSL server context made once from PEM files
// at start; a new certificate is taken by the next broker generation. Asio's SSL types stay in
// the .cpp files that need them.
#pragma once

#include <memory>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace hsmb::api {

struct tls_files {
  std::string cert, key;  // PEM: the certificate (chain) and its private key
  std::string client_ca;  // PEM; when given, a client certificate it signed is required (mTLS)
};

class tls_context {
 public:
  // TLS 1.2 minimum, modern ciphers, no renegotiation or compression. Throws std::runtime_error
  // naming the configuration key of a bad file ("listen.http.tls.key: ..."), never its bytes.
  static std::shared_ptr<tls_context> load(const tls_files& files);
  ~tls_context();
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;

  boost::asio::ssl::context& asio_context() const { return *context_; }
  bool requires_client_cert() const { return requires_client_cert_; }

 private:
  tls_context();
  std::unique_ptr<boost::asio::ssl::context> context_;
  bool requires_client_cert_ = false;
};

}  // namespace hsmb::api
