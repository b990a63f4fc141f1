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
object, no network; bad input to the helpers raises ``PemError`` (a ``ValueError``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import re

from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    as_text,
    build_chain,
    cert_info,
    cert_label,
    days_left,
    der_bytes,
    extension_value,
    is_ca_cert,
    iso_time,
    key_type_and_bits,
    load_certs,
    load_private_key_with_format,
    pem_blocks,
    public_key_matches,
    require_cryptography,
    same_name,
    sha256_fingerprint,
    signature_error,
    spki_bytes,
    utc_moment,
    valid_from,
    valid_until,
)

try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # require_cryptography() (pki.x509) says so before any of these is used
    x509 = UnsupportedAlgorithm = hashes = ec = ed448 = ed25519 = ExtendedKeyUsageOID = None

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

# With expect_roots (a rotation's gate: old+new roots in the phases trust and sign, the new one after retire) the
# report gets one more check, right after roots_self_signed_ca.
ROOTS_EXPECTED = "roots_expected"
REPORT_ORDER = (CHECKS[:CHECKS.index("roots_self_signed_ca") + 1] + (ROOTS_EXPECTED,)
                + CHECKS[CHECKS.index("roots_self_signed_ca") + 1:])
_FINGERPRINT_RE = re.compile(r"^(?:sha-?256[:=])?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})$", re.IGNORECASE)

KEY_FORMATS = {"RSA PRIVATE KEY": "pkcs1", "PRIVATE KEY": "pkcs8", "EC PRIVATE KEY": "sec1"}
PEM_RE = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
MAX_CHAIN_DEPTH = 10
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


# ---------------------------------------------------------------------------------------------------------
# several roots (root rotation)
# ---------------------------------------------------------------------------------------------------------

def _root_position(roots, cert):
    der = der_bytes(cert)
    return next((index for index, root in enumerate(roots or [], start=1) if der_bytes(root) == der), None)


def root_label(roots, cert):
    """``'CN=x'`` quoted; with several roots in root-cert.pem also which one (``#2 of root-cert.pem``) and the start
    of its SHA-256 fingerprint - the old and the new root of a rotation usually share their name."""
    label = repr(cert_label(cert))
    position = _root_position(roots, cert) if roots and len({der_bytes(root) for root in roots}) > 1 else None
    if position is None:
        return label
    return f"{label} (#{position} of root-cert.pem, SHA-256 {sha256_fingerprint(cert)[:23]}...)"


def parse_expected_roots(entries):
    """``[(fingerprint, label or None)]`` for the ``expect_roots`` option: each entry a PEM text (one or more
    certificates) or a SHA-256 fingerprint (64 hex digits, colons and a ``sha256:`` prefix allowed); None when not
    given. Bad input raises PemError naming the entry."""
    if entries is None:
        return None
    if not entries:
        raise PemError("expect_roots is an empty list: give the root certificates (PEM) or their SHA-256 "
                       "fingerprints that root-cert.pem must hold, or leave expect_roots unset")
    result = []
    for number, entry in enumerate(entries, start=1):
        text = entry if isinstance(entry, str) else ""
        if "-----BEGIN" in text:
            labels = sorted({label for label, _pem in pem_blocks(text) if label != "CERTIFICATE"})
            if labels:
                raise PemError(f"expect_roots entry #{number} holds PEM blocks other than certificates "
                               f"({', '.join(labels)}); give only the root certificates")
            try:
                certs = load_certs(text)
            except PemError as exc:
                raise PemError(f"expect_roots entry #{number}: {exc}") from None
            if not certs:
                raise PemError(f"expect_roots entry #{number} holds no complete PEM CERTIFICATE block")
            result.extend((sha256_fingerprint(cert), repr(cert_label(cert))) for cert in certs)
            continue
        match = _FINGERPRINT_RE.match(re.sub(r"\s+", "", text))
        if match is None:
            raise PemError(f"expect_roots entry #{number} ({text[:40]!r}) is neither a PEM certificate nor a SHA-256 "
                           "fingerprint (64 hex digits, colons allowed, as certificates.roots[].sha256_fingerprint "
                           "shows it)")
        digits = match.group(1).replace(":", "").upper()
        result.append((":".join(digits[i:i + 2] for i in range(0, len(digits), 2)), None))
    return result


def _expected_roots_check(report, roots, expected):
    if roots is None:
        report.skip(ROOTS_EXPECTED, "root-cert.pem did not parse")
        return
    actual = {}
    for root in roots:
        actual.setdefault(sha256_fingerprint(root), root)
    wanted = {}
    for fingerprint, label in expected:
        if wanted.get(fingerprint) is None:
            wanted[fingerprint] = label
    missing = [f"{label or 'a root'} (SHA-256 {fingerprint})" for fingerprint, label in wanted.items()
               if fingerprint not in actual]
    extra = [f"{root_label(roots, root)} (SHA-256 {fingerprint})" for fingerprint, root in actual.items()
             if fingerprint not in wanted]
    if missing or extra:
        parts = ([f"missing {len(missing)}: {'; '.join(missing)}"] if missing else []) + \
            ([f"not expected {len(extra)}: {'; '.join(extra)}"] if extra else [])
        report.add(ROOTS_EXPECTED, False,
                   f"root-cert.pem does not hold exactly the {len(wanted)} expected root(s) - {'; '.join(parts)}. "
                   "In a root rotation root-cert.pem holds the old and the new root until the new one alone is "
                   "trusted: check which roots the agent renders into it (and that it re-rendered)")
        return
    report.add(ROOTS_EXPECTED, True,
               f"root-cert.pem holds exactly the {len(wanted)} expected root(s): "
               + ", ".join(root_label(roots, actual[fingerprint]) for fingerprint in wanted))


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
    except PemError as exc:
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
                key, fmt = load_private_key_with_format(text)
            except PemError as exc:
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
        detail = f"{name}: {len(certs)} certificate(s), first {cert_label(certs[0])!r}"
        if name == "root-cert.pem" and len(certs) > 1:
            detail = f"{name}: {len(certs)} certificates: " + ", ".join(
                f"#{index} {cert_label(cert)!r} (SHA-256 {sha256_fingerprint(cert)[:23]}...)"
                for index, cert in enumerate(certs, start=1))
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
        if is_ca_cert(intermediate):
            report.add("ca_cert_is_ca", True, f"{cert_label(intermediate)!r} has basic constraints CA:TRUE")
        else:
            report.add("ca_cert_is_ca", False,
                       f"{cert_label(intermediate)!r} is not a CA (basic constraints CA:TRUE missing): istiod "
                       "cannot sign "
                       "workload certificates with it; ca-cert.pem must be the intermediate CA from "
                       "<intermediate mount>/cert/ca, signed with root/sign-intermediate (not issue/ or sign/)")
        usage = extension_value(intermediate, x509.KeyUsage)
        if usage is None:
            report.add("ca_cert_key_cert_sign", True,
                       f"{cert_label(intermediate)!r} has no keyUsage extension (unrestricted, keyCertSign allowed)")
        elif usage.key_cert_sign:
            report.add("ca_cert_key_cert_sign", True, f"{cert_label(intermediate)!r} has keyUsage keyCertSign")
        else:
            report.add("ca_cert_key_cert_sign", False,
                       f"{cert_label(intermediate)!r} lacks keyUsage keyCertSign: workload certificates it signs are "
                       "rejected by TLS peers; re-sign the intermediate with root/sign-intermediate (Vault sets "
                       "CertSign and CRLSign)")

    if intermediate is None or chain is None:
        report.skip("cert_chain_starts_with_ca_cert", "ca-cert.pem or cert-chain.pem did not parse")
    elif der_bytes(chain[0]) == der_bytes(intermediate):
        report.add("cert_chain_starts_with_ca_cert", True,
                   "cert-chain.pem starts with the ca-cert.pem certificate: "
                   + " -> ".join(repr(cert_label(cert)) for cert in chain))
    else:
        positions = [index for index, cert in enumerate(chain) if der_bytes(cert) == der_bytes(intermediate)]
        where = (f"it is at position {positions[0] + 1} (wrong order)" if positions
                 else "it does not contain the intermediate at all")
        report.add("cert_chain_starts_with_ca_cert", False,
                   f"cert-chain.pem starts with {cert_label(chain[0])!r}, not with the ca-cert.pem certificate "
                   f"{cert_label(intermediate)!r}; {where}. Istio appends cert-chain.pem to every workload "
                   "certificate, so "
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
                       + " -> ".join([repr(cert_label(cert)) for cert in path[:-1]] + [root_label(roots, path[-1])])
                       + " (names and signatures verified)")
        else:
            self_contained = any(der_bytes(root) == der_bytes(intermediate) for root in roots)
            report.add("chains_to_root", False,
                       f"{cert_label(intermediate)!r} does not chain to any certificate of root-cert.pem using "
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
            if not same_name(root.subject, root.issuer) or signature_error(root, root):
                reasons.append("not self-signed")
            if not is_ca_cert(root):
                reasons.append("not a CA")
            if reasons:
                bad.append(f"{root_label(roots, root)} ({', '.join(reasons)})")
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
        intermediate_key = spki_bytes(intermediate.public_key())
        holders = [root for root in roots
                   if der_bytes(root) == der_bytes(intermediate) or spki_bytes(root.public_key()) == intermediate_key]
        if holders:
            note = (" (ca-cert.pem is self-signed: this collection keeps the root out of istiod and gives it an "
                    "intermediate)" if same_name(intermediate.subject, intermediate.issuer) else "")
            report.add("root_cert_excludes_intermediate", False,
                       f"root-cert.pem contains the intermediate {cert_label(intermediate)!r} (or a certificate "
                       "with its "
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
            usage = extension_value(cert, x509.ExtendedKeyUsage)
            if usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usage and \
                    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usage:
                bad.append(repr(cert_label(cert)))
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
            if cert is not None and all(der_bytes(cert) != der_bytes(seen) for seen in subjects):
                subjects.append(cert)
        problems = []
        summary = []
        for cert in subjects:
            label = root_label(roots, cert)
            if now < valid_from(cert):
                problems.append(f"{label} is not valid before {iso_time(valid_from(cert))} (clock "
                                "skew or a "
                                "certificate dated in the future)")
            elif now > valid_until(cert):
                problems.append(f"{label} expired on {iso_time(valid_until(cert))} "
                                f"({-days_left(cert, now)} day(s) ago)")
            else:
                summary.append(f"{label} until {iso_time(valid_until(cert))} "
                               f"({days_left(cert, now)} days left)")
        if problems:
            report.add("certificates_valid_now", False,
                       f"at {iso_time(now)}: {'; '.join(problems)}. istiod's Go verification fails on any certificate "
                       "outside its validity period: renew the intermediate (generate/exported, sign-intermediate, "
                       "set-signed, store the key) or rotate the root")
        else:
            report.add("certificates_valid_now", True, f"at {iso_time(now)}: " + "; ".join(summary))

    if intermediate is None or not path:
        report.skip("intermediate_within_root_lifetime",
                    "no chain from ca-cert.pem to root-cert.pem (see chains_to_root)")
        return
    worst = None
    for issuer in path[1:]:
        excess = valid_until(intermediate) - valid_until(issuer)
        if excess > datetime.timedelta(0) and (worst is None or excess > worst[0]):
            worst = (excess, issuer)
    root = path[-1]
    if worst is None:
        margin = valid_until(root) - valid_until(intermediate)
        report.add("intermediate_within_root_lifetime", True,
                   f"the intermediate expires {iso_time(valid_until(intermediate))}, {margin} before the root "
                   f"{cert_label(root)!r} ({iso_time(valid_until(root))})")
    else:
        excess, issuer = worst
        report.add("intermediate_within_root_lifetime", False,
                   f"the intermediate {cert_label(intermediate)!r} (not after "
                   f"{iso_time(valid_until(intermediate))}) outlives "
                   f"{cert_label(issuer)!r} (not after {iso_time(valid_until(issuer))}) by {excess} "
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
               + " -> ".join(["leaf"] + [repr(cert_label(cert)) for cert in path[1:-1]]
                             + [root_label(roots, path[-1])]) + " by signatures")


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


def verify_bundle(ca_cert, ca_key, cert_chain, root_cert, file_names=None, now=None, spiffe_uri=SPIFFE_TEST_URI,
                  expect_roots=None):
    """Verify the four PEM texts (str, bytes or None for a missing file) like istiod, and more.

    ``file_names``: the names in the CA directory (to detect ``tls.crt``); ``now``: a datetime (naive = UTC)
    for tests; ``expect_roots``: the option's list (PEM texts or fingerprints) or what
    :func:`parse_expected_roots` made of it, adds the check ``roots_expected``
    (root-cert.pem holds exactly those roots). Returns ``{"ok", "checks", "failed", "certificates":
    {"intermediate", "chain", "roots"}, "path", "chain_root", "key", "days_left"}``; ``chain_root`` is the root of
    root-cert.pem the intermediate chains to (``position`` in the file from 1, ``subject``,
    ``sha256_fingerprint``) or None; ``days_left`` is the smallest of the intermediate's and the path's (or the
    roots') days left. No check stops the others.

    Several roots in root-cert.pem (a root rotation): every one must be a self-signed CA valid now, the intermediate
    must chain to one of them and the test workload certificate must verify against the whole set; two roots with
    one name are told apart by key id and signature, never by name.
    """
    require_cryptography()
    if isinstance(expect_roots, (list, tuple)) and expect_roots and isinstance(expect_roots[0], str):
        expect_roots = parse_expected_roots(expect_roots)
    now = utc_moment(now)
    texts = {
        "ca-cert.pem": as_text(ca_cert),
        "ca-key.pem": as_text(ca_key),
        "cert-chain.pem": as_text(cert_chain),
        "root-cert.pem": as_text(root_cert),
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
                   f"ca-key.pem ({key_type.upper()} {bits}) is the key of {cert_label(ca_certs[0])!r}")
    else:
        report.add("key_matches_cert", False,
                   f"ca-key.pem is not the private key of ca-cert.pem {cert_label(ca_certs[0])!r} (public keys "
                   "differ): "
                   "istiod fails with 'the cert does not match the key'. The KV secret holds the key of another "
                   "intermediate (a new generate/exported call makes a new key): store the key that belongs to the "
                   "signed certificate, or re-sign a CSR from the stored key (intermediate/generate/existing)")

    path = _chain_checks(report, parsed, now)
    if expect_roots is not None:
        _expected_roots_check(report, parsed.get("root-cert.pem"), expect_roots)
    _workload_check(report, parsed, now, spiffe_uri)

    order = {name: index for index, name in enumerate(REPORT_ORDER)}
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
        "chain_root": {"position": _root_position(roots, path[-1]), "subject": path[-1].subject.rfc4514_string(),
                       "sha256_fingerprint": sha256_fingerprint(path[-1])} if path else None,
        "key": key_summary,
        "days_left": min(days_left(cert, now) for cert in lifetimes) if lifetimes else None,
    }


def read_bundle_dir(directory):
    """Read the four files of ``directory`` (None for a missing file) and list its entries.

    Returns ``({"ca-cert.pem": text or None, ...}, sorted file names)``. Raises PemError if the directory
    cannot be listed.
    """
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise PemError(f"cannot list the CA directory {directory!r}: {exc}") from None
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
            raise PemError(f"cannot read {path!r}: {exc}") from None
    return texts, names


def verify_bundle_dir(directory, now=None, spiffe_uri=SPIFFE_TEST_URI, expect_roots=None):
    """:func:`verify_bundle` on the files of ``directory`` (as istiod's ``ROOT_CA_DIR``)."""
    texts, names = read_bundle_dir(directory)
    return verify_bundle(texts["ca-cert.pem"], texts["ca-key.pem"], texts["cert-chain.pem"], texts["root-cert.pem"],
                         file_names=names, now=now, spiffe_uri=spiffe_uri, expect_roots=expect_roots)
