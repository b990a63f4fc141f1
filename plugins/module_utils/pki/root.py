# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Root CA backend of vault_pki_root: read the mount's default issuer, decide, generate or import.

A root is generated inside Vault (``root/generate/internal``: the key never leaves it) or imported
(``issuers/import/bundle`` with its key, ``issuers/import/cert`` for an offline root). An existing root
that differs from the request is never replaced unless ``force`` is set - or, with ``trust_bundle_path``, when a root
rotation (vault_pki_root_rotation) put it there: while the rotation record names the mount's default issuer as one
of its two roots and the request describes the other one, the root in place is the root (see
``RootCA._rotation_root``). The record is read only when the default issuer differs from the request."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import (
    cert_pem,
    diff_view,
    is_ca,
    iso,
    key_difference,
    lifetime_note,
    not_after,
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
    read_default_issuer,
    read_issuer,
    set_default_issuer,
    vault_warnings,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.request import (
    Subject,
    cert_subject_pairs,
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
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import ensure_secrets_engine

MOUNT_DESCRIPTION = "Root CA (managed by meshpki.vault_ca)"


def manage_root(module):
    """vault_pki_root: validate every option (before any request), then read, plan and apply with the task's
    authenticated client. ``module`` gives params, check_mode, warn() and get_authenticated_client()."""
    request = RootRequest(module.params)
    backend = RootCA(request, module.get_authenticated_client(), module.check_mode)
    result = backend.run()
    for warning in backend.warnings:
        module.warn(warning)
    return result


def parse_import(text, option, with_key):
    """A root to import, checked before any request: (certificate, its chain, key or None, the text to send).
    Also the new root of a rotation (vault_pki_root_rotation's pem_bundle)."""
    certs, keys = split_pem_bundle(text)
    parsed = parse_certs("".join(certs), option)
    if not parsed:
        raise MeshPkiError("%s holds no PEM 'CERTIFICATE' block. Nothing was changed." % option)
    cert, chain, key = parsed[0], parsed[1:], None
    if with_key:
        if len(keys) != 1:
            raise MeshPkiError("%s must hold the CA certificate and exactly one unencrypted private key "
                               "(found %d keys). Nothing was changed." % (option, len(keys)))
        try:
            key = load_private_key(keys[0])
        except PemError as e:
            raise MeshPkiError("The private key in %s cannot be used: %s. Nothing was changed." % (option, e))
        if not public_key_matches(cert, key):
            raise MeshPkiError("The private key in %s is not the key of its first certificate (%s). "
                               "Nothing was changed." % (option, subject_text(cert_subject_pairs(cert))))
    elif keys:
        raise MeshPkiError("certificate contains a private key: pass certificate and key together in pem_bundle "
                           "(a no_log option) instead. Nothing was changed.")
    if not is_ca(cert):
        raise MeshPkiError("The certificate in %s (%s) is not a CA certificate (basicConstraints CA:TRUE is "
                           "missing). Nothing was changed." % (option, subject_text(cert_subject_pairs(cert))))
    key_type, bits = key_type_and_bits(cert)
    if key_type == "rsa" and bits < 2048:
        raise MeshPkiError("The certificate in %s has an RSA %d key; Istio needs at least 2048 bits. "
                           "Nothing was changed." % (option, bits))
    if not_after(cert) <= now_utc():
        raise MeshPkiError("The certificate in %s expired on %s. Nothing was changed."
                           % (option, iso(not_after(cert))))
    return cert, chain, key, "".join(certs + keys)


class RootRequest(object):
    """The validated options: nothing here talks to Vault, every error is raised before any request."""

    def __init__(self, params):
        self.mount = (params["mount"] or "").strip("/")
        if not self.mount:
            raise MeshPkiError("mount must not be empty. Nothing was changed.")
        self.kv_mount = (params.get("kv_mount") or "secret").strip("/")
        self.trust_bundle_path = (params.get("trust_bundle_path") or "").strip("/")
        self.force = params["force"]
        self.ttl = seconds(params["ttl"], "ttl")
        if not self.ttl:
            raise MeshPkiError("ttl must be longer than 0 seconds. Nothing was changed.")
        max_ttl = params["max_lease_ttl"]
        self.max_lease_ttl = seconds(max_ttl, "max_lease_ttl") if max_ttl is not None else self.ttl
        self.max_path_length = params["max_path_length"]
        if self.max_path_length < -1:
            raise MeshPkiError("max_path_length must be -1 (no limit) or more. Nothing was changed.")
        self.cert = self.key = None
        self.chain = []
        self.bundle_text = None
        if params.get("pem_bundle"):
            self.mode = "bundle"
            self._parse_import(params["pem_bundle"], "pem_bundle", with_key=True)
        elif params.get("certificate"):
            self.mode = "certificate"
            self._parse_import(params["certificate"], "certificate", with_key=False)
        else:
            self.mode = "generate"
            self.subject = Subject.from_params(params)
            self.key_type, self.key_bits = key_spec(params["key_type"], params["key_bits"])
            if self.ttl > self.max_lease_ttl:
                raise MeshPkiError(
                    "ttl %s is longer than max_lease_ttl %s of the mount '%s': Vault would silently cut the root "
                    "to %s. Raise max_lease_ttl or lower ttl. Nothing was changed."
                    % (to_text(self.ttl), to_text(self.max_lease_ttl), self.mount, to_text(self.max_lease_ttl)))
        if self.mode != "generate":
            extra = [name for name in ("common_name", "organization", "ou", "country", "locality", "province")
                     if params.get(name)]
            if extra:
                raise MeshPkiError("%s only apply to a generated root; an imported root keeps the subject of its "
                                   "certificate. Nothing was changed." % ", ".join(extra))

    def _parse_import(self, text, option, with_key):
        self.cert, self.chain, self.key, self.bundle_text = parse_import(text, option, with_key)
        self.key_type, self.key_bits = key_type_and_bits(self.cert)
        self.subject = None

    @property
    def wanted_view(self):
        """The --diff view of what is asked for, before it exists."""
        if self.cert is not None:
            return diff_view(self.cert)
        return {"subject": self.subject.text, "serial": "(new)",
                "not_after": iso(now_utc() + datetime.timedelta(seconds=self.ttl)),
                "key": key_text(self.key_type, self.key_bits)}


class RootCA(object):
    """Plan and apply one vault_pki_root task. ``run()`` returns the module result (without warnings,
    which are in ``self.warnings``)."""

    def __init__(self, request, client, check_mode):
        self.request = request
        self.client = MountTableCache(client)
        self.check_mode = check_mode
        self.warnings = []
        self.notes = []

    # -- read and decide ---------------------------------------------------------------------------
    def _differences(self, current):
        req = self.request
        if req.mode != "generate":
            if same_cert(current.cert, req.cert):
                return []
            have, want = summary(current.cert), summary(req.cert)
            found = ["it is the certificate %s (%s, until %s), the one given is %s (%s, until %s)"
                     % (have["serial"], have["subject"], have["not_after"], want["serial"], want["subject"],
                        want["not_after"])]
            return found
        found = [text for text in (req.subject.difference(current.cert),
                                   key_difference(current.cert, req.key_type, req.key_bits)) if text]
        if not current.key_id:
            found.append("its key is not in Vault (an imported certificate only), so it cannot sign")
        return found

    def _rotation_root(self, current):
        """Whether ``current`` (the default issuer, which differs from the request) is the root because a root
        rotation made it so: the rotation record at ``<kv_mount>/data/<trust_bundle_path>`` names it as one of its
        two roots (old A, new B) and the request describes the other one - the variables of the main playbook
        still describe A while the rotation moved the default issuer to B (phase sign, retire). One read of the
        record, and one of the other root's issuer."""
        req = self.request
        if not req.trust_bundle_path:
            return False
        body = self.client.read("%s/data/%s" % (req.kv_mount, req.trust_bundle_path),
                                action="read the root rotation record")
        record = ((body or {}).get("data") or {}).get("data") or {}
        pair = [str(record.get("old_issuer_id") or ""), str(record.get("new_issuer_id") or "")]
        if not record.get("phase") or "" in pair or current.issuer_id not in pair:
            return False
        other_id = pair[1] if current.issuer_id == pair[0] else pair[0]
        other = read_issuer(self.client, req.mount, other_id)
        if other is None or self._differences(other):
            return False
        role = "new" if current.issuer_id == pair[1] else "old"
        self.notes.append(
            "the root rotation recorded at '%s/data/%s' (phase %s) made the %s root %s (%s) the default issuer; the "
            "request describes the rotation's other root %s (%s), so the root in place is kept. Set the request to "
            "the root in place once the rotation is retired." % (
                req.kv_mount, req.trust_bundle_path, record.get("phase"), role, cert_info(current.cert)["serial"],
                subject_text(cert_subject_pairs(current.cert)), cert_info(other.cert)["serial"],
                subject_text(cert_subject_pairs(other.cert))))
        return True

    def _notes(self, current):
        req = self.request
        if req.mode != "generate":
            return list(self.notes)
        notes = list(self.notes) + [note for note in [lifetime_note(current.cert, req.ttl)] if note]
        if path_length(current.cert) != req.max_path_length:
            notes.append("max_path_length: the certificate has %s, %s is asked for; applies when a new root is "
                         "generated (force: true)" % (path_length(current.cert), req.max_path_length))
        return notes

    def _plan(self, current):
        """'none', 'create' (nothing there), 'replace' (force), 'import', or raise."""
        req = self.request
        if current is None:
            return "import" if req.mode != "generate" else "create", []
        differences = self._differences(current)
        if not differences:
            if req.mode == "bundle" and not current.key_id:
                return "import", ["the key of the root is added to Vault"]
            return "none", []
        if not req.force and self._rotation_root(current):
            return "none", []
        if not req.force:
            raise MeshPkiError(
                "The mount '%s' already has a different root CA (default issuer %s, serial %s): %s. Replacing a "
                "root breaks trust for every workload of the mesh, so it is never done silently: set force: true "
                "to %s (the old issuer stays in the mount), or use another mount. Nothing was changed."
                % (req.mount, current.issuer_id, cert_info(current.cert)["serial"], "; ".join(differences),
                   "generate a new root" if req.mode == "generate" else "import this one as the default issuer"),
                guard=dict(mount=req.mount, issuer_id=current.issuer_id, serial=cert_info(current.cert)["serial"],
                           differences=list(differences)))
        return ("replace" if req.mode == "generate" else "import"), differences

    # -- apply -------------------------------------------------------------------------------------
    def _generate(self):
        req = self.request
        payload = req.subject.payload()
        payload.update(key_type=req.key_type, key_bits=req.key_bits, ttl="%ds" % req.ttl,
                       max_path_length=req.max_path_length)
        response = self.client.write("%s/root/generate/internal" % req.mount, payload,
                                     action="generate a root CA in", capability="update")
        self.warnings.extend(vault_warnings(response))
        data = (response or {}).get("data") or {}
        return data.get("issuer_id"), data.get("key_id") or "", data.get("certificate") or ""

    def _import(self):
        req = self.request
        endpoint = "issuers/import/bundle" if req.mode == "bundle" else "issuers/import/cert"
        response = self.client.write("%s/%s" % (req.mount, endpoint), {"pem_bundle": req.bundle_text},
                                     action="import the root CA into", capability="update")
        self.warnings.extend(vault_warnings(response))
        issuer_id = find_issuer(self.client, req.mount, response, req.cert)
        data = (response or {}).get("data") or {}
        key_id = (data.get("mapping") or {}).get(issuer_id) or ""
        return issuer_id, key_id, None

    def _claim_default(self, issuer_id, key_id):
        """After generating into a mount that had no root. Vault makes the first issuer of a mount its default, so
        when several runs planned 'create' at once (AWX jobs launched together), the first root Vault stored is
        the default and the others must go: a mount holds one root. Returns None when ours is the default, else
        the default issuer (ours deleted)."""
        req = self.request
        current = read_default_issuer(self.client, req.mount)
        if current is None or current.issuer_id == issuer_id:
            set_default_issuer(self.client, req.mount, issuer_id)  # explicit, as for every other action
            return None
        self.client.delete("%s/issuer/%s" % (req.mount, issuer_id), action="delete the discarded root issuer in")
        if key_id:
            self.client.delete("%s/key/%s" % (req.mount, key_id), action="delete the key of the discarded root in")
        differences = self._differences(current)
        if differences:
            raise MeshPkiError(
                "Another run created a different root CA in '%s' at the same time (default issuer %s, serial %s): %s. "
                "This run discarded the root it generated; nothing else was changed."
                % (req.mount, current.issuer_id, cert_info(current.cert)["serial"], "; ".join(differences)))
        self.warnings.append(
            "Another run created the root CA in '%s' at the same time (issuer %s); this run discarded the root it "
            "generated (issuer %s) and converged on that one." % (req.mount, current.issuer_id, issuer_id))
        return current

    def run(self):
        req = self.request
        mount = ensure_secrets_engine(self.client, req.mount, "pki", True, description=MOUNT_DESCRIPTION,
                                      max_lease_ttl=req.max_lease_ttl)
        current = read_default_issuer(self.client, req.mount) if mount.before else None
        action, reasons = self._plan(current)
        notes = self._notes(current) if action == "none" else []
        changed = mount.changed or action != "none"

        final_cert, issuer_id, key_id = (current.cert, current.issuer_id, current.key_id) if current else (None,) * 3
        after_view = diff_view(current.cert) if current else {}
        if action != "none":
            after_view = req.wanted_view
        if changed and not self.check_mode:
            mount = ensure_secrets_engine(self.client, req.mount, "pki", False, description=MOUNT_DESCRIPTION,
                                          max_lease_ttl=req.max_lease_ttl)
            if action in ("create", "replace"):
                issuer_id, key_id, pem = self._generate()
                final_cert = parse_certs(pem, "The root certificate Vault returned")[0]
                if action == "create":
                    winner = self._claim_default(issuer_id, key_id)
                    if winner is not None:  # another run's root came first: ours is discarded
                        issuer_id, key_id, final_cert = winner.issuer_id, winner.key_id, winner.cert
                        action = "none"
            elif action == "import":
                issuer_id, key_id, _pem = self._import()
                final_cert = req.cert
                if not key_id:
                    self.warnings.append(
                        "The root in '%s' has no key in Vault: Vault and OpenBao answer '%s/cert/ca' with an error "
                        "for such an issuer. Read its certificate from '%s/issuer/default/json' (the same "
                        ".Data.certificate) in istiod's root-cert.pem template." % (req.mount, req.mount, req.mount))
            if action in ("replace", "import"):  # 'create': _claim_default set it
                set_default_issuer(self.client, req.mount, issuer_id)
            after_view = diff_view(final_cert)

        changed = mount.changed or action != "none"
        replaced = current is not None and (action == "replace" or
                                            (action == "import" and not same_cert(current.cert, req.cert)))
        result = dict(changed=changed, mount=req.mount, action=action, reasons=reasons, pending_changes=notes,
                      replaced=replaced, previous_serial=cert_info(current.cert)["serial"] if replaced else None,
                      max_lease_ttl=to_text(mount.after.get("max_lease_ttl")) if mount.after.get("max_lease_ttl")
                      else None)
        result.update(self._describe(final_cert, issuer_id, key_id))
        result["diff"] = {
            "before": dict(diff_view(current.cert) if current else {}, **_mount_view(mount.before)),
            "after": dict(after_view, **_mount_view(mount.after)),
            "before_header": "%s (root CA)" % req.mount, "after_header": "%s (root CA)" % req.mount,
        }
        return result

    @staticmethod
    def _describe(cert, issuer_id, key_id):
        info = summary(cert)
        return dict(
            certificate=_pem(cert), serial=info.get("serial"), subject=info.get("subject"),
            not_before=info.get("not_before"), not_after=info.get("not_after"), key_type=info.get("key_type"),
            key_bits=info.get("key_bits"), issuer_id=issuer_id, key_id=key_id or None,
        )


def _pem(cert):
    return cert_pem(cert) if cert is not None else None


def _mount_view(mount_summary):
    if not mount_summary:
        return {}
    view = {"mount_type": mount_summary.get("type")}
    if mount_summary.get("max_lease_ttl") is not None:
        view["max_lease_ttl"] = to_text(mount_summary["max_lease_ttl"])
    return view
