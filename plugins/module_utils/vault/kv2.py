# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""KV v2: read the latest version of a secret (with the version number check-and-set needs) and
write a new version with ``options.cas``, so that of two concurrent writers exactly one wins."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError

# Right after a KV v2 mount is enabled the engine upgrades its storage and refuses every request for a moment:
# 400 "Upgrading from non-versioned to versioned data" (active node) or "Waiting for the primary to upgrade from
# non-versioned to versioned data" (standby). Nothing was processed, so the request is repeated.
UPGRADING = "non-versioned to versioned data"
UPGRADE_WAIT = 30.0
UPGRADE_POLL = 0.2


def _after_upgrade(call):
    """``call()``, repeated while the KV v2 engine is still upgrading (at most UPGRADE_WAIT seconds)."""
    deadline = time.time() + UPGRADE_WAIT
    while True:
        try:
            return call()
        except MeshPkiError as e:
            if e.details.get("status") != 400 or UPGRADING not in str(e) or time.time() >= deadline:
                raise
        time.sleep(UPGRADE_POLL)


class CasConflict(MeshPkiError):
    """The secret changed since it was read: another writer got there first."""


class KvSecret(object):
    """The latest version of ``<mount>/data/<path>``.

    ``data`` is that version's data ({} when there is none, or it is deleted or destroyed);
    ``version`` its number (0 when the secret has no version); ``current_version`` the number that
    check-and-set must be given to write the next version."""

    def __init__(self, mount, path, data=None, version=0, current_version=0):
        self.mount = mount
        self.path = path
        self.data = data or {}
        self.version = version
        self.current_version = current_version

    @property
    def api_path(self):
        return "%s/data/%s" % (self.mount, self.path)

    @property
    def display(self):
        """What a user types: mount/path, as in 'vault kv get secret/istioca'."""
        return "%s/%s" % (self.mount, self.path)


# A KV v2 write stores the version's data and then the metadata that names it: a reader in between finds the
# data missing (404) and the metadata already at the new version. Such a live version is read again.
LIVE_WAIT = 5.0
LIVE_POLL = 0.1


def _live(metadata, version):
    """True when ``version`` of the metadata ``data`` is neither deleted nor destroyed."""
    entry = ((metadata.get("versions") or {}).get(str(version))) if version else None
    return bool(entry) and not entry.get("deletion_time") and not entry.get("destroyed")


def read_secret(client, mount, path):
    """The latest version of the secret (one read; two when it has no readable latest version)."""
    mount, path = mount.strip("/"), path.strip("/")
    deadline = time.time() + LIVE_WAIT
    while True:
        body = _after_upgrade(lambda: client.read("%s/data/%s" % (mount, path), action="read the KV v2 secret"))
        if body:
            data = body.get("data") or {}
            version = int((data.get("metadata") or {}).get("version") or 0)
            return KvSecret(mount, path, data.get("data") or {}, version, version)
        # 404: never written, or its latest version is deleted/destroyed. Check-and-set needs the
        # current version number in the second case; the metadata endpoint has it.
        try:
            meta = _after_upgrade(lambda: client.read("%s/metadata/%s" % (mount, path),
                                                      action="read the KV v2 metadata of"))
        except MeshPkiError as e:
            if e.details.get("status") == 403:  # no read on metadata: a cas=0 write tells if it exists
                return KvSecret(mount, path)
            raise
        metadata = (meta or {}).get("data") or {}
        current = int(metadata.get("current_version") or 0)
        if not _live(metadata, current):
            return KvSecret(mount, path, {}, 0, current)
        # The metadata names a live version the data read did not find: a write was landing. Reading "no
        # secret, version N" here would make the caller write version N+1 over a key it never saw.
        if time.time() >= deadline:
            raise MeshPkiError(
                "The KV v2 secret '%s/%s' reads as missing, but its metadata says version %d exists and is not "
                "deleted. Nothing was written; re-run, and check the secret with 'vault kv get %s/%s'."
                % (mount, path, current, mount, path), status=409)
        time.sleep(LIVE_POLL)


def write_secret(client, secret, data):
    """Write ``data`` as the next version of ``secret`` with check-and-set; returns the new version.

    Raises CasConflict when another version was written since ``secret`` was read."""
    try:
        response = _after_upgrade(lambda: client.write(
            secret.api_path, {"options": {"cas": secret.current_version}, "data": data},
            action="write the KV v2 secret", capability=("create", "update")))
    except MeshPkiError as e:
        if e.details.get("status") == 400 and "check-and-set" in str(e):
            raise CasConflict(
                "Another writer changed '%s' since this run read it (check-and-set with version %d failed)."
                % (secret.display, secret.current_version), status=409)
        raise
    return int(((response or {}).get("data") or {}).get("version") or secret.current_version + 1)
