# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/istio/bundle.py and pki/x509.py.

Real CAs are generated in memory with ``cryptography`` (root -> intermediate, RSA with the PKCS#1 key Vault
returns, and EC), all dated relative to a fixed ``NOW`` passed to the verifier, so the tests never depend on
the clock. Each broken bundle asserts the exact set of checks that fail, not just ``ok == False``.
"""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import (
    CHECKS,
    read_bundle_dir,
    verify_bundle,
    verify_bundle_dir,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import x509 as x509_mod
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    build_chain,
    cert_info,
    format_serial,
    key_type_and_bits,
    load_cert,
    load_certs,
    load_private_key,
    public_key_matches,
    signature_error,
    split_pem_certs,
)

UTC = datetime.timezone.utc
NOW = datetime.datetime(2031, 6, 1, 12, 0, 0, tzinfo=UTC)
DAY = datetime.timedelta(days=1)


# ---------------------------------------------------------------------------------------------------------
# certificate factory
# ---------------------------------------------------------------------------------------------------------

def new_key(kind):
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(cn, key, issuer=None, issuer_key=None, not_before=NOW - 30 * DAY, not_after=NOW + 365 * DAY,
              ca=True, path_length=None, key_cert_sign=True, eku=None, basic_constraints=True, algorithm=None):
    """A certificate for ``key``; self-signed when ``issuer`` is None; signed with SHA-256 unless ``algorithm``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name = issuer.subject if issuer is not None else name
    signer = issuer_key if issuer_key is not None else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not ca,
                          data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign,
                          crl_sign=ca, encipher_only=False, decipher_only=False),
            critical=True,
        )
    )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signer, algorithm or hashes.SHA256())


def pem(*certs):
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)


def key_pem(key, fmt="pkcs1", password=None):
    formats = {
        "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,  # RSA PRIVATE KEY / EC PRIVATE KEY
        "sec1": serialization.PrivateFormat.TraditionalOpenSSL,
        "pkcs8": serialization.PrivateFormat.PKCS8,
    }
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, formats[fmt], encryption).decode()


class Pki:
    """root -> intermediate, plus a second intermediate key under the same root and an unrelated root."""

    def __init__(self, kind):
        self.kind = kind
        self.root_key = new_key(kind)
        self.root = make_cert("meshpki test root", self.root_key)
        self.int_key = new_key(kind)
        self.intermediate = self.sign_intermediate()
        self.other_key = new_key(kind)
        self.other_root_key = ec.generate_private_key(ec.SECP256R1())
        self.other_root = make_cert("another root", self.other_root_key)

    def sign_intermediate(self, cn="meshpki test intermediate", key=None, **kwargs):
        kwargs.setdefault("not_after", NOW + 180 * DAY)
        return make_cert(cn, key or self.int_key, issuer=self.root, issuer_key=self.root_key, **kwargs)

    def bundle(self, intermediate=None, key=None, chain=None, roots=None, key_format=None):
        """The four files as the agent renders them from Vault: cert/ca, KV key, cert/ca_chain, root cert/ca."""
        intermediate = intermediate or self.intermediate
        fmt = key_format or ("pkcs1" if self.kind == "rsa" else "sec1")
        return {
            "ca_cert": pem(intermediate),
            "ca_key": key_pem(key or self.int_key, fmt),
            "cert_chain": pem(*(chain if chain is not None else [intermediate, self.root])),
            "root_cert": pem(*(roots if roots is not None else [self.root])),
        }


@pytest.fixture(scope="module", params=["rsa", "ec"])
def pki(request):
    return Pki(request.param)


@pytest.fixture(scope="module")
def ec_pki():
    return Pki("ec")


def run(files, **kwargs):
    kwargs.setdefault("now", NOW)
    return verify_bundle(files["ca_cert"], files["ca_key"], files["cert_chain"], files["root_cert"], **kwargs)


def check(report, name):
    return next(entry for entry in report["checks"] if entry["name"] == name)


def assert_fails_exactly(report, *names):
    assert report["ok"] is False
    assert set(report["failed"]) == set(names), [(c["name"], c["detail"]) for c in report["checks"] if not c["passed"]]


# ---------------------------------------------------------------------------------------------------------
# good bundles
# ---------------------------------------------------------------------------------------------------------

def test_good_bundle_passes_every_check(pki):
    report = run(pki.bundle(), file_names=["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"])
    assert report["ok"] is True, report["failed"]
    assert report["failed"] == []
    assert [entry["name"] for entry in report["checks"]] == list(CHECKS)
    assert all(entry["passed"] and entry["detail"] for entry in report["checks"])
    assert report["path"] == ["CN=meshpki test intermediate", "CN=meshpki test root"]
    assert report["days_left"] == 180


def test_good_rsa_bundle_uses_the_pkcs1_key_vault_returns():
    pki = Pki("rsa")
    files = pki.bundle()
    assert files["ca_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    report = run(files)
    assert report["ok"] is True
    assert report["key"] == {"type": "rsa", "bits": 2048, "format": "pkcs1"}


@pytest.mark.parametrize("fmt", ["sec1", "pkcs8"])
def test_good_ec_bundle_in_both_key_formats(ec_pki, fmt):
    files = ec_pki.bundle(key_format=fmt)
    label = "EC PRIVATE KEY" if fmt == "sec1" else "PRIVATE KEY"
    assert files["ca_key"].startswith(f"-----BEGIN {label}-----")
    report = run(files)
    assert report["ok"] is True, report["failed"]
    assert report["key"] == {"type": "ec", "bits": 256, "format": fmt}


def test_good_three_level_bundle(ec_pki):
    mid_key = new_key("ec")
    mid = ec_pki.sign_intermediate("middle", key=mid_key)
    leaf_ca_key = new_key("ec")
    leaf_ca = make_cert("istio ca", leaf_ca_key, issuer=mid, issuer_key=mid_key, not_after=NOW + 90 * DAY)
    files = {"ca_cert": pem(leaf_ca), "ca_key": key_pem(leaf_ca_key, "pkcs8"),
             "cert_chain": pem(leaf_ca, mid, ec_pki.root), "root_cert": pem(ec_pki.root)}
    report = run(files)
    assert report["ok"] is True, report["failed"]
    assert report["path"] == ["CN=istio ca", "CN=middle", "CN=meshpki test root"]


def test_bytes_input_is_accepted(ec_pki):
    files = {name: text.encode() for name, text in ec_pki.bundle().items()}
    assert run(files)["ok"] is True


def test_report_describes_each_certificate(ec_pki):
    report = run(ec_pki.bundle())
    intermediate = report["certificates"]["intermediate"]
    assert intermediate["subject"] == "CN=meshpki test intermediate"
    assert intermediate["issuer"] == "CN=meshpki test root"
    assert intermediate["serial"] == format_serial(ec_pki.intermediate.serial_number)
    assert intermediate["not_after"] == (NOW + 180 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert intermediate["days_left"] == 180
    assert intermediate["is_ca"] is True
    assert intermediate["self_signed"] is False
    assert [info["subject"] for info in report["certificates"]["chain"]] == [
        "CN=meshpki test intermediate", "CN=meshpki test root"]
    assert [info["subject"] for info in report["certificates"]["roots"]] == ["CN=meshpki test root"]
    assert report["certificates"]["roots"][0]["self_signed"] is True


# ---------------------------------------------------------------------------------------------------------
# each check fails on its broken bundle
# ---------------------------------------------------------------------------------------------------------

def test_swapped_key_fails_key_matches_cert(pki):
    report = run(pki.bundle(key=pki.other_key))
    assert_fails_exactly(report, "key_matches_cert", "workload_cert_verifies")
    assert "not the private key of ca-cert.pem" in check(report, "key_matches_cert")["detail"]
    assert check(report, "workload_cert_verifies").get("skipped") is True


def test_chain_without_the_intermediate(pki):
    report = run(pki.bundle(chain=[pki.root]))
    assert_fails_exactly(report, "cert_chain_starts_with_ca_cert", "workload_cert_verifies")
    assert "does not contain the intermediate" in check(report, "cert_chain_starts_with_ca_cert")["detail"]
    # istiod itself would start (the root verifies the intermediate directly), but peers reject workload certs.
    assert check(report, "chains_to_root")["passed"] is True


def test_chain_in_the_wrong_order(pki):
    report = run(pki.bundle(chain=[pki.root, pki.intermediate]))
    assert_fails_exactly(report, "cert_chain_starts_with_ca_cert")
    assert "position 2 (wrong order)" in check(report, "cert_chain_starts_with_ca_cert")["detail"]


def test_root_file_holding_the_intermediate(pki):
    report = run(pki.bundle(roots=[pki.root, pki.intermediate]))
    assert_fails_exactly(report, "root_cert_excludes_intermediate", "roots_self_signed_ca")
    assert "root-cert.pem contains the intermediate" in check(report, "root_cert_excludes_intermediate")["detail"]


def test_root_file_holding_only_the_intermediate(ec_pki):
    report = run(ec_pki.bundle(roots=[ec_pki.intermediate]))
    assert {"root_cert_excludes_intermediate", "roots_self_signed_ca", "chains_to_root"} <= set(report["failed"])
    assert "contains ca-cert.pem itself" in check(report, "chains_to_root")["detail"]


def test_expired_intermediate(pki):
    later = NOW + 181 * DAY  # the intermediate ends at NOW + 180 days, the root at NOW + 365 days
    report = run(pki.bundle(), now=later)
    assert_fails_exactly(report, "certificates_valid_now")
    detail = check(report, "certificates_valid_now")["detail"]
    assert "'CN=meshpki test intermediate' expired" in detail and "1 day(s) ago" in detail
    assert report["certificates"]["intermediate"]["days_left"] == -1


def test_not_yet_valid_intermediate(ec_pki):
    report = run(ec_pki.bundle(), now=NOW - 31 * DAY)
    assert_fails_exactly(report, "certificates_valid_now")
    assert "is not valid before" in check(report, "certificates_valid_now")["detail"]


def test_expired_root(ec_pki):
    root = make_cert("old root", ec_pki.root_key, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    intermediate = make_cert("int", ec_pki.int_key, issuer=root, issuer_key=ec_pki.root_key,
                             not_before=NOW - 300 * DAY, not_after=NOW - 2 * DAY)
    report = run({"ca_cert": pem(intermediate), "ca_key": key_pem(ec_pki.int_key, "sec1"),
                  "cert_chain": pem(intermediate, root), "root_cert": pem(root)})
    assert_fails_exactly(report, "certificates_valid_now")
    assert "'CN=old root' expired" in check(report, "certificates_valid_now")["detail"]


def test_intermediate_outliving_the_root(pki):
    intermediate = pki.sign_intermediate(not_after=NOW + 367 * DAY)  # root: NOW + 365 days
    report = run(pki.bundle(intermediate=intermediate))
    assert_fails_exactly(report, "intermediate_within_root_lifetime")
    detail = check(report, "intermediate_within_root_lifetime")["detail"]
    assert "by 2 days, 0:00:00 (172800 s)" in detail


def test_intermediate_outliving_the_root_by_seconds(ec_pki):
    intermediate = ec_pki.sign_intermediate(not_after=NOW + 365 * DAY + datetime.timedelta(seconds=1))
    report = run(ec_pki.bundle(intermediate=intermediate))
    assert_fails_exactly(report, "intermediate_within_root_lifetime")
    assert "(1 s)" in check(report, "intermediate_within_root_lifetime")["detail"]


def test_no_value_in_the_key_file(pki):
    files = pki.bundle()
    files["ca_key"] = "<no value>\n"  # what the agent renders for a missing KV field
    report = run(files)
    assert "no_unrendered_values" in report["failed"]
    assert check(report, "files_not_empty")["passed"] is True
    assert_fails_exactly(report, "no_unrendered_values", "ca_key_parses", "key_matches_cert", "workload_cert_verifies")
    assert "ca-key.pem" in check(report, "no_unrendered_values")["detail"]


def test_no_value_next_to_valid_pem_is_still_reported(ec_pki):
    files = ec_pki.bundle()
    files["cert_chain"] += "<no value>\n"
    report = run(files)
    assert_fails_exactly(report, "no_unrendered_values")


@pytest.mark.parametrize("empty", ["", "\n", None])
def test_empty_root_file(ec_pki, empty):
    files = ec_pki.bundle()
    files["root_cert"] = empty
    report = run(files)
    assert "files_not_empty" in report["failed"]
    assert "root-cert.pem" in check(report, "files_not_empty")["detail"]
    assert check(report, "root_cert_parses").get("skipped") is True
    assert check(report, "chains_to_root").get("skipped") is True
    assert check(report, "key_matches_cert")["passed"] is True


def test_empty_key_file(ec_pki):
    files = ec_pki.bundle()
    files["ca_key"] = ""
    report = run(files)
    assert_fails_exactly(report, "files_not_empty", "ca_key_parses", "key_matches_cert", "workload_cert_verifies")
    assert "ca-key.pem" in check(report, "files_not_empty")["detail"]


def test_all_files_missing_runs_every_check_without_raising():
    report = verify_bundle(None, None, None, None, now=NOW)
    assert report["ok"] is False
    assert [entry["name"] for entry in report["checks"]] == list(CHECKS)
    assert report["certificates"] == {"intermediate": None, "chain": [], "roots": []}
    assert report["days_left"] is None and report["key"] is None


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1"])
def test_encrypted_key(pki, fmt):
    files = pki.bundle()
    files["ca_key"] = key_pem(pki.int_key, fmt, password=b"secret")
    assert ("ENCRYPTED PRIVATE KEY" if fmt == "pkcs8" else "Proc-Type: 4,ENCRYPTED") in files["ca_key"]
    report = run(files)
    assert_fails_exactly(report, "ca_key_parses", "key_matches_cert", "workload_cert_verifies")
    assert "encrypted" in check(report, "ca_key_parses")["detail"]


def test_non_ca_certificate_as_ca_cert(pki):
    leaf = pki.sign_intermediate("not a ca", ca=False, key_cert_sign=False)
    report = run(pki.bundle(intermediate=leaf))
    assert_fails_exactly(report, "ca_cert_is_ca", "ca_cert_key_cert_sign", "workload_cert_verifies")
    assert "is not a CA" in check(report, "ca_cert_is_ca")["detail"]


def test_certificate_without_basic_constraints_is_not_a_ca(ec_pki):
    cert = ec_pki.sign_intermediate("no constraints", basic_constraints=False)
    report = run(ec_pki.bundle(intermediate=cert))
    assert "ca_cert_is_ca" in report["failed"]


def test_missing_key_cert_sign(pki):
    cert = pki.sign_intermediate(key_cert_sign=False)
    report = run(pki.bundle(intermediate=cert))
    assert_fails_exactly(report, "ca_cert_key_cert_sign")
    assert "lacks keyUsage keyCertSign" in check(report, "ca_cert_key_cert_sign")["detail"]


def test_tls_crt_present(pki):
    names = ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem", "tls.crt"]
    report = run(pki.bundle(), file_names=names)
    assert_fails_exactly(report, "no_tls_crt")
    assert "tls.crt/tls.key/ca.crt" in check(report, "no_tls_crt")["detail"]


def test_without_listing_tls_crt_is_not_checked(ec_pki):
    entry = check(run(ec_pki.bundle()), "no_tls_crt")
    assert entry["passed"] is True and "not checked" in entry["detail"]


# ---------------------------------------------------------------------------------------------------------
# more ways a bundle breaks
# ---------------------------------------------------------------------------------------------------------

def test_intermediate_of_another_root(ec_pki):
    report = run(ec_pki.bundle(roots=[ec_pki.other_root]))
    assert_fails_exactly(report, "chains_to_root", "intermediate_within_root_lifetime", "workload_cert_verifies")
    assert "'CN=meshpki test root' is self-signed (a root) but root-cert.pem does not contain it" in \
        check(report, "chains_to_root")["detail"]
    assert check(report, "intermediate_within_root_lifetime").get("skipped") is True


def test_intermediate_of_another_root_without_root_in_chain(ec_pki):
    report = run(ec_pki.bundle(chain=[ec_pki.intermediate], roots=[ec_pki.other_root]))
    assert "no certificate in root-cert.pem or cert-chain.pem has the subject 'CN=meshpki test root'" in \
        check(report, "chains_to_root")["detail"]


def test_root_with_the_same_name_but_another_key(ec_pki):
    impostor = make_cert("meshpki test root", ec_pki.other_root_key)
    report = run(ec_pki.bundle(chain=[ec_pki.intermediate], roots=[impostor]))
    assert "chains_to_root" in report["failed"]
    assert "signature does not verify" in check(report, "chains_to_root")["detail"]


def test_three_level_bundle_without_the_middle_ca_in_the_chain(ec_pki):
    mid_key = new_key("ec")
    mid = ec_pki.sign_intermediate("middle", key=mid_key)
    ca_key = new_key("ec")
    ca = make_cert("istio ca", ca_key, issuer=mid, issuer_key=mid_key, not_after=NOW + 90 * DAY)
    report = run({"ca_cert": pem(ca), "ca_key": key_pem(ca_key, "sec1"), "cert_chain": pem(ca),
                  "root_cert": pem(ec_pki.root)})
    assert "chains_to_root" in report["failed"]
    assert "has the subject 'CN=middle'" in check(report, "chains_to_root")["detail"]


def test_root_path_length_zero_breaks_workload_certificates(ec_pki):
    root = make_cert("strict root", ec_pki.root_key, path_length=0)
    intermediate = make_cert("int", ec_pki.int_key, issuer=root, issuer_key=ec_pki.root_key,
                             not_after=NOW + 100 * DAY)
    report = run({"ca_cert": pem(intermediate), "ca_key": key_pem(ec_pki.int_key, "sec1"),
                  "cert_chain": pem(intermediate, root), "root_cert": pem(root)})
    assert_fails_exactly(report, "workload_cert_verifies")
    assert "allows pathlen 0" in check(report, "workload_cert_verifies")["detail"]


def test_ext_key_usage_without_server_auth(ec_pki):
    cert = ec_pki.sign_intermediate(eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    report = run(ec_pki.bundle(intermediate=cert))
    assert_fails_exactly(report, "ext_key_usage")


def test_ext_key_usage_with_server_auth_is_fine(ec_pki):
    cert = ec_pki.sign_intermediate(eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    assert run(ec_pki.bundle(intermediate=cert))["ok"] is True


def test_private_key_inside_the_chain_file(ec_pki):
    files = ec_pki.bundle()
    files["cert_chain"] += key_pem(ec_pki.int_key, "pkcs8")
    report = run(files)
    assert "cert_chain_parses" in report["failed"]
    assert "contains a private key" in check(report, "cert_chain_parses")["detail"]


def test_garbage_certificate_file(ec_pki):
    files = ec_pki.bundle()
    files["ca_cert"] = "this is not PEM\n"
    report = run(files)
    assert "ca_cert_parses" in report["failed"]
    assert "no PEM CERTIFICATE block" in check(report, "ca_cert_parses")["detail"]
    for name in ("key_matches_cert", "ca_cert_is_ca", "chains_to_root", "workload_cert_verifies"):
        assert check(report, name).get("skipped") is True


def test_corrupted_certificate_block(ec_pki):
    files = ec_pki.bundle()
    files["root_cert"] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    report = run(files)
    assert "root_cert_parses" in report["failed"]
    assert "does not parse" in check(report, "root_cert_parses")["detail"]


def test_key_file_starting_with_ec_parameters(ec_pki):
    files = ec_pki.bundle()
    files["ca_key"] = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n" + files["ca_key"]
    report = run(files)
    assert "ca_key_parses" in report["failed"]
    assert "first PEM block is 'EC PARAMETERS'" in check(report, "ca_key_parses")["detail"]


def test_ca_cert_with_several_certificates_uses_the_first(ec_pki):
    files = ec_pki.bundle()
    files["ca_cert"] = pem(ec_pki.intermediate, ec_pki.root)
    report = run(files)
    assert report["ok"] is True
    assert "uses only the first" in check(report, "ca_cert_parses")["detail"]


# ---------------------------------------------------------------------------------------------------------
# directory helpers
# ---------------------------------------------------------------------------------------------------------

def write_dir(directory, files, extra=()):
    names = {"ca_cert": "ca-cert.pem", "ca_key": "ca-key.pem", "cert_chain": "cert-chain.pem",
             "root_cert": "root-cert.pem"}
    for key, text in files.items():
        if text is not None:
            (directory / names[key]).write_text(text)
    for name in extra:
        (directory / name).write_text("x")


def test_verify_bundle_dir(tmp_path, ec_pki):
    write_dir(tmp_path, ec_pki.bundle())
    assert verify_bundle_dir(str(tmp_path), now=NOW)["ok"] is True


def test_verify_bundle_dir_with_tls_crt_and_a_missing_file(tmp_path, ec_pki):
    files = ec_pki.bundle()
    files["root_cert"] = None
    write_dir(tmp_path, files, extra=["tls.crt"])
    texts, names = read_bundle_dir(str(tmp_path))
    assert texts["root-cert.pem"] is None and "tls.crt" in names
    report = verify_bundle_dir(str(tmp_path), now=NOW)
    assert {"no_tls_crt", "files_not_empty"} <= set(report["failed"])


def test_read_bundle_dir_missing_directory(tmp_path):
    with pytest.raises(PemError, match="cannot list the CA directory"):
        read_bundle_dir(str(tmp_path / "nope"))


# ---------------------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------------------

def test_split_pem_certs_and_load(ec_pki):
    text = "junk\n" + pem(ec_pki.intermediate) + key_pem(ec_pki.int_key, "pkcs8") + pem(ec_pki.root) + "more junk"
    blocks = split_pem_certs(text)
    assert len(blocks) == 2
    assert all(block.startswith("-----BEGIN CERTIFICATE-----") for block in blocks)
    assert load_cert(blocks[1]) == ec_pki.root
    assert load_certs(text) == [ec_pki.intermediate, ec_pki.root]
    assert split_pem_certs(text.encode()) == blocks
    assert split_pem_certs("") == []


def test_load_cert_errors():
    with pytest.raises(PemError, match="no PEM 'CERTIFICATE' block"):
        load_cert("nothing here")
    with pytest.raises(PemError, match="does not parse"):
        load_cert("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


@pytest.mark.parametrize("fmt", ["pkcs1", "pkcs8"])
def test_load_private_key_rsa(fmt):
    key = new_key("rsa")
    loaded = load_private_key(key_pem(key, fmt))
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == key.private_numbers()


def test_load_private_key_ed25519_pkcs8():
    key = ed25519.Ed25519PrivateKey.generate()
    loaded = load_private_key(key_pem(key, "pkcs8"))
    assert key_type_and_bits(loaded) == ("ed25519", 256)


@pytest.mark.parametrize(("text", "message"), [
    ("", "no PEM block found"),
    ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "first PEM block is 'CERTIFICATE'"),
    ("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
     "'RSA PRIVATE KEY' block does not parse"),
    ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
])
def test_load_private_key_errors(text, message):
    with pytest.raises(PemError, match=message):
        load_private_key(text)


def test_load_private_key_label_must_match_the_key_type(ec_pki):
    body = key_pem(ec_pki.int_key, "sec1").replace("EC PRIVATE KEY", "RSA PRIVATE KEY")
    with pytest.raises(PemError):
        load_private_key(body)


def test_public_key_matches(ec_pki):
    assert public_key_matches(ec_pki.intermediate, ec_pki.int_key) is True
    assert public_key_matches(ec_pki.intermediate, ec_pki.int_key.public_key()) is True
    assert public_key_matches(ec_pki.intermediate, ec_pki.other_key) is False


def test_key_type_and_bits():
    rsa_key = new_key("rsa")
    assert key_type_and_bits(rsa_key) == ("rsa", 2048)
    assert key_type_and_bits(rsa_key.public_key()) == ("rsa", 2048)
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert key_type_and_bits(p384) == ("ec", 384)
    cert = make_cert("c", p384)
    assert key_type_and_bits(cert) == ("ec", 384)
    with pytest.raises(PemError):
        key_type_and_bits("not a key")


def test_cert_info_formats(ec_pki):
    info = cert_info(ec_pki.root, now=NOW)
    serial_hex = format(ec_pki.root.serial_number, "x")
    assert info["serial"].replace(":", "") == serial_hex.zfill(len(serial_hex) + len(serial_hex) % 2)
    assert info["serial"] == info["serial"].lower()
    fingerprint = ec_pki.root.fingerprint(hashes.SHA256()).hex().upper()
    assert info["sha256_fingerprint"].replace(":", "") == fingerprint
    assert len(info["sha256_fingerprint"].split(":")) == 32
    assert info["not_before"] == (NOW - 30 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert info["days_left"] == 365
    assert info["key_type"] == "ec" and info["key_bits"] == 256
    assert info["self_signed"] is True and info["is_ca"] is True


def test_cert_info_naive_now_is_utc(ec_pki):
    assert cert_info(ec_pki.root, now=NOW.replace(tzinfo=None))["days_left"] == 365


@pytest.mark.parametrize(("number", "expected"), [(0x1, "01"), (0xF0A, "0f:0a"), (0x18982A, "18:98:2a")])
def test_format_serial_like_vault(number, expected):
    assert format_serial(number) == expected


def test_signature_error_and_manual_fallback(pki):
    assert signature_error(pki.intermediate, pki.root) is None
    assert x509_mod._signature_error_manual(pki.intermediate, pki.root) is None
    forged = make_cert("meshpki test intermediate", pki.int_key, issuer=pki.root, issuer_key=pki.other_key)
    assert "does not verify" in signature_error(forged, pki.root)
    assert "does not verify" in x509_mod._signature_error_manual(forged, pki.root)
    assert "issuer name" in signature_error(pki.intermediate, pki.other_root)


def test_build_chain_prefers_roots_and_reports_problems(ec_pki):
    path, problems = build_chain(ec_pki.intermediate, [ec_pki.intermediate, ec_pki.root], [ec_pki.root])
    assert path == [ec_pki.intermediate, ec_pki.root]
    assert problems == []
    path, problems = build_chain(ec_pki.intermediate, [], [ec_pki.other_root])
    assert path is None and problems


# ---------------------------------------------------------------------------------------------------------
# what Go's crypto/x509 rejects, longer chains, root rotation
# ---------------------------------------------------------------------------------------------------------

_SHA256_WITH_RSA = bytes.fromhex("06092a864886f70d01010b")  # DER of the OID 1.2.840.113549.1.1.11
_WEAK_WITH_RSA = {"sha1": bytes.fromhex("06092a864886f70d010105"), "md5": bytes.fromhex("06092a864886f70d010104")}


def weakly_signed(cert, issuer_key, algorithm):
    """``cert`` (RSA-signed with SHA-256) re-signed with SHA-1 or MD5, which cryptography's builder refuses:
    the signature algorithm OID (same length) is swapped in the TBS and outer fields, then the TBS re-signed."""
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(_SHA256_WITH_RSA) == 2
    der = der.replace(_SHA256_WITH_RSA, _WEAK_WITH_RSA[algorithm.name])
    signature = issuer_key.sign(x509.load_der_x509_certificate(der).tbs_certificate_bytes, padding.PKCS1v15(),
                                algorithm)
    weak = x509.load_der_x509_certificate(der[:-len(signature)] + signature)
    assert weak.signature_hash_algorithm.name == algorithm.name
    return weak


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.MD5()], ids=["sha1", "md5"])
def test_intermediate_signed_with_sha1_or_md5_does_not_chain(algorithm):
    pki = Pki("rsa")
    weak = weakly_signed(pki.intermediate, pki.root_key, algorithm)
    report = run(pki.bundle(intermediate=weak))
    assert_fails_exactly(report, "chains_to_root", "intermediate_within_root_lifetime", "workload_cert_verifies")
    # cryptography >= 40 refuses to verify the signature at all
    assert "signature cannot be verified with 'CN=meshpki test root'" in check(report, "chains_to_root")["detail"]


@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.MD5()], ids=["sha1", "md5"])
def test_sha1_or_md5_is_rejected_where_the_signature_verifies(monkeypatch, algorithm):
    # cryptography < 40 (no verify_directly_issued_by) verifies SHA-1/MD5 signatures: Go's rule rejects them.
    pki = Pki("rsa")
    weak = weakly_signed(pki.intermediate, pki.root_key, algorithm)
    monkeypatch.setattr(x509_mod, "signature_error", x509_mod._signature_error_manual)
    assert x509_mod._signature_error_manual(weak, pki.root) is None
    path, problems = build_chain(weak, [], [pki.root])
    assert path is None
    assert problems == [f"'CN=meshpki test intermediate' -> 'CN=meshpki test root' (root-cert.pem): "
                        f"'CN=meshpki test intermediate' is signed with {algorithm.name.upper()}, which Go's "
                        "crypto/x509 rejects"]
    path, problems = build_chain(pki.intermediate, [], [pki.root])  # the same certificate with SHA-256
    assert path == [pki.intermediate, pki.root] and problems == []


def test_root_whose_self_signature_does_not_verify(ec_pki):
    # Subject == issuer and the root's public key, but signed by another key: not a self-signed root.
    forged_root = make_cert("meshpki test root", ec_pki.root_key, issuer_key=ec_pki.other_root_key)
    report = run(ec_pki.bundle(chain=[ec_pki.intermediate, forged_root], roots=[forged_root]))
    # Go builds the chain (it never checks a root's own signature); the bundle check catches it.
    assert_fails_exactly(report, "roots_self_signed_ca")
    assert "offending: 'CN=meshpki test root' (not self-signed)." in check(report, "roots_self_signed_ca")["detail"]


def test_root_file_holding_a_self_signed_non_ca(ec_pki):
    not_ca = make_cert("self-signed leaf", ec_pki.other_root_key, ca=False)
    report = run(ec_pki.bundle(roots=[ec_pki.root, not_ca]))
    assert_fails_exactly(report, "roots_self_signed_ca")
    assert "offending: 'CN=self-signed leaf' (#2 of root-cert.pem, SHA-256 %s...) (not a CA)." % (
        cert_info(not_ca)["sha256_fingerprint"][:23]) in check(report, "roots_self_signed_ca")["detail"]


def three_levels(pki, root=None, root_key=None, middle_after=NOW + 200 * DAY, ca_after=NOW + 90 * DAY,
                 middle_path_length=None):
    """root -> middle -> istio ca; returns (files, middle, istio ca)."""
    root, root_key = root or pki.root, root_key or pki.root_key
    mid_key = new_key("ec")
    middle = make_cert("middle", mid_key, issuer=root, issuer_key=root_key, not_after=middle_after,
                       path_length=middle_path_length)
    ca_key = new_key("ec")
    ca = make_cert("istio ca", ca_key, issuer=middle, issuer_key=mid_key, not_after=ca_after)
    files = {"ca_cert": pem(ca), "ca_key": key_pem(ca_key, "sec1"), "cert_chain": pem(ca, middle, root),
             "root_cert": pem(root)}
    return files, middle, ca


def test_three_level_intermediate_outliving_the_middle_ca(ec_pki):
    files, _middle, _ca = three_levels(ec_pki, middle_after=NOW + 60 * DAY, ca_after=NOW + 90 * DAY)
    report = run(files)
    assert_fails_exactly(report, "intermediate_within_root_lifetime")
    detail = check(report, "intermediate_within_root_lifetime")["detail"]
    assert "outlives 'CN=middle'" in detail and "by 30 days, 0:00:00" in detail
    assert report["days_left"] == 60  # the middle CA ends first


def test_three_level_intermediate_outliving_both_names_the_one_it_outlives_most(ec_pki):
    root = make_cert("short root", ec_pki.root_key, not_after=NOW + 40 * DAY)
    files, _middle, _ca = three_levels(ec_pki, root=root, middle_after=NOW + 60 * DAY, ca_after=NOW + 90 * DAY)
    report = run(files)
    assert_fails_exactly(report, "intermediate_within_root_lifetime")
    detail = check(report, "intermediate_within_root_lifetime")["detail"]
    assert "outlives 'CN=short root'" in detail and "by 50 days, 0:00:00" in detail


def test_three_level_intermediate_within_every_issuer_reports_the_margin_to_the_root(ec_pki):
    files, _middle, _ca = three_levels(ec_pki)
    report = run(files)
    assert report["ok"] is True, report["failed"]
    detail = check(report, "intermediate_within_root_lifetime")["detail"]
    assert detail.startswith(f"the intermediate expires {(NOW + 90 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ')}, "
                             "275 days, 0:00:00 before the root 'CN=meshpki test root'")


@pytest.mark.parametrize(("middle_path_length", "ok"), [(1, True), (0, False)])
def test_three_level_path_length_of_the_middle_ca(ec_pki, middle_path_length, ok):
    # The workload certificate sits under "istio ca": one CA below "middle" needs pathlen >= 1.
    files, _middle, _ca = three_levels(ec_pki, middle_path_length=middle_path_length)
    report = run(files)
    if ok:
        assert report["ok"] is True, report["failed"]
    else:
        assert_fails_exactly(report, "workload_cert_verifies")
        assert "'CN=middle' allows pathlen 0, the chain below it has 1" in \
            check(report, "workload_cert_verifies")["detail"]


@pytest.mark.parametrize(("root_path_length", "ok"), [(2, True), (1, False)])
def test_three_level_path_length_of_the_root(ec_pki, root_path_length, ok):
    root = make_cert("meshpki test root", ec_pki.root_key, path_length=root_path_length)
    files, _middle, _ca = three_levels(ec_pki, root=root)
    report = run(files)
    if ok:
        assert report["ok"] is True, report["failed"]
    else:
        assert_fails_exactly(report, "workload_cert_verifies")
        assert "'CN=meshpki test root' allows pathlen 1, the chain below it has 2" in \
            check(report, "workload_cert_verifies")["detail"]


@pytest.mark.parametrize("old_first", [True, False], ids=["old-root-first", "new-root-first"])
def test_two_roots_with_one_name_as_in_a_root_rotation(ec_pki, old_first):
    # During a root rotation root-cert.pem holds the old and the new root: same subject, different keys.
    old_root = make_cert("meshpki test root", ec_pki.other_root_key)
    roots = [old_root, ec_pki.root] if old_first else [ec_pki.root, old_root]
    report = run(ec_pki.bundle(roots=roots))
    assert report["ok"] is True, report["failed"]
    assert report["path"] == ["CN=meshpki test intermediate", "CN=meshpki test root"]
    assert check(report, "roots_self_signed_ca")["detail"] == \
        "all 2 certificate(s) of root-cert.pem are self-signed CAs"
    path, problems = build_chain(ec_pki.intermediate, [], roots)
    assert path == [ec_pki.intermediate, ec_pki.root]
    assert problems == (["'CN=meshpki test intermediate' -> 'CN=meshpki test root' (root-cert.pem #1): signature "
                         "does not verify with the public key of 'CN=meshpki test root'"] if old_first else [])


def test_intermediate_signed_by_the_old_root_of_a_rotation_still_chains(ec_pki):
    new_root = make_cert("meshpki test root", ec_pki.other_root_key)
    path, _problems = build_chain(ec_pki.intermediate, [], [new_root, ec_pki.root])
    assert path == [ec_pki.intermediate, ec_pki.root]


def test_self_signed_ca_cert_listed_in_the_chain_is_not_its_own_issuer(ec_pki):
    own = make_cert("istio self-signed", ec_pki.int_key)
    path, problems = build_chain(own, [own], [ec_pki.root])
    assert path is None
    assert problems == ["'CN=istio self-signed' is self-signed (a root) but root-cert.pem does not contain it"]


def test_chain_deeper_than_the_limit_is_refused(ec_pki):
    issuer, issuer_key, chain = ec_pki.root, ec_pki.root_key, []
    for level in range(11):
        key = new_key("ec")
        issuer = make_cert(f"level {level}", key, issuer=issuer, issuer_key=issuer_key)
        issuer_key = key
        chain.insert(0, issuer)
    path, problems = build_chain(chain[0], chain[1:], [ec_pki.root])
    assert path is None
    assert "chain longer than 10 certificates" in problems
    path, problems = build_chain(chain[1], chain[2:], [ec_pki.root])
    assert path == [*chain[1:], ec_pki.root] and problems == []


def test_an_unrelated_root_listed_first_is_skipped(ec_pki):
    path, problems = build_chain(ec_pki.intermediate, [], [ec_pki.other_root, ec_pki.root])
    assert path == [ec_pki.intermediate, ec_pki.root] and problems == []


def test_root_without_basic_constraints_is_reported_not_a_crash(ec_pki):
    root = make_cert("meshpki test root", ec_pki.root_key, basic_constraints=False)
    report = run(ec_pki.bundle(chain=[ec_pki.intermediate, root], roots=[root]))
    assert_fails_exactly(report, "roots_self_signed_ca")
    assert "'CN=meshpki test root' (not a CA)" in check(report, "roots_self_signed_ca")["detail"]


# ---------------------------------------------------------------------------------------------------------
# signature checks: RSA-PSS, Ed25519 and keys Go does not sign with, with and without cryptography >= 40
# ---------------------------------------------------------------------------------------------------------

def signed_by(cert_key, issuer, issuer_key, algorithm, rsa_padding=None):
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signed")]))
               .issuer_name(issuer.subject).public_key(cert_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if rsa_padding is not None:
        return builder.sign(issuer_key, algorithm, rsa_padding=rsa_padding)
    return builder.sign(issuer_key, algorithm)


@pytest.mark.parametrize("manual", [False, True], ids=["cryptography", "manual"])
def test_rsa_pss_signature_verifies(manual):
    pki = Pki("rsa")
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    cert = signed_by(new_key("ec"), pki.root, pki.root_key, hashes.SHA256(), rsa_padding=pss)
    verify = x509_mod._signature_error_manual if manual else signature_error
    assert verify(cert, pki.root) is None
    forged = signed_by(new_key("ec"), pki.root, pki.other_key, hashes.SHA256(), rsa_padding=pss)
    assert verify(forged, pki.root) == "signature does not verify with the public key of 'CN=meshpki test root'"


@pytest.mark.parametrize("manual", [False, True], ids=["cryptography", "manual"])
def test_ed25519_issuer_signature_verifies(monkeypatch, manual):
    root_key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed root")])
    root = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(root_key.public_key())
            .serial_number(1).not_valid_before(NOW - DAY).not_valid_after(NOW + DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(root_key, None))
    cert = signed_by(new_key("ec"), root, root_key, None)
    forged = signed_by(new_key("ec"), root, ed25519.Ed25519PrivateKey.generate(), None)
    if manual:
        monkeypatch.setattr(x509_mod, "signature_error", x509_mod._signature_error_manual)
    assert x509_mod.signature_error(cert, root) is None
    assert x509_mod.signature_error(forged, root) == "signature does not verify with the public key of 'CN=ed root'"
    # Ed25519 signatures have no hash algorithm: not a SHA-1/MD5 signature
    assert build_chain(cert, [], [root]) == ([cert, root], [])


def test_manual_check_of_a_signature_the_issuer_key_cannot_have_made():
    pki = Pki("rsa")
    ed_key = ed25519.Ed25519PrivateKey.generate()
    cert = signed_by(new_key("ec"), pki.root, ed_key, None)  # names the RSA root, Ed25519 signature
    reason = x509_mod._signature_error_manual(cert, pki.root)
    assert reason.startswith("signature cannot be verified with 'CN=meshpki test root': ")


def test_manual_check_refuses_an_issuer_key_go_does_not_use():
    from cryptography.hazmat.primitives.asymmetric import dsa
    dsa_key = dsa.generate_private_key(key_size=2048)
    root = make_cert("dsa root", dsa_key)
    cert = signed_by(new_key("ec"), root, dsa_key, hashes.SHA256())
    assert x509_mod._signature_error_manual(cert, root) == "unsupported issuer key type DSAPublicKey"


def test_a_namesake_root_with_another_key_is_the_only_problem(ec_pki):
    impostor = make_cert("meshpki test root", ec_pki.other_root_key)
    path, problems = build_chain(ec_pki.intermediate, [], [impostor])
    # the candidate had the right name: neither "no certificate has the subject" nor "self-signed" is added
    assert path is None
    assert problems == ["'CN=meshpki test intermediate' -> 'CN=meshpki test root' (root-cert.pem): signature does "
                        "not verify with the public key of 'CN=meshpki test root'"]


def test_a_middle_ca_in_the_chain_that_is_not_a_ca(ec_pki):
    mid_key = new_key("ec")
    middle = make_cert("middle", mid_key, issuer=ec_pki.root, issuer_key=ec_pki.root_key, ca=False)
    ca = make_cert("istio ca", ec_pki.int_key, issuer=middle, issuer_key=mid_key)
    path, problems = build_chain(ca, [middle], [ec_pki.root])
    assert path is None
    assert problems == ["'CN=istio ca' -> 'CN=middle' (cert-chain.pem): 'CN=middle' is not a CA (basic constraints "
                        "CA:FALSE or missing)"]


# ---------------------------------------------------------------------------------------------------------
# checks that still run when another file is broken, and less common keys and usages
# ---------------------------------------------------------------------------------------------------------

def test_expired_root_is_reported_even_when_ca_cert_does_not_parse(ec_pki):
    root = make_cert("old root", ec_pki.root_key, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    files = ec_pki.bundle(roots=[root])
    files["ca_cert"] = "this is not PEM\n"
    report = run(files)
    entry = check(report, "certificates_valid_now")
    assert entry["passed"] is False and not entry.get("skipped")
    assert "'CN=old root' expired on" in entry["detail"] and "(1 day(s) ago)" in entry["detail"]
    assert report["days_left"] == -1  # the roots' lifetimes count when there is no path


def test_valid_now_lists_each_certificate_once(ec_pki):
    report = run(ec_pki.bundle(roots=[ec_pki.root, ec_pki.root]))
    detail = check(report, "certificates_valid_now")["detail"]
    assert detail == (f"at {NOW.strftime('%Y-%m-%dT%H:%M:%SZ')}: 'CN=meshpki test intermediate' until "
                      f"{(NOW + 180 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ')} (180 days left); 'CN=meshpki test root' "
                      f"until {(NOW + 365 * DAY).strftime('%Y-%m-%dT%H:%M:%SZ')} (365 days left)")


def test_ext_key_usage_any_is_fine_and_a_restricted_root_on_the_path_is_named(ec_pki):
    anyeku = ec_pki.sign_intermediate(eku=[ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE])
    assert run(ec_pki.bundle(intermediate=anyeku))["ok"] is True
    root = make_cert("meshpki test root", ec_pki.root_key, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    report = run(ec_pki.bundle(chain=[ec_pki.intermediate, root], roots=[root]))
    assert "ext_key_usage" in report["failed"]
    assert check(report, "ext_key_usage")["detail"].startswith("'CN=meshpki test root' restrict(s) extendedKeyUsage")


def test_ed25519_intermediate_signs_the_workload_certificate(ec_pki):
    ed_key = ed25519.Ed25519PrivateKey.generate()
    intermediate = ec_pki.sign_intermediate(key=ed_key)
    report = run(ec_pki.bundle(intermediate=intermediate, key=ed_key, key_format="pkcs8"))
    assert report["ok"] is True, report["failed"]
    assert report["key"] == {"type": "ed25519", "bits": 256, "format": "pkcs8"}


def test_root_file_holding_a_self_signed_ca_cert(ec_pki):
    own = make_cert("istio self-signed", ec_pki.int_key)
    report = run({"ca_cert": pem(own), "ca_key": key_pem(ec_pki.int_key, "sec1"), "cert_chain": pem(own),
                  "root_cert": pem(own)})
    detail = check(report, "root_cert_excludes_intermediate")["detail"]
    assert "root_cert_excludes_intermediate" in report["failed"]
    assert detail.endswith("(ca-cert.pem is self-signed: this collection keeps the root out of istiod and gives it an "
                           "intermediate)")


def test_root_file_holding_a_certificate_with_the_intermediate_key(ec_pki):
    twin = make_cert("a root with the intermediate's key", ec_pki.int_key)
    report = run(ec_pki.bundle(roots=[ec_pki.root, twin]))
    assert "root_cert_excludes_intermediate" in report["failed"]
    assert check(report, "root_cert_excludes_intermediate")["detail"].endswith("into root-cert.pem")


def test_the_corrupted_block_is_named_by_its_position(ec_pki):
    files = ec_pki.bundle()
    files["cert_chain"] = pem(ec_pki.intermediate) + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    report = run(files)
    assert check(report, "cert_chain_parses")["detail"].startswith("cert-chain.pem: CERTIFICATE block #2 does not "
                                                                   "parse")


def test_a_certificate_without_subject_is_labelled(ec_pki):
    key = new_key("ec")
    anonymous = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ec_pki.root.subject)
                 .public_key(key.public_key()).serial_number(1).not_valid_before(NOW - DAY)
                 .not_valid_after(NOW + DAY).sign(ec_pki.root_key, hashes.SHA256()))
    _path, problems = build_chain(anonymous, [], [ec_pki.other_root])
    assert problems == ["no certificate in root-cert.pem or cert-chain.pem has the subject 'CN=meshpki test root' "
                        "(issuer of '(empty subject)')"]


def test_now_in_another_time_zone_is_the_same_moment(ec_pki):
    elsewhere = NOW.astimezone(datetime.timezone(datetime.timedelta(hours=12)))  # 2031-06-02 00:00 +12:00
    report = run(ec_pki.bundle(), now=elsewhere)
    assert check(report, "certificates_valid_now")["detail"].startswith("at 2031-06-01T12:00:00Z: ")
    assert cert_info(ec_pki.root, now=elsewhere)["days_left"] == 365


def test_cert_info_of_a_key_type_it_does_not_know():
    from cryptography.hazmat.primitives.asymmetric import dsa
    dsa_key = dsa.generate_private_key(key_size=2048)
    info = cert_info(make_cert("dsa root", dsa_key), now=NOW)
    assert (info["key_type"], info["key_bits"]) == ("unknown", 0)


def test_validity_of_a_certificate_from_cryptography_before_42(ec_pki):
    class OldCert:  # cryptography < 42: naive not_valid_before/after only, no *_utc attributes
        not_valid_before = (NOW - DAY).replace(tzinfo=None)
        not_valid_after = (NOW + DAY).replace(tzinfo=None)

    assert x509_mod.valid_from(OldCert()) == NOW - DAY
    assert x509_mod.valid_until(OldCert()) == NOW + DAY
    assert x509_mod.valid_from(ec_pki.root) == NOW - 30 * DAY and x509_mod.valid_until(ec_pki.root) == NOW + 365 * DAY


# ---------------------------------------------------------------------------------------------------------
# every detail, as the module reports it
# ---------------------------------------------------------------------------------------------------------

def test_every_detail_of_a_good_bundle(ec_pki):
    report = run(ec_pki.bundle(key_format="sec1"),
                 file_names=["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"])
    inter, root = "'CN=meshpki test intermediate'", "'CN=meshpki test root'"
    assert [(entry["name"], entry["detail"]) for entry in report["checks"]] == [
        ("files_not_empty", "all four files are present and non-empty"),
        ("no_unrendered_values", "no file contains '<no value>'"),
        ("no_tls_crt", "no tls.crt in the directory"),
        ("ca_cert_parses", f"ca-cert.pem: 1 certificate(s), first {inter}"),
        ("ca_key_parses", "ca-key.pem holds an unencrypted EC 256-bit key (sec1)"),
        ("cert_chain_parses", f"cert-chain.pem: 2 certificate(s), first {inter}"),
        ("root_cert_parses", f"root-cert.pem: 1 certificate(s), first {root}"),
        ("key_matches_cert", f"ca-key.pem (EC 256) is the key of {inter}"),
        ("ca_cert_is_ca", f"{inter} has basic constraints CA:TRUE"),
        ("ca_cert_key_cert_sign", f"{inter} has keyUsage keyCertSign"),
        ("cert_chain_starts_with_ca_cert",
         f"cert-chain.pem starts with the ca-cert.pem certificate: {inter} -> {root}"),
        ("chains_to_root", f"ca-cert.pem chains to root-cert.pem through cert-chain.pem: {inter} -> {root} (names and "
                           "signatures verified)"),
        ("roots_self_signed_ca", "all 1 certificate(s) of root-cert.pem are self-signed CAs"),
        ("root_cert_excludes_intermediate", "root-cert.pem does not contain the intermediate"),
        ("ext_key_usage", "no certificate on the path restricts extendedKeyUsage against serverAuth"),
        ("certificates_valid_now", f"at 2031-06-01T12:00:00Z: {inter} until 2031-11-28T12:00:00Z (180 days left); "
                                   f"{root} until 2032-05-31T12:00:00Z (365 days left)"),
        ("intermediate_within_root_lifetime", f"the intermediate expires 2031-11-28T12:00:00Z, 185 days, 0:00:00 "
                                              f"before the root {root} (2032-05-31T12:00:00Z)"),
        ("workload_cert_verifies", "signed a throw-away workload certificate (spiffe://cluster.local/ns/default/sa/"
                                   f"default, EC P-256, 1 h) with ca-key.pem and verified leaf -> {inter} -> {root} "
                                   "by signatures"),
    ]


def test_every_check_of_an_empty_bundle_says_why_it_did_not_run():
    report = verify_bundle(None, None, None, None, now=NOW)
    checks = {entry["name"]: entry for entry in report["checks"]}
    assert checks["files_not_empty"]["detail"].startswith(
        "missing or empty: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem. Istio >= 1.27 refuses to start")
    assert "; root-cert.pem: the root mount's cert/ca returned nothing" in checks["files_not_empty"]["detail"]
    assert not checks["files_not_empty"].get("skipped")
    assert (checks["no_unrendered_values"]["passed"], checks["no_tls_crt"]["passed"]) == (True, True)
    assert checks["no_tls_crt"]["detail"] == "no directory listing given: not checked"
    skipped = {name: entry["detail"] for name, entry in checks.items() if entry.get("skipped")}
    assert all(checks[name]["passed"] is False for name in skipped)
    assert skipped == {
        "ca_cert_parses": "not run: ca-cert.pem is empty (see files_not_empty)",
        "ca_key_parses": "not run: ca-key.pem is empty (see files_not_empty)",
        "cert_chain_parses": "not run: cert-chain.pem is empty (see files_not_empty)",
        "root_cert_parses": "not run: root-cert.pem is empty (see files_not_empty)",
        "key_matches_cert": "not run: ca-cert.pem or ca-key.pem did not parse",
        "ca_cert_is_ca": "not run: ca-cert.pem did not parse",
        "ca_cert_key_cert_sign": "not run: ca-cert.pem did not parse",
        "cert_chain_starts_with_ca_cert": "not run: ca-cert.pem or cert-chain.pem did not parse",
        "chains_to_root": "not run: ca-cert.pem or root-cert.pem did not parse",
        "roots_self_signed_ca": "not run: root-cert.pem did not parse",
        "root_cert_excludes_intermediate": "not run: ca-cert.pem or root-cert.pem did not parse",
        "ext_key_usage": "not run: ca-cert.pem did not parse",
        "certificates_valid_now": "not run: neither ca-cert.pem nor root-cert.pem parsed",
        "intermediate_within_root_lifetime": "not run: no chain from ca-cert.pem to root-cert.pem (see chains_to_root)",
        "workload_cert_verifies": "not run: ca-cert.pem or ca-key.pem did not parse",
    }


def test_workload_check_waits_for_root_cert_to_parse(ec_pki):
    files = ec_pki.bundle()
    files["root_cert"] = "not PEM\n"
    report = run(files)
    assert check(report, "workload_cert_verifies") == {
        "name": "workload_cert_verifies", "passed": False, "detail": "not run: root-cert.pem did not parse",
        "skipped": True}
    assert check(report, "root_cert_parses")["detail"].startswith(
        "root-cert.pem holds no PEM CERTIFICATE block (found: no PEM at all)")


def test_times_are_written_in_utc_whatever_the_local_time_zone(monkeypatch, ec_pki):
    import time
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert x509_mod.iso_time(NOW) == "2031-06-01T12:00:00Z"
        assert cert_info(ec_pki.root, now=NOW)["not_after"] == "2032-05-31T12:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_read_bundle_dir_reads_the_files_after_a_missing_one_and_survives_bad_bytes(tmp_path, ec_pki):
    files = ec_pki.bundle()
    files["ca_cert"] = None
    write_dir(tmp_path, files)
    (tmp_path / "root-cert.pem").write_bytes(files["root_cert"].encode() + b"\xff\n")
    texts, names = read_bundle_dir(str(tmp_path))
    assert texts["ca-cert.pem"] is None and texts["ca-key.pem"] == files["ca_key"]
    assert texts["cert-chain.pem"] == files["cert_chain"]
    assert texts["root-cert.pem"] == files["root_cert"] + "\ufffd\n"
    assert names == ["ca-key.pem", "cert-chain.pem", "root-cert.pem"]


def test_verify_bundle_dir_signs_the_workload_certificate_for_the_given_spiffe_id(tmp_path, ec_pki):
    write_dir(tmp_path, ec_pki.bundle())
    uri = "spiffe://mesh.example/ns/istio-system/sa/test"
    report = verify_bundle_dir(str(tmp_path), now=NOW, spiffe_uri=uri)
    assert f"workload certificate ({uri}, EC P-256, 1 h)" in check(report, "workload_cert_verifies")["detail"]


def test_a_cert_file_of_other_blocks_lists_them(ec_pki):
    files = ec_pki.bundle()
    files["root_cert"] = key_pem(ec_pki.int_key, "pkcs8") + key_pem(ec_pki.root_key, "sec1")
    detail = check(run(files), "root_cert_parses")["detail"]
    assert detail == ("root-cert.pem holds no PEM CERTIFICATE block (found: EC PRIVATE KEY, PRIVATE KEY); render the "
                      "certificate PEM (.Data.certificate) into it")


# ---------------------------------------------------------------------------------------------------------
# edges the mutation run found untested (issue #16 point 6)
# ---------------------------------------------------------------------------------------------------------

def test_intermediate_without_key_usage_may_sign(ec_pki):
    # No keyUsage extension at all: unrestricted, so keyCertSign is allowed (RFC 5280 4.2.1.3, Go's x509 agrees).
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no key usage")]))
            .issuer_name(ec_pki.root.subject).public_key(ec_pki.int_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - DAY).not_valid_after(NOW + 90 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ec_pki.root_key, hashes.SHA256()))
    report = run(ec_pki.bundle(intermediate=cert))
    assert report["ok"] is True, report["failed"]
    assert check(report, "ca_cert_key_cert_sign")["detail"] == \
        "'CN=no key usage' has no keyUsage extension (unrestricted, keyCertSign allowed)"


def test_a_chain_without_the_intermediate_says_so_in_its_sentence(ec_pki):
    detail = check(run(ec_pki.bundle(chain=[ec_pki.root])), "cert_chain_starts_with_ca_cert")["detail"]
    assert "'CN=meshpki test intermediate'; it does not contain the intermediate at all. Istio appends" in detail


def test_a_private_key_in_a_cert_file_is_a_sentence_of_its_own(ec_pki):
    files = ec_pki.bundle()
    files["root_cert"] += key_pem(ec_pki.root_key, "pkcs8")
    detail = check(run(files), "root_cert_parses")["detail"]
    assert "(PRIVATE KEY); keep only certificates. It contains a private key" in detail
    assert "consider the key compromised" in detail


def test_certificates_are_valid_from_their_first_second(ec_pki):
    # root and intermediate are both valid from NOW - 30 days: at that very moment Go's x509 accepts them
    # (it rejects only now < notBefore).
    start = NOW - 30 * DAY
    report = run(ec_pki.bundle(), now=start)
    assert report["ok"] is True, report["failed"]
    assert check(report, "certificates_valid_now")["detail"].startswith(
        f"at {start.strftime('%Y-%m-%dT%H:%M:%SZ')}: 'CN=meshpki test intermediate' until")


def test_outliving_two_issuers_by_the_same_time_names_the_nearest(ec_pki):
    # istio ca -> middle -> root; middle and root end together, the istio ca 35 days after both.
    mid_key = new_key("ec")
    middle = ec_pki.sign_intermediate("middle", key=mid_key, not_after=NOW + 365 * DAY)
    ca_key = new_key("ec")
    ca = make_cert("istio ca", ca_key, issuer=middle, issuer_key=mid_key, not_after=NOW + 400 * DAY)
    report = run({"ca_cert": pem(ca), "ca_key": key_pem(ca_key, "sec1"), "cert_chain": pem(ca, middle, ec_pki.root),
                  "root_cert": pem(ec_pki.root)})
    assert_fails_exactly(report, "intermediate_within_root_lifetime")
    detail = check(report, "intermediate_within_root_lifetime")["detail"]
    assert "outlives 'CN=middle' (not after" in detail and "by 35 days, 0:00:00" in detail


def test_workload_check_not_run_names_the_key_check(ec_pki):
    report = run(ec_pki.bundle(key=ec_pki.other_key))
    entry = check(report, "workload_cert_verifies")
    assert entry["skipped"] is True
    assert entry["detail"].startswith("not run: ca-key.pem does not match ca-cert.pem")
    assert "key_matches_cert" in entry["detail"]


def test_a_spiffe_id_the_workload_certificate_cannot_carry_fails_the_workload_check(ec_pki):
    uri = "spiffe://clüster.local/ns/default/sa/default"  # not an A-label: cryptography refuses the SAN
    report = run(ec_pki.bundle(), spiffe_uri=uri)
    assert_fails_exactly(report, "workload_cert_verifies")
    entry = check(report, "workload_cert_verifies")
    assert not entry.get("skipped")
    assert entry["detail"].startswith("signing a test workload certificate with ca-key.pem failed: ")
    assert "A-label" in entry["detail"]
    assert [item["name"] for item in report["checks"]] == list(CHECKS)


def test_a_workload_certificate_that_does_not_verify_against_ca_cert_fails(monkeypatch, ec_pki):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio import bundle as bundle_mod
    real = bundle_mod.signature_error

    def leaf_does_not_verify(cert, issuer):  # the leaf is the only certificate with an empty subject
        return "forced for the test" if cert.subject == x509.Name([]) else real(cert, issuer)

    monkeypatch.setattr(bundle_mod, "signature_error", leaf_does_not_verify)
    report = run(ec_pki.bundle())
    assert_fails_exactly(report, "workload_cert_verifies")
    assert [item["name"] for item in report["checks"]] == list(CHECKS)
    assert check(report, "workload_cert_verifies") == {
        "name": "workload_cert_verifies", "passed": False,
        "detail": "test workload certificate does not verify against ca-cert.pem: forced for the test"}


def test_the_throw_away_workload_certificate_looks_like_an_istio_one(pki):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import _sign_workload_cert
    uri = "spiffe://cluster.local/ns/default/sa/default"
    leaf = _sign_workload_cert(pki.intermediate, pki.int_key, NOW, uri)
    assert leaf.not_valid_before_utc == NOW - datetime.timedelta(minutes=1)  # valid at NOW, despite clock skew
    assert leaf.not_valid_after_utc == NOW + datetime.timedelta(hours=1)
    assert leaf.issuer == pki.intermediate.subject
    extensions = {ext.oid: ext for ext in leaf.extensions}
    usage = extensions[x509.KeyUsage.oid]
    assert usage.critical is True
    assert [name for name in ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
                              "key_agreement", "key_cert_sign", "crl_sign") if getattr(usage.value, name)] == [
        "digital_signature", "key_encipherment"]
    assert extensions[x509.BasicConstraints.oid].value.ca is False
    assert list(extensions[x509.ExtendedKeyUsage.oid].value) == [ExtendedKeyUsageOID.SERVER_AUTH,
                                                                 ExtendedKeyUsageOID.CLIENT_AUTH]
    san = extensions[x509.SubjectAlternativeName.oid]
    assert san.critical is True and san.value.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
    aki = extensions[x509.AuthorityKeyIdentifier.oid]
    assert aki.critical is False  # RFC 5280 4.2.1.1: conforming CAs mark it non-critical
    assert aki.value == x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.int_key.public_key())
    assert signature_error(leaf, pki.intermediate) is None


def test_read_bundle_dir_names_the_file_it_cannot_read(monkeypatch, tmp_path, ec_pki):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio import bundle as bundle_mod
    write_dir(tmp_path, ec_pki.bundle())
    unreadable = str(tmp_path / "ca-key.pem")

    def deny(path, *args, **kwargs):  # what a non-root reader of a 0600 key owned by istiod gets
        if path == unreadable:
            raise PermissionError(13, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(bundle_mod, "open", deny, raising=False)
    with pytest.raises(PemError) as info:
        read_bundle_dir(str(tmp_path))
    assert f"cannot read {unreadable!r}" in str(info.value)
    assert "Permission denied" in str(info.value)


def test_report_gives_days_left_of_chain_and_roots_at_the_given_moment(ec_pki):
    report = run(ec_pki.bundle())
    assert [info["days_left"] for info in report["certificates"]["chain"]] == [180, 365]
    assert [info["days_left"] for info in report["certificates"]["roots"]] == [365]


def test_chain_root_of_a_three_level_bundle_is_the_root(ec_pki):
    mid_key = new_key("ec")
    mid = ec_pki.sign_intermediate("middle", key=mid_key)
    ca_key = new_key("ec")
    ca = make_cert("istio ca", ca_key, issuer=mid, issuer_key=mid_key, not_after=NOW + 90 * DAY)
    report = run({"ca_cert": pem(ca), "ca_key": key_pem(ca_key, "sec1"), "cert_chain": pem(ca, mid, ec_pki.root),
                  "root_cert": pem(ec_pki.root)})
    assert report["ok"] is True, report["failed"]
    assert report["chain_root"] == {"position": 1, "subject": "CN=meshpki test root",
                                    "sha256_fingerprint": x509_mod.sha256_fingerprint(ec_pki.root)}
