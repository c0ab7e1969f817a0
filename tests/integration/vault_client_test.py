#!/usr/bin/env python3
"""Unmodified Vault clients against hsm-broker's TCP listener: hvac (Debian's) drives every documented
Transit and sys route (README "Differences from Vault"), node-vault its Transit calls (and generic
write/read for the rest). Named hvac methods where hvac 0.11 has them, client.write/read otherwise."""
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import hvac

BIN = sys.argv[1]
NODE_MODULES = sys.argv[2] if len(sys.argv) > 2 else ""  # node-vault, from deploy/install-deps.sh


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


def expect_error(fn, status_class):
    """True when fn raises hvac's exception for that status (hvac maps 400 to InvalidRequest)."""
    try:
        fn()
        return False
    except status_class:
        return True


def run(client: hvac.Client, tmp: str) -> list:
    transit = client.secrets.transit
    checks = []

    def check(name, ok):
        checks.append((name, bool(ok)))
        print(("ok   " if ok else "FAIL ") + name)

    # sys routes the clients call first
    check("sys/health", client.sys.read_health_status(method="GET")["initialized"])
    check("sys/seal-status", client.sys.read_seal_status()["sealed"] is False)
    check("sys/init", client.sys.is_initialized())
    check("sys/mounts", "transit/" in client.sys.list_mounted_secrets_engines()["data"])
    check("auth/token/lookup-self", "policies" in client.auth.token.lookup_self()["data"])

    transit.create_key(name="orders")
    ct = transit.encrypt_data(name="orders", plaintext=b64(b"hello vault"))["data"]["ciphertext"]
    check("encrypt returns vault:v1:", ct.startswith("vault:v1:"))
    pt = transit.decrypt_data(name="orders", ciphertext=ct)["data"]["plaintext"]
    check("decrypt round trip", base64.b64decode(pt) == b"hello vault")
    check("encrypt nonce (convergent only) is 400",
          expect_error(lambda: transit.encrypt_data(name="orders", plaintext=b64(b"x"), nonce=b64(b"123456789012")),
                       hvac.exceptions.InvalidRequest))

    # batches: one failed item is 400 (hvac raises); partial_failure_response_code changes it
    check("batch with a failed item is 400",
          expect_error(lambda: transit.encrypt_data(name="orders", plaintext="", batch_input=[
              {"plaintext": b64(b"a")}, {"plaintext": "not base64!"}]), hvac.exceptions.InvalidRequest))
    r = client.adapter.post("/v1/transit/encrypt/orders", json={"partial_failure_response_code": 207, "batch_input": [
        {"plaintext": b64(b"a")}, {"plaintext": "not base64!"}]}, raise_exception=False)
    check("partial_failure_response_code 207", r.status_code == 207 and "error" in r.json()["data"]["batch_results"][1])
    good = transit.encrypt_data(name="orders", plaintext="", batch_input=[{"plaintext": b64(b"a")}, {"plaintext": b64(b"b")}])
    check("batch all good is 200", len(good["data"]["batch_results"]) == 2)

    transit.create_key(name="signer", key_type="ecdsa-p256")
    sig = transit.sign_data(name="signer", hash_input=b64(b"msg"))["data"]["signature"]
    check("sign", sig.startswith("vault:v1:"))
    check("verify valid", transit.verify_signed_data(name="signer", hash_input=b64(b"msg"), signature=sig)["data"]["valid"])
    check("verify invalid", not transit.verify_signed_data(name="signer", hash_input=b64(b"other"), signature=sig)["data"]["valid"])
    # hvac 0.11 checks hash_algorithm itself and knows no sha3: the generic write sends it
    sig3 = client.write("transit/sign/signer/sha3-256", input=b64(b"msg"))["data"]["signature"]
    check("ecdsa sign/verify sha3-256", client.write("transit/verify/signer/sha3-256", input=b64(b"msg"),
                                                     signature=sig3)["data"]["valid"])

    # RSA-PSS salt_length: auto (the largest), hash, a number; verify with the same setting
    transit.create_key(name="rsa", key_type="rsa-2048")
    for salt in ("auto", "hash", "20"):
        s = client.write("transit/sign/rsa", input=b64(b"doc"), salt_length=salt)["data"]["signature"]
        same = client.write("transit/verify/rsa", input=b64(b"doc"), signature=s, salt_length=salt)["data"]["valid"]
        other = "hash" if salt != "hash" else "20"
        differs = not client.write("transit/verify/rsa", input=b64(b"doc"), signature=s, salt_length=other)["data"]["valid"]
        check(f"rsa pss salt_length={salt}: verifies with it, not with {other}", same and differs)
    check("salt_length too long is 400", expect_error(
        lambda: client.write("transit/sign/rsa", input=b64(b"doc"), salt_length="300"), hvac.exceptions.InvalidRequest))
    check("rsa pss with sha3 (no member offers CKM_SHA3_256) is 400", expect_error(
        lambda: client.write("transit/sign/rsa/sha3-256", input=b64(b"doc")), hvac.exceptions.InvalidRequest))
    s = client.write("transit/sign/rsa/sha3-256", input=b64(b"doc"), signature_algorithm="pkcs1v15")["data"]["signature"]
    check("rsa pkcs1v15 with sha3-256", client.write("transit/verify/rsa/sha3-256", input=b64(b"doc"), signature=s,
                                                     signature_algorithm="pkcs1v15")["data"]["valid"])

    mac = transit.generate_hmac(name="orders", hash_input=b64(b"data"))["data"]["hmac"]
    check("hmac with an aes key, as in Vault", mac.startswith("vault:v1:"))
    check("verify hmac", transit.verify_signed_data(name="orders", hash_input=b64(b"data"), hmac=mac)["data"]["valid"])
    rnd = transit.generate_random_bytes(n_bytes=24)["data"]["random_bytes"]
    check("random bytes", len(base64.b64decode(rnd)) == 24)
    check("random from source all", len(base64.b64decode(client.write("transit/random/all/8")["data"]["random_bytes"])) == 8)
    check("random from an unknown source is 400", expect_error(lambda: client.write("transit/random/hsm9/16"),
                                                               hvac.exceptions.InvalidRequest))
    check("hash sha2-256 hex", transit.hash_data(hash_input=b64(b"abc"))["data"]["sum"] ==
          hashlib.sha256(b"abc").hexdigest())
    check("hash sha2-512 base64", transit.hash_data(hash_input=b64(b"abc"), algorithm="sha2-512", output_format="base64")
          ["data"]["sum"] == b64(hashlib.sha512(b"abc").digest()))
    check("hash sha3-512 (generic write: hvac 0.11 knows no sha3)", client.write("transit/hash/sha3-512", input=b64(b"abc"))
          ["data"]["sum"] == hashlib.sha3_512(b"abc").hexdigest())
    dk = transit.generate_data_key(name="orders", key_type="plaintext")["data"]
    check("datakey plaintext", len(base64.b64decode(dk["plaintext"])) == 32 and dk["ciphertext"].startswith("vault:v1:"))
    check("datakey wrapped", "plaintext" not in transit.generate_data_key(name="orders", key_type="wrapped")["data"])

    info = transit.read_key(name="signer")["data"]
    check("read key", info["type"] == "ecdsa-p256" and "BEGIN PUBLIC KEY" in info["keys"]["1"]["public_key"])
    check("supports_* of an ecdsa key", info["supports_signing"] and not info["supports_encryption"]
          and not info["supports_decryption"] and not info["supports_derivation"])
    aes = transit.read_key(name="orders")["data"]
    check("supports_* of an aes key", aes["supports_encryption"] and aes["supports_decryption"]
          and not aes["supports_signing"] and not aes["supports_derivation"])
    transit.create_key(name="edkey", key_type="ed25519")
    ed = transit.read_key(name="edkey")["data"]["keys"]["1"]
    check("ed25519 public_key is base64 of 32 raw bytes", len(base64.b64decode(ed["public_key"])) == 32
          and "BEGIN PUBLIC KEY" in ed["public_key_pem"])
    check("list keys", {"orders", "signer"} <= set(transit.list_keys()["data"]["keys"]))
    transit.rotate_key(name="orders")
    check("rotate", transit.read_key(name="orders")["data"]["latest_version"] == 2)
    rewrapped = transit.rewrap_data(name="orders", ciphertext=ct)["data"]["ciphertext"]
    check("rewrap to v2", rewrapped.startswith("vault:v2:"))

    # config: honoured fields, and those refused because keys never leave the HSMs
    transit.update_key_configuration(name="orders", min_decryption_version=1, deletion_allowed=True)
    check("config deletion_allowed", transit.read_key(name="orders")["data"]["deletion_allowed"])
    check("config exportable is 400", expect_error(
        lambda: transit.update_key_configuration(name="orders", exportable=True), hvac.exceptions.InvalidRequest))
    check("create exportable is 400", expect_error(
        lambda: transit.create_key(name="exp", exportable=True), hvac.exceptions.InvalidRequest))
    client.write("transit/keys/orders/config", auto_rotate_period="24h")
    check("config auto_rotate_period", transit.read_key(name="orders")["data"]["auto_rotate_period"] == 86400)
    client.write("transit/keys/yearly", auto_rotate_period=31536000)
    check("create auto_rotate_period", transit.read_key(name="yearly")["data"]["auto_rotate_period"] == 31536000)
    check("auto_rotate_period under 1h is 400", expect_error(
        lambda: client.write("transit/keys/orders/config", auto_rotate_period="10m"), hvac.exceptions.InvalidRequest))

    # csr and set-certificate: a CSR the HSM key signed, a CA's chain stored with the key
    csr = client.write("transit/keys/signer/csr")["data"]["csr"]
    with open(os.path.join(tmp, "signer.csr"), "w") as f:
        f.write(csr)
    ca = subprocess.run(f"cd {tmp} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
                        f"-out ca.pem -subj /CN=test-ca -days 1 && openssl req -in signer.csr -verify -noout && "
                        f"openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out signer.pem -days 1",
                        shell=True, capture_output=True, text=True)
    check("csr verifies with openssl and a CA signs it", ca.returncode == 0)
    chain = open(os.path.join(tmp, "signer.pem")).read() + open(os.path.join(tmp, "ca.pem")).read()
    client.write("transit/keys/signer/set-certificate", certificate_chain=chain)
    stored = transit.read_key(name="signer")["data"]["keys"]["1"].get("certificate_chain", "")
    check("set-certificate stores the chain, returned by key read", stored.count("BEGIN CERTIFICATE") == 2)
    check("set-certificate with another key's certificate is 400", expect_error(
        lambda: client.write("transit/keys/signer/set-certificate", certificate_chain=open(os.path.join(tmp, "ca.pem")).read()),
        hvac.exceptions.InvalidRequest))
    check("csr read (GET)", "BEGIN CERTIFICATE REQUEST" in client.read("transit/keys/signer/csr")["data"]["csr"])

    spec = client.adapter.get("/v1/sys/internal/specs/openapi")
    check("openapi document lists the transit routes", "/transit/hash/{algorithm}" in spec["paths"])

    transit.delete_key(name="orders")
    check("delete key", "orders" not in transit.list_keys()["data"]["keys"])
    try:
        transit.encrypt_data(name="no-such-key", plaintext=b64(b"x"))
        check("unknown key raises", False)
    except hvac.exceptions.InvalidPath:
        check("unknown key raises InvalidPath (404)", True)
    return checks


def run_node_vault(port: int) -> list:
    """The node-vault script against the same broker: its lines are checks like ours."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "node_vault_transit.js")
    r = subprocess.run(["node", script, f"http://127.0.0.1:{port}"], env=dict(os.environ, NODE_PATH=NODE_MODULES),
                       capture_output=True, text=True, timeout=60)
    print(r.stdout, end="")
    checks = [(line[5:], line.startswith("ok   ")) for line in r.stdout.splitlines() if line[:5] in ("ok   ", "FAIL ")]
    if r.returncode != 0 or not checks:
        print(r.stderr)
        checks.append(("node-vault script ran", False))
    return checks


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="hsmb-hvac-")
    proc = None
    try:
        proc = start_broker(tmp)
        client = hvac.Client(url=f"http://127.0.0.1:{proc.port}", token="any-token")
        checks = run(client, tmp)
        if NODE_MODULES:
            checks += run_node_vault(proc.port)
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
