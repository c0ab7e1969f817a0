// The HTTP request reader (api/http/request_reader), fed as a session feeds it: the fuzzer's
// bytes arrive in reads of varying size, requests are taken one after another (pipelining), and
// the first refusal or the end of the bytes ends the connection. Whatever comes, the reader
// must not crash or grow without bound; what it accepts must be within the limits and free of
// smuggling; what it refuses must get a well-formed Vault error body.
//
// Input: byte 0 picks the read size (0: all at once), byte 1 the limits (small or the
// defaults), then the bytes of the connection.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include <boost/beast/http/field.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "api/http/request_reader.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb::api;
namespace http = boost::beast::http;

namespace {

void check_refusal(const request_reader& reader) {
  auto& r = reader.refusal();
  if (!r) return;  // closed without an answer
  FUZZ_CHECK(r->status == 400 || r->status == 413 || r->status == 431 || r->status == 501);
  boost::system::error_code ec;
  auto v = boost::json::parse(r->body, ec);  // also refuses invalid UTF-8
  FUZZ_CHECK(!ec && v.is_object());
  auto* errors = v.as_object().if_contains("errors");
  FUZZ_CHECK(errors && errors->is_array() && errors->as_array().size() == 1 && errors->as_array()[0].is_string());
}

void check_request(request_reader& reader, const server_limits& limits) {
  auto& m = reader.message();
  FUZZ_CHECK(m.body().size() <= limits.max_body);
  FUZZ_CHECK(!m.method_string().empty());
  FUZZ_CHECK(!m.target().empty());
  bool coded = m.find(http::field::transfer_encoding) != m.end();
  bool sized = m.find(http::field::content_length) != m.end();
  FUZZ_CHECK(!(coded && sized));  // smuggling
  (void)m.keep_alive();
  (void)m[http::field::host];
  (void)reader.expects_continue();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t read = data[0] == 0 ? request_reader::read_size : data[0];
  server_limits limits;
  if (data[1] & 1) {
    limits.max_header = 1024;
    limits.max_body = 2048;
  }
  const std::uint8_t* in = data + 2;
  std::size_t left = size - 2;
  request_reader reader(limits);
  // As session::run and read_request drive it: parse() after each read of at least one byte, or
  // at once when a pipelined request is already buffered; the end of the bytes is end_of_stream().
  auto p = request_reader::progress::need_more;
  for (;;) {
    if (p == request_reader::progress::need_more) {
      auto space = reader.prepare();
      FUZZ_CHECK(space.size() > 0);  // a full buffer is refused by parse(), not left to the session
      FUZZ_CHECK(space.size() <= request_reader::read_size);
      if (left == 0) {
        p = reader.end_of_stream();
        FUZZ_CHECK(p == request_reader::progress::failed && !reader.refusal());
        break;
      }
      std::size_t n = std::min({read, left, space.size()});
      std::memcpy(space.data(), in, n);
      reader.commit(n);
      in += n;
      left -= n;
      p = reader.parse();
    }
    if (p == request_reader::progress::failed) {
      check_refusal(reader);
      break;
    }
    if (p == request_reader::progress::done) {
      check_request(reader, limits);
      reader.start_next();
      FUZZ_CHECK(!reader.refusal());
      p = reader.buffered() ? reader.parse() : request_reader::progress::need_more;
    }
  }
  return 0;
}
