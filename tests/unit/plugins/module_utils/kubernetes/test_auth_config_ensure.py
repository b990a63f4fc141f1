# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""kubernetes/auth_config.py ensure_role (vault_k8s_role) and ensure_kubernetes_auth (vault_k8s_auth) against a
strict FakeVault: the request bodies written (only the changed role fields; the whole config, server fields kept,
the reviewer JWT only when it must be), check mode, absent, the mount option under its one name
(kubernetes_auth_mount) and its alias ``mount``, and inputs refused before the login."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.auth_config import (
    JWT_PLACEHOLDER,
    ensure_kubernetes_auth,
    ensure_role,
)
from ansible_collections.meshpki.vault_ca.plugins.modules import vault_k8s_auth, vault_k8s_role
from harness import certs
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub

CA = certs.make_ca("unit test CA").cert_pem
ROLE = "auth/kubernetes/role/istiod"
GUIDE_ROLE = {"bound_service_account_names": ["istiod-service-account"],
              "bound_service_account_namespaces": ["istio-system"], "policies": ["istioca"], "period": "600s"}
AS_WRITTEN = {"bound_service_account_names": ["istiod-service-account"],
              "bound_service_account_namespaces": ["istio-system"], "token_policies": ["istioca"],
              "token_period": 600}


def role_task(vault, check_mode=False, **params):
    module = ModuleStub(params, client=vault, check_mode=check_mode, argument_spec=vault_k8s_role.ARGUMENT_SPEC)
    return module, ensure_role(module)


def served(data):
    return {"data": dict(data)}


# ------------------------------------------------------------------------------------------------- roles

def test_a_new_role_is_written_with_durations_in_seconds_and_read_back():
    after = dict(AS_WRITTEN, token_ttl=0, alias_name_source="serviceaccount_uid")
    vault = FakeVault({("GET", ROLE): [404, served(after)]})
    params = dict(GUIDE_ROLE, bound_service_account_names=["istiod-service-account"] * 2)
    _module, result = role_task(vault, **params)  # pylint: disable=repeated-keyword
    assert result["changed"] and vault.writes() == [("POST", ROLE)]
    assert vault.body("POST", ROLE) == AS_WRITTEN
    assert result["role"] == after and result["changed_fields"] == sorted(AS_WRITTEN)
    assert result["mount"] == result["kubernetes_auth_mount"] == "kubernetes"
    assert result["diff"] == {"before": {}, "after": after, "before_header": ROLE, "after_header": ROLE}


def test_the_same_role_in_legacy_names_and_other_units_is_no_change():
    legacy = {"bound_service_account_names": ["istiod-service-account"],
              "bound_service_account_namespaces": ["istio-system"], "policies": ["istioca"], "period": 600,
              "token_policies": [], "token_period": 0}
    vault = FakeVault({("GET", ROLE): served(legacy)})
    params = dict(GUIDE_ROLE, period="10m")
    _module, result = role_task(vault, **params)  # pylint: disable=repeated-keyword
    assert not result["changed"] and vault.writes() == [] and result["changed_fields"] == []
    assert result["role"]["token_period"] == 600 and "period" not in result["role"]


def test_only_the_changed_fields_are_written():
    vault = FakeVault({("GET", ROLE): [served(dict(AS_WRITTEN, token_ttl=0)),
                                       served(dict(AS_WRITTEN, token_period=300))]})
    params = dict(GUIDE_ROLE, period="5m")
    _module, result = role_task(vault, **params)  # pylint: disable=repeated-keyword
    assert result["changed"] and result["changed_fields"] == ["token_period"]
    assert vault.body("POST", ROLE) == {"token_period": 300}


def test_check_mode_shows_the_role_as_it_would_be_and_writes_nothing():
    vault = FakeVault({("GET", ROLE): served(AS_WRITTEN)})
    params = dict(GUIDE_ROLE, policies=["istioca", "extra"])
    _module, result = role_task(vault, check_mode=True, **params)  # pylint: disable=repeated-keyword
    assert result["changed"] and vault.writes() == []
    assert result["role"] == dict(AS_WRITTEN, token_policies=["istioca", "extra"])


def test_absent_deletes_the_role_and_a_missing_one_is_no_change():
    vault = FakeVault({("GET", ROLE): served(AS_WRITTEN)})
    _module, result = role_task(vault, state="absent")
    assert result["changed"] and vault.writes() == [("DELETE", ROLE)] and result["role"] == {}
    assert "changed_fields" not in result
    vault = FakeVault()
    _module, result = role_task(vault, state="absent")
    assert not result["changed"] and vault.writes() == []


@pytest.mark.parametrize("option", ["kubernetes_auth_mount", "mount"])
def test_the_mount_has_one_name_and_keeps_its_old_one_as_alias(option):
    path = "auth/kubernetes-east/role/istiod"
    vault = FakeVault({("GET", path): [404, served(AS_WRITTEN)]})
    params = dict(GUIDE_ROLE, **{option: "/kubernetes-east/"})
    _module, result = role_task(vault, **params)
    assert vault.writes() == [("POST", path)]
    assert result["kubernetes_auth_mount"] == result["mount"] == "kubernetes-east"


def test_a_new_role_without_namespaces_is_refused_before_any_write():
    vault = FakeVault()
    with pytest.raises(MeshPkiError, match="Role 'istiod' does not exist yet, and a new role needs "
                                           "bound_service_account_namespaces"):
        role_task(vault, bound_service_account_names=["istiod-service-account"])
    assert vault.writes() == []


def test_a_role_write_on_a_missing_mount_names_the_option_to_set():
    vault = FakeVault({("POST", "auth/kube-x/role/istiod"): 404})
    with pytest.raises(MeshPkiError) as caught:
        role_task(vault, kubernetes_auth_mount="kube-x", **GUIDE_ROLE)
    assert str(caught.value) == ("Failed to write kubernetes auth role 'auth/kube-x/role/istiod': no Kubernetes auth "
                                 "method is enabled at 'auth/kube-x' - enable it first "
                                 "(meshpki.vault_ca.vault_k8s_auth with kubernetes_auth_mount: kube-x).")


def test_a_field_the_server_does_not_know_is_refused_and_nothing_written():
    schema = {"openapi": {"components": {"schemas": {"KubernetesWriteAuthRoleRequest": {
        "properties": dict((f, {}) for f in AS_WRITTEN)}}}}}
    vault = FakeVault({("GET", ROLE): [served(AS_WRITTEN), schema]})
    with pytest.raises(MeshPkiError, match="The server does not know audience at '%s'" % ROLE):
        role_task(vault, audience="vault", **GUIDE_ROLE)
    assert vault.writes() == []
    assert vault.requests[-1].params == {"help": "1"}


def test_a_server_that_does_not_list_its_parameters_gets_a_warning():
    vault = FakeVault({("GET", ROLE): [served(AS_WRITTEN), {"help": "no openapi here"}, served(AS_WRITTEN)]})
    module, result = role_task(vault, audience="vault", **GUIDE_ROLE)
    assert module.warnings == ["The server does not list the parameters of '%s'; could not check that it knows "
                               "audience." % ROLE]
    assert vault.body("POST", ROLE) == {"audience": "vault"}


def test_an_invalid_duration_fails_before_the_login():
    vault = FakeVault()
    module = ModuleStub(dict(GUIDE_ROLE, period="ten minutes"), client=vault,
                        argument_spec=vault_k8s_role.ARGUMENT_SPEC)
    with pytest.raises(MeshPkiError, match="Invalid token_period"):
        ensure_role(module)
    assert module.logins == 0 and vault.requests == []


# ------------------------------------------------------------------------------------------------ config

CONFIG = "auth/kubernetes/config"
HOST = "https://10.0.0.1:6443"
MOUNTED = {("GET", "sys/auth"): {"data": {"kubernetes/": {"type": "kubernetes"}, "token/": {"type": "token"}}}}
STORED = {"kubernetes_host": HOST, "kubernetes_ca_cert": CA, "disable_local_ca_jwt": True, "pem_keys": [],
          "issuer": "", "disable_iss_validation": True, "token_reviewer_jwt_set": True}


def auth_task(vault, check_mode=False, **params):
    module = ModuleStub(params, client=vault, check_mode=check_mode, argument_spec=vault_k8s_auth.ARGUMENT_SPEC)
    return module, ensure_kubernetes_auth(module)


def mounted(config=None, more=None):
    answers = dict(MOUNTED)
    if config is not None:
        answers[("GET", CONFIG)] = config
    answers.update(more or {})
    return answers


def test_a_new_auth_method_is_enabled_and_configured_with_the_jwt():
    vault = FakeVault({("GET", "sys/auth"): {"data": {"token/": {"type": "token"}}},
                       ("GET", CONFIG): [404, served(STORED)]})  # no mount, no config: there after the write
    module, result = auth_task(vault, kubernetes_host=HOST, kubernetes_ca_cert=CA, disable_local_ca_jwt=True,
                               token_reviewer_jwt="reviewer.jwt", description="east")
    assert vault.writes() == [("POST", "sys/auth/kubernetes"), ("POST", CONFIG)]
    requests = [(r.method, r.path) for r in vault.requests]
    assert requests[:2] == [("GET", CONFIG), ("GET", "sys/auth")]  # no config there: the auth table tells
    assert requests[-2:] == [("POST", CONFIG), ("GET", CONFIG)]
    assert vault.body("POST", "sys/auth/kubernetes") == {"type": "kubernetes", "description": "east"}
    assert vault.body("POST", CONFIG) == {"kubernetes_host": HOST, "kubernetes_ca_cert": CA,
                                          "disable_local_ca_jwt": True, "token_reviewer_jwt": "reviewer.jwt"}
    assert result["changed"] and result["token_reviewer_jwt_written"]
    assert result["config"] == STORED and result["kubernetes_auth_mount"] == result["mount"] == "kubernetes"
    assert result["diff"]["before"] == {"auth_method": None, "config": {}}
    assert result["diff"]["after"]["config"]["token_reviewer_jwt"] == JWT_PLACEHOLDER
    assert "reviewer.jwt" not in repr(result)


def test_the_same_config_is_no_change_and_no_write():
    vault = FakeVault(mounted(served(STORED)))
    _module, result = auth_task(vault, kubernetes_host=HOST + "/", kubernetes_ca_cert=CA, disable_local_ca_jwt=True)
    assert not result["changed"] and vault.writes() == [] and result["changed_fields"] == []
    assert vault.paths() == [CONFIG]  # a Kubernetes config answers for its mount: no read of sys/auth (issue 17)
    assert not result["token_reviewer_jwt_written"]


def test_a_changed_field_rewrites_the_whole_config_keeping_the_server_fields():
    vault = FakeVault(mounted([served(STORED), served(dict(STORED, kubernetes_host="https://10.0.0.2:6443"))]))
    _module, result = auth_task(vault, kubernetes_host="https://10.0.0.2:6443", token_reviewer_jwt="new.jwt")
    assert result["changed"] and result["changed_fields"] == ["kubernetes_host"]
    assert vault.body("POST", CONFIG) == {"kubernetes_host": "https://10.0.0.2:6443", "kubernetes_ca_cert": CA,
                                          "disable_local_ca_jwt": True, "pem_keys": [], "issuer": "",
                                          "disable_iss_validation": True, "token_reviewer_jwt": "new.jwt"}


def test_a_change_that_would_drop_the_stored_jwt_is_refused_before_any_write():
    vault = FakeVault(mounted(served(STORED)))
    with pytest.raises(MeshPkiError, match="writing the changed fields \\(kubernetes_host\\) without one would "
                                           "remove it"):
        auth_task(vault, kubernetes_host="https://10.0.0.2:6443")
    assert vault.writes() == []


def test_check_mode_reports_and_writes_nothing():
    vault = FakeVault({("GET", "sys/auth"): {"data": {}}})
    _module, result = auth_task(vault, check_mode=True, kubernetes_host=HOST, token_reviewer_jwt="reviewer.jwt")
    assert result["changed"] and vault.writes() == [] and result["token_reviewer_jwt_written"]
    assert result["config"] == {"kubernetes_host": HOST, "token_reviewer_jwt_set": True}


def test_vault_warnings_are_passed_on():
    vault = FakeVault(mounted([served(dict(STORED, token_reviewer_jwt_set=False)), served(STORED)],
                              {("POST", CONFIG): {"warnings": ["issuer is deprecated"]}}))
    module, result = auth_task(vault, kubernetes_host=HOST, token_reviewer_jwt="reviewer.jwt")
    assert result["changed"] and module.warnings == ["Vault: issuer is deprecated"]


@pytest.mark.parametrize("params,message", [
    ({"kubernetes_host": "ftp://10.0.0.1"}, "kubernetes_host 'ftp://10.0.0.1' is not a URL"),
    ({"kubernetes_host": HOST, "kubernetes_ca_cert": "-----BEGIN CERTIFICATE-----\nnot base64!\n"
                                                     "-----END CERTIFICATE-----\n"},
     "kubernetes_ca_cert is not valid PEM"),
    ({"kubernetes_host": HOST, "kubernetes_auth_mount": " / "}, "kubernetes_auth_mount must not be empty."),
])
def test_bad_input_fails_before_the_login(params, message):
    vault = FakeVault()
    module = ModuleStub(params, client=vault, argument_spec=vault_k8s_auth.ARGUMENT_SPEC)
    with pytest.raises(MeshPkiError, match=message.replace("(", "\\(").replace(")", "\\)")):
        ensure_kubernetes_auth(module)
    assert module.logins == 0 and vault.requests == []


def test_disable_local_ca_jwt_without_a_ca_is_refused_before_any_write():
    vault = FakeVault({("GET", "sys/auth"): {"data": {}}})
    with pytest.raises(MeshPkiError, match="disable_local_ca_jwt is true but there is no CA certificate"):
        auth_task(vault, kubernetes_host=HOST, disable_local_ca_jwt=True)
    assert vault.writes() == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_disables_the_kubernetes_mount(check_mode):
    vault = FakeVault(mounted(served(STORED)))
    _module, result = auth_task(vault, check_mode=check_mode, mount="kubernetes", state="absent")
    assert result["changed"] and result["config"] == {} and result["kubernetes_auth_mount"] == "kubernetes"
    assert vault.writes() == ([] if check_mode else [("DELETE", "sys/auth/kubernetes")])
    assert result["diff"]["before"] == {"auth_method": "kubernetes", "config": STORED}


def test_absent_never_disables_another_auth_type_and_a_missing_mount_is_no_change():
    vault = FakeVault({("GET", "sys/auth"): {"data": {"approle/": {"type": "approle"}}}})
    with pytest.raises(MeshPkiError, match="The auth mount 'approle' is a approle auth method, not kubernetes"):
        auth_task(vault, kubernetes_auth_mount="approle", state="absent")
    assert vault.writes() == []
    _module, result = auth_task(vault, state="absent")
    assert not result["changed"] and vault.writes() == []
