// Frames between the broker and a worker: a 16-byte header then the payload.
// Requests and responses carry the same id, so many calls can be in flight on one socket.
#pragma once

#include <cstdint>
#include <string_view>
#include <optional>

#include "common/bytes.h"

namespace hsmb::wire {

inline constexpr std::size_t header_size = 16;
// Bound on a payload: requests above it are refused by the broker before they are sent.
inline constexpr std::uint32_t max_payload = 4u << 20;

// Every operation and its code on the wire, as one list: the enum below, decode_header's check,
// and the request/reply table in wire/protocol.h (which must have an entry for each) all read it.
// What each payload holds is in protocol.h.
#define HSMB_WIRE_OPS(X)                                                                 \
  X(hello, 1) /* first frame: opens the token */                                         \
  X(probe, 2)                                                                            \
  X(random, 3)                                                                           \
  X(generate_key, 4)                                                                     \
  X(public_key, 5)                                                                       \
  X(destroy_objects, 6)                                                                  \
  X(list_metadata, 7)                                                                    \
  X(put_metadata, 8)                                                                     \
  X(delete_metadata, 9)                                                                  \
  X(encrypt, 10)                                                                         \
  X(decrypt, 11)                                                                         \
  X(sign, 12)                                                                            \
  X(hmac, 13)                                                                            \
  X(key_check, 14)                                                                       \
  /* replication: keys travel wrapped under the cluster key */                           \
  X(export_key, 15)                                                                      \
  X(import_key, 16)                                                                      \
  X(cluster_key_check, 17)                                                               \
  /* the cluster-key ceremony (a worker whose hello carried the SO PIN) */               \
  X(create_cluster_key, 18)                                                              \
  X(create_transport_key, 19)                                                            \
  X(export_cluster_key, 20)                                                              \
  X(import_cluster_key, 21)

enum class op : std::uint16_t {
#define HSMB_WIRE_OP_ENUMERATOR(name, code) name = code,
  HSMB_WIRE_OPS(HSMB_WIRE_OP_ENUMERATOR)
#undef HSMB_WIRE_OP_ENUMERATOR
};

// True for a code in HSMB_WIRE_OPS.
constexpr bool is_known_op(std::uint16_t code) {
  switch (code) {
#define HSMB_WIRE_OP_CASE(name, value) case value:
    HSMB_WIRE_OPS(HSMB_WIRE_OP_CASE)
#undef HSMB_WIRE_OP_CASE
    return true;
    default: return false;
  }
}

// The largest code in HSMB_WIRE_OPS: tables indexed by op code have max_op_code + 1 entries.
inline constexpr std::uint16_t max_op_code = [] {
  std::uint16_t m = 0;
#define HSMB_WIRE_OP_MAX(name, value) m = value > m ? value : m;
  HSMB_WIRE_OPS(HSMB_WIRE_OP_MAX)
#undef HSMB_WIRE_OP_MAX
  return m;
}();

// "encrypt", "generate_key": the op's name, for metrics and logs; empty for an unknown code.
constexpr std::string_view op_name(op o) {
  switch (o) {
#define HSMB_WIRE_OP_NAME(name, value) case op::name: return #name;
    HSMB_WIRE_OPS(HSMB_WIRE_OP_NAME)
#undef HSMB_WIRE_OP_NAME
  }
  return {};
}

enum class status : std::uint16_t { ok = 0, error = 1 };

struct frame_header {
  std::uint32_t payload_size = 0;
  op operation = op::probe;
  status result = status::ok;  // meaningful in responses only
  std::uint64_t id = 0;
};

void encode_header(const frame_header& h, std::uint8_t out[header_size]);
// nullopt for an unknown op, unknown status or an oversized payload: the peer is broken.
std::optional<frame_header> decode_header(const std::uint8_t in[header_size]);

// The frame at the front of a received byte stream, for readers that read in bulk.
struct frame_at_front {
  enum class state { whole, partial, broken } is = state::partial;
  frame_header header;          // valid once the header has arrived
  std::size_t size = header_size;  // bytes the whole frame takes (header_size until the header is in)
};
frame_at_front peek_frame(byte_view in);

}  // namespace hsmb::wire
