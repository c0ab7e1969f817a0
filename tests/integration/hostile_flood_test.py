#!/usr/bin/env python3
"""Hostile clients: another uid (nobody, via setpriv) floods both listeners with idle, slow,
oversized and smuggling connections while root encrypts and decrypts on the Unix socket. Root's
requests must all succeed and the broker's RSS stay under 64 MB. Also: a batch whose client goes
away stops, and `hsm-broker --check` refuses connection caps the descriptor limit cannot carry.

Usage: hostile_flood_test.py BIN_DIR [SECONDS]   (HSMB_FLOOD_SECONDS, default 12)"""
import base64
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker_rig import Broker, UnixConnection  # noqa: E402

BIN = sys.argv[1]
SECONDS = float(sys.argv[2] if len(sys.argv) > 2 else os.environ.get("HSMB_FLOOD_SECONDS", "12"))
RSS_LIMIT_KIB = 64 * 1024

# Run as nobody: every kind of hostile connection at once, for SECONDS.
FLOOD = r'''
import socket, sys, threading, time
path, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
end = time.time() + seconds
held = []
def tcp():
    return socket.create_connection(("127.0.0.1", port), timeout=5)
def unix():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5); s.connect(path); return s
def hold(make, n):  # idle connections: as many as the broker takes, and more
    for _ in range(n):
        try: held.append(make())
        except OSError: time.sleep(0.01)
def slow(make):  # a header a byte at a time
    while time.time() < end:
        try:
            s = make(); s.sendall(b"POST /v1/transit/random HTTP/1.1\r\n")
            while time.time() < end: s.sendall(b"X"); time.sleep(0.2)
        except OSError: time.sleep(0.05)
def huge(make):  # chunk extensions without end
    while time.time() < end:
        try:
            s = make(); s.sendall(b"POST /v1/transit/random HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;")
            for _ in range(256): s.sendall(b"e" * 65536)
        except OSError: time.sleep(0.01)
def smuggle(make):
    while time.time() < end:
        try:
            s = make(); s.sendall(b"POST /v1/transit/random HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nGET /v1/transit/random HTTP/1.1\r\n\r\n"); s.recv(4096); s.close()
        except OSError: time.sleep(0.01)
threads = [threading.Thread(target=hold, args=(tcp, 4500)), threading.Thread(target=hold, args=(unix, 400))]
for make in (tcp, unix):
    threads += [threading.Thread(target=slow, args=(make,)) for _ in range(20)]
    threads += [threading.Thread(target=huge, args=(make,)) for _ in range(2)]
    threads += [threading.Thread(target=smuggle, args=(make,)) for _ in range(2)]
for t in threads: t.daemon = True; t.start()
while time.time() < end: time.sleep(0.1)
print(f"flood: held {len(held)} idle connections", flush=True)
'''


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def flood_test(tmp: str, failures: list):
    broker = Broker(BIN, tmp, socket_mode="0666")
    try:
        os.chmod(tmp, 0o755)
        status, _ = broker.request("POST", "/v1/transit/keys/mine", {"type": "aes256-gcm96"})
        assert status == 200
        flood = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", FLOOD,
                                  broker.socket_path, str(broker.port), str(SECONDS)])
        stop = time.time() + SECONDS
        counts = {"ok": 0, "failed": 0}
        samples = []
        peak = [broker.rss_kib()]

        def watch_memory():
            while time.time() < stop:
                peak[0] = max(peak[0], broker.rss_kib())
                time.sleep(0.05)

        watcher = threading.Thread(target=watch_memory)
        watcher.start()
        time.sleep(1)  # the flood gets going: the point is root's requests during it, not before
        while time.time() < stop:
            try:
                conn = UnixConnection(broker.socket_path, timeout=10)
                conn.request("POST", "/v1/transit/encrypt/mine", body='{"plaintext":"%s"}' % b64(b"payroll"))
                r = conn.getresponse()
                body = r.read()
                conn.close()
                ok = r.status == 200
            except OSError as e:
                ok, body = False, repr(e).encode()
            counts["ok" if ok else "failed"] += 1
            if not ok and len(samples) < 5:
                samples.append(body[:200])
        watcher.join()
        flood.wait(30)
        print(f"root on the Unix socket during the flood: {counts['ok']} ok, {counts['failed']} failed; "
              f"broker RSS peak {peak[0] // 1024} MB")
        if counts["failed"] or counts["ok"] < 50:
            failures.append(f"root's requests during the flood: {counts} {samples}")
        if peak[0] >= RSS_LIMIT_KIB:
            failures.append(f"broker RSS reached {peak[0]} KiB")
        status, members = broker.request("GET", "/v1/broker/members")
        m = members["data"]["members"][0]
        if m["state"] != "serving" or m["worker_restarts"] or m["errors"]:
            failures.append(f"member after the flood: {m}")
    finally:
        broker.stop()


def abandoned_batch_test(tmp: str, failures: list):
    broker = Broker(BIN, tmp)
    try:
        status, _ = broker.request("POST", "/v1/transit/keys/slow", {"type": "rsa-4096"})
        assert status == 200
        requests = lambda: broker.request("GET", "/v1/broker/members")[1]["data"]["members"][0]["requests"]
        before = requests()
        batch = '{"batch_input":[%s]}' % ",".join(['{"input":"%s"}' % b64(b"x")] * 1000)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(broker.socket_path)
        s.sendall(b"POST /v1/transit/sign/slow HTTP/1.1\r\nHost: b\r\nContent-Length: %d\r\n\r\n%s" %
                  (len(batch), batch.encode()))
        time.sleep(0.5)  # the batch is under way
        s.close()
        settled, last = time.time() + 10, -1
        while time.time() < settled:  # until the count stops moving
            now = requests()
            if now == last:
                break
            last = now
            time.sleep(0.5)
        ran = last - before
        print(f"abandoned batch of 1000 RSA-4096 signatures: {ran} ran")
        if ran >= 500:
            failures.append(f"{ran} of 1000 batch items ran after the client went away")
        if "client gone" not in broker.log():
            failures.append("the broker did not log the abandoned batch")
    finally:
        broker.stop()


def descriptor_check_test(tmp: str, failures: list):
    config = os.path.join(tmp, "small.yaml")
    with open(config, "w") as f:
        f.write(f"""listen:
  unix: {{ path: {tmp}/x.sock, max_connections: 600 }}
  http: {{ address: "127.0.0.1:1", max_connections: 600 }}
members:
  - {{ name: a, module: /usr/lib/softhsm/libsofthsm2.so, token_label: a, pin: {{ value: "1" }} }}
""")
    r = subprocess.run(["prlimit", "--nofile=1024:1024", os.path.join(BIN, "hsm-broker"), "--config", config, "--check"],
                       capture_output=True, text=True)
    print(f"--check with 1,200 connections and 1,024 descriptors: exit {r.returncode}: {r.stderr.strip()}")
    if r.returncode == 0 or "RLIMIT_NOFILE" not in r.stderr:
        failures.append(f"--check accepted caps the descriptor limit cannot carry: {r.stdout} {r.stderr}")
    r = subprocess.run(["prlimit", "--nofile=4096:4096", os.path.join(BIN, "hsm-broker"), "--config", config, "--check"],
                       capture_output=True, text=True)
    if "RLIMIT_NOFILE" in r.stderr:
        failures.append(f"--check refused caps that fit: {r.stderr}")


def main() -> int:
    failures = []
    for test in (flood_test, abandoned_batch_test, descriptor_check_test):
        with tempfile.TemporaryDirectory() as tmp:
            test(tmp, failures)
    print(f"{3 - min(3, len(failures))} passed, {len(failures)} failed")
    for f in failures:
        print("failed:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
