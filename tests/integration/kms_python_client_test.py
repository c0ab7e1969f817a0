"""hsm-kms-plugin from a second gRPC implementation: Python's grpcio (Debian's python3-grpcio),
with stubs generated at test time from kms_plugin/proto/api.proto by protoc and
grpc_python_plugin (protobuf-compiler-grpc). Status, Encrypt and Decrypt of 32-byte data keys,
a wrong key_id refused with INVALID_ARGUMENT, and a missing key reported by Status.

usage: kms_python_client_test.py SOURCE_DIR BIN_DIR"""
import os
import subprocess
import sys
import tempfile
import time

import grpc

sys.path.insert(0, os.path.dirname(__file__))
from broker_rig import Broker  # noqa: E402

SRC, BIN = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def await_socket(path, proc, log):
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if time.monotonic() > deadline or proc.poll() is not None:
            sys.exit("hsm-kms-plugin did not listen:\n" + open(log).read())
        time.sleep(0.02)  # polling for the socket, bounded


with tempfile.TemporaryDirectory() as tmp:
    gen = os.path.join(tmp, "gen")
    os.makedirs(gen)
    proto_dir = os.path.join(SRC, "kms_plugin", "proto")
    subprocess.run(["protoc", f"--proto_path={proto_dir}", f"--python_out={gen}", f"--grpc_python_out={gen}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", os.path.join(proto_dir, "api.proto")],
                   check=True)
    sys.path.insert(0, gen)
    import api_pb2  # noqa: E402
    import api_pb2_grpc  # noqa: E402

    os.makedirs(os.path.join(tmp, "broker"))
    broker = Broker(BIN, os.path.join(tmp, "broker"))
    plugins = []
    try:
        subprocess.run([os.path.join(BIN, "hsmctl"), "--socket", broker.socket_path, "keys", "create", "kek"],
                       check=True, stdout=subprocess.DEVNULL)

        def start_plugin(key):
            sock = os.path.join(tmp, f"kms-{key}.sock")
            log = os.path.join(tmp, f"plugin-{key}.log")
            proc = subprocess.Popen([os.path.join(BIN, "hsm-kms-plugin"), "--listen", sock, "--broker-socket",
                                     broker.socket_path, "--key", key], stdout=open(log, "w"), stderr=subprocess.STDOUT)
            plugins.append(proc)
            await_socket(sock, proc, log)
            return api_pb2_grpc.KeyManagementServiceStub(grpc.insecure_channel("unix:" + sock))

        kms = start_plugin("kek")
        status = kms.Status(api_pb2.StatusRequest(), timeout=5)
        check(status.version == "v2" and status.healthz == "ok" and len(status.key_id) == 32, f"Status: {status}")
        deks = [os.urandom(32) for _ in range(20)]
        encrypted = [kms.Encrypt(api_pb2.EncryptRequest(plaintext=d, uid=f"py-{i}"), timeout=5) for i, d in enumerate(deks)]
        check(all(e.key_id == status.key_id for e in encrypted), "Encrypt gives Status's key_id")
        check(all(len(e.ciphertext) <= 1024 for e in encrypted), "ciphertexts under 1 kB")
        check(len({e.ciphertext for e in encrypted}) == len(deks), "every ciphertext differs")
        for d, e in zip(deks, encrypted):
            r = kms.Decrypt(api_pb2.DecryptRequest(ciphertext=e.ciphertext, key_id=e.key_id, uid="py"), timeout=5)
            check(r.plaintext == d, "Decrypt gives the plaintext back")
        try:
            kms.Decrypt(api_pb2.DecryptRequest(ciphertext=encrypted[0].ciphertext, key_id="f" * 32), timeout=5)
            check(False, "a wrong key_id was accepted")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"wrong key_id: {e.code()} {e.details()}")
        missing = start_plugin("absent")
        st = missing.Status(api_pb2.StatusRequest(), timeout=5)
        check(st.version == "v2" and st.healthz != "ok" and "404" in st.healthz, f"missing key: {st}")
    finally:
        for p in plugins:
            p.terminate()
            p.wait(timeout=10)
        broker.stop()

for f in failures:
    print("FAIL:", f)
print(f"python grpcio client: {len(failures)} failures")
sys.exit(1 if failures else 0)
