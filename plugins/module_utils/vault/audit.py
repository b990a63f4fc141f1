# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Audit devices (the vault_audit module): ``sys/audit`` read, the device at a path compared by type and options,
enabled when missing. Vault cannot change a device in place, so one there with other options is an error; OpenBao
enables none through its API, so there the device must be declared in the server configuration."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError

# The option each device type cannot work without (Vault refuses the device without it).
REQUIRED_OPTION = {"file": ("file_path", "/vault/vault-audit.log"), "socket": ("address", "127.0.0.1:9090")}


def device(device_type, options):
    """A device as compared: its type and its options, every value a string."""
    return {"type": device_type, "options": dict((k, str(v)) for k, v in (options or {}).items())}


def wanted_device(params):
    """(path, device) the task asks for; MeshPkiError, before any request, when the type's required option is
    missing."""
    path = (params["path"] or params["device_type"]).strip("/")
    wanted = device(params["device_type"], params["options"])
    required = REQUIRED_OPTION.get(wanted["type"])
    if required and not wanted["options"].get(required[0]):
        raise MeshPkiError("A %s audit device needs options.%s (for example %s: %s). Nothing was changed."
                           % (wanted["type"], required[0], required[0], required[1]))
    return path, wanted


def read_device(client, path):
    """The device at ``path`` (type and options), or None."""
    devices = client.read("sys/audit", action="list audit devices") or {}
    entry = (devices.get("data") or devices).get(path + "/")
    return device(entry.get("type"), entry.get("options")) if entry else None


def _declare_it(path, wanted):
    return MeshPkiError(
        "OpenBao does not enable audit devices through its API, and none is declared at '%s'. Declare it in the "
        "server configuration: audit \"%s\" \"%s\" { options { %s } } and restart or SIGHUP the server."
        % (path, wanted["type"], path, " ".join('%s = "%s"' % kv for kv in sorted(wanted["options"].items()))))


def ensure_audit_device(module):
    """vault_audit: enable the device when none is at its path; the same one there is no change, another is an
    error. Returns the result with its diff."""
    path, wanted = wanted_device(module.params)
    client = module.get_authenticated_client()
    before = read_device(client, path)
    if before is not None and before != wanted:
        raise MeshPkiError("The audit device '%s' exists as %s with options %s, not %s with %s. An audit device cannot "
                           "be changed in place: pick another path, or disable it deliberately first."
                           % (path, before["type"], before["options"], wanted["type"], wanted["options"]))
    changed = before is None
    if changed and not module.check_mode:
        try:
            client.write("sys/audit/%s" % path, dict(wanted, description=module.params["description"]),
                         action="enable audit device", capability=("update", "sudo"))
        except MeshPkiError as e:
            if "declarative" in str(e) or "config-based" in str(e):
                raise _declare_it(path, wanted)
            raise
    return dict(changed=changed, path=path, device=wanted, diff=dict(before=before or {}, after=wanted))
