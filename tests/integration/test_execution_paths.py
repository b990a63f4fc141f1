"""Where the modules run (plugins/plugin_utils/in_process.py): on the local connection in the controller's worker,
else - or with MESHPKI_IN_PROCESS=0 / meshpki_vault_ca_in_process: false - as module processes. Each case runs
through both paths at -vvv (harness/paths.py: run_both checks which path ran) and the task results must be equal:
argument validation, check and diff mode, no_log, module_defaults groups, the VAULT_* environment variables, the
task's ``environment:``, the runtime's guards, warnings of a loop."""

import json
import os
import subprocess
import sys
import uuid

import pytest

from harness.paths import PATHS, PathRunner, assert_ran, path_env, run_both
from harness.playbook import module_play

MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "plugins", "modules"))
    if name.endswith(".py") and not name.startswith("_"))

RULES = [{"path": "secret/data/istioca", "capabilities": ["read"]}]
NO_VAULT_ENV = {"VAULT_ADDR": "", "VAULT_TOKEN": "", "BAO_ADDR": "", "BAO_TOKEN": ""}


def _name():
    return "paths-" + uuid.uuid4().hex[:8]


def _play(tasks, **play):
    base = {"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}
    base.update(play)
    return [base]


def test_every_module_has_an_action_plugin_of_one_implementation():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    actions = sorted(name[:-3] for name in os.listdir(os.path.join(root, "plugins", "action"))
                     if name.endswith(".py") and not name.startswith("_"))
    assert actions == MODULES
    for name in actions:
        with open(os.path.join(root, "plugins", "action", name + ".py")) as f:
            code = [line for line in f.read().splitlines() if line and not line.startswith(("#", '"""'))]
        assert code[-2:] == ["class ActionModule(ModuleAction):", "    pass"], (name, code)


@pytest.mark.parametrize("module", MODULES)
def test_argument_errors_are_the_same_through_both_paths(playbook, module):
    """Every module once through each path: an unknown option and nothing else fails Ansible's own validation."""
    plays = _play([{"name": "bad", "meshpki.vault_ca." + module: {"no_such_option": 1}, "ignore_errors": True}])
    in_process, _module = run_both(playbook, plays)
    result = in_process.task("bad")
    msg = result["result"]["msg"]
    assert result["status"] == "failed", result
    # Ansible reports a missing required option (or one of a required set) before an unknown one
    assert ("Unsupported parameters for (meshpki.vault_ca.%s) module: no_such_option" % module in msg
            or msg.startswith(("missing required arguments", "one of the following is required"))), msg


@pytest.mark.parametrize("path", PATHS)
def test_four_steps_through_each_path(bao, playbook, path):
    name = _name()
    plays = module_play("vault_policy", {"name": name, "rules": RULES}, defaults={"url": bao.url, "token": bao.token})
    runner = PathRunner(playbook, path)
    for check, expected in ((True, True), (False, True), (True, False), (False, False)):
        run = runner(plays, check=check, diff=True, verbosity=3)
        assert run.rc == 0, run
        assert_ran(run, path)
        assert (run.task("task")["status"] == "changed") is expected, (check, run)
    assert bao.api("GET", "sys/policies/acl/" + name)["data"]["policy"].startswith('path "secret/data/istioca"')


@pytest.mark.parametrize("check,diff", [(True, True), (True, False)])
def test_check_and_diff_mode_give_the_same_result(bao, playbook, check, diff):
    name = _name()
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": 'path "a/b" { capabilities = ["list"] }'})
    plays = module_play("vault_policy", {"name": name, "rules": RULES}, defaults={"url": bao.url, "token": bao.token})
    in_process, _module = run_both(playbook, plays, check=check, diff=diff)
    result = in_process.task("task")
    assert result["status"] == "changed", result
    assert ("diff" in result["result"]) is diff, result


def test_an_apply_with_nothing_to_do_is_the_same(bao, playbook):
    name = _name()
    plays = module_play("vault_policy", {"name": name, "rules": RULES}, defaults={"url": bao.url, "token": bao.token})
    assert playbook(plays).rc == 0
    mark = bao.audit.mark()
    in_process, _module = run_both(playbook, plays, diff=True)
    assert in_process.task("task")["status"] == "ok"
    assert bao.audit.writes(since=mark) == []


def test_module_defaults_group_reaches_both_paths(bao, playbook):
    """group/meshpki.vault_ca.vault of meta/runtime.yml sets url and token; no VAULT_* in the environment."""
    name = _name()
    plays = module_play("vault_policy", {"name": name, "rules": RULES}, defaults={"url": bao.url, "token": bao.token})
    plays[0]["tasks"].append({"name": "login", "meshpki.vault_ca.vault_login": {}})
    in_process, _module = run_both(playbook, plays, env=NO_VAULT_ENV, check=True)
    assert in_process.task("task")["status"] == "changed"
    assert in_process.task("login")["status"] == "ok"


def test_vault_environment_variables_are_read_by_both_paths(bao, playbook):
    name = _name()
    plays = module_play("vault_policy", {"name": name, "rules": RULES})
    in_process, _module = run_both(playbook, plays, env=dict(NO_VAULT_ENV, VAULT_ADDR=bao.url, VAULT_TOKEN=bao.token),
                                   check=True)
    assert in_process.task("task")["status"] == "changed"


def test_the_task_environment_keyword_reaches_both_paths_and_only_its_task(bao, playbook):
    name = _name()
    tasks = [{"name": "with environment", "environment": {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.token},
              "meshpki.vault_ca.vault_policy": {"name": name, "rules": RULES}},
             {"name": "without", "meshpki.vault_ca.vault_policy": {"name": name, "rules": RULES},
              "ignore_errors": True}]
    in_process, _module = run_both(playbook, _play(tasks), env=NO_VAULT_ENV, check=True)
    assert in_process.task("with environment")["status"] == "changed"
    failed = in_process.task("without")
    assert failed["status"] == "failed" and "url" in failed["result"]["msg"], failed


def test_a_loop_starts_each_item_with_its_own_environment(bao, playbook):
    """Items run in one worker: the first item's environment must not reach the second (which has no URL)."""
    name = _name()
    tasks = [{"name": "loop", "meshpki.vault_ca.vault_policy": {"name": name, "rules": RULES},
              "environment": "{{ item }}", "ignore_errors": True,
              "loop": [{"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.token}, {}]}]
    in_process, _module = run_both(playbook, _play(tasks), env=NO_VAULT_ENV, check=True, tasks=2)
    items = in_process.task("loop")["result"]["results"]
    assert items[0]["changed"] and not items[0].get("failed"), items[0]
    assert items[1]["failed"] and "url" in items[1]["msg"], items[1]


def test_no_log_values_are_masked_the_same_way(bao, playbook):
    """A wrong token (no_log) that is also the policy's name: Vault refuses it, the message names the path -
    and the token in it is masked; the invocation shows it as a no_log value."""
    secret = "s3cret-" + uuid.uuid4().hex
    plays = module_play("vault_policy", {"name": secret, "rules": RULES, "url": bao.url, "token": secret})
    plays[0]["tasks"][0]["ignore_errors"] = True
    in_process, module = run_both(playbook, plays)
    result = in_process.task("task")
    assert result["status"] == "failed", result
    assert result["result"]["invocation"]["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    for run in (in_process, module):
        assert secret not in json.dumps(run.results) and secret not in run.output


def test_path_guard_refuses_the_same_way(bao, playbook):
    plays = module_play("vault_policy", {"name": "../sys", "rules": RULES, "url": bao.url, "token": bao.token})
    plays[0]["tasks"][0]["ignore_errors"] = True
    mark = bao.audit.mark()
    in_process, _module = run_both(playbook, plays)
    assert in_process.task("task")["status"] == "failed"
    assert "name" in in_process.task("task")["result"]["msg"]
    assert bao.audit.requests(mark) == []


def test_the_switch_variable_and_its_bad_value(playbook):
    plays = _play([{"name": "bad", "meshpki.vault_ca.vault_policy": {"no_such_option": 1}, "ignore_errors": True}])
    run = playbook(plays, env=path_env("in_process"), verbosity=3,
                   extra_args=["-e", "meshpki_vault_ca_in_process=false"])
    assert_ran(run, "module")
    assert "meshpki_vault_ca_in_process or MESHPKI_IN_PROCESS is false" in run.stdout
    run = playbook(plays, env={"MESHPKI_IN_PROCESS": "perhaps"})
    msg = run.task("bad")["result"]["msg"]
    assert "MESHPKI_IN_PROCESS is 'perhaps'; set it to true or false" in msg, msg


def test_another_python_for_localhost_runs_the_module_there(playbook, tmp_path):
    """ansible_python_interpreter naming another Python (a virtualenv of its own) is honoured: module process."""
    venv = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    plays = _play([{"name": "bad", "meshpki.vault_ca.vault_policy": {"no_such_option": 1}, "ignore_errors": True}])
    run = playbook(plays, env=path_env("in_process"), verbosity=3,
                   extra_args=["-e", "ansible_python_interpreter=%s" % (venv / "bin" / "python")])
    assert_ran(run, "module")
    assert "is not the controller's Python" in run.stdout


def test_a_module_warning_is_shown_once_by_both_paths(bao, playbook):
    plays = module_play("vault_policy", {"name": _name(), "rules": RULES, "url": bao.url, "token": bao.token,
                                         "validate_certs": False})
    runs = run_both(playbook, plays, check=True)
    for run in runs:
        assert run.output.count("TLS certificate verification of %s is disabled" % bao.url) == 1, run


PARENT_CALLBACK = '''
import os, sys
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "parent_modules"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):  # the controller's main process, after every worker is done
        with open(os.environ["PARENT_MODULES_FILE"], "w") as f:
            f.write(",".join(sorted(m for m in sys.modules if ".plugins.modules." in m)))
'''


@pytest.mark.parametrize("environ, loaded", [({}, True), ({"MESHPKI_PRELOAD": "0"}, False),
                                             ({"MESHPKI_IN_PROCESS": "0"}, False)])
def test_the_module_files_are_imported_once_in_the_controllers_main_process(tmp_path, environ, loaded):
    """Issue 17: the linear strategy loads each task's action plugin class in the main process before it forks a
    worker per task and host; defining the class imports the module file there (in_process.preload), so the workers
    start with it imported. Shown by a callback, which runs in the main process; the task itself fails on its
    arguments (no Vault is contacted)."""
    callbacks = tmp_path / "callbacks"
    callbacks.mkdir()
    (callbacks / "parent_modules.py").write_text(PARENT_CALLBACK)
    play = tmp_path / "play.yml"
    play.write_text(json.dumps(_play([{"name": "policy without a name", "meshpki.vault_ca.vault_policy": {},
                                       "ignore_errors": True}])))
    from harness.playbook import ansible_env
    env = ansible_env()
    env.update(ANSIBLE_CALLBACK_PLUGINS=str(callbacks), ANSIBLE_CALLBACKS_ENABLED="parent_modules",
               PARENT_MODULES_FILE=str(tmp_path / "modules.txt"), MESHPKI_PRELOAD="", MESHPKI_IN_PROCESS="")
    env.update(environ)
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(play)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout
    assert "missing required arguments: name" in done.stdout, done.stdout
    parent = (tmp_path / "modules.txt").read_text().split(",")
    assert ("ansible_collections.meshpki.vault_ca.plugins.modules.vault_policy" in parent) is loaded, parent
