"""A private key pasted into an option that holds certificates (or public keys) is refused with
"<option> contains a private key; pass only certificates", before anything is sent, and no line of the key
appears anywhere in the output of a -vvv run: not in the invocation, the error, or a warning.

One ansible-playbook run holds every case (a block each, the failure rescued), so the whole output of the run
is searched for every key. The role's own certificate variable is checked in a second run."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness import certs
from harness.paths import PATHS, PathRunner, assert_ran

# module -> (base args, [PEM-valued options that are not no_log]); dotted = a key of a dict option,
# "option[]" = an element of a list option.
PEM_OPTIONS = {
    "vault_k8s_auth": ({"kubernetes_host": "https://127.0.0.1:6443"}, ["kubernetes_ca_cert", "pem_keys[]"]),
    "vault_pki_root": ({}, ["certificate"]),
    "vault_pki_intermediate": ({"common_name": "int.example", "signing": "external",
                                "certificate": None, "ca_chain": None}, ["certificate", "ca_chain"]),
    "istio_ca_verify": ({"ca_cert_pem": None, "ca_key_pem": "not-a-key-but-no_log", "cert_chain_pem": None,
                         "root_cert_pem": None}, ["ca_cert_pem", "cert_chain_pem", "root_cert_pem"]),
}


def _keys():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pkcs1 = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()).decode()
    pkcs8 = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    sec1 = ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return {"rsa-pkcs1": pkcs1, "ec-pkcs8": pkcs8, "ec-sec1": sec1}


def _key_lines(pem):
    return [line for line in pem.splitlines() if line and "-----" not in line]


def _cases(cert_pem):
    keys = _keys()
    cases = []
    for module in sorted(PEM_OPTIONS):
        base, options = PEM_OPTIONS[module]
        for option in options:
            # Each key format once per option, pasted alone or after a certificate (a bundle copied from a file).
            for index, (label, key) in enumerate(sorted(keys.items())):
                for how, text in [(("alone", key), ("after-cert", cert_pem + key))[(index + len(cases)) % 2]]:
                    args = dict((k, cert_pem if v is None else v) for k, v in base.items())
                    name = option.rstrip("[]")
                    args[name] = [text] if option.endswith("[]") else text
                    cases.append(("%s %s %s %s" % (module, name, label, how), module, name, args, key))
    return cases


@pytest.mark.parametrize("path", PATHS)
def test_a_pasted_private_key_is_refused_and_never_printed(playbook, bao, path):
    playbook = PathRunner(playbook, path)
    ca = certs.make_ca("pem options test CA")
    cases = _cases(ca.cert_pem)
    tasks = []
    for cid, module, _option, args, _key in cases:
        tasks.append({"name": cid, "block": [{"name": "run " + cid, "meshpki.vault_ca." + module: args}],
                      "rescue": [{"name": "rescued " + cid, "ansible.builtin.debug": {"msg": "rescued"}}]})
    mark = bao.audit.mark()
    run = playbook([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                     "module_defaults": {"group/meshpki.vault_ca.vault": {"url": bao.url, "token": bao.token}},
                     "tasks": tasks}], verbosity=3)
    assert run.rc == 0, run
    assert_ran(run, path, tasks=len(cases))
    output = run.output
    for cid, _module, option, _args, key in cases:
        result = run.task("run " + cid)
        assert result["status"] == "failed", (cid, result)
        msg = result["result"]["msg"]
        assert msg.startswith(option) and " contains a private key; pass only certificates" in msg, (cid, msg)
        for line in _key_lines(key):
            assert line not in output, "%s: a line of the key is in the -vvv output" % cid
            assert line not in str(result["result"]), "%s: a line of the key is in the result" % cid
    assert bao.audit.requests(mark) == [], "a case reached Vault"
    assert len(cases) == 24


def test_the_role_refuses_a_private_key_in_its_certificate_variable(playbook, bao, tmp_path):
    key = _keys()["rsa-pkcs1"]
    mark = bao.audit.mark()
    run = playbook([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                     "roles": [{"role": "meshpki.vault_ca.istio_vault_ca", "vars": {
                         "istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
                         "istio_vault_ca_k8s_ca_cert": key,
                         "istio_vault_ca_manifest_path": str(tmp_path / "controlplane.yaml")}}]}], verbosity=3)
    assert run.rc != 0
    failed = [r for r in run.results if r["status"] == "failed"]
    assert len(failed) == 1 and "istio_vault_ca_k8s_ca_cert contains a private key; pass only certificates" \
        in failed[0]["result"]["msg"], run
    for line in _key_lines(key):
        assert line not in run.output
    assert bao.audit.requests(mark) == []


@pytest.mark.parametrize("header", ["-----BEGIN PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                                    "-----BEGIN OPENSSH PRIVATE KEY-----"])
def test_every_private_key_label_is_recognised(header):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import private_key_options
    body = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    text = "%s\n%s\n%s\n" % (header, body, header.replace("BEGIN", "END"))
    found = private_key_options({"certificate": text, "pem_bundle": text},
                                {"certificate": {"type": "str"}, "pem_bundle": {"type": "str", "no_log": True}})
    assert [option for option, _secrets in found] == ["certificate"]
    assert body in found[0][1] and text in found[0][1]
