#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_audit
short_description: Ensure a Vault audit device, or check that OpenBao declares one
version_added: 0.1.0
description:
  - Ensures an audit device (the guide's C(vault audit enable file file_path=...)).
  - An existing device at O(path) with the same type and options is left alone. A device there with other
    options is an error - Vault cannot change an audit device in place, and disabling one loses the HMAC salt
    of its log.
  - OpenBao refuses to enable audit devices through its API; declare them in the server configuration
    (an C(audit "file" "<path>" {...}) stanza). Against OpenBao the module then only checks that the declared
    device exists with these options, and otherwise fails saying so.
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
    details: Reads C(sys/audit) and reports; enables nothing.
  diff_mode:
    support: full
    details: Shows the device before and after.
options:
  device_type:
    description: The audit device type.
    type: str
    default: file
    choices: [file, socket, syslog]
  path:
    description: Where the device is mounted (C(sys/audit/<path>)). Defaults to O(device_type).
    type: str
  options:
    description:
      - The device's options, for example C(file_path) for a file device. Values are strings.
      - A V(file) device needs C(file_path) and a V(socket) device needs C(address); without them the task fails
        before any request.
    type: dict
    default: {}
  description:
    description: Description of the device, when it is created.
    type: str
    default: ''
'''

EXAMPLES = r'''
- name: The guide's audit trail
  meshpki.vault_ca.vault_audit:
    options:
      file_path: /vault/vault-audit.log
'''

RETURN = r'''
path:
  description: The audit device path.
  returned: always
  type: str
  sample: file
device:
  description: The device after the task (type and options).
  returned: always
  type: dict
  sample: {type: file, options: {file_path: /vault/vault-audit.log}}
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.audit import ensure_audit_device

ARGUMENT_SPEC = module_spec(dict(
    device_type=dict(type="str", default="file", choices=["file", "socket", "syslog"]),
    path=dict(type="str"),
    options=dict(type="dict", default={}),
    description=dict(type="str", default=""),
))


def main():
    MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True, path_options=dict(path="mount")).run(ensure_audit_device)


if __name__ == "__main__":
    main()
