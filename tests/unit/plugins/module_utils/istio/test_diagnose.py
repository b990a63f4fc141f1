# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/istio/diagnose.py: the twelve checks of istio_ca_diagnose, without a server.

``healthy`` is the answer set of a Vault set up by the main playbook (the guide's layout: root in ``pki``, Istio's
intermediate in ``istioca``, its key in ``secret/istioca``, Kubernetes auth at ``kubernetes``), served by FakeVault
(the real VaultClient over a fake adapter: an unknown read is a 404). Each broken case changes one answer (or one
option) and asserts the verdict of the check it is about, and that the others still say what they said.
"""

import datetime
import os

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.diagnose import CHECKS, diagnose
from ansible_collections.meshpki.vault_ca.plugins.modules.istio_ca_diagnose import ARGUMENT_SPEC
from harness.fake_vault import FakeHvac, FakeVault

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "controlplane_guide.yaml")
DEFAULTS = dict((name, option.get("default")) for name, option in ARGUMENT_SPEC.items())

POLICY = """
path "istioca/cert/ca" { capabilities = ["read"] }
path "istioca/cert/ca_chain" { capabilities = ["read"] }
path "pki/cert/ca" { capabilities = ["read"] }
path "secret/data/istioca" { capabilities = ["read"] }
"""


# ---------------------------------------------------------------------------------------------------------
# a root and an intermediate, as Vault would hold them
# ---------------------------------------------------------------------------------------------------------

def ca_cert(cn, key, issuer=None, issuer_key=None, days=3650):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False)
    return (x509.CertificateBuilder().subject_name(name)
            .issuer_name(issuer.subject if issuer is not None else name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + days * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .sign(issuer_key or key, hashes.SHA256()))


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class CA(object):
    def __init__(self, intermediate_days=180):
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = ca_cert("meshpki root", self.root_key)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = ca_cert("Istio intermediate", self.key, self.root, self.root_key, intermediate_days)


@pytest.fixture(scope="module")
def ca():
    return CA()


def issuer(issuer_id, cert, key_id, chain):
    return {"data": {"issuer_id": issuer_id, "certificate": pem(cert), "key_id": key_id,
                     "ca_chain": [pem(c) for c in chain]}}


def healthy_answers(ca):
    """What a Vault the main playbook set up answers to every read of the diagnosis (and istiod's login)."""
    root, intermediate = pem(ca.root), pem(ca.intermediate)
    return {
        ("GET", "sys/health"): {"version": "2.7.2", "initialized": True, "sealed": False, "standby": False,
                                "cluster_name": "vault-cluster"},
        ("GET", "auth/token/lookup-self"): {"data": {"policies": ["root"]}},
        ("GET", "sys/mounts"): {"data": {"pki/": {"type": "pki"}, "istioca/": {"type": "pki"},
                                         "secret/": {"type": "kv", "options": {"version": "2"}}}},
        ("GET", "sys/auth"): {"data": {"kubernetes/": {"type": "kubernetes"}, "token/": {"type": "token"}}},
        ("GET", "pki/config/issuers"): {"data": {"default": "root-1"}},
        ("GET", "pki/issuer/root-1"): issuer("root-1", ca.root, "key-1", [ca.root]),
        ("GET", "istioca/config/issuers"): {"data": {"default": "int-1"}},
        ("GET", "istioca/issuer/int-1"): issuer("int-1", ca.intermediate, "", [ca.intermediate, ca.root]),
        ("GET", "secret/data/istioca"): {"data": {"data": {"ca-key.pem": key_pem(ca.key)},
                                                  "metadata": {"version": 1}}},
        ("GET", "sys/policies/acl/istioca"): {"data": {"name": "istioca", "policy": POLICY}},
        ("GET", "auth/kubernetes/config"): {"data": {"kubernetes_host": "https://10.0.0.1:6443",
                                                     "token_reviewer_jwt_set": True}},
        ("GET", "auth/kubernetes/role/istiod"): {"data": {
            "bound_service_account_names": ["istiod-service-account"],
            "bound_service_account_namespaces": ["istio-system"], "token_policies": ["istioca"]}},
        ("POST", "auth/kubernetes/login"): {"auth": {
            "client_token": "s.istiod", "token_policies": ["default", "istioca"], "lease_duration": 3600,
            "metadata": {"service_account_namespace": "istio-system",
                         "service_account_name": "istiod-service-account"}}},
        ("GET", "istioca/cert/ca"): {"data": {"certificate": intermediate}},
        ("GET", "istioca/cert/ca_chain"): {"data": {"certificate": intermediate + root}},
        ("GET", "pki/cert/ca"): {"data": {"certificate": root}},
    }


@pytest.fixture
def healthy(ca):
    return healthy_answers(ca)


class Module(object):
    """What diagnose() uses of the module: params, connection(), get_authenticated_client(), warn()."""

    def __init__(self, vault, **params):
        self.params = dict(DEFAULTS, **params)
        self.vault = vault
        self.warnings = []

    def connection(self):
        return Connection(self.vault)

    def get_authenticated_client(self):
        return self.vault

    def warn(self, text):
        self.warnings.append(text)


class Connection(object):
    """The fake Vault's connection settings; client() is an unauthenticated client of the same fake."""

    def __init__(self, vault):
        self.vault = vault

    def client(self):
        return FakeHvac(self.vault)

    def __getattr__(self, name):
        return getattr(self.vault.conn, name)


def run(answers, **params):
    """(result, {check: (status, message)}, the fake vault)."""
    vault = FakeVault(answers, strict_writes=True)
    vault.answers[("POST", "auth/token/revoke-self")] = None  # istiod's token, revoked at the end
    result = diagnose(Module(vault, **params))
    assert [check["name"] for check in result["checks"]] == list(CHECKS)
    assert result["changed"] is False
    return result, dict((c["name"], (c["status"], c["message"])) for c in result["checks"]), vault


def statuses(checks):
    return dict((name, status) for name, (status, _message) in checks.items())


def healthy_but(checks, **expected):
    """Every check ok (target skipped: no target given) except ``expected``."""
    want = dict((name, "ok") for name in CHECKS)
    want.update(target="skipped", **expected)
    assert statuses(checks) == want, checks


# ---------------------------------------------------------------------------------------------------------
# a healthy setup
# ---------------------------------------------------------------------------------------------------------

def test_healthy_setup_every_check_ok(healthy):
    result, checks, vault = run(healthy, istiod_jwt="jwt-of-istiod")
    healthy_but(checks)
    assert result["healthy"] is True and result["problems"] == [] and result["notices"] == []
    assert result["vault"]["version"] == "2.7.2" and result["vault"]["sealed"] is False
    assert result["certificates"]["intermediate"]["subject"] == "CN=Istio intermediate"
    assert 178 <= result["certificates"]["intermediate"]["days_left"] <= 180
    assert "annotations" not in result
    assert "active node" in checks["vault_reachable"][1]
    assert "pki/ and istioca/ are pki, secret/ is KV v2, auth/kubernetes/ is kubernetes" == checks["mounts"][1]
    assert "secret/istioca field ca-key.pem (version 1) matches" in checks["intermediate_key"][1]
    assert "grants read on exactly the four paths" in checks["policy"][1]
    assert "auth/kubernetes talks to https://10.0.0.1:6443 with a reviewer JWT" == checks["kubernetes_auth"][1]
    assert "logged in at auth/kubernetes/login as istio-system/istiod-service-account" in checks["istiod_login"][1]
    assert "rendered with istiod's token" in checks["bundle"][1]
    # istiod logs in as the agent would (role and JWT) at the Kubernetes auth mount; its token is revoked.
    assert vault.body("POST", "auth/kubernetes/login") == {"role": "istiod", "jwt": "jwt-of-istiod"}
    assert vault.writes() == [("POST", "auth/kubernetes/login"), ("POST", "auth/token/revoke-self")]
    assert all(line.split()[0] == "ok" for line in result["report"][:-1])


def test_istiod_logs_in_at_kubernetes_auth_mount_with_its_own_options(healthy, tmp_path):
    """Issue #16: istiod's mount, role and JWT have names of their own; auth_mount/jwt are the module's login."""
    for method, path in (("GET", "auth/kubernetes/config"), ("GET", "auth/kubernetes/role/istiod"),
                         ("POST", "auth/kubernetes/login")):
        healthy[(method, path.replace("auth/kubernetes/", "auth/k8s-eu1/"))] = healthy.pop((method, path))
    healthy[("GET", "sys/auth")] = {"data": {"k8s-eu1/": {"type": "kubernetes"}}}
    token = tmp_path / "istiod.jwt"
    token.write_text("jwt-from-file\n")
    _result, checks, vault = run(healthy, kubernetes_auth_mount="k8s-eu1", istiod_jwt_file=str(token),
                                 auth_mount="approle", jwt="the-module-s-own-jwt")
    healthy_but(checks)
    assert vault.body("POST", "auth/k8s-eu1/login") == {"role": "istiod", "jwt": "jwt-from-file"}
    assert "auth/k8s-eu1/ is kubernetes" in checks["mounts"][1]


def test_istiod_jwt_file_that_is_not_a_file_fails(healthy, tmp_path):
    with pytest.raises(MeshPkiError, match="istiod_jwt_file '.*' is not a file"):
        run(healthy, istiod_jwt_file=str(tmp_path))


# ---------------------------------------------------------------------------------------------------------
# one broken input per check
# ---------------------------------------------------------------------------------------------------------

def test_sealed_vault_is_a_problem_and_the_vault_checks_are_skipped(healthy):
    healthy[("GET", "sys/health")] = {"version": "2.7.2", "initialized": True, "sealed": True}
    result, checks, vault = run(healthy)
    assert checks["vault_reachable"][0] == "problem" and "is sealed" in checks["vault_reachable"][1]
    assert "bao operator unseal" in checks["vault_reachable"][1]
    assert all(checks[name] == ("skipped", "Vault is not usable (see vault_reachable)") for name in CHECKS[1:-1])
    assert result["vault"]["sealed"] is True and vault.paths() == ["sys/health"]


def test_uninitialised_vault(healthy):
    healthy[("GET", "sys/health")] = {"initialized": False, "sealed": True}
    _result, checks, _vault = run(healthy)
    assert checks["vault_reachable"][0] == "problem" and "operator init" in checks["vault_reachable"][1]


def test_standby_node_is_ok_and_says_so(healthy):
    healthy[("GET", "sys/health")] = dict(healthy[("GET", "sys/health")], standby=True)
    _result, checks, _vault = run(healthy)
    assert checks["vault_reachable"] == ("ok", checks["vault_reachable"][1])
    assert "standby node (requests are forwarded to the active node)" in checks["vault_reachable"][1]


def test_a_token_vault_refuses_blocks_the_rest(healthy):
    healthy[("GET", "auth/token/lookup-self")] = 403
    _result, checks, _vault = run(healthy)
    assert checks["vault_login"][0] == "problem" and "VAULT_* variables" in checks["vault_login"][1]
    assert all(checks[name] == ("skipped", "no Vault session (see vault_login)") for name in CHECKS[2:-1])


def test_kv_v1_mount_for_the_key(healthy):
    healthy[("GET", "sys/mounts")]["data"]["secret/"] = {"type": "kv", "options": {"version": "1"}}
    _result, checks, _vault = run(healthy)
    assert checks["mounts"][0] == "problem"
    assert "'secret/' is a kv v1 mount, but the intermediate's key needs kv v2; the key is read at " \
           "secret/data/istioca (KV v2 API)." == checks["mounts"][1]


def test_missing_mounts_and_a_wrong_auth_type(healthy):
    del healthy[("GET", "sys/mounts")]["data"]["istioca/"]
    healthy[("GET", "sys/auth")] = {"data": {"kubernetes/": {"type": "approle"}}}
    _result, checks, _vault = run(healthy)
    assert "no secrets engine at 'istioca/' (Istio's intermediate CA)" in checks["mounts"][1]
    assert "'auth/kubernetes/' is a approle auth method, not kubernetes" in checks["mounts"][1]


def test_root_without_a_key_in_vault_is_a_warning(healthy, ca):
    healthy[("GET", "pki/issuer/root-1")] = issuer("root-1", ca.root, "", [ca.root])
    _result, checks, _vault = run(healthy)
    healthy_but(checks, root_ca="warning", istiod_login="skipped")
    assert "has no key in Vault (an imported, offline root)" in checks["root_ca"][1]


def test_root_near_its_end_is_a_warning():
    soon = CA()
    soon.root = ca_cert("meshpki root", soon.root_key, days=30)
    soon.intermediate = ca_cert("Istio intermediate", soon.key, soon.root, soon.root_key, days=20)
    _result, checks, _vault = run(healthy_answers(soon))
    assert checks["root_ca"][0] == "warning" and "fewer than 90 days left" in checks["root_ca"][1]


def test_intermediate_within_renew_before_is_a_warning(healthy):
    _result, checks, _vault = run(healthy, renew_before="5000h")
    healthy_but(checks, intermediate_ca="warning", istiod_login="skipped")
    assert "within renew_before (5000h); the next run of the main playbook rotates it" in \
        checks["intermediate_ca"][1]


def test_intermediate_not_signed_by_the_current_root(healthy, ca):
    other = CA()
    healthy[("GET", "pki/issuer/root-1")] = issuer("root-1", other.root, "key-2", [other.root])
    healthy[("GET", "pki/cert/ca")] = {"data": {"certificate": pem(other.root)}}
    _result, checks, _vault = run(healthy)
    assert checks["intermediate_ca"][0] == "problem"
    assert "was not signed by the current root of 'pki' (CN=meshpki root)" in checks["intermediate_ca"][1]
    assert checks["bundle"][0] == "problem" and "chains_to_root" in checks["bundle"][1]


def test_intermediate_mount_without_a_default_issuer_skips_the_key_check(healthy):
    healthy[("GET", "istioca/config/issuers")] = {"data": {"default": ""}}
    _result, checks, _vault = run(healthy)
    assert checks["intermediate_ca"][0] == "problem"
    assert "'istioca' has no default issuer, so ca-cert.pem and cert-chain.pem render(s) empty" in \
        checks["intermediate_ca"][1]
    assert checks["intermediate_key"] == ("skipped", "no intermediate certificate to compare secret/istioca field "
                                                     "ca-key.pem with")


def test_key_in_kv_not_matching_the_intermediate(healthy):
    other = ec.generate_private_key(ec.SECP256R1())
    healthy[("GET", "secret/data/istioca")] = {"data": {"data": {"ca-key.pem": key_pem(other)},
                                                        "metadata": {"version": 2}}}
    result, checks, _vault = run(healthy)
    healthy_but(checks, intermediate_key="problem", bundle="problem", istiod_login="skipped")
    assert "does not belong to the default issuer of 'istioca'" in checks["intermediate_key"][1]
    assert "version 2" in checks["intermediate_key"][1]
    assert "key_matches_cert" in checks["bundle"][1]
    assert key_pem(other)[40:72] not in str(result)


@pytest.mark.parametrize("secret, words", [
    ({"data": {"data": {"other": "x"}, "metadata": {"version": 3}}},
     "(version 3) has no field 'ca-key.pem' (fields: other)"),
    ({"data": {"data": {"ca-key.pem": "not a key"}, "metadata": {"version": 1}}}, "is not a usable private key"),
])
def test_key_field_missing_or_unusable(healthy, secret, words):
    healthy[("GET", "secret/data/istioca")] = secret
    _result, checks, _vault = run(healthy)
    assert checks["intermediate_key"][0] == "problem" and words in checks["intermediate_key"][1]


def with_policy(healthy, policy):
    """The checks when the policy 'istioca' is ``policy``."""
    healthy[("GET", "sys/policies/acl/istioca")] = {"data": {"policy": policy}}
    return run(healthy)[1]


def test_policy_without_the_kv_path_is_a_problem(healthy):
    checks = with_policy(healthy, POLICY.replace('path "secret/data/istioca" { capabilities = ["read"] }', ""))
    healthy_but(checks, policy="problem", istiod_login="skipped")
    assert "does not grant read on secret/data/istioca, so the agent cannot render ca-key.pem (403)" in \
        checks["policy"][1]


@pytest.mark.parametrize("policy, words", [
    (POLICY.replace('path "istioca/cert/ca_chain" { capabilities = ["read"] }', ""), "without a token"),
    (POLICY + 'path "secret/data/other" { capabilities = ["read"] }', "more than the four reads"),
    (POLICY.replace('path "secret/data/istioca"', 'path "secret/data/istio*"'), "also: secret/data/istio*"),
])
def test_policy_warnings(healthy, policy, words):
    status, message = with_policy(healthy, policy)["policy"]
    assert status == "warning" and words in message


def test_missing_policy(healthy):
    del healthy[("GET", "sys/policies/acl/istioca")]
    _result, checks, _vault = run(healthy)
    assert checks["policy"] == ("problem", "the policy 'istioca' does not exist: istiod's token can read nothing. "
                                           "Run the main playbook (policy step).")


def test_kubernetes_auth_not_configured(healthy):
    healthy[("GET", "auth/kubernetes/config")] = {"data": {}}
    _result, checks, _vault = run(healthy)
    healthy_but(checks, kubernetes_auth="problem", istiod_login="skipped")
    assert "auth/kubernetes is not configured (no kubernetes_host)" in checks["kubernetes_auth"][1]


def test_role_bound_to_another_account_and_the_login_refused(healthy):
    healthy[("GET", "auth/kubernetes/role/istiod")]["data"]["bound_service_account_names"] = ["someone-else"]
    healthy[("POST", "auth/kubernetes/login")] = 403
    _result, checks, vault = run(healthy, istiod_jwt="jwt")
    healthy_but(checks, role="problem", istiod_login="problem")
    assert "bound to service account(s) someone-else, not istiod-service-account" in checks["role"][1]
    assert "auth/kubernetes/login" in checks["istiod_login"][1]
    assert "this module's token" in checks["bundle"][1]  # rendered with the module's token instead
    assert ("POST", "auth/token/revoke-self") not in vault.writes()


def test_role_without_the_policy_and_a_login_whose_token_lacks_it(healthy):
    healthy[("GET", "auth/kubernetes/role/istiod")]["data"]["token_policies"] = ["default"]
    healthy[("POST", "auth/kubernetes/login")]["auth"]["token_policies"] = ["default"]
    _result, checks, vault = run(healthy, istiod_jwt="jwt")
    assert checks["role"][0] == "problem" and "gives the policies default, not istioca" in checks["role"][1]
    assert "logs in but cannot read the CA" in checks["role"][1]
    assert checks["istiod_login"][0] == "problem" and "its token holds default, not istioca" in \
        checks["istiod_login"][1]
    assert ("POST", "auth/token/revoke-self") in vault.writes()  # revoked all the same


def test_no_istiod_jwt_skips_the_login(healthy):
    _result, checks, vault = run(healthy)
    assert checks["istiod_login"][0] == "skipped" and "istiod_request_jwt" in checks["istiod_login"][1]
    assert "rendered with this module's token" in checks["bundle"][1]
    assert vault.writes() == []


def test_bundle_that_istiods_token_may_not_read(healthy):
    healthy[("GET", "secret/data/istioca")] = [healthy[("GET", "secret/data/istioca")], 403]
    _result, checks, _vault = run(healthy, istiod_jwt="jwt")
    assert checks["bundle"][0] == "problem"
    assert "istiod's token may not read ca-key.pem (secret/data/istioca)" in checks["bundle"][1]


def test_target_in_a_manifest_ok_missing_annotation_and_other_prefix(healthy, tmp_path):
    with open(GOLDEN) as f:
        golden = yaml.safe_load(f)

    def check(annotations):
        manifest = tmp_path / "controlplane.yaml"
        manifest.write_text(yaml.safe_dump({
            "apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
            "metadata": {"name": "controlplane", "namespace": "tsb"},
            "spec": {"components": {"istio": {"kubeSpec": {"deployment": {
                "env": golden["env"], "podAnnotations": annotations}}}}}}))
        result, checks, _vault = run(healthy, target="tsb_controlplane", path=str(manifest))
        return result, checks["target"]

    result, (status, message) = check(golden["podAnnotations"])
    assert status == "ok" and "ROOT_CA_DIR=/etc/cacerts-vault" in message
    assert result["annotations"] == {"missing": [], "different": [], "other_prefix": []}

    broken = dict(golden["podAnnotations"])
    del broken["vault.hashicorp.com/agent-inject-template-ca-key.pem"]
    result, (status, message) = check(broken)
    assert status == "problem" and "missing annotations vault.hashicorp.com/agent-inject-template-ca-key.pem" \
        in message
    assert result["annotations"]["missing"] == ["vault.hashicorp.com/agent-inject-template-ca-key.pem"]

    result, (status, message) = check(dict(golden["podAnnotations"], **{"openbao.openbao.org/agent-inject": "true"}))
    assert status == "warning" and "openbao.openbao.org" in message
    assert result["healthy"] is True


@pytest.mark.parametrize("params, words", [
    (dict(renew_before="soon"), "Invalid renew_before"),
    (dict(kv_path="data/istioca"), "without the 'data/' API segment"),
])
def test_invalid_options_raise(healthy, params, words):
    with pytest.raises(MeshPkiError, match=words):
        run(healthy, **params)


# ---------------------------------------------------------------------------------------------------------
# the root rotation (issue 18): with trust_bundle_path, root-cert.pem is the trust bundle and its record
# ---------------------------------------------------------------------------------------------------------

def test_the_root_rotation_phase_is_reported(ca, healthy):
    answers = dict(healthy)
    del answers[("GET", "pki/cert/ca")]  # root-cert.pem reads the bundle now
    answers[("GET", "secret/data/pki-trust")] = {"data": {"data": {
        "root-cert.pem": pem(ca.root), "phase": "sign", "old_issuer_id": "root-0", "new_issuer_id": "root-1",
        "trusted": "root-0,root-1", "signer": "root-1", "next_phase_at": "2026-12-08T12:00:00Z"},
        "metadata": {"version": 3}}}
    answers[("GET", "sys/policies/acl/istioca")] = {"data": {"name": "istioca", "policy": POLICY.replace(
        "pki/cert/ca", "secret/data/pki-trust")}}
    vault = FakeVault(answers, strict_writes=True)
    vault.answers[("POST", "auth/token/revoke-self")] = None
    result = diagnose(Module(vault, trust_bundle_path="pki-trust", istiod_jwt="jwt"))
    checks = dict((c["name"], (c["status"], c["message"])) for c in result["checks"])
    assert [c["name"] for c in result["checks"]] == list(CHECKS[:4]) + ["root_rotation"] + list(CHECKS[4:])
    assert checks["root_rotation"] == ("ok", "phase sign (root rotation): trusted root-0,root-1, signing root "
                                             "root-1, old root root-0, new root root-1, next phase not before "
                                             "2026-12-08T12:00:00Z (run the playbook meshpki.vault_ca.rotate_root)")
    assert result["root_rotation"]["phase"] == "sign" and result["root_rotation"]["new_issuer_id"] == "root-1"
    assert checks["bundle"][0] == "ok" and checks["policy"][0] == "ok", checks
