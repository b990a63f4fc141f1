# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/login.py (the vault_login module's logic) against a strict FakeVault: the token and what the login said;
revoking with the token itself, check mode, and a token Vault no longer accepts."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.login import token_session
from ansible_collections.meshpki.vault_ca.plugins.modules.vault_login import ARGUMENT_SPEC
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub

LOOKUP = ("GET", "auth/token/lookup-self")


def session(vault, token="hvs.session", login=None, check_mode=False, **params):
    vault.hvac.token = token
    vault.login_response = login
    module = ModuleStub(params, client=vault, check_mode=check_mode, argument_spec=ARGUMENT_SPEC)
    return token_session(module)


def test_a_login_returns_its_token_policies_and_lease():
    vault = FakeVault()
    login = {"client_token": "hvs.session", "policies": ["default", "meshpki-admin"], "lease_duration": 3600}
    assert session(vault, login=login, auth_method="approle") == {
        "changed": False, "auth_method": "approle", "token": "hvs.session",
        "policies": ["default", "meshpki-admin"], "lease_duration": 3600}
    assert vault.requests == []


def test_token_policies_are_the_fallback_and_token_auth_reports_token():
    vault = FakeVault()
    assert session(vault, login={"token_policies": ["p"]})["policies"] == ["p"]
    result = session(vault, token="hvs.given")
    assert result == {"changed": False, "auth_method": "token", "token": "hvs.given", "policies": [],
                      "lease_duration": 0}


def test_absent_revokes_the_token_itself():
    vault = FakeVault({LOOKUP: {"data": {"id": "hvs.session"}}})
    assert session(vault, state="absent") == {"changed": True, "auth_method": "token"}
    assert vault.writes() == [("POST", "auth/token/revoke-self")]
    assert vault.body("POST", "auth/token/revoke-self") == {}


def test_absent_in_check_mode_looks_up_and_revokes_nothing():
    vault = FakeVault({LOOKUP: {"data": {"id": "hvs.session"}}})
    assert session(vault, check_mode=True, state="absent") == {"changed": True, "auth_method": "token"}
    assert vault.writes() == [] and vault.paths() == ["auth/token/lookup-self"]


def test_a_token_vault_no_longer_accepts_is_no_change():
    vault = FakeVault({LOOKUP: 403})
    assert session(vault, state="absent") == {"changed": False, "auth_method": "token"}
    assert vault.writes() == []


def test_other_lookup_failures_are_errors():
    vault = FakeVault({LOOKUP: 503})
    with pytest.raises(MeshPkiError, match="Failed to look up the token 'auth/token/lookup-self'"):
        session(vault, state="absent")
    assert vault.writes() == []
