#!/usr/bin/env python3
"""Bad input, class by class: the status and message each gets, and that none of it crashes the
broker, marks its member down or restarts a worker. The table below is the source of
docs/bad-input.md: `bad_input_test.py --markdown` prints that file, and the test fails when the
file in the repository differs from it.

Usage: bad_input_test.py BIN_DIR [SOURCE_DIR] | --markdown"""
import base64
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

KEY = "orders"  # aes256-gcm96, made before the table runs
SIGNER = "signer"  # ecdsa-p256


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def raw(request: bytes, tcp: bool = False):
    return ("raw", request, tcp)


def api(method: str, path: str, body=None):
    return ("api", method, path, body)


def chunked_flood(prefix: bytes, piece: bytes, count: int) -> bytes:
    return prefix + piece * count


H = b"Host: 127.0.0.1:PORT\r\n"

# (class of bad input, what is sent, status, a part of the message)
TABLE = [
    ("HTTP: a request line that is not HTTP", raw(b"this is not http\r\n\r\n"), 400, "malformed HTTP request"),
    ("HTTP: header over 16 KiB", raw(b"GET /v1/sys/health HTTP/1.1\r\nX: " + b"h" * 20000 + b"\r\n\r\n"), 431,
     "request header larger than 16384 bytes"),
    ("HTTP: body over 4 MiB", raw(b"POST /v1/transit/random HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n" + b"x" * 5000000),
     413, "request body larger than 4194304 bytes"),
    ("HTTP: chunk extensions past the framing allowance (64 KiB)",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2;" + b"e" * 200000), 413,
     "chunked framing"),
    ("HTTP: trailers past the framing allowance",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n" +
         b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 200) for i in range(400)) + b"\r\n"), 413, "chunked framing"),
    ("HTTP: a trailer field over 64 KiB",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX: " + b"v" * 70000 +
         b"\r\n\r\n"), 431, "a header or trailer field is too large"),
    ("HTTP: Transfer-Encoding that does not end in chunked (smuggling)",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\nGET /x HTTP/1.1\r\n\r\n"), 400,
     "Transfer-Encoding must end in chunked"),
    ("HTTP: Transfer-Encoding beside Content-Length (smuggling)",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"), 400,
     "malformed HTTP request"),
    ("HTTP: a transfer coding other than chunked",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501,
     "Transfer-Encoding gzip is not supported"),
    ("HTTP: a browser page (Origin not allowed)",
     raw(b"POST /v1/transit/random HTTP/1.1\r\nOrigin: https://attacker.example\r\nContent-Length: 2\r\n\r\n{}"), 403,
     "requests from browser pages are refused"),
    ("HTTP, TCP: a Host that is not the listener (DNS rebinding)",
     raw(b"GET /v1/sys/health HTTP/1.1\r\nHost: rebind.example:PORT\r\n\r\n", tcp=True), 403,
     "is not this broker's address"),
    ("HTTP, TCP: HTTP/1.1 without Host", raw(b"GET /v1/sys/health HTTP/1.1\r\n\r\n", tcp=True), 400,
     "without a Host header"),
    ("JSON: a body that is not JSON", api("POST", f"/v1/transit/encrypt/{KEY}", "{not json"), 400, "JSON"),
    ("JSON: a body that is not an object", api("POST", f"/v1/transit/encrypt/{KEY}", "[1,2]"), 400, "object"),
    ("route: unknown path", api("GET", "/v1/transit/nothing-here"), 404, "unsupported path"),
    ("route: a path that is not UTF-8 (the message stays valid JSON)",
     raw(b"GET /v1/transit/\xff\xfe HTTP/1.1\r\n\r\n"), 404, "unsupported path"),
    ("route: method not allowed", api("DELETE", "/v1/transit/encrypt/" + KEY), 405, "method"),
    ("key: invalid name", api("POST", "/v1/transit/keys/bad%20name", {"type": "aes256-gcm96"}), 400,
     "invalid key name"),
    ("key: unknown type", api("POST", "/v1/transit/keys/new-one", {"type": "des"}), 400, "type"),
    ("key: unknown name (every member read)", api("POST", "/v1/transit/encrypt/no-such-key", {"plaintext": b64(b"x")}),
     404, "not found"),
    ("field: missing", api("POST", f"/v1/transit/encrypt/{KEY}", {}), 400, "missing field \"plaintext\""),
    ("field: not base64", api("POST", f"/v1/transit/encrypt/{KEY}", {"plaintext": "%%%"}), 400, "not valid base64"),
    ("field: wrong JSON type", api("POST", f"/v1/transit/encrypt/{KEY}", {"plaintext": 5}), 400, "plaintext"),
    ("operation: not what the key type does", api("POST", f"/v1/transit/sign/{KEY}", {"input": b64(b"x")}), 400,
     "does not support signing"),
    ("ciphertext: not vault:vN:base64", api("POST", f"/v1/transit/decrypt/{KEY}", {"ciphertext": "nonsense"}), 400,
     "invalid ciphertext"),
    ("ciphertext: tampered (GCM tag)", api("POST", f"/v1/transit/decrypt/{KEY}",
                                           {"ciphertext": "vault:v1:" + b64(bytes(40))}), 400,
     "message authentication failed"),
    ("ciphertext: a version the key never had", api("POST", f"/v1/transit/decrypt/{KEY}",
                                                    {"ciphertext": "vault:v9:" + b64(bytes(40))}), 400,
     "invalid key version"),
    ("signature: not vault:vN:base64", api("POST", f"/v1/transit/verify/{SIGNER}",
                                           {"input": b64(b"x"), "signature": "nope"}), 400, "invalid signature"),
    ("key_version: out of range", api("POST", f"/v1/transit/encrypt/{KEY}",
                                      {"plaintext": b64(b"x"), "key_version": 99999999999}), 400, "key_version"),
    ("random: too many bytes", api("POST", "/v1/transit/random/2000000"), 400, "bytes"),
    ("batch: not a list", api("POST", f"/v1/transit/encrypt/{KEY}", {"batch_input": {"a": 1}}), 400,
     "batch_input must be a list"),
    ("batch: more entries than limits.max_batch_items (1000)",
     api("POST", f"/v1/transit/encrypt/{KEY}", {"batch_input": [{"plaintext": b64(b"x")}] * 1001}), 400,
     "limits.max_batch_items"),
]


def markdown() -> str:
    rows = "\n".join(f"| {cls} | {status} | {message} |" for cls, _, status, message in TABLE)
    return f"""# Bad input: what a client gets

Generated from `tests/integration/bad_input_test.py`, which sends every row to a real broker and
checks the status and that the message contains the text below; it also checks that none of it
crashed the broker, marked its member down or restarted a worker, and that every answer is valid
JSON. Regenerate with `python3 tests/integration/bad_input_test.py --markdown > docs/bad-input.md`.

Every byte a client sends counts against a limit: the header (16 KiB), the body
(`max_request_bytes`, 4 MiB), and what a chunked body carries besides (chunk sizes, extensions,
trailers: 64 KiB). Connections count against `listen.*.max_connections` and
`max_connections_per_peer`; batches against `limits.max_batch_items` (README, Configuration
reference). An HTTP-level refusal closes the connection after its answer.

| class of bad input | status | message contains |
|---|---|---|
{rows}
"""


def send_raw(broker, request: bytes, tcp: bool):
    request = request.replace(b"PORT", str(broker.port).encode())
    if tcp:
        s = socket.create_connection(("127.0.0.1", broker.port), timeout=10)
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(broker.socket_path)
    if not tcp and b"Host:" not in request.split(b"\r\n\r\n")[0] and request.startswith((b"GET", b"POST")):
        request = request.replace(b"\r\n", b"\r\n" + H.replace(b"PORT", str(broker.port).encode()), 1)
    try:
        s.sendall(request)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused early: the answer is still there to read
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


def main() -> int:
    if sys.argv[1:] == ["--markdown"]:
        print(markdown(), end="")
        return 0
    from broker_rig import Broker
    bin_dir = sys.argv[1]
    source = sys.argv[2] if len(sys.argv) > 2 else None
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(bin_dir, tmp)
        try:
            for name, kind in ((KEY, "aes256-gcm96"), (SIGNER, "ecdsa-p256")):
                status, _ = broker.request("POST", f"/v1/transit/keys/{name}", {"type": kind})
                assert status == 200, f"creating {name}: {status}"
            for cls, how, want_status, want_text in TABLE:
                if how[0] == "raw":
                    status, body = send_raw(broker, how[1], how[2])
                else:
                    _, method, path, body = how
                    status, parsed = broker.request(method, path, body)
                    body = json.dumps(parsed).encode() if isinstance(parsed, (dict, list)) else (parsed or b"")
                try:
                    errors = json.loads(body)["errors"]
                    message = " ".join(errors)
                except (ValueError, KeyError, TypeError):
                    message = None
                ok = status == want_status and message is not None and want_text in message
                print(("ok   " if ok else "FAIL ") + f"{cls}: {status} {message!r}")
                if not ok:
                    failures.append(cls)
            # A batch naming a key no member holds: one look at the members, not one per item.
            started = time.monotonic()
            status, _ = broker.request("POST", "/v1/transit/encrypt/no-such-key",
                                       {"batch_input": [{"plaintext": b64(b"x")}] * 200})
            took = time.monotonic() - started
            print(f"batch of 200 on an unknown key: {status} in {took:.2f} s")
            if status != 404 or took > 3:
                failures.append(f"a batch on an unknown key: {status} after {took:.2f} s")
            status, members = broker.request("GET", "/v1/broker/members")
            m = members["data"]["members"][0]
            for counter in ("worker_restarts", "errors", "failovers"):
                if m[counter] != 0:
                    failures.append(f"member {counter} = {m[counter]} after bad input")
            if m["state"] != "serving":
                failures.append(f"member {m['state']} after bad input")
            if broker.proc.poll() is not None:
                failures.append("the broker died")
            status, _ = broker.request("POST", f"/v1/transit/encrypt/{KEY}", {"plaintext": b64(b"still fine")})
            if status != 200:
                failures.append(f"a good request after all of it: {status}")
        finally:
            broker.stop()
    if source:
        with open(os.path.join(source, "docs", "bad-input.md")) as f:
            if f.read() != markdown():
                failures.append("docs/bad-input.md is not what this table generates (run with --markdown)")
    print(f"{len(TABLE) + 6 - len(failures)} passed, {len(failures)} failed")
    for f in failures:
        print("failed:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
