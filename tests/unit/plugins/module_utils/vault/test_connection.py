"""Connection options: environment read at run time, TLS settings, and the retry policy against a
real local HTTP server that fails on purpose."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection, VaultRetry


def test_environment_is_read_when_called_not_at_import(monkeypatch):
    monkeypatch.setenv("BAO_ADDR", "http://bao:8200")
    assert VaultConnection.from_params({}).url == "http://bao:8200"
    monkeypatch.setenv("VAULT_ADDR", "https://vault:8200/")
    conn = VaultConnection.from_params({})
    assert conn.url == "https://vault:8200"  # VAULT_ first, trailing slash dropped
    assert VaultConnection.from_params({"url": "http://option:1"}).url == "http://option:1"  # option wins
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    assert VaultConnection.from_params({}).namespace == "team-a"


@pytest.mark.parametrize("value, expected", [("true", False), ("1", False), ("false", True), ("0", True)])
def test_skip_verify_from_environment(monkeypatch, value, expected):
    monkeypatch.setenv("VAULT_SKIP_VERIFY", value)
    assert VaultConnection.from_params({"url": "https://v"}).validate_certs is expected
    assert VaultConnection.from_params({"url": "https://v", "validate_certs": True}).validate_certs is True


def test_bad_addresses_and_half_client_cert():
    with pytest.raises(MeshPkiError, match="must start with http:// or https://"):
        VaultConnection.from_params({"url": "vault:8200"})
    with pytest.raises(MeshPkiError, match="client_cert and client_key .* go together"):
        VaultConnection.from_params({"url": "https://v", "client_cert": "/c.pem"})


@pytest.mark.parametrize("method, status, retried", [
    ("POST", 503, True), ("POST", 429, True), ("POST", 412, True),
    ("POST", 502, False), ("POST", 500, False), ("POST", 504, False),
    ("GET", 502, True), ("PUT", 500, True), ("LIST", 504, True), ("DELETE", 502, True),
    ("GET", 400, False), ("GET", 403, False), ("GET", 404, False),
])
def test_retry_policy(method, status, retried):
    assert VaultRetry(total=3).is_retry(method, status) is retried


class _Flaky(BaseHTTPRequestHandler):
    """Answers each path with a scripted list of statuses, then 200."""

    script = {}
    seen = []

    def _reply(self):
        self.seen.append((self.command, self.path))
        statuses = self.script.get(self.path, [])
        status = statuses.pop(0) if statuses else 200
        body = json.dumps({"data": {"ok": True}} if status == 200 else {"errors": ["scripted %d" % status]}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.script, _Flaky.seen[:] = {}, []
    yield server, _Flaky
    server.shutdown()


def _client(server, retries):
    conn = VaultConnection.from_params({"url": "http://127.0.0.1:%d" % server.server_port, "retries": retries,
                                        "retry_backoff": 0.01})
    return VaultClient(conn.client("t"), conn)


def test_503_is_retried_until_success(flaky):
    server, handler = flaky
    handler.script["/v1/pki/cert/ca"] = [503, 503]
    assert _client(server, 3).read("pki/cert/ca") == {"data": {"ok": True}}
    assert len(handler.seen) == 3


def test_ambiguous_502_on_a_post_is_not_repeated(flaky):
    server, handler = flaky
    handler.script["/v1/istioca/intermediate/generate/exported"] = [502]
    with pytest.raises(MeshPkiError, match="Failed to generate 'istioca/intermediate/generate/exported'"):
        _client(server, 3).write("istioca/intermediate/generate/exported", {}, action="generate")
    assert len(handler.seen) == 1


def test_retries_zero_means_one_attempt_and_a_clear_message(flaky):
    server, handler = flaky
    handler.script["/v1/x"] = [503]
    with pytest.raises(MeshPkiError, match="sealed or on standby"):
        _client(server, 0).read("x")
    assert handler.seen[0] == ("GET", "/v1/x")


def test_a_500_of_issuer_default_is_an_answer_not_repeated(flaky):
    # issue 17: the PKI modules read <mount>/issuer/default once instead of config/issuers then issuer/<id>; a mount
    # without a default issuer answers 500, which must not cost the retries and their back-off
    server, handler = flaky
    handler.script["/v1/pki/issuer/default"] = [500, 500, 500, 500]
    handler.script["/v1/pki/config/issuers"] = [500, 500]
    with pytest.raises(MeshPkiError, match="pki/issuer/default"):
        _client(server, 3).read("pki/issuer/default")
    assert handler.seen == [("GET", "/v1/pki/issuer/default")]
    assert _client(server, 3).read("pki/config/issuers") == {"data": {"ok": True}}  # any other path: repeated
    assert handler.seen[1:] == [("GET", "/v1/pki/config/issuers")] * 3
