# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Auth options and the name -> strategy table."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.approle import AppRoleAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.cert import CertAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.kubernetes import KubernetesAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.token import TokenAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.userpass import UserpassAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import env

METHODS = dict((m.NAME, m) for m in (TokenAuth, AppRoleAuth, UserpassAuth, KubernetesAuth, CertAuth))

AUTH_ARGSPEC = dict(
    auth_method=dict(type="str", choices=sorted(METHODS)),
    auth_mount=dict(type="str"),
    token=dict(type="str", no_log=True),
    role_id=dict(type="str"),
    secret_id=dict(type="str", no_log=True),
    username=dict(type="str"),
    password=dict(type="str", no_log=True),
    jwt=dict(type="str", no_log=True),
    jwt_file=dict(type="path"),
)


def authenticator_for(params):
    """The strategy for params['auth_method'] (or VAULT_AUTH_METHOD; default token), validated."""
    name = params.get("auth_method") or env("VAULT_AUTH_METHOD") or "token"
    if name not in METHODS:
        raise MeshPkiError("Unknown auth method '%s' (from VAULT_AUTH_METHOD); use one of: %s."
                           % (name, ", ".join(sorted(METHODS))))
    method = METHODS[name](params)
    method.validate()
    return method
