"""deploy/kubernetes: every manifest parses and passes kubectl's offline client-side decoding
(`kubectl label --local`: kubectl needs a server for `apply/create --dry-run=client`, and has no
schema offline), a strict schema of the Kubernetes fields these manifests use (unknown or
mistyped fields fail, as the API server's strict field validation would), the properties the
deployment relies on (native sidecar, probes, non-root, read-only root, no capabilities, seccomp,
resources, Secret and ConfigMap mounts, the KMS socket path), the broker configurations pass
`hsm-broker --check`, and the probes' exact commands work against a running broker.

usage: kubernetes_manifests_test.py SOURCE_DIR BIN_DIR"""
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from broker_rig import Broker  # noqa: E402

SRC, BIN = sys.argv[1], sys.argv[2]
KDIR = os.path.join(SRC, "deploy", "kubernetes")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


# ---- a strict subset of the Kubernetes API schema (core/v1, apps/v1, apiserver.config.k8s.io/v1)
QUANTITY = re.compile(r"^([0-9]+(\.[0-9]+)?)(m|k|Ki|Mi|Gi|M|G)?$")


def quantity(v, path):
    if isinstance(v, int) or (isinstance(v, str) and QUANTITY.match(v)):
        return
    failures.append(f"{path}: not a quantity: {v!r}")


def duration(v, path):
    if not (isinstance(v, str) and re.match(r"^([0-9]+(ms|s|m|h))+$", v)):
        failures.append(f"{path}: not a duration: {v!r}")


def string_map(v, path):
    if not isinstance(v, dict) or not all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()):
        failures.append(f"{path}: not a map of strings")


def strings(v, path):
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        failures.append(f"{path}: not a list of strings")


def one_of(*values):
    def f(v, path):
        if v not in values:
            failures.append(f"{path}: {v!r} is not one of {values}")
    return f


def list_of(schema):
    return ("list", schema)


META = {"name": str, "namespace": str, "labels": string_map, "annotations": string_map}
EXEC = {"command": strings}
PROBE = {"exec": EXEC, "periodSeconds": int, "timeoutSeconds": int, "failureThreshold": int,
         "successThreshold": int, "initialDelaySeconds": int}
SECCOMP = {"type": one_of("RuntimeDefault", "Localhost", "Unconfined"), "localhostProfile": str}
CAPS = {"drop": strings, "add": strings}
CONTAINER_SC = {"runAsUser": int, "runAsGroup": int, "runAsNonRoot": bool, "allowPrivilegeEscalation": bool,
                "readOnlyRootFilesystem": bool, "capabilities": CAPS, "seccompProfile": SECCOMP, "privileged": bool}
POD_SC = {"runAsUser": int, "runAsGroup": int, "runAsNonRoot": bool, "fsGroup": int, "seccompProfile": SECCOMP,
          "supplementalGroups": list_of(int)}
RESOURCES = {"requests": {"cpu": quantity, "memory": quantity}, "limits": {"cpu": quantity, "memory": quantity}}
ENV = {"name": str, "value": str}
MOUNT = {"name": str, "mountPath": str, "readOnly": bool, "subPath": str}
CONTAINER = {"name": str, "image": str, "command": strings, "args": strings, "env": list_of(ENV),
             "restartPolicy": one_of("Always"), "startupProbe": PROBE, "readinessProbe": PROBE,
             "livenessProbe": PROBE, "resources": RESOURCES, "securityContext": CONTAINER_SC,
             "volumeMounts": list_of(MOUNT), "imagePullPolicy": one_of("Always", "IfNotPresent", "Never")}
VOLUME = {"name": str,
          "emptyDir": {"medium": one_of("", "Memory"), "sizeLimit": quantity},
          "configMap": {"name": str, "defaultMode": int, "items": list_of({"key": str, "path": str})},
          "secret": {"secretName": str, "defaultMode": int, "items": list_of({"key": str, "path": str})},
          "hostPath": {"path": str, "type": one_of("", "Directory", "DirectoryOrCreate", "File", "Socket")}}
POD_SPEC = {"securityContext": POD_SC, "initContainers": list_of(CONTAINER), "containers": list_of(CONTAINER),
            "volumes": list_of(VOLUME), "terminationGracePeriodSeconds": int, "hostNetwork": bool,
            "priorityClassName": str, "serviceAccountName": str, "automountServiceAccountToken": bool}
POD = {"apiVersion": one_of("v1"), "kind": one_of("Pod"), "metadata": META, "spec": POD_SPEC}
DEPLOYMENT = {"apiVersion": one_of("apps/v1"), "kind": one_of("Deployment"), "metadata": META,
              "spec": {"replicas": int, "selector": {"matchLabels": string_map},
                       "strategy": {"type": one_of("RollingUpdate", "Recreate"),
                                    "rollingUpdate": {"maxUnavailable": int, "maxSurge": int}},
                       "template": {"metadata": META, "spec": POD_SPEC}}}
CONFIGMAP = {"apiVersion": one_of("v1"), "kind": one_of("ConfigMap"), "metadata": META, "data": string_map}
SECRET = {"apiVersion": one_of("v1"), "kind": one_of("Secret"), "metadata": META, "type": str,
          "stringData": string_map, "data": string_map}
KMS = {"apiVersion": one_of("v2"), "name": str, "endpoint": str, "timeout": duration}
ENCRYPTION = {"apiVersion": one_of("apiserver.config.k8s.io/v1"), "kind": one_of("EncryptionConfiguration"),
              "resources": list_of({"resources": strings,
                                    "providers": list_of({"kms": KMS, "identity": {}, "aescbc": dict,
                                                          "aesgcm": dict, "secretbox": dict})})}
SCHEMAS = {"Pod": POD, "Deployment": DEPLOYMENT, "ConfigMap": CONFIGMAP, "Secret": SECRET,
           "EncryptionConfiguration": ENCRYPTION}
REQUIRED = [(CONTAINER, ("name", "image")), (VOLUME, ("name",)), (MOUNT, ("name", "mountPath")), (KMS, ("name", "endpoint"))]


def validate(value, schema, path):
    if isinstance(schema, tuple) and schema[0] == "list":
        if not isinstance(value, list):
            failures.append(f"{path}: not a list")
            return
        for i, item in enumerate(value):
            validate(item, schema[1], f"{path}[{i}]")
    elif isinstance(schema, dict):
        if not isinstance(value, dict):
            failures.append(f"{path}: not an object")
            return
        for k, v in value.items():
            if k not in schema:
                failures.append(f"{path}.{k}: unknown field")
            else:
                validate(v, schema[k], f"{path}.{k}")
        for required_by, fields in REQUIRED:
            if schema is required_by:
                failures.extend(f"{path}.{f}: required" for f in fields if f not in value)
    elif schema in (str, int, bool):
        if type(value) is not schema:
            failures.append(f"{path}: {value!r} is not {schema.__name__}")
    elif schema is dict:
        if not isinstance(value, dict):
            failures.append(f"{path}: not an object")
    else:
        schema(value, path)


# ---- load everything
manifests = {}  # file -> [objects]
for root, _, files in os.walk(KDIR):
    for f in sorted(files):
        if f.endswith(".yaml"):
            p = os.path.join(root, f)
            with open(p) as fh:
                docs = [d for d in yaml.safe_load_all(fh) if d is not None]
            manifests[os.path.relpath(p, KDIR)] = docs
check(len(manifests) >= 7, f"manifests found: {sorted(manifests)}")

kubectl = shutil.which("kubectl")
for name, docs in manifests.items():
    objs = [d for d in docs if isinstance(d, dict) and "kind" in d]
    if not objs:
        continue  # a broker configuration (checked below)
    for d in objs:
        validate(d, SCHEMAS.get(d["kind"], {}), f"{name}:{d['kind']}")
    if kubectl:
        env = dict(os.environ, KUBECONFIG="/dev/null")
        r = subprocess.run([kubectl, "label", "--local", "-f", os.path.join(KDIR, name), "hsm-broker/checked=true",
                            "-o", "name"], capture_output=True, text=True, env=env, timeout=60)
        check(r.returncode == 0, f"kubectl on {name}: {r.stderr.strip()}")
        check(len(r.stdout.split()) == len(objs), f"kubectl decoded {r.stdout.split()} from {name}")
if not kubectl:
    print("kubectl not installed: only the schema check ran")


def one(name, kind):
    objs = [d for d in manifests[name] if d.get("kind") == kind]
    check(len(objs) == 1, f"{name}: one {kind}")
    return objs[0]


def hardened(c, path, non_root):
    sc = c.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, f"{path}: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, f"{path}: allowPrivilegeEscalation false")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{path}: drop ALL capabilities")
    r = c.get("resources", {})
    check("memory" in r.get("requests", {}) and "memory" in r.get("limits", {}), f"{path}: memory request and limit")
    if non_root:
        check(sc.get("runAsUser", 1) != 0, f"{path}: not root")


def mounts(c):
    return {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}


def broker_sidecar(spec, path):
    inits = [c for c in spec.get("initContainers", []) if c["name"] == "hsm-broker"]
    check(len(inits) == 1, f"{path}: the broker is an init container")
    b = inits[0]
    check(b.get("restartPolicy") == "Always", f"{path}: native sidecar (restartPolicy: Always)")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        check("exec" in b.get(probe, {}), f"{path}: {probe}")
    return b


# ---- the sidecar pod and deployment
pod = one("sidecar/pod.yaml", "Pod")
spec = pod["spec"]
psc = spec.get("securityContext", {})
check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "sidecar: pod runs as non-root")
check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "sidecar: seccomp RuntimeDefault")
broker = broker_sidecar(spec, "sidecar")
for c in spec["initContainers"] + spec["containers"]:
    hardened(c, f"sidecar/{c['name']}", True)
vols = {v["name"]: v for v in spec["volumes"]}
bm = mounts(broker)
socket_vol = [n for n, p in bm.items() if p == "/run/hsm-broker"]
check(len(socket_vol) == 1 and "emptyDir" in vols[socket_vol[0]], "sidecar: socket directory is an emptyDir")
for c in spec["containers"]:
    check(mounts(c).get(socket_vol[0]) == "/run/hsm-broker", f"sidecar: {c['name']} shares the socket volume")
secret_vols = [n for n in bm if "secret" in vols.get(n, {})]
config_vols = [n for n in bm if "configMap" in vols.get(n, {})]
check(len(secret_vols) == 1 and len(config_vols) == 1, "sidecar: PINs from a Secret, config from a ConfigMap")
deployment = one("sidecar/deployment.yaml", "Deployment")
check(deployment["spec"]["template"]["spec"] == spec, "deployment's pod template is pod.yaml's spec")
check(deployment["spec"]["selector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items(),
      "deployment selector matches its template")

configmap = one("sidecar/configmap.yaml", "ConfigMap")
secret = one("sidecar/secret.yaml", "Secret")
check(vols[config_vols[0]]["configMap"]["name"] == configmap["metadata"]["name"], "sidecar: ConfigMap name")
check(vols[secret_vols[0]]["secret"]["secretName"] == secret["metadata"]["name"], "sidecar: Secret name")
config_path = broker["command"][broker["command"].index("--config") + 1]
check(config_path == bm[config_vols[0]] + "/broker.yaml" and "broker.yaml" in configmap["data"],
      "sidecar: --config names the ConfigMap's broker.yaml")
sidecar_config = yaml.safe_load(configmap["data"]["broker.yaml"])
check(sidecar_config["listen"]["unix"]["path"] == "/run/hsm-broker/broker.sock", "sidecar: broker socket path")
for m in sidecar_config["members"]:
    pin = m["pin"]["file"]
    check(os.path.dirname(pin) == bm[secret_vols[0]] and os.path.basename(pin) in secret["stringData"],
          f"sidecar: member {m['name']} PIN is a file of the Secret")
check(any(p == sidecar_config["state_dir"] for p in bm.values()), "sidecar: state_dir is a writable volume")

# ---- the KMS static pod and EncryptionConfiguration
kpod = one("kms/kms-plugin.yaml", "Pod")
kspec = kpod["spec"]
check(kpod["metadata"].get("namespace") == "kube-system", "kms: kube-system")
check(kspec.get("hostNetwork") is True, "kms: host network (runs before the CNI)")
check(kspec.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault", "kms: seccomp")
kbroker = broker_sidecar(kspec, "kms")
for c in kspec["initContainers"] + kspec["containers"]:
    hardened(c, f"kms/{c['name']}", False)
plugin = [c for c in kspec["containers"] if c["name"] == "kms-plugin"][0]
cmd = plugin["command"]
check(cmd[0] == "/usr/bin/hsm-kms-plugin", "kms: runs hsm-kms-plugin")
arg = lambda flag: cmd[cmd.index(flag) + 1] if flag in cmd else None  # noqa: E731
enc = one("kms/encryption-config.yaml", "EncryptionConfiguration")
kms = enc["resources"][0]["providers"][0]["kms"]
check(kms["apiVersion"] == "v2" and kms["endpoint"] == "unix://" + arg("--listen"), "kms: endpoint is the plugin's socket")
check("identity" in enc["resources"][0]["providers"][-1], "kms: identity last (reads unencrypted Secrets)")
kvols = {v["name"]: v for v in kspec["volumes"]}
pm = mounts(plugin)
check(any(kvols[n].get("hostPath", {}).get("path") == os.path.dirname(arg("--listen")) and p == os.path.dirname(arg("--listen"))
          for n, p in pm.items()), "kms: the plugin's socket directory is a hostPath the apiserver can mount")
kcfg = yaml.safe_load(open(os.path.join(KDIR, "kms", "broker.yaml")))
check(arg("--broker-socket") == kcfg["listen"]["unix"]["path"], "kms: --broker-socket is the broker's listen.unix.path")
check(any(p == os.path.dirname(arg("--broker-socket")) and n in mounts(kbroker) for n, p in pm.items()),
      "kms: plugin and broker share the socket volume")


# ---- the broker configurations pass hsm-broker --check (paths moved into a temporary folder, and
# the vendor library placeholder replaced by SoftHSM2's, which --check requires to be readable)
def remapped(cfg, tmp):
    cfg = copy.deepcopy(cfg)
    cfg["state_dir"] = os.path.join(tmp, "state")
    cfg["listen"]["unix"]["path"] = os.path.join(tmp, "broker.sock")
    for m in cfg["members"]:
        pin = os.path.join(tmp, os.path.basename(m["pin"]["file"]))
        with open(pin, "w") as f:
            f.write("1234\n")
        m["pin"]["file"] = pin
        m["module"] = "/usr/lib/softhsm/libsofthsm2.so"
    return cfg


for label, cfg in (("sidecar ConfigMap", sidecar_config), ("kms/broker.yaml", kcfg)):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "broker.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(remapped(cfg, tmp), f)
        r = subprocess.run([os.path.join(BIN, "hsm-broker"), "--config", path, "--check"], capture_output=True, text=True)
        check(r.returncode == 0, f"{label}: hsm-broker --check: {r.stdout}{r.stderr}")


# ---- the probes' exact commands against a running broker
def probe_commands():
    out = []
    for name, p in (("sidecar", broker), ("kms", kbroker)):
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            out.append((f"{name} {probe}", probe, p[probe]["exec"]["command"]))
    return out


def run_probe(command, socket_path):
    argv = [os.path.join(BIN, "hsmctl") if a == "/usr/bin/hsmctl" else socket_path if a == "/run/hsm-broker/broker.sock" else a
            for a in command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10)


with tempfile.TemporaryDirectory() as tmp:
    b = Broker(BIN, tmp)
    try:
        for label, _, command in probe_commands():
            r = run_probe(command, b.socket_path)
            check(r.returncode == 0, f"{label} {command} on a serving broker: exit {r.returncode} {r.stderr}")
    finally:
        b.stop()
    for label, _, command in probe_commands():
        r = run_probe(command, os.path.join(tmp, "absent.sock"))
        check(r.returncode != 0, f"{label} fails when the broker is unreachable")

# A broker whose only member cannot be reached: not ready, but alive (no restart for an HSM outage).
with tempfile.TemporaryDirectory() as tmp:
    cfg = {"listen": {"unix": {"path": os.path.join(tmp, "b.sock"), "mode": "0600"}},
           "state_dir": os.path.join(tmp, "state"),
           "members": [{"name": "gone", "module": "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so",
                        "token_label": "gone", "pin": {"value": "1234"},
                        "env": {"P11_KIT_SERVER_ADDRESS": "unix:path=" + os.path.join(tmp, "no-hsm.sock")}}]}
    with open(os.path.join(tmp, "b.yaml"), "w") as f:
        yaml.safe_dump(cfg, f)
    log = open(os.path.join(tmp, "b.log"), "w")
    proc = subprocess.Popen([os.path.join(BIN, "hsm-broker"), "--config", os.path.join(tmp, "b.yaml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and run_probe(["/usr/bin/hsmctl", "--socket", "/run/hsm-broker/broker.sock", "members"],
                                                       cfg["listen"]["unix"]["path"]).returncode != 0:
            time.sleep(0.05)  # polling for the socket, bounded
        for label, probe, command in probe_commands():
            r = run_probe(command, cfg["listen"]["unix"]["path"])
            if probe == "livenessProbe":
                check(r.returncode == 0, f"{label}: alive while no member serves (exit {r.returncode} {r.stderr})")
            else:
                check(r.returncode != 0, f"{label}: not ready while no member serves")
    finally:
        proc.terminate()
        proc.wait(timeout=15)

for f in failures:
    print("FAIL:", f)
print(f"{len(manifests)} manifests; {len(failures)} failures")
sys.exit(1 if failures else 0)
