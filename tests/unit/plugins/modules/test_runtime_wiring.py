"""vault_pki_root, vault_pki_intermediate, istio_ca_verify and tsb_controlplane_annotations run in this process
through their main() - argument spec, MeshPkiModule.run and its one exit - with the Vault login replaced by the
strict FakeVault: what a task result looks like (diff only in diff mode, warnings, a failed verification that keeps
its report), and that a module which does not need Vault never logs in."""

import json

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule
from harness.certs import make_ca, plugin_ca_files
from harness.fake_vault import FakeVault
from harness.hostile import run_module


@pytest.fixture
def vault(monkeypatch):
    fake = FakeVault()
    monkeypatch.setattr(MeshPkiModule, "get_authenticated_client", lambda self: fake)
    return fake


def good_bundle():
    files = plugin_ca_files()
    return dict(ca_cert_pem=files["ca-cert.pem"], ca_key_pem=files["ca-key.pem"],
                cert_chain_pem=files["cert-chain.pem"], root_cert_pem=files["root-cert.pem"])


def test_vault_pki_root_check_mode_result_without_diff_outside_diff_mode(vault):
    result = run_module("vault_pki_root", {"url": "https://vault.test:8200", "common_name": "tetrate.io",
                                           "ttl": "8760h", "_ansible_check_mode": True})
    assert result["changed"] is True and result["action"] == "create" and "diff" not in result
    assert vault.writes() == [] and vault.paths() == ["sys/mounts"]


def test_vault_pki_root_diff_mode_keeps_the_diff(vault):
    result = run_module("vault_pki_root", {"url": "https://vault.test:8200", "common_name": "tetrate.io",
                                           "ttl": "8760h", "_ansible_check_mode": True, "_ansible_diff": True})
    assert result["diff"]["after"]["subject"] == "CN=tetrate.io" and result["diff"]["after"]["serial"] == "(new)"


def test_vault_pki_intermediate_failure_names_the_fix(vault):
    result = run_module("vault_pki_intermediate", {"url": "https://vault.test:8200", "common_name": "int",
                                                   "ttl": "24h"})
    assert result["failed"] is True and result["msg"].startswith("The root mount 'pki' does not exist")
    assert vault.writes() == []


def test_vault_pki_intermediate_takes_the_shared_layout_options(vault):
    result = run_module("vault_pki_intermediate", {"url": "https://vault.test:8200", "common_name": "int",
                                                   "ttl": "24h", "root_mount": "root-ca", "kv_path": "a/../b"})
    assert result["failed"] is True and "kv_path" in result["msg"] and vault.requests == []


def test_istio_ca_verify_pem_inputs_never_log_in(monkeypatch):
    def no_login(self):
        raise AssertionError("istio_ca_verify logged in without vault_paths")

    monkeypatch.setattr(MeshPkiModule, "get_authenticated_client", no_login)
    result = run_module("istio_ca_verify", good_bundle())
    assert result["valid"] is True and result["changed"] is False and "failed" not in result
    assert "PRIVATE KEY" not in json.dumps(result)


def test_istio_ca_verify_failure_keeps_the_report():
    bundle = good_bundle()
    bundle["ca_key_pem"] = make_ca("another").key_pem
    result = run_module("istio_ca_verify", bundle)
    assert result["failed"] is True and result["valid"] is False
    assert "key_matches_cert" in result["failed_checks"] and len(result["checks"]) > 10
    assert result["msg"].startswith("The Istio CA bundle from the PEM options would break istiod or the mesh")
    assert "PRIVATE KEY" not in json.dumps(result)


def test_istio_ca_verify_vault_paths_sub_options_have_the_layout_defaults(vault):
    result = run_module("istio_ca_verify", {"url": "https://vault.test:8200", "vault_paths": {}})
    assert result["failed"] is True  # nothing in the fake Vault: the bundle is empty
    assert sorted(vault.paths()) == ["istioca/cert/ca", "istioca/cert/ca_chain", "pki/cert/ca",
                                     "secret/data/istioca"]


def test_tsb_controlplane_annotations_auth_mount_alias(tmp_path, monkeypatch):
    def no_login(self):
        raise AssertionError("tsb_controlplane_annotations logged in to Vault")

    monkeypatch.setattr(MeshPkiModule, "get_authenticated_client", no_login)
    path = str(tmp_path / "values.yaml")
    for option in ("kubernetes_auth_mount", "auth_mount"):
        result = run_module("tsb_controlplane_annotations", {"target": "helm_values", "path": path,
                                                             option: "kubernetes-east",
                                                             "_ansible_check_mode": True})
        assert result["annotations"]["vault.hashicorp.com/auth-path"] == "auth/kubernetes-east", result
        assert result["changed"] is True and "diff" not in result
