# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every auth strategy shares: the mount default and one translated login request."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError, describe_request_error
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import env
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import check_path, quote_request_path


class AuthMethodBase(object):
    """A strategy: validate(params) checks the inputs before any request; authenticate(client, conn)
    logs in and leaves the token on the client. Subclasses set NAME (also the default mount)."""

    NAME = None

    def __init__(self, params):
        self.params = params
        if params.get("auth_mount"):
            self.mount = check_path("auth_mount", params["auth_mount"], "mount")
        elif env("VAULT_AUTH_MOUNT"):
            self.mount = check_path("VAULT_AUTH_MOUNT (the auth_mount from the environment)", env("VAULT_AUTH_MOUNT"),
                                    "mount")
        else:
            self.mount = self.NAME

    def validate(self):
        raise NotImplementedError

    def require(self, option, value, env_names=()):
        if not value:
            where = " or ".join(["the %s option" % option] + list(env_names))
            raise MeshPkiError("auth_method '%s' needs %s." % (self.NAME, where))
        return value

    def login(self, client, conn, path, payload):
        """POST auth/<mount>/<path> and keep the client token it returns; never logs the payload."""
        full = "auth/%s/%s" % (self.mount, path)
        try:
            response = client.adapter.post("/v1/" + quote_request_path(full), json=payload)
        except Exception as e:  # translated: the message names the method, the path and the fix
            raise describe_request_error(e, "log in with %s auth" % self.NAME, full, "update", conn)
        auth = (response or {}).get("auth") or {}
        if not auth.get("client_token"):
            raise MeshPkiError("Log in with %s auth at '%s' returned no client token." % (self.NAME, full))
        client.token = auth["client_token"]
        return auth
