# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module runtime (plugins/module_utils/module.py), driven the way Ansible runs a module: the arguments in
``basic._ANSIBLE_ARGS`` (ansible-core's patch_module_args), the result read from stdout, the exit caught as
SystemExit. MeshPkiModule.run's one exit (diff only in diff mode, MeshPkiError and any other exception turned into a
failure), requires(), and the input guards that refuse before ``fn`` runs."""

import contextlib
import importlib.metadata
import io
import json

import pytest
from ansible.module_utils.basic import missing_required_lib
from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19

from ansible_collections.meshpki.vault_ca.plugins.module_utils import module as runtime
from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from harness import certs

OWN = dict(name=dict(type="str", default="istioca"), certificate=dict(type="str"))
LOCAL_SPEC = module_spec(OWN, shared=())  # no Vault: nothing to log in to
VAULT_SPEC = module_spec(OWN)


@pytest.fixture
def tracebacks(monkeypatch):
    """Tracebacks on, as at -vvv (ansible-core 2.19 sends _ansible_tracebacks_for; the answer is cached per
    process, so it is patched here)."""
    try:
        from ansible.module_utils._internal import _traceback
    except ImportError:  # older ansible-core: fail_json always keeps ``exception``
        return
    monkeypatch.setattr(_traceback, "_is_traceback_enabled", lambda event: True)


def execute(args, fn, spec=None, **kwargs):
    """Build MeshPkiModule(spec, **kwargs) with ``args`` (plus Ansible's internal ones) and run ``fn``; returns
    (result, exit code, stdout)."""
    spec = LOCAL_SPEC if spec is None else spec
    args = dict({"_ansible_module_name": "meshpki.vault_ca.test_runtime"}, **args)
    kwargs.setdefault("vault", spec is not LOCAL_SPEC)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out):
        with pytest.raises(SystemExit) as exited:
            MeshPkiModule(spec, supports_check_mode=True, **kwargs).run(fn)
    text = out.getvalue()
    return json.loads(text[text.index("{"):]), exited.value.code, text


def changed_with_diff(module):
    return {"changed": True, "name": module.params["name"], "diff": {"before": "a", "after": "b"}}


def test_run_drops_the_diff_outside_diff_mode():
    result, code, _out = execute({}, changed_with_diff)
    assert code == 0 and result["changed"] is True and result["name"] == "istioca"
    assert "diff" not in result


def test_run_keeps_the_diff_in_diff_mode():
    result, code, _out = execute({"_ansible_diff": True}, changed_with_diff)
    assert code == 0 and result["diff"] == {"before": "a", "after": "b"}


def test_changed_defaults_to_false():
    result, code, _out = execute({}, lambda module: {"name": module.params["name"]})
    assert code == 0 and result["changed"] is False


def test_a_meshpki_error_fails_with_its_message_details_and_the_hvac_version():
    def fail(module):
        raise MeshPkiError("Failed to read 'istioca/cert/ca': permission denied - the token needs 'read'", status=403)
    result, code, _out = execute({}, fail, spec=VAULT_SPEC)
    assert code == 1 and result["failed"] is True
    assert result["msg"] == "Failed to read 'istioca/cert/ca': permission denied - the token needs 'read'"
    assert result["status"] == 403
    assert result["hvac_version"] == importlib.metadata.version("hvac")
    local, code, _out = execute({}, fail)  # a module that does not talk to Vault gives no hvac version
    assert code == 1 and local["status"] == 403 and "hvac_version" not in local


def test_any_other_exception_fails_naming_the_module_with_the_traceback(tracebacks):
    def bug(module):
        return {}["missing"]
    result, code, _out = execute({}, bug)
    assert code == 1 and result["failed"] is True
    assert result["msg"] == ("meshpki.vault_ca.test_runtime failed unexpectedly: KeyError: 'missing'. This is a bug in "
                             "meshpki.vault_ca; run with -vvv for the traceback and report it.")
    assert "Traceback (most recent call last)" in result["exception"]
    assert "in bug" in result["exception"] and "KeyError: 'missing'" in result["exception"]


def test_requires_a_missing_library_fails_with_ansibles_message(monkeypatch, tracebacks):
    monkeypatch.setitem(runtime.LIBRARIES, "meshpki-missing", "meshpki_no_such_library")
    called = []
    result, code, _out = execute({}, called.append, requires=("meshpki-missing",))
    assert code == 1 and called == []
    assert result["msg"] == missing_required_lib("meshpki-missing")
    assert "No module named 'meshpki_no_such_library'" in result["exception"]


def test_requires_a_present_library_passes():
    result, code, _out = execute({}, changed_with_diff, requires=("cryptography", "PyYAML"))
    assert code == 0 and result["changed"]


def test_a_private_key_in_an_option_that_is_not_no_log_is_refused_and_masked():
    pair = certs.make_ca("runtime test CA")
    called = []
    result, code, out = execute({"certificate": pair.cert_pem + pair.key_pem}, called.append)
    assert code == 1 and called == []
    assert result["msg"].startswith("certificate contains a private key; pass only certificates. The key was masked")
    assert result["options"] == ["certificate"]
    body = pair.key_pem.strip().splitlines()[1]
    assert body not in out


@pytest.mark.parametrize("value", ["..", "../victim", "a/../b"])
def test_a_path_option_with_dot_dot_is_refused_before_fn_runs(value):
    called = []
    result, code, _out = execute({"name": value}, called.append, path_options={"name": "name"})
    assert code == 1 and called == []
    assert result["msg"].startswith("name '%s' is not a single Vault name" % value)
    assert "nothing was sent" in result["msg"]


def test_a_vault_module_checks_the_shared_auth_mount_too():
    called = []
    args = {"auth_mount": "../sys", "url": "https://vault.test:8200", "token": "hvs.runtime-test-token"}
    result, code, _out = execute(args, called.append, spec=VAULT_SPEC)
    assert code == 1 and called == []
    assert result["msg"].startswith("auth_mount '../sys' is not")
