# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action base that runs a module in the controller's worker (plugins/plugin_utils/in_process.py): which
path a task takes, the module's input and output, what the worker gets back, secrets in a crash."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import importlib
import importlib.util
import json
import os
import sys
import types

import pytest
from ansible.errors import AnsibleActionFail
from ansible.module_utils import basic
from ansible.module_utils.common import warnings as module_warnings
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible.plugins.loader import connection_loader
from ansible.template import Templar

from ansible_collections.meshpki.vault_ca.plugins.plugin_utils import in_process
from ansible_collections.meshpki.vault_ca.plugins.plugin_utils.in_process import (
    PROFILE,
    ModuleAction,
    encode_arguments,
    mask_text,
    module_context,
    run_main,
    same_python,
    secret_values,
    switch_value,
)

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..")
MODULES = sorted(name[:-3] for name in os.listdir(os.path.join(REPO, "plugins", "modules")) if name.endswith(".py"))
KEY = ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkgZWhhbmRzb21lIGtleSBmb3IgdGVzdHMgb25seSEhISEhoAoGCCqGSM49\n"
       "-----END EC PRIVATE KEY-----\n")


class IdentityTemplar(object):
    def template(self, value):
        return value


def _action(leaf="vault_policy", args=None, transport="local", become=False, async_val=0, delegate_to=None,
            environment=None):
    """A real action plugin of the collection on a real local connection (or one claiming ``transport``)."""
    loader = DataLoader()
    play_context = PlayContext()
    play_context.become = become
    connection = connection_loader.get("local", play_context, os.devnull)
    if transport != "local":
        connection = types.SimpleNamespace(transport=transport, _shell=connection._shell, has_native_async=False)
    task = Task()
    task.action = "meshpki.vault_ca." + leaf
    task.args = dict(args or {})
    task.async_val = async_val
    task.delegate_to = delegate_to
    task.environment = environment or []
    cls = importlib.import_module("ansible_collections.meshpki.vault_ca.plugins.action." + leaf).ActionModule
    return cls(task, connection, play_context, loader, Templar(loader=loader, variables={}), None)


# -- which path -------------------------------------------------------------------------------------------------

def test_every_action_plugin_names_its_module():
    for leaf in MODULES:
        cls = importlib.import_module("ansible_collections.meshpki.vault_ca.plugins.action." + leaf).ActionModule
        assert issubclass(cls, ModuleAction) and cls.module_leaf() == leaf


def test_same_python_is_the_same_bin_directory_and_executable(tmp_path):
    assert same_python(sys.executable)
    assert not same_python(os.path.realpath(sys.executable)) or os.path.realpath(sys.executable) == sys.executable
    other = tmp_path / "bin"
    other.mkdir()
    os.symlink(sys.executable, str(other / "python"))
    assert not same_python(str(other / "python")), "a link in another bin directory is another environment"
    assert not same_python("python3") and not same_python("") and not same_python("/usr/bin/env python3")


@pytest.mark.parametrize("task_vars,environ,expected", [
    ({}, {}, True),
    ({}, {"MESHPKI_IN_PROCESS": "0"}, False),
    ({}, {"MESHPKI_IN_PROCESS": "off"}, False),
    ({}, {"MESHPKI_IN_PROCESS": "1"}, True),
    ({}, {"MESHPKI_IN_PROCESS": " "}, True),
    ({"meshpki_vault_ca_in_process": False}, {"MESHPKI_IN_PROCESS": "1"}, False),
    ({"meshpki_vault_ca_in_process": "yes"}, {"MESHPKI_IN_PROCESS": "0"}, True),
    ({"meshpki_vault_ca_in_process": None}, {"MESHPKI_IN_PROCESS": "0"}, False),
])
def test_switch_variable_then_environment_then_on(task_vars, environ, expected):
    assert switch_value(task_vars, IdentityTemplar(), environ) is expected


def test_switch_refuses_a_value_that_is_not_a_boolean():
    with pytest.raises(AnsibleActionFail, match="MESHPKI_IN_PROCESS is 'maybe'; set it to true or false"):
        switch_value({}, IdentityTemplar(), {"MESHPKI_IN_PROCESS": "maybe"})
    with pytest.raises(AnsibleActionFail, match="the variable meshpki_vault_ca_in_process is 'x'"):
        switch_value({"meshpki_vault_ca_in_process": "x"}, IdentityTemplar(), {})


@pytest.mark.parametrize("kwargs,task_vars,reason", [
    ({}, {}, None),
    ({}, {"ansible_python_interpreter": sys.executable}, None),
    ({}, {"ansible_python_interpreter": "auto_silent"}, None),
    ({"transport": "ssh"}, {}, "connection ssh, not local"),
    ({"transport": "ansible.netcommon.httpapi"}, {}, "not local"),
    ({"become": True}, {}, "become is on"),
    ({"async_val": 30}, {}, "async task"),
    ({}, {"ansible_python_interpreter": "/opt/other/bin/python3"}, "is not the controller's Python"),
    ({}, {"meshpki_vault_ca_in_process": False}, "is false"),
    # delegated: the delegated host's interpreter counts, not the inventory host's
    ({"delegate_to": "ctl"}, {"ansible_python_interpreter": "/opt/other/bin/python3",
                              "ansible_delegated_vars": {"ctl": {"ansible_python_interpreter": sys.executable}}}, None),
    ({"delegate_to": "ctl"}, {"ansible_delegated_vars": {"ctl": {"ansible_python_interpreter": "/usr/bin/py"}}},
     "is not the controller's Python"),
])
def test_remote_reason(kwargs, task_vars, reason, monkeypatch):
    monkeypatch.delenv("MESHPKI_IN_PROCESS", raising=False)
    found = _action(**kwargs).remote_reason(task_vars)
    if reason is None:
        assert found is None
    else:
        assert found and reason in found, found


def test_the_requirements_are_the_runtimes_libraries():
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import LIBRARIES

    assert sorted(in_process.REQUIREMENTS) == sorted(LIBRARIES.values())


@pytest.mark.parametrize("interpreter", [None, "auto", "auto_silent"])
def test_auto_interpreter_without_the_requirements_runs_the_discovered_python(interpreter, monkeypatch):
    monkeypatch.delenv("MESHPKI_IN_PROCESS", raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "kubernetes" else real(name, *a))
    task_vars = {} if interpreter is None else {"ansible_python_interpreter": interpreter}
    reason = _action().remote_reason(task_vars)
    assert reason and "lacks kubernetes: the discovered Python runs it" in reason, reason
    monkeypatch.setattr(importlib.util, "find_spec", real)
    assert _action().remote_reason(task_vars) is None


def test_the_fallback_runs_execute_module(monkeypatch):
    calls = []
    action = _action(transport="ssh")
    monkeypatch.setattr(action, "_execute_module", lambda **kw: calls.append(kw) or {"changed": False})
    monkeypatch.setattr(action, "_remove_tmp_path", lambda path: None)
    monkeypatch.setattr(action, "run_in_process", lambda task_vars: pytest.fail("ran in-process over ssh"))
    assert action.run(task_vars={}) == {"changed": False}
    assert calls == [{"task_vars": {}, "wrap_async": False}]


# -- the module's input and output ------------------------------------------------------------------------------

def test_the_serialization_profile_is_the_one_core_gives_our_modules():
    module_common = pytest.importorskip("ansible.executor.module_common")
    metadata = getattr(module_common, "_get_module_metadata", None)
    if metadata is None:
        pytest.skip("ansible-core < 2.19 has no serialization profiles")
    for leaf in MODULES:
        with open(os.path.join(REPO, "plugins", "modules", leaf + ".py")) as f:
            assert metadata(ast.parse(f.read())).serialization_profile == PROFILE, leaf


def test_a_module_runs_with_its_arguments_and_its_result_is_parsed_as_from_a_process(monkeypatch):
    monkeypatch.delenv("MESHPKI_IN_PROCESS", raising=False)
    result = _action(args={"rules": [], "token": "sekrit-1"}).run(task_vars={})
    assert result["failed"] and result["msg"] == "missing required arguments: name"
    assert result["invocation"]["module_args"]["token"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    assert result["invocation"]["module_args"]["state"] == "present"  # the argspec's defaults
    assert "sekrit-1" not in repr(result)
    assert not any(key.startswith("_ansible_") and key != "_ansible_parsed" for key in result)


def test_the_task_environment_reaches_the_module_and_is_gone_afterwards(monkeypatch):
    monkeypatch.delenv("MESHPKI_TEST_SEEN", raising=False)
    seen = {}

    def main():
        seen.update(value=os.environ.get("MESHPKI_TEST_SEEN"))
        print(json.dumps({"changed": False}))
        sys.exit(0)

    action = _action(environment=[{"MESHPKI_TEST_SEEN": "from the task"}])
    monkeypatch.setattr(action, "load_module", lambda: types.SimpleNamespace(main=main, ARGUMENT_SPEC={}))
    assert action.run(task_vars={})["changed"] is False
    assert seen == {"value": "from the task"}
    assert "MESHPKI_TEST_SEEN" not in os.environ


def test_module_context_gives_the_worker_its_state_back():
    module_warnings.warn("the worker's own warning")
    before = (basic._ANSIBLE_ARGS, dict(os.environ), os.getcwd(), module_warnings.get_warning_messages())
    with module_context(b"{}", {"MESHPKI_X": 1}) as (stdout, stderr):
        assert basic._ANSIBLE_ARGS == b"{}" and os.environ["MESHPKI_X"] == "1"
        assert not module_warnings.get_warning_messages(), "a module run starts without warnings"
        module_warnings.warn("the module's warning")
        os.environ["MESHPKI_LEFT_BEHIND"] = "x"
        os.chdir("/")
        print("to the module's stdout")
        sys.stderr.write("to the module's stderr")
    assert stdout.getvalue() == "to the module's stdout\n" and stderr.getvalue() == "to the module's stderr"
    after = (basic._ANSIBLE_ARGS, dict(os.environ), os.getcwd(), module_warnings.get_warning_messages())
    assert after == before


def test_warnings_and_deprecations_go_into_the_result_as_from_a_module_process():
    def main():
        module = basic.AnsibleModule(argument_spec={})
        module.warn("a warning of the module")
        module.deprecate("an old way", version="9.0.0", collection_name="meshpki.vault_ca")
        module.exit_json(changed=False)

    action = _action()
    action.load_module = lambda: types.SimpleNamespace(main=main, ARGUMENT_SPEC={})
    result = action.run(task_vars={})
    assert [_message(w) for w in result["warnings"]] == ["a warning of the module"], result
    assert [_message(d) for d in result["deprecations"]] == ["an old way"], result


def _message(item):
    """A warning or deprecation of a parsed result: a summary object (ansible-core 2.19+), a dict or a str."""
    if hasattr(item, "event"):
        return item.event.msg
    return item["msg"] if isinstance(item, dict) else item


def test_run_main_exit_codes():
    assert run_main(lambda: sys.exit(0), encode_arguments({}), {})["rc"] == 0
    assert run_main(lambda: sys.exit(1), encode_arguments({}), {})["rc"] == 1
    res = run_main(lambda: None, encode_arguments({}), {})
    assert res["crashed"] and res["rc"] == 1 and "did not handle its own exit" in res["stdout"] + res["stderr"]


def test_a_crash_is_a_module_failure_with_secrets_masked(monkeypatch):
    secret = 'tok"en-' + "x" * 12

    def main():
        raise RuntimeError("boom with %s and %s" % (secret, KEY.splitlines()[1]))

    spec = {"token": {"type": "str", "no_log": True}, "certificate": {"type": "str"}}
    action = _action(args={"token": secret, "certificate": KEY})
    monkeypatch.setattr(action, "load_module", lambda: types.SimpleNamespace(main=main, ARGUMENT_SPEC=spec))
    result = action.run(task_vars={})
    assert result["failed"], result
    text = repr(result)
    assert "boom with" in text
    assert secret not in text and json.dumps(secret)[1:-1] not in text
    assert KEY.splitlines()[1] not in text


def test_secret_values_and_mask_text():
    spec = {"token": {"type": "str", "no_log": True, "aliases": ["vault_token"]}, "certificate": {"type": "str"}}
    secrets = secret_values(spec, {"vault_token": "abc-123", "certificate": KEY, "_ansible_no_log": False})
    assert "abc-123" in secrets and any("PRIVATE KEY" in s for s in secrets)
    assert mask_text('{"msg": "abc-123 and a\\"b"}', {"abc-123", 'a"b'}) == '{"msg": "******** and ********"}'


def test_a_module_that_cannot_be_loaded_says_how_to_fall_back(monkeypatch):
    def broken():
        raise ImportError("no module named hvac_like")

    action = _action()
    monkeypatch.setattr(action, "load_module", broken)
    with pytest.raises(AnsibleActionFail, match="cannot be loaded in the controller's worker.*MESHPKI_IN_PROCESS=0"):
        action.run(task_vars={})


MODULE_FILE = "ansible_collections.meshpki.vault_ca.plugins.modules.vault_policy"


def _forget(name):
    for loaded in [m for m in sys.modules if m == name]:
        del sys.modules[loaded]


@pytest.mark.parametrize("environ, loaded", [
    ({}, True),
    ({"MESHPKI_PRELOAD": "0"}, False),
    ({"MESHPKI_IN_PROCESS": "false"}, False),
    ({"MESHPKI_PRELOAD": "yes", "MESHPKI_IN_PROCESS": "1"}, True),
    ({"MESHPKI_PRELOAD": "maybe"}, False),
])
def test_preload_imports_the_module_file_unless_switched_off(environ, loaded):
    """Issue 17: the module file (and what it imports) is loaded where the action plugin class is defined - the
    controller's main process - so the forked workers do not import it again."""
    _forget(MODULE_FILE)
    assert in_process.preload("vault_policy", environ=environ) is loaded
    assert (MODULE_FILE in sys.modules) is loaded


def test_preload_never_fails():
    assert in_process.preload("no_such_module", environ={}) is False


def test_defining_an_action_plugin_class_preloads_its_module(monkeypatch):
    monkeypatch.delenv("MESHPKI_PRELOAD", raising=False)
    monkeypatch.delenv("MESHPKI_IN_PROCESS", raising=False)
    _forget(MODULE_FILE)
    action_file = "ansible_collections.meshpki.vault_ca.plugins.action.vault_policy"
    type("ActionModule", (in_process.ModuleAction,), {"__module__": action_file})
    assert MODULE_FILE in sys.modules
