# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in C(check_mode) and return changed status prediction without modifying the target.
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) when run with C(--diff).
'''

    ACTION_GROUP_VAULT = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/meshpki.vault_ca.vault) in C(module_defaults) to set connection and auth options once.
    support: full
    membership:
      - meshpki.vault_ca.vault
'''

    INPUTS = r'''
options: {}
notes:
  - Before its first request the module checks every option that becomes part of a Vault or Kubernetes path
    (mounts, KV path and field, policy, role and object names, the Vault namespace, C(auth_mount)) - no C(.),
    C(..) or empty segment, no C(?), C(#), C(%), quotes, braces, backslashes, white space or control characters,
    and no C(/) in a single name. What passes is percent-encoded when it is sent. A bad value fails naming the
    option, and nothing is sent.
  - A private key pasted into an option that is not C(no_log) (a certificate, a CA chain, a public key) is masked
    in all output at once and the module fails with "<option> contains a private key; pass only certificates".
  - With C(ANSIBLE_KEEP_REMOTE_FILES) on (which also turns pipelining off) Ansible leaves the module's arguments,
    credentials included, in an AnsiballZ file on the target; the module warns and names the file.
'''
