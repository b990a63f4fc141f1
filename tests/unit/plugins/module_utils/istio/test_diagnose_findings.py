# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""More verdicts of istio_ca_diagnose (istio/diagnose.py), written for the mutation run of issue #16 point 6: the
boundaries of the certificate checks, each branch of the mounts, role, login, bundle and target checks, the root
rotation's record, and what the result holds. The answer set and helpers are test_diagnose.py's."""

import hvac.exceptions as hvac_exc
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from test_diagnose import CA, GOLDEN, POLICY, Module, ca_cert, healthy_answers, healthy_but, issuer, key_pem, pem, run

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio import diagnose as diagnose_module
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.diagnose import (
    CHECKS,
    Findings,
    _glob_grants,
    diagnose,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import AGENT_READS
from harness.fake_vault import FakeVault

THE_CA = CA()


@pytest.fixture
def answers():
    return healthy_answers(THE_CA)


def with_root_days(days):
    """The answers for a root that expires in ``days`` days (the intermediate signed by it)."""
    soon = CA()
    soon.root = ca_cert("meshpki root", soon.root_key, days=days)
    soon.intermediate = ca_cert("Istio intermediate", soon.key, soon.root, soon.root_key, days=20)
    return healthy_answers(soon)


# ---------------------------------------------------------------------------------------------------------
# the Vault server and the login
# ---------------------------------------------------------------------------------------------------------

def test_an_unreachable_vault_is_a_problem_naming_the_url_and_the_rest_is_skipped(answers):
    answers[("GET", "sys/health")] = requests.exceptions.ConnectionError("connection refused")
    result, checks, vault = run(answers)
    status, message = checks["vault_reachable"]
    assert status == "problem" and "https://vault.test:8200" in message and "sys/health" in message
    assert "connection refused" in message and "reach Vault at" in message  # the cause, what was tried
    assert all(checks[name][0] == "skipped" and "vault_reachable" in checks[name][1] for name in CHECKS[1:-1])
    assert result["vault"] == {} and result["healthy"] is False and vault.paths() == ["sys/health"]


def test_the_health_request_asks_standbys_and_sealed_nodes_to_answer(answers):
    _result, _checks, vault = run(answers)
    assert vault.requests[0].params == {"standbyok": "true", "perfstandbyok": "true", "sealedcode": 200,
                                        "uninitcode": 200, "drsecondarycode": 200, "performancestandbycode": 200}


def test_a_health_answer_that_is_not_an_object_is_not_initialised(answers):
    answers[("GET", "sys/health")] = ["not", "an", "object"]
    result, checks, _vault = run(answers)
    assert checks["vault_reachable"][0] == "problem" and "operator init" in checks["vault_reachable"][1]
    assert result["vault"] == {"version": None, "initialized": None, "sealed": None, "standby": None,
                               "cluster_name": None}


def test_the_server_facts_and_the_login(answers):
    result, checks, _vault = run(answers)
    assert result["vault"] == {"version": "2.7.2", "initialized": True, "sealed": False, "standby": False,
                               "cluster_name": "vault-cluster"}
    assert "2.7.2 at https://vault.test:8200" in checks["vault_reachable"][1]
    assert checks["vault_login"][0] == "ok"


def test_a_vault_error_in_one_check_is_that_checks_problem_and_the_rest_goes_on(answers):
    answers[("GET", "sys/policies/acl/istioca")] = 500
    _result, checks, _vault = run(answers)
    assert checks["policy"][0] == "problem" and "sys/policies/acl/istioca" in checks["policy"][1]
    assert checks["kubernetes_auth"][0] == "ok" and checks["role"][0] == "ok"


# ---------------------------------------------------------------------------------------------------------
# mounts
# ---------------------------------------------------------------------------------------------------------

def test_a_missing_root_mount_names_the_root_step(answers):
    del answers[("GET", "sys/mounts")]["data"]["pki/"]
    _result, checks, _vault = run(answers)
    assert checks["mounts"][0] == "problem"
    assert "'pki/'" in checks["mounts"][1] and "the main playbook's root CA step" in checks["mounts"][1]


def test_a_missing_kv_mount_names_the_intermediate_step(answers):
    del answers[("GET", "sys/mounts")]["data"]["secret/"]
    _result, checks, _vault = run(answers)
    assert "'secret/'" in checks["mounts"][1] and "the main playbook's intermediate CA step" in checks["mounts"][1]


def test_a_pki_mount_of_another_type_says_what_it_is(answers):
    answers[("GET", "sys/mounts")]["data"]["pki/"] = {"type": "kv", "options": {"version": "2"}}
    answers[("GET", "sys/mounts")]["data"]["istioca/"] = {"type": "transit"}
    _result, checks, _vault = run(answers)
    status, message = checks["mounts"]
    assert status == "problem"
    assert "'pki/' is a kv v2 mount" in message and "'istioca/' is a transit mount" in message
    assert "the key is read at" not in message  # said of the KV mount only


def test_no_kubernetes_auth_method(answers):
    answers[("GET", "sys/auth")] = {"data": {"token/": {"type": "token"}}}
    _result, checks, _vault = run(answers)
    assert checks["mounts"][0] == "problem" and "'auth/kubernetes/'" in checks["mounts"][1]
    assert "the main playbook's Kubernetes auth step" in checks["mounts"][1]  # the step that fixes it


# ---------------------------------------------------------------------------------------------------------
# the root and the intermediate
# ---------------------------------------------------------------------------------------------------------

def test_an_expired_root_is_a_problem():
    answers = with_root_days(-0.5)
    _result, checks, _vault = run(answers)
    assert checks["root_ca"][0] == "problem" and "EXPIRED" in checks["root_ca"][1]


@pytest.mark.parametrize("days, status", [(91, "ok"), (90, "warning")])
def test_a_root_warns_below_ninety_days(days, status):
    _result, checks, _vault = run(with_root_days(days))  # days_left: days - 1 (a part of a day is gone)
    assert checks["root_ca"][0] == status


def test_the_certificates_and_the_root_facts(answers):
    result, checks, _vault = run(answers)
    root = result["certificates"]["root"]
    assert sorted(root) == ["days_left", "not_after", "serial", "subject"] and root["subject"] == "CN=meshpki root"
    status, message = checks["root_ca"]
    assert status == "ok"
    assert all(str(root[key]) in message for key in ("subject", "serial", "not_after", "days_left")), message


def test_an_expired_intermediate_is_a_problem(answers):
    expired = ca_cert("Istio intermediate", THE_CA.key, THE_CA.root, THE_CA.root_key, days=-1)
    answers[("GET", "istioca/issuer/int-1")] = issuer("int-1", expired, "", [expired, THE_CA.root])
    _result, checks, _vault = run(answers)
    assert checks["intermediate_ca"][0] == "problem" and "EXPIRED" in checks["intermediate_ca"][1]


def test_renew_before_is_compared_in_seconds(answers):
    days = run(answers)[0]["certificates"]["intermediate"]["days_left"]
    _result, checks, _vault = run(healthy_answers(THE_CA), renew_before="%dh" % (days * 24))
    assert checks["intermediate_ca"][0] == "ok"  # exactly renew_before left: not within it
    _result, checks, _vault = run(healthy_answers(THE_CA), renew_before="%dh" % (days * 24 + 1))
    assert checks["intermediate_ca"][0] == "warning"


def test_a_root_mount_without_a_default_issuer(answers):
    answers[("GET", "pki/config/issuers")] = {"data": {"default": ""}}
    result, checks, _vault = run(answers)
    assert checks["root_ca"][0] == "problem" and "'pki' has no default issuer, so root-cert.pem" in \
        checks["root_ca"][1]
    assert "(root CA step)" in checks["root_ca"][1] and "root" not in result["certificates"]
    assert checks["intermediate_ca"][0] == "ok"  # no root to compare with


def test_an_intermediate_key_secret_without_a_version(answers):
    answers[("GET", "secret/data/istioca")] = {"data": {"data": {}, "metadata": {"version": 0}}}
    _result, checks, _vault = run(answers)
    assert checks["intermediate_key"][0] == "problem"
    assert "secret/istioca field ca-key.pem" in checks["intermediate_key"][1]


def test_a_key_secret_without_fields_says_none(answers):
    answers[("GET", "secret/data/istioca")] = {"data": {"data": {}, "metadata": {"version": 3}}}
    _result, checks, _vault = run(answers)
    assert "'ca-key.pem'" in checks["intermediate_key"][1] and "(fields: none)" in checks["intermediate_key"][1]


def test_the_key_check_reads_the_configured_field(answers):
    answers[("GET", "secret/data/istioca")] = {"data": {"data": {"key": key_pem(THE_CA.key)},
                                                        "metadata": {"version": 1}}}
    _result, checks, _vault = run(answers, kv_field="key")
    assert checks["intermediate_key"][0] == "ok" and "secret/istioca field key " in checks["intermediate_key"][1]


def test_a_wrong_key_names_the_intermediates_serial(answers):
    other = ec.generate_private_key(ec.SECP256R1())
    answers[("GET", "secret/data/istioca")] = {"data": {"data": {"ca-key.pem": key_pem(other)},
                                                        "metadata": {"version": 2}}}
    result, checks, _vault = run(answers)
    assert "(serial %s)" % result["certificates"]["intermediate"]["serial"] in checks["intermediate_key"][1]


# ---------------------------------------------------------------------------------------------------------
# the root rotation's record
# ---------------------------------------------------------------------------------------------------------

def run_with_rotation(answers, **params):
    """diagnose with trust_bundle_path=pki-trust: (result, {check: (status, message)}, the fake vault)."""
    vault = FakeVault(answers, strict_writes=True)
    result = diagnose(Module(vault, trust_bundle_path="pki-trust", **params))
    return result, dict((c["name"], (c["status"], c["message"])) for c in result["checks"]), vault


def rotation_run(answers, record):
    answers = dict(answers)
    answers[("GET", "secret/data/pki-trust")] = {"data": {"data": record, "metadata": {"version": 3}}}
    vault = FakeVault(answers, strict_writes=True)
    result = diagnose(Module(vault, trust_bundle_path="pki-trust"))
    return result, dict((c["name"], (c["status"], c["message"])) for c in result["checks"])


def test_a_trust_bundle_without_the_root_is_a_problem(answers):
    result, checks = rotation_run(answers, {"phase": "trust"})
    assert checks["root_rotation"][0] == "problem"
    assert "the trust bundle secret/pki-trust holds no root-cert.pem" in checks["root_rotation"][1]
    assert "root_rotation" not in result


def test_a_trust_bundle_without_a_rotation(answers):
    result, checks = rotation_run(answers, {"root-cert.pem": pem(THE_CA.root), "trusted": "root-1"})
    assert checks["root_rotation"][0] == "ok"
    assert "secret/pki-trust" in checks["root_rotation"][1] and "root-1" in checks["root_rotation"][1]
    assert result["root_rotation"] == {"phase": None, "old_issuer_id": None, "new_issuer_id": None,
                                       "trusted": "root-1", "signer": None, "next_phase_at": None}


def test_the_record_of_a_rotation_in_the_result(answers):
    result, _checks = rotation_run(answers, {"root-cert.pem": pem(THE_CA.root), "phase": "trust", "old_issuer_id": "a",
                                             "new_issuer_id": "b", "trusted": "a,b", "signer": "a",
                                             "next_phase_at": "2026-12-08T12:00:00Z", "trust_at": "2026-12-07"})
    assert result["root_rotation"] == {"phase": "trust", "old_issuer_id": "a", "new_issuer_id": "b",
                                       "trusted": "a,b", "signer": "a", "next_phase_at": "2026-12-08T12:00:00Z"}


def test_a_retired_rotation_has_no_next_phase(answers):
    _result, checks = rotation_run(answers, {"root-cert.pem": pem(THE_CA.root), "phase": "retire", "trusted": "b",
                                             "signer": "b", "old_issuer_id": "a", "new_issuer_id": "b",
                                             "next_phase_at": "2026-12-08T12:00:00Z"})
    status, message = checks["root_rotation"]
    assert status == "ok" and "phase retire" in message and "2026-12-08" not in message


@pytest.mark.parametrize("phase", ["trust", "aborted"])
def test_a_rotation_in_trust_or_aborted_names_the_next_phase(answers, phase):
    _result, checks = rotation_run(answers, {"root-cert.pem": pem(THE_CA.root), "phase": phase,
                                             "next_phase_at": "2026-12-08T12:00:00Z"})
    assert "2026-12-08T12:00:00Z" in checks["root_rotation"][1]
    assert "meshpki.vault_ca.rotate_root" in checks["root_rotation"][1]


# ---------------------------------------------------------------------------------------------------------
# policy, Kubernetes auth, role
# ---------------------------------------------------------------------------------------------------------

def with_policy(answers, policy):
    answers[("GET", "sys/policies/acl/istioca")] = {"data": {"policy": policy}}
    return run(answers)[1]["policy"]


def test_a_policy_that_does_not_parse(answers):
    status, message = with_policy(answers, 'path "x" {')
    assert status == "problem" and "'istioca'" in message


def test_a_policy_in_the_top_level_of_the_answer(answers):
    answers[("GET", "sys/policies/acl/istioca")] = {"policy": POLICY}
    assert run(answers)[1]["policy"][0] == "ok"


def test_a_glob_that_grants_the_key_path_is_enough_but_extra(answers):
    status, message = with_policy(answers, POLICY.replace('"secret/data/istioca"', '"secret/data/*"'))
    assert status == "warning" and "(also: secret/data/*)" in message


def test_a_glob_without_read_does_not_grant(answers):
    policy = POLICY.replace('path "secret/data/istioca" { capabilities = ["read"] }',
                            'path "secret/data/*" { capabilities = ["list"] }')
    assert with_policy(answers, policy)[0] == "problem"


def test_the_missing_reads_are_named(answers):
    status, message = with_policy(answers, POLICY.replace('path "pki/cert/ca" { capabilities = ["read"] }', ""))
    assert status == "warning" and "pki/cert/ca" in message and "secret/data/istioca" not in message


def test_the_policy_ok_names_the_four_paths(answers):
    status, message = run(answers)[1]["policy"]
    assert status == "ok" and "istioca/cert/ca, istioca/cert/ca_chain, pki/cert/ca, secret/data/istioca" in message


def test_glob_grants():
    assert _glob_grants("secret/*", "secret/data/x", {"capabilities": ["read"]})
    assert not _glob_grants("secret/data/x", "secret/data/x", {"capabilities": ["read"]})
    assert not _glob_grants("other/*", "secret/data/x", {"capabilities": ["read"]})
    assert not _glob_grants("secret/*", "secret/data/x", {"capabilities": ["list"]})
    assert not _glob_grants("secret/*", "secret/data/x", None)


@pytest.mark.parametrize("config, words", [
    ({"kubernetes_host": "https://k8s:6443", "disable_local_ca_jwt": True},
     "no reviewer JWT (the client's own token is used for TokenReview)"),
    ({"kubernetes_host": "https://k8s:6443"}, "no reviewer JWT (Vault uses its own pod's token when it runs in "
                                              "Kubernetes)"),
])
def test_the_token_reviewer_is_described(answers, config, words):
    answers[("GET", "auth/kubernetes/config")] = {"data": config}
    status, message = run(answers)[1]["kubernetes_auth"]
    assert status == "ok" and "https://k8s:6443" in message and words in message


def test_a_missing_kubernetes_auth_config(answers):
    del answers[("GET", "auth/kubernetes/config")]
    assert run(answers)[1]["kubernetes_auth"][0] == "problem"


def role_check(answers, **data):
    answers[("GET", "auth/kubernetes/role/istiod")] = {"data": data}
    return run(answers)[1]["role"]


def test_a_role_bound_to_every_account_and_namespace_with_policies(answers):
    status, message = role_check(answers, bound_service_account_names=["*"], bound_service_account_namespaces=["*"],
                                 policies=["istioca"])
    assert status == "ok" and "istio-system/istiod-service-account" in message and "istioca" in message


def test_a_role_bound_to_another_namespace_cannot_log_in(answers):
    status, message = role_check(answers, bound_service_account_names=["istiod-service-account"],
                                 bound_service_account_namespaces=["default"], token_policies=["istioca"])
    assert status == "problem" and "is bound to namespace(s) default, not istio-system" in message
    assert "istiod's agent cannot log in." in message


def test_a_role_with_nothing_bound_says_none_and_cannot_log_in(answers):
    status, message = role_check(answers)
    assert status == "problem" and "auth/kubernetes/role/istiod" in message
    assert "service account(s) none, not istiod-service-account" in message
    assert "namespace(s) none, not istio-system" in message and "policies none, not istioca" in message
    assert "cannot log in" in message


def test_a_role_without_the_policy_names_the_policies_it_gives(answers):
    status, message = role_check(answers, bound_service_account_names=["istiod-service-account"],
                                 bound_service_account_namespaces=["istio-system"], token_policies=["default", "x"])
    assert status == "problem" and "policies default, x, not istioca" in message
    assert "logs in but cannot read the CA" in message


def test_a_missing_role(answers):
    del answers[("GET", "auth/kubernetes/role/istiod")]
    status, message = run(answers)[1]["role"]
    assert status == "problem" and "auth/kubernetes/role/istiod" in message


# ---------------------------------------------------------------------------------------------------------
# the login as istiod, the bundle
# ---------------------------------------------------------------------------------------------------------

def test_a_refused_istiod_login_gets_its_meaning(answers):
    answers[("POST", "auth/kubernetes/login")] = hvac_exc.Forbidden(
        "service account name not authorized", errors=["service account name not authorized"], method="POST",
        url="auth/kubernetes/login")
    _result, checks, _vault = run(answers, istiod_jwt="jwt")
    status, message = checks["istiod_login"]
    assert status == "problem" and "auth/kubernetes/login" in message
    assert "Meaning: the role's bound_service_account_names" in message


def test_the_login_reads_policies_and_metadata(answers):
    answers[("POST", "auth/kubernetes/login")] = {"auth": {"client_token": "s.istiod", "policies": ["istioca"]}}
    _result, checks, _vault = run(answers, istiod_jwt="jwt")
    status, message = checks["istiod_login"]
    assert status == "ok" and "auth/kubernetes/login" in message and "istioca" in message


def test_a_login_token_without_policies(answers):
    answers[("POST", "auth/kubernetes/login")] = {"auth": {"client_token": "s.istiod"}}
    _result, checks, _vault = run(answers, istiod_jwt="jwt")
    status, message = checks["istiod_login"]
    assert status == "problem" and "auth/kubernetes/login" in message and "no policy, not istioca" in message


def test_the_jwt_file_wins_over_istiod_jwt(answers, tmp_path):
    token = tmp_path / "jwt"
    token.write_text("  from-file \n")
    _result, _checks, vault = run(answers, istiod_jwt="given", istiod_jwt_file=str(token))
    assert vault.body("POST", "auth/kubernetes/login")["jwt"] == "from-file"


def test_an_istiod_token_that_cannot_be_revoked_is_a_warning(answers):
    vault = FakeVault(answers, strict_writes=True)
    vault.answers[("POST", "auth/token/revoke-self")] = 403
    module = Module(vault, istiod_jwt="jwt")
    result = diagnose(module)
    assert result["healthy"] is True and len(module.warnings) == 1
    assert "auth/token/revoke-self" in module.warnings[0] and "to revoke" in module.warnings[0]  # the action


def test_a_token_request_for_istiod(answers, monkeypatch):
    calls = []

    class Core(object):
        def __init__(self, api):
            calls.append(("api", api))

        def create_namespaced_service_account_token(self, name, namespace, body, _request_timeout):
            calls.append((name, namespace, body, _request_timeout))
            return type("Answer", (), {"status": type("Status", (), {"token": "requested-jwt"})})()

    library = type("Library", (), {"client": type("Client", (), {"CoreV1Api": Core})})

    def api_client(params, warn):
        calls.append(("kubeconfig", params["kubeconfig"]))
        return "the-api"

    monkeypatch.setattr(diagnose_module, "api_client", api_client)
    monkeypatch.setattr(diagnose_module, "kubernetes_library", lambda: library)
    _result, checks, vault = run(answers, istiod_request_jwt=True, kubeconfig="/tmp/kubeconfig")
    assert calls == [("kubeconfig", "/tmp/kubeconfig"), ("api", "the-api"),
                     ("istiod-service-account", "istio-system", {"spec": {"expirationSeconds": 600}}, 60)]
    assert vault.body("POST", "auth/kubernetes/login")["jwt"] == "requested-jwt"
    assert checks["istiod_login"][0] == "ok"


def test_a_token_request_the_api_refuses(answers, monkeypatch):
    class Core(object):
        def __init__(self, api):
            pass

        def create_namespaced_service_account_token(self, *args, **kwargs):
            raise RuntimeError("connection reset")

    library = type("Library", (), {"client": type("Client", (), {"CoreV1Api": Core})})
    monkeypatch.setattr(diagnose_module, "api_client", lambda params, warn: "the-api")
    monkeypatch.setattr(diagnose_module, "kubernetes_library", lambda: library)
    _result, checks, _vault = run(answers, istiod_request_jwt=True)
    status, message = checks["istiod_login"]
    assert status == "problem" and "connection reset" in message
    assert "request a token for the service account 'istio-system/istiod-service-account'" in message


def test_an_istiod_jwt_file_that_cannot_be_read(answers, monkeypatch, tmp_path):
    token = tmp_path / "jwt"
    token.write_text("jwt")

    def refuse(path, *args):
        raise IOError(13, "Permission denied", path)

    monkeypatch.setattr(diagnose_module, "open", refuse, raising=False)
    _result, checks, _vault = run(answers, istiod_jwt_file=str(token))
    status, message = checks["istiod_login"]
    assert status == "problem" and "istiod_jwt_file '%s'" % token in message
    assert "Permission denied" in message and "Errno" not in message  # the reason in words


def test_a_token_request_that_fails(answers, monkeypatch):
    def refuse(params, warn):
        raise diagnose_module.MeshPkiError("no kubeconfig")

    monkeypatch.setattr(diagnose_module, "api_client", refuse)
    _result, checks, _vault = run(answers, istiod_request_jwt=True)
    status, message = checks["istiod_login"]
    assert status == "problem" and "istio-system/istiod-service-account" in message and "no kubeconfig" in message


def test_the_bundle_with_the_modules_token_that_may_not_read(answers):
    answers[("GET", "istioca/cert/ca_chain")] = 403
    _result, checks, _vault = run(answers)
    status, message = checks["bundle"]
    assert status == "problem" and "this module's token" in message
    assert "cert-chain.pem (istioca/cert/ca_chain)" in message and "ca-cert.pem" not in message


def test_a_bundle_read_that_fails_otherwise_is_the_bundles_problem(answers):
    answers[("GET", "istioca/cert/ca")] = 500
    _result, checks, _vault = run(answers)
    status, message = checks["bundle"]
    assert status == "problem" and "istioca/cert/ca" in message
    assert "%s for ca-cert.pem" % AGENT_READS["ca-cert.pem"][0] in message  # what was being read


def test_a_bundle_that_does_not_parse(answers):
    answers[("GET", "pki/cert/ca")] = {"data": {"certificate": "-----BEGIN CERTIFICATE-----\nnope\n"
                                                               "-----END CERTIFICATE-----\n"}}
    _result, checks, _vault = run(answers)
    assert checks["bundle"][0] == "problem" and "root-cert.pem" in checks["bundle"][1]


def test_the_bundle_ok_counts_the_checks(answers):
    message = run(answers)[1]["bundle"][1]
    assert "this module's token" in message
    assert int(message.split("all ")[1].split()[0]) > 5


# ---------------------------------------------------------------------------------------------------------
# the target
# ---------------------------------------------------------------------------------------------------------

def manifest_with(tmp_path, env, annotations):
    manifest = tmp_path / "controlplane.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
        "metadata": {"name": "controlplane", "namespace": "tsb"},
        "spec": {"components": {"istio": {"kubeSpec": {"deployment": {"env": env, "podAnnotations": annotations}}}}}}))
    return str(manifest)


def golden():
    with open(GOLDEN) as f:
        return yaml.safe_load(f)


def test_a_target_with_a_wrong_env_and_a_different_annotation(answers, tmp_path):
    want = golden()
    annotations = dict(want["podAnnotations"], **{"vault.hashicorp.com/role": "other",
                                                  "vault.hashicorp.com/secret-volume-path": "/etc/other"})
    path = manifest_with(tmp_path, [{"name": "ROOT_CA_DIR", "value": "/etc/cacerts"}], annotations)
    result, checks, _vault = run(answers, target="tsb_controlplane", path=path)
    status, message = checks["target"]
    assert status == "problem"
    assert "vault.hashicorp.com/role, vault.hashicorp.com/secret-volume-path" in message
    assert "env ROOT_CA_DIR not set to ROOT_CA_DIR=/etc/cacerts-vault" in message
    assert "ControlPlane in %s" % path in message
    assert result["annotations"] == {"missing": [], "different": ["vault.hashicorp.com/role",
                                                                  "vault.hashicorp.com/secret-volume-path"],
                                     "other_prefix": []}


def test_with_a_trust_bundle_the_target_must_read_root_cert_from_it(answers, tmp_path):
    """The guide's annotations read root-cert.pem from pki/cert/ca; with trust_bundle_path the agent must read the
    trust bundle's KV secret instead."""
    want = golden()
    path = manifest_with(tmp_path, want["env"], want["podAnnotations"])
    answers[("GET", "secret/data/pki-trust")] = {"data": {"data": {"root-cert.pem": pem(THE_CA.root)},
                                                          "metadata": {"version": 1}}}
    result, checks, _vault = run_with_rotation(answers, target="tsb_controlplane", path=path)
    assert checks["target"][0] == "problem"
    assert "vault.hashicorp.com/agent-inject-secret-root-cert.pem" in result["annotations"]["different"]


def test_a_target_that_is_not_in_the_manifest(answers, tmp_path):
    path = manifest_with(tmp_path, [], {})
    with open(path) as f:
        doc = yaml.safe_load(f)
    doc["metadata"]["name"] = "another"
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    result, checks, _vault = run(answers, target="tsb_controlplane", path=path, target_name="controlplane",
                                 target_namespace="tsb")
    assert checks["target"][0] == "problem" and "tsb/another" in checks["target"][1]
    assert "annotations" not in result


def test_a_target_in_live_mode_needs_its_name(answers):
    result, checks, _vault = run(answers, target="tsb_controlplane")
    assert checks["target"][0] == "problem" and "target_name and target_namespace" in checks["target"][1]
    assert result["healthy"] is False


def test_a_live_target_is_read_from_the_cluster(answers, monkeypatch):
    want = golden()
    doc = {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
           "metadata": {"name": "controlplane", "namespace": "tsb"},
           "spec": {"components": {"istio": {"kubeSpec": {"deployment": {
               "env": want["env"], "podAnnotations": want["podAnnotations"]}}}}}}
    asked = []

    class Api(object):
        def get_namespaced_custom_object(self, group, version, namespace, plural, name):
            asked.append((group, version, namespace, plural, name))
            return doc

    monkeypatch.setattr(diagnose_module, "custom_objects_api", lambda params, warn: Api())
    _result, checks, _vault = run(answers, target="tsb_controlplane", target_name="controlplane",
                                  target_namespace="tsb")
    assert asked == [("install.tetrate.io", "v1alpha1", "tsb", "controlplanes", "controlplane")]
    assert checks["target"][0] == "ok"


def test_two_missing_annotations_are_both_named(answers, tmp_path):
    annotations = dict(golden()["podAnnotations"])
    del annotations["vault.hashicorp.com/role"]
    del annotations["vault.hashicorp.com/agent-inject"]
    path = manifest_with(tmp_path, golden()["env"], annotations)
    status, message = run(answers, target="tsb_controlplane", path=path)[1]["target"]
    assert status == "problem"
    assert "vault.hashicorp.com/agent-inject, vault.hashicorp.com/role" in message


def test_an_env_entry_the_module_would_rewrite_is_another_difference(answers, tmp_path):
    """ROOT_CA_DIR has the right value but also a valueFrom: tsb_controlplane_annotations would write it anew."""
    env = [{"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]
    path = manifest_with(tmp_path, env, golden()["podAnnotations"])
    result, checks, _vault = run(answers, target="tsb_controlplane", path=path)
    status, message = checks["target"]
    assert status == "problem" and "tsb_controlplane_annotations" in message  # the module that fixes it
    assert result["annotations"] == {"missing": [], "different": [], "other_prefix": []}


def test_an_extra_env_entry_without_a_value_is_the_targets_problem(answers, tmp_path):
    """As tsb_controlplane_annotations (state=present) refuses it."""
    path = manifest_with(tmp_path, golden()["env"], golden()["podAnnotations"])
    _result, checks, _vault = run(answers, target="tsb_controlplane", path=path,
                                  extra_env=[{"name": "ISTIO_EXTRA", "value": None}])
    status, message = checks["target"]
    assert status == "problem" and "extra_env entry 'ISTIO_EXTRA'" in message  # the option, not a wrong env


def test_the_live_target_api_warns_through_the_module(answers, monkeypatch):
    class Api(object):
        def get_namespaced_custom_object(self, *args):
            raise RuntimeError("connection refused")

    def api(params, warn):
        warn("insecure kubeconfig")
        return Api()

    monkeypatch.setattr(diagnose_module, "custom_objects_api", api)
    vault = FakeVault(answers, strict_writes=True)
    module = Module(vault, target="tsb_controlplane", target_name="controlplane", target_namespace="tsb")
    diagnose(module)
    assert module.warnings == ["insecure kubeconfig"]


def test_a_live_target_that_cannot_be_read(answers, monkeypatch):
    class Api(object):
        def get_namespaced_custom_object(self, *args):
            raise RuntimeError("connection refused")

    monkeypatch.setattr(diagnose_module, "custom_objects_api", lambda params, warn: Api())
    _result, checks, _vault = run(answers, target="tsb_controlplane", target_name="controlplane",
                                  target_namespace="tsb")
    assert checks["target"][0] == "problem" and "connection refused" in checks["target"][1]


# ---------------------------------------------------------------------------------------------------------
# the findings and the result
# ---------------------------------------------------------------------------------------------------------

def test_the_report_aligns_the_names():
    found = Findings()
    found.ok("a", "fine")
    found.problem("longer", "broken")
    found.warn("mid", "hm")
    found.skip("x", "why")
    assert found.report() == ["ok       a      fine", "problem  longer broken", "warning  mid    hm",
                              "skipped  x      why"]
    assert found.of("problem") == ["longer: broken"] and found.of("warning") == ["mid: hm"]
    assert Findings().report() == []


def test_problems_and_notices_in_the_result(answers):
    answers[("GET", "auth/kubernetes/config")] = {"data": {}}
    answers[("GET", "pki/issuer/root-1")] = issuer("root-1", THE_CA.root, "", [THE_CA.root])
    result, checks, _vault = run(answers)
    healthy_but(checks, kubernetes_auth="problem", root_ca="warning", istiod_login="skipped")
    assert result["healthy"] is False
    assert result["problems"] == ["kubernetes_auth: " + checks["kubernetes_auth"][1]]
    assert result["notices"] == ["root_ca: " + checks["root_ca"][1]]
    assert "root_rotation" not in result
