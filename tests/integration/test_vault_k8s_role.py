"""vault_k8s_role against a real OpenBao server, and the guide's istiod login end to end: OpenBao's
Kubernetes auth reviews a service-account JWT minted by the fake Kubernetes API over TLS."""

import json
import urllib.error
import urllib.request
import uuid

import pytest
from conftest import assert_four_step

from harness.fake_k8s import FakeKubeApi
from harness.playbook import module_play

ISTIO_NS = "istio-system"
ISTIOD_SA = "istiod-service-account"
GUIDE_ROLE = {"name": "istiod", "bound_service_account_names": [ISTIOD_SA],
              "bound_service_account_namespaces": [ISTIO_NS], "policies": ["istioca"], "period": "600s"}
GUIDE_RULES = [
    {"path": "secret/data/istioca", "capabilities": ["read", "list"]},
    {"path": "istioca/cert/*", "capabilities": ["read", "list"]},
    {"path": "pki/cert/ca", "capabilities": ["read", "list"]},
]


@pytest.fixture(scope="module")
def fake():
    with FakeKubeApi() as api:
        yield api


def _mount(bao=None):
    mount = "kubernetes-" + uuid.uuid4().hex[:8]
    if bao is not None:
        bao.api("POST", "sys/auth/" + mount, {"type": "kubernetes"})
    return mount


def _defaults(bao):
    return {"url": bao.url, "token": bao.token}


def _role(bao, mount, name):
    try:
        return bao.api("GET", "auth/%s/role/%s" % (mount, name))["data"]
    except urllib.error.HTTPError as error:
        assert error.code == 404
        return None


def vault(bao, method, path, body=None, token=None):
    """A request to OpenBao with ``token`` (none: anonymous): (status, body) whatever the status."""
    request = urllib.request.Request(bao.http_url + "/v1/" + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("X-Vault-Token", token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_four_steps_equivalent_forms_a_change_with_diff_then_absent(bao, playbook):
    mount = _mount(bao)
    present = module_play("vault_k8s_role", dict(GUIDE_ROLE, mount=mount), defaults=_defaults(bao))
    mark = bao.audit.mark()
    runs = assert_four_step(playbook, present)
    path = "auth/%s/role/istiod" % mount
    assert bao.audit.writes(since=mark) == [("create", path)]
    stored = _role(bao, mount, "istiod")
    assert (stored["token_policies"], stored["token_period"]) == (["istioca"], 600)
    assert stored["bound_service_account_names"] == [ISTIOD_SA]
    check = runs[0].task("task")["result"]
    assert check["diff"]["before"] == {}
    assert check["diff"]["after"] == {"bound_service_account_names": [ISTIOD_SA],
                                      "bound_service_account_namespaces": [ISTIO_NS],
                                      "token_policies": ["istioca"], "token_period": 600}
    assert runs[1].task("task")["result"]["role"]["alias_name_source"] == "serviceaccount_uid"  # as read back

    # The same role in other words: durations, list order and duplicates, token_* names
    same = dict(mount=mount, bound_service_account_names=[ISTIOD_SA, ISTIOD_SA],
                bound_service_account_namespaces=[ISTIO_NS], token_policies=["istioca"], token_period="10m",
                token_ttl="0s", audience="")
    # A real change, shown in the diff; fields not given keep their value
    change = dict(mount=mount, period=300, policies=["istioca", "istio-extra"])
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)},
             "tasks": [{"name": "same", "meshpki.vault_ca.vault_k8s_role": same},
                       {"name": "change", "meshpki.vault_ca.vault_k8s_role": change}]}]
    mark = bao.audit.mark()
    run = playbook(play, diff=True)
    assert run.rc == 0, run
    assert run.task("same")["status"] == "ok"
    changed = run.task("change")["result"]
    assert changed["changed"] is True and changed["changed_fields"] == ["token_period", "token_policies"]
    assert (changed["diff"]["before"]["token_period"], changed["diff"]["after"]["token_period"]) == (600, 300)
    assert changed["diff"]["after"]["bound_service_account_names"] == [ISTIOD_SA]
    assert bao.audit.writes(since=mark) == [("update", path)]
    stored = _role(bao, mount, "istiod")
    assert stored["token_period"] == 300 and sorted(stored["token_policies"]) == ["istio-extra", "istioca"]
    assert stored["bound_service_account_namespaces"] == [ISTIO_NS]
    assert "-  token_period: 600" in run.stdout or '"token_period": 600' in run.stdout  # --diff is shown

    absent = module_play("vault_k8s_role", {"mount": mount, "state": "absent"}, defaults=_defaults(bao))
    mark = bao.audit.mark()
    runs = assert_four_step(playbook, absent)
    assert bao.audit.writes(since=mark) == [("delete", path)]
    assert _role(bao, mount, "istiod") is None
    assert runs[0].task("task")["result"]["diff"]["before"]["token_period"] == 300


def test_role_written_with_legacy_names_is_not_rewritten(bao, playbook):
    """A role from the guide's CLI command (policies=, period=600s) equals the module's token_* form."""
    mount = _mount(bao)
    bao.api("POST", "auth/%s/role/istiod" % mount, {
        "bound_service_account_names": ISTIOD_SA, "bound_service_account_namespaces": ISTIO_NS,
        "policies": "istioca", "period": "600s"})
    mark = bao.audit.mark()
    run = playbook(module_play("vault_k8s_role", dict(GUIDE_ROLE, mount=mount, period=600),
                               defaults=_defaults(bao)))
    assert run.rc == 0, run
    assert run.task("task")["status"] == "ok"
    assert bao.audit.writes(since=mark) == []


def test_bad_input_is_refused_before_any_write(bao, playbook):
    mount = _mount(bao)
    missing_mount = "kubernetes-" + uuid.uuid4().hex[:8]
    cases = [
        ({"mount": mount, "name": "new-role", "policies": ["istioca"]},
         "Role 'new-role' does not exist yet, and a new role needs bound_service_account_names and "
         "bound_service_account_namespaces (or bound_service_account_namespace_selector) (nothing was changed)."),
        (dict(GUIDE_ROLE, mount=mount, period="ten minutes"),
         "Invalid token_period: token_period 'ten minutes' is not a duration"),
        (dict(GUIDE_ROLE, mount=mount, alias_name_source="serviceaccount_email"),
         "value of alias_name_source must be one of: serviceaccount_uid, serviceaccount_name"),
    ]
    tasks = [{"name": "case %d" % i, "ignore_errors": True, "meshpki.vault_ca.vault_k8s_role": args}
             for i, (args, _message) in enumerate(cases)]
    tasks.append({"name": "no mount", "ignore_errors": True,
                  "meshpki.vault_ca.vault_k8s_role": dict(GUIDE_ROLE, mount=missing_mount)})
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)}, "tasks": tasks}]
    mark = bao.audit.mark()
    run = playbook(play)
    assert run.rc == 0, run
    for i, (_args, message) in enumerate(cases):
        task = run.task("case %d" % i)
        assert task["status"] == "failed" and message in task["result"]["msg"], (i, task["result"].get("msg"))
    assert [w for w in bao.audit.writes(since=mark) if missing_mount not in w[1]] == []
    assert _role(bao, mount, "new-role") is None and _role(bao, mount, "istiod") is None
    no_mount = run.task("no mount")["result"]["msg"]
    assert no_mount == ("Failed to write kubernetes auth role 'auth/%s/role/istiod': no Kubernetes auth method is "
                        "enabled at 'auth/%s' - enable it first (meshpki.vault_ca.vault_k8s_auth with "
                        "kubernetes_auth_mount: %s)."
                        % (missing_mount, missing_mount, missing_mount))


def test_guide_role_real_login(bao, playbook, fake, tmp_path):
    """The guide end to end: vault_k8s_auth (kubeconfig + reviewer bootstrap), vault_policy istioca and
    vault_k8s_role istiod; istiod's service-account JWT logs in and gets exactly default + istioca with the
    600s period. Other service accounts and namespaces are refused with Vault's reason. Then the collection's
    own auth_method kubernetes logs in through the same TokenReview path."""
    mount = "kubernetes-" + uuid.uuid4().hex[:8]
    istioca = "istioca-" + uuid.uuid4().hex[:6]
    admin_policy = "k8s-admin-" + uuid.uuid4().hex[:6]
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", context_name="east")
    fake.mint_sa_token("vault", "bootstrap")  # creates the reviewer's namespace
    defaults = _defaults(bao)
    tasks = [
        {"name": "auth", "meshpki.vault_ca.vault_k8s_auth": {
            "mount": mount, "kubeconfig": kubeconfig, "context": "east", "disable_local_ca_jwt": True,
            "token_reviewer": {"namespace": "vault", "service_account": "reviewer-" + mount}}},
        {"name": "policy", "meshpki.vault_ca.vault_policy": {"name": istioca, "rules": GUIDE_RULES}},
        {"name": "role", "meshpki.vault_ca.vault_k8s_role": dict(GUIDE_ROLE, mount=mount, policies=[istioca])},
        {"name": "admin policy", "meshpki.vault_ca.vault_policy": {
            "name": admin_policy, "policy": 'path "sys/policies/acl/*" { capabilities = ["create", "read", '
                                            '"update", "delete"] }'}},
        {"name": "automation role", "meshpki.vault_ca.vault_k8s_role": {
            "mount": mount, "name": "ansible", "bound_service_account_names": ["ansible-runner"],
            "bound_service_account_namespaces": ["automation"], "token_policies": [admin_policy],
            "token_ttl": "5m"}},
    ]
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": defaults}, "tasks": tasks}]
    run = playbook(play)
    assert run.rc == 0, run
    assert [run.task(t["name"])["status"] for t in tasks] == ["changed"] * len(tasks)
    reviewer = "system:serviceaccount:vault:reviewer-" + mount

    # istiod logs in the way its Vault Agent does
    istiod_jwt = fake.mint_sa_token(ISTIO_NS, ISTIOD_SA)
    fake.clear_requests()
    status, body = vault(bao, "POST", "auth/%s/login" % mount, {"role": "istiod", "jwt": istiod_jwt})
    assert status == 200, body
    token = body["auth"]["client_token"]
    assert sorted(body["auth"]["policies"]) == ["default", istioca]
    assert body["auth"]["metadata"]["service_account_name"] == ISTIOD_SA
    assert body["auth"]["metadata"]["service_account_namespace"] == ISTIO_NS
    assert [(r["caller"], r["spec"]["token"], r["status"]["authenticated"]) for r in fake.token_reviews] == [
        (reviewer, istiod_jwt, True)]
    assert [(r["method"], r["path"], r["caller"]) for r in fake.requests] == [
        ("POST", "/apis/authentication.k8s.io/v1/tokenreviews", reviewer)]  # over TLS, with the reviewer JWT
    status, body = vault(bao, "GET", "auth/token/lookup-self", token=token)
    assert status == 200, body
    data = body["data"]
    assert sorted(data["policies"]) == ["default", istioca] and data["period"] == 600
    assert 590 <= data["ttl"] <= 600 and data["renewable"] is True
    status, body = vault(bao, "GET", "istioca/cert/ca", token=token)  # the policy reads the CA paths...
    assert status != 403, body
    status, body = vault(bao, "GET", "sys/policies/acl/" + istioca, token=token)  # ...and nothing else
    assert status == 403

    # Another service account, another namespace: refused with Vault's reason
    for namespace, account, reason in ((ISTIO_NS, "someone-else", "service account name not authorized"),
                                       ("default", ISTIOD_SA, "namespace not authorized")):
        status, body = vault(bao, "POST", "auth/%s/login" % mount,
                             {"role": "istiod", "jwt": fake.mint_sa_token(namespace, account)})
        assert status == 403 and reason in " ".join(body["errors"]), body

    # The collection's own auth_method kubernetes, through the same TokenReview path
    ansible_jwt = fake.mint_sa_token("automation", "ansible-runner")
    intruder_jwt = fake.mint_sa_token("automation", "intruder")
    created = "k8s-login-" + uuid.uuid4().hex[:6]
    login = {"url": bao.url, "auth_method": "kubernetes", "auth_mount": mount}
    policy = {"name": created, "policy": 'path "pki/cert/ca" { capabilities = ["read"] }'}
    tasks = [
        {"name": "as ansible", "meshpki.vault_ca.vault_policy": dict(policy, role_id="ansible", jwt=ansible_jwt)},
        {"name": "as istiod", "ignore_errors": True,
         "meshpki.vault_ca.vault_policy": dict(policy, role_id="istiod", jwt=istiod_jwt)},
        {"name": "as intruder", "ignore_errors": True,
         "meshpki.vault_ca.vault_policy": dict(policy, role_id="ansible", jwt=intruder_jwt)},
    ]
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": login}, "tasks": tasks}]
    fake.clear_requests()
    run = playbook(play)
    assert run.rc == 0, run
    assert run.task("as ansible")["status"] == "changed"
    assert 'path "pki/cert/ca"' in bao.api("GET", "sys/policies/acl/" + created)["data"]["policy"]
    as_istiod = run.task("as istiod")["result"]["msg"]  # logged in, but istioca cannot read policies
    assert as_istiod.startswith("Failed to read policy 'sys/policies/acl/%s': permission denied" % created)
    as_intruder = run.task("as intruder")["result"]["msg"]
    assert as_intruder.startswith("Failed to log in with kubernetes auth 'auth/%s/login'" % mount)
    assert "service account name not authorized" in as_intruder
    assert [(r["caller"], r["spec"]["token"]) for r in fake.token_reviews] == [
        (reviewer, ansible_jwt), (reviewer, istiod_jwt)]  # the intruder is refused before any TokenReview
    for secret in (ansible_jwt, istiod_jwt, intruder_jwt):
        assert secret not in run.output
