# -*- coding: utf-8 -*-
"""Unit tests of pki/x509.py that the other pki tests leave open (mutation survivors, issue #16 point 6)."""

import datetime
import warnings

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed448
from test_pki import make_cert, make_key, name

from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import x509 as x509_mod

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC)


def _pkcs8(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _root_with_ski(key, ski=True):
    """A self-signed CA ``CN=root`` for ``key``, with its subject key id extension unless ``ski`` is False."""
    subject = name([("CN", "root")])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(minutes=1)).not_valid_after(NOW + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return builder.sign(key, hashes.SHA256())


def test_by_key_id_tries_certs_without_a_key_id_before_mismatching_ones():
    wanted_key, other_key, bare_key = make_key("ec", 256), make_key("ec", 256), make_key("ec", 256)
    matching = _root_with_ski(wanted_key)
    mismatching = _root_with_ski(other_key)
    without = _root_with_ski(bare_key, ski=False)
    wanted = x509_mod.subject_key_id(matching)
    ordered = x509_mod._by_key_id([mismatching, without, matching], wanted)
    assert ordered == [matching, without, mismatching]


def test_key_type_and_bits_names_ed448():
    key = ed448.Ed448PrivateKey.generate()
    assert x509_mod.key_type_and_bits(key) == ("ed448", 448)
    assert x509_mod.key_type_and_bits(key.public_key()) == ("ed448", 448)


def test_key_type_and_bits_error_names_the_unsupported_type():
    key = dsa.generate_private_key(key_size=1024)
    with pytest.raises(x509_mod.PemError, match="unsupported key type DSAPrivateKey"):
        x509_mod.key_type_and_bits(key)


def test_traditional_encrypted_key_is_refused_as_encrypted():
    pem = make_key("ec", 256).private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.BestAvailableEncryption(b"secret")).decode()
    assert "Proc-Type: 4,ENCRYPTED" in pem
    with pytest.raises(x509_mod.PemError, match="Proc-Type: 4,ENCRYPTED"):
        x509_mod.load_private_key_with_format(pem)


def test_pkcs8_key_of_an_unsupported_type_is_named():
    with pytest.raises(x509_mod.PemError, match="unsupported private key type Ed448PrivateKey"):
        x509_mod.load_private_key_with_format(_pkcs8(ed448.Ed448PrivateKey.generate()))


@pytest.mark.parametrize("label,key_type,expected", [
    ("RSA PRIVATE KEY", "ec", "does not hold an RSA key"),
    ("EC PRIVATE KEY", "rsa", "does not hold an EC key"),
])
def test_label_and_key_type_must_agree(monkeypatch, label, key_type, expected):
    """cryptography parses a block by its label, so this guard is reached only if a parser ever returns another
    key type for it: simulate that."""
    wrong = make_key(key_type, 256 if key_type == "ec" else 2048)
    monkeypatch.setattr(x509_mod.serialization, "load_pem_private_key", lambda data, password: wrong)
    pem = f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"
    with pytest.raises(x509_mod.PemError, match=expected):
        x509_mod.load_private_key_with_format(pem)


class _OldCert(object):
    """A certificate as cryptography < 40 shows it: no ``verify_directly_issued_by``."""

    def __init__(self, cert):
        self._cert = cert

    def __getattr__(self, attr):
        if attr == "verify_directly_issued_by":
            raise AttributeError(attr)
        return getattr(self._cert, attr)


def test_signature_error_without_verify_directly_issued_by_checks_the_signature():
    root_key = make_key("ec", 256)
    root = make_cert("CN=root", key=root_key)
    child = make_cert("CN=child", key=make_key("ec", 256), issuer=root, issuer_key=root_key)
    assert not hasattr(_OldCert(child), "verify_directly_issued_by")
    assert x509_mod.signature_error(_OldCert(child), root) is None
    forged = make_cert("CN=child", key=make_key("ec", 256), issuer=root, issuer_key=make_key("ec", 256))
    assert "does not verify" in x509_mod.signature_error(_OldCert(forged), root)


def test_validity_uses_the_timezone_aware_properties_without_deprecation_warnings():
    cert = make_cert("CN=int", key=make_key("ec", 256))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x509_mod.valid_from(cert) == cert.not_valid_before_utc
        assert x509_mod.valid_until(cert) == cert.not_valid_after_utc
