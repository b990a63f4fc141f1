# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""AppRole auth: role_id (VAULT_ROLE_ID) and secret_id (VAULT_SECRET_ID) at auth/<mount>/login."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.base import AuthMethodBase
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import env


class AppRoleAuth(AuthMethodBase):
    NAME = "approle"

    def validate(self):
        self.role_id = self.require("role_id", self.params.get("role_id") or env("VAULT_ROLE_ID"), ["VAULT_ROLE_ID"])
        # A role may be created with bind_secret_id=false: then no secret_id is sent.
        self.secret_id = self.params.get("secret_id") or env("VAULT_SECRET_ID")

    def authenticate(self, client, conn):
        payload = {"role_id": self.role_id}
        if self.secret_id:
            payload["secret_id"] = self.secret_id
        return self.login(client, conn, "login", payload)
