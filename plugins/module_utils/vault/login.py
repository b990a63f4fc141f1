# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A login session (the vault_login module): log in once with any auth method and hand the token to later tasks, or
revoke a token (``auth/token/revoke-self``, with the token itself) when the play is done."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError


def login_result(client, method):
    """What a login returns: the client token and, for a method that logged in, its policies and lease."""
    auth = client.login_response or {}
    return dict(changed=False, auth_method=method, token=client.hvac.token,
                policies=auth.get("policies") or auth.get("token_policies") or [],
                lease_duration=auth.get("lease_duration", 0))


def revoke_token(client, method, check_mode):
    """Revoke the client's token; one Vault no longer accepts (revoked, expired, used up) is no change."""
    try:
        client.read("auth/token/lookup-self", action="look up the token")
    except MeshPkiError as e:
        if e.details.get("status") != 403:
            raise
        return dict(changed=False, auth_method=method)
    if not check_mode:
        client.write("auth/token/revoke-self", action="revoke the token")
    return dict(changed=True, auth_method=method)


def token_session(module):
    """vault_login: state=present logs in (get_authenticated_client) and returns the token; absent revokes it."""
    client = module.get_authenticated_client()
    method = module.params["auth_method"] or "token"
    if module.params["state"] == "absent":
        return revoke_token(client, method, module.check_mode)
    return login_result(client, method)
