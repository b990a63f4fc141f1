"""Stop an ``ansible-playbook`` run right after its N-th write to Vault: an HTTP proxy in front of OpenBao.

The run talks to Vault through the proxy (its inventory's ``url``). The proxy forwards every request and counts the
writes (POST, PUT, PATCH, DELETE - logins apart, as tests/harness/audit.py counts them). Once OpenBao has answered
the N-th write - the write is done - the proxy calls ``action`` (the SIGKILL of the run's process group) before
it relays the answer, which it drops: the client never learns the outcome. From then on it forwards nothing, so
exactly N writes reach Vault even when several hosts' tasks run at the same time.

Nothing of the collection is touched: the run is the real playbook, the server the real OpenBao, the stop a real
SIGKILL - what an AWX node that dies mid-job leaves behind.
"""

import http.client
import threading
import urllib.parse

from harness.audit import is_login
from harness.openbao import free_port
from harness.relay import Relay, drop, read_request

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
HOP_HEADERS = ("connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection")


class WriteStop(Relay):
    """``WriteStop(upstream, after=N, action=callable).start()``; ``writes`` lists the (method, path) forwarded,
    ``fired`` is set once the N-th write was answered and ``action`` ran. ``after=None`` only counts."""

    def __init__(self, upstream, after=None, action=None):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.after = after
        self.action = action
        self.port = free_port()
        self.writes = []
        self.refused = []
        self.fired = threading.Event()
        self.lock = threading.Lock()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def handle(self, handler):
        method, vault_path, body = read_request(handler)
        is_write = method in WRITE_METHODS and not is_login(vault_path)
        last = False
        with self.lock:
            if self.fired.is_set() or (is_write and self.after is not None and len(self.writes) >= self.after):
                self.refused.append((method, vault_path))
                return drop(handler)
            if is_write:
                self.writes.append((method, vault_path))
                last = self.after is not None and len(self.writes) == self.after
        headers = dict((k, v) for k, v in handler.headers.items() if k.lower() not in HOP_HEADERS)
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            conn.request(method, handler.path, body=body, headers=headers)
            resp = conn.getresponse()
            status, reason, resp_headers, data = resp.status, resp.reason, resp.getheaders(), resp.read()
        except (OSError, http.client.HTTPException):
            return drop(handler)
        finally:
            conn.close()
        if last:  # the N-th write is done in Vault: stop the client before it hears of it
            with self.lock:
                self.fired.set()
            if self.action is not None:
                self.action()
            return drop(handler)
        handler.send_response(status, reason)
        for key, value in resp_headers:
            if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if method != "HEAD":
            handler.wfile.write(data)
        return None
