# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/audit.py (the vault_audit module's logic) against a strict FakeVault: the device enabled only when missing,
with the request body it takes; the same device is no change; another one there is an error; OpenBao's refusal."""

import hvac.exceptions as hvac_exc
import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.audit import ensure_audit_device
from ansible_collections.meshpki.vault_ca.plugins.modules.vault_audit import ARGUMENT_SPEC
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub

LOG = {"file_path": "/vault/vault-audit.log"}


def listed(answers=None, **devices):
    """FakeVault answers: sys/audit listing ``devices`` ({path: entry}), plus ``answers``."""
    answers = dict(answers or {})
    answers[("GET", "sys/audit")] = {"data": dict(("%s/" % path, entry) for path, entry in devices.items())}
    return answers


def run(vault, check_mode=False, **params):
    module = ModuleStub(params, client=vault, check_mode=check_mode, argument_spec=ARGUMENT_SPEC)
    return ensure_audit_device(module)


def test_a_missing_device_is_enabled_with_string_options():
    vault = FakeVault(listed())
    result = run(vault, options={"file_path": "/vault/a.log", "mode": 600}, description="the guide's trail")
    assert result["changed"] and vault.writes() == [("POST", "sys/audit/file")]
    assert vault.body("POST", "sys/audit/file") == {
        "type": "file", "description": "the guide's trail", "options": {"file_path": "/vault/a.log", "mode": "600"}}
    assert result["path"] == "file"
    assert result["diff"] == {"before": {}, "after": {"type": "file",
                                                      "options": {"file_path": "/vault/a.log", "mode": "600"}}}


def test_the_path_defaults_to_the_type_and_loses_its_slashes():
    vault = FakeVault(listed())
    assert run(vault, path="/team-a/", options=LOG)["path"] == "team-a"
    assert vault.writes() == [("POST", "sys/audit/team-a")]


def test_the_same_device_is_no_change():
    vault = FakeVault(listed(file={"type": "file", "options": {"file_path": "/vault/vault-audit.log"},
                                   "description": "", "local": False}))
    result = run(vault, options=LOG)
    assert not result["changed"] and vault.writes() == []


def test_check_mode_enables_nothing():
    vault = FakeVault(listed())
    result = run(vault, check_mode=True, options=LOG)
    assert result["changed"] and vault.writes() == []


def test_another_device_at_the_path_is_an_error_and_nothing_is_written():
    vault = FakeVault(listed(file={"type": "file", "options": {"file_path": "/elsewhere.log"}}))
    with pytest.raises(MeshPkiError) as caught:
        run(vault, options=LOG)
    assert str(caught.value).startswith("The audit device 'file' exists as file with options {'file_path': "
                                        "'/elsewhere.log'}, not file with {'file_path': '/vault/vault-audit.log'}")
    assert vault.writes() == []


@pytest.mark.parametrize("params,message", [
    ({}, "A file audit device needs options.file_path (for example file_path: /vault/vault-audit.log)."),
    ({"device_type": "socket", "options": {"socket_type": "tcp"}},
     "A socket audit device needs options.address (for example address: 127.0.0.1:9090)."),
])
def test_a_missing_required_option_fails_before_the_login(params, message):
    vault = FakeVault()
    module = ModuleStub(params, client=vault, argument_spec=ARGUMENT_SPEC)
    with pytest.raises(MeshPkiError, match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")):
        ensure_audit_device(module)
    assert module.logins == 0 and vault.requests == []


def test_syslog_needs_no_option():
    vault = FakeVault(listed())
    assert run(vault, device_type="syslog")["changed"]
    assert vault.body("POST", "sys/audit/syslog") == {"type": "syslog", "options": {}, "description": ""}


def test_openbao_refusal_says_how_to_declare_the_device():
    refusal = hvac_exc.InvalidRequest("refused", errors=["cannot enable audit devices in declarative mode"])
    vault = FakeVault(listed({("POST", "sys/audit/file"): refusal}))
    with pytest.raises(MeshPkiError) as caught:
        run(vault, options=LOG)
    assert str(caught.value) == (
        "OpenBao does not enable audit devices through its API, and none is declared at 'file'. Declare it in the "
        "server configuration: audit \"file\" \"file\" { options { file_path = \"/vault/vault-audit.log\" } } and "
        "restart or SIGHUP the server.")


def test_other_write_errors_pass_through():
    vault = FakeVault(listed({("POST", "sys/audit/file"): 403}))
    with pytest.raises(MeshPkiError, match="permission denied - the token needs 'update' or 'sudo'"):
        run(vault, options=LOG)
