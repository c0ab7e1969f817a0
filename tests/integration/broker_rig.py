"""A real hsm-broker on a fresh SoftHSM2 token, for the Python tests: a Unix socket and a loopback
TCP port, READY awaited through a NOTIFY_SOCKET, HTTP over either without client-side retries."""
import http.client
import json
import os
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UnixConnection(http.client.HTTPConnection):
    """http.client over a Unix socket; never resends (http.client does not retry)."""

    def __init__(self, path: str, timeout: float = 10):
        super().__init__("broker", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Broker:
    def __init__(self, bin_dir: str, tmp: str, extra_yaml: str = "", socket_mode: str = "0600", env=None):
        self.tmp = tmp
        conf = os.path.join(tmp, "softhsm2.conf")
        os.makedirs(os.path.join(tmp, "tokens"), exist_ok=True)
        with open(conf, "w") as f:
            f.write(f"directories.tokendir = {tmp}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
        token_env = dict(os.environ, SOFTHSM2_CONF=conf)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "rig", "--pin", "1234",
                        "--so-pin", "123456"], env=token_env, check=True, stdout=subprocess.DEVNULL)
        self.port = free_port()
        self.socket_path = os.path.join(tmp, "broker.sock")
        self.config_path = os.path.join(tmp, "broker.yaml")
        with open(self.config_path, "w") as f:
            f.write(f"""listen:
  unix: {{ path: {self.socket_path}, mode: "{socket_mode}" }}
  http: {{ address: "127.0.0.1:{self.port}" }}
members:
  - name: hsm-a
    module: /usr/lib/softhsm/libsofthsm2.so
    token_label: rig
    pin: {{ value: "1234" }}
    sessions: 2
    env: {{ SOFTHSM2_CONF: {conf} }}
{extra_yaml}""")
        notify_path = os.path.join(tmp, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        notify.settimeout(20)
        self.log_path = os.path.join(tmp, "broker.log")
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([os.path.join(bin_dir, "hsm-broker"), "--config", self.config_path],
                                     env=dict(os.environ, NOTIFY_SOCKET=notify_path, **(env or {})),
                                     stdout=log, stderr=log)
        while b"READY=1" not in notify.recv(512):  # socket.timeout when the broker never gets ready
            pass
        notify.close()

    def request(self, method: str, path: str, body=None, tcp: bool = False, headers=None):
        """(status, parsed JSON or None) on a fresh connection."""
        conn = (http.client.HTTPConnection("127.0.0.1", self.port, timeout=10) if tcp
                else UnixConnection(self.socket_path))
        try:
            data = json.dumps(body) if isinstance(body, (dict, list)) else body
            conn.request(method, path, body=data, headers=headers or {})
            r = conn.getresponse()
            raw = r.read()
            try:
                return r.status, json.loads(raw) if raw else None
            except ValueError:
                return r.status, raw
        finally:
            conn.close()

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
