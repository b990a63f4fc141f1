"""meshpki.vault_ca.istio_ca_diagnose and the role's diagnose entry point (playbooks/diagnose.yml).

A real OpenBao and a fake Kubernetes API (tools/embedded.py, as `make demo` uses them) set up by the
main playbook; then each thing the guide's troubleshooting section is about is broken on purpose,
the diagnosis must name it in words, and the setup is restored.
"""

import json
import os
import re
import sys
import urllib.error

import pytest
import yaml

from harness.audit import AuditLog
from harness.openbao import OpenBaoServer, vault_request
from harness.playbook import REPO, Playbooks, module_play

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402

# With trust_bundle_path (as the role runs it): root-cert.pem is the trust bundle the main playbook keeps, and the
# root rotation's record is reported after root_ca.
CHECKS = ["vault_reachable", "vault_login", "mounts", "root_ca", "root_rotation", "intermediate_ca", "intermediate_key",
          "policy", "kubernetes_auth", "role", "istiod_login", "bundle", "target"]


class Estate(object):
    """The embedded environment after one run of the main playbook."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.env = embedded.start(os.path.join(workdir, "embedded"))
        self.cluster = self.env["clusters"][embedded.DEFAULT_CLUSTER]
        self.manifest = os.path.join(workdir, "controlplane.yaml")
        with open(self.manifest, "w") as f:
            yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE, f)  # the ControlPlane the demo's cluster holds
        self.role_vars = {"istio_vault_ca_manifest_path": self.manifest,
                          "istio_vault_ca_kubeconfig": self.cluster["kubeconfig"],
                          "istio_vault_ca_k8s_token_reviewer": {"create": True}}
        self.playbooks = Playbooks(os.path.join(workdir, "runs"))
        self.vars_file = os.path.join(workdir, "vars.json")
        with open(self.vars_file, "w") as f:
            json.dump(self.role_vars, f)

    @property
    def vault_env(self):
        return {"VAULT_ADDR": self.env["VAULT_ADDR"], "VAULT_TOKEN": self.env["VAULT_TOKEN"]}

    def playbook(self, name, *extra):
        """Run playbooks/<name> with the estate's variables; returns a harness.playbook.PlaybookRun."""
        return self.playbooks.run_file(os.path.join(REPO, "playbooks", name), env=self.vault_env,
                                       extra_args=("-e", "@" + self.vars_file) + extra)

    def api(self, method, path, body=None):
        try:
            return vault_request(self.env["VAULT_ADDR"], method, path, body, token=self.env["VAULT_TOKEN"])
        except urllib.error.HTTPError as e:
            raise AssertionError("%s %s: %s %s" % (method, path, e.code, e.read().decode()))

    def mint(self, namespace="istio-system", name="istiod-service-account"):
        return embedded.mint(os.path.join(self.workdir, "embedded"), namespace=namespace, name=name)

    def stop(self):
        embedded.stop(os.path.join(self.workdir, "embedded"))


@pytest.fixture(scope="module")
def estate(tmp_path_factory):
    estate = Estate(str(tmp_path_factory.mktemp("diagnose")))
    try:
        first = estate.playbook("istio_vault_ca.yml")
        assert first.rc == 0, first
        estate.mint()  # istiod's ServiceAccount exists, as in a cluster (the fake API creates it with a first token)
        yield estate
    finally:
        estate.stop()


def diagnose_args(estate, **overrides):
    args = {"target": "tsb_controlplane", "target_name": "controlplane", "target_namespace": "tsb",
            "path": estate.manifest, "trust_bundle_path": "pki-trust"}
    args.update(overrides)
    return dict((name, value) for name, value in args.items() if value is not None)  # None: option left out


def diagnose(playbook, estate, env=None, **overrides):
    """Run the module once; returns (result, {check: (status, message)})."""
    run = playbook(module_play("istio_ca_diagnose", diagnose_args(estate, **overrides)),
                   env=dict(estate.vault_env, **(env or {})))
    assert run.rc == 0, run  # findings never fail the module
    result = run.task("task")["result"]
    assert result["changed"] is False
    assert [check["name"] for check in result["checks"]] == CHECKS
    return result, dict((check["name"], (check["status"], check["message"])) for check in result["checks"])


def only_problems(checks, *names):
    problems = sorted(name for name, (status, _msg) in checks.items() if status == "problem")
    assert problems == sorted(names), checks


def test_healthy_setup_every_check_ok_and_no_secret_in_output(playbook, estate):
    jwt = estate.mint()
    run = playbook(module_play("istio_ca_diagnose", diagnose_args(estate, istiod_jwt=jwt)), env=estate.vault_env,
                   verbosity=3)
    assert run.rc == 0, run
    result = run.task("task")["result"]
    statuses = dict((check["name"], check["status"]) for check in result["checks"])
    assert statuses == dict((name, "ok") for name in CHECKS), result["report"]
    assert result["healthy"] is True and result["problems"] == [] and result["notices"] == []
    assert result["vault"]["sealed"] is False and result["vault"]["initialized"] is True
    assert result["certificates"]["intermediate"]["subject"] == "CN=tetrate.io Intermediate Authority"
    assert 170 < result["certificates"]["intermediate"]["days_left"] <= 183  # the role's 4380h default
    assert result["annotations"] == {"missing": [], "different": [], "other_prefix": []}
    checks = dict((check["name"], check["message"]) for check in result["checks"])
    assert "as istio-system/istiod-service-account" in checks["istiod_login"]
    assert "rendered with istiod's token" in checks["bundle"]
    # Read only: nothing written but the login as istiod and the revocation of its token.
    # Secrets: the JWT, the operator's token and the key are nowhere in the -vvv output.
    key = estate.api("GET", "secret/data/istioca")["data"]["data"]["ca-key.pem"]
    body = "".join(key.strip().splitlines()[1:-1])
    output = run.output
    assert jwt not in output and estate.env["VAULT_TOKEN"] not in output
    assert not any(body[i:i + 32] in output for i in range(0, len(body) - 32, 16))
    # The login's token was revoked: no token made by a Kubernetes login is left.
    accessors = estate.api("LIST", "auth/token/accessors")["data"]["keys"]
    live = [estate.api("POST", "auth/token/lookup-accessor", {"accessor": a})["data"] for a in accessors]
    assert live and not [t for t in live if t.get("path", "").startswith("auth/kubernetes/login")], live


def test_problems_named_in_words(playbook, estate):
    # 1. The policy lost the key's path: the policy check names it, istiod's token is refused the key.
    #    Without the chain path it is only a warning: the PKI engine serves <mount>/cert/* without a token.
    policy = estate.api("GET", "sys/policies/acl/istioca")["data"]["policy"]
    try:
        for path, problems in (("secret/data/istioca", ("policy", "bundle")), ("istioca/cert/ca_chain", ())):
            broken = re.sub(r'path "%s" \{[^}]*\}' % re.escape(path), "", policy)
            assert broken != policy
            estate.api("PUT", "sys/policies/acl/istioca", {"policy": broken})
            result, checks = diagnose(playbook, estate, istiod_jwt=estate.mint())
            only_problems(checks, *problems)
            assert "does not grant read on %s" % path in checks["policy"][1]
        assert checks["policy"][0] == "warning" and "without a token" in checks["policy"][1]
        assert checks["bundle"][0] == "ok" and "rendered with istiod's token" in checks["bundle"][1]
    finally:
        estate.api("PUT", "sys/policies/acl/istioca", {"policy": policy})
    estate.api("PUT", "sys/policies/acl/istioca", {"policy": re.sub(
        r'path "secret/data/istioca" \{[^}]*\}', "", policy)})
    try:
        result, checks = diagnose(playbook, estate, istiod_jwt=estate.mint())
    finally:
        estate.api("PUT", "sys/policies/acl/istioca", {"policy": policy})
    assert "ca-key.pem (403)" in checks["policy"][1] and "Re-run the main playbook" in checks["policy"][1]
    assert "istiod's token may not read ca-key.pem (secret/data/istioca)" in checks["bundle"][1]
    assert result["healthy"] is False and len(result["problems"]) == 2

    # 2. The role bound to another service account: the role check says so, and the login as istiod fails
    #    with Vault's words and their meaning.
    role = estate.api("GET", "auth/kubernetes/role/istiod")["data"]
    estate.api("POST", "auth/kubernetes/role/istiod", {"bound_service_account_names": ["someone-else"]})
    try:
        _result, checks = diagnose(playbook, estate, istiod_jwt=estate.mint())
        only_problems(checks, "role", "istiod_login")
        assert "bound to service account(s) someone-else, not istiod-service-account" in checks["role"][1]
        assert "auth/kubernetes/login" in checks["istiod_login"][1]
        assert "Meaning: the role's bound_service_account_names" in checks["istiod_login"][1]
        assert "this module's token" in checks["bundle"][1]  # still rendered, with the operator's token
    finally:
        estate.api("POST", "auth/kubernetes/role/istiod",
                   {"bound_service_account_names": role["bound_service_account_names"]})

    # 3. Another key stored in KV (a new version): the key no longer belongs to the intermediate.
    current = estate.api("GET", "secret/data/istioca")["data"]
    other = estate.api("POST", "pki/root/generate/exported", {"common_name": "throwaway", "ttl": "1h",
                                                              "issuer_name": "throwaway"})["data"]
    estate.api("POST", "secret/data/istioca", {"data": {"ca-key.pem": other["private_key"]}})
    try:
        _result, checks = diagnose(playbook, estate)
        only_problems(checks, "intermediate_key", "bundle")
        message = checks["intermediate_key"][1]
        assert "does not belong to the default issuer of 'istioca'" in message and "version 2" in message
        assert "key_matches_cert" in checks["bundle"][1]
        assert other["private_key"][40:72] not in json.dumps(_result)
    finally:
        estate.api("POST", "secret/data/istioca", {"data": current["data"]})
        estate.api("DELETE", "pki/issuer/%s" % other["issuer_id"])

    # 4. The root's default issuer replaced: the intermediate is no longer signed by the current root.
    root_default = estate.api("GET", "pki/config/issuers")["data"]["default"]
    new_root = estate.api("POST", "pki/root/generate/internal", {"common_name": "another root", "ttl": "2h",
                                                                 "issuer_name": "another"})["data"]
    estate.api("POST", "pki/config/issuers", {"default": new_root["issuer_id"]})
    try:
        result, checks = diagnose(playbook, estate)
        only_problems(checks, "intermediate_ca")
        assert "was not signed by the current root of 'pki' (CN=another root)" in checks["intermediate_ca"][1]
        # root-cert.pem renders the trust bundle, which still holds the root the main playbook wrote there: istiod's
        # files stay consistent until the main playbook (or a root rotation) moves the bundle
        assert checks["bundle"][0] == "ok", checks["bundle"]
        assert checks["root_ca"][0] == "warning" and "fewer than 90 days left" in checks["root_ca"][1]
        assert result["certificates"]["root"]["subject"] == "CN=another root"
    finally:
        estate.api("POST", "pki/config/issuers", {"default": root_default})
        estate.api("DELETE", "pki/issuer/%s" % new_root["issuer_id"])

    # 5. The ControlPlane edited by hand: an annotation changed, ROOT_CA_DIR gone, and stale OpenBao ones.
    with open(estate.manifest) as f:
        original = f.read()
    doc = yaml.safe_load(original)
    deployment = doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    deployment["podAnnotations"]["vault.hashicorp.com/role"] = "istiod-old"
    del deployment["podAnnotations"]["vault.hashicorp.com/agent-inject-template-ca-key.pem"]
    deployment["env"] = [e for e in deployment["env"] if e["name"] != "ROOT_CA_DIR"]
    with open(estate.manifest, "w") as f:
        yaml.safe_dump(doc, f)
    try:
        result, checks = diagnose(playbook, estate)
        only_problems(checks, "target")
        message = checks["target"][1]
        assert "missing annotations vault.hashicorp.com/agent-inject-template-ca-key.pem" in message
        assert "differ from what these Vault paths need: vault.hashicorp.com/role" in message
        assert "env ROOT_CA_DIR not set to ROOT_CA_DIR=/etc/cacerts-vault" in message
        assert result["annotations"]["missing"] == ["vault.hashicorp.com/agent-inject-template-ca-key.pem"]
        assert result["annotations"]["different"] == ["vault.hashicorp.com/role"]
    finally:
        with open(estate.manifest, "w") as f:
            f.write(original)
    doc = yaml.safe_load(original)
    doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]["podAnnotations"][
        "openbao.openbao.org/agent-inject"] = "true"
    with open(estate.manifest, "w") as f:
        yaml.safe_dump(doc, f)
    try:
        result, checks = diagnose(playbook, estate)
        only_problems(checks)
        assert checks["target"][0] == "warning" and "openbao.openbao.org" in checks["target"][1]
        assert result["healthy"] is True and result["annotations"]["other_prefix"] == [
            "openbao.openbao.org/agent-inject"]
    finally:
        with open(estate.manifest, "w") as f:
            f.write(original)


def test_mount_types_renew_window_and_a_login_with_the_wrong_account(playbook, estate):
    estate.api("POST", "sys/mounts/kv-one", {"type": "kv", "options": {"version": "1"}})
    try:
        result, checks = diagnose(playbook, estate, kv_mount="kv-one", renew_before="5000h",
                                  istiod_jwt=estate.mint(namespace="default", name="default"))
    finally:
        estate.api("DELETE", "sys/mounts/kv-one")
    assert "'kv-one/' is a kv v1 mount, but the intermediate's key needs kv v2" in checks["mounts"][1]
    assert checks["intermediate_ca"][0] == "warning" and "within renew_before (5000h)" in checks["intermediate_ca"][1]
    assert checks["istiod_login"][0] == "problem" and "auth/kubernetes/login" in checks["istiod_login"][1]
    assert "Meaning:" in checks["istiod_login"][1]
    assert result["healthy"] is False

    # An intermediate mount without a CA yet: named, and the key check that needs it skipped.
    estate.api("POST", "sys/mounts/pki-empty", {"type": "pki"})
    try:
        _result, checks = diagnose(playbook, estate, intermediate_mount="pki-empty")
    finally:
        estate.api("DELETE", "sys/mounts/pki-empty")
    assert checks["intermediate_ca"][0] == "problem"
    assert "'pki-empty' has no default issuer, so ca-cert.pem and cert-chain.pem render(s) empty" in \
        checks["intermediate_ca"][1] and "(intermediate CA step)" in checks["intermediate_ca"][1]
    assert checks["intermediate_key"][0] == "skipped"


# What diagnose reads with its own login (sys/auth needs sudo); nothing else.
DIAGNOSE_READER = """
path "*" { capabilities = ["read", "list"] }
path "sys/auth" { capabilities = ["read", "sudo"] }
"""


def login_paths(estate, mark):
    """The login requests the audit log shows after ``mark``."""
    return [path for _op, path in AuditLog(estate.env["MESHPKI_AUDIT_LOG"]).requests(mark) if path.endswith("/login")]


@pytest.fixture
def approle(estate):
    """An AppRole at the default mount 'approle' whose token may read what diagnose reads: (role_id, secret_id)."""
    estate.api("POST", "sys/auth/approle", {"type": "approle"})
    estate.api("PUT", "sys/policies/acl/diagnose-reader", {"policy": DIAGNOSE_READER})
    try:
        estate.api("POST", "auth/approle/role/diagnose", {"token_policies": ["diagnose-reader"]})
        role_id = estate.api("GET", "auth/approle/role/diagnose/role-id")["data"]["role_id"]
        secret_id = estate.api("POST", "auth/approle/role/diagnose/secret-id")["data"]["secret_id"]
        yield role_id, secret_id
    finally:
        estate.api("DELETE", "sys/auth/approle")
        estate.api("DELETE", "sys/policies/acl/diagnose-reader")


def test_own_login_takes_the_shared_auth_options(playbook, estate, approle):
    """Issue #16: the module's own auth_mount/jwt/jwt_file were istiod's, so with auth_method approle it logged in
    at auth/kubernetes/login. Now auth_method, auth_mount, role_id and secret_id are the module's own login, as in
    every module (here at the approle method's default mount), and istiod's options have names of their own."""
    role_id, secret_id = approle
    mark = AuditLog(estate.env["MESHPKI_AUDIT_LOG"]).mark()
    result, checks = diagnose(playbook, estate, env={"VAULT_TOKEN": ""}, auth_method="approle", role_id=role_id,
                              secret_id=secret_id)
    assert checks["vault_login"][0] == "ok", checks["vault_login"]
    assert login_paths(estate, mark) == ["auth/approle/login"]
    assert checks["istiod_login"][0] == "skipped"
    only_problems(checks)
    assert result["healthy"] is True


def test_istiod_logs_in_at_kubernetes_auth_mount_while_the_module_uses_approle(playbook, estate, approle):
    """istiod's Kubernetes auth at a mount of its own (kubernetes_auth_mount) with istiod_jwt; the module's own
    login with AppRole at a non-default mount (auth_mount; the fixture gives the policy): each login at its own
    mount, every check ok."""
    estate.api("POST", "sys/auth/approle-ops", {"type": "approle"})
    estate.api("POST", "auth/approle-ops/role/diagnose", {"token_policies": ["diagnose-reader"]})
    ops_role_id = estate.api("GET", "auth/approle-ops/role/diagnose/role-id")["data"]["role_id"]
    ops_secret_id = estate.api("POST", "auth/approle-ops/role/diagnose/secret-id")["data"]["secret_id"]
    config = estate.api("GET", "auth/kubernetes/config")["data"]
    role = estate.api("GET", "auth/kubernetes/role/istiod")["data"]
    estate.api("POST", "sys/auth/k8s-istiod", {"type": "kubernetes"})
    try:
        estate.api("POST", "auth/k8s-istiod/config", {
            "kubernetes_host": config["kubernetes_host"], "kubernetes_ca_cert": config["kubernetes_ca_cert"],
            "token_reviewer_jwt": estate.mint(namespace="vault", name="vault-token-reviewer")})
        estate.api("POST", "auth/k8s-istiod/role/istiod", dict(
            (key, role[key]) for key in ("bound_service_account_names", "bound_service_account_namespaces",
                                         "token_policies", "token_ttl", "audience") if role.get(key)))
        mark = AuditLog(estate.env["MESHPKI_AUDIT_LOG"]).mark()
        result, checks = diagnose(playbook, estate, env={"VAULT_TOKEN": ""}, auth_method="approle",
                                  auth_mount="approle-ops", role_id=ops_role_id, secret_id=ops_secret_id,
                                  kubernetes_auth_mount="k8s-istiod", istiod_jwt=estate.mint(), target=None)
    finally:
        estate.api("DELETE", "sys/auth/k8s-istiod")
        estate.api("DELETE", "sys/auth/approle-ops")
    # (no target: the manifest's annotations name auth/kubernetes, the mount the main playbook configured)
    assert dict((name, status) for name, (status, _msg) in checks.items()) == dict(
        [(name, "ok") for name in CHECKS[:-1]] + [("target", "skipped")]), result["report"]
    assert login_paths(estate, mark) == ["auth/approle-ops/login", "auth/k8s-istiod/login"]
    assert "auth/k8s-istiod/ is kubernetes" in checks["mounts"][1]
    assert "logged in at auth/k8s-istiod/login as istio-system/istiod-service-account" in checks["istiod_login"][1]
    assert "rendered with istiod's token" in checks["bundle"][1]


def test_unreachable_sealed_and_bad_input(playbook, estate, tmp_path):
    # Unreachable: one problem in words, the other Vault checks skipped, the target still checked.
    result, checks = diagnose(playbook, estate, env={"VAULT_ADDR": "http://127.0.0.1:9"})
    assert checks["vault_reachable"][0] == "problem" and "http://127.0.0.1:9" in checks["vault_reachable"][1]
    assert all(checks[name][0] == "skipped" for name in CHECKS[1:-1]), checks
    assert checks["target"][0] == "ok" and result["vault"] == {}

    # Sealed (a server of its own: sealing the shared one would stop the other tests).
    with OpenBaoServer(str(tmp_path / "sealed")) as server:
        server.api("PUT", "sys/seal")
        result, checks = diagnose(playbook, estate, env={"VAULT_ADDR": server.url, "VAULT_TOKEN": server.token})
    assert checks["vault_reachable"][0] == "problem" and "is sealed" in checks["vault_reachable"][1]
    assert "bao operator unseal" in checks["vault_reachable"][1] and result["vault"]["sealed"] is True

    # A wrong token: the login check says so; nothing else is attempted against Vault.
    _result, checks = diagnose(playbook, estate, env={"VAULT_TOKEN": "s.not-a-token"})
    assert checks["vault_login"][0] == "problem" and "VAULT_" in checks["vault_login"][1]
    assert all(checks[name][0] == "skipped" for name in CHECKS[2:-1])

    # Invalid options fail the module itself, with the option's name.
    run = playbook(module_play("istio_ca_diagnose", diagnose_args(estate, renew_before="soon")), env=estate.vault_env)
    assert run.rc != 0 and "renew_before" in run.task("task")["result"]["msg"]
    run = playbook(module_play("istio_ca_diagnose", diagnose_args(estate, kv_path="data/istioca")),
                   env=estate.vault_env)
    assert run.rc != 0 and "without the 'data/' API segment" in run.task("task")["result"]["msg"]


def test_diagnose_playbook_reports_then_fails_in_words(estate):
    healthy = estate.playbook("diagnose.yml", "-e", "istio_vault_ca_diagnose_request_jwt=true")
    assert healthy.rc == 0, healthy.stdout[-4000:]
    assert "ok       istiod_login" in healthy.stdout and "ok       target" in healthy.stdout
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 ", healthy.stdout)

    role = estate.api("GET", "auth/kubernetes/role/istiod")["data"]
    estate.api("POST", "auth/kubernetes/role/istiod", {"token_policies": ["default"]})
    try:
        broken = estate.playbook("diagnose.yml", "-e", "istio_vault_ca_diagnose_request_jwt=true")
        report_only = estate.playbook("diagnose.yml", "-e", "istio_vault_ca_diagnose_fail=false")
    finally:
        estate.api("POST", "auth/kubernetes/role/istiod", {"token_policies": role["token_policies"]})
    assert broken.rc == 2, broken.stdout[-4000:]
    assert "problem  role" in broken.stdout  # the report is printed before the failure
    assert re.search(r"\d problem\(s\): role: auth/kubernetes/role/istiod gives the policies default, not istioca",
                     broken.stdout), broken.stdout[-4000:]
    assert "its token holds default, not istioca" in broken.stdout
    assert report_only.rc == 0 and "problem  role" in report_only.stdout


def test_role_argument_spec_has_the_diagnose_entry_point():
    with open(os.path.join(REPO, "roles", "istio_vault_ca", "meta", "argument_specs.yml")) as f:
        specs = yaml.safe_load(f)["argument_specs"]
    diagnose_options = specs["diagnose"]["options"]
    for name, spec in diagnose_options.items():
        if name in specs["main"]["options"]:
            assert spec == specs["main"]["options"][name], name  # one definition (YAML anchors), not a copy
    assert {"istio_vault_ca_diagnose_jwt", "istio_vault_ca_diagnose_request_jwt",
            "istio_vault_ca_diagnose_fail"} <= set(diagnose_options)
    with open(os.path.join(REPO, "roles", "istio_vault_ca", "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f)
    for name, spec in diagnose_options.items():
        assert defaults[name] == spec["default"], name
