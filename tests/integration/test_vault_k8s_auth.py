"""vault_k8s_auth against a real OpenBao server and the fake Kubernetes API (over TLS, through a real
kubeconfig), through real ansible-playbook runs. Vault's own Kubernetes auth calls the fake's TokenReview
with the JWT the module wrote, which proves what was written without ever reading it back."""

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest
import yaml
from conftest import assert_four_step

from harness import certs
from harness.fake_k8s import FakeKubeApi
from harness.playbook import module_play

ISTIO_NS = "istio-system"
ISTIOD_SA = "istiod-service-account"
KUBE_WRITES = ("POST", "PUT", "PATCH", "DELETE")


class Cluster(object):
    """The fake API server and a kubeconfig whose current context ("decoy") points elsewhere and whose
    context "east" points at the fake: choosing the right context is visible in host, CA and objects."""

    def __init__(self, fake, kubeconfig, decoy_ca):
        self.fake = fake
        self.kubeconfig = kubeconfig
        self.decoy_ca = decoy_ca

    def api(self, method, path, body=None):
        """One request to the fake as its admin; (status, body)."""
        request = urllib.request.Request(self.fake.url + path, method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"Authorization": "Bearer " + self.fake.admin_token,
                                                  "Content-Type": "application/json"})
        context = ssl.create_default_context(cafile=self.fake.ca_file)
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def namespace(self, prefix="vault"):
        name = "%s-%s" % (prefix, uuid.uuid4().hex[:6])
        assert self.api("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
        return name

    def writes(self):
        """Writes the modules sent to the API (TokenReviews are Vault's logins, not writes)."""
        return [(r["method"], r["path"], r["query"], r["status"]) for r in self.fake.requests
                if r["method"] in KUBE_WRITES and not r["path"].endswith("/tokenreviews")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with FakeKubeApi() as fake:
        decoy_ca = certs.make_ca("decoy cluster CA")
        fake.add_context("decoy", server="https://127.0.0.1:9", ca_pem=decoy_ca.cert_pem)
        path = tmp_path_factory.mktemp("kube") / "kubeconfig"
        fake.write_kubeconfig(path, context_name="east")
        config = yaml.safe_load(path.read_text())
        config["current-context"] = "decoy"
        path.write_text(yaml.safe_dump(config))
        yield Cluster(fake, str(path), decoy_ca)


def _mount():
    return "kubernetes-" + uuid.uuid4().hex[:8]


def _defaults(bao):
    return {"url": bao.url, "token": bao.token}


def login(bao, mount, role, jwt):
    """Log in at auth/<mount>/login without a token: (status, body) as Vault answers."""
    request = urllib.request.Request(bao.http_url + "/v1/auth/%s/login" % mount, method="POST",
                                     data=json.dumps({"role": role, "jwt": jwt}).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def make_role(bao, mount, role="istiod", namespace=ISTIO_NS, account=ISTIOD_SA):
    bao.api("POST", "auth/%s/role/%s" % (mount, role), {
        "bound_service_account_names": [account], "bound_service_account_namespaces": [namespace],
        "token_policies": ["default"]})


def same_pem(a, b):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.auth_config import pem_identity
    return pem_identity(a) == pem_identity(b)


def test_kubeconfig_context_and_token_reviewer_four_steps(bao, playbook, cluster):
    """Host and CA come from context "east" (not the current "decoy"); the reviewer objects are created once,
    check mode only dry-runs them, re-runs write nothing to Vault or Kubernetes; Vault then reviews logins with
    the reviewer's token."""
    fake, mount, namespace = cluster.fake, _mount(), cluster.namespace()
    args = {"mount": mount, "kubeconfig": cluster.kubeconfig, "context": "east", "disable_local_ca_jwt": True,
            "token_reviewer": {"namespace": namespace}}
    play = module_play("vault_k8s_auth", args, defaults=_defaults(bao))
    account, secret = "vault-token-reviewer", "vault-token-reviewer-token"
    steps = []
    for check, expected in ((True, True), (False, True), (True, False), (False, False)):
        mark = bao.audit.mark()
        fake.clear_requests()
        run = playbook(play, check=check, diff=True)
        assert run.rc == 0, run
        task = run.task("task")
        assert (task["status"] == "changed") is expected, (check, run)
        exists = fake.get_object("v1", "serviceaccounts", account, namespace) is not None
        steps.append((task["result"], bao.audit.writes(since=mark), cluster.writes(), run, exists))

    binding = "%s-vault-token-reviewer-auth-delegator" % namespace
    objects = ["ServiceAccount %s/%s" % (namespace, account), "ClusterRoleBinding " + binding,
               "Secret %s/%s" % (namespace, secret)]
    creates = [("POST", "/api/v1/namespaces/%s/serviceaccounts" % namespace),
               ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings"),
               ("POST", "/api/v1/namespaces/%s/secrets" % namespace)]

    # 1. check mode: dry runs only, nothing stored anywhere, the plan is in the diff
    result, vault_writes, kube_writes, _run, exists = steps[0]
    assert vault_writes == [] and not exists
    assert kube_writes == [c + ("dryRun=All", 201) for c in creates]
    assert result["diff"]["before"] == {"auth_method": None, "config": {}, "token_reviewer_objects": []}
    assert result["diff"]["after"]["token_reviewer_objects"] == objects
    assert result["diff"]["after"]["config"]["kubernetes_host"] == fake.url
    assert result["token_reviewer"]["changes"][0] == "created ServiceAccount %s/%s" % (namespace, account)

    # 2. apply: the three objects once, the mount and the config with the Secret's token
    result, vault_writes, kube_writes, run, exists = steps[1]
    assert vault_writes == [("update", "sys/auth/" + mount), ("update", "auth/%s/config" % mount)] and exists
    assert kube_writes == [c + ("", 201) for c in creates]
    config = result["config"]
    assert config["kubernetes_host"] == fake.url  # context "east", not the decoy's https://127.0.0.1:9
    assert same_pem(config["kubernetes_ca_cert"], fake.ca_pem)
    assert not same_pem(config["kubernetes_ca_cert"], cluster.decoy_ca.cert_pem)
    assert config["token_reviewer_jwt_set"] is True and config["disable_local_ca_jwt"] is True
    assert result["token_reviewer_jwt_written"] is True
    assert result["diff"]["after"]["config"]["token_reviewer_jwt"] == "(new value written, not shown)"
    stored = fake.get_object("v1", "secrets", secret, namespace)
    assert stored["type"] == "kubernetes.io/service-account-token"
    role_ref = fake.get_object("rbac.authorization.k8s.io/v1", "clusterrolebindings", binding)["roleRef"]
    assert role_ref["name"] == "system:auth-delegator"
    reviewer_jwt = base64.b64decode(stored["data"]["token"]).decode()
    assert reviewer_jwt not in run.output

    # 3./4. re-runs: no write to Vault, nothing but reads on Kubernetes
    for result, vault_writes, kube_writes, _run, _exists in steps[2:]:
        assert vault_writes == [] and kube_writes == []
        assert result["token_reviewer"]["changes"] == [] and result["token_reviewer_jwt_written"] is False
        assert result["diff"]["before"] == result["diff"]["after"]

    # Vault reviews a login with the reviewer's token, over TLS with the CA from the kubeconfig
    make_role(bao, mount)
    istiod_jwt = fake.mint_sa_token(ISTIO_NS, ISTIOD_SA)
    status, body = login(bao, mount, "istiod", istiod_jwt)
    assert status == 200, body
    review = fake.token_reviews[-1]
    assert review["caller"] == "system:serviceaccount:%s:%s" % (namespace, account)
    assert review["spec"]["token"] == istiod_jwt and review["status"]["authenticated"] is True


def test_reviewer_jwt_written_on_create_on_change_or_always_and_never_shown(bao, playbook, cluster, tmp_path):
    """Vault never returns the JWT: the default writes it only with the config; ``always`` rewrites it.
    Which JWT Vault holds is read from the caller of the TokenReviews its logins make."""
    fake, mount = cluster.fake, _mount()
    jwt_one, jwt_two = fake.add_token("reviewer-one"), fake.add_token("reviewer-two")
    for user in ("reviewer-one", "reviewer-two"):
        fake.allow(user, "create", "authentication.k8s.io", "tokenreviews")
    istiod_jwt = fake.mint_sa_token(ISTIO_NS, ISTIOD_SA)
    ca_file = tmp_path / "kube-ca.pem"
    ca_file.write_text(fake.ca_pem)
    lines = fake.ca_pem.strip().splitlines()
    rewrapped = "\r\n".join([lines[0]] + ["".join(lines[1:-1])] + [lines[-1]]) + "\r\n\r\n"
    base = {"mount": mount, "kubernetes_host": fake.url, "disable_local_ca_jwt": True}
    login_task = {"ansible.builtin.uri": {
        "url": "%s/v1/auth/%s/login" % (bao.url, mount), "method": "POST", "body_format": "json",
        "body": {"role": "istiod", "jwt": istiod_jwt}}, "no_log": True}
    tasks = [
        {"name": "create", "meshpki.vault_ca.vault_k8s_auth": dict(base, kubernetes_ca_cert=str(ca_file),
                                                                   token_reviewer_jwt=jwt_one)},
        {"name": "role", "meshpki.vault_ca.vault_k8s_role": {
            "mount": mount, "bound_service_account_names": [ISTIOD_SA],
            "bound_service_account_namespaces": [ISTIO_NS]}},
        dict(login_task, name="login 1"),
        {"name": "same meaning", "meshpki.vault_ca.vault_k8s_auth": dict(
            base, kubernetes_host=fake.url + "/", kubernetes_ca_cert=rewrapped, token_reviewer_jwt=jwt_one)},
        {"name": "other jwt on_create", "meshpki.vault_ca.vault_k8s_auth": dict(
            base, kubernetes_ca_cert=str(ca_file), token_reviewer_jwt=jwt_two)},
        dict(login_task, name="login 2"),
        {"name": "other jwt always", "meshpki.vault_ca.vault_k8s_auth": dict(
            base, kubernetes_ca_cert=str(ca_file), token_reviewer_jwt=jwt_two, update_token_reviewer_jwt="always")},
        dict(login_task, name="login 3"),
        {"name": "change without jwt", "ignore_errors": True, "meshpki.vault_ca.vault_k8s_auth": dict(
            base, kubernetes_host="https://127.0.0.1:1", kubernetes_ca_cert=str(ca_file))},
        {"name": "remove jwt", "meshpki.vault_ca.vault_k8s_auth": dict(
            base, kubernetes_ca_cert=str(ca_file), token_reviewer_jwt="")},
        {"name": "removed", "meshpki.vault_ca.vault_k8s_auth": dict(base, kubernetes_ca_cert=str(ca_file))},
    ]
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)}, "tasks": tasks}]
    mark = bao.audit.mark()
    fake.clear_requests()
    run = playbook(play, diff=True, verbosity=3)
    assert run.rc == 0, run
    statuses = dict((name, run.task(name)["status"]) for name in (
        "create", "same meaning", "other jwt on_create", "other jwt always", "change without jwt", "remove jwt",
        "removed"))
    assert statuses == {"create": "changed", "same meaning": "ok", "other jwt on_create": "ok",
                        "other jwt always": "changed", "change without jwt": "failed", "remove jwt": "changed",
                        "removed": "ok"}
    config_path = "auth/%s/config" % mount
    assert bao.audit.writes(since=mark) == [
        ("update", "sys/auth/" + mount), ("update", config_path), ("create", "auth/%s/role/istiod" % mount),
        ("update", config_path), ("update", config_path)]
    assert [r["caller"] for r in fake.token_reviews] == ["reviewer-one", "reviewer-one", "reviewer-two"]

    always = run.task("other jwt always")["result"]
    assert always["changed_fields"] == [] and always["token_reviewer_jwt_written"] is True
    assert always["diff"]["after"]["config"]["token_reviewer_jwt"] == "(new value written, not shown)"
    refused = run.task("change without jwt")["result"]["msg"]
    assert "The config has a token_reviewer_jwt, which Vault never returns" in refused
    assert "writing the changed fields (kubernetes_host) without one would remove it" in refused
    assert run.task("remove jwt")["result"]["config"]["token_reviewer_jwt_set"] is False
    for secret in (jwt_one, jwt_two, istiod_jwt):
        assert secret not in run.output


def test_present_then_absent_four_steps(bao, playbook, cluster):
    """Explicit host, CA text and pem_keys; then state=absent disables the mount (and its roles) once."""
    fake, mount = cluster.fake, _mount()
    present = module_play("vault_k8s_auth", {
        "mount": mount, "kubernetes_host": fake.url, "kubernetes_ca_cert": fake.ca_pem,
        "pem_keys": [fake.sa_public_key_pem], "token_reviewer_jwt": fake.admin_token,
        "description": "east cluster"}, defaults=_defaults(bao))
    mark = bao.audit.mark()
    runs = assert_four_step(playbook, present)
    assert bao.audit.writes(since=mark) == [("update", "sys/auth/" + mount), ("update", "auth/%s/config" % mount)]
    config = bao.api("GET", "auth/%s/config" % mount)["data"]
    assert same_pem(config["pem_keys"][0], fake.sa_public_key_pem) and config["token_reviewer_jwt_set"] is True
    assert bao.api("GET", "sys/auth")["data"][mount + "/"]["description"] == "east cluster"
    assert runs[1].task("task")["result"]["changed_fields"] == ["kubernetes_ca_cert", "kubernetes_host", "pem_keys"]
    # pem_keys verify the signature locally: a login still works
    make_role(bao, mount)
    assert login(bao, mount, "istiod", fake.mint_sa_token(ISTIO_NS, ISTIOD_SA))[0] == 200

    absent = module_play("vault_k8s_auth", {"mount": mount, "state": "absent"}, defaults=_defaults(bao))
    mark = bao.audit.mark()
    runs = assert_four_step(playbook, absent)
    assert bao.audit.writes(since=mark) == [("delete", "sys/auth/" + mount)]
    assert mount + "/" not in bao.api("GET", "sys/auth")["data"]
    before = runs[0].task("task")["result"]["diff"]["before"]
    assert before["auth_method"] == "kubernetes" and before["config"]["kubernetes_host"] == fake.url
    assert runs[0].task("task")["result"]["diff"]["after"] == {}


def test_recreated_service_account_gets_a_new_token_into_vault(bao, playbook, cluster):
    """A reviewer ServiceAccount deleted and created again invalidates the Secret's token: the module
    replaces the Secret and writes the new token although no config field changed."""
    fake, mount, namespace = cluster.fake, _mount(), cluster.namespace()
    play = module_play("vault_k8s_auth", {
        "mount": mount, "kubeconfig": cluster.kubeconfig, "context": "east",
        "token_reviewer": {"namespace": namespace, "service_account": "reviewer", "secret_name": "reviewer-jwt",
                           "cluster_role_binding": "reviewer-" + namespace}}, defaults=_defaults(bao))
    assert playbook(play).rc == 0
    make_role(bao, mount)
    istiod_jwt = fake.mint_sa_token(ISTIO_NS, ISTIOD_SA)
    assert login(bao, mount, "istiod", istiod_jwt)[0] == 200
    assert cluster.api("DELETE", "/api/v1/namespaces/%s/serviceaccounts/reviewer" % namespace)[0] == 200
    status, body = login(bao, mount, "istiod", istiod_jwt)  # Vault's reviewer token is dead now
    assert status != 200 and body["errors"], body

    run = playbook(play)
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["changed"] is True and result["changed_fields"] == []
    assert result["token_reviewer"]["changes"] == [
        "created ServiceAccount %s/reviewer" % namespace,
        "deleted Secret %s/reviewer-jwt (its token belonged to an earlier ServiceAccount)" % namespace,
        "created Secret %s/reviewer-jwt" % namespace]
    assert result["token_reviewer_jwt_written"] is True
    assert login(bao, mount, "istiod", istiod_jwt)[0] == 200
    assert fake.token_reviews[-1]["caller"] == "system:serviceaccount:%s:reviewer" % namespace


def test_bad_input_is_refused_and_nothing_is_written(bao, playbook, cluster, tmp_path):
    fake, mount = cluster.fake, _mount()
    bao.api("POST", "sys/auth/" + mount, {"type": "kubernetes"})
    approle = "approle-" + uuid.uuid4().hex[:6]
    bao.api("POST", "sys/auth/" + approle, {"type": "approle"})
    not_pem = tmp_path / "not-pem.txt"
    not_pem.write_text("this is not a certificate\n")
    east = {"mount": mount, "kubeconfig": cluster.kubeconfig, "context": "east"}
    cases = [
        ({"mount": mount}, "kubernetes_host is not set and no kubeconfig cluster entry gives it: Cannot read the "
                           "kubeconfig '%s/.kube/config'" % tmp_path),
        ({"mount": mount, "kubernetes_host": fake.url, "disable_local_ca_jwt": True},
         "disable_local_ca_jwt is true but there is no CA certificate"),
        ({"mount": mount, "kubeconfig": str(tmp_path / "missing")},
         "Cannot read the kubeconfig '%s/missing' (No such file or directory)" % tmp_path),
        (dict(east, context="west"),
         "Unknown context 'west' in the kubeconfig '%s' (contexts: decoy, east)" % cluster.kubeconfig),
        ({"mount": mount, "kubernetes_host": fake.url, "kubernetes_ca_cert": "hello world"},
         "kubernetes_ca_cert is neither PEM text (-----BEGIN CERTIFICATE-----) nor the path of a readable file"),
        ({"mount": mount, "kubernetes_host": fake.url, "kubernetes_ca_cert": str(not_pem)},
         "kubernetes_ca_cert (file '%s') is not PEM: no -----BEGIN CERTIFICATE----- block found." % not_pem),
        ({"mount": mount, "kubernetes_host": fake.url, "pem_keys": [cluster.decoy_ca.key_pem]},
         "pem_keys[0] contains a private key; pass only certificates."),
        (dict(east, use_annotations_as_alias_metadata=True),
         "The server does not know use_annotations_as_alias_metadata at 'auth/%s/config' and would ignore it"
         % mount),
        (dict(east, token_reviewer_jwt="jwt-" + uuid.uuid4().hex, token_reviewer={}),
         "parameters are mutually exclusive: token_reviewer_jwt|token_reviewer"),
        (dict(east, token_reviewer={"namespace": "no-such-namespace"}),
         'Failed to create ServiceAccount no-such-namespace/vault-token-reviewer: not found (namespaces '
         '"no-such-namespace" not found). Create the namespace first'),
        ({"mount": approle, "kubernetes_host": fake.url, "kubernetes_ca_cert": fake.ca_pem},
         "The auth mount '%s' is a approle auth method, but kubernetes is needed there" % approle),
        ({"mount": approle, "state": "absent"},
         "The auth mount '%s' is a approle auth method, not kubernetes; refusing to disable it" % approle),
    ]
    tasks = [{"name": "case %d" % i, "ignore_errors": True, "meshpki.vault_ca.vault_k8s_auth": args}
             for i, (args, _message) in enumerate(cases)]
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)}, "tasks": tasks}]
    mark = bao.audit.mark()
    fake.clear_requests()
    run = playbook(play, env={"HOME": str(tmp_path), "KUBECONFIG": "", "K8S_AUTH_KUBECONFIG": ""})
    assert run.rc == 0, run
    for i, (_args, message) in enumerate(cases):
        task = run.task("case %d" % i)
        assert task["status"] == "failed", (i, task)
        assert message in task["result"]["msg"], (i, task["result"]["msg"])
    assert bao.audit.writes(since=mark) == []
    assert _config_or_none(bao, mount) is None
    assert [w[3] for w in cluster.writes()] == [404]  # the refused create in a missing namespace, nothing stored


def _config_or_none(bao, mount):
    try:
        return bao.api("GET", "auth/%s/config" % mount).get("data")
    except urllib.error.HTTPError as error:
        assert error.code == 404
        return None


@pytest.mark.parametrize("module", ["vault_k8s_auth", "vault_k8s_role"])
def test_ansible_doc_renders(module):
    import os
    import subprocess
    import sys

    from harness.playbook import REPO
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "meshpki.vault_ca." + module], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["meshpki.vault_ca." + module]
    assert doc["doc"]["attributes"]["action_group"]["membership"] == ["meshpki.vault_ca.vault"]
    assert {"url", "token", "auth_method", "kubernetes_auth_mount", "state"} <= set(doc["doc"]["options"])
    assert doc["doc"]["options"]["kubernetes_auth_mount"]["aliases"] == ["mount"]
    if module == "vault_k8s_auth":
        assert {"kubeconfig", "context", "token_reviewer", "update_token_reviewer_jwt"} <= set(doc["doc"]["options"])
        assert "K8S_AUTH_KUBECONFIG" in " ".join(doc["doc"]["options"]["kubeconfig"]["description"])
        assert "kubeconfig" in doc["examples"] and "token_reviewer" in doc["examples"]
    else:
        assert doc["doc"]["options"]["name"]["default"] == "istiod"
        assert "istiod-service-account" in doc["examples"] and "period: 600s" in doc["examples"]
