#!/usr/bin/env python3
"""An unmodified Vault client library (hvac, from Debian) against hsm-broker's TCP listener:
create keys, encrypt, decrypt, sign, verify, hmac, random, read and list keys."""
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import hvac

BIN = sys.argv[1]


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(tmp: str) -> subprocess.Popen:
    conf = os.path.join(tmp, "softhsm2.conf")
    os.makedirs(os.path.join(tmp, "tokens"))
    with open(conf, "w") as f:
        f.write(f"directories.tokendir = {tmp}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "vault-test", "--pin", "1234",
                    "--so-pin", "123456"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    with open(os.path.join(tmp, "broker.yaml"), "w") as f:
        f.write(f"""listen:
  unix: {{ path: {tmp}/broker.sock }}
  http: {{ address: "127.0.0.1:{port}" }}
members:
  - name: hsm-a
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: vault-test
    pin: {{ value: "1234" }}
    env: {{ SOFTHSM2_CONF: {conf} }}
""")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(os.path.join(tmp, "notify.sock"))
    notify.settimeout(20)
    log = open(os.path.join(tmp, "broker.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "hsm-broker"), "--config", os.path.join(tmp, "broker.yaml")],
                            env=dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify.sock")),
                            stdout=log, stderr=log)
    while b"READY=1" not in notify.recv(512):  # raises socket.timeout when the broker never gets ready
        pass
    proc.port = port
    return proc


def run(client: hvac.Client) -> list:
    transit = client.secrets.transit
    checks = []

    def check(name, ok):
        checks.append((name, bool(ok)))
        print(("ok   " if ok else "FAIL ") + name)

    transit.create_key(name="orders")
    ct = transit.encrypt_data(name="orders", plaintext=b64(b"hello vault"))["data"]["ciphertext"]
    check("encrypt returns vault:v1:", ct.startswith("vault:v1:"))
    pt = transit.decrypt_data(name="orders", ciphertext=ct)["data"]["plaintext"]
    check("decrypt round trip", base64.b64decode(pt) == b"hello vault")

    transit.create_key(name="signer", key_type="ecdsa-p256")
    sig = transit.sign_data(name="signer", hash_input=b64(b"msg"))["data"]["signature"]
    check("sign", sig.startswith("vault:v1:"))
    check("verify valid", transit.verify_signed_data(name="signer", hash_input=b64(b"msg"), signature=sig)["data"]["valid"])
    check("verify invalid", not transit.verify_signed_data(name="signer", hash_input=b64(b"other"), signature=sig)["data"]["valid"])

    mac = transit.generate_hmac(name="orders", hash_input=b64(b"data"))["data"]["hmac"]
    check("hmac with an aes key, as in Vault", mac.startswith("vault:v1:"))
    rnd = transit.generate_random_bytes(n_bytes=24)["data"]["random_bytes"]
    check("random bytes", len(base64.b64decode(rnd)) == 24)
    info = transit.read_key(name="signer")["data"]
    check("read key", info["type"] == "ecdsa-p256" and "BEGIN PUBLIC KEY" in info["keys"]["1"]["public_key"])
    check("list keys", {"orders", "signer"} <= set(transit.list_keys()["data"]["keys"]))
    transit.rotate_key(name="orders")
    check("rotate", transit.read_key(name="orders")["data"]["latest_version"] == 2)
    try:
        transit.encrypt_data(name="no-such-key", plaintext=b64(b"x"))
        check("unknown key raises", False)
    except hvac.exceptions.InvalidPath:
        check("unknown key raises InvalidPath (404)", True)
    return checks


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="hsmb-hvac-")
    proc = None
    try:
        proc = start_broker(tmp)
        client = hvac.Client(url=f"http://127.0.0.1:{proc.port}", token="any-token")
        checks = run(client)
    except Exception as e:  # report the broker's log with any failure
        print(f"FAIL: {e!r}")
        if os.path.exists(os.path.join(tmp, "broker.log")):
            print(open(os.path.join(tmp, "broker.log")).read()[-3000:])
        checks = [("setup", False)]
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)
    failed = sum(1 for _, ok in checks if not ok)
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
