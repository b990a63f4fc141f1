"""Unit tests of pki/request.py beyond test_pki.py: the text of durations at their boundaries, the order of
subject attributes, subject labels of attributes this collection does not know, and the subject checks of
from_params (issue #16 point 6: each test kills a surviving mutant)."""

import datetime
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from test_pki import NOW, make_key

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import request as pki_request

DAY = 86400
YEAR = 365 * DAY


def named(message, option):
    """True when ``message`` names ``option`` as a word of its own (not inside a longer name)."""
    return re.search(r"(?<![\w])%s(?![\w])" % re.escape(option), message) is not None


@pytest.mark.parametrize("secs, text", [
    (DAY, "24h (1.0 days)"),                    # one day is 'days' already
    (DAY - 60, "23h59m"),                       # less is not
    (YEAR, "8760h (1.0 years)"),                # 365 days are a year already
    (20 * YEAR, "175200h (20.0 years)"),        # years of 365 days
    (3661, "1h1m"),                             # minutes after the hours
    (5400, "1h30m"),
    (3600 + 59 * 60, "1h59m"),
    (3600 + 60 * 60 - 20, "2h"),                # rounded to the minute
])
def test_human_at_the_boundaries(secs, text):
    assert pki_request.human(secs) == text


def test_subject_text_orders_unknown_labels_by_label_then_value():
    pairs = [("serialNumber", "a"), ("emailAddress", "b"), ("CN", "z")]
    assert pki_request.subject_text(pairs) == "CN=z, emailAddress=b, serialNumber=a"


def self_signed(attributes):
    key = make_key("ec", 256)
    subject = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))


def test_cert_subject_pairs_label_an_unknown_attribute_with_its_oid():
    """cryptography names every OID it does not know 'Unknown OID': two different attributes would read alike
    in the subject shown and compared; the dotted OID tells them apart."""
    one, two = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), x509.ObjectIdentifier("1.3.6.1.4.1.99999.2")
    cert = self_signed([(NameOID.COMMON_NAME, "int"), (one, "a"), (two, "b")])
    assert pki_request.cert_subject_pairs(cert) == [("1.3.6.1.4.1.99999.1", "a"), ("1.3.6.1.4.1.99999.2", "b"),
                                                    ("CN", "int")]
    other = self_signed([(NameOID.COMMON_NAME, "int"), (two, "a"), (one, "b")])
    assert pki_request.cert_subject_pairs(other) != pki_request.cert_subject_pairs(cert)


@pytest.mark.parametrize("common_name", [None, ""])
def test_subject_without_a_common_name_is_refused(common_name):
    with pytest.raises(MeshPkiError) as caught:
        pki_request.Subject.from_params({"common_name": common_name, "organization": ["Tetrate"]})
    assert named(str(caught.value), "common_name")


def test_subject_common_name_is_checked_and_named():
    with pytest.raises(MeshPkiError) as caught:
        pki_request.Subject.from_params({"common_name": "tetrate.io\u202eCA"})
    assert named(str(caught.value), "common_name") and caught.value.details.get("option") == "common_name"


def test_subject_list_entry_is_named_with_its_index():
    with pytest.raises(MeshPkiError) as caught:
        pki_request.Subject.from_params({"common_name": "x", "ou": ["Mesh", "C\x00A"]})
    assert named(str(caught.value), "ou[1]") and caught.value.details.get("option") == "ou[1]"
