"""The fake Kubernetes API server, seen through real clients: the official ``kubernetes`` Python
client over TLS with a kubeconfig it wrote, raw HTTPS, the process mode, and OpenBao's own
Kubernetes auth method doing TokenReviews against it."""

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request

import hvac
import pytest
import yaml
from kubernetes import client, config, dynamic
from kubernetes.client.exceptions import ApiException

from harness.fake_k8s import API_AUDIENCE, FakeKubeApi

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CP = ("install.tetrate.io", "v1alpha1")
NS = "istio-system"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def fake():
    with FakeKubeApi() as api:
        api.mint_sa_token(NS, "istiod-service-account")  # creates the namespace and the ServiceAccount
        yield api


def connect(api, tmp_path, context="fake", token=None):
    path = api.write_kubeconfig(tmp_path / f"kubeconfig-{context}", context_name=context, user_token=token)
    return config.new_client_from_config(config_file=path, context=context)


@pytest.fixture
def api_client(fake, tmp_path):
    return connect(fake, tmp_path)


@pytest.fixture
def core(api_client):
    return client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client):
    return client.CustomObjectsApi(api_client)


def status_of(excinfo):
    """The Status body of a failed client call."""
    return json.loads(excinfo.value.body)


def raw(api, method, path, token=None, body=None):
    """An HTTPS request to ``api`` (anything with ``url`` and ``ca_file``) without the kubernetes client."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api.url + path, data=data, method=method, headers=headers)
    context = ssl.create_default_context(cafile=api.ca_file)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def control_plane(name="cp", **spec):
    return {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
            "metadata": {"name": name}, "spec": spec}


def token_secret(name, service_account):
    return {"metadata": {"name": name, "annotations": {"kubernetes.io/service-account.name": service_account}},
            "type": "kubernetes.io/service-account-token"}


def auth_delegator_binding(name, service_account, namespace=NS):
    role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"}
    return {"metadata": {"name": name}, "roleRef": role,
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]}


def create_cp(custom, body):
    return custom.create_namespaced_custom_object(*CP, NS, "controlplanes", body)


def review(api_client, token, audiences=None):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token, "audiences": audiences}}
    return client.AuthenticationV1Api(api_client).create_token_review(body).status


def resource_version(core):
    return int(core.list_namespace().metadata.resource_version)


def secret_token(core, namespace, name):
    return base64.b64decode(core.read_namespaced_secret(name, namespace).data["token"]).decode()


def jwt_claims(token):
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------- discovery and kubeconfig


def test_discovery_serves_the_official_and_the_dynamic_client(api_client, tmp_path):
    core_resources = {r.name: r for r in client.CoreV1Api(api_client).get_api_resources().resources}
    groups = {g.name: g for g in client.ApisApi(api_client).get_api_versions().groups}
    dyn = dynamic.DynamicClient(api_client, cache_file=str(tmp_path / "discovery.json"))
    control_planes = dyn.resources.get(api_version="install.tetrate.io/v1alpha1", kind="ControlPlane")

    assert client.VersionApi(api_client).get_code().major == "1"
    assert core_resources["secrets"].namespaced and not core_resources["namespaces"].namespaced
    assert core_resources["serviceaccounts/token"].kind == "TokenRequest"
    assert groups["install.istio.io"].preferred_version.group_version == "install.istio.io/v1alpha1"
    assert "authentication.k8s.io" in groups and "rbac.authorization.k8s.io" in groups
    assert control_planes.namespaced and set(control_planes.verbs) >= {"get", "list", "create", "patch"}
    assert dyn.resources.get(api_version="v1", kind="Secret").get(namespace=NS).items == []


def test_kubeconfig_contexts_select_user_and_cluster(fake, tmp_path):
    with FakeKubeApi() as other:
        fake.add_context("elsewhere", token=other.admin_token, server=other.url, ca_pem=other.ca_pem)
        fake.add_context("stranger", token="not-a-token")
        path = fake.write_kubeconfig(tmp_path / "kubeconfig")
        contexts, current = config.list_kube_config_contexts(path)
        elsewhere = client.CoreV1Api(config.new_client_from_config(config_file=path, context="elsewhere"))

        assert current["name"] == "fake"
        assert {c["name"] for c in contexts} == {"fake", "elsewhere", "stranger"}
        assert NS not in [n.metadata.name for n in elsewhere.list_namespace().items]
        assert [r["path"] for r in other.requests] == ["/api/v1/namespaces"]
    with pytest.raises(ApiException) as excinfo:
        client.CoreV1Api(config.new_client_from_config(config_file=path, context="stranger")).list_namespace()
    assert excinfo.value.status == 401
    with pytest.raises(config.ConfigException):
        config.new_client_from_config(config_file=path, context="nowhere")


# --------------------------------------------------------------------------- core objects


def test_service_account_and_token_secret_filled_by_the_token_controller(fake, core, api_client):
    account = core.create_namespaced_service_account(NS, {"metadata": {"name": "vault-reviewer"}})
    created = core.create_namespaced_secret(NS, token_secret("vault-reviewer-token", "vault-reviewer"))
    secret = core.read_namespaced_secret("vault-reviewer-token", NS)
    token = secret_token(core, NS, "vault-reviewer-token")
    result = review(api_client, token)

    assert created.data is None  # filled by a later update, as on a real cluster
    assert int(secret.metadata.resource_version) > int(created.metadata.resource_version)
    assert secret.metadata.annotations["kubernetes.io/service-account.uid"] == account.metadata.uid
    assert base64.b64decode(secret.data["ca.crt"]).decode() == fake.ca_pem
    assert base64.b64decode(secret.data["namespace"]).decode() == NS
    assert jwt_claims(token)["iss"] == "kubernetes/serviceaccount"
    assert result.authenticated and result.user.uid == account.metadata.uid
    assert result.user.username == f"system:serviceaccount:{NS}:vault-reviewer"
    names = [sa.metadata.name for sa in core.list_namespaced_service_account(NS).items]
    assert names == ["default", "istiod-service-account", "vault-reviewer"]


def test_secret_string_data_is_stored_as_data(core):
    core.create_namespaced_secret(NS, {"metadata": {"name": "plain"}, "stringData": {"key": "value"}})
    secret = core.read_namespaced_secret("plain", NS)

    assert secret.type == "Opaque" and secret.string_data is None
    assert base64.b64decode(secret.data["key"]) == b"value"


def test_cluster_role_binding_lifecycle(api_client):
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role_binding(auth_delegator_binding("reviewer-delegator", "vault-reviewer"))

    assert rbac.read_cluster_role_binding("reviewer-delegator").role_ref.name == "system:auth-delegator"
    assert [b.metadata.name for b in rbac.list_cluster_role_binding().items] == ["reviewer-delegator"]
    deleted = rbac.delete_cluster_role_binding("reviewer-delegator")  # a Status, not the object, for built-ins
    assert (deleted["status"], deleted["details"]["name"]) == ("Success", "reviewer-delegator")
    with pytest.raises(ApiException) as excinfo:
        rbac.read_cluster_role_binding("reviewer-delegator")
    assert status_of(excinfo)["message"] == (
        'clusterrolebindings.rbac.authorization.k8s.io "reviewer-delegator" not found')


def test_namespace_must_exist_and_deleting_it_deletes_its_objects(core):
    with pytest.raises(ApiException) as excinfo:
        core.create_namespaced_service_account("nowhere", {"metadata": {"name": "x"}})
    assert (excinfo.value.status, status_of(excinfo)["message"]) == (404, 'namespaces "nowhere" not found')

    core.delete_namespace(NS)
    assert all(sa.metadata.namespace != NS for sa in core.list_service_account_for_all_namespaces().items)


# --------------------------------------------------------------------------- custom objects and patches


def test_custom_object_merge_patch_deletes_with_null_and_replaces_lists(fake, custom):
    created = create_cp(custom, control_plane(hub="docker.io", tags=["a", "b"], components={"istiod": {"replicas": 1}}))
    patched = custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp",
                                                    {"spec": {"hub": None, "tags": ["c"]}})
    again = custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"spec": {"tags": ["c"]}})

    assert created["metadata"]["generation"] == 1 and created["metadata"]["uid"]
    assert patched["spec"] == {"tags": ["c"], "components": {"istiod": {"replicas": 1}}}
    assert patched["metadata"]["generation"] == 2
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert again["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]  # no-op: no write
    assert fake.requests[-1]["content_type"] == "application/merge-patch+json"  # the client's choice for dicts


def test_json_patch_needs_an_explicit_content_type(custom):
    create_cp(custom, control_plane(hub="docker.io", tags=["a"]))
    operations = [{"op": "test", "path": "/spec/hub", "value": "docker.io"},
                  {"op": "replace", "path": "/spec/hub", "value": "gcr.io"},
                  {"op": "add", "path": "/spec/tags/-", "value": "b"},
                  {"op": "remove", "path": "/spec/tags/0"}]
    patched = custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", operations,
                                                    _content_type="application/json-patch+json")
    assert patched["spec"] == {"hub": "gcr.io", "tags": ["b"]}

    with pytest.raises(ApiException) as failed_test:
        custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", operations[:1],
                                              _content_type="application/json-patch+json")
    assert failed_test.value.status == 422
    with pytest.raises(ApiException) as as_merge_patch:  # a list sent with the client's default content type
        custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", operations)
    assert as_merge_patch.value.status == 400


def test_strategic_merge_patch_is_refused_on_custom_objects_only(core, custom):
    create_cp(custom, control_plane())
    with pytest.raises(ApiException) as excinfo:
        custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"spec": {"x": 1}},
                                              _content_type="application/strategic-merge-patch+json")
    patched = core.patch_namespaced_service_account("istiod-service-account", NS, {"metadata": {"labels": {"a": "b"}}})

    assert (excinfo.value.status, status_of(excinfo)["reason"]) == (415, "UnsupportedMediaType")
    assert patched.metadata.labels == {"a": "b"}


def test_missing_object_and_missing_resource_type_are_different_404s(fake, custom):
    with pytest.raises(ApiException) as missing_object:
        custom.get_namespaced_custom_object(*CP, NS, "controlplanes", "absent")
    fake.uninstall_crd("install.tetrate.io", "controlplanes")
    with pytest.raises(ApiException) as missing_type:
        custom.get_namespaced_custom_object(*CP, NS, "controlplanes", "absent")

    assert status_of(missing_object) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "code": 404, "reason": "NotFound",
        "message": 'controlplanes.install.tetrate.io "absent" not found',
        "details": {"name": "absent", "group": "install.tetrate.io", "kind": "controlplanes"}}
    assert status_of(missing_type)["message"] == "the server could not find the requested resource"
    assert status_of(missing_type)["reason"] == "NotFound"


def test_stale_resource_version_is_a_conflict(custom):
    created = create_cp(custom, control_plane(hub="a"))
    custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"spec": {"hub": "b"}})
    stale = dict(created, spec={"hub": "c"})
    with pytest.raises(ApiException) as on_replace:
        custom.replace_namespaced_custom_object(*CP, NS, "controlplanes", "cp", stale)
    with pytest.raises(ApiException) as on_patch:
        custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"metadata": created["metadata"]})
    unconditional = control_plane(hub="d")
    with pytest.raises(ApiException) as without_version:
        custom.replace_namespaced_custom_object(*CP, NS, "controlplanes", "cp", unconditional)

    assert (on_replace.value.status, status_of(on_replace)["reason"]) == (409, "Conflict")
    assert status_of(on_replace)["message"] == (
        'Operation cannot be fulfilled on controlplanes.install.tetrate.io "cp": the object has been modified; '
        "please apply your changes to the latest version and try again")
    assert on_patch.value.status == 409
    assert without_version.value.status == 422  # custom objects need a resourceVersion on PUT


def test_replace_with_the_current_resource_version_succeeds(custom):
    created = create_cp(custom, control_plane(hub="a"))
    replaced = custom.replace_namespaced_custom_object(*CP, NS, "controlplanes", "cp", dict(created, spec={"hub": "b"}))

    assert replaced["spec"] == {"hub": "b"} and replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]


def test_create_twice_is_already_exists(custom):
    create_cp(custom, control_plane())
    with pytest.raises(ApiException) as excinfo:
        create_cp(custom, control_plane())
    assert (excinfo.value.status, status_of(excinfo)["reason"]) == (409, "AlreadyExists")
    assert status_of(excinfo)["message"] == 'controlplanes.install.tetrate.io "cp" already exists'


@pytest.mark.parametrize("body, code, message", [
    ({"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane", "metadata": {}}, 422,
     'ControlPlane.install.tetrate.io "" is invalid: metadata.name: Required value: name or generateName is required'),
    (control_plane("Bad_Name"), 422, 'ControlPlane.install.tetrate.io "Bad_Name" is invalid: metadata.name: Invalid'),
    (dict(control_plane(), kind="IstioOperator"), 400, 'IstioOperator in version "v1alpha1" cannot be handled'),
    (dict(control_plane(), apiVersion="install.istio.io/v1alpha1"), 400,
     "the API version in the data (install.istio.io/v1alpha1) does not match the expected API version"),
])
def test_invalid_bodies(custom, body, code, message):
    with pytest.raises(ApiException) as excinfo:
        create_cp(custom, body)
    assert excinfo.value.status == code
    assert status_of(excinfo)["message"].startswith(message)


def test_name_in_url_must_match_the_body_on_replace(custom):
    created = create_cp(custom, control_plane())
    with pytest.raises(ApiException) as excinfo:
        custom.replace_namespaced_custom_object(*CP, NS, "controlplanes", "cp",
                                                dict(created, metadata=dict(created["metadata"], name="other")))
    assert excinfo.value.status == 400
    assert status_of(excinfo)["message"] == "the name of the object (other) does not match the name on the URL (cp)"


def test_generate_name(core):
    created = core.create_namespaced_secret(NS, {"metadata": {"generateName": "token-"}})
    assert created.metadata.name.startswith("token-") and len(created.metadata.name) == len("token-") + 5


def test_dry_run_validates_answers_and_stores_nothing(fake, core, custom):
    created = create_cp(custom, control_plane(hub="a"))
    before = resource_version(core)
    dry_created = custom.create_namespaced_custom_object(*CP, NS, "controlplanes", control_plane("dry"), dry_run="All")
    dry_patched = custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"spec": {"hub": "b"}},
                                                        dry_run="All")
    dry_replaced = custom.replace_namespaced_custom_object(*CP, NS, "controlplanes", "cp",
                                                           dict(created, spec={"hub": "c"}), dry_run="All")
    custom.delete_namespaced_custom_object(*CP, NS, "controlplanes", "cp", dry_run="All")
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(*CP, NS, "controlplanes", control_plane("Bad"), dry_run="All")

    assert dry_created["metadata"]["name"] == "dry" and "resourceVersion" not in dry_created["metadata"]
    assert dry_patched["spec"] == {"hub": "b"} and dry_replaced["metadata"]["generation"] == 2
    assert invalid.value.status == 422
    assert resource_version(core) == before
    assert fake.get_object("install.tetrate.io/v1alpha1", "controlplanes", "cp", NS) == created
    assert fake.get_object("install.tetrate.io/v1alpha1", "controlplanes", "dry", NS) is None


def test_delete_returns_the_object_then_404(custom):
    create_cp(custom, control_plane())
    deleted = custom.delete_namespaced_custom_object(*CP, NS, "controlplanes", "cp")
    with pytest.raises(ApiException) as excinfo:
        custom.delete_namespaced_custom_object(*CP, NS, "controlplanes", "cp")
    assert deleted["metadata"]["name"] == "cp" and excinfo.value.status == 404


# --------------------------------------------------------------------------- authentication, authorization, faults


def test_requests_need_a_valid_bearer_token(fake, tmp_path):
    with pytest.raises(ApiException) as bad_token:
        client.CoreV1Api(connect(fake, tmp_path, token="nope")).list_namespace()
    code, body = raw(fake, "GET", "/version")

    assert bad_token.value.status == 401 and status_of(bad_token)["reason"] == "Unauthorized"
    assert (code, body["message"]) == (401, "Unauthorized")


def test_deny_rule_is_forbidden_with_the_real_message(fake, core):
    fake.deny(fake.admin_token, "get", "", "secrets")
    with pytest.raises(ApiException) as excinfo:
        core.read_namespaced_secret("anything", NS)
    assert (excinfo.value.status, status_of(excinfo)["reason"]) == (403, "Forbidden")
    assert status_of(excinfo)["message"] == (
        'secrets "anything" is forbidden: User "kubernetes-admin" cannot get resource "secrets" '
        f'in API group "" in the namespace "{NS}"')
    assert core.list_namespaced_secret(NS).items == []  # list is still allowed


def test_service_account_allowed_only_what_it_was_given(fake, tmp_path):
    token = fake.mint_sa_token(NS, "installer")
    custom = client.CustomObjectsApi(connect(fake, tmp_path, token=token))
    with pytest.raises(ApiException) as excinfo:
        custom.list_namespaced_custom_object(*CP, NS, "controlplanes")
    fake.allow(f"system:serviceaccount:{NS}:installer", "list", "install.tetrate.io", "controlplanes")

    assert status_of(excinfo)["message"] == (
        f'controlplanes.install.tetrate.io is forbidden: User "system:serviceaccount:{NS}:installer" cannot list '
        f'resource "controlplanes" in API group "install.tetrate.io" in the namespace "{NS}"')
    assert custom.list_namespaced_custom_object(*CP, NS, "controlplanes")["items"] == []


def test_injected_conflict_once_then_success(fake, custom):
    create_cp(custom, control_plane())
    fake.inject("PATCH", r"/controlplanes/cp$", 409, message="injected conflict")
    with pytest.raises(ApiException) as excinfo:
        custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"spec": {"a": 1}})
    patched = custom.patch_namespaced_custom_object(*CP, NS, "controlplanes", "cp", {"spec": {"a": 1}})

    assert (excinfo.value.status, status_of(excinfo)["reason"], status_of(excinfo)["message"]) == (
        409, "Conflict", "injected conflict")
    assert patched["spec"] == {"a": 1}
    assert [r["status"] for r in fake.requests if r["method"] == "PATCH"] == [409, 200]
    fake.clear_requests()
    assert fake.requests == []


# --------------------------------------------------------------------------- TokenReview and TokenRequest


def test_token_review_outcomes(fake, api_client):
    token = fake.mint_sa_token(NS, "istiod-service-account", audiences=["istio-ca", API_AUDIENCE])
    revoked = fake.mint_sa_token(NS, "istiod-service-account")
    fake.revoke(revoked)
    uid = fake.get_object("v1", "serviceaccounts", "istiod-service-account", NS)["metadata"]["uid"]

    valid = review(api_client, token, ["istio-ca"])
    assert valid.authenticated and valid.audiences == ["istio-ca"]
    assert valid.user.uid == uid and valid.user.uid == jwt_claims(token)["kubernetes.io"]["serviceaccount"]["uid"]
    assert valid.user.groups == ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]
    assert review(api_client, token).audiences == [API_AUDIENCE]  # no audiences asked: the API's
    for bad, audiences, error in [
        (token, ["vault"], 'token audiences ["istio-ca" "' + API_AUDIENCE + '"] is invalid for the target audiences'),
        ("not.a.jwt", None, "invalid"),
        (revoked, None, "invalidated"),
        (fake.mint_sa_token(NS, "istiod-service-account", ttl=-1), None, "expired"),
    ]:
        status = review(api_client, bad, audiences)
        assert not status.authenticated and error in status.error, (error, status.error)


def test_token_of_a_deleted_service_account_stops_authenticating(fake, core, api_client):
    token = fake.mint_sa_token(NS, "short-lived")
    core.delete_namespaced_service_account("short-lived", NS)
    status = review(api_client, token)
    assert not status.authenticated and 'serviceaccounts "short-lived" not found' in status.error


def test_reviewer_needs_auth_delegator(fake, tmp_path):
    reviewer = fake.mint_sa_token(NS, "vault-reviewer")
    reviewer_client = connect(fake, tmp_path, token=reviewer)
    subject = fake.mint_sa_token(NS, "istiod-service-account")
    with pytest.raises(ApiException) as excinfo:
        review(reviewer_client, subject)
    client.RbacAuthorizationV1Api(connect(fake, tmp_path)).create_cluster_role_binding(
        auth_delegator_binding("vault-reviewer-delegator", "vault-reviewer"))

    assert excinfo.value.status == 403
    assert status_of(excinfo)["message"] == (
        f'tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:{NS}:vault-reviewer" '
        'cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope')
    assert review(reviewer_client, subject).authenticated
    assert fake.token_reviews[-1]["caller"] == f"system:serviceaccount:{NS}:vault-reviewer"
    assert fake.token_reviews[-1]["spec"]["token"] == subject


def test_token_request_subresource(core, api_client):
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": ["vault"], "expirationSeconds": 600}}
    token = core.create_namespaced_service_account_token("istiod-service-account", NS, body).status.token
    claims = jwt_claims(token)

    assert claims["aud"] == ["vault"] and claims["exp"] - claims["iat"] == 600
    assert claims["sub"] == f"system:serviceaccount:{NS}:istiod-service-account"
    assert review(api_client, token, ["vault"]).authenticated


# --------------------------------------------------------------------------- persistence and process mode


def test_state_survives_a_restart(tmp_path):
    state = tmp_path / "state"
    with FakeKubeApi(state_dir=state) as first:
        token = first.mint_sa_token(NS, "istiod-service-account")
        kubeconfig = first.write_kubeconfig(tmp_path / "kubeconfig")
        custom = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))
        create_cp(custom, control_plane(hub="a"))
        url = first.url
    with FakeKubeApi(state_dir=state) as second:
        api_client = config.new_client_from_config(config_file=kubeconfig)  # the old kubeconfig still works
        stored = client.CustomObjectsApi(api_client).get_namespaced_custom_object(*CP, NS, "controlplanes", "cp")
        recreated = client.CoreV1Api(api_client).create_namespaced_secret(NS, {"metadata": {"name": "after"}})

        assert second.url == url
        assert stored["spec"] == {"hub": "a"}
        assert int(recreated.metadata.resource_version) > int(stored["metadata"]["resourceVersion"])
        assert review(api_client, token).authenticated


def test_process_mode(tmp_path):
    state = tmp_path / "state"
    env = dict(os.environ, PYTHONPATH=TESTS_DIR)
    command = [sys.executable, "-m", "harness.fake_k8s", "--state-dir", str(state), "--port", str(free_port())]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        info = json.loads(process.stdout.readline())
        ready = json.loads((state / "ready").read_text())
        minted = subprocess.run([sys.executable, "-m", "harness.fake_k8s", "mint", "--state-dir", str(state),
                                 "--namespace", NS, "--name", "istiod-service-account"],
                                env=env, capture_output=True, text=True, check=True).stdout.strip()
        api_client = config.new_client_from_config(config_file=info["kubeconfig"], context="fake")
        admin = kubeconfig_token(info["kubeconfig"])
        api = types.SimpleNamespace(url=info["url"], ca_file=info["ca_file"])  # what raw() needs

        assert ready == info and info["pid"] == process.pid
        assert (state / "url").read_text().strip() == info["url"]
        assert review(api_client, minted).user.username == f"system:serviceaccount:{NS}:istiod-service-account"
        fault = {"method": "GET", "path_regex": "/secrets$", "status": 500}
        assert raw(api, "POST", "/_fake/faults", admin, fault)[0] == 200
        with pytest.raises(ApiException) as excinfo:
            client.CoreV1Api(api_client).list_namespaced_secret(NS)
        assert excinfo.value.status == 500
        log = raw(api, "GET", "/_fake/requests", admin)[1]
        assert log["tokenReviews"][-1]["caller"] == "kubernetes-admin"
        assert raw(api, "GET", "/_fake/requests", minted)[0] == 403
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        process.stdout.close()
    assert not (state / "ready").exists() and (state / "state.json").exists()


def kubeconfig_token(path):
    with open(path) as handle:
        return yaml.safe_load(handle)["users"][0]["user"]["token"]


# --------------------------------------------------------------------------- OpenBao's Kubernetes auth, end to end


@pytest.fixture
def openbao(tmp_path):
    """``bao server -dev`` on a free port, as an admin hvac client."""
    port, log_path = free_port(), tmp_path / "bao.log"
    command = [os.path.join(os.path.dirname(sys.executable), "bao"), "server", "-dev", "-dev-root-token-id=root",
               f"-dev-listen-address=127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT) as process:
        try:
            wait_for(lambda: _healthy(url) or process.poll() is not None, what="bao server -dev")
            assert process.poll() is None, log_path.read_text()
            yield hvac.Client(url=url, token="root")
        finally:
            process.terminate()
            process.wait(timeout=10)


def _healthy(url):
    try:
        with urllib.request.urlopen(url + "/v1/sys/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def test_openbao_kubernetes_auth_logs_in_through_token_review(fake, core, openbao):
    core.create_namespaced_service_account("kube-system", {"metadata": {"name": "vault-reviewer"}})
    core.create_namespaced_secret("kube-system", token_secret("vault-reviewer-token", "vault-reviewer"))
    fake.bind_cluster_role("kube-system", "vault-reviewer")
    reviewer_jwt = secret_token(core, "kube-system", "vault-reviewer-token")
    openbao.sys.enable_auth_method("kubernetes")
    openbao.auth.kubernetes.configure(kubernetes_host=fake.url, kubernetes_ca_cert=fake.ca_pem,
                                      token_reviewer_jwt=reviewer_jwt, disable_local_ca_jwt=True)
    openbao.auth.kubernetes.create_role("istiod", bound_service_account_names=["istiod-service-account"],
                                        bound_service_account_namespaces=[NS], policies=["default"])
    anonymous = hvac.Client(url=openbao.url)
    istiod_jwt = fake.mint_sa_token(NS, "istiod-service-account")

    login = anonymous.auth.kubernetes.login("istiod", istiod_jwt, use_token=False)["auth"]
    assert login["client_token"] and "default" in login["policies"]
    assert login["metadata"]["service_account_uid"] == jwt_claims(istiod_jwt)["kubernetes.io"]["serviceaccount"]["uid"]
    assert fake.token_reviews[-1]["caller"] == "system:serviceaccount:kube-system:vault-reviewer"
    assert fake.token_reviews[-1]["spec"] == {"token": istiod_jwt, "audiences": [API_AUDIENCE]}

    with pytest.raises(hvac.exceptions.Forbidden):  # refused by the role before any TokenReview
        anonymous.auth.kubernetes.login("istiod", fake.mint_sa_token(NS, "someone-else"), use_token=False)
    fake.revoke(istiod_jwt)
    with pytest.raises(hvac.exceptions.Forbidden):  # refused because the TokenReview says no
        anonymous.auth.kubernetes.login("istiod", istiod_jwt, use_token=False)
    assert fake.token_reviews[-1]["status"]["authenticated"] is False

    # hvac's configure() accepts only CERTIFICATE PEM in pem_keys; OpenBao also takes a PUBLIC KEY.
    openbao.write_data("auth/kubernetes/config", data={
        "kubernetes_host": fake.url, "kubernetes_ca_cert": fake.ca_pem, "token_reviewer_jwt": reviewer_jwt,
        "disable_local_ca_jwt": True, "pem_keys": [fake.sa_public_key_pem], "issuer": API_AUDIENCE})
    fresh = fake.mint_sa_token(NS, "istiod-service-account")
    assert anonymous.auth.kubernetes.login("istiod", fresh, use_token=False)["auth"]["client_token"]
