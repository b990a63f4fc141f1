"""Credentials never follow a redirect to another origin (security issue #14), through real module runs.

A Redirector on 127.0.0.1 answers every request with a 302/307/308 to a Recorder on another port (another
origin), or from https to http. The modules run with token auth, AppRole (role_id + secret_id) and a kubeconfig
bearer token: each must fail naming the Location and the fix, and the Recorder must receive nothing. A redirect
within the same origin (a path moved on the same server in front of the real OpenBao) is still followed."""

import uuid

import pytest
import yaml

from harness.fake_k8s import FakeKubeApi
from harness.fixtures import controlplane
from harness.playbook import module_play
from harness.redirects import SameOriginMover, cases_play, cross_origin_cases

POLICY = 'path "pki/cert/ca" { capabilities = ["read"] }'


def test_cross_origin_redirects_are_refused_and_nothing_reaches_the_other_origin(playbook, tmp_path):
    """Vault token, AppRole secret_id and kubeconfig bearer token; 302, 307 and 308 to another port, and 307
    from https to http: one playbook, one block per case."""
    cases = cross_origin_cases(tmp_path)
    try:
        run = playbook(cases_play(cases))
    finally:
        for case in cases:
            case.stop()
    assert run.rc == 0, run
    problems = []
    for case in cases:
        refused, msg, received = case.outcome(run)
        if case.recorder.carrying(case.secret):
            problems.append("%s: the credential reached the other origin" % case.name)
        if received:
            problems.append("%s: the other origin received %s" % (case.name, [r["method"] + " " + r["path"]
                                                                              for r in received]))
        if not refused or "redirected the request to another origin (HTTP %d" % case.status not in msg:
            problems.append("%s: not refused with the Location and the fix: %r" % (case.name, msg[:400]))
        if case.tls and "https to http is never followed" not in msg:
            problems.append("%s: the message does not say https to http is never followed" % case.name)
    assert len(cases) == 12
    assert not problems, "\n".join(problems)


def test_same_origin_redirect_is_followed_with_token(bao, playbook):
    with SameOriginMover(bao.url) as mover:
        name = "moved-" + uuid.uuid4().hex[:8]
        run = playbook(module_play("vault_policy", dict(url=mover.url + "/moved", token=bao.token, name=name,
                                                        policy=POLICY)))
        assert run.rc == 0, run
        assert mover.moved > 0  # the path redirect happened and was followed
    assert "pki/cert/ca" in bao.api("GET", "sys/policies/acl/" + name)["data"]["policy"]


def test_same_origin_redirect_is_followed_with_approle(bao, playbook):
    mount = "approle-" + uuid.uuid4().hex[:6]
    bao.api("PUT", "sys/policies/acl/redirect-admin",
            {"policy": 'path "sys/policies/acl/*" { capabilities = ["create", "read", "update"] }'})
    bao.api("POST", "sys/auth/" + mount, {"type": "approle"})
    bao.api("POST", "auth/%s/role/ansible" % mount, {"token_policies": ["redirect-admin"]})
    role_id = bao.api("GET", "auth/%s/role/ansible/role-id" % mount)["data"]["role_id"]
    secret_id = bao.api("POST", "auth/%s/role/ansible/secret-id" % mount)["data"]["secret_id"]
    with SameOriginMover(bao.url) as mover:
        name = "moved-" + uuid.uuid4().hex[:8]
        run = playbook(module_play("vault_policy", dict(
            url=mover.url + "/moved", auth_method="approle", auth_mount=mount, role_id=role_id, secret_id=secret_id,
            name=name, policy=POLICY)))
        assert run.rc == 0, run
        assert mover.moved > 0
    assert "pki/cert/ca" in bao.api("GET", "sys/policies/acl/" + name)["data"]["policy"]


# ------------------------------------------------------------------ kubeconfig insecure-skip-tls-verify

@pytest.fixture
def fake_cp(tmp_path):
    from kubernetes import client, config

    with FakeKubeApi() as api:
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        core = client.CoreV1Api(config.new_client_from_config(config_file=api.kubeconfig))
        core.create_namespace({"metadata": {"name": "tsb"}})
        custom = client.CustomObjectsApi(config.new_client_from_config(config_file=api.kubeconfig))
        custom.create_namespaced_custom_object("install.tetrate.io", "v1alpha1", "tsb", "controlplanes",
                                               controlplane())
        yield api


def _insecure_copy(kubeconfig, path):
    data = yaml.safe_load(open(kubeconfig))
    for cluster in data["clusters"]:
        cluster["cluster"].pop("certificate-authority-data", None)
        cluster["cluster"]["insecure-skip-tls-verify"] = True
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_insecure_kubeconfig_warns_naming_the_cluster_entry(fake_cp, playbook, tmp_path):
    from harness.redirects import GUIDE

    insecure = _insecure_copy(fake_cp.kubeconfig, tmp_path / "insecure-kubeconfig")
    args = dict(GUIDE, name="controlplane", namespace="tsb")
    module = "meshpki.vault_ca.tsb_controlplane_annotations"
    plays = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": [
        {"name": "insecure", module: dict(args, kubeconfig=insecure)},
        {"name": "verified", module: dict(args, kubeconfig=fake_cp.kubeconfig)},
    ]}]
    run = playbook(plays, check=True)
    assert run.rc == 0, run
    warned = [w for w in run.task("insecure")["result"].get("warnings") or [] if "insecure-skip-tls-verify" in w]
    assert warned, run.task("insecure")["result"]
    assert "cluster entry 'fake'" in warned[0] and insecure in warned[0], warned
    assert "insecure-skip-tls-verify" not in " ".join(run.task("verified")["result"].get("warnings") or [])
