# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The x509 toolbox: parse PEM certificates and keys, match a key to a certificate, name and fingerprint
certificates, and build a chain the way Go's ``crypto/x509`` does (what istiod runs). Pure code: no module object,
no network; bad input raises ``PemError`` (a ``ValueError``) whose message says what is wrong.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import math
import re
import traceback

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

KEY_FORMATS = {"RSA PRIVATE KEY": "pkcs1", "PRIVATE KEY": "pkcs8", "EC PRIVATE KEY": "sec1"}
PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
MAX_CHAIN_DEPTH = 10
_UTC = datetime.timezone.utc


class PemError(ValueError):
    """Bad input (unparsable PEM, wrong key format, ...); the message says what is wrong."""


# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------

def require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise PemError(
            f"the Python library 'cryptography' is required to verify the Istio CA bundle: {CRYPTOGRAPHY_IMPORT_ERROR}"
        )


def as_text(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def utc_moment(now):
    if now is None:
        return datetime.datetime.now(_UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=_UTC)
    return now.astimezone(_UTC)


def valid_from(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=_UTC)


def valid_until(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=_UTC)


def iso_time(moment):
    return moment.astimezone(_UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def days_left(cert, now):
    return math.floor((valid_until(cert) - now).total_seconds() / 86400.0)


def der_bytes(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def spki_bytes(key):
    """SubjectPublicKeyInfo DER of a certificate, a private key or a public key."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _name_bytes(name):
    try:
        return name.public_bytes()
    except TypeError:  # cryptography < 35 wants a backend argument
        return name.rfc4514_string()


def same_name(a, b):
    return _name_bytes(a) == _name_bytes(b)


def cert_label(cert):
    return cert.subject.rfc4514_string() or "(empty subject)"


def extension_value(cert, ext_class):
    try:
        return cert.extensions.get_extension_for_class(ext_class).value
    except x509.ExtensionNotFound:
        return None


def is_ca_cert(cert):
    constraints = extension_value(cert, x509.BasicConstraints)
    return bool(constraints is not None and constraints.ca)


def max_path_length(cert):
    constraints = extension_value(cert, x509.BasicConstraints)
    return constraints.path_length if constraints is not None and constraints.ca else None


def format_serial(number):
    """Format a serial number the way Vault does: lower-case hex bytes joined by ':' (``18:98:2c:...``)."""
    digits = format(abs(number), "x")
    if len(digits) % 2:
        digits = "0" + digits
    return ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


def pem_blocks(text):
    """Return ``[(label, pem_text), ...]`` for every PEM block of ``text`` (str or bytes)."""
    text = as_text(text) or ""
    return [(match.group(1), match.group(0) + "\n") for match in PEM_RE.finditer(text)]


# ---------------------------------------------------------------------------------------------------------
# public helpers reused by the PKI modules
# ---------------------------------------------------------------------------------------------------------

def split_pem_certs(text):
    """Return the ``CERTIFICATE`` PEM blocks of ``text`` as a list of strings (other blocks are ignored)."""
    return [pem for label, pem in pem_blocks(text) if label == "CERTIFICATE"]


def load_cert(pem):
    """Parse the first ``CERTIFICATE`` block of ``pem`` (str or bytes); raise PemError if there is none/bad."""
    require_cryptography()
    blocks = split_pem_certs(pem)
    if not blocks:
        raise PemError("no PEM 'CERTIFICATE' block found")
    try:
        return x509.load_pem_x509_certificate(blocks[0].encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise PemError(f"the CERTIFICATE block does not parse: {exc}") from None


def load_certs(text):
    """Parse every ``CERTIFICATE`` block of ``text``; raise PemError naming the first bad one."""
    require_cryptography()
    certs = []
    for index, block in enumerate(split_pem_certs(text), start=1):
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode("ascii")))
        except (ValueError, UnicodeEncodeError) as exc:
            raise PemError(f"CERTIFICATE block #{index} does not parse: {exc}") from None
    return certs


def load_private_key_with_format(pem):
    """Return ``(key, format)`` like istiod reads it (first PEM block only); raise PemError otherwise."""
    require_cryptography()
    text = as_text(pem) or ""
    blocks = pem_blocks(text)
    encrypted = any(label == "ENCRYPTED PRIVATE KEY" for label, _pem in blocks)
    if encrypted or re.search(r"Proc-Type:\s*4,\s*ENCRYPTED", text):
        raise PemError(
            "the private key is encrypted (ENCRYPTED PRIVATE KEY or Proc-Type: 4,ENCRYPTED): istiod cannot decrypt "
            "it; store it unencrypted (PKCS#1 'RSA PRIVATE KEY', PKCS#8 'PRIVATE KEY' or 'EC PRIVATE KEY'), e.g. "
            "the private_key returned by intermediate/generate/exported"
        )
    if not blocks:
        raise PemError(
            "no PEM block found: expected a 'RSA PRIVATE KEY' (PKCS#1), 'PRIVATE KEY' (PKCS#8) or "
            "'EC PRIVATE KEY' block"
        )
    label, block = blocks[0]
    if label not in KEY_FORMATS:
        raise PemError(
            f"the first PEM block is {label!r}: istiod reads only the first block and expects 'RSA PRIVATE KEY' "
            "(PKCS#1), 'PRIVATE KEY' (PKCS#8) or 'EC PRIVATE KEY'; put the key block first (drop e.g. 'EC PARAMETERS')"
        )
    try:
        key = serialization.load_pem_private_key(block.encode("ascii"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, UnicodeEncodeError) as exc:
        raise PemError(f"the {label!r} block does not parse as an unencrypted private key: {exc}") from None
    fmt = KEY_FORMATS[label]
    if fmt == "pkcs1" and not isinstance(key, rsa.RSAPrivateKey):
        raise PemError("the 'RSA PRIVATE KEY' block does not hold an RSA key")
    if fmt == "sec1" and not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PemError("the 'EC PRIVATE KEY' block does not hold an EC key")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise PemError(f"unsupported private key type {type(key).__name__}: use RSA or ECDSA")
    return key, fmt


def load_private_key(pem):
    """Parse a CA private key as istiod does; return the key or raise PemError saying which format is wrong."""
    return load_private_key_with_format(pem)[0]


def public_key_matches(cert, key):
    """True when ``key`` (private or public key) is the key pair of ``cert``'s public key."""
    require_cryptography()
    return spki_bytes(cert.public_key()) == spki_bytes(key)


def key_type_and_bits(cert_or_key):
    """``("rsa", 2048)``, ``("ec", 256)``, ``("ed25519", 256)`` for a certificate, a private or a public key."""
    require_cryptography()
    key = cert_or_key.public_key() if isinstance(cert_or_key, x509.Certificate) else cert_or_key
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "rsa", key.key_size
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ec", key.curve.key_size
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519", 256
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "ed448", 448
    raise PemError(f"unsupported key type {type(key).__name__}")


def sha256_fingerprint(cert):
    """SHA-256 of the DER certificate, upper-case hex bytes joined by ':' (as cert_info gives it)."""
    require_cryptography()
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def cert_info(cert, now=None):
    """Summary of a certificate: subject, issuer, serial (Vault format), validity, days left, SHA-256, CA, key."""
    require_cryptography()
    now = utc_moment(now)
    try:
        key_type, key_bits = key_type_and_bits(cert)
    except PemError:
        key_type, key_bits = "unknown", 0
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": format_serial(cert.serial_number),
        "not_before": iso_time(valid_from(cert)),
        "not_after": iso_time(valid_until(cert)),
        "days_left": days_left(cert, now),
        "sha256_fingerprint": sha256_fingerprint(cert),
        "is_ca": is_ca_cert(cert),
        "self_signed": same_name(cert.subject, cert.issuer),
        "key_type": key_type,
        "key_bits": key_bits,
    }


def signature_error(cert, issuer):
    """Return None when ``issuer`` signed ``cert`` (names and signature), else a short reason."""
    require_cryptography()
    if not same_name(cert.issuer, issuer.subject):
        return f"issuer name {cert.issuer.rfc4514_string()!r} differs from the subject {cert_label(issuer)!r}"
    if hasattr(cert, "verify_directly_issued_by"):  # cryptography >= 40
        try:
            cert.verify_directly_issued_by(issuer)
        except InvalidSignature:
            return f"signature does not verify with the public key of {cert_label(issuer)!r}"
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            return f"signature cannot be verified with {cert_label(issuer)!r}: {exc}"
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
        return f"signature does not verify with the public key of {cert_label(issuer)!r}"
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return f"signature cannot be verified with {cert_label(issuer)!r}: {exc}"
    return None


def _insecure_signature(cert):
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    if algorithm is not None and algorithm.name in ("sha1", "md5"):
        return f"{cert_label(cert)!r} is signed with {algorithm.name.upper()}, which Go's crypto/x509 rejects"
    return None


def _authority_key_id(cert):
    value = extension_value(cert, x509.AuthorityKeyIdentifier)
    return value.key_identifier if value is not None else None


def subject_key_id(cert):
    value = extension_value(cert, x509.SubjectKeyIdentifier)
    return value.digest if value is not None else None


def _by_key_id(certs, wanted):
    """``certs`` in the order Go's ``CertPool.findPotentialParents`` tries them for a child whose authority key id
    is ``wanted``: a matching subject key id first, then certificates without one, then mismatching ones (still
    tried: the signature decides). Two roots with one name - the old and the new root of a rotation - are thus
    told apart by their keys, not by the order of root-cert.pem."""
    if not wanted:
        return list(certs)
    ranked = []
    for position, cert in enumerate(certs):
        key_id = subject_key_id(cert)
        ranked.append((0 if key_id == wanted else 1 if key_id is None else 2, position, cert))
    return [cert for _rank, _position, cert in sorted(ranked, key=lambda item: item[:2])]


def _index(certs, cert):
    der = der_bytes(cert)
    return next(index for index, other in enumerate(certs) if der_bytes(other) == der)


def build_chain(leaf, intermediates, roots):
    """Build a path from ``leaf`` to one of ``roots`` the way Go's ``crypto/x509`` does.

    Candidates are the certificates whose subject equals the current certificate's issuer, roots first, then
    ``intermediates``, each group ordered by key id as Go does (:func:`_by_key_id`); each must verify the
    signature, intermediates must be CAs, path-length constraints and SHA-1/MD5 signatures are enforced, a
    certificate is never used twice. Validity periods are left to the caller. Returns ``(path, problems)``:
    ``path`` is ``[leaf, ..., root]`` or None, ``problems`` lists why candidates were rejected.
    """
    require_cryptography()
    problems = []

    def extend(path, depth):
        current = path[-1]
        if depth > MAX_CHAIN_DEPTH:
            problems.append(f"chain longer than {MAX_CHAIN_DEPTH} certificates")
            return None
        wanted = _authority_key_id(current)
        candidates = ([(root, True) for root in _by_key_id(roots, wanted)]
                      + [(cert, False) for cert in _by_key_id(intermediates, wanted)])
        several = len(roots) > 1
        found_name = False
        for candidate, is_root in candidates:
            if not same_name(current.issuer, candidate.subject):
                continue
            if any(der_bytes(candidate) == der_bytes(seen) for seen in path):
                continue
            found_name = True
            where = "cert-chain.pem"
            if is_root:  # the old and the new root of a rotation share their name: say which one
                where = "root-cert.pem #%d" % (_index(roots, candidate) + 1) if several else "root-cert.pem"
            reason = signature_error(current, candidate) or _insecure_signature(current)
            if reason is None and not is_root and not is_ca_cert(candidate):
                reason = f"{cert_label(candidate)!r} is not a CA (basic constraints CA:FALSE or missing)"
            if reason is None:
                max_path = max_path_length(candidate)
                if max_path is not None and len(path) - 1 > max_path:
                    reason = (f"{cert_label(candidate)!r} allows pathlen {max_path}, the chain below it has "
                              f"{len(path) - 1}")
            if reason is not None:
                problems.append(f"{cert_label(current)!r} -> {cert_label(candidate)!r} ({where}): {reason}")
                continue
            if is_root:
                return [*path, candidate]
            result = extend([*path, candidate], depth + 1)
            if result is not None:
                return result
        if not found_name and same_name(current.subject, current.issuer):
            problems.append(
                f"{cert_label(current)!r} is self-signed (a root) but root-cert.pem does not contain it"
            )
        elif not found_name:
            problems.append(
                "no certificate in root-cert.pem or cert-chain.pem has the subject "
                f"{current.issuer.rfc4514_string()!r} (issuer of {cert_label(current)!r})"
            )
        return None

    return extend([leaf], 1), problems
