# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""VaultClient: the generic requests every module makes, each translated into a MeshPkiError that
names the action, the path and the capability needed. Modules never catch hvac exceptions."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import describe_request_error
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import quote_request_path

try:
    import hvac.exceptions as hvac_exc
except ImportError:
    hvac_exc = None


class VaultClient(object):
    """An authenticated hvac.Client (.hvac) plus its connection settings (.conn)."""

    def __init__(self, hvac_client, conn, login_response=None):
        self.hvac = hvac_client
        self.conn = conn
        self.login_response = login_response  # the "auth" block of a login; None for token auth

    def request(self, method, path, action, capability, json=None, params=None, missing_ok=False):
        """Send one request to /v1/<path>. Returns the JSON body (dict), or None for 204 and, with
        missing_ok, for 404. Every other failure becomes a MeshPkiError. The path is percent-encoded segment by
        segment, and a '.', '..' or empty segment is refused before anything is sent."""
        path = path.strip("/")
        quoted = quote_request_path(path)
        try:
            response = self.hvac.adapter.request(method, "/v1/" + quoted, json=json, params=params)
        except Exception as e:  # translated in one place
            if missing_ok and hvac_exc is not None and isinstance(e, hvac_exc.InvalidPath):
                return None
            seal_status = self._seal_status() if hvac_exc and isinstance(e, hvac_exc.VaultDown) else None
            raise describe_request_error(e, action, path, capability, self.conn, seal_status)
        return response if isinstance(response, dict) else None

    def _seal_status(self):
        """sys/seal-status (unauthenticated), or None when it cannot be read either."""
        try:
            return self.hvac.adapter.get("/v1/sys/seal-status")
        except Exception:  # only refines an error message that is raised anyway
            return None

    def read(self, path, action="read"):
        """GET; None when nothing is there (404)."""
        return self.request("GET", path, action, "read", missing_ok=True)

    def list(self, path, action="list"):
        body = self.request("LIST", path, action, "list", missing_ok=True)
        return ((body or {}).get("data") or {}).get("keys") or []

    def write(self, path, data=None, action="write", capability="update", method="POST"):
        return self.request(method, path, action, capability, json=data or {})

    def delete(self, path, action="delete"):
        return self.request("DELETE", path, action, "delete", missing_ok=True)
