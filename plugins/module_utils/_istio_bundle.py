# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verify an Istio plugin-CA bundle (``ca-cert.pem``, ``ca-key.pem``, ``cert-chain.pem``, ``root-cert.pem``).

What istiod does on start (``security/pkg/pki/util`` ``Verify``): parse the first certificate of
``ca-cert.pem``, verify it with Go's ``crypto/x509`` against the ``root-cert.pem`` pool using ``cert-chain.pem``
as intermediates (at the current time, default ``ExtKeyUsageServerAuth``), parse the key (first PEM block:
PKCS#1, PKCS#8 or SEC1 EC, not encrypted) and check it matches the certificate. :func:`verify_bundle` runs
those checks and the ones that catch a bundle istiod would accept but that breaks the mesh later (chain order,
root file holding the intermediate, intermediate outliving its root, ...), then signs a throw-away SPIFFE
workload certificate with the CA key and verifies it up to the root.

Every check runs (none stops the others) and returns ``{"name", "passed", "detail"}`` plus ``"skipped": True``
when it could not run because an earlier check failed (it then counts as not passed). Pure code: no module
object, no network; bad input to the helpers raises ``BundleError`` (a ``ValueError``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math
import os
import re
import traceback

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

BUNDLE_FILES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")
CERT_FILES = ("ca-cert.pem", "cert-chain.pem", "root-cert.pem")
NO_VALUE = "<no value>"
TLS_CRT = "tls.crt"
SPIFFE_TEST_URI = "spiffe://cluster.local/ns/default/sa/default"

# Check names, in the order they are reported.
CHECKS = (
    "files_not_empty",
    "no_unrendered_values",
    "no_tls_crt",
    "ca_cert_parses",
    "ca_key_parses",
    "cert_chain_parses",
    "root_cert_parses",
    "key_matches_cert",
    "ca_cert_is_ca",
    "ca_cert_key_cert_sign",
    "cert_chain_starts_with_ca_cert",
    "chains_to_root",
    "roots_self_signed_ca",
    "root_cert_excludes_intermediate",
    "ext_key_usage",
    "certificates_valid_now",
    "intermediate_within_root_lifetime",
    "workload_cert_verifies",
)

_KEY_LABELS = {"RSA PRIVATE KEY": "pkcs1", "PRIVATE KEY": "pkcs8", "EC PRIVATE KEY": "sec1"}
_PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_MAX_CHAIN_DEPTH = 10
_UTC = datetime.timezone.utc

_EMPTY_HINTS = {
    "ca-cert.pem": "the intermediate mount's cert/ca returned nothing: was the signed intermediate imported "
                   "(intermediate/set-signed) and made the default issuer?",
    "ca-key.pem": "the KV v2 secret holding the intermediate key (e.g. secret/istioca, field ca-key.pem) is "
                  "missing, has no such field, or the istiod role's policy cannot read it",
    "cert-chain.pem": "the intermediate mount's cert/ca_chain returned nothing: import the signed intermediate "
                      "together with its issuing CA (set-signed with certificate + issuing_ca)",
    "root-cert.pem": "the root mount's cert/ca returned nothing (the template's 'or' renders empty instead of "
                     "<no value>): check the root mount path and that a root was generated",
}


class BundleError(ValueError):
    """Bad input (unparsable PEM, wrong key format, ...); the message says what is wrong."""


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------

def _require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise BundleError(
            f"the Python library 'cryptography' is required to verify the Istio CA bundle: {CRYPTOGRAPHY_IMPORT_ERROR}"
        )


def _text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _utc(now):
    if now is None:
        return datetime.datetime.now(_UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=_UTC)
    return now.astimezone(_UTC)


def _not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=_UTC)


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=_UTC)


def _iso(moment):
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _days_left(cert, now):
    return math.floor((_not_after(cert) - now).total_seconds() / 86400.0)


def _der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def _spki(key):
    """SubjectPublicKeyInfo DER of a certificate, a private key or a public key."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name_bytes(name):
    try:
        return name.public_bytes()
    except TypeError:  # cryptography < 35 wants a backend argument
        return name.rfc4514_string()


def _same_name(a, b):
    return _name_bytes(a) == _name_bytes(b)


def _label(cert):
    return cert.subject.rfc4514_string() or "(empty subject)"


def _extension(cert, ext_class):
    try:
        return cert.extensions.get_extension_for_class(ext_class).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert):
    constraints = _extension(cert, x509.BasicConstraints)
    return bool(constraints is not None and constraints.ca)


def _path_length(cert):
    constraints = _extension(cert, x509.BasicConstraints)
    return constraints.path_length if constraints is not None and constraints.ca else None


def format_serial(number):
    """Format a serial number the way Vault does: lower-case hex bytes joined by ':' (``18:98:2c:...``)."""
    digits = format(abs(number), "x")
    if len(digits) % 2:
        digits = "0" + digits
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def pem_blocks(text):
    """Return ``[(label, pem_text), ...]`` for every PEM block of ``text`` (str or bytes)."""
    text = _text(text) or ""
    return [(match.group(1), match.group(0) + "\n") for match in _PEM_RE.finditer(text)]


# ---------------------------------------------------------------------------------------------------------
# public helpers reused by the PKI modules
# ---------------------------------------------------------------------------------------------------------

def split_pem_certs(text):
    """Return the ``CERTIFICATE`` PEM blocks of ``text`` as a list of strings (other blocks are ignored)."""
    return [pem for label, pem in pem_blocks(text) if label == "CERTIFICATE"]


def load_cert(pem):
    """Parse the first ``CERTIFICATE`` block of ``pem`` (str or bytes); raise BundleError if there is none/bad."""
    _require_cryptography()
    blocks = split_pem_certs(pem)
    if not blocks:
        raise BundleError("no PEM 'CERTIFICATE' block found")
    try:
        return x509.load_pem_x509_certificate(blocks[0].encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise BundleError(f"the CERTIFICATE block does not parse: {exc}") from None


def load_certs(text):
    """Parse every ``CERTIFICATE`` block of ``text``; raise BundleError naming the first bad one."""
    _require_cryptography()
    certs = []
    for index, block in enumerate(split_pem_certs(text), start=1):
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode("ascii")))
        except (ValueError, UnicodeEncodeError) as exc:
            raise BundleError(f"CERTIFICATE block #{index} does not parse: {exc}") from None
    return certs


def _load_private_key(pem):
    """Return ``(key, format)`` like istiod reads it (first PEM block only); raise BundleError otherwise."""
    _require_cryptography()
    text = _text(pem) or ""
    blocks = pem_blocks(text)
    encrypted = any(label == "ENCRYPTED PRIVATE KEY" for label, _pem in blocks)
    if encrypted or re.search(r"Proc-Type:\s*4,\s*ENCRYPTED", text):
        raise BundleError(
            "the private key is encrypted (ENCRYPTED PRIVATE KEY or Proc-Type: 4,ENCRYPTED): istiod cannot decrypt "
            "it; store it unencrypted (PKCS#1 'RSA PRIVATE KEY', PKCS#8 'PRIVATE KEY' or 'EC PRIVATE KEY'), e.g. "
            "the private_key returned by intermediate/generate/exported"
        )
    if not blocks:
        raise BundleError(
            "no PEM block found: expected a 'RSA PRIVATE KEY' (PKCS#1), 'PRIVATE KEY' (PKCS#8) or "
            "'EC PRIVATE KEY' block"
        )
    label, block = blocks[0]
    if label not in _KEY_LABELS:
        raise BundleError(
            f"the first PEM block is {label!r}: istiod reads only the first block and expects 'RSA PRIVATE KEY' "
            "(PKCS#1), 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY'; put the key block first (drop e.g. 'EC PARAMETERS')"
        )
    try:
        key = serialization.load_pem_private_key(block.encode("ascii"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise BundleError(f"the {label!r} block does not parse as an unencrypted private key: {exc}") from None
    fmt = _KEY_LABELS[label]
    if fmt == "pkcs1" and not isinstance(key, rsa.RSAPrivateKey):
        raise BundleError("the 'RSA PRIVATE KEY' block does not hold an RSA key")
    if fmt == "sec1" and not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BundleError("the 'EC PRIVATE KEY' block does not hold an EC key")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise BundleError(f"unsupported private key type {type(key).__name__}: use RSA or ECDSA")
    return key, fmt


def load_private_key(pem):
    """Parse a CA private key as istiod does; return the key or raise BundleError saying which format is wrong."""
    return _load_private_key(pem)[0]


def public_key_matches(cert, key):
    """True when ``key`` (private or public key) is the key pair of ``cert``'s public key."""
    _require_cryptography()
    return _spki(cert.public_key()) == _spki(key)


def key_type_and_bits(cert_or_key):
    """``("rsa", 2048)``, ``("ec", 256)``, ``("ed25519", 256)`` for a certificate, a private or a public key."""
    _require_cryptography()
    key = cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate) else cert_or_key
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa", key.key_size
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ec", key.curve.key_size
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519", 256
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "ed448", 448
    raise BundleError(f"unsupported key type {type(key).__name__}")


def cert_info(cert, now=None):
    """Summary of a certificate: subject, issuer, serial (Vault format), validity, days left, SHA-256, CA, key."""
    _require_cryptography()
    now = _utc(now)
    try:
        key_type, key_bits = key_type_and_bits(cert)
    except BundleError:
        key_type, key_bits = "unknown", 0
    fingerprint = cert.fingerprint(hashes.SHA256()).hex().upper()
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format_serial(cert.serial_number),
        "not_before": _iso(_not_before(cert)),
        "not_after": _iso(_not_after(cert)),
        "days_left": _days_left(cert, now),
        "sha256_fingerprint": ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2)),
        "is_ca": _is_ca(cert),
        "self_signed": _same_name(cert.subject, cert.issuer),
        "key_type": key_type,
        "key_bits": key_bits,
    }


def signature_error(cert, issuer):
    """Return None when ``issuer`` signed ``cert`` (names and signature), else a short reason."""
    _require_cryptography()
    if not _same_name(cert.issuer, issuer.subject):
        return f"issuer name {cert.issuer.rfc4514_string()!r} differs from the subject {_label(issuer)!r}"
    if hasattr(cert, "verify_directly_issued_by"):  # cryptography >= 40
        try:
            cert.verify_directly_issued_by(issuer)
        except InvalidSignature:
            return f"signature does not verify with the public key of {_label(issuer)!r}"
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            return f"signature cannot be verified with {_label(issuer)!r}: {exc}"
        return None
    return _signature_error_manual(cert, issuer)


def _signature_error_manual(cert, issuer):
    """Signature check for cryptography < 40 (no ``verify_directly_issued_by``)."""
    public = issuer.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            params = getattr(cert, "signature_algorithm_parameters", None)
            pad = params if isinstance(params, padding.PSS) else padding.PKCS1v15()
            public.verify(cert.signature, cert.tbs_certificate_bytes, pad, cert.signature_hash_algorithm)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(public, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            public.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return f"unsupported issuer key type {type(public).__name__}"
    except InvalidSignature:
        return f"signature does not verify with the public key of {_label(issuer)!r}"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"signature cannot be verified with {_label(issuer)!r}: {exc}"
    return None


def _insecure_signature(cert):
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is not None and algorithm.name in ("sha1", "md5"):
        return f"{_label(cert)!r} is signed with {algorithm.name.upper()}, which Go's crypto/x509 rejects"
    return None


def build_chain(leaf, intermediates, roots):
    """Build a path from ``leaf`` to one of ``roots`` the way Go's ``crypto/x509`` does.

    Candidates are the certificates whose subject equals the current certificate's issuer, roots first, then
    ``intermediates``; each must verify the signature, intermediates must be CAs, path-length constraints
    and SHA-1/MD5 signatures are enforced, a certificate is never used twice. Validity periods are left to
    the caller. Returns ``(path, problems)``: ``path`` is ``[leaf, ..., root]`` or None, ``problems`` lists why
    candidates were rejected.
    """
    _require_cryptography()
    problems = []

    def extend(path, depth):
        current = path[-1]
        if depth > _MAX_CHAIN_DEPTH:
            problems.append(f"chain longer than {_MAX_CHAIN_DEPTH} certificates")
            return None
        candidates = [(root, True) for root in roots] + [(cert, False) for cert in intermediates]
        found_name = False
        for candidate, is_root in candidates:
            if not _same_name(current.issuer, candidate.subject):
                continue
            if any(_der(candidate) == _der(seen) for seen in path):
                continue
            found_name = True
            where = "root-cert.pem" if is_root else "cert-chain.pem"
            reason = signature_error(current, candidate) or _insecure_signature(current)
            if reason is None and not is_root and not _is_ca(candidate):
                reason = f"{_label(candidate)!r} is not a CA (basic constraints CA:FALSE or missing)"
            if reason is None:
                max_path = _path_length(candidate)
                if max_path is not None and len(path) - 1 > max_path:
                    reason = f"{_label(candidate)!r} allows pathlen {max_path}, the chain below it has {len(path) - 1}"
            if reason is not None:
                problems.append(f"{_label(current)!r} -> {_label(candidate)!r} ({where}): {reason}")
                continue
            if is_root:
                return [*path, candidate]
            result = extend([*path, candidate], depth + 1)
            if result is not None:
                return result
        if not found_name and _same_name(current.subject, current.issuer):
            problems.append(
                f"{_label(current)!r} is self-signed (a root) but root-cert.pem does not contain it"
            )
        elif not found_name:
            problems.append(
                "no certificate in root-cert.pem or cert-chain.pem has the subject "
                f"{current.issuer.rfc4514_string()!r} (issuer of {_label(current)!r})"
            )
        return None

    return extend([leaf], 1), problems


# ---------------------------------------------------------------------------------------------------------
# the verifier
# ---------------------------------------------------------------------------------------------------------

class _Report:
    def __init__(self):
        self.checks = []

    def add(self, name, passed, detail, skipped=False):
        entry = {"name": name, "passed": bool(passed), "detail": detail}
        if skipped:
            entry["skipped"] = True
        self.checks.append(entry)

    def skip(self, name, why):
        self.add(name, False, f"not run: {why}", skipped=True)


def _parse_cert_file(name, text):
    """Return ``(certs or None, detail)``."""
    if text is None or not text.strip():
        return None, f"{name} is empty (see files_not_empty)"
    labels = [label for label, _pem in pem_blocks(text)]
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if "CERTIFICATE" not in labels:
        return None, (
            f"{name} holds no PEM CERTIFICATE block (found: {', '.join(others) or 'no PEM at all'}); "
            "render the certificate PEM (.Data.certificate) into it"
        )
    try:
        certs = load_certs(text)
    except BundleError as exc:
        return None, f"{name}: {exc}; the file is corrupted or was not rendered from Vault's PEM"
    if others:
        extra = (" It contains a private key: cert files are public (cert-chain.pem is sent with every workload "
                 "certificate) — remove the key now and consider the key compromised."
                 if any("PRIVATE KEY" in label for label in others) else "")
        return None, f"{name} contains non-certificate PEM blocks ({', '.join(others)}); keep only certificates.{extra}"
    return certs, None


def _parse_checks(report, texts):
    parsed = {}
    check_names = {"ca-cert.pem": "ca_cert_parses", "cert-chain.pem": "cert_chain_parses",
                   "root-cert.pem": "root_cert_parses"}
    for name in ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"):
        text = texts[name]
        if name == "ca-key.pem":
            if text is None or not text.strip():
                report.skip("ca_key_parses", "ca-key.pem is empty (see files_not_empty)")
                continue
            try:
                key, fmt = _load_private_key(text)
            except BundleError as exc:
                report.add("ca_key_parses", False, f"ca-key.pem: {exc}")
                continue
            parsed["key"], parsed["key_format"] = key, fmt
            key_type, bits = key_type_and_bits(key)
            report.add("ca_key_parses", True,
                       f"ca-key.pem holds an unencrypted {key_type.upper()} {bits}-bit key ({fmt})")
            continue
        certs, problem = _parse_cert_file(name, text)
        if certs is None:
            if text is None or not text.strip():
                report.skip(check_names[name], problem)
            else:
                report.add(check_names[name], False, problem)
            continue
        parsed[name] = certs
        detail = f"{name}: {len(certs)} certificate(s), first {_label(certs[0])!r}"
        if name == "ca-cert.pem" and len(certs) > 1:
            detail += "; istiod uses only the first certificate of ca-cert.pem"
        report.add(check_names[name], True, detail)
    return parsed


def _file_checks(report, texts, file_names):
    empty = [name for name in BUNDLE_FILES if texts[name] is None or not texts[name].strip()]
    if empty:
        hints = "; ".join(f"{name}: {_EMPTY_HINTS[name]}" for name in empty)
        report.add("files_not_empty", False,
                   f"missing or empty: {', '.join(empty)}. Istio >= 1.27 refuses to start on an incomplete bundle, "
                   f"older versions may silently fall back to a self-signed CA. {hints}")
    else:
        report.add("files_not_empty", True, "all four files are present and non-empty")

    unrendered = [name for name in BUNDLE_FILES if texts[name] and NO_VALUE in texts[name]]
    if unrendered:
        report.add("no_unrendered_values", False,
                   f"{', '.join(unrendered)} contain(s) '{NO_VALUE}': the agent template read a field that does not "
                   "exist (wrong KV field name, wrong path, KV v1 vs v2, or a missing certificate); fix the "
                   "template or the secret")
    else:
        report.add("no_unrendered_values", True, f"no file contains '{NO_VALUE}'")

    if file_names is None:
        report.add("no_tls_crt", True, "no directory listing given: not checked")
    elif TLS_CRT in file_names:
        report.add("no_tls_crt", False,
                   "tls.crt is present in the CA directory: istiod then switches to the tls.crt/tls.key/ca.crt "
                   "format and ignores ca-cert.pem/ca-key.pem/cert-chain.pem/root-cert.pem; remove tls.crt "
                   "(and tls.key, ca.crt) or render the Vault files into a directory of their own")
    else:
        report.add("no_tls_crt", True, "no tls.crt in the directory")


def _chain_checks(report, parsed, now):
    """ca_cert_is_ca ... intermediate_within_root_lifetime; returns the path found (or None)."""
    ca_certs = parsed.get("ca-cert.pem")
    chain = parsed.get("cert-chain.pem")
    roots = parsed.get("root-cert.pem")
    intermediate = ca_certs[0] if ca_certs else None

    if intermediate is None:
        for name in ("ca_cert_is_ca", "ca_cert_key_cert_sign"):
            report.skip(name, "ca-cert.pem did not parse")
    else:
        if _is_ca(intermediate):
            report.add("ca_cert_is_ca", True, f"{_label(intermediate)!r} has basic constraints CA:TRUE")
        else:
            report.add("ca_cert_is_ca", False,
                       f"{_label(intermediate)!r} is not a CA (basic constraints CA:TRUE missing): istiod cannot sign "
                       "workload certificates with it; ca-cert.pem must be the intermediate CA from "
                       "<intermediate mount>/cert/ca, signed with root/sign-intermediate (not issue/ or sign/)")
        usage = _extension(intermediate, x509.KeyUsage)
        if usage is None:
            report.add("ca_cert_key_cert_sign", True,
                       f"{_label(intermediate)!r} has no keyUsage extension (unrestricted, keyCertSign allowed)")
        elif usage.key_cert_sign:
            report.add("ca_cert_key_cert_sign", True, f"{_label(intermediate)!r} has keyUsage keyCertSign")
        else:
            report.add("ca_cert_key_cert_sign", False,
                       f"{_label(intermediate)!r} lacks keyUsage keyCertSign: workload certificates it signs are "
                       "rejected by TLS peers; re-sign the intermediate with root/sign-intermediate (Vault sets "
                       "CertSign and CRLSign)")

    if intermediate is None or chain is None:
        report.skip("cert_chain_starts_with_ca_cert", "ca-cert.pem or cert-chain.pem did not parse")
    elif _der(chain[0]) == _der(intermediate):
        report.add("cert_chain_starts_with_ca_cert", True,
                   "cert-chain.pem starts with the ca-cert.pem certificate: "
                   + " -> ".join(repr(_label(cert)) for cert in chain))
    else:
        positions = [index for index, cert in enumerate(chain) if _der(cert) == _der(intermediate)]
        where = (f"it is at position {positions[0] + 1} (wrong order)" if positions
                 else "it does not contain the intermediate at all")
        report.add("cert_chain_starts_with_ca_cert", False,
                   f"cert-chain.pem starts with {_label(chain[0])!r}, not with the ca-cert.pem certificate "
                   f"{_label(intermediate)!r}; {where}. Istio appends cert-chain.pem to every workload certificate, so "
                   "it must be the intermediate followed by its issuers up to the root (Vault's "
                   "<intermediate mount>/cert/ca_chain after set-signed with certificate + issuing_ca)")

    path = None
    if intermediate is None or roots is None:
        report.skip("chains_to_root", "ca-cert.pem or root-cert.pem did not parse")
    else:
        path, problems = build_chain(intermediate, chain or [], roots)
        if path:
            report.add("chains_to_root", True,
                       "ca-cert.pem chains to root-cert.pem through cert-chain.pem: "
                       + " -> ".join(repr(_label(cert)) for cert in path) + " (names and signatures verified)")
        else:
            self_contained = any(_der(root) == _der(intermediate) for root in roots)
            report.add("chains_to_root", False,
                       f"{_label(intermediate)!r} does not chain to any certificate of root-cert.pem using "
                       f"cert-chain.pem as intermediates: {'; '.join(problems) or 'no candidate issuer'}"
                       + ("; root-cert.pem contains ca-cert.pem itself, which is not a root" if self_contained else "")
                       + ". istiod fails with 'cannot verify the cert with the provided root chain and cert pool'. "
                       "Check that the intermediate was signed by this root (root/sign-intermediate) and that "
                       "root-cert.pem renders the root mount's cert/ca")

    if roots is None:
        report.skip("roots_self_signed_ca", "root-cert.pem did not parse")
    else:
        bad = []
        for root in roots:
            reasons = []
            if not _same_name(root.subject, root.issuer) or signature_error(root, root):
                reasons.append("not self-signed")
            if not _is_ca(root):
                reasons.append("not a CA")
            if reasons:
                bad.append(f"{_label(root)!r} ({', '.join(reasons)})")
        if bad:
            report.add("roots_self_signed_ca", False,
                       f"root-cert.pem must hold only self-signed root CA certificates; offending: {', '.join(bad)}. "
                       "Intermediates belong in cert-chain.pem; render the root mount's cert/ca into root-cert.pem")
        else:
            report.add("roots_self_signed_ca", True,
                       f"all {len(roots)} certificate(s) of root-cert.pem are self-signed CAs")

    if intermediate is None or roots is None:
        report.skip("root_cert_excludes_intermediate", "ca-cert.pem or root-cert.pem did not parse")
    else:
        intermediate_key = _spki(intermediate.public_key())
        holders = [root for root in roots
                   if _der(root) == _der(intermediate) or _spki(root.public_key()) == intermediate_key]
        if holders:
            note = (" (ca-cert.pem is self-signed: this collection keeps the root out of istiod and gives it an "
                    "intermediate)" if _same_name(intermediate.subject, intermediate.issuer) else "")
            report.add("root_cert_excludes_intermediate", False,
                       f"root-cert.pem contains the intermediate {_label(intermediate)!r} (or a certificate with its "
                       "key): workloads would trust the intermediate as a root and istiod's chain check passes "
                       "trivially; render the root mount's cert/ca (not the intermediate mount's) into "
                       f"root-cert.pem{note}")
        else:
            report.add("root_cert_excludes_intermediate", True, "root-cert.pem does not contain the intermediate")

    if intermediate is None:
        report.skip("ext_key_usage", "ca-cert.pem did not parse")
    else:
        bad = []
        for cert in path or [intermediate]:
            usage = _extension(cert, x509.ExtendedKeyUsage)
            if usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usage and \
                    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usage:
                bad.append(repr(_label(cert)))
        if bad:
            report.add("ext_key_usage", False,
                       f"{', '.join(bad)} restrict(s) extendedKeyUsage without serverAuth: Go's x509 verification "
                       "(as istiod runs it, default usage serverAuth) rejects the chain; issue the CA certificates "
                       "without an extendedKeyUsage restriction (Vault's default)")
        else:
            report.add("ext_key_usage", True,
                       "no certificate on the path restricts extendedKeyUsage against serverAuth")

    _time_checks(report, intermediate, path, roots, now)
    return path


def _time_checks(report, intermediate, path, roots, now):
    if intermediate is None and roots is None:
        report.skip("certificates_valid_now", "neither ca-cert.pem nor root-cert.pem parsed")
    else:
        subjects = []
        for cert in [intermediate, *(path or [])[1:], *(roots or [])]:
            if cert is not None and all(_der(cert) != _der(seen) for seen in subjects):
                subjects.append(cert)
        problems = []
        summary = []
        for cert in subjects:
            if now < _not_before(cert):
                problems.append(f"{_label(cert)!r} is not valid before {_iso(_not_before(cert))} (clock skew or a "
                                "certificate dated in the future)")
            elif now > _not_after(cert):
                problems.append(f"{_label(cert)!r} expired on {_iso(_not_after(cert))} "
                                f"({-_days_left(cert, now)} day(s) ago)")
            else:
                summary.append(f"{_label(cert)!r} until {_iso(_not_after(cert))} ({_days_left(cert, now)} days left)")
        if problems:
            report.add("certificates_valid_now", False,
                       f"at {_iso(now)}: {'; '.join(problems)}. istiod's Go verification fails on any certificate "
                       "outside its validity period: renew the intermediate (generate/exported, sign-intermediate, "
                       "set-signed, store the key) or rotate the root")
        else:
            report.add("certificates_valid_now", True, f"at {_iso(now)}: " + "; ".join(summary))

    if intermediate is None or not path:
        report.skip("intermediate_within_root_lifetime",
                    "no chain from ca-cert.pem to root-cert.pem (see chains_to_root)")
        return
    worst = None
    for issuer in path[1:]:
        excess = _not_after(intermediate) - _not_after(issuer)
        if excess > datetime.timedelta(0) and (worst is None or excess > worst[0]):
            worst = (excess, issuer)
    root = path[-1]
    if worst is None:
        margin = _not_after(root) - _not_after(intermediate)
        report.add("intermediate_within_root_lifetime", True,
                   f"the intermediate expires {_iso(_not_after(intermediate))}, {margin} before the root "
                   f"{_label(root)!r} ({_iso(_not_after(root))})")
    else:
        excess, issuer = worst
        report.add("intermediate_within_root_lifetime", False,
                   f"the intermediate {_label(intermediate)!r} (not after {_iso(_not_after(intermediate))}) outlives "
                   f"{_label(issuer)!r} (not after {_iso(_not_after(issuer))}) by {excess} "
                   f"({int(excess.total_seconds())} s): from then on the chain no longer verifies. Re-sign the "
                   "intermediate with a ttl that ends before the root (root/sign-intermediate caps ttl at the root "
                   "mount's max lease TTL only with a warning)")


def _workload_check(report, parsed, now, spiffe_uri):
    ca_certs = parsed.get("ca-cert.pem")
    key = parsed.get("key")
    chain = parsed.get("cert-chain.pem")
    roots = parsed.get("root-cert.pem")
    if not ca_certs or key is None:
        report.skip("workload_cert_verifies", "ca-cert.pem or ca-key.pem did not parse")
        return
    intermediate = ca_certs[0]
    if not public_key_matches(intermediate, key):
        report.skip("workload_cert_verifies", "ca-key.pem does not match ca-cert.pem (see key_matches_cert)")
        return
    try:
        leaf = _sign_workload_cert(intermediate, key, now, spiffe_uri)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        report.add("workload_cert_verifies", False,
                   f"signing a test workload certificate with ca-key.pem failed: {exc}")
        return
    reason = signature_error(leaf, intermediate)
    if reason is not None:
        report.add("workload_cert_verifies", False,
                   f"test workload certificate does not verify against ca-cert.pem: {reason}")
        return
    if roots is None:
        report.skip("workload_cert_verifies", "root-cert.pem did not parse")
        return
    # A peer sees the workload certificate followed by cert-chain.pem and trusts root-cert.pem.
    path, problems = build_chain(leaf, chain or [], roots)
    if not path:
        report.add("workload_cert_verifies", False,
                   f"a workload certificate signed with ca-key.pem ({spiffe_uri}) does not verify to root-cert.pem "
                   f"with cert-chain.pem as the presented chain: {'; '.join(problems) or 'no candidate issuer'}. "
                   "Peers would reject mTLS; fix cert-chain.pem (intermediate first, then up to the root) and "
                   "root-cert.pem")
        return
    report.add("workload_cert_verifies", True,
               f"signed a throw-away workload certificate ({spiffe_uri}, EC P-256, 1 h) with ca-key.pem and verified "
               + " -> ".join(["leaf"] + [repr(_label(cert)) for cert in path[1:]]) + " by signatures")


def _sign_workload_cert(intermediate, ca_key, now, spiffe_uri):
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    algorithm = None if isinstance(ca_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)) else hashes.SHA256()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(intermediate.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                          data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_uri)]), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    return builder.sign(ca_key, algorithm)


def verify_bundle(ca_cert, ca_key, cert_chain, root_cert, file_names=None, now=None, spiffe_uri=SPIFFE_TEST_URI):
    """Verify the four PEM texts (str, bytes or None for a missing file) like istiod, and more.

    ``file_names``: the names in the CA directory (to detect ``tls.crt``); ``now``: a datetime (naive = UTC)
    for tests. Returns ``{"ok", "checks", "failed", "certificates": {"intermediate", "chain", "roots"},
    "path", "key", "days_left"}``; ``days_left`` is the smallest of the intermediate's and the path's (or the
    roots') days left. No check stops the others.
    """
    _require_cryptography()
    now = _utc(now)
    texts = {
        "ca-cert.pem": _text(ca_cert),
        "ca-key.pem": _text(ca_key),
        "cert-chain.pem": _text(cert_chain),
        "root-cert.pem": _text(root_cert),
    }
    report = _Report()
    _file_checks(report, texts, file_names)
    parsed = _parse_checks(report, texts)

    ca_certs = parsed.get("ca-cert.pem")
    key = parsed.get("key")
    if not ca_certs or key is None:
        report.skip("key_matches_cert", "ca-cert.pem or ca-key.pem did not parse")
    elif public_key_matches(ca_certs[0], key):
        key_type, bits = key_type_and_bits(key)
        report.add("key_matches_cert", True,
                   f"ca-key.pem ({key_type.upper()} {bits}) is the key of {_label(ca_certs[0])!r}")
    else:
        report.add("key_matches_cert", False,
                   f"ca-key.pem is not the private key of ca-cert.pem {_label(ca_certs[0])!r} (public keys differ): "
                   "istiod fails with 'the cert does not match the key'. The KV secret holds the key of another "
                   "intermediate (a new generate/exported call makes a new key): store the key that belongs to the "
                   "signed certificate, or re-sign a CSR from the stored key (intermediate/generate/existing)")

    path = _chain_checks(report, parsed, now)
    _workload_check(report, parsed, now, spiffe_uri)

    order = {name: index for index, name in enumerate(CHECKS)}
    checks = sorted(report.checks, key=lambda check: order[check["name"]])
    intermediate = ca_certs[0] if ca_certs else None
    roots = parsed.get("root-cert.pem") or []
    lifetimes = [cert for cert in [intermediate, *(path[1:] if path else roots)] if cert is not None]
    key_summary = None
    if key is not None:
        key_type, bits = key_type_and_bits(key)
        key_summary = {"type": key_type, "bits": bits, "format": parsed["key_format"]}
    return {
        "ok": all(check["passed"] for check in checks),
        "checks": checks,
        "failed": [check["name"] for check in checks if not check["passed"]],
        "certificates": {
            "intermediate": cert_info(intermediate, now) if intermediate is not None else None,
            "chain": [cert_info(cert, now) for cert in parsed.get("cert-chain.pem") or []],
            "roots": [cert_info(cert, now) for cert in roots],
        },
        "path": [cert.subject.rfc4514_string() for cert in path] if path else [],
        "key": key_summary,
        "days_left": min(_days_left(cert, now) for cert in lifetimes) if lifetimes else None,
    }


def read_bundle_dir(directory):
    """Read the four files of ``directory`` (None for a missing file) and list its entries.

    Returns ``({"ca-cert.pem": text or None, ...}, sorted file names)``. Raises BundleError if the directory
    cannot be listed.
    """
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise BundleError(f"cannot list the CA directory {directory!r}: {exc}") from None
    texts = {}
    for name in BUNDLE_FILES:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            texts[name] = None
            continue
        try:
            with open(path, "rb") as handle:
                texts[name] = handle.read().decode("utf-8", errors="replace")
        except OSError as exc:
            raise BundleError(f"cannot read {path!r}: {exc}") from None
    return texts, names


def verify_bundle_dir(directory, now=None, spiffe_uri=SPIFFE_TEST_URI):
    """:func:`verify_bundle` on the files of ``directory`` (as istiod's ``ROOT_CA_DIR``)."""
    texts, names = read_bundle_dir(directory)
    return verify_bundle(texts["ca-cert.pem"], texts["ca-key.pem"], texts["cert-chain.pem"], texts["root-cert.pem"],
                         file_names=names, now=now, spiffe_uri=spiffe_uri)
