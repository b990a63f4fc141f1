# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Secrets engines and auth methods: read, compare, enable and tune - only when different, and
never in check mode. Each ensure_* returns a MountResult with changed/before/after for diffs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds


class MountResult(object):
    def __init__(self, path, before, after):
        self.path = path
        self.before = before
        self.after = after

    @property
    def changed(self):
        return self.before != self.after


def mount_summary(info):
    """The comparable part of a mount (an entry of sys/mounts or sys/auth): type, KV version ("1" when the mount
    says none), max lease TTL in seconds; None for None."""
    if info is None:
        return None
    kind = info.get("type")
    options = info.get("options") or {}
    summary = {"type": kind}
    if kind in ("kv", "generic"):
        summary["version"] = str(options.get("version") or "1")
    max_ttl = (info.get("config") or {}).get("max_lease_ttl")
    if max_ttl is not None:
        summary["max_lease_ttl"] = int(max_ttl)
    return summary


def _lookup(client, table, path, action):
    """The entry for ``path`` in sys/mounts or sys/auth (one read of the whole table; reading
    sys/mounts/<path> answers 400, not 404, for a missing mount)."""
    body = client.read(table, action=action) or {}
    entries = body.get("data") or body
    return entries.get(path.strip("/") + "/")


def read_secrets_engine(client, path):
    """The secrets engine mounted at ``path`` (type, options, config), or None."""
    return _lookup(client, "sys/mounts", path, "list secrets engines")


def _check_type(path, current, engine_type, kv_version):
    want = "kv v%s" % kv_version if engine_type == "kv" else engine_type
    have = current["type"]
    if have == "kv":
        have = "kv v%s" % current.get("version", "1")
    if have != want:
        raise MeshPkiError(
            "The mount '%s' is a %s secrets engine, but a %s engine is needed there. Choose another mount path, "
            "or move the existing engine away (nothing was changed)." % (path, have, want))


def _enable(client, api_path, payload, action, capability, again):
    """Write ``api_path`` to enable a mount. When a concurrent run (AWX jobs launched together) enabled it between
    our read and this write - "path is already in use" - the mount table is read again (a cached one forgotten)
    and ``again()`` returns the result for the mount as found, type still checked. Returns None otherwise."""
    try:
        client.write(api_path, payload, action=action, capability=capability)
    except MeshPkiError as e:
        if "already in use" not in str(e):
            raise
        forget = getattr(client, "forget_mounts", None)
        if forget is not None:
            forget()
        return again()
    return None


def ensure_secrets_engine(client, path, engine_type, check_mode, description=None, max_lease_ttl=None,
                          kv_version=None):
    """Enable ``engine_type`` at ``path`` if missing; tune max_lease_ttl when it differs.

    ``engine_type`` is "pki" or "kv" (with ``kv_version`` "2"). A mount of another type (or KV v1
    where v2 is wanted) is an error: it is never converted. Survives a concurrent run enabling it first."""
    path = path.strip("/")
    kv_version = str(kv_version) if kv_version else ("2" if engine_type == "kv" else None)
    try:
        max_ttl = to_seconds(max_lease_ttl, "max_lease_ttl for mount '%s'" % path)
    except ValueError as e:
        raise MeshPkiError(str(e))
    before = mount_summary(read_secrets_engine(client, path))
    if before is not None:
        _check_type(path, before, engine_type, kv_version)
    after = dict(before or {"type": engine_type})
    if engine_type == "kv":
        after["version"] = kv_version
    if max_ttl is not None:
        after["max_lease_ttl"] = max_ttl
    result = MountResult(path, before, after)
    if check_mode or not result.changed:
        return result
    if before is None:
        payload = {"type": engine_type, "description": description or ""}
        if kv_version:
            payload["options"] = {"version": kv_version}
        if max_ttl is not None:
            payload["config"] = {"max_lease_ttl": "%ds" % max_ttl}
        adopted = _enable(client, "sys/mounts/%s" % path, payload, "enable %s secrets engine" % engine_type,
                          ("create", "update"), lambda: ensure_secrets_engine(
                              client, path, engine_type, check_mode, description, max_lease_ttl, kv_version))
        if adopted is not None:
            return adopted
    elif max_ttl is not None and before.get("max_lease_ttl") != max_ttl:
        client.write("sys/mounts/%s/tune" % path, {"max_lease_ttl": "%ds" % max_ttl},
                     action="tune max_lease_ttl of", capability="update")
    return result


def read_auth_method(client, path):
    """The auth method mounted at ``path``, or None."""
    return _lookup(client, "sys/auth", path, "list auth methods")


def ensure_auth_method(client, path, method_type, check_mode, description=None):
    """Enable the auth method ``method_type`` at ``path`` if missing; another type there is an error. Survives a
    concurrent run enabling it first."""
    path = path.strip("/")
    current = read_auth_method(client, path)
    before = {"type": current.get("type")} if current else None
    if before and before["type"] != method_type:
        raise MeshPkiError("The auth mount '%s' is a %s auth method, but %s is needed there. Choose another mount "
                           "path (nothing was changed)." % (path, before["type"], method_type))
    result = MountResult(path, before, {"type": method_type})
    if result.changed and not check_mode:
        adopted = _enable(client, "sys/auth/%s" % path, {"type": method_type, "description": description or ""},
                          "enable %s auth method" % method_type, frozenset(["update", "sudo"]),
                          lambda: ensure_auth_method(client, path, method_type, check_mode, description))
        if adopted is not None:
            return adopted
    return result
