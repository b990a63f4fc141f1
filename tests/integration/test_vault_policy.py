"""vault_policy against a real OpenBao server, through real ansible-playbook runs."""

import json
import urllib.error
import uuid

import pytest
from conftest import assert_four_step

from harness.playbook import module_play

GUIDE_RULES = [
    {"path": "secret/data/istioca", "capabilities": ["read", "list"]},
    {"path": "istioca/cert/*", "capabilities": ["read", "list"]},
    {"path": "pki/cert/ca", "capabilities": ["read", "list"]},
]


def _name():
    return "test-" + uuid.uuid4().hex[:8]


GUIDE_TEXT = (
    'path "secret/data/istioca" {\n  capabilities = ["read", "list"]\n}\n\n'
    'path "istioca/cert/*" {\n  capabilities = ["read", "list"]\n}\n\n'
    'path "pki/cert/ca" {\n  capabilities = ["read", "list"]\n}\n'
)


def _stored(bao, name):
    """The policy text the server keeps, None when it has no such policy (404); any other error fails the test."""
    try:
        return bao.api("GET", "sys/policies/acl/" + name)["data"]["policy"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def _defaults(bao):
    return {"url": bao.url, "token": bao.token}


def test_four_steps_present_then_absent_and_no_writes_when_nothing_changes(bao, playbook):
    name = _name()
    present = module_play("vault_policy", {"name": name, "rules": GUIDE_RULES}, defaults=_defaults(bao))
    mark = bao.audit.mark()
    runs = assert_four_step(playbook, present)
    writes = bao.audit.writes(since=mark)
    assert writes == [("update", "sys/policies/acl/" + name)], writes  # only the apply run wrote
    assert _stored(bao, name) == GUIDE_TEXT  # the rules rendered, in their order
    diff = runs[0].task("task")["result"]["diff"]
    assert diff["before"] == "" and diff["after"] == GUIDE_TEXT

    absent = module_play("vault_policy", {"name": name, "state": "absent"}, defaults=_defaults(bao))
    mark = bao.audit.mark()
    assert_four_step(playbook, absent)
    assert bao.audit.writes(since=mark) == [("delete", "sys/policies/acl/" + name)]
    assert _stored(bao, name) is None


def test_insignificant_differences_are_not_a_change(bao, playbook):
    """Hand-written HCL (other order, spacing, comments, duplicates) equals the rendered rules."""
    name = _name()
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": (
        '# written by hand\npath "pki/cert/ca" { capabilities = ["list","read","read"] }\n'
        'path "istioca/cert/*" {\n\tcapabilities = ["read", "list"]\n}\n'
        'path "secret/data/istioca" { capabilities = ["list"] }\n'
        'path "secret/data/istioca" { capabilities = ["read"] }\n')})
    mark = bao.audit.mark()
    run = playbook(module_play("vault_policy", {"name": name, "rules": GUIDE_RULES}, defaults=_defaults(bao)))
    assert run.rc == 0, run
    assert run.task("task")["status"] == "ok"
    assert bao.audit.writes(since=mark) == []
    assert run.task("task")["result"]["policy"].startswith("# written by hand")  # as stored


def test_a_real_difference_is_written_with_diff(bao, playbook):
    name = _name()
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": 'path "pki/cert/ca" { capabilities = ["read"] }'})
    args = {"name": name, "policy": 'path "pki/cert/ca" {\n  capabilities = ["read", "update"]\n}\n'}
    run = playbook(module_play("vault_policy", args, defaults=_defaults(bao)), diff=True)
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["changed"] is True
    assert '["read"]' in result["diff"]["before"] and '"update"' in result["diff"]["after"]
    assert _stored(bao, name) == args["policy"]
    assert "+  capabilities = [\"read\", \"update\"]" in run.stdout  # --diff is shown to the user


def test_a_change_only_to_min_wrapping_ttl_is_written(bao, playbook):
    """Issue #16: a rule setting that is not a capability is part of the policy's meaning."""
    name = _name()
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": GUIDE_TEXT})
    rules = GUIDE_RULES[:2] + [dict(GUIDE_RULES[2], min_wrapping_ttl="5m")]
    run = playbook(module_play("vault_policy", {"name": name, "rules": rules}, defaults=_defaults(bao)))
    assert run.rc == 0, run
    assert run.task("task")["result"]["changed"] is True
    assert _stored(bao, name) == GUIDE_TEXT[:-2] + '  min_wrapping_ttl = "5m"\n}\n'


@pytest.mark.parametrize("builtin", ["root", "default"])
def test_refuses_builtin_policies(bao, playbook, builtin):
    mark = bao.audit.mark()
    run = playbook(module_play("vault_policy", {"name": builtin, "policy": 'path "x" { capabilities = ["read"] }'},
                               defaults=_defaults(bao)))
    assert run.rc != 0
    assert "Refusing to manage the built-in '%s' policy" % builtin in run.task("task")["result"]["msg"]
    assert bao.audit.writes(since=mark) == []


@pytest.mark.parametrize("args, message", [
    ({"policy": 'path "x" { capabilities = ["read"] }', "rules": [{"path": "x", "capabilities": ["read"]}]},
     "mutually exclusive"),
    ({}, "state is present but any of the following are missing: policy, rules"),
    ({"policy": "   "}, "policy text is empty"),
    ({"rules": []}, "rules must list at least one path"),
    ({"rules": [{"path": "x", "capabilities": []}]}, "needs 'capabilities', a non-empty list"),
])
def test_bad_input_is_refused_before_any_write(bao, playbook, args, message):
    args = dict(args, name=_name())
    mark = bao.audit.mark()
    run = playbook(module_play("vault_policy", args, defaults=_defaults(bao)))
    assert run.rc != 0
    assert message in run.task("task")["result"]["msg"]
    assert bao.audit.writes(since=mark) == []


def test_hcl_syntax_error_shows_vaults_own_text(bao, playbook):
    name = _name()
    mark = bao.audit.mark()
    run = playbook(module_play("vault_policy", {"name": name, "policy": 'path "x" { capabilities = ["read" }'},
                               defaults=_defaults(bao)))
    assert run.rc != 0
    msg = run.task("task")["result"]["msg"]
    assert msg.startswith("Failed to write policy 'sys/policies/acl/%s': Vault rejected the request (400):" % name)
    assert "failed to parse policy" in msg
    assert _stored(bao, name) is None
    assert bao.audit.writes(since=mark) == [("update", "sys/policies/acl/" + name)]  # the refused attempt only


def test_ansible_doc_renders(tmp_path):
    import os
    import subprocess
    import sys

    from harness.playbook import REPO
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "meshpki.vault_ca.vault_policy"], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["meshpki.vault_ca.vault_policy"]
    assert doc["doc"]["short_description"] == "Manage a Vault or OpenBao ACL policy idempotently"
    assert {"url", "token", "auth_method", "retries", "rules", "state"} <= set(doc["doc"]["options"])
    assert doc["doc"]["attributes"]["action_group"]["membership"] == ["meshpki.vault_ca.vault"]
    assert "istioca" in doc["examples"]
