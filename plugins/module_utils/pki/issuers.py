# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PKI mounts and issuers in Vault: the mount table (read once), max lease TTLs, issuers read, found, made the
default, and why a certificate is not signed by an issuer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import parse_cert, same_cert
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    cert_info,
    load_cert,
    signature_error,
)

# What Vault and OpenBao answer (500) for <mount>/issuer/default when the mount has no default issuer.
NO_DEFAULT_ISSUER = "no default issuer"
# Vault warnings every PKI write repeats and that say nothing to this collection's users.
_NOISE = ("authority information access", "max path length of the signed certificate is zero")


# ---------------------------------------------------------------------------------------------------------
# Vault: mounts, issuers
# ---------------------------------------------------------------------------------------------------------

class MountTableCache(object):
    """A VaultClient that reads ``sys/mounts`` once per run.

    Each ``_mounts.ensure_secrets_engine`` / ``read_secrets_engine`` call reads the whole mount table;
    a PKI module checks up to three mounts, first to plan (check mode) and then to apply. The table as
    read at the start of the run answers all of them; every other call goes to the wrapped client."""

    def __init__(self, client):
        self._client = client
        self._mounts = None

    def forget_mounts(self):
        self._mounts = None

    def read(self, path, action="read"):
        if path.strip("/") == "sys/mounts":
            if self._mounts is None:
                self._mounts = self._client.read(path, action=action) or {}
            return self._mounts
        return self._client.read(path, action=action)

    def __getattr__(self, name):
        return getattr(self._client, name)


def max_lease_ttl_of(client, mount, info):
    """The effective max lease TTL (seconds) of ``mount`` (sys/mounts entry ``info``): its own value, or
    the system default when the mount is not tuned (one more read, of sys/mounts/<mount>/tune)."""
    value = int(((info or {}).get("config") or {}).get("max_lease_ttl") or 0)
    if value:
        return value
    tune = client.read("sys/mounts/%s/tune" % mount, action="read the tuning of") or {}
    return int((tune.get("data") or tune).get("max_lease_ttl") or 0)


class Issuer(object):
    """A PKI issuer as ``<mount>/issuer/<id>`` returns it."""

    def __init__(self, mount, issuer_id, certificate, key_id, ca_chain):
        self.mount = mount
        self.issuer_id = issuer_id
        self.certificate = certificate.strip() + "\n"
        self.key_id = key_id or ""
        self.ca_chain = [pem.strip() + "\n" for pem in (ca_chain or [])]
        self.cert = parse_cert(self.certificate, "The certificate of issuer '%s' in '%s'" % (issuer_id, mount))

    @classmethod
    def from_response(cls, mount, body):
        data = (body or {}).get("data") or {}
        return cls(mount, data.get("issuer_id"), data.get("certificate") or "", data.get("key_id"),
                   data.get("ca_chain"))

    def chain_certs(self):
        """The issuers above this one, as Vault knows them (ca_chain minus the certificate itself)."""
        certs = []
        for pem in self.ca_chain:
            try:
                cert = load_cert(pem)
            except PemError:
                continue
            if not same_cert(cert, self.cert):
                certs.append(cert)
        return certs


def read_issuer(client, mount, issuer_id):
    body = client.read("%s/issuer/%s" % (mount, issuer_id), action="read issuer")
    return Issuer.from_response(mount, body) if body else None


def read_default_issuer(client, mount):
    """The default issuer of ``mount`` or None: one read of ``<mount>/issuer/default``.

    With no default issuer set, Vault and OpenBao answer 500 "no default issuer currently configured" (the
    connection does not repeat a 500 of that path: vault/connection.py ``VaultRetry``); a mount that is not there
    answers 404 (None)."""
    try:
        body = client.read("%s/issuer/default" % mount, action="read the default issuer")
    except MeshPkiError as e:
        if NO_DEFAULT_ISSUER not in str(e):
            raise
        return None
    return Issuer.from_response(mount, body) if body else None


def given_root(mount, value):
    """The root_ca option (what a vault_pki_root task of this run returned) as an Issuer of ``mount``, or None."""
    if not value:
        return None
    try:
        return Issuer(mount, value.get("issuer_id"), value.get("certificate") or "", value.get("key_id"), [])
    except MeshPkiError as e:
        raise MeshPkiError("root_ca.certificate must be the root's PEM certificate (the certificate a vault_pki_root "
                           "task returned): %s. Nothing was changed." % e)


def set_default_issuer(client, mount, issuer_id):
    client.write("%s/config/issuers" % mount, {"default": issuer_id}, action="set the default issuer in",
                 capability="update")


def imported_issuer_ids(response):
    data = (response or {}).get("data") or {}
    ids = list(data.get("imported_issuers") or []) + list(data.get("existing_issuers") or [])
    return ids, data.get("mapping") or {}


def find_issuer(client, mount, response, cert, key_id=None):
    """The id of the issuer holding ``cert`` after an import (set-signed, issuers/import/*).

    The response maps each imported issuer to its key: the one with ``key_id`` is ours. Otherwise
    (no key, several certificates) the serial number decides, from the list of issuers (one read)."""
    ids, mapping = imported_issuer_ids(response)
    if key_id:
        mine = [issuer for issuer in ids if mapping.get(issuer) == key_id]
        if len(mine) == 1:
            return mine[0]
    if len(ids) == 1:
        return ids[0]
    serial = cert_info(cert)["serial"]
    listed = client.request("LIST", "%s/issuers" % mount, "list issuers", "list", missing_ok=True) or {}
    for issuer, info in ((listed.get("data") or {}).get("key_info") or {}).items():
        if (info or {}).get("serial_number") == serial:
            return issuer
    raise MeshPkiError("Imported the certificate %s into '%s' but cannot find the issuer Vault made of it "
                       "(imported: %s). Set it as default with '%s/config/issuers'."
                       % (serial, mount, ", ".join(ids) or "none", mount))


def vault_warnings(response):
    """Vault's warnings worth showing (the AIA reminder on every PKI write is left out)."""
    kept = []
    for warning in (response or {}).get("warnings") or []:
        if not any(noise in warning.lower() for noise in _NOISE):
            kept.append(warning)
    return kept


def signer_problem(cert, issuer):
    """None when ``issuer`` signed ``cert`` (names and signature), else a short reason."""
    return signature_error(cert, issuer)
