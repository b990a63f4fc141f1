"""Tokens the collection creates: every one is revoked before the play ends, and a run that changes nothing
writes nothing to Vault (verification on, so no token is minted for it).

Two clusters (inventory group istio_clusters, as the main playbook runs them) log in once with AppRole:
- run 1: a fresh estate, one cluster fails half-way (its manifest holds a ControlPlane whose spec.components is not a
  mapping: the role's first checks accept it, the annotation task cannot use it) after the login
  and after each cluster's verification minted its probe token;
- run 2: the same, repaired;
- run 3: the no-change re-run, with a token the user passes in (token auth: used as given, never revoked).
Created tokens are the audit log's responses carrying a token accessor (the audit device logs accessors in
clear here); a token counts as revoked when Vault no longer knows its accessor (``lookup-accessor`` as root).
The shared login token must be revoked once, after the last task of every cluster."""

import json
import urllib.error
import uuid

import pytest
import yaml

from harness.openbao import OpenBaoServer
from harness.playbook import role_play

pytestmark = pytest.mark.reliability_fast

ADMIN = 'path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }'
CLUSTERS = ("east", "west")


@pytest.fixture
def bao(tmp_path):
    with OpenBaoServer(tmp_path / "bao", audit=True, audit_options={"hmac_accessor": "false"}) as server:
        yield server


def _inventory(tmp_path, manifests):
    hosts = {}
    for name in CLUSTERS:
        hosts[name] = {"ansible_connection": "local", "istio_vault_ca_intermediate_mount": "istioca-" + name,
                       "istio_vault_ca_kv_path": "istioca/" + name,
                       "istio_vault_ca_k8s_auth_mount": "kubernetes-" + name,
                       "istio_vault_ca_policy_name": "istioca-" + name,
                       "istio_vault_ca_manifest_path": manifests[name],
                       "istio_vault_ca_k8s_token_reviewer": {"create": True, "service_account": "reviewer-" + name}}
    path = tmp_path / ("inventory-%s.yml" % uuid.uuid4().hex[:6])
    path.write_text(yaml.safe_dump({"istio_clusters": {"hosts": hosts}}))
    return str(path)


def _approle(bao):
    bao.api("PUT", "sys/policies/acl/ansible", {"policy": ADMIN})
    bao.api("POST", "sys/auth/approle", {"type": "approle"})
    bao.api("POST", "auth/approle/role/ansible", {"token_policies": ["ansible"], "token_ttl": "1h"})
    role_id = bao.api("GET", "auth/approle/role/ansible/role-id")["data"]["role_id"]
    secret_id = bao.api("POST", "auth/approle/role/ansible/secret-id")["data"]["secret_id"]
    return {"url": bao.url, "auth_method": "approle", "role_id": role_id, "secret_id": secret_id}


def _alive(bao, accessor):
    try:
        bao.api("POST", "auth/token/lookup-accessor", {"accessor": accessor})
    except urllib.error.HTTPError as e:
        if e.code in (400, 403):
            return False
        raise
    return True


def test_tokens_created_are_revoked_and_a_no_change_run_writes_nothing(tmp_path, bao, cluster, ansible, report):
    manifests = {}
    for name in CLUSTERS:
        manifests[name] = str(tmp_path / ("controlplane-%s.yaml" % name))
        with open(manifests[name], "w") as f:
            yaml.safe_dump(cluster.controlplane(), f)
    shared = {"istio_vault_ca_kubeconfig": cluster.kubeconfig}
    login = _approle(bao)
    plays = role_play(dict(shared, istio_vault_ca_vault=login), hosts="istio_clusters")
    start = bao.audit.mark()

    unusable = dict(cluster.controlplane(), spec={"components": "not a mapping"})
    with open(str(tmp_path / "unusable.yaml"), "w") as f:
        yaml.safe_dump(unusable, f)
    broken = _inventory(tmp_path, dict(manifests, west=str(tmp_path / "unusable.yaml")))
    first = ansible.run(plays, inventory=broken)
    second = ansible.run(plays, inventory=_inventory(tmp_path, manifests))
    created = bao.audit.created_tokens(start)

    user_token = bao.api("POST", "auth/token/create", {"policies": ["ansible"], "ttl": "1h"})["auth"]["client_token"]
    mark = bao.audit.mark()
    third = ansible.run(role_play(dict(shared, istio_vault_ca_vault={"url": bao.url, "token": user_token}),
                                  hosts="istio_clusters"), inventory=_inventory(tmp_path, manifests))
    writes = bao.audit.writes(since=mark, include_logins=True)
    created += bao.audit.created_tokens(mark)
    revoked = [accessor for _path, accessor in created if not _alive(bao, accessor)]
    report.metric("tokens", created=len(created), revoked=len(revoked), writes=len(writes))
    for path, accessor in created:
        report.detail("Tokens", created_by=path, revoked=accessor in revoked)

    # run 1 failed on west only, at the ControlPlane, after both clusters' verification
    assert first.rc != 0, first
    assert [(r["host"], r["task"].split(" : ")[-1]) for r in first.failed()] == [
        ("west", "Ensure the injector annotations on the tsb_controlplane")], first
    assert second.rc == 0, second
    assert third.rc == 0 and third.changed() == [], third
    # one login per run, one probe token per cluster in run 1 (everything changed) and none after
    assert sorted(p for p, _a in created) == ["auth/approle/login"] * 2 + ["auth/token/create"] * 2, created
    # the shared login token is revoked once, after the last task of every cluster
    for run in (first, second):
        names = [(r["host"], r["task"].split(" : ")[-1]) for r in run.results]
        revokes = [i for i, (_h, task) in enumerate(names) if task == "Revoke the token of the role's Vault login"]
        assert len(revokes) == 1, names
        last_work = max(i for i, (_h, task) in enumerate(names) if task != names[revokes[0]][1])
        assert revokes[0] > last_work, names
    assert len(revoked) == len(created), [(p, a) for p, a in created if a not in revoked]
    assert writes == [], writes
    assert _alive(bao, bao.api("POST", "auth/token/lookup", {"token": user_token})["data"]["accessor"])
    assert login["secret_id"] not in first.output + second.output + json.dumps(first.results + second.results)
