# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/auth/token.py: the token option, then VAULT_TOKEN/BAO_TOKEN, then ~/.vault-token; no request is sent."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.token import TokenAuth
from harness.fake_vault import FakeVault


def token_of(params):
    method = TokenAuth(params)
    method.validate()
    vault = FakeVault()
    assert method.authenticate(vault.hvac, vault.conn) is None
    assert vault.requests == []
    return vault.hvac.token


def test_the_option_wins_over_the_environment_and_is_stripped(monkeypatch):
    monkeypatch.setenv("VAULT_TOKEN", "hvs.env")
    assert token_of({"token": " hvs.option\n"}) == "hvs.option"


def test_vault_token_then_bao_token(monkeypatch):
    monkeypatch.setenv("BAO_TOKEN", "hvs.bao")
    assert token_of({}) == "hvs.bao"
    monkeypatch.setenv("VAULT_TOKEN", "hvs.vault")
    assert token_of({}) == "hvs.vault"


def test_the_vault_cli_token_file_comes_last(clean_auth_environment):
    (clean_auth_environment / ".vault-token").write_text("hvs.cli\n")
    assert token_of({}) == "hvs.cli"


def test_no_token_anywhere_is_an_error_saying_where_to_put_one():
    with pytest.raises(MeshPkiError) as caught:
        TokenAuth({}).validate()
    assert str(caught.value) == ("auth_method 'token' needs a token: set the token option, VAULT_TOKEN (BAO_TOKEN), "
                                 "or log in with the vault CLI so that ~/.vault-token exists.")
