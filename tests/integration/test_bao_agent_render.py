"""The end-to-end proof: the annotations tsb_controlplane_annotations wrote, rendered by the REAL ``bao agent``
(templates taken from the annotations, Kubernetes auth through the fake API server's TokenReview) against a
real OpenBao set up as the guide does, give four files that istio_ca_verify and ``openssl verify`` accept.

The PKI chain is built with plain API calls (the guide's commands, corrected as DESIGN.md's "Facts" say:
intermediate ttl inside the root's, key stored in KV before signing, set-signed with certificate + issuing CA,
the new issuer made default). ``guide_pki`` is shared with test_istio_ca_verify.py.
"""

import json
import os
import subprocess

import pytest
import yaml

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import (
    BUNDLE_FILES,
    OPENBAO_PREFIX,
    VAULT_PREFIX,
    extract_templates,
    render_like_the_agent,
    render_templates,
    vault_paths_read,
)
from harness import agent
from harness.fake_k8s import FakeKubeApi
from harness.fixtures import controlplane
from harness.openbao import OpenBaoServer

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "unit", "plugins",
                      "module_utils", "istio", "golden", "controlplane_guide.yaml")
NS, SA = "istio-system", "istiod-service-account"


# ---------------------------------------------------------------------------------------------------------
# the guide's PKI, by plain API calls
# ---------------------------------------------------------------------------------------------------------

def guide_pki(bao, root_mount="pki", int_mount="istioca", kv_mount="secret", kv_path="istioca",
              kv_field="ca-key.pem", int_ttl="8000h"):
    """Root in ``root_mount`` (root/generate/internal), intermediate in ``int_mount`` (generate/exported ->
    key into KV v2 -> root/sign-intermediate -> set-signed with certificate + issuing CA -> config/issuers).
    Returns a dict with the PEMs the agent should render (and the key, for assertions only)."""
    bao.api("POST", "sys/mounts/" + root_mount, {"type": "pki", "config": {"max_lease_ttl": "8760h"}})
    root = bao.api("POST", root_mount + "/root/generate/internal",
                   {"common_name": "tetrate.io", "ttl": "8760h"})["data"]["certificate"]
    bao.api("POST", "sys/mounts/" + int_mount, {"type": "pki", "config": {"max_lease_ttl": "43800h"}})
    generated = bao.api("POST", int_mount + "/intermediate/generate/exported",
                        {"common_name": "tetrate.io Intermediate Authority"})["data"]
    key = generated["private_key"]
    bao.api("POST", "%s/data/%s" % (kv_mount, kv_path), {"data": {kv_field: key}})  # before signing
    signed = bao.api("POST", root_mount + "/root/sign-intermediate",
                     {"csr": generated["csr"], "format": "pem", "ttl": int_ttl})["data"]
    imported = bao.api("POST", int_mount + "/intermediate/set-signed",
                       {"certificate": signed["certificate"] + "\n" + signed["issuing_ca"]})["data"]
    issuer = next(issuer for issuer, key_id in imported["mapping"].items() if key_id)
    bao.api("POST", int_mount + "/config/issuers", {"default": issuer})
    return {"root": root, "intermediate": signed["certificate"], "key": key}


def istiod_policy(bao, name, **paths):
    rules = "".join('path "%s" {\n  capabilities = ["read"]\n}\n' % path for path in vault_paths_read(**paths))
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": rules})


def kubernetes_auth(bao, fake, mount="kubernetes", role="istiod", policy="istioca"):
    """The Kubernetes auth method against the fake API server, reviewer bound to system:auth-delegator."""
    reviewer = fake.mint_sa_token("kube-system", "vault-reviewer", ttl=7200)
    fake.bind_cluster_role("kube-system", "vault-reviewer")
    bao.api("POST", "sys/auth/" + mount, {"type": "kubernetes"})
    bao.api("POST", "auth/%s/config" % mount, {
        "kubernetes_host": fake.url, "kubernetes_ca_cert": fake.ca_pem, "token_reviewer_jwt": reviewer,
        "disable_local_ca_jwt": True})
    bao.api("POST", "auth/%s/role/%s" % (mount, role), {
        "bound_service_account_names": [SA], "bound_service_account_namespaces": [NS],
        "policies": [policy], "period": "600s"})


# ---------------------------------------------------------------------------------------------------------
# the round trip
# ---------------------------------------------------------------------------------------------------------

NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tsb"}}


@pytest.fixture(scope="module")
def guide_bao(tmp_path_factory):
    """A server of its own, so the guide's mount names (pki, istioca, secret/istioca) are used unchanged."""
    with OpenBaoServer(tmp_path_factory.mktemp("bao-guide"), audit=True) as server:
        yield server


def annotate_play(paths):
    task = {"meshpki.vault_ca.tsb_controlplane_annotations": {"path": paths[0], "name": "controlplane"}}
    openbao = {"meshpki.vault_ca.tsb_controlplane_annotations": {
        "path": paths[1], "annotation_prefix": OPENBAO_PREFIX, "agent_init_first": True}}
    return [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [dict(task, name="vault injector"), dict(openbao, name="openbao injector")]}]


def test_agent_renders_a_bundle_istiod_and_openssl_accept(guide_bao, playbook, tmp_path):
    bao = guide_bao
    with FakeKubeApi() as fake:
        pki = guide_pki(bao)
        istiod_policy(bao, "istioca")
        kubernetes_auth(bao, fake)

        # 1. the module writes the annotations into manifests (GitOps mode); read them back from the files
        manifests = [tmp_path / "controlplane.yaml", tmp_path / "controlplane-openbao.yaml"]
        for path in manifests:
            path.write_text(yaml.safe_dump_all([NAMESPACE, controlplane()], sort_keys=False))
        run = playbook(annotate_play([str(path) for path in manifests]))
        assert run.rc == 0, run
        assert [run.task(name)["status"] for name in ("vault injector", "openbao injector")] == ["changed"] * 2
        vault_doc = list(yaml.safe_load_all(manifests[0].read_text()))[1]
        openbao_doc = list(yaml.safe_load_all(manifests[1].read_text()))[1]
        deployment = vault_doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
        with open(GOLDEN) as f:
            assert {"env": deployment["env"], "podAnnotations": deployment["podAnnotations"]} == yaml.safe_load(f)
        templates = extract_templates(deployment["podAnnotations"], VAULT_PREFIX)
        openbao_annotations = openbao_doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]["podAnnotations"]
        assert extract_templates(openbao_annotations, OPENBAO_PREFIX) == templates  # same templates, other prefix
        assert openbao_annotations[OPENBAO_PREFIX + "/agent-init-first"] == "true"
        assert not [key for key in openbao_annotations if key.startswith(VAULT_PREFIX)]
        assert sorted(templates) == sorted(BUNDLE_FILES)

        # 2. the real agent renders them, logging in as istiod through the fake TokenReview
        token_file = tmp_path / "istiod-token"
        token_file.write_text(fake.mint_sa_token(NS, SA))
        out = tmp_path / "etc-cacerts-vault"
        out.mkdir()
        wrong = render_templates(kv_field="not-the-field")["ca-key.pem"][1]  # what a wrong kv_field renders
        rendered = dict(templates, **{"wrong-field-ca-key.pem": ("secret/data/istioca", wrong)})
        auth = {"method": "kubernetes", "mount": "kubernetes", "role": "istiod", "jwt_file": str(token_file)}
        config = agent.agent_config(bao.url, rendered, str(out), auth)
        fake.clear_requests()
        proc = agent.run_agent(config, str(out))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        reviews = fake.token_reviews
        assert reviews and set((r["caller"], r["status"]["authenticated"], r["status"]["user"]["username"])
                               for r in reviews) == set([("system:serviceaccount:kube-system:vault-reviewer", True,
                                                          "system:serviceaccount:%s:%s" % (NS, SA))])
        files = dict((name, (out / name).read_text()) for name in BUNDLE_FILES)
        assert files["ca-cert.pem"] == pki["intermediate"] + "\n"
        assert files["ca-key.pem"] == pki["key"] + "\n" and files["ca-key.pem"].startswith("-----BEGIN RSA PRIVATE")
        assert files["cert-chain.pem"] == pki["intermediate"] + "\n" + pki["root"] + "\n"
        assert files["root-cert.pem"] == pki["root"] + "\n"
        assert (out / "wrong-field-ca-key.pem").read_text() == "<no value>\n"

        # istio_ca_verify's Vault mode renders byte for byte what the agent rendered (including <no value>)
        for name in BUNDLE_FILES:
            body = bao.api("GET", templates[name][0])
            assert render_like_the_agent(name, body, "ca-key.pem") == files[name], name
        assert render_like_the_agent("ca-key.pem", bao.api("GET", "secret/data/istioca"), "not-the-field") == \
            (out / "wrong-field-ca-key.pem").read_text()

        # 3. istio_ca_verify accepts the directory, and Vault read as istiod (Kubernetes auth, istiod's policy)
        verify = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
            {"name": "directory", "meshpki.vault_ca.istio_ca_verify": {"path": str(out)}},
            {"name": "vault as istiod", "meshpki.vault_ca.istio_ca_verify": {
                "url": bao.url, "auth_method": "kubernetes", "role_id": "istiod",
                "jwt": fake.mint_sa_token(NS, SA), "vault_paths": {}}},
        ]}]
        mark = bao.audit.mark()
        run = playbook(verify, check=True)
        assert run.rc == 0, run
        for name in ("directory", "vault as istiod"):
            result = run.task(name)["result"]
            assert run.task(name)["status"] == "ok" and result["valid"] is True, result.get("msg")
            assert result["failed_checks"] == [] and len(result["checks"]) == 18
            assert result["chain_path"] == ["CN=tetrate.io Intermediate Authority", "CN=tetrate.io"]
            assert result["key_info"] == {"type": "rsa", "bits": 2048, "format": "pkcs1"}
        assert run.task("vault as istiod")["result"]["sources"]["ca-key.pem"] == "vault:secret/data/istioca"
        assert bao.audit.writes(since=mark) == []  # it only reads
        assert pki["key"].splitlines()[5] not in run.output + json.dumps(run.results)  # the key never shows

    # 4. and OpenSSL agrees
    proc = subprocess.run(["openssl", "verify", "-CAfile", str(out / "root-cert.pem"), "-untrusted",
                           str(out / "cert-chain.pem"), str(out / "ca-cert.pem")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "%s: OK" % (out / "ca-cert.pem"), proc.stdout + proc.stderr
