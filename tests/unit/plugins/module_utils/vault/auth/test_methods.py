# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/auth/methods.py: authenticator_for picks the strategy (auth_method, then VAULT_AUTH_METHOD, then token),
validates it, and refuses an unknown name; the auth options (AUTH_ARGSPEC) keep every secret no_log."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.approle import AppRoleAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.methods import (
    AUTH_ARGSPEC,
    METHODS,
    authenticator_for,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.token import TokenAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.userpass import UserpassAuth


def test_the_table_names_every_strategy():
    assert sorted(METHODS) == ["approle", "cert", "kubernetes", "token", "userpass"]
    assert all(METHODS[name].NAME == name for name in METHODS)
    assert AUTH_ARGSPEC["auth_method"]["choices"] == sorted(METHODS)


def test_token_is_the_default_and_is_validated():
    method = authenticator_for({"token": "hvs.x"})
    assert isinstance(method, TokenAuth) and method.token == "hvs.x" and method.mount == "token"
    with pytest.raises(MeshPkiError, match="auth_method 'token' needs a token"):
        authenticator_for({})


def test_the_option_wins_over_vault_auth_method(monkeypatch):
    monkeypatch.setenv("VAULT_AUTH_METHOD", "userpass")
    method = authenticator_for({"auth_method": "approle", "role_id": "rid"})
    assert isinstance(method, AppRoleAuth) and method.role_id == "rid" and method.mount == "approle"
    method = authenticator_for({"username": "u", "password": "p"})
    assert isinstance(method, UserpassAuth) and method.mount == "userpass"


def test_an_unknown_method_from_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("VAULT_AUTH_METHOD", "github")
    with pytest.raises(MeshPkiError) as caught:
        authenticator_for({})
    assert str(caught.value) == ("Unknown auth method 'github' (from VAULT_AUTH_METHOD); use one of: approle, cert, "
                                 "kubernetes, token, userpass.")


def test_validation_errors_surface_from_authenticator_for():
    with pytest.raises(MeshPkiError, match="auth_method 'approle' needs the role_id option or VAULT_ROLE_ID."):
        authenticator_for({"auth_method": "approle"})


def test_every_secret_option_is_no_log():
    secret = [name for name, spec in AUTH_ARGSPEC.items() if spec.get("no_log")]
    assert secret == ["token", "secret_id", "password", "jwt"]
