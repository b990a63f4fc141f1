"""istio_ca_verify on a root-cert.pem with two roots, rendered by the real ``bao agent`` from OpenBao (issue #18).

The rotation's trust bundle is engineer A's rendering in the role; here it is set up with plain API calls - root A
(the guide's), root B in a second PKI mount with the same common name and a new key - and one agent template that
concatenates both roots' cert/ca. At each phase of a rotation (trust: A+B, intermediate from A; sign: A+B,
intermediate from B; retire: B only) the module verifies the rendered directory, with expect_roots naming the roots
the phase must trust, and says which root signs (chain_root)."""

import uuid

from cryptography import x509
from test_bao_agent_render import guide_pki

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import render_templates
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import sha256_fingerprint
from harness import agent
from harness.playbook import module_play

ROOT_TEMPLATE = '{{- with secret "%s/cert/ca" -}}\n{{ .Data.certificate }}\n{{- end }}\n'


def fingerprint(pem):
    return sha256_fingerprint(x509.load_pem_x509_certificate(pem.encode()))


class Estate(object):
    def __init__(self, bao, tmp_path):
        suffix = uuid.uuid4().hex[:8]
        self.bao, self.tmp_path = bao, tmp_path
        self.mount_a, self.mount_b, self.int_mount = "pki-a-" + suffix, "pki-b-" + suffix, "istioca-" + suffix
        self.kv_path = "istioca-" + suffix
        pki = guide_pki(bao, root_mount=self.mount_a, int_mount=self.int_mount, kv_path=self.kv_path)
        self.root_a = pki["root"]
        bao.api("POST", "sys/mounts/" + self.mount_b, {"type": "pki", "config": {"max_lease_ttl": "17520h"}})
        self.root_b = bao.api("POST", self.mount_b + "/root/generate/internal",
                              {"common_name": "tetrate.io", "ttl": "17520h"})["data"]["certificate"]
        self.token_file = tmp_path / "token"
        self.token_file.write_text(bao.token)
        self.renders = 0

    def sign_from_b(self):
        """Phase sign: a new intermediate key, stored in KV first, signed by root B, made the default issuer."""
        generated = self.bao.api("POST", self.int_mount + "/intermediate/generate/exported",
                                 {"common_name": "tetrate.io Intermediate Authority"})["data"]
        self.bao.api("POST", "secret/data/%s" % self.kv_path, {"data": {"ca-key.pem": generated["private_key"]}})
        signed = self.bao.api("POST", self.mount_b + "/root/sign-intermediate",
                              {"csr": generated["csr"], "format": "pem", "ttl": "8000h"})["data"]
        imported = self.bao.api("POST", self.int_mount + "/intermediate/set-signed",
                                {"certificate": signed["certificate"] + "\n" + signed["issuing_ca"]})["data"]
        issuer = next(issuer for issuer, key_id in imported["mapping"].items() if key_id)
        self.bao.api("POST", self.int_mount + "/config/issuers", {"default": issuer})

    def render(self, *root_mounts):
        """The real agent renders the four files; root-cert.pem from ``root_mounts``, in that order."""
        self.renders += 1
        out = self.tmp_path / ("rendered-%d" % self.renders)
        out.mkdir()
        templates = render_templates(intermediate_mount=self.int_mount, root_mount=self.mount_a,
                                     kv_path=self.kv_path)
        templates["root-cert.pem"] = (root_mounts[0] + "/cert/ca",
                                      "\n".join(ROOT_TEMPLATE % mount for mount in root_mounts))
        proc = agent.run_agent(agent.agent_config(self.bao.url, templates, str(out),
                                                  {"method": "token_file", "token_file": str(self.token_file)}),
                               str(out))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return str(out)


def verify(playbook, directory, expect_roots):
    run = playbook(module_play("istio_ca_verify", {"path": directory, "expect_roots": expect_roots},
                               name="verify", ignore_errors=True))
    assert run.rc == 0, run
    return run.task("verify")


def test_each_phase_of_a_rotation_verifies_with_the_roots_it_must_trust(bao, playbook, tmp_path):
    estate = Estate(bao, tmp_path)
    a, b = estate.root_a, estate.root_b
    assert x509.load_pem_x509_certificate(a.encode()).subject == x509.load_pem_x509_certificate(b.encode()).subject

    # phase trust: A+B rendered, the intermediate still from A
    trust = estate.render(estate.mount_a, estate.mount_b)
    result = verify(playbook, trust, [a, fingerprint(b)])
    assert result["status"] == "ok", result["result"].get("msg")
    assert result["result"]["chain_root"]["position"] == 1
    assert result["result"]["chain_root"]["sha256_fingerprint"] == fingerprint(a)
    assert [root["sha256_fingerprint"] for root in result["result"]["certificates"]["roots"]] == [
        fingerprint(a), fingerprint(b)]
    # a gate expecting B alone refuses it, naming root #1 as not expected
    refused = verify(playbook, trust, [b])
    assert refused["status"] == "failed" and refused["result"]["failed_checks"] == ["roots_expected"]
    assert "not expected 1: 'CN=tetrate.io' (#1 of root-cert.pem" in refused["result"]["msg"]

    # phase sign: the intermediate re-issued from B, both roots still trusted
    estate.sign_from_b()
    sign = estate.render(estate.mount_a, estate.mount_b)
    result = verify(playbook, sign, [a, b])
    assert result["status"] == "ok", result["result"].get("msg")
    assert result["result"]["chain_root"] == {"position": 2, "subject": "CN=tetrate.io",
                                              "sha256_fingerprint": fingerprint(b)}
    workload = [c for c in result["result"]["checks"] if c["name"] == "workload_cert_verifies"][0]
    assert workload["passed"] and "(#2 of root-cert.pem, SHA-256 %s...)" % fingerprint(b)[:23] in workload["detail"]

    # phase retire: B alone; a gate that still expects A names it as missing
    retire = estate.render(estate.mount_b)
    result = verify(playbook, retire, [b])
    assert result["status"] == "ok", result["result"].get("msg")
    assert result["result"]["chain_root"]["position"] == 1
    missing = verify(playbook, retire, [a, b])
    assert missing["status"] == "failed" and missing["result"]["failed_checks"] == ["roots_expected"]
    assert "missing 1: 'CN=tetrate.io' (SHA-256 %s)" % fingerprint(a) in missing["result"]["msg"]
