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

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import VaultModule


def _normalise(entry):
    if not entry:
        return None
    return {"type": entry.get("type"), "options": dict((k, str(v)) for k, v in (entry.get("options") or {}).items())}


# The option each device type cannot work without (Vault refuses the device without it).
REQUIRED_OPTION = {"file": ("file_path", "/vault/vault-audit.log"), "socket": ("address", "127.0.0.1:9090")}


def run_module(module):
    params = module.params
    path = (params["path"] or params["device_type"]).strip("/")
    wanted = {"type": params["device_type"], "options": dict((k, str(v)) for k, v in params["options"].items())}
    required = REQUIRED_OPTION.get(wanted["type"])
    if required and not wanted["options"].get(required[0]):
        raise MeshPkiError("A %s audit device needs options.%s (for example %s: %s). Nothing was changed."
                           % (wanted["type"], required[0], required[0], required[1]))
    client = module.get_authenticated_client()
    devices = (client.read("sys/audit", action="list audit devices") or {})
    devices = devices.get("data") or devices
    before = _normalise(devices.get(path + "/"))
    if before is not None and before != wanted:
        raise MeshPkiError("The audit device '%s' exists as %s with options %s, not %s with %s. An audit device cannot "
                           "be changed in place: pick another path, or disable it deliberately first."
                           % (path, before["type"], before["options"], wanted["type"], wanted["options"]))
    changed = before is None
    if changed and not module.check_mode:
        try:
            client.write("sys/audit/%s" % path, {"type": wanted["type"], "options": wanted["options"],
                                                 "description": params["description"]},
                         action="enable audit device", capability=("update", "sudo"))
        except MeshPkiError as e:
            if "declarative" in str(e) or "config-based" in str(e):
                raise MeshPkiError(
                    "OpenBao does not enable audit devices through its API, and none is declared at '%s'. Declare it "
                    "in the server configuration: audit \"%s\" \"%s\" { options { %s } } and restart or SIGHUP the "
                    "server." % (path, wanted["type"], path,
                                 " ".join('%s = "%s"' % kv for kv in sorted(wanted["options"].items()))))
            raise
    result = dict(changed=changed, path=path, device=wanted)
    if module._diff:
        result["diff"] = dict(before=before or {}, after=wanted)
    module.exit_json(**result)


def main():
    module = VaultModule(
        argument_spec=dict(
            device_type=dict(type="str", default="file", choices=["file", "socket", "syslog"]),
            path=dict(type="str"),
            options=dict(type="dict", default={}),
            description=dict(type="str", default=""),
        ),
        supports_check_mode=True,
        path_options=dict(path="mount"),
    )
    try:
        run_module(module)
    except MeshPkiError as e:
        module.fail_from(e)


if __name__ == "__main__":
    main()
