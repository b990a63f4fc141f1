# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TLS certificate auth: the connection's client_cert/client_key, optional role name (role_id)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.base import AuthMethodBase


class CertAuth(AuthMethodBase):
    NAME = "cert"

    def validate(self):
        self.role = self.params.get("role_id")

    def authenticate(self, client, conn):
        if not conn.client_cert:
            raise MeshPkiError("auth_method 'cert' needs client_cert and client_key (or VAULT_CLIENT_CERT and "
                               "VAULT_CLIENT_KEY): Vault authenticates the TLS client certificate.")
        if not conn.url.startswith("https://"):
            raise MeshPkiError("auth_method 'cert' needs an https:// Vault address; '%s' is plain HTTP." % conn.url)
        return self.login(client, conn, "login", {"name": self.role} if self.role else {})
