# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Certificates as this collection shows and compares them: parsed with errors that name the option, summaries
for diffs and return values, lifetime notes, CSR/key matching.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.request import (
    cert_subject_pairs,
    human,
    key_text,
    subject_text,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    cert_info,
    iso_time,
    key_type_and_bits,
    load_cert,
    load_certs,
    pem_blocks,
    public_key_matches,
    valid_from,
    valid_until,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:  # the modules report it with missing_required_lib (pki.x509.HAS_CRYPTOGRAPHY)
    x509 = hashes = serialization = None

# Time Vault needs between our clock reading and its own when signing (request latency).
SIGNING_SLACK = 60
# A certificate's lifetime differs from the ttl asked for by more than this: report it.
LIFETIME_TOLERANCE = 300
_UTC = datetime.timezone.utc


def now_utc():
    return datetime.datetime.now(_UTC)


# The names the PKI backends use for the x509 toolbox's time helpers.
iso = iso_time
not_before = valid_from
not_after = valid_until


# ---------------------------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------------------------

def parse_cert(pem, what):
    try:
        return load_cert(pem)
    except PemError as e:
        raise MeshPkiError("%s is not a PEM certificate: %s. Nothing was changed." % (what, e))


def parse_certs(pem, what):
    try:
        certs = load_certs(pem)
    except PemError as e:
        raise MeshPkiError("%s does not parse: %s. Nothing was changed." % (what, e))
    return certs


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


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
    for label, pem in pem_blocks(text):
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
        csr = x509.load_pem_x509_csr(csr_pem.encode() if not isinstance(csr_pem, bytes) else csr_pem)
    except (ValueError, TypeError, UnicodeEncodeError):
        return False
    return public_key_matches(csr, private_key)
