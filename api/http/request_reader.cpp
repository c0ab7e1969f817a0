#include "api/http/request_reader.h"

#include <algorithm>

#include <boost/beast/core/read_size.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "common/utf8.h"

namespace hsmb::api {
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

response error_response(unsigned status, const std::string& message) {
  boost::json::object o{{"errors", boost::json::array{boost::json::string(valid_utf8(message))}}};
  return {status, boost::json::serialize(o)};
}

request_reader::request_reader(const server_limits& limits)
    : limits_(limits), buffer_(limits.max_header + read_size) {
  start_next();
}

void request_reader::start_next() {
  parser_.emplace();
  parser_->eager(false);  // put() stops after the header, so its size is known: see parse()
  parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header));
  parser_->body_limit(limits_.max_body);
  consumed_ = header_bytes_ = 0;
  header_checked_ = false;
  refusal_.reset();
}

// Once the header says how much body is still to come, room for all of it (up to read_size):
// reading a 5 KiB body into what was left of a small buffer took a dozen recv() calls.
boost::asio::mutable_buffer request_reader::prepare() {
  if (buffer_.size() >= buffer_.max_size()) return {};
  std::size_t want = beast::read_size(buffer_, read_size);
  if (parser_->is_header_done())
    if (auto rest = parser_->content_length_remaining()) want = std::max<std::size_t>(want, std::min<std::uint64_t>(*rest, read_size));
  return buffer_.prepare(std::min(want, buffer_.max_size() - buffer_.size()));
}

bool request_reader::expects_continue() const {
  return parser_->is_header_done() && parser_->get().version() >= 11 &&
         beast::iequals(parser_->get()[http::field::expect], "100-continue");
}

request_reader::progress request_reader::refuse(unsigned status, const std::string& message) {
  refusal_ = error_response(status, message);
  return progress::failed;
}

request_reader::progress request_reader::check_header() {
  header_checked_ = true;
  auto& m = parser_->get();
  bool coded = m.find(http::field::transfer_encoding) != m.end();
  if (!coded) return progress::need_more;
  // A body whose end this server and a proxy before it could see in different places: refused.
  if (!parser_->chunked()) return refuse(400, "Transfer-Encoding must end in chunked (RFC 9112 6.3)");
  if (m.find(http::field::content_length) != m.end())
    return refuse(400, "Transfer-Encoding and Content-Length together are refused (RFC 9112 6.3)");
  auto [first, last] = m.equal_range(http::field::transfer_encoding);
  for (auto field = first; field != last; ++field)
    for (auto coding : http::token_list(field->value()))
      if (!beast::iequals(coding, "chunked")) return refuse(501, "Transfer-Encoding " + std::string(coding) + " is not supported");
  return progress::need_more;
}

request_reader::progress request_reader::parse() {
  auto& p = *parser_;
  while (!p.is_done() && buffer_.size() > 0) {
    error_code ec;
    std::size_t used = 0;
    try {
      used = p.put(buffer_.data(), ec);
    } catch (const std::exception&) {  // Beast's fields refuse a name or value over 64 KiB
      return refuse(431, "a header or trailer field is too large");
    }
    buffer_.consume(used);
    consumed_ += used;
    if (ec == http::error::body_limit) return refuse(413, "request body larger than " + std::to_string(limits_.max_body) + " bytes");
    if (ec == http::error::header_limit)
      return refuse(431, "request header larger than " + std::to_string(limits_.max_header) + " bytes");
    if (ec && ec != http::error::need_more) return refuse(400, "malformed HTTP request");
    if (p.is_header_done() && !header_checked_) {
      header_bytes_ = consumed_;
      p.eager(true);  // the body as it comes
      if (check_header() == progress::failed) return progress::failed;
    }
    // What is neither header nor body: chunk sizes, extensions, trailers.
    if (header_checked_ && consumed_ - header_bytes_ - p.get().body().size() > chunked_framing_allowance)
      return refuse(413, "chunked framing (chunk sizes, extensions, trailers) larger than " +
                             std::to_string(chunked_framing_allowance) + " bytes");
    if (ec || used == 0) break;
  }
  if (p.is_done()) return progress::done;
  if (buffer_.size() >= buffer_.max_size()) {  // one element (a header line, a chunk's size line) fills it
    if (!p.is_header_done())
      return refuse(431, "request header larger than " + std::to_string(limits_.max_header) + " bytes");
    return refuse(413, "chunked framing (chunk extensions, trailers) larger than " + std::to_string(chunked_framing_allowance) + " bytes");
  }
  return progress::need_more;
}

request_reader::progress request_reader::end_of_stream() {
  refusal_.reset();  // nobody to answer
  return progress::failed;
}

}  // namespace hsmb::api
