# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/kubernetes/auth_config.py and token_reviewer.py: PEM options and their
comparison, the config
merge/compare and the reviewer-JWT decision, role normalisation, the ?help=1 parameter check, and the
token-reviewer bootstrap against in-memory Kubernetes APIs (the real API is exercised by the
integration tests)."""

import base64
import json

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes import auth_config as k8s_auth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes import token_reviewer
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.auth_config import (
    CA_LABELS,
    PEM_KEY_LABELS,
    check_new_role,
    comparable_config,
    config_differences,
    desired_config,
    desired_role,
    load_pem_option,
    pem_identity,
    refuse_unknown,
    reviewer_jwt_plan,
    role_differences,
    role_from_server,
    schema_fields,
    unknown_fields,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.token_reviewer import (
    CHECK_MODE_JWT,
    TokenReviewer,
    reviewer_names,
)
from harness import certs

CA = certs.make_ca("unit test CA")
OTHER_CA = certs.make_ca("another CA")


def rewrap(pem, width=40, newline="\r\n"):
    """The same certificate with other line breaks and surrounding white space."""
    lines = pem.strip().splitlines()
    body = "".join(lines[1:-1])
    chunks = [body[i:i + width] for i in range(0, len(body), width)]
    return "\n  " + newline.join([lines[0]] + chunks + [lines[-1]]) + newline + newline


def public_key_pem(pair):
    from cryptography.hazmat.primitives import serialization
    return pair.key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo).decode()


# ------------------------------------------------------------------------------------------ PEM


def test_pem_identity_ignores_white_space_and_order():
    assert pem_identity(CA.cert_pem) == pem_identity(rewrap(CA.cert_pem))
    bundle = CA.cert_pem + OTHER_CA.cert_pem
    assert pem_identity(bundle) == pem_identity(OTHER_CA.cert_pem + rewrap(CA.cert_pem, 64, "\n"))
    assert pem_identity(CA.cert_pem) != pem_identity(OTHER_CA.cert_pem)
    assert pem_identity(None) == pem_identity("") == pem_identity("  \n") == ()
    assert pem_identity("written by hand") == (("text", "written by hand"),)


def test_load_pem_option_takes_text_or_a_file(tmp_path):
    path = tmp_path / "ca.pem"
    path.write_text(rewrap(CA.cert_pem))
    assert load_pem_option(CA.cert_pem, "kubernetes_ca_cert", CA_LABELS) == CA.cert_pem
    from_file = load_pem_option(str(path), "kubernetes_ca_cert", CA_LABELS)
    assert from_file == path.read_text()
    assert pem_identity(from_file) == pem_identity(CA.cert_pem)
    assert load_pem_option(None, "kubernetes_ca_cert", CA_LABELS) is None


@pytest.mark.parametrize("value, message", [
    ("hello", "kubernetes_ca_cert is neither PEM text (-----BEGIN CERTIFICATE-----) nor the path of a readable file"),
    ("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
     "kubernetes_ca_cert is not valid PEM: the body of its CERTIFICATE block is not base64"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "kubernetes_ca_cert holds a CERTIFICATE block that does not parse"),
    ("-----BEGIN CERTIFICATE-----\nMIIB", "kubernetes_ca_cert is not PEM: no -----BEGIN CERTIFICATE----- block found"),
    (CA.key_pem, "kubernetes_ca_cert holds a PRIVATE KEY block; only CERTIFICATE blocks belong there"),
])
def test_load_pem_option_refuses(value, message):
    with pytest.raises(MeshPkiError) as err:
        load_pem_option(value, "kubernetes_ca_cert", CA_LABELS)
    assert message in str(err.value)


def test_load_pem_option_names_the_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just text\n")
    with pytest.raises(MeshPkiError) as err:
        load_pem_option(str(path), "kubernetes_ca_cert", CA_LABELS)
    assert str(err.value) == ("kubernetes_ca_cert (file '%s') is not PEM: no -----BEGIN CERTIFICATE----- block "
                              "found." % path)


def test_pem_keys_take_public_keys_and_certificates():
    key = public_key_pem(CA)
    assert load_pem_option(key, "pem_keys[0]", PEM_KEY_LABELS) == key
    assert load_pem_option(CA.cert_pem, "pem_keys[1]", PEM_KEY_LABELS) == CA.cert_pem
    with pytest.raises(MeshPkiError) as err:
        load_pem_option(key, "kubernetes_ca_cert", CA_LABELS)
    assert "holds a PUBLIC KEY block" in str(err.value)


# --------------------------------------------------------------------------------------- config

SERVER_CONFIG = {
    "kubernetes_host": "https://10.0.0.1:6443", "kubernetes_ca_cert": CA.cert_pem, "disable_local_ca_jwt": True,
    "pem_keys": [], "issuer": "", "disable_iss_validation": True, "token_reviewer_jwt_set": True,
}


def test_desired_config_keeps_the_servers_fields_and_drops_read_only_markers():
    desired = desired_config(SERVER_CONFIG, {"kubernetes_host": "https://10.0.0.2:6443", "issuer": None})
    assert desired == {"kubernetes_host": "https://10.0.0.2:6443", "kubernetes_ca_cert": CA.cert_pem,
                       "disable_local_ca_jwt": True, "pem_keys": [], "issuer": "", "disable_iss_validation": True}
    assert desired_config(None, {"kubernetes_host": "h"}) == {"kubernetes_host": "h"}


def test_same_meaning_is_no_difference():
    same = desired_config(SERVER_CONFIG, {
        "kubernetes_host": "https://10.0.0.1:6443/", "kubernetes_ca_cert": rewrap(CA.cert_pem),
        "pem_keys": [], "disable_local_ca_jwt": True})
    assert config_differences(SERVER_CONFIG, same) == []
    keys_a = desired_config(SERVER_CONFIG, {"pem_keys": [public_key_pem(CA), OTHER_CA.cert_pem]})
    keys_b = desired_config(SERVER_CONFIG, {"pem_keys": [OTHER_CA.cert_pem, rewrap(public_key_pem(CA))]})
    assert config_differences(keys_a, keys_b) == []


def test_differences_name_the_fields():
    changed = desired_config(SERVER_CONFIG, {"kubernetes_host": "https://10.0.0.9:6443",
                                             "kubernetes_ca_cert": OTHER_CA.cert_pem, "pem_keys": [CA.cert_pem],
                                             "use_annotations_as_alias_metadata": False})
    assert config_differences(SERVER_CONFIG, changed) == ["kubernetes_ca_cert", "kubernetes_host", "pem_keys"]
    assert config_differences(None, {"kubernetes_host": "h", "issuer": "i"}) == ["issuer", "kubernetes_host"]
    assert comparable_config({"issuer": None, "token_reviewer_jwt_set": True}) == {"issuer": ""}


@pytest.mark.parametrize("exists, differences, jwt_set, jwt, mode, replaced, write", [
    (False, ["kubernetes_host"], False, "jwt", "on_create", False, True),   # new config
    (True, [], True, "jwt", "on_create", False, False),                     # re-run: nothing to see, no write
    (True, [], True, "jwt", "always", False, True),                         # always
    (True, [], False, "jwt", "on_create", False, True),                     # server has none
    (True, ["kubernetes_host"], True, "jwt", "on_create", False, True),     # another field changes
    (True, [], True, "jwt", "on_create", True, True),                       # new reviewer Secret
    (True, [], True, CHECK_MODE_JWT, "on_create", False, False),            # check mode, Secret exists
    (True, [], True, None, "always", False, False),                         # JWT not managed
    (True, ["issuer"], False, None, "on_create", False, True),              # nothing stored to lose
    (True, [], True, "", "on_create", False, True),                         # remove
    (True, [], False, "", "on_create", False, False),                       # already removed
])
def test_reviewer_jwt_plan(exists, differences, jwt_set, jwt, mode, replaced, write):
    assert reviewer_jwt_plan(exists, differences, jwt_set, jwt, mode, replaced)[0] is write


def test_reviewer_jwt_plan_refuses_to_drop_a_stored_jwt():
    with pytest.raises(MeshPkiError) as err:
        reviewer_jwt_plan(True, ["kubernetes_host"], True, None, "on_create")
    assert "writing the changed fields (kubernetes_host) without one would remove it" in str(err.value)
    assert "token_reviewer_jwt: ''" in str(err.value)


def test_reviewer_jwt_plan_gives_reasons():
    write, reasons = reviewer_jwt_plan(True, ["pem_keys"], False, "jwt", "always", True)
    assert write and reasons == ["changed: pem_keys", "token_reviewer_jwt is not set",
                                 "update_token_reviewer_jwt=always", "the reviewer's token Secret is new"]


# ---------------------------------------------------------------------------- known parameters

HELP = {"openapi": {"components": {"schemas": {"KubernetesConfigureAuthRequest": {"properties": {
    "kubernetes_host": {}, "kubernetes_ca_cert": {}, "token_reviewer_jwt": {}, "pem_keys": {}}}}}}}


class RecordingClient(object):
    def __init__(self, body):
        self.body = body
        self.calls = []

    def request(self, method, path, action, capability, params=None, missing_ok=False, json=None):
        self.calls.append((method, path, params))
        return self.body


def test_schema_fields():
    assert schema_fields(HELP) == {"kubernetes_host", "kubernetes_ca_cert", "token_reviewer_jwt", "pem_keys"}
    assert schema_fields(None) == set() and schema_fields({"help": "text only"}) == set()


def test_unknown_fields_asks_the_server_only_when_needed():
    client = RecordingClient(HELP)
    assert unknown_fields(client, "auth/k/config", ["kubernetes_host"], {"kubernetes_host"}) == []
    assert client.calls == []
    assert unknown_fields(client, "auth/k/config", ["kubernetes_host", "use_annotations_as_alias_metadata"],
                          {"kubernetes_host"}) == ["use_annotations_as_alias_metadata"]
    assert client.calls == [("GET", "auth/k/config", {"help": "1"})]
    assert unknown_fields(RecordingClient(None), "auth/k/config", ["x"], set()) is None


def test_refuse_unknown():
    refuse_unknown([], "auth/k/config")
    with pytest.raises(MeshPkiError) as err:
        refuse_unknown(["use_annotations_as_alias_metadata"], "auth/k/config")
    assert str(err.value) == (
        "The server does not know use_annotations_as_alias_metadata at 'auth/k/config' and would ignore it. Remove "
        "it from the task, or upgrade Vault/OpenBao to a version that has it (nothing was changed).")


# ---------------------------------------------------------------------------------------- roles

ROLE_PARAMS = dict((field, None) for field in k8s_auth.ROLE_FIELDS)


def params(**values):
    out = dict(ROLE_PARAMS)
    out.update(values)
    return out


SERVER_ROLE = {
    "alias_name_source": "serviceaccount_uid", "bound_service_account_names": ["istiod-service-account"],
    "bound_service_account_namespace_selector": "", "bound_service_account_namespaces": ["istio-system"],
    "token_bound_cidrs": [], "token_explicit_max_ttl": 0, "token_max_ttl": 0, "token_no_default_policy": False,
    "token_num_uses": 0, "token_period": 600, "token_policies": ["istioca"], "token_strictly_bind_ip": False,
    "token_ttl": 0, "token_type": "default",
}


def test_role_from_server_folds_legacy_names():
    legacy = dict(SERVER_ROLE, policies=["istioca"], period=600)
    assert role_from_server(legacy) == SERVER_ROLE
    assert role_from_server({"policies": ["a"], "token_policies": []}) == {"token_policies": ["a"]}
    assert role_from_server(None) is None


def test_desired_role_normalises_durations_and_lists():
    desired = desired_role(params(bound_service_account_names=["istiod-service-account", "istiod-service-account"],
                                  token_period="10m", token_ttl="1h30m", token_policies=["istioca"], audience=""))
    assert desired == {"bound_service_account_names": ["istiod-service-account"], "token_period": 600,
                       "token_ttl": 5400, "token_policies": ["istioca"], "audience": ""}
    with pytest.raises(MeshPkiError) as err:
        desired_role(params(token_period="ten minutes"))
    assert "Invalid token_period" in str(err.value) and "'ten minutes' is not a duration" in str(err.value)


def test_role_differences_compare_only_what_is_set():
    same = desired_role(params(bound_service_account_names=["istiod-service-account"], token_period="600s",
                               bound_service_account_namespaces=["istio-system", "istio-system"],
                               token_policies=["istioca"], audience="", token_max_ttl="0"))
    assert role_differences(SERVER_ROLE, same) == []
    other = desired_role(params(token_period="300", token_policies=["istioca", "extra"], token_ttl="0s"))
    assert role_differences(SERVER_ROLE, other) == ["token_period", "token_policies"]
    assert role_differences(None, other) == ["token_period", "token_policies", "token_ttl"]


def test_new_role_needs_names_and_namespaces():
    check_new_role("istiod", {"bound_service_account_names": ["a"], "bound_service_account_namespaces": ["b"]})
    check_new_role("istiod", {"bound_service_account_names": ["a"],
                              "bound_service_account_namespace_selector": "{}"})
    with pytest.raises(MeshPkiError) as err:
        check_new_role("istiod", {"token_policies": ["istioca"]})
    assert str(err.value) == (
        "Role 'istiod' does not exist yet, and a new role needs bound_service_account_names and "
        "bound_service_account_namespaces (or bound_service_account_namespace_selector) (nothing was changed).")


# ------------------------------------------------------------------------- token reviewer (k8s)


class MemoryKube(object):
    """CoreV1Api and RbacAuthorizationV1Api for the calls TokenReviewer makes, on dicts in memory.

    A new token Secret gets its token only after ``fill_after`` reads (the token controller's delay);
    ``None`` never fills it."""

    def __init__(self, fill_after=0):
        self.objects = {}
        self.calls = []
        self.fill_after = fill_after
        self.reads_of_new_secret = 0
        self.uids = 0

    def _missing(self, what):
        raise ApiException(status=404, reason="Not Found")

    def _store(self, key, body, dry_run):
        obj = json.loads(json.dumps(body))
        self.uids += 1
        obj["metadata"]["uid"] = "uid-%d" % self.uids
        if not dry_run:
            self.objects[key] = obj
        return obj

    # CoreV1Api
    def read_namespaced_service_account(self, name, namespace):
        self.calls.append(("get", "sa", name))
        return self.objects.get(("sa", namespace, name)) or self._missing(name)

    def create_namespaced_service_account(self, namespace, body, dry_run=None):
        self.calls.append(("create", "sa", body["metadata"]["name"], dry_run))
        return self._store(("sa", namespace, body["metadata"]["name"]), body, dry_run)

    def read_namespaced_secret(self, name, namespace):
        self.calls.append(("get", "secret", name))
        secret = self.objects.get(("secret", namespace, name)) or self._missing(name)
        empty = not (secret.get("data") or {}).get("token")
        if secret.get("type") == token_reviewer.TOKEN_SECRET_TYPE and empty and self.fill_after is not None:
            self.reads_of_new_secret += 1
            if self.reads_of_new_secret > self.fill_after:
                annotations = secret["metadata"]["annotations"]
                account = self.objects[("sa", namespace, annotations[token_reviewer.SA_NAME_ANNOTATION])]
                annotations[token_reviewer.SA_UID_ANNOTATION] = account["metadata"]["uid"]
                secret["data"] = {"token": base64.b64encode(b"reviewer-jwt").decode()}
        return secret

    def create_namespaced_secret(self, namespace, body, dry_run=None):
        self.calls.append(("create", "secret", body["metadata"]["name"], dry_run))
        return self._store(("secret", namespace, body["metadata"]["name"]), body, dry_run)

    def delete_namespaced_secret(self, name, namespace):
        self.calls.append(("delete", "secret", name))
        del self.objects[("secret", namespace, name)]

    # RbacAuthorizationV1Api
    def read_cluster_role_binding(self, name):
        self.calls.append(("get", "crb", name))
        return self.objects.get(("crb", "", name)) or self._missing(name)

    def create_cluster_role_binding(self, body, dry_run=None):
        self.calls.append(("create", "crb", body["metadata"]["name"], dry_run))
        return self._store(("crb", "", body["metadata"]["name"]), body, dry_run)

    def replace_cluster_role_binding(self, name, body, dry_run=None):
        self.calls.append(("replace", "crb", name, dry_run))
        if not dry_run:
            self.objects[("crb", "", name)] = body
        return body

    def writes(self):
        return [call for call in self.calls if call[0] != "get"]


NAMES = reviewer_names({"namespace": "vault", "service_account": "vault-token-reviewer", "secret_name": None,
                        "cluster_role_binding": None})


def reviewer(kube, **kwargs):
    slept = []
    kwargs.setdefault("sleep", slept.append)
    return TokenReviewer(kube, kube, lambda obj: obj, NAMES, **kwargs), slept


def test_reviewer_names_defaults():
    assert NAMES == {"namespace": "vault", "service_account": "vault-token-reviewer",
                     "secret_name": "vault-token-reviewer-token",
                     "cluster_role_binding": "vault-vault-token-reviewer-auth-delegator"}


def test_bootstrap_creates_three_objects_waits_for_the_token_then_changes_nothing():
    kube = MemoryKube(fill_after=2)
    bootstrap, slept = reviewer(kube)
    first = bootstrap.ensure()
    assert first.jwt == "reviewer-jwt" and first.secret_replaced
    assert first.changes == ["created ServiceAccount vault/vault-token-reviewer",
                             "created ClusterRoleBinding vault-vault-token-reviewer-auth-delegator to ClusterRole "
                             "system:auth-delegator",
                             "created Secret vault/vault-token-reviewer-token"]
    assert slept == [0.1, 0.2, 0.4]  # the token came with the third read: polled with a growing delay
    binding = kube.objects[("crb", "", NAMES["cluster_role_binding"])]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "system:auth-delegator"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vault-token-reviewer", "namespace": "vault"}]
    secret = kube.objects[("secret", "vault", "vault-token-reviewer-token")]
    assert secret["type"] == "kubernetes.io/service-account-token"

    kube.calls = []
    second, _slept = reviewer(kube)
    again = second.ensure()
    assert again.changes == [] and again.jwt == "reviewer-jwt" and not again.secret_replaced
    assert kube.writes() == []


def test_check_mode_sends_dry_runs_only():
    kube = MemoryKube()
    result = reviewer(kube, check_mode=True)[0].ensure()
    assert result.jwt == CHECK_MODE_JWT and len(result.changes) == 3
    assert kube.objects == {}
    assert [call[-1] for call in kube.writes()] == ["All", "All", "All"]


def test_token_wait_is_bounded():
    kube = MemoryKube(fill_after=None)
    clock = iter(range(0, 1000, 5))
    bootstrap, slept = reviewer(kube, wait_timeout=12, clock=lambda: next(clock))
    with pytest.raises(MeshPkiError) as err:
        bootstrap.ensure()
    assert str(err.value).startswith("Timed out after 12s waiting for Kubernetes to put a token into Secret "
                                     "vault/vault-token-reviewer-token.")
    assert "raise token_reviewer.wait_timeout" in str(err.value)
    assert len(slept) == 2


def test_binding_without_the_account_gets_it_added_and_a_foreign_binding_is_refused():
    kube = MemoryKube()
    other = {"kind": "ServiceAccount", "name": "someone", "namespace": "x"}
    kube.objects[("crb", "", NAMES["cluster_role_binding"])] = {
        "metadata": {"name": NAMES["cluster_role_binding"]}, "subjects": [other],
        "roleRef": {"kind": "ClusterRole", "name": "system:auth-delegator"}}
    result = reviewer(kube)[0].ensure()
    assert "added ServiceAccount vault/vault-token-reviewer to ClusterRoleBinding " \
           "vault-vault-token-reviewer-auth-delegator" in result.changes
    assert kube.objects[("crb", "", NAMES["cluster_role_binding"])]["subjects"][0] == other

    kube = MemoryKube()
    kube.objects[("crb", "", NAMES["cluster_role_binding"])] = {
        "metadata": {"name": NAMES["cluster_role_binding"]}, "roleRef": {"kind": "ClusterRole", "name": "view"}}
    with pytest.raises(MeshPkiError) as err:
        reviewer(kube)[0].ensure()
    assert "binds ClusterRole view, not ClusterRole system:auth-delegator" in str(err.value)
    assert [c for c in kube.writes() if c[1] == "crb"] == []


def test_foreign_secret_is_refused():
    kube = MemoryKube()
    kube.objects[("secret", "vault", "vault-token-reviewer-token")] = {
        "metadata": {"name": "vault-token-reviewer-token"}, "type": "Opaque"}
    with pytest.raises(MeshPkiError) as err:
        reviewer(kube)[0].ensure()
    assert "is not a kubernetes.io/service-account-token Secret of ServiceAccount vault-token-reviewer" \
        in str(err.value)
    assert [c for c in kube.writes() if c[1] == "secret"] == []


def test_secret_of_an_earlier_account_is_replaced():
    kube = MemoryKube()
    reviewer(kube)[0].ensure()
    kube.objects[("sa", "vault", "vault-token-reviewer")]["metadata"]["uid"] = "recreated"
    kube.calls = []
    result = reviewer(kube)[0].ensure()
    assert result.secret_replaced
    assert result.changes == ["deleted Secret vault/vault-token-reviewer-token (its token belonged to an earlier "
                              "ServiceAccount)", "created Secret vault/vault-token-reviewer-token"]
    assert kube.writes() == [("delete", "secret", "vault-token-reviewer-token"),
                             ("create", "secret", "vault-token-reviewer-token", None)]


def test_create_false_only_reads():
    kube = MemoryKube()
    with pytest.raises(MeshPkiError) as err:
        reviewer(kube, create=False)[0].ensure()
    assert str(err.value) == ("ServiceAccount vault/vault-token-reviewer is missing and token_reviewer.create is "
                              "false: create it, or set token_reviewer.create to true (nothing was changed).")
    assert kube.writes() == []
    reviewer(kube)[0].ensure()
    kube.calls = []
    assert reviewer(kube, create=False)[0].ensure().jwt == "reviewer-jwt"
    assert kube.writes() == []
