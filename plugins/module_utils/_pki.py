# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the two PKI backends (``_pki_root``, ``_pki_intermediate``) share: key and subject
validation, certificate summaries, reading a mount's default issuer, importing issuers, setting the
default issuer, TTL arithmetic. Pure helpers take no client; the others take a VaultClient."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.meshpki.vault_ca.plugins.module_utils._durations import to_seconds, to_text
from ansible_collections.meshpki.vault_ca.plugins.module_utils._errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils._inputs import check_subject
from ansible_collections.meshpki.vault_ca.plugins.module_utils._istio_bundle import (
    BundleError,
    cert_info,
    key_type_and_bits,
    load_cert,
    load_certs,
    pem_blocks,
    public_key_matches,
    signature_error,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:  # the modules report it with missing_required_lib (_istio_bundle.HAS_CRYPTOGRAPHY)
    x509 = hashes = serialization = None

# Key types and sizes Istio accepts for a CA (istiod signs workload certificates with it).
KEY_SIZES = {"rsa": (2048, 3072, 4096), "ec": (256, 384)}
DEFAULT_KEY_BITS = {"rsa": 2048, "ec": 256}

# Subject options, their attribute label and OID. Vault takes the lists as JSON arrays.
SUBJECT_ATTRIBUTES = (
    ("common_name", "CN", "2.5.4.3"),
    ("organization", "O", "2.5.4.10"),
    ("ou", "OU", "2.5.4.11"),
    ("locality", "L", "2.5.4.7"),
    ("province", "ST", "2.5.4.8"),
    ("country", "C", "2.5.4.6"),
)
_LABELS = dict((oid, label) for _name, label, oid in SUBJECT_ATTRIBUTES)
_ORDER = dict((label, index) for index, (_name, label, _oid) in enumerate(SUBJECT_ATTRIBUTES))

SUBJECT_ARGSPEC = dict(
    common_name=dict(type="str"),
    organization=dict(type="list", elements="str"),
    ou=dict(type="list", elements="str"),
    country=dict(type="list", elements="str"),
    locality=dict(type="list", elements="str"),
    province=dict(type="list", elements="str"),
)

# Vault warnings every PKI write repeats and that say nothing to this collection's users.
_NOISE = ("authority information access", "max path length of the signed certificate is zero")
# Time Vault needs between our clock reading and its own when signing (request latency).
SIGNING_SLACK = 60
# A certificate's lifetime differs from the ttl asked for by more than this: report it.
LIFETIME_TOLERANCE = 300
_UTC = datetime.timezone.utc


def now_utc():
    return datetime.datetime.now(_UTC)


def iso(moment):
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=_UTC)


def not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=_UTC)


def seconds(value, what):
    """to_seconds() with a MeshPkiError instead of ValueError."""
    try:
        return to_seconds(value, what)
    except ValueError as e:
        raise MeshPkiError("%s. Nothing was changed." % e)


def human(secs):
    """'43800h (5y)' style text for a number of seconds (for messages)."""
    secs = int(round(secs))
    if secs >= 3600:
        hours, rest = divmod(int(round(secs / 60.0)) * 60, 3600)
        text = "%dh" % hours + ("%dm" % (rest // 60) if rest else "")
    else:
        text = to_text(secs)
    days = secs / 86400.0
    if days >= 365:
        return "%s (%.1f years)" % (text, days / 365.0)
    if days >= 1:
        return "%s (%.1f days)" % (text, days)
    return text


# ---------------------------------------------------------------------------------------------------------
# keys and subjects
# ---------------------------------------------------------------------------------------------------------

def key_spec(key_type, key_bits):
    """Validate a key type/size pair for a CA Istio will use; returns ``(key_type, bits)``."""
    if key_type not in KEY_SIZES:
        raise MeshPkiError("key_type '%s' is not supported: use rsa or ec (Istio accepts RSA and ECDSA CA keys). "
                           "Nothing was changed." % key_type)
    bits = key_bits if key_bits else DEFAULT_KEY_BITS[key_type]
    if bits not in KEY_SIZES[key_type]:
        if key_type == "rsa":
            why = "RSA keys for an Istio CA must have 2048, 3072 or 4096 bits"
        else:
            why = "EC keys for an Istio CA must be P-256 (256) or P-384 (384)"
        raise MeshPkiError("key_bits %s is not valid with key_type %s: %s. Nothing was changed."
                           % (bits, key_type, why))
    return key_type, bits


def key_text(key_type, bits):
    return "%s %s" % (key_type.upper(), bits)


def subject_text(pairs):
    """'CN=tetrate.io, O=Tetrate' for a list of (label, value) pairs, in a fixed order."""
    ordered = sorted(pairs, key=lambda pair: (_ORDER.get(pair[0], len(_ORDER)), pair[0], pair[1]))
    return ", ".join("%s=%s" % pair for pair in ordered) or "(empty)"


def cert_subject_pairs(cert):
    """The subject of ``cert`` as sorted (label, value) pairs (multi-valued RDNs flattened)."""
    pairs = []
    for attribute in cert.subject:
        oid = attribute.oid.dotted_string
        label = _LABELS.get(oid) or getattr(attribute.oid, "_name", None) or oid
        pairs.append((label, attribute.value))
    return sorted(pairs)


class Subject(object):
    """The subject the user asks for: common_name plus optional O/OU/L/ST/C lists."""

    def __init__(self, common_name, **lists):
        self.common_name = (common_name or "").strip()
        self.lists = dict((name, [v for v in (lists.get(name) or []) if v and v.strip()])
                          for name, _label, _oid in SUBJECT_ATTRIBUTES[1:])

    @classmethod
    def from_params(cls, params):
        """The subject of ``params``; MeshPkiError naming the option for a control, bidi or line-separator
        character in any field, before anything is sent."""
        check_subject("common_name", params.get("common_name"))
        for name, _label, _oid in SUBJECT_ATTRIBUTES[1:]:
            for index, value in enumerate(params.get(name) or []):
                check_subject("%s[%d]" % (name, index), value)
        subject = cls(params.get("common_name"), **dict((name, params.get(name))
                                                        for name, _l, _o in SUBJECT_ATTRIBUTES[1:]))
        if not subject.common_name:
            raise MeshPkiError("common_name must not be empty: the CA certificate needs a subject (for example "
                               "'tetrate.io Intermediate Authority'). Nothing was changed.")
        return subject

    def pairs(self):
        pairs = [("CN", self.common_name)]
        for name, label, _oid in SUBJECT_ATTRIBUTES[1:]:
            pairs.extend((label, value) for value in self.lists[name])
        return sorted(pairs)

    @property
    def text(self):
        return subject_text(self.pairs())

    def payload(self):
        """The subject parameters of Vault's generate and sign endpoints."""
        payload = {"common_name": self.common_name}
        for name, values in self.lists.items():
            if values:
                payload[name] = list(values)
        return payload

    def difference(self, cert):
        """None when ``cert`` has exactly this subject (order of attributes aside), else a sentence."""
        have = cert_subject_pairs(cert)
        if have == self.pairs():
            return None
        return "subject is '%s', requested '%s'" % (subject_text(have), self.text)


# ---------------------------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------------------------

def parse_cert(pem, what):
    try:
        return load_cert(pem)
    except BundleError as e:
        raise MeshPkiError("%s is not a PEM certificate: %s. Nothing was changed." % (what, e))


def parse_certs(pem, what):
    try:
        certs = load_certs(pem or "")
    except BundleError as e:
        raise MeshPkiError("%s does not parse: %s. Nothing was changed." % (what, e))
    return certs


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def same_cert(a, b):
    return a is not None and b is not None and a.fingerprint(hashes.SHA256()) == b.fingerprint(hashes.SHA256())


def is_ca(cert):
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def path_length(cert):
    """The basic-constraints path length (-1 when unlimited or absent)."""
    try:
        value = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return -1
    return -1 if value is None else value


def summary(cert):
    """Subject, serial, validity and key of a certificate: the diff and return values."""
    if cert is None:
        return {}
    info = cert_info(cert)
    return {
        "subject": subject_text(cert_subject_pairs(cert)),
        "serial": info["serial"],
        "not_before": info["not_before"],
        "not_after": info["not_after"],
        "key_type": info["key_type"],
        "key_bits": info["key_bits"],
    }


def diff_view(cert):
    """The part of a certificate shown in --diff."""
    if cert is None:
        return {}
    view = summary(cert)
    return {"subject": view["subject"], "serial": view["serial"], "not_after": view["not_after"],
            "key": key_text(view["key_type"], view["key_bits"])}


def key_difference(cert, key_type, bits):
    have = key_type_and_bits(cert)
    if have == (key_type, bits):
        return None
    return "key is %s, requested %s" % (key_text(*have), key_text(key_type, bits))


def lifetime_note(cert, expected_seconds, what="ttl"):
    """A sentence when ``cert`` lives noticeably longer or shorter than ``expected_seconds``."""
    lifetime = (not_after(cert) - not_before(cert)).total_seconds()
    if abs(lifetime - expected_seconds) <= LIFETIME_TOLERANCE:
        return None
    return ("%s: the certificate lives %s (until %s) but %s asks for %s; a ttl change alone does not re-issue "
            "the certificate, it applies when a new one is issued"
            % (what, human(lifetime), iso(not_after(cert)), what, human(expected_seconds)))


def split_pem_bundle(text):
    """``(certificate PEMs, private key PEMs)`` of a PEM bundle."""
    certs, keys = [], []
    for label, pem in pem_blocks(text or ""):
        if label == "CERTIFICATE":
            certs.append(pem)
        elif "PRIVATE KEY" in label:
            keys.append(pem)
    return certs, keys


def csr_matches(csr_pem, private_key):
    """True when the CSR ``csr_pem`` was made from ``private_key``."""
    if not csr_pem:
        return False
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii") if not isinstance(csr_pem, bytes) else csr_pem)
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    return public_key_matches(csr, private_key)


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
            except BundleError:
                continue
            if not same_cert(cert, self.cert):
                certs.append(cert)
        return certs


def read_issuer(client, mount, issuer_id):
    body = client.read("%s/issuer/%s" % (mount, issuer_id), action="read issuer")
    return Issuer.from_response(mount, body) if body else None


def read_default_issuer(client, mount):
    """The default issuer of ``mount`` or None (two reads: config/issuers, issuer/<id>).

    ``<mount>/issuer/default`` would be one read, but it answers 500 when there is none, which the
    connection retries as a possibly transient error."""
    config = client.read("%s/config/issuers" % mount, action="read the default issuer setting") or {}
    default = (config.get("data") or {}).get("default")
    if not default:
        return None
    return read_issuer(client, mount, default)


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
