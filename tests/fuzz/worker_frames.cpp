// The worker protocol's bytes, both directions, without processes: the frame splitter both read
// loops use (wire::peek_frame), and every payload decoder, requests (what the worker decodes)
// and replies (what the broker decodes, then makes into public keys, metadata and catalog
// entries). A payload the decoders accept re-encodes to the same bytes.
//
// Input: a byte stream of frames; each whole frame's payload, and the whole input, go through
// every decoder.
#include <cstdint>
#include <string>
#include <vector>

#include "api/transit/json_codec.h"
#include "broker/keys/catalog.h"
#include "broker/keys/metadata.h"
#include "broker/keys/public_key.h"
#include "hsm_backends/wire/frame.h"
#include "hsm_backends/wire/messages.h"
#include "tests/fuzz/fuzz_support.h"

using namespace hsmb;
using namespace hsmb::wire;

namespace {

bool same(const bytes& a, byte_view b) { return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin()); }

template <class Encode>
bool reencodes(byte_view in, Encode encode) {
  bytes out;
  encode(out);
  return same(out, in);
}

bool same_key(const public_key_blob& a, const public_key_blob& b) { return a.k == b.k && a.a == b.a && a.b == b.b; }

void requests(byte_view p) {
  if (auto s = decode_hello(p)) {
    bytes out;
    encode_hello(out, *s);
    auto again = decode_hello(out);
    FUZZ_CHECK(again && again->module == s->module && again->token_label == s->token_label &&
               again->slot == s->slot && again->pin == s->pin && again->sessions == s->sessions &&
               again->so_pin == s->so_pin);
  }
  if (auto n = decode_random(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_random(b, *n); }));
  if (auto g = decode_generate_key(p)) {
    FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_generate_key(b, g->label, g->type); }));
    FUZZ_CHECK(!to_string(g->type).empty());
  }
  if (auto l = decode_label(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_label(b, l->label); }));
  if (auto m = decode_put_metadata(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_put_metadata(b, m->name, m->value); }));
  if (auto c = decode_cipher(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_cipher(b, c->label, c->data, c->aad); }));
  if (auto s = decode_sign(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_sign(b, s->label, s->mechanism, s->hash, s->data, s->salt); }));
  if (auto h = decode_hmac(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_hmac(b, h->label, h->hash, h->data); }));
  if (auto i = decode_import_key(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_import_key(b, i->label, i->key); }));
}

void public_keys(const public_key_blob& blob) {
  for (auto t : {key_type::ecdsa_p256, key_type::ecdsa_p384, key_type::ed25519, key_type::rsa_2048, key_type::aes256_gcm96}) {
    auto k = make_public_key(blob, t);
    if (!k) continue;
    FUZZ_CHECK(k->pkey && !k->pem.empty() && !k->name.empty());
    FUZZ_CHECK(public_key_fingerprint(*k).size() == 32);
  }
}

void replies(byte_view p) {
  if (auto e = decode_error(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_error(b, *e); }));
  if (auto t = decode_token(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_token(b, *t); }));
  if (auto k = decode_public_key(p)) {
    FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_public_key(b, *k); }));
    public_keys(*k);
  }
  if (auto w = decode_wrapped_key(p)) {
    FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_wrapped_key(b, *w); }));
    public_keys(w->pub);
  }
  if (auto b = decode_blob(p)) FUZZ_CHECK(reencodes(p, [&](bytes& out) { encode_blob(out, *b); }));
  if (auto n = decode_count(p)) FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_count(b, *n); }));
  if (auto list = decode_metadata_list(p)) {
    FUZZ_CHECK(reencodes(p, [&](bytes& b) { encode_metadata_list(b, *list); }));
    // What key_service does with a member's records: decode, merge into the catalog, report.
    key_catalog catalog(2);
    std::size_t member = 0;
    for (auto& r : *list) {
      auto meta = decode_metadata(r.value);
      if (!meta) continue;
      FUZZ_CHECK(meta->latest_version >= 1 && meta->min_decryption_version >= 1 &&
                 meta->min_decryption_version <= meta->latest_version);
      auto again = decode_metadata(encode_metadata(*meta));
      FUZZ_CHECK(again && again->type == meta->type && again->latest_version == meta->latest_version &&
                 again->created == meta->created && again->fingerprints == meta->fingerprints &&
                 again->revision == meta->revision && again->deleted == meta->deleted);
      auto& entry = catalog.merge_from_member(member++ % 2, r.name, *meta);
      (void)api::key_info_json(entry);  // GET /v1/transit/keys/:name
    }
    (void)catalog.names();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_view in(data, size);
  std::size_t at = 0;
  for (;;) {
    auto rest = in.subspan(at);
    auto f = peek_frame(rest);
    if (f.is == frame_at_front::state::broken) {
      FUZZ_CHECK(rest.size() >= header_size && !decode_header(rest.data()));
      break;
    }
    if (f.is == frame_at_front::state::partial) {
      FUZZ_CHECK(rest.size() < f.size);  // the reader waits for this many bytes
      FUZZ_CHECK(f.size <= header_size + max_payload);
      break;
    }
    FUZZ_CHECK(f.size == header_size + f.header.payload_size && f.size <= rest.size());
    FUZZ_CHECK(f.header.payload_size <= max_payload);
    std::uint8_t header[header_size];
    encode_header(f.header, header);
    FUZZ_CHECK(std::equal(header, header + header_size, rest.begin()));
    auto payload = rest.subspan(header_size, f.header.payload_size);
    requests(payload);
    replies(payload);
    at += f.size;
  }
  requests(in);
  replies(in);
  return 0;
}
