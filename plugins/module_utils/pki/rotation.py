# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Root rotation without downtime (vault_pki_root_rotation): A -> A+B -> B, at most one phase per run.

**Where the state lives.** One KV v2 secret, ``<kv_mount>/data/<trust_bundle_path>``, is both the rotation's
record and the trust bundle istiod's ``root-cert.pem`` template renders (field ``root-cert.pem``). The record's
fields (all strings): ``phase`` ('' none, ``trust``, ``sign``, ``retire``, ``aborted``), ``old_issuer_id``,
``new_issuer_id``, ``new_issuer_name``, ``trusted`` (the issuer ids in the bundle, comma separated), ``signer``
(the issuer id that must be the root mount's default issuer), ``trust_at``, ``sign_at``, ``retire_at``,
``aborted_at`` (UTC ISO 8601). Bundle and phase are one KV write: they can never disagree.

**Why the same mount.** The new root B is a second issuer of the root mount (``root/rotate/internal``, named
``rotation-<A id prefix>-<record version>``), not a new mount: the intermediates keep their ``root_mount``, the
operator's and istiod's policies keep their paths, and the mount's **default issuer** stays the one switch that
says which root signs - vault_pki_intermediate (the main playbook too) reads ``<root_mount>/issuer/default`` and
re-issues an intermediate that the default issuer did not sign, without ``force``. The default issuer is set
explicitly: A until ``sign``, B from ``sign`` on (A again on abort). A stays in the mount, never deleted.

**Phases** (``advance`` moves one step when the gate holds; a run that cannot advance writes nothing):

- start -> ``trust``: every cluster verified. Writes: ``root/rotate/internal`` (B; or, with ``pem_bundle``, the given
  B through ``issuers/import/bundle`` and ``issuer/<id>`` for its name), then the record (bundle A+B). B is generated
  in Vault only when A's key is in Vault and ``generate`` is not false (the role sets it false for an imported
  root): an operator who imported A brings B the same way.
- ``trust`` -> ``sign``: every cluster verified (its rendered bundle is A+B) and ``margin`` passed since
  ``trust_at`` (agents re-render, istiod pushes the roots to the proxies). Writes: the record (signer B), then
  ``config/issuers`` (default B); the per-cluster intermediates follow (vault_pki_intermediate).
- ``sign`` -> ``retire``: every cluster verified with an intermediate signed by B, and ``workload_cert_ttl`` +
  ``margin`` passed since the last cluster entered ``sign`` (its intermediate's issue time, or ``sign_at``).
  Writes: the record (bundle B).
- ``abort`` from ``trust``: the record (phase aborted, bundle A). From ``sign``: the record (aborted, signer A,
  bundle still A+B) and ``config/issuers`` (default A); the intermediates go back to A; a later run drops B from the
  bundle once ``workload_cert_ttl`` + ``margin`` passed since the last intermediate went back to A.

**Resuming.** Every write is idempotent and re-derivable: B is found by its name (no second B), and the record is
written *before* the default issuer moves (intent first), so a run killed between two writes leaves a record whose
phase says what Vault must look like; the next run (``hold`` too) completes it - and does not advance in that run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import TRUST_BUNDLE_FIELD
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import (
    cert_pem,
    iso,
    not_before,
    now_utc,
    same_cert,
    summary,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.issuers import (
    find_issuer,
    given_root,
    read_default_issuer,
    read_issuer,
    set_default_issuer,
    signer_problem,
    vault_warnings,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.request import human, key_spec, seconds
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.root import parse_import
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import (
    CasConflict,
    KvSecret,
    read_secret,
    write_secret,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import ensure_secrets_engine
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import check_path

PHASES = ("trust", "sign", "retire", "aborted")
MODES = ("hold", "advance", "start", "abort")
TIME_FIELDS = ("trust_at", "sign_at", "retire_at", "aborted_at")
RECORD_FIELDS = ("phase", "old_issuer_id", "new_issuer_id", "new_issuer_name", "trusted", "signer") + TIME_FIELDS + (
    "next_phase_at",)
# Vault backdates a certificate's notBefore by 30 s (not_before_duration): the issue time is notBefore + this.
BACKDATE = 30
KV_DESCRIPTION = "KV v2 (created by meshpki.vault_ca for the Istio CA key)"
# Check mode: the issuer id of a new root B that a real run would generate (nothing is generated).
PLANNED = "(new root)"


def manage_root_rotation(module):
    """vault_pki_root_rotation: validate, then read, decide and (not in check mode) write."""
    request = RotationRequest(module.params)
    engine = Rotation(request, module.get_authenticated_client(), module.check_mode)
    result = engine.run()
    for warning in engine.warnings:
        module.warn(warning)
    return result


def common_name(cert):
    from cryptography.x509.oid import NameOID
    found = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return found[0].value if found else "root"


def parse_time(text):
    if not text:
        return None
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


class RotationRequest(object):
    """The validated options (every error before any request)."""

    def __init__(self, params):
        self.root_mount = check_path("root_mount", params["root_mount"], "mount")
        self.kv_mount = check_path("kv_mount", params["kv_mount"], "mount")
        if not params.get("trust_bundle_path"):
            raise MeshPkiError("trust_bundle_path is required: the KV v2 path of the trust bundle and rotation record "
                               "(the one root-cert.pem's template reads). Nothing was changed.")
        self.path = check_path("trust_bundle_path", params["trust_bundle_path"], "path")
        self.mode = params["rotation"]
        self.ttl = seconds(params["workload_cert_ttl"], "workload_cert_ttl")
        self.margin = seconds(params["margin"], "margin")
        self.common_name = params.get("common_name")
        self.key_type, self.key_bits = None, None
        if params.get("key_bits") and not params.get("key_type"):
            raise MeshPkiError("key_bits %s needs key_type (rsa or ec): the size of a key depends on its type. "
                               "Nothing was changed." % params["key_bits"])
        if params.get("key_type"):
            self.key_type, self.key_bits = key_spec(params["key_type"], params.get("key_bits"))
        self.root_ttl = seconds(params["root_ttl"], "root_ttl") if params.get("root_ttl") else None
        self.generate = params.get("generate", True) is not False
        self.cert = self.bundle_text = None
        if params.get("pem_bundle"):
            given = [name for name in ("common_name", "key_type", "key_bits", "root_ttl") if params.get(name)]
            if given:
                raise MeshPkiError("%s only apply to a new root generated in Vault; the new root in pem_bundle "
                                   "brings its own subject, key and lifetime. Nothing was changed." % ", ".join(given))
            self.cert, _chain, _key, self.bundle_text = parse_import(params["pem_bundle"], "pem_bundle", True)
        self.given_root = given_root(self.root_mount, params.get("root_ca"))
        self.clusters = []
        for index, cluster in enumerate(params.get("clusters") or []):
            mount = cluster.get("intermediate_mount")
            mount = check_path("clusters[%d].intermediate_mount" % index, mount, "mount") if mount else None
            self.clusters.append(dict(name=cluster["name"], mount=mount, verified=cluster["verified"],
                                      problem=cluster.get("problem") or ""))
        if self.mode != "hold" and not self.clusters:
            raise MeshPkiError("rotation=%s needs clusters: every cluster of the mesh, with whether it verified (the "
                               "gate of each phase). Nothing was changed." % self.mode)


class Record(object):
    """The rotation record (and trust bundle) as read from KV v2."""

    def __init__(self, secret):
        self.secret = secret
        data = secret.data
        self.fields = dict((name, str(data.get(name) or "")) for name in RECORD_FIELDS)
        self.bundle = str(data.get(TRUST_BUNDLE_FIELD) or "")
        self.data = dict(data)

    def __getattr__(self, name):
        if name in RECORD_FIELDS:
            return self.fields[name]
        raise AttributeError(name)

    @property
    def trusted_ids(self):
        return [issuer for issuer in self.fields["trusted"].split(",") if issuer]

    def time(self, name):
        return parse_time(self.fields[name])

    @property
    def active(self):
        """A rotation in progress: the bundle is the record's, not the default issuer's."""
        return self.phase in ("trust", "sign") or (self.phase == "aborted" and len(self.trusted_ids) > 1)


class Rotation(object):
    """One run: read, converge to the recorded phase, maybe advance one phase."""

    def __init__(self, request, client, check_mode, now=None):
        self.req = request
        self.client = client
        self.check_mode = check_mode
        self.now = now or now_utc()
        self.warnings = []
        self.writes = []
        self._issuers = {}
        # check mode: the record data and the default issuer a real run would write
        self.planned, self.planned_default = None, None

    # -- reading -----------------------------------------------------------------------------------
    def issuer(self, issuer_id):
        if issuer_id not in self._issuers:
            found = read_issuer(self.client, self.req.root_mount, issuer_id)
            if found is None:
                raise MeshPkiError("The issuer %s the rotation record '%s/%s' names is not in '%s'. The record and "
                                   "the mount disagree: restore the issuer, or remove the record's phase by hand. "
                                   "Nothing was changed." % (issuer_id, self.req.kv_mount, self.req.path,
                                                             self.req.root_mount))
            self._issuers[issuer_id] = found
        return self._issuers[issuer_id]

    def issuer_named(self, name):
        listed = self.client.request("LIST", "%s/issuers" % self.req.root_mount, "list the issuers of", "list",
                                     missing_ok=True)
        infos = ((listed or {}).get("data") or {}).get("key_info") or {}
        for issuer_id, info in infos.items():
            if (info or {}).get("issuer_name") == name:
                return self.issuer(issuer_id)
        return None

    def intermediate(self, cluster):
        """The cluster's intermediate (its mount's default issuer) or None."""
        if not cluster["mount"]:
            return None
        try:
            return read_default_issuer(self.client, cluster["mount"])
        except MeshPkiError as e:
            if e.details.get("status") in (400, 404):
                return None
            raise

    def read_record(self):
        """The record, and the trust bundle's KV v2 mount made sure of (on a fresh Vault the root step runs before
        the intermediate's creates it). A record that reads back with a version proves the mount is KV v2: then
        the mount table is not read (issue 17: one read per object)."""
        req = self.req
        secret = read_secret(self.client, req.kv_mount, req.path)
        if secret.version:
            return Record(secret)
        kv_mount = ensure_secrets_engine(self.client, req.kv_mount, "kv", True, description=KV_DESCRIPTION,
                                         kv_version=2)
        if kv_mount.changed:
            self.writes.append("sys/mounts/%s" % req.kv_mount)
            if not self.check_mode:
                ensure_secrets_engine(self.client, req.kv_mount, "kv", False, description=KV_DESCRIPTION,
                                      kv_version=2)
        return Record(secret)

    def root_default(self, record):
        """The root mount's default issuer: the root_ca option when it only confirms that nothing changes (hold,
        no rotation in progress, the record is that root), else one read of ``<root_mount>/issuer/default``."""
        given = self.req.given_root
        if given is not None and self.req.mode == "hold" and not record.active and given.issuer_id and \
                record.trusted == given.issuer_id and record.bundle == cert_pem(given.cert) and \
                record.signer in ("", given.issuer_id):
            return given
        return read_default_issuer(self.client, self.req.root_mount)

    # -- writing -----------------------------------------------------------------------------------
    def write_record(self, record, fields):
        data = dict(record.data)
        data.update(fields)
        data[TRUST_BUNDLE_FIELD] = "".join(cert_pem(self.issuer(i).cert) for i in data["trusted"].split(",")
                                           if i and i != PLANNED)
        self.writes.append("%s/data/%s" % (self.req.kv_mount, self.req.path))
        self.planned = data
        if self.check_mode:
            return
        try:
            write_secret(self.client, record.secret, data)
        except CasConflict as e:
            raise MeshPkiError("%s Another run is rotating the root at the same time: run one rotation job at a "
                               "time, then re-run (it resumes from the record)." % e)

    def set_default(self, issuer_id):
        self.writes.append("%s/config/issuers" % self.req.root_mount)
        self.planned_default = issuer_id
        if not self.check_mode:
            set_default_issuer(self.client, self.req.root_mount, issuer_id)

    def new_root(self, name, old):
        """B, imported (pem_bundle) or generated; refused before any write when generating is not what the root
        in place asks for."""
        req = self.req
        if req.cert is not None:
            if same_cert(req.cert, old.cert):
                raise MeshPkiError("pem_bundle holds the current root of '%s' (%s): give the new root's certificate "
                                   "and key. Nothing was changed." % (req.root_mount, summary(old.cert)["serial"]))
            return self.import_new(name)
        if not old.key_id:
            raise MeshPkiError(
                "The root of '%s' (issuer %s, %s) has no key in Vault - an offline root - so the rotation does not "
                "generate its successor inside Vault: give the new root's certificate and key in pem_bundle (role: "
                "istio_vault_ca_root_rotation_pem_bundle). Nothing was changed."
                % (req.root_mount, old.issuer_id, summary(old.cert)["subject"]))
        if not req.generate:
            raise MeshPkiError(
                "The root of '%s' (issuer %s, %s) was imported, and generate is false: the rotation does not create "
                "the new root inside Vault on its own. Give the new root's certificate and key in pem_bundle (role: "
                "istio_vault_ca_root_rotation_pem_bundle), or ask for a root generated in Vault on purpose (role: "
                "istio_vault_ca_root_rotation_common_name). Nothing was changed."
                % (req.root_mount, old.issuer_id, summary(old.cert)["subject"]))
        return self.generate(name, old)

    def import_new(self, name):
        """B from pem_bundle: issuers/import/bundle (idempotent: a bundle already in the mount answers with its
        issuer), then its issuer_name, by which a killed run finds it."""
        req = self.req
        self.writes.append("%s/issuers/import/bundle" % req.root_mount)
        self.writes.append("%s/issuer/(new)" % req.root_mount)
        if self.check_mode:
            return None
        response = self.client.write("%s/issuers/import/bundle" % req.root_mount, {"pem_bundle": req.bundle_text},
                                     action="import the new root CA into", capability="update")
        self.warnings.extend(vault_warnings(response))
        issuer_id = find_issuer(self.client, req.root_mount, response, req.cert)
        self.writes[-1] = "%s/issuer/%s" % (req.root_mount, issuer_id)
        self.client.write("%s/issuer/%s" % (req.root_mount, issuer_id), {"issuer_name": name},
                          action="name the new root issuer in", capability="update")
        new = self.issuer(issuer_id)
        if not new.key_id:
            raise MeshPkiError("The new root imported into '%s' (issuer %s) has no key in Vault, so it cannot sign "
                               "the intermediates: give its unencrypted key in pem_bundle. The record was not "
                               "written." % (req.root_mount, issuer_id))
        return new

    def generate(self, name, old):
        """B: root/rotate/internal in the root mount (the default issuer does not move)."""
        req = self.req
        info = summary(old.cert)
        key_type, key_bits = (req.key_type, req.key_bits) if req.key_type else (info["key_type"], info["key_bits"])
        payload = dict(common_name=req.common_name or common_name(old.cert), key_type=key_type, key_bits=key_bits,
                       issuer_name=name)
        if req.root_ttl:
            payload["ttl"] = "%ds" % req.root_ttl
        self.writes.append("%s/root/rotate/internal" % req.root_mount)
        if self.check_mode:
            return None
        response = self.client.write("%s/root/rotate/internal" % req.root_mount, payload,
                                     action="generate the new root CA in", capability="update")
        self.warnings.extend(vault_warnings(response))
        return self.issuer(((response or {}).get("data") or {}).get("issuer_id"))

    def later(self, delay):
        return self.now + datetime.timedelta(seconds=delay)

    # -- the gate ------------------------------------------------------------------------------------
    def unverified(self):
        return ["cluster %s did not verify%s" % (c["name"], ": " + c["problem"] if c["problem"] else "")
                for c in self.req.clusters if not c["verified"]]

    def signed_by(self, signer):
        """(clusters whose intermediate the signer did not sign, the latest issue time of those it did)."""
        lagging, latest = [], None
        for cluster in self.req.clusters:
            current = self.intermediate(cluster)
            if current is None or signer_problem(current.cert, signer.cert):
                lagging.append("cluster %s: its intermediate (%s) is not signed by %s yet"
                               % (cluster["name"], "none" if current is None else summary(current.cert)["serial"],
                                  summary(signer.cert)["serial"]))
                continue
            issued = not_before(current.cert) + datetime.timedelta(seconds=BACKDATE)
            latest = issued if latest is None or issued > latest else latest
        return lagging, latest

    def drained(self, record, signer, since_field):
        """The wait after the intermediates moved to ``signer``: (waiting reasons, time it ends)."""
        lagging, latest = self.signed_by(signer)
        if lagging:
            return lagging, None
        start = max(t for t in (record.time(since_field), latest) if t is not None)
        until = start + datetime.timedelta(seconds=self.req.ttl + self.req.margin)
        if self.now < until:
            return ["workload certificates of the previous chain may live until %s (workload_cert_ttl %s + margin "
                    "%s after the last cluster's intermediate changed, %s)"
                    % (iso(until), human(self.req.ttl), human(self.req.margin), iso(start))], until
        return [], until

    # -- the run -----------------------------------------------------------------------------------
    def run(self):
        req = self.req
        record = self.read_record()
        default = self.root_default(record)
        if default is None:
            raise MeshPkiError("The root mount '%s' has no root CA (no default issuer): create it first (the main "
                               "playbook, or meshpki.vault_ca.vault_pki_root). Nothing was changed." % req.root_mount)
        self._issuers[default.issuer_id] = default
        self.default = default
        before = self.view(record, default.issuer_id)
        converged = self.converge(record, default)
        waiting, next_at, advanced = [], None, None
        if converged:
            waiting = ["this run completed the phase '%s' an earlier run started (%s); the next run checks the gate"
                       % (record.phase or "none", ", ".join(self.writes))]
        elif req.mode != "hold":
            advanced, waiting, next_at = self.advance(record, default)
        after_record = Record(read_secret(self.client, req.kv_mount, req.path)) if self.writes and \
            not self.check_mode else None
        if self.planned is not None and self.check_mode:  # the record as a real run would write it
            after_record = Record(KvSecret(req.kv_mount, req.path, self.planned, record.secret.version + 1,
                                           record.secret.current_version + 1))
        after = dict(before) if after_record is None else \
            self.view(after_record, self.planned_default or default.issuer_id)
        if self.check_mode:
            after["writes"] = list(self.writes)
        return self.result(record, after_record, before, after, advanced, waiting, next_at)

    def converge(self, record, default):
        """Make Vault what the recorded phase says (a killed run's missing writes). Returns True if it wrote."""
        already = len(self.writes)
        if record.active:
            if record.signer and default.issuer_id != record.signer:
                self.issuer(record.signer)
                self.set_default(record.signer)
            wanted = "".join(cert_pem(self.issuer(i).cert) for i in record.trusted_ids)
            if record.bundle != wanted:
                self.write_record(record, {})
        else:
            wanted = cert_pem(default.cert)
            if record.bundle != wanted or record.trusted != default.issuer_id or \
                    (record.signer and record.signer != default.issuer_id):
                fields = dict(trusted=default.issuer_id, signer=default.issuer_id if record.signer else "")
                self.write_record(record, fields)
        return len(self.writes) > already

    def advance(self, record, default):
        """(new phase or None, waiting reasons, earliest time of the next phase)."""
        req, phase = self.req, record.phase
        stamp = iso(self.now)
        if req.mode == "abort":
            return self.abort(record, default)
        if phase == "" or (req.mode == "start" and (phase == "retire" or (phase == "aborted" and not record.active))):
            waiting = self.unverified()
            if waiting:
                return None, waiting, None
            name = "rotation-%s-%d" % (default.issuer_id[:8], record.secret.current_version + 1)
            new = self.issuer_named(name)
            if new is None:
                new = self.new_root(name, default)
            elif new.issuer_id == default.issuer_id or not new.key_id:
                raise MeshPkiError("The issuer named '%s' in '%s' cannot be the new root (it is the current root, or "
                                   "its key is not in Vault). Rename it. Nothing was changed." % (name, req.root_mount))
            new_id = new.issuer_id if new is not None else PLANNED  # check mode: B is not generated
            self.write_record(record, dict(phase="trust", old_issuer_id=default.issuer_id, new_issuer_id=new_id,
                                           new_issuer_name=name, trusted="%s,%s" % (default.issuer_id, new_id),
                                           signer=default.issuer_id, trust_at=stamp, sign_at="", retire_at="",
                                           aborted_at="", next_phase_at=iso(self.later(req.margin))))
            return "trust", [], self.later(req.margin)
        if phase in ("retire", "aborted") and not record.active:
            return None, ["no rotation in progress: the last one ended with '%s' at %s; run with rotation=start "
                          "(-e istio_vault_ca_root_rotation=start) to rotate again" % (
                              phase, record.retire_at or record.aborted_at)], None
        waiting = self.unverified()
        if phase == "trust":
            until = record.time("trust_at") + datetime.timedelta(seconds=req.margin)
            if self.now < until:
                waiting.append("margin %s after the trust phase began (%s): agents render root-cert.pem with both "
                               "roots, istiod hands them to the proxies" % (human(req.margin), record.trust_at))
            if waiting:
                return None, waiting, until
            self.write_record(record, dict(phase="sign", signer=record.new_issuer_id, sign_at=stamp,
                                           next_phase_at=iso(self.later(req.ttl + req.margin))))
            self.set_default(record.new_issuer_id)
            return "sign", [], self.later(req.ttl + req.margin)
        if phase == "sign":
            more, until = self.drained(record, self.issuer(record.new_issuer_id), "sign_at")
            waiting += more
            if waiting:
                return None, waiting, until
            self.write_record(record, dict(phase="retire", trusted=record.new_issuer_id, retire_at=stamp,
                                           next_phase_at=""))
            return "retire", [], None
        # aborted from sign: B leaves the bundle once the intermediates are back on A long enough
        more, until = self.drained(record, self.issuer(record.old_issuer_id), "aborted_at")
        waiting += more
        if waiting:
            return None, waiting, until
        self.write_record(record, dict(trusted=record.old_issuer_id, next_phase_at=""))
        return "aborted", [], None

    def abort(self, record, default):
        phase = record.phase
        stamp = iso(self.now)
        if phase == "trust":
            self.write_record(record, dict(phase="aborted", trusted=record.old_issuer_id,
                                           signer=record.old_issuer_id, aborted_at=stamp, next_phase_at=""))
            return "aborted", [], None
        if phase == "sign":
            later = self.later(self.req.ttl + self.req.margin)
            self.write_record(record, dict(phase="aborted", signer=record.old_issuer_id, aborted_at=stamp,
                                           next_phase_at=iso(later)))
            self.set_default(record.old_issuer_id)
            return "aborted", [], later
        if phase == "aborted" and record.active:
            more, until = self.drained(record, self.issuer(record.old_issuer_id), "aborted_at")
            waiting = self.unverified() + more
            if waiting:
                return None, waiting, until
            self.write_record(record, dict(trusted=record.old_issuer_id, next_phase_at=""))
            return "aborted", [], None
        if phase == "retire":
            raise MeshPkiError("The rotation of '%s' is retired (since %s): the old root %s is no longer trusted, so "
                               "there is nothing to abort. To go back, rotate again (rotation=start). Nothing was "
                               "changed." % (self.req.root_mount, record.retire_at, record.old_issuer_id))
        return None, ["no rotation in progress, nothing to abort"], None

    # -- the result --------------------------------------------------------------------------------
    def view(self, record, default_id):
        if record is None:
            return {}
        view = dict((name, record.fields[name]) for name in RECORD_FIELDS if record.fields[name])
        view["roots"] = [self.serial(i) for i in record.trusted_ids]
        if default_id:
            view["default_issuer"] = default_id
        return view

    def serial(self, issuer_id):
        return PLANNED if issuer_id == PLANNED else summary(self.issuer(issuer_id).cert)["serial"]

    def roots(self, record):
        found = []
        for issuer_id in record.trusted_ids:
            if issuer_id == PLANNED:
                found.append(dict(issuer_id=None, serial=PLANNED, subject=None, not_after=None, certificate=None))
                continue
            info = summary(self.issuer(issuer_id).cert)
            found.append(dict(issuer_id=issuer_id, serial=info["serial"], subject=info["subject"],
                              not_after=info["not_after"], certificate=cert_pem(self.issuer(issuer_id).cert)))
        return found

    def result(self, record, after_record, before, after, advanced, waiting, next_at):
        req = self.req
        final = after_record or record
        default = read_default_issuer(self.client, req.root_mount) if self.writes and not self.check_mode else \
            self.issuer(self.planned_default or self.default.issuer_id)
        signer_id = default.issuer_id
        self._issuers.setdefault(signer_id, default)
        phase = advanced or final.phase
        clusters = []
        for cluster in req.clusters:
            current = self.intermediate(cluster)
            chain = None
            if current is not None:
                root = next((self.issuer(i) for i in set(final.trusted_ids + [signer_id or ""]) if i and
                             i != PLANNED and not signer_problem(current.cert, self.issuer(i).cert)), None)
                chain = "%s -> %s" % (summary(current.cert)["serial"],
                                      summary(root.cert)["serial"] if root else "(no trusted root)")
            clusters.append(dict(name=cluster["name"], phase=phase or "none", verified=cluster["verified"],
                                 roots=[r["serial"] for r in self.roots(final)], signing_chain=chain,
                                 next_phase_at=iso(next_at) if next_at else None))
        if self.check_mode and self.writes:
            plan = "advance to phase '%s'" % advanced if advanced else \
                "complete the phase '%s'" % (record.phase or "none")
            message = "Check mode, nothing was written: a real run would %s, with %d write(s): %s." % (
                plan, len(self.writes), ", ".join(self.writes))
        elif advanced:
            message = "Advanced to phase '%s'." % advanced
        elif waiting:
            message = "Phase '%s': waiting for %s%s." % (
                final.phase or "none", "; ".join(waiting), " (not before %s)" % iso(next_at) if next_at else "")
        else:
            message = "Phase '%s': nothing to do." % (final.phase or "none")
        header = "%s/%s (root rotation record)" % (req.kv_mount, req.path)
        return dict(
            changed=bool(self.writes), phase=phase or "none", previous_phase=record.phase or "none",
            advanced=bool(advanced), waiting_for=waiting, next_phase_at=iso(next_at) if next_at else None,
            message=message, record=dict((k, v) for k, v in final.fields.items()),
            record_path="%s/data/%s" % (req.kv_mount, req.path), roots=self.roots(final),
            signer_issuer_id=signer_id, clusters=clusters, writes=list(self.writes),
            signer=dict(certificate=cert_pem(default.cert), issuer_id=signer_id, key_id=default.key_id or ""),
            diff=dict(before=before, after=after, before_header=header, after_header=header),
        )
