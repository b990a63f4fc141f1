"""Hostile input that aims past its mount, and private keys pasted where certificates go.

Traversal: every hostile value (harness/hostile.py) x every path-forming option of every module, run with the
module's real code against a real OpenBao with an audit log, plus the three traversals reported in issue 14
through real ansible-playbook runs (a policy removal that deleted a secrets engine, a Kubernetes role name
that did the same, the role's kv_path that wrote the intermediate key outside the KV mount). Counted: cases
tried, cases refused with an error naming the option, requests Vault received for them (must be 0).

Keys in options: a private key (RSA PKCS#1, EC SEC1, PKCS#8) pasted into every option that takes certificates
or public keys: refused, and no line of the key in the module's result (its invocation included).
"""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import certs
from harness.hostile import cases, run_module, try_case
from harness.openbao import OpenBaoServer

pytestmark = pytest.mark.reliability_fast


@pytest.fixture
def bao(tmp_path):
    with OpenBaoServer(tmp_path / "bao", audit=True) as server:
        yield server


def test_no_path_escapes_its_mount(bao, ansible, tmp_path, report):
    conn = {"url": bao.url, "token": bao.token}
    tried = rejected = 0
    requests = []
    per_module = {}
    for module, option, _kind, value in cases():
        ok, sent, _msg = try_case(bao, module, option, value)
        tried += 1
        rejected += ok
        requests += sent
        counts = per_module.setdefault(module, [0, 0, 0])
        counts[0] += 1
        counts[1] += ok
        counts[2] += len(sent)
    # The reported ones, end to end: the victim mount and the cubbyhole must come out untouched.
    bao.api("POST", "sys/mounts/victim", {"type": "kv", "options": {"version": "2"}})
    plays = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
              "module_defaults": {"group/meshpki.vault_ca.vault": conn},
              "tasks": [
                  {"name": "policy", "ignore_errors": True,
                   "meshpki.vault_ca.vault_policy": {"name": "../../mounts/victim", "state": "absent"}},
                  {"name": "k8s role", "meshpki.vault_ca.vault_k8s_role": {
                      "name": "../../../sys/mounts/victim", "bound_service_account_names": ["a"],
                      "bound_service_account_namespaces": ["b"]}, "ignore_errors": True}]},
             {"hosts": "localhost", "gather_facts": False, "connection": "local",
              "roles": [{"role": "meshpki.vault_ca.istio_vault_ca", "vars": {
                  "istio_vault_ca_vault": conn, "istio_vault_ca_kv_path": "../../cubbyhole/stolen",
                  "istio_vault_ca_manifest_path": str(tmp_path / "controlplane.yaml")}}]}]
    mark = bao.audit.mark()
    run = ansible.run(plays)
    sent = bao.audit.requests(mark)
    end_to_end = [("vault_policy", "name"), ("vault_k8s_role", "name"), ("role", "istio_vault_ca_kv_path")]
    messages = [msg or "" for msg in run.failed_msgs()]
    for (module, option), msg in zip(end_to_end, messages):
        tried += 1
        ok = option in msg and "is not" in msg
        rejected += ok
        counts = per_module.setdefault(module + " (playbook)", [0, 0, 0])
        counts[0] += 1
        counts[1] += ok
    requests += sent
    assert "victim/" in bao.api("GET", "sys/mounts")["data"], "the victim mount is gone"
    for module in sorted(per_module):
        n, ok, req = per_module[module]
        report.detail("Path traversal", module=module, tried=n, rejected=ok, requests=req)
    report.metric("traversal", tried=tried, rejected=rejected, requests=len(requests))
    assert len(messages) == 3, messages
    assert rejected == tried, (tried, rejected)
    assert requests == [], requests


def _keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    return [rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()).decode(),
            ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption()).decode(),
            ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()]


def test_private_keys_in_certificate_options(bao, report):
    cert = certs.make_ca("traversal test CA").cert_pem
    conn = {"url": bao.url, "token": bao.token}
    options = [("vault_k8s_auth", {"kubernetes_host": "https://127.0.0.1:6443"}, "kubernetes_ca_cert", False),
               ("vault_k8s_auth", {"kubernetes_host": "https://127.0.0.1:6443"}, "pem_keys", True),
               ("vault_pki_root", {}, "certificate", False),
               ("vault_pki_intermediate", {"common_name": "x", "signing": "external", "certificate": cert,
                                           "ca_chain": cert}, "certificate", False),
               ("vault_pki_intermediate", {"common_name": "x", "signing": "external", "certificate": cert,
                                           "ca_chain": cert}, "ca_chain", False),
               ("istio_ca_verify", {"ca_cert_pem": cert, "ca_key_pem": "x" * 20, "cert_chain_pem": cert,
                                    "root_cert_pem": cert}, "ca_cert_pem", False),
               ("istio_ca_verify", {"ca_cert_pem": cert, "ca_key_pem": "x" * 20, "cert_chain_pem": cert,
                                    "root_cert_pem": cert}, "cert_chain_pem", False),
               ("istio_ca_verify", {"ca_cert_pem": cert, "ca_key_pem": "x" * 20, "cert_chain_pem": cert,
                                    "root_cert_pem": cert}, "root_cert_pem", False)]
    tried = refused = leaked = 0
    mark = bao.audit.mark()
    for module, base, option, as_list in options:
        for key in _keys():
            text = cert + key
            args = dict(base, **conn)
            args[option] = [text] if as_list else text
            result = run_module(module, args)
            tried += 1
            msg = result.get("msg") or ""
            refused += bool(result.get("failed")) and "contains a private key; pass only certificates" in msg
            lines = [line for line in key.splitlines() if "-----" not in line]
            leaked += any(line in str(result) for line in lines)
    sent = bao.audit.requests(mark)
    report.metric("pem_keys", tried=tried, refused=refused, leaked=leaked)
    assert refused == tried and leaked == 0 and sent == [], (tried, refused, leaked, sent)
