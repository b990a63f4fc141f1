# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Kubernetes auth: a service-account JWT (jwt, or read from jwt_file) and a role at auth/<mount>/login."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.base import AuthMethodBase

DEFAULT_JWT_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class KubernetesAuth(AuthMethodBase):
    NAME = "kubernetes"

    def validate(self):
        self.role = self.require("role_id (the Kubernetes auth role name)", self.params.get("role_id"))
        jwt = self.params.get("jwt")
        if not jwt:
            path = self.params.get("jwt_file") or DEFAULT_JWT_FILE
            try:
                with open(path) as f:
                    jwt = f.read().strip()
            except (IOError, OSError) as e:
                raise MeshPkiError("auth_method 'kubernetes' needs a service-account JWT: set jwt, or jwt_file "
                                   "to a readable token file ('%s': %s)." % (path, e.strerror or e))
        if not jwt:
            raise MeshPkiError("auth_method 'kubernetes': the service-account JWT is empty.")
        self.jwt = jwt

    def authenticate(self, client, conn):
        return self.login(client, conn, "login", {"role": self.role, "jwt": self.jwt})
