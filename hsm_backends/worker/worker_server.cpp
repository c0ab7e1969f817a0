// Frame reading (leader/follower), op dispatch and answers of the worker process.
#include "hsm_backends/worker/worker_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/fd_io.h"
#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace {

using buffer = secure_bytes;  // responses may carry plaintext or random bytes

hsm_error bad_request(wire::op o) {
  return {ckr_bad_request, "malformed request payload for op " + std::to_string(static_cast<int>(o))};
}

template <class T, class Encode>
hsm_result<buffer> encoded(hsm_result<T>&& r, Encode encode) {
  if (!r) return std::unexpected(std::move(r.error()));
  buffer out;
  encode(out, *r);
  return out;
}

hsm_result<buffer> empty(hsm_result<void>&& r) {
  if (!r) return std::unexpected(std::move(r.error()));
  return buffer{};
}

auto blob = [](buffer& out, const auto& v) { wire::encode_blob(out, v); };

// Key copies and the cluster-key ceremony.
hsm_result<buffer> replication(hsm_backend& be, wire::op o, byte_view p) {
  using wire::op;
  switch (o) {
    case op::export_key: {
      auto r = wire::decode_generate_key(p);  // label and key type
      if (!r) return std::unexpected(bad_request(o));
      return encoded(be.export_key(r->label, r->type), wire::encode_wrapped_key<buffer>);
    }
    case op::import_key: {
      auto r = wire::decode_import_key(p);
      if (!r) return std::unexpected(bad_request(o));
      return empty(be.import_key(r->label, r->key));
    }
    case op::cluster_key_check:
      if (!p.empty()) return std::unexpected(bad_request(o));
      return encoded(be.cluster_key_check(), blob);
    case op::create_cluster_key:
      if (!p.empty()) return std::unexpected(bad_request(o));
      return empty(be.create_cluster_key());
    case op::create_transport_key:
      if (!p.empty()) return std::unexpected(bad_request(o));
      return encoded(be.create_transport_key(), wire::encode_public_key<buffer>);
    case op::export_cluster_key: {
      auto k = wire::decode_public_key(p);
      if (!k) return std::unexpected(bad_request(o));
      return encoded(be.export_cluster_key(*k), blob);
    }
    case op::import_cluster_key: {
      auto b = wire::decode_blob(p);
      if (!b) return std::unexpected(bad_request(o));
      return empty(be.import_cluster_key(*b));
    }
    default: break;
  }
  return std::unexpected(hsm_error{ckr_bad_request, "unexpected op"});
}

// Decodes one request, calls the backend, encodes the answer's payload.
hsm_result<buffer> execute(hsm_backend& be, wire::op o, byte_view p) {
  using wire::op;
  switch (o) {
    case op::probe:
      if (!p.empty()) return std::unexpected(bad_request(o));
      return empty(be.probe());
    case op::random: {
      auto n = wire::decode_random(p);
      if (!n) return std::unexpected(bad_request(o));
      if (*n > wire::max_payload - 4) return std::unexpected(hsm_error{CKR_ARGUMENTS_BAD, "random: too many bytes"});
      return encoded(be.random(*n), blob);
    }
    case op::generate_key: {
      auto r = wire::decode_generate_key(p);
      if (!r) return std::unexpected(bad_request(o));
      return encoded(be.generate_key(r->label, r->type), wire::encode_public_key<buffer>);
    }
    case op::public_key:
    case op::destroy_objects:
    case op::delete_metadata: {
      auto r = wire::decode_label(p);
      if (!r) return std::unexpected(bad_request(o));
      if (o == op::public_key) return encoded(be.public_key(r->label), wire::encode_public_key<buffer>);
      if (o == op::destroy_objects) return encoded(be.destroy_objects(r->label), wire::encode_count<buffer>);
      return empty(be.delete_metadata(r->label));
    }
    case op::list_metadata:
      if (!p.empty()) return std::unexpected(bad_request(o));
      return encoded(be.list_metadata(), wire::encode_metadata_list<buffer>);
    case op::put_metadata: {
      auto r = wire::decode_put_metadata(p);
      if (!r) return std::unexpected(bad_request(o));
      return empty(be.put_metadata(r->name, r->value));
    }
    case op::encrypt:
    case op::decrypt: {
      auto r = wire::decode_cipher(p);
      if (!r) return std::unexpected(bad_request(o));
      if (o == op::encrypt) return encoded(be.encrypt(r->label, r->data, r->aad), blob);
      return encoded(be.decrypt(r->label, r->data, r->aad), blob);
    }
    case op::sign: {
      auto r = wire::decode_sign(p);
      if (!r) return std::unexpected(bad_request(o));
      return encoded(be.sign(r->label, r->mechanism, r->hash, r->data), blob);
    }
    case op::hmac: {
      auto r = wire::decode_hmac(p);
      if (!r) return std::unexpected(bad_request(o));
      return encoded(be.hmac(r->label, r->hash, r->data), blob);
    }
    case op::key_check: {
      auto r = wire::decode_generate_key(p);  // the same fields: label and key type
      if (!r) return std::unexpected(bad_request(o));
      return encoded(be.key_check_value(r->label, r->type), blob);
    }
    case op::hello: break;
    default: return replication(be, o, p);
  }
  return std::unexpected(hsm_error{ckr_bad_request, "unexpected op"});
}

}  // namespace

void worker_log(std::string_view line) {
  std::fprintf(stderr, "hsm-worker[%d]: %.*s\n", static_cast<int>(getpid()), static_cast<int>(line.size()),
               line.data());
}

worker_server::~worker_server() {
  stopping_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

worker_server::read_status worker_server::next_frame(frame& out) {
  for (;;) {
    auto f = wire::peek_frame(byte_view(inbox_.data(), inbox_used_));
    if (f.is == wire::frame_at_front::state::broken) return read_status::broken;
    if (f.is == wire::frame_at_front::state::whole) {
      out.header = f.header;
      out.payload.assign(inbox_.begin() + wire::header_size, inbox_.begin() + static_cast<std::ptrdiff_t>(f.size));
      std::memmove(inbox_.data(), inbox_.data() + f.size, inbox_used_ - f.size);
      secure_wipe(inbox_.data() + inbox_used_ - f.size, f.size);
      inbox_used_ -= f.size;
      return read_status::ok;
    }
    inbox_.resize(std::max({inbox_.size(), f.size, std::size_t{64 * 1024}}));
    ssize_t n = ::read(fd_, inbox_.data() + inbox_used_, inbox_.size() - inbox_used_);
    if (n > 0) inbox_used_ += static_cast<std::size_t>(n);
    else if (n == 0) return read_status::eof;
    else if (errno != EINTR) {
      worker_log("read failed: " + std::string(std::strerror(errno)));
      return read_status::broken;
    }
  }
}

// Until a hello opens the backend: other ops are refused, a failed hello may be retried.
worker_server::read_status worker_server::hello() {
  for (;;) {
    frame f;
    if (auto r = next_frame(f); r != read_status::ok) return r;
    if (f.header.operation != wire::op::hello) {
      respond(f.header, std::unexpected(hsm_error{ckr_bad_request, "hello expected first"}));
      continue;
    }
    auto settings = wire::decode_hello(f.payload);
    secure_wipe(f.payload.data(), f.payload.size());  // it held the PIN
    if (!settings) {
      respond(f.header, std::unexpected(bad_request(f.header.operation)));
      continue;
    }
    auto token = backend_.open(*settings);
    if (!token) {
      worker_log("open failed: " + token.error().message);
      respond(f.header, std::unexpected(token.error()));
      continue;
    }
    std::uint32_t threads = std::max<std::uint32_t>(settings->sessions, 1);
    worker_log("serving token '" + token->label + "' with " + std::to_string(threads) + " sessions");
    respond(f.header, encoded(hsm_result<token_description>(std::move(*token)), wire::encode_token<buffer>));
    for (std::uint32_t i = 1; i < threads; ++i) threads_.emplace_back([this] { serve(); });
    return read_status::ok;
  }
}

int worker_server::run() {
  auto opened = hello();
  if (opened != read_status::ok) {
    worker_log(opened == read_status::eof ? "connection closed, exiting" : "malformed frame or read error, exiting");
    return opened == read_status::eof ? 0 : 2;
  }
  serve();
  for (auto& t : threads_) t.join();
  threads_.clear();
  return exit_code_;
}

void worker_server::serve() {
  frame f;
  for (;;) {
    read_status r;
    {
      std::lock_guard turn(read_mutex_);
      if (stopping_) return;
      r = next_frame(f);
      if (r != read_status::ok) {
        stopping_ = true;
        if (r == read_status::broken) exit_code_ = 2;
        worker_log(r == read_status::eof ? "connection closed, exiting" : "malformed frame or read error, exiting");
        ::shutdown(fd_, SHUT_RD);  // threads waiting for the turn see stopping_ and end
        return;
      }
    }
    if (f.header.operation == wire::op::hello) respond(f.header, std::unexpected(hsm_error{ckr_bad_request, "already open"}));
    else respond(f.header, execute(backend_, f.header.operation, f.payload));
    secure_wipe(f.payload.data(), f.payload.size());
  }
}

void worker_server::respond(const wire::frame_header& request, const hsm_result<secure_bytes>& result) {
  buffer frame(wire::header_size);
  bool ok = result.has_value() && result->size() <= wire::max_payload;
  if (ok) frame.insert(frame.end(), result->begin(), result->end());
  else if (result) wire::encode_error(frame, hsm_error{CKR_DATA_LEN_RANGE, "response too large"});
  else wire::encode_error(frame, result.error());
  wire::frame_header h{static_cast<std::uint32_t>(frame.size() - wire::header_size), request.operation,
                       ok ? wire::status::ok : wire::status::error, request.id};
  wire::encode_header(h, frame.data());
  std::lock_guard lock(write_mutex_);
  write_all(fd_, frame.data(), frame.size());  // a failed write means the broker is gone: run() sees EOF
}

}  // namespace hsmb
