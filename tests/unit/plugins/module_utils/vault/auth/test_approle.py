# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/auth/approle.py (and the login every strategy shares, base.py): role_id required, secret_id optional, what
is posted where, the auth mount (option, VAULT_AUTH_MOUNT, checked as a path), and failed logins."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.approle import AppRoleAuth
from harness.fake_vault import FakeVault, login_answer


def login(params, vault=None, path="auth/approle/login"):
    method = AppRoleAuth(params)
    method.validate()
    vault = vault or FakeVault({("POST", path): login_answer(policies=["meshpki-admin"])})
    auth = method.authenticate(vault.hvac, vault.conn)
    return vault, auth


def test_role_id_and_secret_id_are_posted_to_the_approle_login():
    vault, auth = login({"role_id": "rid", "secret_id": "sid"})
    assert vault.requests[0].method == "POST" and vault.body("POST", "auth/approle/login") == {
        "role_id": "rid", "secret_id": "sid"}
    assert vault.hvac.token == "hvs.from-login" and auth["policies"] == ["meshpki-admin"]


def test_without_a_secret_id_only_the_role_id_is_sent():
    """A role with bind_secret_id=false takes no secret_id: none is sent, not an empty one."""
    vault, _auth = login({"role_id": "rid"})
    assert vault.body("POST", "auth/approle/login") == {"role_id": "rid"}


def test_role_id_and_secret_id_from_the_environment(monkeypatch):
    monkeypatch.setenv("VAULT_ROLE_ID", "env-rid")
    monkeypatch.setenv("VAULT_SECRET_ID", "env-sid")
    vault, _auth = login({})
    assert vault.body("POST", "auth/approle/login") == {"role_id": "env-rid", "secret_id": "env-sid"}


def test_a_missing_role_id_is_refused_before_any_request():
    with pytest.raises(MeshPkiError) as caught:
        AppRoleAuth({"secret_id": "sid"}).validate()
    assert str(caught.value) == "auth_method 'approle' needs the role_id option or VAULT_ROLE_ID."


def test_the_auth_mount_option_then_vault_auth_mount(monkeypatch):
    vault, _auth = login({"role_id": "rid", "auth_mount": "/approle-ansible/"}, path="auth/approle-ansible/login")
    assert vault.paths("POST") == ["auth/approle-ansible/login"]
    monkeypatch.setenv("VAULT_AUTH_MOUNT", "team-a/approle")
    vault, _auth = login({"role_id": "rid"}, path="auth/team-a/approle/login")
    assert vault.paths("POST") == ["auth/team-a/approle/login"]


@pytest.mark.parametrize("mount", ["../sys", "a/./b", "a?b"])
def test_a_hostile_auth_mount_is_refused_when_the_strategy_is_built(mount, monkeypatch):
    with pytest.raises(MeshPkiError, match="auth_mount '.*' is not"):
        AppRoleAuth({"role_id": "rid", "auth_mount": mount})
    monkeypatch.setenv("VAULT_AUTH_MOUNT", mount)
    with pytest.raises(MeshPkiError, match=r"VAULT_AUTH_MOUNT \(the auth_mount from the environment\) '.*' is not"):
        AppRoleAuth({"role_id": "rid"})


def test_a_refused_login_names_the_method_and_the_path():
    vault = FakeVault({("POST", "auth/approle/login"): 400})
    with pytest.raises(MeshPkiError) as caught:
        login({"role_id": "rid", "secret_id": "wrong"}, vault=vault)
    assert str(caught.value).startswith("Failed to log in with approle auth 'auth/approle/login': Vault rejected "
                                        "the request (400)")
    assert "wrong" not in str(caught.value)


def test_a_login_without_a_client_token_is_an_error():
    vault = FakeVault({("POST", "auth/approle/login"): {"auth": None, "warnings": ["odd"]}})
    with pytest.raises(MeshPkiError) as caught:
        login({"role_id": "rid"}, vault=vault)
    assert str(caught.value) == "Log in with approle auth at 'auth/approle/login' returned no client token."
