#!/usr/bin/env python3
# Writes the seed corpora (tests/fuzz/corpus/<target>/): valid and nearly valid inputs of each kind.
# Run from anywhere; it rewrites the files it makes and leaves the others (kept crash inputs) alone.
import os, struct, base64, json
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
def put(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)

# ---- config_yaml
put('config_yaml', 'minimal.yaml', """listen:
  unix: {path: /run/hsm-broker/broker.sock}
members:
  - name: hsm1
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: hsm1
    pin: {value: "1234"}
""")
put('config_yaml', 'full.yaml', """state_dir: /var/lib/hsm-broker
listen:
  unix: {path: /run/hsm-broker/broker.sock, mode: "0660", group: hsm}
  http: {address: "127.0.0.1:8200"}
members:
  - name: hsm1
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: hsm1
    pin: {env: HSM1_PIN}
    env: {SOFTHSM2_CONF: /etc/softhsm/hsm1.conf}
    sessions: 8
    weight: 2
  - name: hsm-2.b_c
    module: /usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
    slot: 3
    pin: {value: "secret"}
replication: {mode: broker, min_copies: 2}
timeouts: {request: 5s, call: 2s}
health: {probe_interval: 250ms, idle_probe_interval: 30s, max_backoff: 1m}
supervisor: {restart_interval: 1h, restart_jitter: 10%, drain_timeout: 30s, heartbeat_timeout: 10s, ready_timeout: 60s}
recycle: {worker_max_age: 30m}
""")
put('config_yaml', 'none-mode.yaml', """listen:
  http:
    address: "[::1]:8200"
members:
  - {name: a, module: /m.so, slot: 0, pin: {file: pin.txt}}
replication:
  mode: none
""")
put('config_yaml', 'errors.yaml', """listen: {unix: {path: x}, tls: {}}
members: [{name: "-bad", module: "", token_label: t, slot: 1, pin: {}}]
timeouts: {request: 1s, call: 2s}
""")
# Regression (broker/config.cpp): a key that is not a scalar at the top level made
# root.expect_map() throw YAML::TypedBadConversion outside parse_config's try: not a config_error.
put('config_yaml', 'crash-complex-root-key.yaml', """? [complex, key]
: value
""")

# ---- vault_values: options byte + text
def vv(opt, text): return bytes([opt]) + text.encode()
ct = base64.b64encode(bytes(range(12)) + b'ciphertext' + bytes(16)).decode()
put('vault_values', 'ciphertext', vv(0, 'vault:v1:' + ct))
put('vault_values', 'hmac-v7', vv(0x0c, 'vault:v7:' + base64.b64encode(bytes(32)).decode()))
# an ECDSA P-256 DER signature shape
der = bytes([0x30, 0x44, 0x02, 0x20]) + bytes([0x11]*32) + bytes([0x02, 0x20]) + bytes([0x22]*32)
put('vault_values', 'ecdsa-asn1', vv(0, 'vault:v2:' + base64.b64encode(der).decode()))
put('vault_values', 'ecdsa-jws', vv(0x20, 'vault:v2:' + base64.urlsafe_b64encode(bytes([0x11]*32 + [0x22]*32)).decode().rstrip('=')))
put('vault_values', 'p384-jws', vv(0x21, 'vault:v3:' + base64.urlsafe_b64encode(bytes([0x33]*96)).decode().rstrip('=')))
put('vault_values', 'ed25519', vv(0x02, 'vault:v1:' + base64.b64encode(bytes(64)).decode()))
put('vault_values', 'rsa-pkcs1', vv(0x43, 'vault:v1:' + base64.b64encode(bytes([0x55]*256)).decode()))
put('vault_values', 'rsa-none', vv(0x57, 'vault:v2147483647:' + base64.b64encode(bytes([1]*256)).decode()))
put('vault_values', 'bad-version', vv(0, 'vault:v0:AAAA'))

# ---- worker frames
OPS = dict(hello=1, probe=2, random=3, generate_key=4, public_key=5, destroy_objects=6, list_metadata=7,
           put_metadata=8, delete_metadata=9, encrypt=10, decrypt=11, sign=12, hmac=13, key_check=14,
           export_key=15, import_key=16, cluster_key_check=17, create_cluster_key=18, create_transport_key=19,
           export_cluster_key=20, import_cluster_key=21)
def frame(op, payload=b'', status=0, id=1):
    return struct.pack('<IHHQ', len(payload), OPS[op], status, id) + payload
def s(b):
    if isinstance(b, str): b = b.encode()
    return struct.pack('<I', len(b)) + b
def u8(v): return bytes([v])
def u32(v): return struct.pack('<I', v)
def u64(v): return struct.pack('<Q', v)
hello = s('/usr/lib/softhsm/libsofthsm2.so') + s('hsm1') + u8(0) + u64(0) + s('1234') + u32(2) + s('')
hello_slot = s('/m.so') + s('') + u8(1) + u64(7) + s('87654321') + u32(1) + s('so-pin')
label = 'hsmb/k/v1'
pub_ec = u8(1) + s(bytes.fromhex('06082a8648ce3d030107')) + s(b'\x04' + bytes([1]*64))
pub_rsa = u8(3) + s(bytes([0xc5]*256)) + s(b'\x01\x00\x01')
pub_ed = u8(2) + s(bytes.fromhex('06032b6570')) + s(bytes([9]*32))
meta = json.dumps({"format":1,"type":"aes256-gcm96","latest_version":2,"min_decryption_version":1,
    "min_encryption_version":0,"deletion_allowed":False,"created":{"1":1700000000,"2":1700000100},
    "fingerprints":{"1":"ab","2":"cd"},"revision":3,"deleted":False}).encode()
meta_list = u32(2) + s('k') + s(meta) + s('~claim/k/1') + s(b'x')
requests = [
    frame('hello', hello, id=1),
    frame('probe', id=2),
    frame('random', u32(32), id=3),
    frame('generate_key', s(label) + u8(3), id=4),
    frame('public_key', s(label), id=5),
    frame('destroy_objects', s('hsmb/k/'), id=6),
    frame('list_metadata', id=7),
    frame('put_metadata', s('k') + s(meta), id=8),
    frame('delete_metadata', s('k'), id=9),
    frame('encrypt', s(label) + s('hello') + s('aad'), id=10),
    frame('decrypt', s(label) + s(bytes(40)) + s(''), id=11),
    frame('sign', s(label) + u8(1) + u8(3) + s(bytes(32)), id=12),
    frame('hmac', s(label + '/hmac') + u8(3) + s('msg'), id=13),
    frame('key_check', s(label) + u8(2), id=14),
    frame('export_key', s(label) + u8(6), id=15),
    frame('import_key', s(label) + u8(6) + s(bytes(48)) + pub_rsa, id=16),
    frame('cluster_key_check', id=17),
    frame('create_cluster_key', id=18),
    frame('create_transport_key', id=19),
    frame('export_cluster_key', pub_rsa, id=20),
    frame('import_cluster_key', s(bytes(384)), id=21),
]
stream = b''.join(requests)
put('worker_requests', 'session', stream)
put('worker_requests', 'hello-slot-so-pin', frame('hello', hello_slot) + frame('probe', id=2))
put('worker_requests', 'no-hello', frame('probe', id=1) + frame('hello', hello, id=2) + frame('hello', hello, id=3))
put('worker_requests', 'errors', frame('hello', hello) + frame('sign', s('!x') + u8(1) + u8(3) + s(bytes(32)), id=2)
    + frame('random', u32(0xffffffff), id=3) + frame('encrypt', s('k') + s('') , id=4) + frame('hello', hello, id=5))
put('worker_requests', 'broken-header', frame('hello', hello) + b'\xff' * 16)
put('worker_requests', 'partial', frame('hello', hello) + frame('encrypt', s(label) + s('x') + s(''), id=2)[:-3])

replies = [
    frame('hello', s('hsm1') + s('SoftHSM project') + s('SoftHSM v2') + s('0123') + u32(3) + u64(0x1087) + u64(0x1041) + u64(0x2109), id=1),
    frame('probe', id=2),
    frame('random', s(bytes(32)), id=3),
    frame('generate_key', pub_ec, id=4),
    frame('public_key', pub_ed, id=5),
    frame('list_metadata', meta_list, id=6),
    frame('encrypt', s(bytes(12) + b'plaintext' + bytes(16)), id=7),
    frame('decrypt', s('plaintext'), id=8),
    frame('sign', s(bytes(64)), id=9),
    frame('hmac', s(bytes(32)), id=10),
    frame('key_check', s(bytes(16)), id=11),
    frame('export_key', u8(6) + s(bytes(48)) + pub_rsa, id=12),
    frame('destroy_objects', u32(4), id=13),
    frame('cluster_key_check', u64(0x80000000 | 0x48534d00 | 11) + s('no cluster key'), status=1, id=14),
    frame('create_transport_key', pub_rsa, id=15),
]
put('worker_replies', 'session', b''.join(replies))
put('worker_replies', 'hello-error', frame('hello', u64(0xa0) + s('CKR_PIN_INCORRECT'), status=1, id=1))
put('worker_replies', 'bad-error-frame', replies[0] + frame('probe', b'\x01', status=1, id=2))
put('worker_replies', 'out-of-order', replies[0] + frame('random', s(bytes(32)), id=3) + frame('probe', id=2) + frame('probe', id=99))
put('worker_replies', 'broken', replies[0] + b'\x00\x00\x00\x00\x63\x00\x00\x00' + bytes(8))
put('worker_replies', 'oversized', replies[0] + struct.pack('<IHHQ', (4 << 20) + 1, 2, 0, 2))
put('worker_replies', 'malformed-hello', frame('hello', s('x'), id=1))

put('worker_frames', 'requests', stream)
put('worker_frames', 'replies', b''.join(replies))
put('worker_frames', 'metadata-list', frame('list_metadata', meta_list))
# Regression (api/transit/json_codec.cpp, key_info_json): a metadata record's creation time past
# 2262 overflowed the conversion to system_clock's nanoseconds (signed overflow).
put('worker_frames', 'crash-metadata-created-overflow', frame('list_metadata', u32(1) + s('k') + s(json.dumps({"type":"ecdsa-p256","latest_version":1,
    "min_decryption_version":1,"min_encryption_version":0,"deletion_allowed":True,"created":{"1":9223372036854775807}}))))
put('worker_frames', 'public-keys', frame('public_key', pub_ec) + frame('public_key', pub_rsa, id=2) + frame('public_key', pub_ed, id=3))

# ---- http_request: read-size byte, limits byte, then the bytes of the connection
def http(rs, lim, text): return bytes([rs, lim]) + text.encode()
body = '{"plaintext":"aGVsbG8="}'
put('http_request', 'post', http(0, 0, 'POST /v1/transit/encrypt/k HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' % (len(body), body)))
put('http_request', 'pipelined', http(7, 1, 'GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\nLIST /v1/transit/keys HTTP/1.1\r\nX-Vault-Token: t\r\n\r\nGET /metrics HTTP/1.0\r\n\r\n'))
put('http_request', 'chunked', http(3, 0, 'POST /v1/transit/random HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{"by\r\n9\r\ntes":16}\r\n0\r\nTrailer: v\r\n\r\n'))
put('http_request', 'continue', http(0, 0, 'PUT /v1/transit/keys/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}'))
put('http_request', 'smuggle', http(0, 0, 'POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))
put('http_request', 'te-gzip', http(0, 0, 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'))
put('http_request', 'big-header', http(0, 1, 'GET / HTTP/1.1\r\nX: ' + 'a' * 1500 + '\r\n\r\n'))
put('http_request', 'big-body', http(0, 1, 'POST / HTTP/1.1\r\nContent-Length: 3000\r\n\r\n' + 'b' * 3000))
# Regression (Boost.Beast 1.81, not hsm-broker): the last chunk's size line, then one byte per
# read, tripped a false assertion in basic_parser::parse_chunk_header (boost_assert.cpp).
put('http_request', 'crash-beast-last-chunk-byte-by-byte', http(1, 0, 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'))
put('http_request', 'garbage', http(1, 0, 'GET\x00 /\r\n\r\n'))

# ---- transit_routes: route byte, then the body (table index) or method byte past the table + path line
R = ['POST keys', 'PUT keys', 'GET keys', 'DELETE keys', 'LIST', 'GET list', 'rotate', 'config', 'encrypt', 'decrypt',
     'rewrap', 'sign', 'sign512', 'verify', 'verify384', 'hmac', 'hmac224', 'random', 'random64', 'randomplatform',
     'randomhex', 'datakey-p', 'datakey-w', 'health', 'head-health', 'members', 'sync', 'metrics']
def rt(i, body): return bytes([i]) + body.encode()
put('transit_routes', 'create', rt(0, '{"type":"ecdsa-p256","exportable":false}'))
put('transit_routes', 'create-bad', rt(1, '{"type":"rsa-9999","derived":"true"}'))
put('transit_routes', 'config', rt(7, '{"min_decryption_version":"2","min_encryption_version":3.0,"deletion_allowed":"true"}'))
put('transit_routes', 'encrypt', rt(8, '{"plaintext":"aGVsbG8=","associated_data":"YQ==","key_version":1}'))
put('transit_routes', 'encrypt-batch', rt(8, '{"batch_input":[{"plaintext":"aGk=","reference":"a"},{"plaintext":"!"},7,{"plaintext":"aGk=","key_version":-1}]}'))
put('transit_routes', 'decrypt', rt(9, '{"ciphertext":"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","associated_data":"YQ=="}'))
put('transit_routes', 'rewrap', rt(10, '{"ciphertext":"vault:v2:AAAA","key_version":"3"}'))
put('transit_routes', 'sign', rt(11, '{"input":"aGVsbG8=","hash_algorithm":"sha2-384","prehashed":false,"signature_algorithm":"pkcs1v15","marshaling_algorithm":"jws"}'))
put('transit_routes', 'sign-batch', rt(12, '{"batch_input":[{"input":"YQ=="},{"input":"Yg==","reference":1}],"algorithm":"sha1"}'))
put('transit_routes', 'verify', rt(13, '{"input":"aGVsbG8=","signature":"vault:v1:MEUCIQ=="}'))
put('transit_routes', 'verify-hmac', rt(14, '{"input":"aGVsbG8=","hmac":"vault:v1:AAAA","prehashed":"true"}'))
put('transit_routes', 'hmac', rt(15, '{"input":"aGVsbG8=","algorithm":"sha2-512","key_version":4294967296}'))
put('transit_routes', 'random', rt(17, '{"bytes":"16","format":"hex"}'))
put('transit_routes', 'random-path', rt(18, '{"format":"base64"}'))
put('transit_routes', 'datakey', rt(21, '{"bits":512}'))
put('transit_routes', 'health', rt(23, ''))
# Regression (api/transit/json_codec.cpp, get_uint): a number past 2^64 (parsed as a double) was
# cast to uint64_t before being compared: undefined behaviour (float-cast-overflow).
put('transit_routes', 'crash-uint-from-huge-double', rt(8, '{"plaintext":"aGk=","key_version":1e30}'))
put('transit_routes', 'free-path', bytes([200]) + b'/v1/transit/sign/k/none/extra\n{"input":"YQ=="}')
put('transit_routes', 'free-name', bytes([201]) + b'/v1/transit/keys/..%2f\n{}')
print('ok')
