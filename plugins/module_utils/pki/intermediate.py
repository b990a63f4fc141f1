# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Intermediate CA backend of vault_pki_intermediate: the guide's whole chain, crash-safe.

State lives in two places: the intermediate mount's **default issuer** (the certificate istiod
reads from ``<mount>/cert/ca``) and the **latest version of the KV v2 secret** (the key istiod reads
from ``<kv_mount>/data/<kv_path>``). The intermediate is healthy when the default issuer has the
requested subject and key, is signed by the current root, is not inside ``renew_before``, and the KV
key is its key. Otherwise one of these actions runs - except that a new subject or key alone never replaces an
intermediate: that needs ``force`` (``guard``), like the root. When it must be replaced anyway (inside
``renew_before``, expired, not signed by the current root, its key not in KV), the new one takes the new values.
A ttl or max_path_length change alone is a note (``pending_changes``), never a replacement.

``issue``
    ``intermediate/generate/exported`` makes a new key; it goes straight into KV v2 with
    check-and-set (with its Vault ``key_id`` and the CSR) **before** anything is signed, then
    ``root/sign-intermediate``, ``intermediate/set-signed`` (certificate + issuing chain, so
    ``cert/ca_chain`` is intermediate then root) and ``config/issuers`` (default issuer, explicitly).
``resume``
    KV holds a key no installed certificate uses (an earlier run stopped after storing it): the same
    chain continues with that key - an issuer Vault already has for it, or the stored CSR, or a new CSR
    from ``intermediate/generate/existing``. A key Vault lost (deleted from the mount) is imported back
    from KV with ``keys/import`` first. No second key is ever generated for one certificate.
``await`` / ``complete``
    ``signing: external``: the key is stored and the CSR returned; a later call with ``certificate``
    checks it was issued for the stored key and imports it (set-signed, default issuer).
``chain``
    The certificate is fine but Vault's chain for it lacks the issuing CA (set-signed without it): the
    root certificate is imported into the mount, and Vault rebuilds ``cert/ca_chain``.

Concurrency: the check-and-set write decides. The run that loses deletes the key it generated and
waits for the winner to install a certificate for the winner's key, then reports it (not changed).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import time

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import (
    SIGNING_SLACK,
    cert_pem,
    csr_matches,
    diff_view,
    is_ca,
    iso,
    key_difference,
    lifetime_note,
    not_after,
    not_before,
    now_utc,
    parse_certs,
    path_length,
    same_cert,
    split_pem_bundle,
    summary,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.issuers import (
    MountTableCache,
    find_issuer,
    given_root,
    max_lease_ttl_of,
    read_default_issuer,
    read_issuer,
    set_default_issuer,
    signer_problem,
    vault_warnings,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.request import (
    Subject,
    cert_subject_pairs,
    human,
    key_spec,
    key_text,
    seconds,
    subject_text,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    cert_info,
    key_type_and_bits,
    load_private_key,
    public_key_matches,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_text
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import (
    CasConflict,
    KvSecret,
    read_secret,
    write_secret,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import (
    ensure_secrets_engine,
    read_secrets_engine,
)

# Fields of the KV v2 secret besides the key (kv_field). istiod's template reads only kv_field.
KV_KEY_ID = "key_id"
KV_CSR = "csr"
RESERVED_FIELDS = (KV_KEY_ID, KV_CSR)
MOUNT_DESCRIPTION = "Istio intermediate CA (managed by meshpki.vault_ca)"
KV_DESCRIPTION = "KV v2 (created by meshpki.vault_ca for the Istio CA key)"
# A run that lost the check-and-set race waits this long for the winner to install its certificate.
CONVERGE_WAIT = 60.0
CONVERGE_POLL = 1.0


def manage_intermediate(module):
    """vault_pki_intermediate: validate every option (before any request), then read, plan and apply with the
    task's authenticated client. ``module`` gives params, check_mode, warn(), no_log_values (every private key the
    run handles joins them, so it is masked should it ever reach the output) and get_authenticated_client()."""
    def protect(value):
        module.no_log_values.add(value)
        module.no_log_values.add(value.strip())

    request = IntermediateRequest(module.params)
    backend = IntermediateCA(request, module.get_authenticated_client(), module.check_mode, protect=protect)
    result = backend.run()
    for warning in backend.warnings:
        module.warn(warning)
    return result


class RootUnavailable(MeshPkiError):
    """The root mount or its CA does not exist (yet): an error, except in check mode."""


class IntermediateRequest(object):
    """The validated options; every error here is raised before any request to Vault."""

    def __init__(self, params):
        self.mount = _path(params["mount"], "mount")
        self.root_mount = _path(params["root_mount"], "root_mount")
        self.kv_mount = _path(params["kv_mount"], "kv_mount")
        self.kv_path = _path(params["kv_path"], "kv_path")
        self.kv_field = params["kv_field"]
        if not self.kv_field:
            raise MeshPkiError("kv_field must not be empty. Nothing was changed.")
        if self.kv_field in RESERVED_FIELDS:
            raise MeshPkiError("kv_field '%s' is reserved: the module stores the Vault key id and the CSR under %s "
                               "beside the key. Nothing was changed." % (self.kv_field, " and ".join(RESERVED_FIELDS)))
        self.signing = params["signing"]
        if self.signing == "internal" and self.mount == self.root_mount:
            raise MeshPkiError("mount and root_mount are both '%s': the intermediate needs a PKI mount of its own "
                               "(its default issuer would replace the root's). Nothing was changed." % self.mount)
        self.subject = Subject.from_params(params)
        self.key_type, self.key_bits = key_spec(params["key_type"], params["key_bits"])
        self.ttl = seconds(params["ttl"], "ttl")
        if not self.ttl:
            raise MeshPkiError("ttl must be longer than 0 seconds. Nothing was changed.")
        max_ttl = params["max_lease_ttl"]
        self.max_lease_ttl = seconds(max_ttl, "max_lease_ttl") if max_ttl is not None else self.ttl
        self.max_path_length = params["max_path_length"]
        if self.max_path_length < -1:
            raise MeshPkiError("max_path_length must be -1 (no limit) or more. Nothing was changed.")
        self.ttl_exceeds_root = params["ttl_exceeds_root"]
        self.renew_before = seconds(params["renew_before"], "renew_before") if params["renew_before"] else None
        if self.renew_before and self.renew_before >= self.ttl:
            raise MeshPkiError("renew_before %s must be shorter than ttl %s, or every run would rotate the "
                               "intermediate. Nothing was changed." % (human(self.renew_before), human(self.ttl)))
        self.force = params["force"]
        self.given_cert = None
        self.given_chain = []
        self._parse_given(params.get("certificate"), params.get("ca_chain"))
        # The root CA as a vault_pki_root task of this run returned it: decides only that nothing changes
        # (IntermediateCA.run re-reads the root before any other plan). Not used with signing external.
        self.given_root = given_root(self.root_mount, params.get("root_ca")) if self.signing == "internal" else None

    def _parse_given(self, certificate, ca_chain):
        if self.signing == "internal":
            if certificate or ca_chain:
                raise MeshPkiError("certificate and ca_chain are only used with signing: external (with signing: "
                                   "internal the root mount signs). Nothing was changed.")
            return
        if ca_chain and not certificate:
            raise MeshPkiError("ca_chain goes with certificate (the signed intermediate). Nothing was changed.")
        if not certificate:
            return
        pems, keys = split_pem_bundle((certificate or "") + "\n" + (ca_chain or ""))
        if keys:
            raise MeshPkiError("certificate or ca_chain contains a private key: give only certificates (the key "
                               "stays in Vault and KV). Nothing was changed.")
        certs = parse_certs("".join(pems), "certificate")
        if not certs:
            raise MeshPkiError("certificate holds no PEM 'CERTIFICATE' block. Nothing was changed.")
        self.given_cert, self.given_chain = certs[0], _unique(certs[1:], certs[0])
        if not self.given_chain:
            raise MeshPkiError("The issuing CA chain of the certificate is missing: put it after the certificate or "
                               "in ca_chain (issuing CA first, up to the root), so that '%s/cert/ca_chain' and "
                               "istiod's cert-chain.pem hold the intermediate then its issuers. Nothing was changed."
                               % self.mount)

    @property
    def kv_display(self):
        return "%s/%s" % (self.kv_mount, self.kv_path)


class StoredKey(object):
    """The key in the latest version of the KV v2 secret (field ``kv_field``), parsed."""

    def __init__(self, secret, field):
        self.secret = secret
        self.field = field
        value = secret.data.get(field)
        self.pem = value if isinstance(value, str) and value.strip() else None
        self.key = None
        self.problem = None
        if self.pem:
            try:
                self.key = load_private_key(self.pem)
            except PemError as e:
                self.problem = "its value is not a usable private key (%s)" % e
        self.key_id = secret.data.get(KV_KEY_ID) or ""
        self.csr = secret.data.get(KV_CSR) or ""

    def matches(self, cert):
        return self.key is not None and cert is not None and public_key_matches(cert, self.key)

    @property
    def where(self):
        version = " version %d" % self.secret.version if self.secret.version else ""
        return "'%s'%s (field '%s')" % (self.secret.display, version, self.field)


class Root(object):
    """The root mount (sys/mounts entry) and its default issuer."""

    def __init__(self, mount, info, issuer):
        self.mount = mount
        self.info = info
        self.issuer = issuer
        self.cert = issuer.cert

    def chain_pems(self):
        """The root's certificate and its own chain (for a 'root' mount that holds an intermediate)."""
        pems = [self.issuer.certificate]
        for pem in self.issuer.ca_chain:
            if pem.strip() != self.issuer.certificate.strip():
                pems.append(pem)
        return pems


class Outcome(object):
    """What the run ends with: the default issuer's certificate and chain, the key's KV version."""

    def __init__(self, cert=None, chain_pems=None, issuer_id=None, key_id=None, kv_version=0, csr=None,
                 changed=True):
        self.cert = cert
        self.chain_pems = chain_pems or []
        self.issuer_id = issuer_id
        self.key_id = key_id
        self.kv_version = kv_version
        self.csr = csr
        self.changed = changed

    @classmethod
    def from_issuer(cls, issuer, kv_version, changed=True):
        chain = [pem for pem in issuer.ca_chain if pem.strip() != issuer.certificate.strip()]
        return cls(issuer.cert, chain, issuer.issuer_id, issuer.key_id, kv_version, changed=changed)


class IntermediateCA(object):
    """Plan and apply one vault_pki_intermediate task.

    ``protect`` is called with every private key the run handles (the module adds it to its no_log
    values, so that it is masked should it ever reach the output). ``run()`` returns the result;
    warnings are in ``self.warnings``."""

    def __init__(self, request, client, check_mode, protect=None, now=None):
        self.request = request
        self.client = MountTableCache(client)
        self.check_mode = check_mode
        self.protect = protect or (lambda value: None)
        self.now = now or now_utc()
        self.warnings = []

    # -- reading -----------------------------------------------------------------------------------
    def read_root(self, given=None):
        """The root mount's entry (from the mount table the run reads anyway) and its default issuer: ``given``
        (the root_ca option), else one read of ``<root_mount>/issuer/default``."""
        req = self.request
        info = read_secrets_engine(self.client, req.root_mount)
        if info is None:
            raise RootUnavailable(
                "The root mount '%s' does not exist: create the root CA first (meshpki.vault_ca.vault_pki_root), set "
                "root_mount to the mount that holds it, or use signing: external for a root outside Vault. Nothing "
                "was changed." % req.root_mount)
        if info.get("type") != "pki":
            raise MeshPkiError("The root mount '%s' is a %s secrets engine, not pki. Nothing was changed."
                               % (req.root_mount, info.get("type")))
        issuer = given or read_default_issuer(self.client, req.root_mount)
        if issuer is None:
            raise RootUnavailable(
                "The root mount '%s' has no CA (no default issuer): create it with meshpki.vault_ca.vault_pki_root "
                "first, or use signing: external. Nothing was changed." % req.root_mount)
        if not issuer.key_id:
            raise MeshPkiError(
                "The root CA of '%s' (%s) is a certificate without its key in Vault (an offline root), so Vault "
                "cannot sign with it: use signing: external and sign the CSR with the offline root. Nothing was "
                "changed." % (req.root_mount, cert_info(issuer.cert)["serial"]))
        return Root(req.root_mount, info, issuer)

    def given_issuer(self):
        """The issuer root_ca names, as Vault has it in the root mount (None: not there, or no issuer_id)."""
        given = self.request.given_root
        if not given.issuer_id:
            return None
        try:
            return read_issuer(self.client, self.request.root_mount, given.issuer_id)
        except MeshPkiError:  # not an issuer of the mount: planned on the default issuer, as without root_ca
            return None

    def read_stored(self, kv_exists=True):
        req = self.request
        if kv_exists:
            secret = read_secret(self.client, req.kv_mount, req.kv_path)
        else:
            secret = KvSecret(req.kv_mount, req.kv_path)
        stored = StoredKey(secret, req.kv_field)
        if stored.pem:
            self.protect(stored.pem)
        return stored

    # -- deciding ----------------------------------------------------------------------------------
    def signers(self, current, root):
        """The certificates the intermediate must be signed by: the root's, or the given chain's."""
        if root is not None:
            return [root.cert]
        if self.request.given_chain:
            return self.request.given_chain
        return current.chain_certs()[:1] if current is not None else []

    def changes(self, cert):
        """What the request changes on ``cert``: [{'what': 'subject'|'key', 'old', 'new', 'text'}], old -> new."""
        req = self.request
        found = []
        if req.subject.difference(cert):
            old, new = subject_text(cert_subject_pairs(cert)), req.subject.text
            found.append(dict(what="subject", old=old, new=new, text="subject '%s' \u2192 '%s'" % (old, new)))
        have = key_type_and_bits(cert)
        if have != (req.key_type, req.key_bits):
            old, new = key_text(*have), key_text(req.key_type, req.key_bits)
            found.append(dict(what="key", old=old, new=new, text="key %s \u2192 %s" % (old, new)))
        return found

    def problems(self, current, stored, root, include_force=True, include_request=True):
        """Why ``current`` (an Issuer or None) is not the intermediate asked for; [] when it is.
        ``include_request=False``: only the reasons that need a new certificate whatever is asked for."""
        req = self.request
        if current is None:
            return ["'%s' has no intermediate CA yet (no default issuer)" % req.mount]
        cert = current.cert
        found = [text for text in (req.subject.difference(cert), key_difference(cert, req.key_type, req.key_bits))
                 if text] if include_request else []
        if not is_ca(cert):
            found.append("it is not a CA certificate")
        signers = self.signers(current, root)
        if signers:
            problem = signer_problem(cert, signers[0])
            if problem:
                found.append("it is not signed by the current root CA%s (serial %s): %s"
                             % (" of '%s'" % root.mount if root else "", cert_info(signers[0])["serial"], problem))
        end = not_after(cert)
        if self.now >= end:
            found.append("it expired on %s" % iso(end))
        elif req.renew_before and (end - self.now).total_seconds() <= req.renew_before:
            found.append("it expires on %s, within renew_before (%s)" % (iso(end), human(req.renew_before)))
        if stored.key is None:
            problem = ": " + stored.problem if stored.problem else ""
            found.append("there is no usable key at %s%s" % (stored.where, problem))
        elif not stored.matches(cert):
            found.append("the key at %s is not the key of this certificate" % stored.where)
        if include_force and req.force:
            found.append("force: true")
        return found

    def guard(self, current, stored, root):
        """A new subject or key alone never replaces an intermediate: that needs force (the role's
        istio_vault_ca_rotate). When the intermediate must be replaced anyway (inside renew_before, expired, not
        signed by the current root, its key not in KV, an interrupted rotation), the new one takes the requested
        subject and key, with a warning. Raises before any write, in check mode too."""
        req = self.request
        changes = self.changes(current.cert)
        if not changes or req.force:
            return
        text = ", ".join(change["text"] for change in changes)
        due = self.problems(current, stored, root, include_force=False, include_request=False)
        if due:
            self.warnings.append("The intermediate of '%s' is replaced because %s; the new one also changes %s, as "
                                 "requested." % (req.mount, "; ".join(due), text))
            return
        serial = cert_info(current.cert)["serial"]
        raise MeshPkiError(
            "The mount '%s' already has a different intermediate CA (default issuer %s, serial %s): %s. Replacing "
            "the intermediate generates a new key and certificate for istiod, so it is never done silently (only a "
            "renewal inside renew_before is automatic): set force: true once to generate a new key and certificate "
            "with the new values (the old issuer stays in the mount, the old key stays in '%s' as version %d), set "
            "the options back to what is in place, or use another mount. Nothing was changed."
            % (req.mount, current.issuer_id, serial, text, req.kv_display, stored.secret.version),
            guard=dict(mount=req.mount, issuer_id=current.issuer_id, serial=serial, changes=changes,
                       kv=dict(mount=req.kv_mount, path=req.kv_path, version=stored.secret.version)))

    def chain_problem(self, current, root):
        """A sentence when Vault's chain for ``current`` lacks its issuer (cert/ca_chain incomplete)."""
        signers = self.signers(current, root) if (root is not None or self.request.given_chain) else []
        if not signers:
            return None
        if any(same_cert(cert, signers[0]) for cert in current.chain_certs()):
            return None
        return ("'%s/cert/ca_chain' holds no issuing CA for the intermediate (it was imported without its chain): "
                "istiod's cert-chain.pem would end at the intermediate" % self.request.mount)

    def decide(self, current, stored, root):
        """(action, reasons): what the run must do, before the guard and any write."""
        reasons = self.problems(current, stored, root)
        action = self.choose(current, stored, reasons)
        if action == "none":
            chain = self.chain_problem(current, root)
            if chain:
                action, reasons = "chain", [chain]
        return action, reasons

    def pending(self, current, stored):
        """True when KV holds a key of the requested type that no installed certificate uses yet."""
        req = self.request
        if stored.key is None or stored.matches(current.cert if current else None):
            return False
        return key_type_and_bits(stored.key) == (req.key_type, req.key_bits)

    def choose(self, current, stored, reasons):
        req = self.request
        given = req.given_cert
        if given is not None and not (current is not None and same_cert(given, current.cert)):
            if stored.key is not None and public_key_matches(given, stored.key):
                return "complete"
            raise MeshPkiError(
                "The certificate given (%s, serial %s) was not issued for the key stored at %s: its public key "
                "differs. Sign the CSR this module returned (csr) for that key, or leave certificate out to see it "
                "again. Nothing was changed." % (summary(given)["subject"], cert_info(given)["serial"], stored.where))
        if not reasons:
            return "none"
        if self.pending(current, stored):
            return "await" if req.signing == "external" else "resume"
        return "issue"

    def check_given(self):
        """Validate the certificate of signing: external before importing it."""
        req = self.request
        cert = req.given_cert
        problems = [text for text in (req.subject.difference(cert), key_difference(cert, req.key_type, req.key_bits))
                    if text]
        if not is_ca(cert):
            problems.append("it is not a CA certificate (basicConstraints CA:TRUE missing)")
        problem = signer_problem(cert, req.given_chain[0])
        if problem:
            problems.append("the first certificate of the chain did not sign it: %s" % problem)
        end = not_after(cert)
        if self.now >= end:
            problems.append("it expired on %s" % iso(end))
        elif req.renew_before and (end - self.now).total_seconds() <= req.renew_before:
            problems.append("it expires on %s, within renew_before (%s): the next run would rotate it"
                            % (iso(end), human(req.renew_before)))
        if problems:
            raise MeshPkiError("The certificate given cannot be used: %s. Set the subject options to what your CA "
                               "issues, or have it sign the CSR again. Nothing was changed." % "; ".join(problems))

    def fit_ttl(self, root):
        """Sign parameters for the requested ttl under ``root``: ({'ttl'|'not_after': ...}, lifetime seconds).

        Vault caps ttl at the root mount's max_lease_ttl with only a warning, and lets an intermediate
        outlive its root: check both first, fail or (ttl_exceeds_root: cap) cap with a warning."""
        req = self.request
        root_end = not_after(root.cert)
        remaining = (root_end - self.now).total_seconds() - SIGNING_SLACK
        if remaining <= 0:
            raise MeshPkiError("The root CA of '%s' expires on %s: it cannot sign an intermediate any more. Renew "
                               "the root first. Nothing was changed." % (root.mount, iso(root_end)))
        root_max = max_lease_ttl_of(self.client, root.mount, root.info)
        limit = min(remaining, root_max)
        if req.ttl <= limit:
            return {"ttl": "%ds" % req.ttl}, req.ttl
        why = []
        if req.ttl > root_max:
            why.append("the root mount '%s' signs for at most %s (its max_lease_ttl)" % (root.mount, human(root_max)))
        if req.ttl > remaining:
            why.append("the root CA expires on %s, in %s" % (iso(root_end), human(remaining + SIGNING_SLACK)))
        if req.ttl_exceeds_root != "cap":
            raise MeshPkiError(
                "ttl %s does not fit under the root: %s. Vault would silently shorten the intermediate (or let it "
                "outlive its root). Use a ttl of at most %s, raise the root mount's max_lease_ttl, or set "
                "ttl_exceeds_root: cap for the longest lifetime the root allows. Nothing was changed."
                % (human(req.ttl), " and ".join(why), human(int(limit) // 60 * 60)))
        if remaining <= root_max:
            params, lifetime = {"not_after": iso(root_end)}, remaining + SIGNING_SLACK
            capped = "the root's end, %s" % iso(root_end)
        else:
            params, lifetime = {"ttl": "%ds" % root_max}, root_max
            capped = human(root_max)
        self.warnings.append("ttl %s capped to %s (ttl_exceeds_root: cap): %s."
                             % (human(req.ttl), capped, " and ".join(why)))
        return params, lifetime

    def check_ttl_limit(self, root):
        """A healthy intermediate is not re-signed, so fit_ttl does not run - but a ttl above what the root mount
        can ever sign would fail only at the next rotation, when least time is left: refuse it now."""
        req = self.request
        if req.ttl_exceeds_root == "cap":
            return
        root_max = max_lease_ttl_of(self.client, root.mount, root.info)
        if root_max and req.ttl > root_max:
            raise MeshPkiError(
                "ttl %s does not fit under the root: the root mount '%s' signs for at most %s (its max_lease_ttl). "
                "The intermediate in place is fine, but its next rotation would fail. Use a ttl of at most %s, raise "
                "the root mount's max_lease_ttl, or set ttl_exceeds_root: cap. Nothing was changed."
                % (human(req.ttl), root.mount, human(root_max), human(root_max)))

    def notes(self, current, root):
        """Requested changes a healthy intermediate does not get until it is renewed."""
        req = self.request
        if root is None:
            return []
        expected = req.ttl
        if req.ttl_exceeds_root == "cap":
            expected = min(expected, (not_after(root.cert) - not_before(current.cert)).total_seconds())
            tuned = int(((root.info or {}).get("config") or {}).get("max_lease_ttl") or 0)
            if tuned:
                expected = min(expected, tuned)
        notes = [note for note in [lifetime_note(current.cert, expected)] if note]
        if path_length(current.cert) != req.max_path_length:
            notes.append("max_path_length: the certificate has %s, %s is asked for; applies when a new "
                         "certificate is issued" % (path_length(current.cert), req.max_path_length))
        return notes

    # -- writing -----------------------------------------------------------------------------------
    def _write(self, path, payload, action, capability="update", method="POST"):
        response = self.client.write(path, payload, action=action, capability=capability, method=method)
        self.warnings.extend(vault_warnings(response))
        return (response or {}).get("data") or {}

    def generate_key(self):
        req = self.request
        payload = req.subject.payload()
        payload.update(key_type=req.key_type, key_bits=req.key_bits)
        data = self._write("%s/intermediate/generate/exported" % req.mount, payload,
                           action="generate the intermediate key and CSR in")
        key_pem = data.get("private_key")
        if not key_pem or not data.get("csr"):
            raise MeshPkiError("'%s/intermediate/generate/exported' returned no private_key or csr." % req.mount)
        self.protect(key_pem)
        return data.get("key_id") or "", key_pem, data["csr"]

    def store_key(self, stored, key_id, key_pem, csr):
        """Write the new key as the next KV version (check-and-set); returns the new StoredKey."""
        req = self.request
        data = dict(stored.secret.data)
        data.update({req.kv_field: key_pem, KV_KEY_ID: key_id, KV_CSR: csr})
        version = write_secret(self.client, stored.secret, data)
        return StoredKey(KvSecret(req.kv_mount, req.kv_path, data, version, version), req.kv_field)

    def key_in_mount(self, stored):
        """The id of the stored key in the intermediate mount; imported back from KV when Vault lost it."""
        req = self.request
        listed = self.client.request("LIST", "%s/keys" % req.mount, "list the keys of", "list", missing_ok=True)
        keys = ((listed or {}).get("data") or {}).get("keys") or []
        if stored.key_id and stored.key_id in keys:
            return stored.key_id
        data = self._write("%s/keys/import" % req.mount, {"pem_bundle": stored.pem},
                           action="import the key stored in KV into")
        key_id = data.get("key_id")
        self.warnings.append("The key stored at %s was not in '%s'%s; it was imported from KV as key %s."
                             % (stored.where, req.mount, " (key %s was deleted?)" % stored.key_id
                                if stored.key_id else "", key_id))
        return key_id

    def existing_issuer_for(self, key_id, stored, root, current):
        """An issuer of the mount for ``key_id`` that is already what is asked for (a run that stopped
        between set-signed and setting the default issuer), or None."""
        req = self.request
        listed = self.client.request("LIST", "%s/issuers" % req.mount, "list the issuers of", "list",
                                     missing_ok=True)
        infos = ((listed or {}).get("data") or {}).get("key_info") or {}
        for issuer_id, info in sorted(infos.items()):
            if (info or {}).get("key_id") != key_id or (current is not None and issuer_id == current.issuer_id):
                continue
            issuer = read_issuer(self.client, req.mount, issuer_id)
            if issuer is not None and not self.problems(issuer, stored, root, include_force=False) \
                    and not self.chain_problem(issuer, root):
                return issuer
        return None

    def csr_for(self, stored, key_id):
        """The stored CSR when it belongs to the key, else a new one from the key (generate/existing)."""
        req = self.request
        if stored.csr and csr_matches(stored.csr, stored.key):
            return stored.csr
        payload = req.subject.payload()
        payload["key_ref"] = key_id
        data = self._write("%s/intermediate/generate/existing" % req.mount, payload,
                           action="make a CSR from the stored key in")
        return data.get("csr")

    def sign(self, csr, sign_params):
        req = self.request
        payload = req.subject.payload()
        payload.update(csr=csr, format="pem", max_path_length=req.max_path_length, use_csr_values=False)
        payload.update(sign_params)
        data = self._write("%s/root/sign-intermediate" % req.root_mount, payload,
                           action="sign the intermediate CSR with the root CA of")
        cert = parse_certs(data.get("certificate") or "", "The certificate root/sign-intermediate returned")[0]
        chain = [pem for pem in (data.get("ca_chain") or []) if pem.strip() != data["certificate"].strip()]
        if not chain and data.get("issuing_ca"):
            chain = [data["issuing_ca"]]
        return cert, [pem.strip() + "\n" for pem in chain]

    def install(self, cert, chain_pems, key_id):
        """set-signed with the certificate followed by its issuing chain, then make it the default issuer."""
        req = self.request
        bundle = "".join(pem.strip() + "\n" for pem in [cert_pem(cert)] + chain_pems)
        response = self.client.write("%s/intermediate/set-signed" % req.mount, {"certificate": bundle},
                                     action="import the signed intermediate into", capability="update")
        self.warnings.extend(vault_warnings(response))
        issuer_id = find_issuer(self.client, req.mount, response, cert, key_id=key_id)
        set_default_issuer(self.client, req.mount, issuer_id)
        return issuer_id

    def lost_race(self, error, my_key_id, root):
        """Another run wrote the KV secret first: drop our key, converge on theirs (or fail clearly)."""
        req = self.request
        try:
            self.client.delete("%s/key/%s" % (req.mount, my_key_id), action="delete the discarded key in")
        except MeshPkiError as e:
            self.warnings.append("Could not delete the key %s this run generated and discarded: %s" % (my_key_id, e))
        deadline = time.time() + CONVERGE_WAIT
        while True:
            stored = self.read_stored()
            current = read_default_issuer(self.client, req.mount)
            if stored.key is not None and current is not None and \
                    not self.problems(current, stored, root, include_force=False):
                self.warnings.append(
                    "Another run stored a new key at %s and installed its certificate while this run was running "
                    "(%s); this run discarded its own key and converged on it." % (stored.where, error))
                return Outcome.from_issuer(current, stored.secret.version, changed=False)
            if req.signing == "external" and self.pending(current, stored):
                self.warnings.append("Another run stored a new key at %s while this run was running (%s); this run "
                                     "discarded its own key: sign the CSR of the stored one." % (stored.where, error))
                return self.await_signature(stored, current, changed=False)
            if time.time() >= deadline:
                raise MeshPkiError(
                    "%s This run discarded the key it generated and waited %d s for the other run to install a "
                    "certificate for the stored key, in vain: it may have failed. Re-run: it resumes with the "
                    "stored key." % (error, CONVERGE_WAIT))
            time.sleep(CONVERGE_POLL)

    def await_signature(self, stored, current, changed):
        key_id = self.key_in_mount(stored) if not (stored.csr and csr_matches(stored.csr, stored.key)) else None
        csr = self.csr_for(stored, key_id)
        outcome = Outcome.from_issuer(current, stored.secret.version, changed=changed) if current else \
            Outcome(kv_version=stored.secret.version, changed=changed)
        outcome.csr = csr
        return outcome

    # -- the run -----------------------------------------------------------------------------------
    def run(self):
        req = self.request
        int_mount = ensure_secrets_engine(self.client, req.mount, "pki", True, description=MOUNT_DESCRIPTION,
                                          max_lease_ttl=req.max_lease_ttl)
        kv_mount = ensure_secrets_engine(self.client, req.kv_mount, "kv", True, description=KV_DESCRIPTION,
                                         kv_version=2)
        root = None
        if req.signing == "internal":
            try:
                root = self.read_root(req.given_root)
            except RootUnavailable as e:
                if not self.check_mode:
                    raise
                self.warnings.append("%s Check mode goes on as if an earlier task created it (ttl is not checked "
                                     "against it)." % str(e).replace(" Nothing was changed.", ""))
        current = read_default_issuer(self.client, req.mount) if int_mount.before else None
        stored = self.read_stored(kv_exists=kv_mount.before is not None)

        action, reasons = self.decide(current, stored, root)
        if req.given_root is not None and action != "none":
            # The given root may be stale: anything but "nothing to do" is planned on the root as Vault has it. In
            # check mode that is the given issuer as Vault has it (when it is still in the root mount): a task
            # before this one may only plan to make it the default (rotate_root's new signing root).
            root = self.read_root(self.given_issuer() if self.check_mode else None)
            action, reasons = self.decide(current, stored, root)
        if action in ("issue", "resume") and current is not None:
            self.guard(current, stored, root)
        if action == "complete":
            reasons = ["a signed certificate was given for the key stored at %s" % stored.where]
            self.check_given()
        sign_params, lifetime = None, None
        if root is not None and action in ("issue", "resume"):
            sign_params, lifetime = self.fit_ttl(root)
            if req.renew_before and lifetime <= req.renew_before:
                raise MeshPkiError("The intermediate could live only %s under the root of '%s', not more than "
                                   "renew_before (%s): every run would rotate it. Lower renew_before or renew the root "
                                   "first. Nothing was changed." % (human(lifetime), root.mount,
                                                                    human(req.renew_before)))
        if root is not None and action in ("none", "chain"):
            self.check_ttl_limit(root)
        notes = self.notes(current, root) if action == "none" else []
        if action == "await":
            self.warnings.append("The key at %s awaits its signed certificate: sign the CSR (csr) with your CA and "
                                 "pass it as certificate (with ca_chain)." % stored.where)

        outcome = None
        if not self.check_mode:
            if int_mount.changed or kv_mount.changed:  # the results as applied (another run may have been first)
                int_mount = ensure_secrets_engine(self.client, req.mount, "pki", False,
                                                  description=MOUNT_DESCRIPTION, max_lease_ttl=req.max_lease_ttl)
                kv_mount = ensure_secrets_engine(self.client, req.kv_mount, "kv", False, description=KV_DESCRIPTION,
                                                 kv_version=2)
            outcome = self.apply(action, current, stored, root, sign_params)
        changed = int_mount.changed or kv_mount.changed or \
            (outcome.changed if outcome is not None else action not in ("none", "await"))
        return self.result(action, reasons, notes, current, stored, root, outcome, lifetime, changed,
                           int_mount, kv_mount)

    def apply(self, action, current, stored, root, sign_params):
        req = self.request
        if action == "none":
            return Outcome.from_issuer(current, stored.secret.version, changed=False)
        if action == "await":
            return self.await_signature(stored, current, changed=False)
        if action == "chain":
            pems = root.chain_pems() if root is not None else [cert_pem(cert) for cert in req.given_chain]
            self._write("%s/issuers/import/cert" % req.mount, {"pem_bundle": "".join(pems)},
                        action="import the issuing CA chain into")
            refreshed = read_issuer(self.client, req.mount, current.issuer_id)
            return Outcome.from_issuer(refreshed, stored.secret.version)
        key_id = None
        if action == "issue":
            key_id, key_pem, csr = self.generate_key()
            try:
                stored = self.store_key(stored, key_id, key_pem, csr)
            except CasConflict as e:
                return self.lost_race(e, key_id, root)
            if req.signing == "external":
                outcome = Outcome.from_issuer(current, stored.secret.version) if current else \
                    Outcome(kv_version=stored.secret.version)
                outcome.csr = csr
                return outcome
        try:
            return self.finish(action, current, stored, root, sign_params, key_id)
        except MeshPkiError as e:
            mismatch = (" Until then the key in KV does not match '%s/cert/ca': do not restart istiod." % req.mount
                        if current is not None else "")
            raise MeshPkiError(
                "%s The key for the new intermediate is stored at %s, but its certificate is not installed: re-run "
                "(after fixing the cause) to resume with that key - no new key is generated.%s"
                % (str(e).rstrip(".") + ".", stored.where, mismatch), **e.details)

    def finish(self, action, current, stored, root, sign_params, key_id):
        """Everything after the key is safely in KV: sign (or take the given certificate), install."""
        req = self.request
        if key_id is None:
            key_id = self.key_in_mount(stored)
        if action == "complete":
            cert, chain = req.given_cert, [cert_pem(c) for c in req.given_chain]
        else:
            if action == "resume":
                adopted = self.existing_issuer_for(key_id, stored, root, current)
                if adopted is not None:
                    set_default_issuer(self.client, req.mount, adopted.issuer_id)
                    return Outcome.from_issuer(adopted, stored.secret.version)
            cert, chain = self.sign(self.csr_for(stored, key_id), sign_params)
        issuer_id = self.install(cert, chain, key_id)
        return Outcome(cert, chain, issuer_id, key_id, stored.secret.version)

    # -- the result --------------------------------------------------------------------------------
    def predicted_view(self, action, current, stored, lifetime):
        """The --diff 'after' of a check-mode run (nothing is generated, so serials are unknown)."""
        req = self.request
        version = stored.secret.current_version + (1 if action == "issue" else 0)
        if action in ("issue", "resume") and (req.signing == "internal"):
            view = {"subject": req.subject.text, "serial": "(new)", "key": key_text(req.key_type, req.key_bits),
                    "not_after": iso(self.now + datetime.timedelta(seconds=lifetime or req.ttl))}
        elif action == "complete":
            view = diff_view(req.given_cert)
        else:
            view = diff_view(current.cert) if current else {}
        view["kv_version"] = version
        return view

    def result(self, action, reasons, notes, current, stored, root, outcome, lifetime, changed, int_mount,
               kv_mount):
        req = self.request
        before = dict(diff_view(current.cert) if current else {}, kv_version=stored.secret.version)
        if outcome is None:  # check mode
            after = self.predicted_view(action, current, stored, lifetime)
            final = Outcome.from_issuer(current, stored.secret.version, changed=changed) if current else \
                Outcome(kv_version=stored.secret.version)
            if action == "await":  # the stored CSR only if it is the stored key's (a real run would make one)
                final.csr = stored.csr if csr_matches(stored.csr, stored.key) else None
        else:
            final = outcome
            after = dict(diff_view(final.cert) if final.cert is not None else {}, kv_version=final.kv_version)
        if outcome is not None:
            switched = current is not None and final.cert is not None and not same_cert(current.cert, final.cert)
        else:  # check mode: would the default issuer switch?
            switched = current is not None and (action in ("resume", "complete") or
                                                (action == "issue" and req.signing == "internal"))
        info = summary(final.cert)
        result = dict(
            changed=changed, mount=req.mount, signing=req.signing, action=action, reasons=reasons,
            pending_changes=notes,
            certificate=cert_pem(final.cert) if final.cert is not None else None,
            ca_chain=([cert_pem(final.cert)] + final.chain_pems) if final.cert is not None else [],
            serial=info.get("serial"), subject=info.get("subject"), not_before=info.get("not_before"),
            not_after=info.get("not_after"), key_type=info.get("key_type"), key_bits=info.get("key_bits"),
            issuer_id=final.issuer_id, key_id=final.key_id or stored.key_id or None,
            kv=dict(mount=req.kv_mount, path=req.kv_path, field=req.kv_field, version=final.kv_version),
            rotated=bool(switched),
            previous_serial=cert_info(current.cert)["serial"] if switched else None,
            resumed=action == "resume",
            pending=final.csr is not None or action == "await" or (action == "issue" and req.signing == "external"),
            csr=final.csr,
        )
        if req.signing == "internal":
            result["root_mount"] = req.root_mount
        header = "%s (intermediate CA), %s" % (req.mount, req.kv_display)
        result["diff"] = dict(before=dict(before, **_mount_views(int_mount.before, kv_mount.before)),
                              after=dict(after, **_mount_views(int_mount.after, kv_mount.after)),
                              before_header=header, after_header=header)
        return result


def _mount_views(pki_mount, kv_mount):
    """The mounts' part of --diff: their types and the PKI mount's max_lease_ttl (None for a missing mount)."""
    view = {}
    if pki_mount:
        view["mount_type"] = pki_mount.get("type")
        if pki_mount.get("max_lease_ttl") is not None:
            view["max_lease_ttl"] = to_text(pki_mount["max_lease_ttl"])
    if kv_mount:
        view["kv_mount_type"] = "%s v%s" % (kv_mount.get("type"), kv_mount.get("version") or "1")
    return view


def _path(value, what):
    value = (value or "").strip("/")
    if not value:
        raise MeshPkiError("%s must not be empty. Nothing was changed." % what)
    return value


def _unique(certs, leaf):
    seen = [leaf]
    out = []
    for cert in certs:
        if not any(same_cert(cert, other) for other in seen):
            out.append(cert)
            seen.append(cert)
    return out
