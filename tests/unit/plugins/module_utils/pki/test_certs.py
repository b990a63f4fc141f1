"""Unit tests of pki/certs.py beyond test_pki.py: parse errors that name what did not parse, the path length of a
certificate without basic constraints, the lifetime tolerance at its edge, CSRs given as bytes (issue #16
point 6: each test kills a surviving mutant)."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from test_pki import cert_pem, make_cert, make_key, name

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import certs as pki_certs

BROKEN = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("parse", [pki_certs.parse_cert, pki_certs.parse_certs])
def test_parse_errors_name_what_did_not_parse(parse):
    with pytest.raises(MeshPkiError) as caught:
        parse(BROKEN, "root_certificate")
    assert "root_certificate" in str(caught.value)


def test_parse_certs_of_nothing_is_no_certificate():
    assert pki_certs.parse_certs(None, "ca_chain") == [] and pki_certs.parse_certs("", "ca_chain") == []
    cert = make_cert()
    assert pki_certs.parse_certs(cert_pem(cert), "ca_chain") == [cert]


def test_cert_pem_round_trips():
    cert = make_cert()
    assert pki_certs.cert_pem(cert) == cert_pem(cert) and pki_certs.parse_cert(pki_certs.cert_pem(cert), "x") == cert


def test_path_length_without_basic_constraints_is_unlimited():
    assert pki_certs.path_length(make_cert(ca=None)) == -1


def test_lifetime_note_tolerance_is_inclusive():
    tolerance = pki_certs.LIFETIME_TOLERANCE
    cert = make_cert(lifetime=datetime.timedelta(hours=8760, seconds=tolerance))
    assert pki_certs.lifetime_note(cert, 8760 * 3600) is None
    longer = make_cert(lifetime=datetime.timedelta(hours=8760, seconds=tolerance + 1))
    assert pki_certs.lifetime_note(longer, 8760 * 3600) is not None


def test_csr_matches_takes_bytes_too():
    key = make_key("ec", 256)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name([("CN", "x")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    assert pki_certs.csr_matches(csr, key) and pki_certs.csr_matches(csr.decode(), key)
    assert not pki_certs.csr_matches(csr, make_key("ec", 256))
    assert not pki_certs.csr_matches("-----BEGIN CERTIFICATE REQUEST-----\n\u00e9\n", key)


def test_split_pem_bundle_of_nothing():
    assert pki_certs.split_pem_bundle(None) == ([], []) and pki_certs.split_pem_bundle("") == ([], [])
