"""vault_audit against OpenBao: a device declared in the server config is recognised (no change),
other options are refused, and enabling through the API gets the declarative-config explanation."""

from harness.playbook import module_play


def _run(bao, playbook, args, check=False):
    run = playbook(module_play("vault_audit", dict(args, url=bao.url, token=bao.token)), check=check, diff=True)
    return run, run.task("task")


def test_declared_device_is_recognised(bao, playbook):
    mark = bao.audit.mark()
    run, task = _run(bao, playbook, {"options": {"file_path": bao.audit.path}})
    assert run.rc == 0, run
    assert task["status"] == "ok" and task["result"]["device"]["options"]["file_path"] == bao.audit.path
    assert bao.audit.writes(since=mark) == []


def test_other_options_at_the_same_path_are_refused(bao, playbook):
    run, task = _run(bao, playbook, {"options": {"file_path": "/tmp/elsewhere.log"}})
    assert run.rc != 0
    assert "The audit device 'file' exists as file with options" in task["result"]["msg"]
    assert "cannot be changed in place" in task["result"]["msg"]


def test_openbao_refuses_api_enable_with_a_clear_message(bao, playbook):
    args = {"path": "second", "options": {"file_path": "/tmp/second-audit.log"}}
    run, task = _run(bao, playbook, args, check=True)
    assert run.rc == 0 and task["status"] == "changed"  # check mode reports, sends nothing
    run, task = _run(bao, playbook, args)
    assert run.rc != 0
    msg = task["result"]["msg"]
    assert "OpenBao does not enable audit devices through its API, and none is declared at 'second'" in msg
    assert 'audit "file" "second" { options { file_path = "/tmp/second-audit.log" } }' in msg
