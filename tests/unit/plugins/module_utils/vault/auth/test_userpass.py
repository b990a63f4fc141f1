# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/auth/userpass.py: username and password required (options or environment); the password is posted to
auth/<mount>/login/<username>."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.userpass import UserpassAuth
from harness.fake_vault import FakeVault, login_answer


def test_the_password_is_posted_to_the_users_login_path():
    method = UserpassAuth({"username": "alice", "password": "s3cret"})
    method.validate()
    vault = FakeVault({("POST", "auth/userpass/login/alice"): login_answer()})
    method.authenticate(vault.hvac, vault.conn)
    assert vault.writes() == [("POST", "auth/userpass/login/alice")]
    assert vault.body("POST", "auth/userpass/login/alice") == {"password": "s3cret"}
    assert vault.hvac.token == "hvs.from-login"


def test_username_and_password_from_the_environment(monkeypatch):
    monkeypatch.setenv("VAULT_USERNAME", "bob")
    monkeypatch.setenv("VAULT_PASSWORD", "pw")
    method = UserpassAuth({"auth_mount": "ldap-like"})
    method.validate()
    vault = FakeVault({("POST", "auth/ldap-like/login/bob"): login_answer()})
    method.authenticate(vault.hvac, vault.conn)
    assert vault.body("POST", "auth/ldap-like/login/bob") == {"password": "pw"}


@pytest.mark.parametrize("params,message", [
    ({"password": "pw"}, "auth_method 'userpass' needs the username option or VAULT_USERNAME."),
    ({"username": "alice"}, "auth_method 'userpass' needs the password option or VAULT_PASSWORD."),
])
def test_missing_credentials_are_refused(params, message):
    with pytest.raises(MeshPkiError) as caught:
        UserpassAuth(params).validate()
    assert str(caught.value) == message
