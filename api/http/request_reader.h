// Reads HTTP/1.1 requests from the bytes of one connection as they arrive, with no I/O of its own
// (the session feeds it from the socket; the fuzzer feeds it anything). Every byte a client sends
// counts against a limit: the header (431), the body (413), and everything else a chunked body
// carries (chunk sizes, extensions, trailers) within a fixed allowance (413); the buffer itself
// never grows past the header limit plus one read. Request smuggling is refused (RFC 9112 6.3):
// a Transfer-Encoding that does not end in chunked, or one beside a Content-Length, is a 400.
#pragma once

#include <cstddef>
#include <optional>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "api/http/request.h"
#include "api/http/server.h"

namespace hsmb::api {

using http_request = boost::beast::http::request<boost::beast::http::string_body>;

// Chunk sizes, extensions and trailers of one request, together, at most.
inline constexpr std::size_t chunked_framing_allowance = 64u << 10;

class request_reader {
 public:
  static constexpr std::size_t read_size = 64u << 10;  // at most, per read from the socket

  explicit request_reader(const server_limits& limits);

  // Space for the next read (sized by what is buffered: 512 bytes at first); empty when the
  // buffer is full, which parse() then reports.
  boost::asio::mutable_buffer prepare();
  void commit(std::size_t n) { buffer_.commit(n); }
  bool buffered() const { return buffer_.size() > 0; }

  enum class progress { need_more, done, failed };
  // Parses what is buffered. done: message() is whole; failed: refusal() says what to answer.
  progress parse();
  // The peer closed its side: a request cut short fails (with no answer to give).
  progress end_of_stream();
  http_request& message() { return parser_->get(); }
  // The header is in and asks for "100 Continue" before the body comes.
  bool expects_continue() const;
  // What to answer a request that failed; nullopt: close without an answer.
  const std::optional<response>& refusal() const { return refusal_; }
  bool got_some() const { return parser_->got_some(); }
  // After a done request: a fresh parser; what is buffered (a pipelined request) stays.
  void start_next();

 private:
  progress refuse(unsigned status, const std::string& message);
  progress check_header();

  server_limits limits_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::size_t consumed_ = 0;      // bytes of this request the parser took
  std::size_t header_bytes_ = 0;  // of which the header
  bool header_checked_ = false;
  std::optional<response> refusal_;
};

// {"errors":["message"]} with the message made valid UTF-8.
response error_response(unsigned status, const std::string& message);

}  // namespace hsmb::api
