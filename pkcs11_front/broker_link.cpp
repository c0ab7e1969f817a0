#include "pkcs11_front/broker_link.h"

#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <thread>

#include <boost/json/parse.hpp>

#include "common/duration.h"

namespace hsmb::p11 {
namespace json = boost::json;
namespace {

constexpr std::size_t max_idle = 8;

answer to_answer(http_response r) {
  answer a{r.status, nullptr, {}};
  boost::system::error_code ec;
  if (!r.body.empty()) a.body = json::parse(r.body, ec);
  if (ec) a.body = nullptr;
  if (auto* o = a.body.if_object())
    if (auto* e = o->if_contains("errors"); e && e->is_array() && !e->as_array().empty() && e->as_array()[0].is_string())
      a.error = std::string(e->as_array()[0].as_string());
  if (a.error.empty() && r.status >= 400) a.error = "HTTP " + std::to_string(r.status);
  return a;
}

secure_string request_text(std::string_view method, std::string_view path, std::string_view body,
                           const secure_string* token) {
  secure_string req;
  req.reserve(256 + body.size());
  req += method;
  req += ' ';
  req += path;
  req += " HTTP/1.1\r\nHost: hsm-broker\r\nUser-Agent: hsm-broker-pkcs11\r\nX-Vault-Request: true\r\n";
  if (token && !token->empty()) {
    req += "X-Vault-Token: ";
    req += *token;
    req += "\r\n";
  }
  if (!body.empty()) req += "Content-Type: application/json\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  req += body;
  return req;
}

// Waits before the next attempt, never past the deadline; the wait doubles up to 250 ms.
void pause(std::chrono::milliseconds& backoff, clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
  std::this_thread::sleep_for(std::clamp(left, std::chrono::milliseconds(0), backoff));
  backoff = std::min(backoff * 2, std::chrono::milliseconds(250));
}

}  // namespace

const json::value* answer::data() const {
  auto* o = body.if_object();
  return o ? o->if_contains("data") : nullptr;
}

std::expected<link_settings, std::string> link_settings::from_environment() {
  link_settings s;
  if (const char* v = ::getenv("HSM_BROKER_SOCKET"); v && *v) s.socket = v;
  if (const char* v = ::getenv("HSM_BROKER_TOKEN"); v && *v) s.token = secure_string(v);
  if (const char* v = ::getenv("HSM_BROKER_TIMEOUT"); v && *v) {
    auto d = parse_duration(v);
    if (!d || d->count() <= 0) return std::unexpected(std::string("HSM_BROKER_TIMEOUT: not a duration (\"15s\", \"500ms\")"));
    s.deadline = *d;
  }
  return s;
}

broker_link::~broker_link() = default;

std::optional<connection> broker_link::take_idle() {
  lock_guard g(lock_);
  if (idle_.empty()) return std::nullopt;
  connection c = std::move(idle_.back());
  idle_.pop_back();
  return c;
}

void broker_link::give_back(connection c) {
  lock_guard g(lock_);
  if (idle_.size() < max_idle) idle_.push_back(std::move(c));
}

void broker_link::forget_after_fork() {
  for (auto& c : idle_) c.forget_after_fork();
  idle_.clear();
}

std::expected<answer, CK_RV> broker_link::call(std::string_view method, std::string_view path, std::string_view body,
                                               const secure_string* token) {
  auto deadline = clock::now() + settings_.deadline;
  const secure_string* use = token && !token->empty() ? token : &settings_.token;
  auto req = request_text(method, path, body, use);
  auto backoff = std::chrono::milliseconds(10);
  for (;;) {
    auto pooled = take_idle();
    bool reused = pooled.has_value();
    connection c;
    if (pooled) {
      c = std::move(*pooled);
    } else {
      auto fresh = connect_unix(settings_.socket, deadline);
      if (!fresh) {
        last_error_ = fresh.error().message;
        if (!fresh.error().retryable || clock::now() >= deadline) return std::unexpected(CKR_DEVICE_ERROR);
        pause(backoff, deadline);  // the broker restarting: its socket returns shortly
        continue;
      }
      c = std::move(*fresh);
    }
    bool keep = false;
    auto r = exchange(c, req, deadline, keep);
    if (!r) {
      last_error_ = r.error().message;
      if (!r.error().retryable || clock::now() >= deadline) return std::unexpected(CKR_DEVICE_ERROR);
      if (!reused) pause(backoff, deadline);  // a fresh connection closed on us: the broker is going away
      continue;
    }
    if (keep) give_back(std::move(c));
    if (r->status == 429 && clock::now() + backoff < deadline) {  // overloaded: wait and ask again
      pause(backoff, deadline);
      continue;
    }
    return to_answer(std::move(*r));
  }
}

std::string path_segment(std::string_view name) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char ch : name) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += '%';
      out += hex[ch >> 4];
      out += hex[ch & 15];
    }
  }
  return out;
}

}  // namespace hsmb::p11
