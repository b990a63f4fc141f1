# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Userpass auth: username and password at auth/<mount>/login/<username>."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.base import AuthMethodBase
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import env


class UserpassAuth(AuthMethodBase):
    NAME = "userpass"

    def validate(self):
        self.username = self.require("username", self.params.get("username") or env("VAULT_USERNAME"),
                                     ["VAULT_USERNAME"])
        self.password = self.require("password", self.params.get("password") or env("VAULT_PASSWORD"),
                                     ["VAULT_PASSWORD"])

    def authenticate(self, client, conn):
        return self.login(client, conn, "login/%s" % self.username, {"password": self.password})
