"""Loopback HTTP servers for the redirect tests: a recorder (another origin that keeps every request it
receives), a redirector (answers every request with a 30x to a base URL, optionally over TLS) and a
same-origin mover (``/moved/...`` answers 307 to ``/...`` on itself; everything else is passed on to an
upstream such as OpenBao). Threads in the test process, 127.0.0.1, free ports."""

import http.client
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from harness import certs


class _Server(object):
    """A ThreadingHTTPServer on 127.0.0.1 (free port) serving ``handler`` in a daemon thread."""

    scheme = "http"

    def __init__(self, handler, tls_dir=None):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self
        self.ca_file = None
        if tls_dir is not None:
            ca = certs.make_ca("redirect test CA")
            self.ca_file = ca.write(str(tls_dir), "redirect-ca-%d" % self.port)[0]
            cert, key = certs.make_server_cert(ca).write(str(tls_dir), "redirect-server-%d" % self.port)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
            self.ca_pem = ca.cert_pem
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "%s://127.0.0.1:%d" % (self.scheme, self.port)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # no noise on stderr
        pass

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)


class _RecorderHandler(_Quiet):
    def _handle(self):
        body = self._body()
        self.server.owner.requests.append({"method": self.command, "path": self.path,
                                           "headers": dict(self.headers.items()),
                                           "body": body.decode("utf-8", "replace")})
        self._answer(200, b"{}", [("Content-Type", "application/json")])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_LIST = _handle


class Recorder(_Server):
    """Keeps every request (method, path, headers, body) and answers 200 ``{}``."""

    def __init__(self, tls_dir=None):
        self.requests = []
        super(Recorder, self).__init__(_RecorderHandler, tls_dir)

    def carrying(self, *secrets):
        """The requests that contain any of ``secrets`` (path, header values or body)."""
        found = []
        for request in self.requests:
            text = request["path"] + "\n" + "\n".join(request["headers"].values()) + "\n" + request["body"]
            if any(secret and secret in text for secret in secrets):
                found.append(request)
        return found


class _RedirectHandler(_Quiet):
    def _handle(self):
        self._body()
        owner = self.server.owner
        owner.hits += 1
        self._answer(owner.status, headers=[("Location", owner.target + self.path)])

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_LIST = _handle


class Redirector(_Server):
    """Answers every request with ``status`` and ``Location: <target><request path>``; TLS with tls_dir."""

    def __init__(self, status, target, tls_dir=None):
        self.status = status
        self.target = target.rstrip("/")
        self.hits = 0
        super(Redirector, self).__init__(_RedirectHandler, tls_dir)


class _MoverHandler(_Quiet):
    def _handle(self):
        body = self._body()
        owner = self.server.owner
        if self.path.startswith("/moved/"):
            owner.moved += 1
            self._answer(307, headers=[("Location", self.path[len("/moved"):])])  # relative: same origin
            return
        upstream = urlsplit(owner.upstream)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = dict((k, v) for k, v in self.headers.items() if k.lower() not in ("host", "connection"))
        conn.request(self.command, self.path, body=body or None, headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        keep = [(k, v) for k, v in answer.getheaders()
                if k.lower() not in ("content-length", "connection", "transfer-encoding")]
        self._answer(answer.status, data, keep)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_LIST = _handle


class SameOriginMover(_Server):
    """``/moved/<path>`` answers 307 to ``/<path>`` on this server; other paths are passed to ``upstream``."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.moved = 0
        super(SameOriginMover, self).__init__(_MoverHandler)


def kubeconfig(path, server, token, ca_pem=None, insecure=False, cluster="redirecting", context="redirecting"):
    """A kubeconfig with one cluster entry (``server``), a bearer-token user and one context."""
    import base64

    entry = {"server": server}
    if ca_pem:
        entry["certificate-authority-data"] = base64.b64encode(ca_pem.encode()).decode()
    if insecure:
        entry["insecure-skip-tls-verify"] = True
    config = {"apiVersion": "v1", "kind": "Config", "current-context": context,
              "clusters": [{"name": cluster, "cluster": entry}],
              "users": [{"name": "user", "user": {"token": token}}],
              "contexts": [{"name": context, "context": {"cluster": cluster, "user": "user"}}]}
    with open(str(path), "w") as f:
        json.dump(config, f)  # JSON is YAML
    return str(path)


# ------------------------------------------------------------------ cross-origin cases, as one playbook

KINDS = ("vault token", "vault approle", "kubernetes bearer")
GUIDE = dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
             kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
             annotation_prefix="vault.hashicorp.com")


class Case(object):
    """One module task whose server redirects to another origin (a Recorder)."""

    def __init__(self, index, kind, status, tls, workdir, secret):
        self.index, self.kind, self.status, self.tls, self.secret = index, kind, status, tls, secret
        self.name = "%s, %d to %s" % (kind, status, "http (from https)" if tls else "another port")
        self.recorder = Recorder().start()
        self.redirector = Redirector(status, self.recorder.url, tls_dir=workdir if tls else None).start()
        if kind == "kubernetes bearer":
            config = kubeconfig(workdir / ("kubeconfig-%d" % index), self.redirector.url, secret,
                                ca_pem=self.redirector.ca_pem if tls else None)
            self.module = "tsb_controlplane_annotations"
            self.args = dict(GUIDE, kubeconfig=config, name="controlplane", namespace="tsb")
            self.fix = "Point the server of cluster entry 'redirecting' in the kubeconfig '%s'" % config
        else:
            self.module = "vault_policy"
            self.args = dict(url=self.redirector.url, retries=0, name="redirect-%d" % index,
                             policy='path "pki/cert/ca" { capabilities = ["read"] }')
            if tls:
                self.args["ca_cert"] = self.redirector.ca_file
            if kind == "vault token":
                self.args["token"] = secret
            else:
                self.args.update(auth_method="approle", role_id="role-id-%d" % index, secret_id=secret)
            self.fix = "Point url at the active node or at the load balancer"

    def task(self):
        return {"name": "block %d" % self.index, "block": [
            {"name": "case %d" % self.index, "meshpki.vault_ca." + self.module: self.args}],
            "rescue": [{"name": "failure %d" % self.index, "ansible.builtin.debug": {"var": "ansible_failed_result"}}]}

    def outcome(self, run):
        """(refused: the task failed naming the Location and the fix, the message, requests the recorder got)."""
        failure = [r for r in run.results if r["task"] == "failure %d" % self.index]
        msg = (failure[-1]["result"].get("ansible_failed_result") or {}).get("msg", "") if failure else ""
        refused = (bool(failure) and "Location: %s/" % self.recorder.url in msg and self.fix in msg
                   and self.secret not in msg)
        return refused, msg, list(self.recorder.requests)

    def stop(self):
        self.redirector.stop()
        self.recorder.stop()


def cross_origin_cases(workdir, kinds=KINDS, statuses=(302, 307, 308)):
    """Every kind x every status to another port, plus a 307 from https to http, each with its own secret."""
    import secrets as _secrets

    cases = []
    for kind in kinds:
        for status, tls in [(s, False) for s in statuses] + [(307, True)]:
            cases.append(Case(len(cases), kind, status, tls, workdir, "redirect-secret-" + _secrets.token_hex(12)))
    return cases


def cases_play(cases):
    return [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [case.task() for case in cases]}]
