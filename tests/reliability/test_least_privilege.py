"""Least privilege: the token istiod's Vault Agent gets - by logging in with istiod's service-account JWT
through the Kubernetes auth role the role configured - reads the four paths of the bundle and nothing else.

The role runs once, over TLS (``ca_cert``), against a fake cluster whose TokenReview Vault really calls.
Then every probe is a plain HTTP request with the istiod token: the four reads must succeed; writes to the
four paths, other KV paths, listing, signing, issuing, another cluster's key, ``sys/*``, auth config,
token creation must be refused (403; 405 where the endpoint has no write operation at all). PKI's
unauthenticated reads (``<mount>/cert/ca``, ``issuers`` listings...) are public by design and are not
probes of the policy.
"""

import json
import urllib.error
import urllib.request

import pytest

from harness.openbao import OpenBaoServer
from harness.playbook import role_play

pytestmark = pytest.mark.reliability_fast

# 403 permission denied; 405 for the public read-only PKI endpoints, which have no write operation at all.
REFUSED = (403, 405)
ALLOWED = [("GET", "istioca/cert/ca"), ("GET", "istioca/cert/ca_chain"), ("GET", "pki/cert/ca"),
           ("GET", "secret/data/istioca")]
DENIED = [
    # writes to the four paths (and the key's other endpoints)
    ("POST", "secret/data/istioca", {"data": {"ca-key.pem": "x"}}),
    ("PUT", "secret/data/istioca", {"data": {"ca-key.pem": "x"}}),
    ("DELETE", "secret/data/istioca", None),
    ("POST", "secret/delete/istioca", {"versions": [1]}),
    ("POST", "secret/destroy/istioca", {"versions": [1]}),
    ("GET", "secret/metadata/istioca", None),
    ("DELETE", "secret/metadata/istioca", None),
    ("POST", "istioca/cert/ca", {"certificate": "x"}),
    ("POST", "istioca/cert/ca_chain", {"certificate": "x"}),
    ("POST", "pki/cert/ca", {"certificate": "x"}),
    # other KV paths, listing
    ("GET", "secret/data/other", None),
    ("GET", "secret/data/istioca-east", None),
    ("LIST", "secret/metadata", None),
    ("LIST", "secret/metadata/", None),
    ("LIST", "secret", None),
    # signing and issuing
    ("POST", "pki/root/sign-intermediate", {"csr": "x", "common_name": "evil"}),
    ("POST", "pki/root/generate/internal", {"common_name": "evil"}),
    ("POST", "pki/issue/any", {"common_name": "evil.example"}),
    ("POST", "istioca/issue/any", {"common_name": "evil.example"}),
    ("POST", "istioca/sign/any", {"csr": "x"}),
    ("POST", "istioca/sign-verbatim", {"csr": "x"}),
    ("POST", "istioca/intermediate/generate/exported", {"common_name": "evil"}),
    ("POST", "istioca/intermediate/set-signed", {"certificate": "x"}),
    ("POST", "istioca/config/issuers", {"default": "x"}),
    ("LIST", "istioca/keys", None),
    ("POST", "istioca/roles/evil", {"allow_any_name": True}),
    # another cluster's paths
    ("GET", "istioca-east/config/issuers", None),
    ("POST", "istioca-east/issue/any", {"common_name": "evil.example"}),
    # sys/*
    ("GET", "sys/mounts", None),
    ("POST", "sys/mounts/evil", {"type": "kv"}),
    ("GET", "sys/policies/acl", None),
    ("GET", "sys/policies/acl/istioca", None),
    ("PUT", "sys/policies/acl/istioca", {"policy": 'path "*" { capabilities = ["sudo"] }'}),
    ("GET", "sys/auth", None),
    ("GET", "sys/audit", None),
    ("PUT", "sys/seal", None),
    # auth configuration, token creation
    ("GET", "auth/kubernetes/config", None),
    ("POST", "auth/kubernetes/config", {"kubernetes_host": "https://evil"}),
    ("GET", "auth/kubernetes/role/istiod", None),
    ("POST", "auth/kubernetes/role/istiod", {"token_policies": ["root"]}),
    ("POST", "auth/token/create", {"policies": ["istioca"]}),
    ("POST", "auth/token/create-orphan", {}),
]


def _call(url, method, path, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + "/v1/" + path, data=data, method=method)
    req.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def tls_bao(tmp_path):
    server = OpenBaoServer(tmp_path / "bao-tls", tls=True, audit=True).start()
    yield server
    server.stop()


def test_istiod_token_reads_the_bundle_and_nothing_else(tls_bao, cluster, ansible, report):
    bao = tls_bao
    role_vars = {"istio_vault_ca_vault": {"url": bao.tls_url, "token": bao.token, "ca_cert": bao.ca_file},
                 "istio_vault_ca_kubeconfig": cluster.kubeconfig,
                 "istio_vault_ca_k8s_token_reviewer": {"create": True}}
    run = ansible.run(role_play(role_vars))
    assert run.rc == 0, run
    # another cluster's key and intermediate, as the role makes them for a second cluster
    bao.api("POST", "secret/data/istioca-east", {"data": {"ca-key.pem": "east"}})
    bao.api("POST", "sys/mounts/istioca-east", {"type": "pki"})

    jwt = cluster.api.mint_sa_token("istio-system", "istiod-service-account")
    status, login = _call(bao.http_url, "POST", "auth/kubernetes/login", "", {"role": "istiod", "jwt": jwt})
    assert status == 200, login
    token = login["auth"]["client_token"]
    policies = sorted(login["auth"]["policies"])

    results = []
    for method, path in ALLOWED:
        status, body = _call(bao.http_url, method, path, token)
        ok = status == 200 and bool(body.get("data"))
        results.append(("allowed", method, path, status, ok))
    for method, path, body in DENIED:
        status, _answer = _call(bao.http_url, method, path, token, body)
        results.append(("denied", method, path, status, status in REFUSED))
    allowed = sum(1 for kind, _m, _p, _s, ok in results if kind == "allowed" and ok)
    denied = sum(1 for kind, _m, _p, _s, ok in results if kind == "denied" and ok)
    report.metric("privilege", probes=len(results), allowed=allowed, denied=denied)
    for kind, method, path, status, ok in results:
        report.detail("Least privilege", must_be=kind, request="%s %s" % (method, path), status=status, held=ok)

    assert policies == ["default", "istioca"], policies
    assert allowed == len(ALLOWED), [r for r in results if r[0] == "allowed" and not r[4]]
    assert denied == len(DENIED), [r for r in results if r[0] == "denied" and not r[4]]
