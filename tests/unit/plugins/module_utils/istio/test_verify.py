"""verify_ca_bundle (istio_ca_verify's task): the report on PEM texts and on a directory without contacting Vault,
the failure that keeps the whole report, min_days_left and the expiry warning; and with vault_paths, against the
strict FakeVault: the four reads rendered as the agent renders them, the policy rules check that creates nothing,
and the token probe's create/revoke bodies; then what each answer of Vault to the policy, default policy and auth
role reads leads to (the mutation survivors of issue #16 point 6)."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.verify import BundleInvalid, verify_ca_bundle
from harness.certs import make_ca, plugin_ca_files
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub

POLICY = '''
path "istioca/cert/*" { capabilities = ["read"] }
path "pki/cert/ca" { capabilities = ["read"] }
path "secret/data/istioca" { capabilities = ["read"] }
'''


class Bundle(object):
    """A root and an intermediate valid from now on, as the four files (harness.certs.plugin_ca_files)."""

    def __init__(self, int_days=200, root_days=365):
        self.files = plugin_ca_files(root_days, int_days)
        self.intermediate, self.chain, self.root = (self.files[name] for name in (
            "ca-cert.pem", "cert-chain.pem", "root-cert.pem"))
        self.key = self.files["ca-key.pem"]

    def texts(self, **overrides):
        return dict(self.files, **overrides)

    def pem_params(self, min_days_left=None, **overrides):
        texts = self.texts(**overrides)
        return params(ca_cert_pem=texts["ca-cert.pem"], ca_key_pem=texts["ca-key.pem"],
                      cert_chain_pem=texts["cert-chain.pem"], root_cert_pem=texts["root-cert.pem"],
                      min_days_left=min_days_left)

    def vault_answers(self, extra=None):
        answers = {
            ("GET", "istioca/cert/ca"): {"data": {"certificate": self.intermediate.strip()}},
            ("GET", "istioca/cert/ca_chain"): {"data": {"certificate": self.chain.strip()}},
            ("GET", "pki/cert/ca"): {"data": {"certificate": self.root.strip()}},
            ("GET", "secret/data/istioca"): {"data": {"data": {"ca-key.pem": self.key.strip()}}},
        }
        answers.update(extra or {})
        return answers


def other_key():
    return make_ca("another").key_pem


def params(**overrides):
    values = dict(path=None, ca_cert_pem=None, ca_key_pem=None, cert_chain_pem=None, root_cert_pem=None,
                  vault_paths=None, read_with_policy=None, policy_check="token", auth_role=None, min_days_left=None)
    values.update(overrides)
    return values


VAULT_PATHS = dict(intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
                   kv_field="ca-key.pem")


# ---------------------------------------------------------------------------------------------------------
# PEM texts and directories: no Vault
# ---------------------------------------------------------------------------------------------------------

def test_a_good_bundle_from_pem_options_is_valid_without_contacting_vault():
    bundle = Bundle()
    module = ModuleStub(bundle.pem_params())  # no client: contacting Vault would fail the test
    result = verify_ca_bundle(module)
    assert result["valid"] is True and result["failed_checks"] == [] and result["changed"] is False
    assert result["source"] == "pem" and result["sources"] == {
        "ca-cert.pem": "ca_cert_pem", "ca-key.pem": "ca_key_pem", "cert-chain.pem": "cert_chain_pem",
        "root-cert.pem": "root_cert_pem"}
    assert result["chain_path"] == ["CN=meshpki test intermediate", "CN=meshpki test root"]
    assert result["key_info"]["type"] == "ec" and result["policy_check"] is None and result["policy_rules"] == {}
    assert 198 <= result["days_left"] <= 200 and module.warnings == []
    assert "PRIVATE KEY" not in repr(result)
    assert [check["name"] for check in result["checks"]][-1] == "workload_cert_verifies"


def test_a_key_of_another_certificate_fails_with_the_whole_report():
    bundle = Bundle()
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(bundle.pem_params(**{"ca-key.pem": other_key()})))
    details = err.value.details
    assert details["valid"] is False and details["changed"] is False
    assert "key_matches_cert" in details["failed_checks"] and "workload_cert_verifies" in details["failed_checks"]
    assert len(details["checks"]) == len([c for c in details["checks"] if c["name"]])
    message = str(err.value)
    assert message.startswith("The Istio CA bundle from the PEM options would break istiod or the mesh - ")
    assert "key_matches_cert: " in message and "PRIVATE KEY" not in message + repr(details)


def test_checks_that_could_not_run_are_named_as_such():
    bundle = Bundle()
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(bundle.pem_params(**{"ca-cert.pem": "garbage\n"})))
    skipped = [check["name"] for check in err.value.details["checks"] if check.get("skipped")]
    assert skipped and ". Not run because of these failures: %s" % ", ".join(skipped) in str(err.value)
    failed = [c for c in err.value.details["checks"] if not c["passed"] and not c.get("skipped")]
    assert "- %d check(s) failed: " % len(failed) in str(err.value)


def test_min_days_left_adds_a_check_that_fails_when_too_few_days_remain():
    bundle = Bundle(int_days=10)
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(bundle.pem_params(min_days_left=30)))
    check = err.value.details["checks"][-1]
    assert check["name"] == "min_days_left" and check["passed"] is False
    assert err.value.details["failed_checks"] == ["min_days_left"]
    assert "fewer than min_days_left=30" in check["detail"]


def test_min_days_left_passes_and_replaces_the_expiry_warning():
    bundle = Bundle(int_days=10)
    module = ModuleStub(bundle.pem_params(min_days_left=5))
    result = verify_ca_bundle(module)
    assert result["checks"][-1]["name"] == "min_days_left" and result["checks"][-1]["passed"] is True
    assert result["valid"] is True and module.warnings == []


def test_a_bundle_expiring_within_30_days_is_valid_with_a_warning():
    bundle = Bundle(int_days=10)
    module = ModuleStub(bundle.pem_params())
    result = verify_ca_bundle(module)
    assert result["valid"] is True and "min_days_left" not in [c["name"] for c in result["checks"]]
    assert len(module.warnings) == 1 and "from the PEM options expires in" in module.warnings[0]
    assert "plan the rotation" in module.warnings[0]


def test_a_directory_with_a_missing_file(tmp_path):
    bundle = Bundle()
    for file_name, text in bundle.texts().items():
        if file_name != "root-cert.pem":
            (tmp_path / file_name).write_text(text)
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(params(path=str(tmp_path) + "/")))
    details = err.value.details
    assert details["source"] == "directory"
    assert details["sources"]["root-cert.pem"] == "%s/root-cert.pem (missing)" % tmp_path
    assert details["sources"]["ca-cert.pem"] == "%s/ca-cert.pem" % tmp_path
    assert "files_not_empty" in details["failed_checks"]
    assert str(err.value).startswith("The Istio CA bundle from the directory '%s/' would break" % tmp_path)


def test_a_good_directory_is_valid(tmp_path):
    bundle = Bundle()
    for file_name, text in bundle.texts().items():
        (tmp_path / file_name).write_text(text)
    result = verify_ca_bundle(ModuleStub(params(path=str(tmp_path))))
    assert result["valid"] is True and result["source"] == "directory"


# ---------------------------------------------------------------------------------------------------------
# vault_paths: the strict FakeVault
# ---------------------------------------------------------------------------------------------------------

def test_vault_paths_reads_the_four_paths_and_renders_like_the_agent():
    bundle = Bundle()
    vault = FakeVault(bundle.vault_answers(), strict_writes=True)
    result = verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS)), vault))
    assert sorted(vault.paths()) == ["istioca/cert/ca", "istioca/cert/ca_chain", "pki/cert/ca",
                                     "secret/data/istioca"]
    assert vault.writes() == []
    assert result["valid"] is True and result["source"] == "vault" and result["policy_check"] is None
    assert result["sources"] == {"ca-cert.pem": "vault:istioca/cert/ca", "ca-key.pem": "vault:secret/data/istioca",
                                 "cert-chain.pem": "vault:istioca/cert/ca_chain", "root-cert.pem": "vault:pki/cert/ca"}


def test_vault_paths_a_missing_key_field_renders_no_value_and_fails():
    bundle = Bundle()
    vault = FakeVault(bundle.vault_answers({("GET", "secret/data/istioca"): {"data": {"data": {"other": "x"}}}}))
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS)), vault))
    assert "no_unrendered_values" in err.value.details["failed_checks"]
    assert str(err.value).startswith("The Istio CA bundle from Vault (vault:istioca/cert/ca, ")


def test_vault_paths_a_secret_that_is_not_there_is_reported_not_found():
    bundle = Bundle()
    answers = bundle.vault_answers()
    del answers[("GET", "secret/data/istioca")]
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS)), FakeVault(answers)))
    assert err.value.details["sources"]["ca-key.pem"] == "vault:secret/data/istioca (not found)"


def test_invalid_vault_paths_fail_before_any_login():
    module = ModuleStub(params(vault_paths=dict(VAULT_PATHS, root_mount="istioca")), FakeVault())
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(module)
    assert str(err.value).startswith("Invalid vault_paths: intermediate_mount and root_mount are both 'istioca'")
    assert module.logins == 0


def policy_answers(bundle, policy=POLICY, extra=None):
    answers = bundle.vault_answers({("GET", "sys/policies/acl/istiod"): {"data": {"policy": policy}}})
    answers.update(extra or {})
    return answers


def test_policy_check_rules_proves_the_policy_and_writes_nothing():
    bundle = Bundle()
    vault = FakeVault(policy_answers(bundle), strict_writes=True)
    result = verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod",
                                                policy_check="rules"), vault))
    assert vault.writes() == [] and result["valid"] is True and result["policy_check"] == "rules"
    assert result["policy_rules"] == {"istioca/cert/ca": "istioca/cert/*", "istioca/cert/ca_chain": "istioca/cert/*",
                                      "pki/cert/ca": "pki/cert/ca", "secret/data/istioca": "secret/data/istioca"}
    assert vault.paths()[:2] == ["sys/policies/acl/istiod", "sys/policies/acl/default"]


def test_a_policy_that_misses_a_path_fails_before_any_token_is_created():
    bundle = Bundle()
    vault = FakeVault(policy_answers(bundle, policy='path "istioca/cert/*" { capabilities = ["read"] }\n'),
                      strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod"), vault))
    assert "does not grant 'read' on 2 path(s)" in str(err.value) and "No token was created" in str(err.value)
    assert "'pki/cert/ca' (root-cert.pem, the root certificate): no rule of the policy matches it" in str(err.value)
    assert vault.writes() == []


def test_a_policy_that_does_not_exist_is_an_error():
    vault = FakeVault(Bundle().vault_answers())
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod",
                                           policy_check="rules"), vault))
    assert "the policy 'istiod' does not exist in Vault" in str(err.value)


def test_policy_check_rules_needs_to_read_the_policy():
    vault = FakeVault(Bundle().vault_answers({("GET", "sys/policies/acl/istiod"): 403}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod",
                                           policy_check="rules"), vault))
    assert "this token may not read the policy 'sys/policies/acl/istiod'" in str(err.value)


def test_auth_role_must_hand_out_the_policy():
    bundle = Bundle()
    vault = FakeVault(policy_answers(bundle, extra={
        ("GET", "auth/kubernetes-east/role/istiod"): {"data": {"token_policies": ["default", "other"]}}}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod",
                                           policy_check="rules",
                                           auth_role={"kubernetes_auth_mount": "kubernetes-east",
                                                      "name": "istiod"}), vault))
    assert str(err.value).startswith("auth_role: 'auth/kubernetes-east/role/istiod' hands out the policies "
                                     "['default', 'other'], not 'istiod'")


def test_token_probe_reads_with_a_token_of_the_policy_and_revokes_it():
    bundle = Bundle()
    answers = policy_answers(bundle, extra={
        ("POST", "auth/token/create"): {"auth": {"client_token": "probe-token"}},
        ("POST", "auth/token/revoke-self"): None})
    vault = FakeVault(answers, strict_writes=True)
    vault.hvac.token = "task-token"
    tokens = []
    original = vault.answer

    def answer(method, path, json=None, params=None):
        tokens.append((path, vault.hvac.token))
        return original(method, path, json, params)

    vault.hvac.adapter.vault = type("Spy", (), {"answer": staticmethod(answer)})()
    module = ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod"), vault)
    result = verify_ca_bundle(module)

    assert result["valid"] is True and result["policy_check"] == "token" and module.warnings == []
    assert vault.writes() == [("POST", "auth/token/create"), ("POST", "auth/token/revoke-self")]
    assert vault.body("POST", "auth/token/create") == {
        "policies": ["istiod"], "ttl": "60s", "explicit_max_ttl": "60s", "num_uses": 5, "renewable": False,
        "display_name": "meshpki-istio-ca-verify"}
    reads = [token for path, token in tokens if path in ("istioca/cert/ca", "istioca/cert/ca_chain", "pki/cert/ca",
                                                         "secret/data/istioca")]
    assert reads == ["probe-token"] * 4  # the four reads, with the probe's token only
    assert tokens[-1] == ("auth/token/revoke-self", "probe-token")
    assert vault.hvac.token == "task-token"  # the task's own token is back


def test_token_probe_warns_when_the_token_cannot_be_revoked():
    bundle = Bundle()
    vault = FakeVault(policy_answers(bundle, extra={
        ("POST", "auth/token/create"): {"auth": {"client_token": "probe-token"}},
        ("POST", "auth/token/revoke-self"): 403}))
    vault.hvac.token = "task-token"
    module = ModuleStub(params(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod"), vault)
    result = verify_ca_bundle(module)
    assert result["valid"] is True and vault.hvac.token == "task-token"
    assert len(module.warnings) == 1 and "could not be revoked" in module.warnings[0]
    assert "expires within 60 seconds" in module.warnings[0]


# ---------------------------------------------------------------------------------------------------------
# policy and auth role checks: what each answer of Vault leads to
# ---------------------------------------------------------------------------------------------------------

def probe_answers(bundle, policy=POLICY, extra=None):
    answers = policy_answers(bundle, policy, {
        ("POST", "auth/token/create"): {"auth": {"client_token": "probe-token"}},
        ("POST", "auth/token/revoke-self"): None})
    answers.update(extra or {})
    return answers


def probe_vault(answers):
    vault = FakeVault(answers, strict_writes=True)
    vault.hvac.token = "task-token"
    return vault


def vault_params(**overrides):
    return params(**dict(dict(vault_paths=dict(VAULT_PATHS), read_with_policy="istiod"), **overrides))


def test_policy_check_token_goes_on_to_the_probe_when_the_policy_cannot_be_read():
    bundle = Bundle()
    vault = probe_vault(probe_answers(bundle, extra={("GET", "sys/policies/acl/istiod"): 403}))
    result = verify_ca_bundle(ModuleStub(vault_params(), vault))
    assert result["valid"] is True and result["policy_check"] == "token" and result["policy_rules"] == {}
    assert vault.writes() == [("POST", "auth/token/create"), ("POST", "auth/token/revoke-self")]
    assert "sys/policies/acl/default" not in vault.paths()  # nothing to merge it with


def test_a_policy_read_that_fails_otherwise_than_403_is_an_error_even_for_the_token_probe():
    vault = probe_vault(probe_answers(Bundle(), extra={("GET", "sys/policies/acl/istiod"): 500}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(), vault))
    assert "sys/policies/acl/istiod" in str(err.value) and vault.writes() == []


def test_a_policy_without_text_grants_nothing():
    vault = FakeVault(Bundle().vault_answers({("GET", "sys/policies/acl/istiod"): {"data": {}}}), strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules"), vault))
    assert "does not grant 'read' on 4 path(s)" in str(err.value) and vault.writes() == []


UNPARSABLE = 'path "istioca/cert/*" { capabilities = ["read"] }\nidentity "x" {}\n'


def test_policy_check_rules_refuses_a_policy_it_cannot_parse():
    vault = FakeVault(policy_answers(Bundle(), policy=UNPARSABLE), strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules"), vault))
    assert "'istiod'" in str(err.value) and "policy_check=token" in str(err.value)
    assert "sys/policies/acl/default" not in vault.paths()


def test_policy_check_token_lets_vault_judge_a_policy_it_cannot_parse():
    bundle = Bundle()
    vault = probe_vault(probe_answers(bundle, policy=UNPARSABLE))
    result = verify_ca_bundle(ModuleStub(vault_params(), vault))
    assert result["valid"] is True and result["policy_rules"] == {}
    assert ("POST", "auth/token/create") in vault.writes()


def test_the_default_policy_adds_its_grants():
    bundle = Bundle()
    default = 'path "pki/cert/ca" { capabilities = ["read"] }\npath "secret/data/*" { capabilities = ["read"] }\n'
    vault = FakeVault(policy_answers(bundle, policy='path "istioca/cert/*" { capabilities = ["read"] }\n', extra={
        ("GET", "sys/policies/acl/default"): {"data": {"policy": default}}}), strict_writes=True)
    result = verify_ca_bundle(ModuleStub(vault_params(policy_check="rules"), vault))
    assert result["policy_rules"] == {"istioca/cert/ca": "istioca/cert/*", "istioca/cert/ca_chain": "istioca/cert/*",
                                      "pki/cert/ca": "pki/cert/ca", "secret/data/istioca": "secret/data/*"}


@pytest.mark.parametrize("default", [403, {"data": {"policy": UNPARSABLE}}, {"data": None}])
def test_a_default_policy_that_cannot_be_used_adds_nothing(default):
    vault = FakeVault(policy_answers(Bundle(), extra={("GET", "sys/policies/acl/default"): default}),
                      strict_writes=True)
    result = verify_ca_bundle(ModuleStub(vault_params(policy_check="rules"), vault))
    assert result["valid"] is True and len(result["policy_rules"]) == 4


def test_a_rule_that_decides_against_read_is_named_with_its_capabilities():
    policy = POLICY + 'path "pki/cert/ca" { capabilities = ["deny"] }\n'
    vault = FakeVault(policy_answers(Bundle(), policy=policy), strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules"), vault))
    message = str(err.value)
    assert "on 1 path(s)" in message
    assert "'pki/cert/ca' (root-cert.pem, the root certificate)" in message
    assert "'path \"pki/cert/ca\"'" in message and "['deny', 'read']" in message


AUTH_ROLE = {"kubernetes_auth_mount": "kubernetes-east", "name": "istiod"}
ROLE_PATH = "auth/kubernetes-east/role/istiod"


@pytest.mark.parametrize("role", [{"data": {"token_policies": ["istiod"]}}, {"data": {"policies": ["istiod"]}},
                                  {"data": {"token_policies": [], "policies": ["default", "istiod"]}}])
def test_an_auth_role_that_hands_out_the_policy_passes(role):
    vault = FakeVault(policy_answers(Bundle(), extra={("GET", ROLE_PATH): role}), strict_writes=True)
    result = verify_ca_bundle(ModuleStub(vault_params(policy_check="rules", auth_role=dict(AUTH_ROLE)), vault))
    assert result["valid"] is True and ROLE_PATH in vault.paths()


def test_an_auth_role_that_does_not_exist_is_an_error():
    vault = FakeVault(policy_answers(Bundle()), strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules", auth_role=dict(AUTH_ROLE)), vault))
    assert str(err.value).startswith("auth_role: '%s' does not exist" % ROLE_PATH)


def test_an_auth_role_without_policies_hands_out_none():
    vault = FakeVault(policy_answers(Bundle(), extra={("GET", ROLE_PATH): {"data": None}}), strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules", auth_role=dict(AUTH_ROLE)), vault))
    assert "hands out the policies [], not 'istiod'" in str(err.value)


def test_an_auth_role_that_cannot_be_read_is_skipped_by_the_token_probe_only():
    bundle = Bundle()
    vault = probe_vault(probe_answers(bundle, extra={("GET", ROLE_PATH): 403}))
    result = verify_ca_bundle(ModuleStub(vault_params(auth_role=dict(AUTH_ROLE)), vault))
    assert result["valid"] is True and ("POST", "auth/token/create") in vault.writes()
    vault = probe_vault(probe_answers(bundle, extra={("GET", ROLE_PATH): 403}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules", auth_role=dict(AUTH_ROLE)), vault))
    assert ROLE_PATH in str(err.value) and vault.writes() == []
    vault = probe_vault(probe_answers(bundle, extra={("GET", ROLE_PATH): 500}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(auth_role=dict(AUTH_ROLE)), vault))
    assert ROLE_PATH in str(err.value) and vault.writes() == []


@pytest.mark.parametrize("auth_role, option", [
    ({"kubernetes_auth_mount": "a b", "name": "istiod"}, "auth_role.kubernetes_auth_mount"),
    ({"kubernetes_auth_mount": "kubernetes", "name": "../x"}, "auth_role.name")])
def test_an_invalid_auth_role_is_refused_naming_the_option(auth_role, option):
    vault = FakeVault(policy_answers(Bundle()), strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules", auth_role=auth_role), vault))
    assert str(err.value).startswith("Invalid auth_role: ") and option in str(err.value)
    assert not [path for path in vault.paths() if path.startswith("auth/")]


def test_vault_paths_with_a_trust_bundle_read_the_root_from_the_kv_secret():
    bundle = Bundle()
    answers = bundle.vault_answers({("GET", "secret/data/istioca-roots"): {
        "data": {"data": {"root-cert.pem": bundle.root.strip()}}}})
    del answers[("GET", "pki/cert/ca")]
    vault = FakeVault(answers, strict_writes=True)
    result = verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS, trust_bundle_path="istioca-roots")),
                                         vault))
    assert result["valid"] is True and result["sources"]["root-cert.pem"] == "vault:secret/data/istioca-roots"
    assert "pki/cert/ca" not in vault.paths()


def test_vault_paths_read_the_key_from_the_kv_field_given():
    bundle = Bundle()
    vault = FakeVault(bundle.vault_answers({("GET", "secret/data/istioca"): {
        "data": {"data": {"tls.key": bundle.key.strip(), "ca-key.pem": other_key()}}}}))
    result = verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS, kv_field="tls.key")), vault))
    assert result["valid"] is True


def test_a_directory_that_cannot_be_listed_is_an_error(tmp_path):
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(params(path=str(tmp_path / "nowhere"))))
    assert str(err.value).startswith("Cannot read the CA bundle: ") and "nowhere" in str(err.value)


def test_invalid_expect_roots_fail_before_anything_is_read():
    module = ModuleStub(params(vault_paths=dict(VAULT_PATHS), expect_roots=["not a root"]), FakeVault())
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(module)
    assert str(err.value).startswith("Invalid expect_roots: ") and module.logins == 0


def test_min_days_left_equal_to_the_days_left_passes():
    bundle = Bundle(int_days=10)
    days = verify_ca_bundle(ModuleStub(bundle.pem_params(min_days_left=1)))["days_left"]
    result = verify_ca_bundle(ModuleStub(bundle.pem_params(min_days_left=days)))
    check = result["checks"][-1]
    assert check == dict(name="min_days_left", passed=True, detail=check["detail"])
    assert "%d day(s) left, at least min_days_left=%d" % (days, days) == check["detail"]


def test_min_days_left_is_skipped_when_no_certificate_parsed():
    garbage = dict((name, "garbage\n") for name in ("ca-cert.pem", "cert-chain.pem", "root-cert.pem"))
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(Bundle().pem_params(min_days_left=30, **garbage)))
    check = err.value.details["checks"][-1]
    assert check["name"] == "min_days_left" and check["passed"] is False and check["skipped"] is True
    assert "min_days_left" in err.value.details["failed_checks"]


def test_the_expiry_warning_starts_below_30_days_left():
    module = ModuleStub(Bundle(int_days=31).pem_params())
    result = verify_ca_bundle(module)
    assert result["days_left"] == 30 and module.warnings == []
    module = ModuleStub(Bundle(int_days=30).pem_params())
    assert verify_ca_bundle(module)["days_left"] == 29 and len(module.warnings) == 1
    assert " 29 day(s)" in module.warnings[0]


def test_a_token_that_may_not_create_the_probe_token_fails_naming_the_capability():
    vault = probe_vault(probe_answers(Bundle(), extra={("POST", "auth/token/create"): 403}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(), vault))
    assert "auth/token/create" in str(err.value) and "'update'" in str(err.value)
    assert vault.writes() == [("POST", "auth/token/create")] and vault.hvac.token == "task-token"


def test_each_path_that_is_not_granted_is_listed_with_its_reason():
    policy = POLICY + 'path "pki/cert/ca" { capabilities = ["deny"] }\n'
    vault = FakeVault(policy_answers(Bundle(), policy=policy.replace('path "secret/data/istioca"', 'path "x"')),
                      strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(policy_check="rules"), vault))
    listed = str(err.value).split("could not render the bundle: ", 1)[1].split(". Grant read on", 1)[0]
    assert sorted(listed.split("; ")) == [
        "'pki/cert/ca' (root-cert.pem, the root certificate): the rule 'path \"pki/cert/ca\"' decides, with "
        "capabilities ['deny', 'read']",
        "'secret/data/istioca' (ca-key.pem, the intermediate's key): no rule of the policy matches it"]


def test_a_read_refused_by_vault_names_what_was_read_for_which_file():
    vault = FakeVault(Bundle().vault_answers({("GET", "pki/cert/ca"): 403}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(params(vault_paths=dict(VAULT_PATHS)), vault))
    assert "the root certificate for root-cert.pem" in str(err.value) and "pki/cert/ca" in str(err.value)


def test_policy_check_rules_with_a_trust_bundle_reads_the_root_from_the_kv_secret():
    bundle = Bundle()
    answers = policy_answers(bundle, policy=POLICY + 'path "secret/data/istioca-roots" { capabilities = ["read"] }\n',
                             extra={("GET", "secret/data/istioca-roots"): {
                                 "data": {"data": {"root-cert.pem": bundle.root.strip()}}}})
    del answers[("GET", "pki/cert/ca")]
    vault = FakeVault(answers, strict_writes=True)
    result = verify_ca_bundle(ModuleStub(vault_params(policy_check="rules", vault_paths=dict(
        VAULT_PATHS, trust_bundle_path="istioca-roots")), vault))
    assert result["valid"] is True and result["policy_check"] == "rules" and vault.writes() == []
    assert result["policy_rules"]["secret/data/istioca-roots"] == "secret/data/istioca-roots"
    assert "pki/cert/ca" not in vault.paths()


def test_a_directory_holding_tls_crt_fails(tmp_path):
    bundle = Bundle()
    for file_name, text in bundle.texts().items():
        (tmp_path / file_name).write_text(text)
    (tmp_path / "tls.crt").write_text(bundle.intermediate)
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(params(path=str(tmp_path))))
    assert err.value.details["failed_checks"] == ["no_tls_crt"]


def test_the_result_describes_the_certificates_and_the_chain_root():
    bundle = Bundle()
    result = verify_ca_bundle(ModuleStub(bundle.pem_params()))
    certificates = result["certificates"]
    assert [cert["subject"] for cert in certificates["roots"]] == ["CN=meshpki test root"]
    assert certificates["intermediate"]["subject"] == "CN=meshpki test intermediate"
    assert result["chain_root"]["subject"] == "CN=meshpki test root"


def test_without_cryptography_the_bundle_cannot_be_verified_and_the_error_says_why(monkeypatch):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import x509

    monkeypatch.setattr(x509, "HAS_CRYPTOGRAPHY", False)
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(Bundle().pem_params()))
    assert str(err.value).startswith("Cannot verify the CA bundle from the PEM options: the Python library "
                                     "'cryptography' is required")


def test_checks_not_run_end_the_failure_message():
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(Bundle().pem_params(**{"ca-cert.pem": "garbage\n"})))
    skipped = [check["name"] for check in err.value.details["checks"] if check.get("skipped")]
    assert str(err.value).endswith(". Not run because of these failures: " + ", ".join(skipped))


def test_a_directory_whose_name_ends_in_x_is_named_as_it_is(tmp_path):
    directory = tmp_path / "cacerts-X"
    directory.mkdir()
    bundle = Bundle()
    for file_name, text in bundle.texts().items():
        if file_name != "root-cert.pem":
            (directory / file_name).write_text(text)
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(params(path=str(directory) + "/")))
    sources = err.value.details["sources"]
    assert sources["ca-cert.pem"] == "%s/ca-cert.pem" % directory
    assert sources["root-cert.pem"] == "%s/root-cert.pem (missing)" % directory


@pytest.mark.parametrize("path, action", [("sys/policies/acl/istiod", "read the policy given in read_with_policy"),
                                          (ROLE_PATH, "read the auth role istiod logs in with")])
def test_a_failed_policy_or_role_read_says_what_was_read(path, action):
    vault = probe_vault(probe_answers(Bundle(), extra={("GET", path): 500}))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(ModuleStub(vault_params(auth_role=dict(AUTH_ROLE)), vault))
    assert action in str(err.value) and path in str(err.value) and vault.writes() == []
