// Frames between the broker and a worker: a 16-byte header then the payload.
// Requests and responses carry the same id, so many calls can be in flight on one socket.
#pragma once

#include <cstdint>
#include <optional>

#include "common/bytes.h"

namespace hsmb::wire {

inline constexpr std::size_t header_size = 16;
// Bound on a payload: requests above it are refused by the broker before they are sent.
inline constexpr std::uint32_t max_payload = 4u << 20;

enum class op : std::uint16_t {
  hello = 1,  // first frame: member_settings; answers token_description
  probe = 2,
  random = 3,
  generate_key = 4,
  public_key = 5,
  destroy_objects = 6,
  list_metadata = 7,
  put_metadata = 8,
  delete_metadata = 9,
  encrypt = 10,
  decrypt = 11,
  sign = 12,
  hmac = 13,
  key_check = 14,  // label and key type (as generate_key); answers a blob
  // replication: keys travel wrapped under the cluster key
  export_key = 15,         // label and key type (as generate_key); answers a wrapped_key
  import_key = 16,         // label and a wrapped_key
  cluster_key_check = 17,  // answers a blob
  // the cluster-key ceremony (a worker whose hello carried the SO PIN)
  create_cluster_key = 18,
  create_transport_key = 19,  // answers a public key
  export_cluster_key = 20,    // a public key (the receiver's transport key); answers a blob
  import_cluster_key = 21,    // a blob
};

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
