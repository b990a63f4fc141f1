#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_login
short_description: Log in to Vault or OpenBao once and return a token for later tasks
version_added: 0.1.0
description:
  - Logs in with any auth method of the collection (approle, userpass, kubernetes, cert, or a token) and returns
    the client token, so that a play logs in B(once) and passes O(token) to every later task instead of logging in
    again in each of them.
  - With O(state=absent), revokes the token given in O(token) (C(auth/token/revoke-self), with that token
    itself - no other permission is needed); an already invalid token (revoked, expired, used up) is not an
    error and reports no change.
  - Revoke every token you log in for, in an C(always:) section so that a failed play revokes it too - the role
    P(meshpki.vault_ca.istio_vault_ca#role) does so with its own login, and never revokes a token it was given.
  - The returned token is a secret. Set C(no_log) to true on the task that registers it - Ansible cannot hide a
    value a module returns.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details:
      - Logging in changes nothing that a re-run would see, so it also runs in check mode (later tasks need the
        token to read), so a check-mode run creates a token too.
      - With O(state=absent) in check mode, the token is looked up and the module reports whether it would be
        revoked, without revoking it. To revoke, in a check-mode run, the token that run's own login created
        (the right thing, nothing else would revoke it), set C(check_mode=false) on that task, as the role does.
  diff_mode:
    support: none
options:
  state:
    description:
      - V(present) logs in and returns the token.
      - V(absent) revokes the token in O(token).
    type: str
    choices: [present, absent]
    default: present
'''

EXAMPLES = r'''
- name: Log in once with AppRole (role_id/secret_id from VAULT_ROLE_ID/VAULT_SECRET_ID)
  meshpki.vault_ca.vault_login:
    url: https://vault.example.com:8200
    auth_method: approle
  register: vault_session
  no_log: true

- name: Later tasks reuse the token
  meshpki.vault_ca.vault_policy:
    url: https://vault.example.com:8200
    token: "{{ vault_session.token }}"
    name: istioca
    rules:
      - path: pki/cert/ca
        capabilities: [read]

- name: Revoke it at the end, also when a task failed (and in check mode, as this run created it)
  block:
    - name: Work with the token
      ansible.builtin.debug:
        msg: the tasks that use vault_session.token
  always:
    - name: Revoke the token of the login above
      meshpki.vault_ca.vault_login:
        url: https://vault.example.com:8200
        token: "{{ vault_session.token }}"
        state: absent
      check_mode: false
'''

RETURN = r'''
token:
  description: The client token (for O(auth_method=token), the token given). Register it with C(no_log).
  returned: state is present
  type: str
auth_method:
  description: The auth method used.
  returned: always
  type: str
  sample: approle
policies:
  description: Policies attached to the token.
  returned: state is present and the method logged in
  type: list
  elements: str
  sample: [default, meshpki-admin]
lease_duration:
  description: Seconds the token is valid for (0 for a token without expiry).
  returned: state is present and the method logged in
  type: int
  sample: 3600
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.login import token_session

ARGUMENT_SPEC = module_spec(dict(state=dict(type="str", choices=["present", "absent"], default="present")))


def main():
    MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True).run(token_session)


if __name__ == "__main__":
    main()
