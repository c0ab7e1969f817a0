// Frame loop, request queue and op dispatch of the worker process.
#include "hsm_backends/worker/worker_server.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "hsm_backends/pkcs11/p11.h"
#include "hsm_backends/wire/messages.h"

namespace hsmb {
namespace {

using buffer = secure_bytes;  // responses may carry plaintext or random bytes

// Queue overflow: the broker sent more than max_queued requests. Not device-class, since the
// member is healthy, just busy; the broker bounds in-flight requests well below this.
constexpr unsigned long ckr_queue_full = CKR_FUNCTION_CANCELED;

enum class read_result { ok, eof, error };

read_result read_full(int fd, std::uint8_t* data, std::size_t size) {
  for (std::size_t done = 0; done < size;) {
    ssize_t n = ::read(fd, data + done, size - done);
    if (n > 0) done += static_cast<std::size_t>(n);
    else if (n == 0) return read_result::eof;
    else if (errno != EINTR) return read_result::error;
  }
  return read_result::ok;
}

bool write_full(int fd, const std::uint8_t* data, std::size_t size) {
  for (std::size_t done = 0; done < size;) {
    ssize_t n = ::write(fd, data + done, size - done);
    if (n > 0) done += static_cast<std::size_t>(n);
    else if (n < 0 && errno != EINTR) return false;
  }
  return true;
}

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

worker_server::~worker_server() { stop(); }

int worker_server::run() {
  for (;;) {
    std::uint8_t raw[wire::header_size];
    read_result r = read_full(fd_, raw, sizeof raw);
    auto header = r == read_result::ok ? wire::decode_header(raw) : std::nullopt;
    secure_bytes payload(header ? header->payload_size : 0);
    if (header) r = read_full(fd_, payload.data(), payload.size());
    if (r == read_result::eof) {
      worker_log("connection closed, exiting");
      return 0;
    }
    if (r == read_result::error || !header) {
      worker_log(r == read_result::error ? "read failed: " + std::string(std::strerror(errno))
                                         : std::string("malformed frame header, exiting"));
      return 2;
    }
    dispatch(*header, std::move(payload));
  }
}

void worker_server::dispatch(const wire::frame_header& h, secure_bytes payload) {
  if (h.operation == wire::op::hello && !open_) return hello(h, payload);
  if (!open_) return respond(h, std::unexpected(hsm_error{ckr_bad_request, "hello expected first"}));
  if (h.operation == wire::op::hello) return respond(h, std::unexpected(hsm_error{ckr_bad_request, "already open"}));
  enqueue(h, std::move(payload));
}

void worker_server::hello(const wire::frame_header& h, byte_view payload) {
  auto settings = wire::decode_hello(payload);
  if (!settings) return respond(h, std::unexpected(bad_request(h.operation)));
  auto token = backend_.open(*settings);
  if (!token) {
    worker_log("open failed: " + token.error().message);
    return respond(h, std::unexpected(token.error()));
  }
  open_ = true;
  std::uint32_t threads = std::max<std::uint32_t>(settings->sessions, 1);
  for (std::uint32_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  worker_log("serving token '" + token->label + "' with " + std::to_string(threads) + " sessions");
  respond(h, encoded(hsm_result<token_description>(std::move(*token)), wire::encode_token<buffer>));
}

void worker_server::enqueue(const wire::frame_header& h, secure_bytes payload) {
  {
    std::lock_guard lock(queue_mutex_);
    if (queue_.size() < max_queued) {
      queue_.push_back({h, std::move(payload)});
      queued_.notify_one();
      return;
    }
  }
  respond(h, std::unexpected(hsm_error{ckr_queue_full, "worker queue full"}));
}

void worker_server::work() {
  for (;;) {
    job j;
    {
      std::unique_lock lock(queue_mutex_);
      queued_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      j = std::move(queue_.front());
      queue_.pop_front();
    }
    respond(j.header, execute(backend_, j.header.operation, j.payload));
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
  write_full(fd_, frame.data(), frame.size());  // a failed write means the broker is gone: run() sees EOF
}

void worker_server::stop() {
  {
    std::lock_guard lock(queue_mutex_);
    stopping_ = true;
  }
  queued_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

}  // namespace hsmb
