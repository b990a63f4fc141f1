# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/auth/cert.py: TLS client-certificate auth needs the connection's client_cert/client_key and https; the
optional role name (role_id) is posted as ``name``."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.cert import CertAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from harness.fake_vault import FakeVault, login_answer


def connection(url="https://vault.test:8200", client_cert="/etc/ansible/client.pem"):
    return VaultConnection.from_params({"url": url, "client_cert": client_cert,
                                        "client_key": client_cert and "/etc/ansible/client.key"})


def authenticate(params, conn):
    method = CertAuth(params)
    method.validate()
    vault = FakeVault({("POST", "auth/cert/login"): login_answer()})
    method.authenticate(vault.hvac, conn)
    return vault


def test_the_role_name_is_posted_as_name():
    vault = authenticate({"role_id": "ansible-runner"}, connection())
    assert vault.body("POST", "auth/cert/login") == {"name": "ansible-runner"}
    assert vault.hvac.token == "hvs.from-login"


def test_without_a_role_the_body_is_empty():
    vault = authenticate({}, connection())
    assert vault.writes() == [("POST", "auth/cert/login")] and vault.body("POST", "auth/cert/login") == {}


@pytest.mark.parametrize("conn,message", [
    (connection(client_cert=None), "auth_method 'cert' needs client_cert and client_key (or VAULT_CLIENT_CERT and "
                                   "VAULT_CLIENT_KEY): Vault authenticates the TLS client certificate."),
    (connection(url="http://vault.test:8200"), "auth_method 'cert' needs an https:// Vault address; "
                                               "'http://vault.test:8200' is plain HTTP."),
])
def test_no_client_certificate_or_plain_http_is_refused_before_any_request(conn, message):
    method = CertAuth({})
    method.validate()
    vault = FakeVault()
    with pytest.raises(MeshPkiError) as caught:
        method.authenticate(vault.hvac, conn)
    assert str(caught.value) == message and vault.requests == []
