# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Token auth: the token option, then VAULT_TOKEN/BAO_TOKEN, then ~/.vault-token (as the vault CLI)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.base import AuthMethodBase
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import env


class TokenAuth(AuthMethodBase):
    NAME = "token"

    def validate(self):
        token = self.params.get("token") or env("VAULT_TOKEN", "BAO_TOKEN") or self._token_helper_file()
        if not token:
            raise MeshPkiError("auth_method 'token' needs a token: set the token option, VAULT_TOKEN (BAO_TOKEN), "
                               "or log in with the vault CLI so that ~/.vault-token exists.")
        self.token = token.strip()

    @staticmethod
    def _token_helper_file():
        path = os.path.expanduser("~/.vault-token")
        if os.path.isfile(path):
            with open(path) as f:
                return f.read().strip()
        return None

    def authenticate(self, client, conn):
        client.token = self.token
        return None
