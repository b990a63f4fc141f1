"""Building blocks of the reliability suite: the environment the role runs in (OpenBao + a fake
Kubernetes API with a seeded ControlPlane), a fault-injecting HTTP proxy in front of Vault, the inspectors
that read what Vault and the cluster hold (independently of the code under test: plain urllib and the fake's
own state), and the secret scanner of the leak test. Real ``ansible-playbook`` runs (foreground or
background, killable) come from tests/harness/playbook.py (``Playbooks(workdir, isolated=True)``), the audit
log reader from tests/harness/audit.py.

Nothing here imports the collection's module_utils: the suite judges the collection from outside.
"""

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from harness.fake_k8s import FakeKubeApi
from harness.openbao import OpenBaoServer, _clean_env, bao_binary, free_port, is_listening
from harness.relay import Relay, drop, read_request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402  (tools/embedded.py: the sample ControlPlane every environment starts with)

CONTROLPLANE = ("install.tetrate.io/v1alpha1", "controlplanes", "controlplane", "tsb")


# ----------------------------------------------------------------------------------------- OpenBao
def raw_audit_server(workdir):
    """A dev OpenBao whose file audit device logs raw values (``log_raw``): tokens, secret_ids and keys in
    clear, so that the leak test knows every secret the run handled. The audit log lives in the
    server's workdir, outside every directory the leak test scans."""
    return OpenBaoServer(workdir, audit=True, audit_options={"log_raw": "true", "hmac_accessor": "false"})


def new_token(bao, policies, ttl="1h", display_name=None, **extra):
    body = {"policies": policies, "ttl": ttl}
    if display_name:
        body["display_name"] = display_name
    body.update(extra)
    return bao.api("POST", "auth/token/create", body)["auth"]["client_token"]


def token_with_rules(bao, rules, **kwargs):
    name = "rel-" + uuid.uuid4().hex[:8]
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": rules})
    return new_token(bao, [name], **kwargs)


def all_but(*denied):
    """Policy text: every capability everywhere except ``denied`` (paths whose capabilities are 'deny')."""
    rules = 'path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }\n'
    for path in denied:
        rules += 'path "%s" { capabilities = ["deny"] }\n' % path
    return rules


# ----------------------------------------------------------------------------------------- Kubernetes
class Cluster(object):
    """A fake Kubernetes API (in this process) seeded like tools/embedded.py: namespaces tsb, vault,
    istio-system and a ControlPlane with fields of its own (``crds=False``: no ControlPlane CRD at all)."""

    def __init__(self, workdir, crds=True):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.api = FakeKubeApi(install_default_crds=crds).start()
        self.kubeconfig = self.api.write_kubeconfig(os.path.join(self.workdir, "kubeconfig"))
        if crds:
            embedded.seed_controlplane(self.kubeconfig)

    def controlplane(self):
        api_version, plural, name, namespace = CONTROLPLANE
        return self.api.get_object(api_version, plural, name, namespace)

    def writes(self, since=0):
        return [r for r in self.api.requests[since:] if r["method"] in ("POST", "PUT", "PATCH", "DELETE")
                and not r["path"].endswith("/tokenreviews")]

    def mark(self):
        return len(self.api.requests)

    def observe(self, observer):
        """Call ``observer(method, path)`` before the fake API server handles each request."""
        original = self.api.handle

        def handle(method, raw_path, headers, body):
            observer(method, raw_path)
            return original(method, raw_path, headers, body)

        self.api.handle = handle

    def secret_data(self, namespace, name):
        """The decoded data of a Secret, as the API server holds it."""
        obj = self.api.get_object("v1", "secrets", name, namespace) or {}
        return dict((k, base64.b64decode(v).decode()) for k, v in (obj.get("data") or {}).items())

    def stop(self):
        self.api.stop()


def contains_all(before, after, path="spec"):
    """Problems where ``after`` lost something ``before`` held (lists: every element of before still there)."""
    problems = []
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return ["%s is no longer a mapping" % path]
        for key, value in before.items():
            if key not in after:
                problems.append("%s.%s was removed" % (path, key))
            else:
                problems.extend(contains_all(value, after[key], "%s.%s" % (path, key)))
    elif isinstance(before, list):
        if not isinstance(after, list):
            return ["%s is no longer a list" % path]
        for item in before:
            if item not in after:
                problems.append("%s lost %r" % (path, item))
    elif before != after:
        problems.append("%s changed from %r to %r" % (path, before, after))
    return problems


# ----------------------------------------------------------------------------------------- the fault proxy
HOP_HEADERS = ("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection")


class Rule(object):
    """Fire ``action`` once, on the first request matching ``method`` (``"POST|PUT"``: any of them; ``"*"``:
    any method) and ``path`` (a regex searched in
    the path after /v1/): ``when='after'`` once Vault has answered it (the response is then dropped: the
    client never learns the outcome), ``when='before'`` instead of forwarding it (the connection is dropped),
    ``when='answer'`` instead of forwarding it, answering with the (status, body) ``action`` returns."""

    def __init__(self, method, path, action, when="after", drop=True):
        self.drop = drop
        self.methods = method.upper().split("|")
        self.pattern = re.compile(path)
        self.action = action
        self.when = when
        self.fired = threading.Event()
        self.request = None

    def matches(self, method, path):
        return (not self.fired.is_set() and ("*" in self.methods or method in self.methods)
                and bool(self.pattern.search(path)))


class FaultProxy(Relay):
    """An HTTP reverse proxy in front of one Vault (or, as a load balancer, several: each request goes to
    the next upstream that accepts the connection). Logs every request; fires armed rules. Every proxy
    started is stopped after its test (``stop_all``, an autouse fixture of the suite)."""

    started = []

    @classmethod
    def stop_all(cls):
        while cls.started:
            cls.started.pop().stop()

    def __init__(self, upstreams, port=None, keepalive=True):
        self.keepalive = keepalive  # False: one request per connection, so that stop() refuses the very next one
        self.upstreams = list(upstreams)
        self.port = port or free_port()
        self.rules = []
        self.observers = []  # called with (method, path) before every request is forwarded
        self.log = []
        self.lock = threading.Lock()
        self.next_upstream = 0
        self.server = None
        self.thread = None

    def start(self):
        Relay.start(self)
        FaultProxy.started.append(self)
        return self

    def arm(self, method, path, action, when="after", drop=True):
        """``drop=False``: fire the action, then relay Vault's answer as usual."""
        rule = Rule(method, path, action, when, drop)
        with self.lock:
            self.rules.append(rule)
        return rule

    def disarm(self):
        with self.lock:
            self.rules = []

    def _rule_for(self, method, path):
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.fired.set()
                    rule.request = (method, path)
                    return rule
        return None

    def _drop(self, handler):
        drop(handler)

    def _upstream_order(self):
        with self.lock:
            start = self.next_upstream
            self.next_upstream = (self.next_upstream + 1) % len(self.upstreams)
        return self.upstreams[start:] + self.upstreams[:start]

    def handle(self, handler):
        method, vault_path, body = read_request(handler)
        for observer in list(self.observers):
            observer(method, vault_path)
        rule = self._rule_for(method, vault_path)
        entry = {"method": method, "path": vault_path, "status": None, "upstream": None, "t": time.time()}
        with self.lock:
            self.log.append(entry)
        if rule is not None and rule.when == "before":
            rule.action()
            entry["status"] = "dropped-before"
            return self._drop(handler)
        if rule is not None and rule.when == "answer":  # answer in Vault's place: action() -> (status, body)
            status, answer = rule.action()
            data = json.dumps(answer).encode()
            entry["status"] = "answered-%s" % status
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return None
        headers = dict((k, v) for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS)
        response = None
        for upstream in self._upstream_order():
            target = urllib.parse.urlsplit(upstream)
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            try:
                conn.request(method, handler.path, body=body, headers=headers)
                resp = conn.getresponse()
                response = (resp.status, resp.reason, resp.getheaders(), resp.read())
                entry["upstream"] = upstream
                break
            except ConnectionRefusedError:
                continue
            except (OSError, http.client.HTTPException):  # the upstream died while answering
                break
            finally:
                conn.close()
        if response is None:
            entry["status"] = "no-upstream"
            return self._drop(handler)
        entry["status"] = response[0]
        if rule is not None:
            rule.action()
            if rule.drop:
                entry["status"] = "dropped-after-%s" % response[0]
                return self._drop(handler)
        status, reason, resp_headers, data = response
        handler.send_response(status, reason)
        for key, value in resp_headers:
            if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        if not self.keepalive:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)

    def requests(self, since=0):
        with self.lock:
            return list(self.log[since:])

    def mark(self):
        with self.lock:
            return len(self.log)


# ----------------------------------------------------------------------------------------- Vault state
def pem_cert(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def spki(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(key_pem, cert):
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    return spki(key) == spki(cert)


class VaultState(object):
    """What Vault holds, read as root with plain urllib (``bao.api``)."""

    def __init__(self, bao, root_mount="pki", int_mount="istioca", kv_mount="secret", kv_path="istioca",
                 kv_field="ca-key.pem"):
        self.bao = bao
        self.root_mount, self.int_mount = root_mount, int_mount
        self.kv_mount, self.kv_path, self.kv_field = kv_mount, kv_path, kv_field

    def _get(self, path):
        try:
            return self.bao.api("GET", path)
        except urllib.error.HTTPError as e:
            if e.code in (400, 404):
                return None
            raise

    def _list(self, path):
        try:
            return self.bao.api("LIST", path)["data"]
        except urllib.error.HTTPError as e:
            if e.code in (400, 404):
                return {}
            raise

    def issuers(self, mount):
        """{issuer_id: certificate} of every issuer in ``mount``."""
        found = {}
        for issuer_id in self._list(mount + "/issuers").get("keys") or []:
            body = self._get("%s/issuer/%s" % (mount, issuer_id))
            if body:
                found[issuer_id] = body["data"]
        return found

    def default_issuer(self, mount):
        body = self._get(mount + "/config/issuers")
        default = (body or {}).get("data", {}).get("default")
        if not default:
            return None, None
        data = self._get("%s/issuer/%s" % (mount, default))["data"]
        return default, pem_cert(data["certificate"])

    def keys(self, mount):
        return self._list(mount + "/keys").get("keys") or []

    def kv_versions(self):
        body = self._get("%s/metadata/%s" % (self.kv_mount, self.kv_path))
        if not body:
            return 0, {}
        data = body["data"]
        return int(data.get("current_version") or 0), data.get("versions") or {}

    def kv_key(self, version=None):
        suffix = "?version=%d" % version if version else ""
        body = self._get("%s/data/%s%s" % (self.kv_mount, self.kv_path, suffix))
        return ((body or {}).get("data") or {}).get("data", {}).get(self.kv_field)

    def kv_keys_all_versions(self):
        current, _versions = self.kv_versions()
        keys = []
        for version in range(1, current + 1):
            key = self.kv_key(version)
            if key:
                keys.append(key)
        return keys

    def snapshot(self):
        """The facts the fault and concurrency checks compare."""
        root_id, root_cert = self.default_issuer(self.root_mount)
        int_id, int_cert = self.default_issuer(self.int_mount)
        kv_version = self.kv_versions()[0]
        key = self.kv_key()
        return {
            "root_issuers": len(self.issuers(self.root_mount)),
            "root_id": root_id,
            "root_serial": root_cert.serial_number if root_cert else None,
            "root_spki": spki(root_cert) if root_cert else None,
            "int_id": int_id,
            "int_cert": int_cert,
            "int_issuers": len(self.issuers(self.int_mount)),
            "int_keys": len(self.keys(self.int_mount)),
            "kv_version": kv_version,
            "key_matches": bool(key and int_cert is not None and key_matches(key, int_cert)),
            "int_signed_by_root": bool(int_cert is not None and root_cert is not None
                                       and int_cert.issuer == root_cert.subject
                                       and _verify(int_cert, root_cert)),
        }


def _verify(cert, issuer):
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except Exception:
        return False


# ----------------------------------------------------------------------------------------- leak scanning
TOKEN_RUN = re.compile(r"[A-Za-z0-9+/=_-]{32,}")  # base64 and base64url


def _der_elements(der, offset=0):
    """[(start, end)] of the elements of the DER SEQUENCE at ``offset`` (content ranges, headers included)."""
    def header(pos):
        length = der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[pos:pos + count], "big")
            pos += count
        return pos, length

    content, length = header(offset)
    elements, pos = [], content
    while pos < content + length:
        start = pos
        body, size = header(pos)
        pos = body + size
        elements.append((start, pos))
    return elements


def private_byte_range(pem):
    """(first, last) byte offsets of the private part of a PKCS#1 RSA or SEC1 EC key's DER: what a public
    certificate of the same key does not contain (RSA: d onwards, after version, n and e; EC: the private
    scalar, before the curve and the public point)."""
    lines = [line.strip() for line in pem.strip().splitlines()]
    der = base64.b64decode("".join(line for line in lines if not line.startswith("-----")))
    elements = _der_elements(der)
    if "RSA PRIVATE KEY" in lines[0]:
        return elements[3][0], elements[-1][1]
    if "EC PRIVATE KEY" in lines[0]:
        return elements[1]
    raise ValueError("unexpected key format: %s" % lines[0])


class SecretScanner(object):
    """Looks for secrets in text (and files).

    Keys: any 32-character slice of the base64 body of the PEM that covers private bytes (a slice that holds
    only the modulus or the public point is also in every certificate of the key, which is public), across
    line breaks and JSON-escaped newlines; and the whole PEM. JWTs: the whole token, and any 32-character
    slice of its signature (header and claims are alike between tokens of one issuer). Other secrets: the
    whole value, and any 32-character slice when long enough."""

    def __init__(self):
        self.windows = {}  # 32-char slice -> label
        self.whole = {}  # value -> label

    def add_key(self, label, pem):
        body = "".join(line.strip() for line in pem.strip().splitlines() if not line.startswith("-----"))
        first, last = private_byte_range(pem)
        for i in range(len(body) - 31):
            # base64 character j carries bits 6j..6j+5, i.e. bytes 6j//8 .. (6j+5)//8
            if (6 * (i + 31) + 5) // 8 >= first and (6 * i) // 8 < last:
                self.windows.setdefault(body[i:i + 32], label)
        self.whole[pem.strip()] = label
        self.whole[base64.b64encode(pem.encode()).decode()] = label

    def add_secret(self, label, value):
        if not value:
            return
        self.whole[value] = label
        parts = value.split(".")
        if len(parts) == 3 and len(value) > 64:  # a JWT
            self._add_windows(label, parts[2])
        elif len(value) >= 32:
            self._add_windows(label, value)

    def _add_windows(self, label, text):
        for i in range(len(text) - 31):
            self.windows.setdefault(text[i:i + 32], label)

    @property
    def count(self):
        return len(set(self.whole.values()))

    def find(self, text):
        """Labels of the secrets found in ``text``."""
        found = set()
        for value, label in self.whole.items():
            if value in text:
                found.add(label)
        flat = re.sub(r"\\n|\\r|\s", "", text)
        for run in TOKEN_RUN.findall(flat):
            for i in range(len(run) - 31):
                label = self.windows.get(run[i:i + 32])
                if label:
                    found.add(label)
        return found

    def scan_tree(self, root, skip=()):
        """{path: labels} of every file under ``root`` holding a secret."""
        leaks = {}
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(dirpath, name)
                if any(path.startswith(s) for s in skip) or os.path.islink(path):
                    continue
                try:
                    with open(path, "rb") as f:
                        text = f.read().decode("utf-8", "replace")
                except OSError:
                    continue
                labels = self.find(text)
                if labels:
                    leaks[path] = labels
        return leaks


class TempSnapshots(object):
    """Copies the files of some directories at chosen moments (while a module runs: on each request it makes),
    to be scanned for secrets once the run is over and every secret it handled is known."""

    def __init__(self, directories, into):
        self.directories = list(directories)
        self.into = str(into)
        self.count = 0
        self.files = 0
        self.lock = threading.Lock()

    def take(self, *_args):
        with self.lock:
            self.count += 1
            target = os.path.join(self.into, "snap%04d" % self.count)
            for directory in self.directories:
                for dirpath, _dirs, files in os.walk(directory):
                    for name in files:
                        source = os.path.join(dirpath, name)
                        dest = os.path.join(target, os.path.relpath(source, "/"))
                        try:
                            os.makedirs(os.path.dirname(dest), exist_ok=True)
                            with open(source, "rb") as src, open(dest, "wb") as out:
                                out.write(src.read())
                            self.files += 1
                        except OSError:  # removed while copying
                            pass


def wait_for(predicate, timeout=30.0, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


# ----------------------------------------------------------------------------------------- OpenBao HA
class RaftCluster(object):
    """Three OpenBao servers on raft storage on 127.0.0.1 (distinct API and cluster ports), joined with
    ``retry_join``, unsealed, every node a voter; one file audit device declared alike on every node."""

    def __init__(self, workdir, size=3):
        self.workdir = str(workdir)
        self.nodes = []
        for i in range(1, size + 1):
            port = free_port(2)
            directory = os.path.join(self.workdir, "node%d" % i)
            os.makedirs(os.path.join(directory, "data"), exist_ok=True)
            self.nodes.append({"name": "node%d" % i, "port": port, "dir": directory, "proc": None,
                               "url": "http://127.0.0.1:%d" % port,
                               # audit devices are cluster-wide: every node must declare the same one, or a
                               # standby that wins an election refuses to become active
                               "audit": os.path.join(self.workdir, "audit.log")})
        self.token = None
        self.unseal_key = None

    def _config(self, node):
        joins = "".join('  retry_join {\n    leader_api_addr = "%s"\n  }\n' % other["url"]
                        for other in self.nodes if other is not node)
        text = ('listener "tcp" {\n  address = "127.0.0.1:%d"\n  cluster_address = "127.0.0.1:%d"\n'
                '  tls_disable = true\n}\n'
                'storage "raft" {\n  path = "%s/data"\n  node_id = "%s"\n  performance_multiplier = 1\n%s}\n'
                'api_addr = "%s"\ncluster_addr = "http://127.0.0.1:%d"\ndisable_mlock = true\n'
                'audit "file" "file" {\n  options {\n    file_path = "%s"\n  }\n}\n'
                % (node["port"], node["port"] + 1, node["dir"], node["name"], joins, node["url"], node["port"] + 1,
                   node["audit"]))
        path = os.path.join(node["dir"], "config.hcl")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_node(self, node):
        with open(os.path.join(node["dir"], "server.log"), "ab") as log:
            node["proc"] = subprocess.Popen([bao_binary(), "server", "-config=" + self._config(node)], stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True, env=_clean_env())
        wait_for(lambda: is_listening(node["port"]), 30, what="%s listening" % node["name"])

    def api(self, node, method, path, body=None, token=True, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(node["url"] + "/v1/" + path, data=data, method=method)
        if token:
            req.add_header("X-Vault-Token", self.token if token is True else token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"{}")
            except ValueError:
                return e.code, {"raw": raw.decode(errors="replace")}
        except OSError as e:
            return None, {"error": str(e)}

    def start(self):
        for node in self.nodes:
            self.start_node(node)
        status, body = self.api(self.nodes[0], "PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1},
                                token=False)
        assert status == 200, body
        self.unseal_key, self.token = body["keys_base64"][0], body["root_token"]
        self.unseal(self.nodes[0])
        wait_for(lambda: self.active() is not None, 60, what="an active node")
        # autopilot promotes a new node to voter after server_stabilization_time (10 s by default)
        self.api(self.nodes[0], "POST", "sys/storage/raft/autopilot/configuration",
                 {"server_stabilization_time": "2s"})
        for node in self.nodes[1:]:
            self.unseal(node)
        wait_for(lambda: self.active() is not None, 60, what="an active node")
        wait_for(self._all_voters, 90, interval=0.5, what="every node a raft voter")
        for node in self.nodes:  # every node serves (standby reads, forwarding) before the test begins
            wait_for(lambda n=node: self.api(n, "GET", "sys/policies/acl/default")[0] == 200, 60,
                     what="%s serving" % node["name"])
        return self

    def unseal(self, node):
        wait_for(lambda: self.api(node, "PUT", "sys/unseal", {"key": self.unseal_key}, token=False)[0] == 200
                 and not self.api(node, "GET", "sys/seal-status", token=False)[1].get("sealed", True), 60,
                 interval=0.2, what="%s unsealed" % node["name"])

    def _all_voters(self):
        active = self.active()
        if active is None:
            return False
        status, body = self.api(active, "GET", "sys/storage/raft/configuration")
        servers = ((body.get("data") or {}).get("config") or {}).get("servers") or []
        return status == 200 and len(servers) == len(self.nodes) and all(s.get("voter") for s in servers)

    def health(self, node):
        status, body = self.api(node, "GET", "sys/health", token=False, timeout=5)
        return status, body

    def active(self):
        for node in self.nodes:
            if node["proc"] is not None and node["proc"].poll() is None and self.health(node)[0] == 200:
                return node
        return None

    def kill(self, node):
        try:
            os.killpg(node["proc"].pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node["proc"].wait(10)

    def stop(self):
        for node in self.nodes:
            if node["proc"] is not None and node["proc"].poll() is None:
                os.killpg(node["proc"].pid, signal.SIGTERM)
                try:
                    node["proc"].wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(node["proc"].pid, signal.SIGKILL)
                    node["proc"].wait(10)


class ClusterView(object):
    """``bao.api`` of an OpenBaoServer, for VaultState, on whichever node is active."""

    def __init__(self, cluster):
        self.cluster = cluster

    def api(self, method, path, body=None):
        node = wait_for(self.cluster.active, 60, what="an active node")
        status, answer = self.cluster.api(node, method, path, body)
        if status is None or status >= 400:
            raise urllib.error.HTTPError(node["url"] + "/v1/" + path, status or 599, str(answer), None, None)
        return answer
