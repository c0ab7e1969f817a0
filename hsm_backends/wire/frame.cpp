#include "hsm_backends/wire/frame.h"

namespace hsmb::wire {
namespace {

void put(std::uint8_t* p, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

}  // namespace

void encode_header(const frame_header& h, std::uint8_t out[header_size]) {
  put(out, h.payload_size, 4);
  put(out + 4, static_cast<std::uint16_t>(h.operation), 2);
  put(out + 6, static_cast<std::uint16_t>(h.result), 2);
  put(out + 8, h.id, 8);
}

std::optional<frame_header> decode_header(const std::uint8_t in[header_size]) {
  frame_header h;
  h.payload_size = static_cast<std::uint32_t>(get(in, 4));
  auto o = static_cast<std::uint16_t>(get(in + 4, 2));
  auto s = static_cast<std::uint16_t>(get(in + 6, 2));
  h.id = get(in + 8, 8);
  if (!is_known_op(o)) return std::nullopt;
  if (s > static_cast<std::uint16_t>(status::error)) return std::nullopt;
  if (h.payload_size > max_payload) return std::nullopt;
  h.operation = static_cast<op>(o);
  h.result = static_cast<status>(s);
  return h;
}

frame_at_front peek_frame(byte_view in) {
  frame_at_front f;
  if (in.size() < header_size) return f;
  auto h = decode_header(in.data());
  if (!h) {
    f.is = frame_at_front::state::broken;
    return f;
  }
  f.header = *h;
  f.size = header_size + h->payload_size;
  if (in.size() >= f.size) f.is = frame_at_front::state::whole;
  return f;
}

}  // namespace hsmb::wire
