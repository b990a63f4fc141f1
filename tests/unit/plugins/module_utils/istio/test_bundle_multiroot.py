# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A root-cert.pem with several roots (issue #18, root rotation A -> A+B -> B): every root a self-signed CA valid
now, the intermediate chaining to one of them by key id and signature (the old and the new root share their name),
the roots named by position and fingerprint, ``chain_root``, and ``expect_roots`` (exactly those roots)."""

import datetime

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import (
    parse_expected_roots,
    verify_bundle,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.verify import BundleInvalid, verify_ca_bundle
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    build_chain,
    load_certs,
    sha256_fingerprint,
)
from harness.certs import make_ca, make_intermediate, make_self_signed_leaf, make_workload_cert
from harness.module_stub import ModuleStub

NAME = "meshpki mesh root"  # the new root of a rotation keeps the old one's name, with a new key


class Rotation(object):
    """Root A and root B with one name and different keys, an intermediate under each (harness.certs: key ids
    set as Vault sets them)."""

    def __init__(self, a_days=365, b_days=730):
        self.a = make_ca(NAME, days=a_days)
        self.b = make_ca(NAME, days=b_days)
        self.int_a = make_intermediate(self.a, "istio intermediate", days=min(a_days, 200) - 1)
        self.int_b = make_intermediate(self.b, "istio intermediate", days=200)

    def files(self, intermediate, roots):
        root = self.a if intermediate is self.int_a else self.b
        return dict(ca_cert=intermediate.cert_pem, ca_key=intermediate.key_pem,
                    cert_chain=intermediate.cert_pem + root.cert_pem,
                    root_cert="".join(pair.cert_pem for pair in roots))


@pytest.fixture(scope="module")
def rot():
    return Rotation()


def run(files, **kwargs):
    return verify_bundle(files["ca_cert"], files["ca_key"], files["cert_chain"], files["root_cert"], **kwargs)


def check(report, name):
    return next(entry for entry in report["checks"] if entry["name"] == name)


def failed(report):
    return [c["name"] for c in report["checks"] if not c["passed"]]


def short(pair):
    return sha256_fingerprint(pair.cert)[:23]


# ---------------------------------------------------------------------------------------------------------
# A+B: both intermediates verify, the signer is told apart by key id
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signer", ["a", "b"])
@pytest.mark.parametrize("order", ["ab", "ba"])
def test_two_roots_with_one_name_chain_to_the_one_that_signed(rot, signer, order):
    intermediate = rot.int_a if signer == "a" else rot.int_b
    roots = [rot.a, rot.b] if order == "ab" else [rot.b, rot.a]
    root = rot.a if signer == "a" else rot.b
    report = run(rot.files(intermediate, roots))
    assert report["ok"] is True, failed(report)
    position = roots.index(root) + 1
    assert report["chain_root"] == {"position": position, "subject": "CN=" + NAME,
                                    "sha256_fingerprint": sha256_fingerprint(root.cert)}
    label = "'CN=%s' (#%d of root-cert.pem, SHA-256 %s...)" % (NAME, position, short(root))
    assert check(report, "chains_to_root")["detail"].endswith(
        "'CN=istio intermediate' -> %s (names and signatures verified)" % label)
    assert check(report, "workload_cert_verifies")["detail"].endswith(
        "'CN=istio intermediate' -> %s by signatures" % label)
    assert check(report, "root_cert_parses")["detail"] == (
        "root-cert.pem: 2 certificates: #1 'CN=%s' (SHA-256 %s...), #2 'CN=%s' (SHA-256 %s...)"
        % (NAME, short(roots[0]), NAME, short(roots[1])))


def test_key_id_picks_the_signing_root_first_like_go(rot):
    # Go tries the parent whose subject key id matches the child's authority key id first: no detour through the
    # namesake whose signature cannot verify, whatever the order of root-cert.pem.
    for roots in ([rot.a.cert, rot.b.cert], [rot.b.cert, rot.a.cert]):
        path, problems = build_chain(rot.int_b.cert, [], roots)
        assert path == [rot.int_b.cert, rot.b.cert] and problems == []


def test_workload_certificates_of_both_chains_verify_against_the_bundle_of_the_phases_trust_and_sign(rot):
    bundle = [rot.a.cert, rot.b.cert]
    for intermediate, root in ((rot.int_a, rot.a), (rot.int_b, rot.b)):
        leaf = make_workload_cert(intermediate)
        path, problems = build_chain(leaf.cert, [intermediate.cert], bundle)
        assert path == [leaf.cert, intermediate.cert, root.cert] and problems == []
    # after retire (B only) a workload certificate of A's chain no longer verifies, one of B's does
    leaf_a = make_workload_cert(rot.int_a)
    path, problems = build_chain(leaf_a.cert, [rot.int_a.cert], [rot.b.cert])
    assert path is None
    assert problems == ["'CN=istio intermediate' -> 'CN=%s' (root-cert.pem): signature does not verify with the "
                        "public key of 'CN=%s'" % (NAME, NAME)]


# ---------------------------------------------------------------------------------------------------------
# what makes a multi-root bundle invalid
# ---------------------------------------------------------------------------------------------------------

def test_a_root_that_is_not_a_ca_is_named_by_position(rot):
    leaf = make_self_signed_leaf()
    report = run(rot.files(rot.int_b, [rot.a, rot.b, leaf]))
    assert failed(report) == ["roots_self_signed_ca"]
    assert ("offending: 'CN=meshpki self-signed leaf' (#3 of root-cert.pem, SHA-256 %s...) (not a CA)."
            % short(leaf)) in check(report, "roots_self_signed_ca")["detail"]
    assert report["chain_root"]["position"] == 2


def test_an_expired_root_is_named_by_position_though_the_intermediate_chains_to_the_other():
    rotation = Rotation(a_days=10, b_days=730)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)
    report = run(rotation.files(rotation.int_b, [rotation.a, rotation.b]), now=later)
    assert failed(report) == ["certificates_valid_now"]
    detail = check(report, "certificates_valid_now")["detail"]
    assert "'CN=%s' (#1 of root-cert.pem, SHA-256 %s...) expired on" % (NAME, short(rotation.a)) in detail
    assert "#2 of root-cert.pem" not in detail  # the valid root is not among the problems
    assert report["chain_root"]["position"] == 2


def test_an_intermediate_that_chains_to_neither_root(rot):
    stranger = make_ca(NAME)  # same name again, a third key
    intermediate = make_intermediate(stranger, "istio intermediate")
    files = dict(ca_cert=intermediate.cert_pem, ca_key=intermediate.key_pem,
                 cert_chain=intermediate.cert_pem + stranger.cert_pem, root_cert=rot.a.cert_pem + rot.b.cert_pem)
    report = run(files)
    assert set(failed(report)) == {"chains_to_root", "intermediate_within_root_lifetime", "workload_cert_verifies"}
    assert report["chain_root"] is None and report["path"] == []
    detail = check(report, "chains_to_root")["detail"]
    for position in (1, 2):  # both namesakes were tried, each named
        assert ("'CN=istio intermediate' -> 'CN=%s' (root-cert.pem #%d): signature does not verify"
                % (NAME, position)) in detail, detail


# ---------------------------------------------------------------------------------------------------------
# expect_roots
# ---------------------------------------------------------------------------------------------------------

def fingerprint_forms(pair):
    colon = sha256_fingerprint(pair.cert)
    return [colon, colon.lower(), colon.replace(":", ""), "sha256:" + colon, " %s\n" % colon]


@pytest.mark.parametrize("form", range(5))
def test_expect_roots_exactly_the_bundle_passes_in_every_form(rot, form):
    report = run(rot.files(rot.int_a, [rot.a, rot.b]), expect_roots=[rot.a.cert_pem, fingerprint_forms(rot.b)[form]])
    assert report["ok"] is True, failed(report)
    names = [c["name"] for c in report["checks"]]
    assert names.index("roots_expected") == names.index("roots_self_signed_ca") + 1
    assert check(report, "roots_expected")["detail"] == (
        "root-cert.pem holds exactly the 2 expected root(s): 'CN=%s' (#1 of root-cert.pem, SHA-256 %s...), "
        "'CN=%s' (#2 of root-cert.pem, SHA-256 %s...)" % (NAME, short(rot.a), NAME, short(rot.b)))


def test_expect_roots_one_pem_text_may_hold_both(rot):
    report = run(rot.files(rot.int_b, [rot.b, rot.a]), expect_roots=[rot.a.cert_pem + rot.b.cert_pem])
    assert report["ok"] is True, failed(report)


def test_expect_roots_names_the_missing_root(rot):
    # retire not reached yet on this cluster: expected B only, A+B rendered ... and the other way round
    report = run(rot.files(rot.int_b, [rot.b]), expect_roots=[rot.a.cert_pem, rot.b.cert_pem])
    assert failed(report) == ["roots_expected"]
    assert check(report, "roots_expected")["detail"].startswith(
        "root-cert.pem does not hold exactly the 2 expected root(s) - missing 1: 'CN=%s' (SHA-256 %s). "
        % (NAME, sha256_fingerprint(rot.a.cert)))


def test_expect_roots_names_the_extra_root(rot):
    report = run(rot.files(rot.int_b, [rot.a, rot.b]), expect_roots=[sha256_fingerprint(rot.b.cert)])
    assert failed(report) == ["roots_expected"]
    assert check(report, "roots_expected")["detail"].startswith(
        "root-cert.pem does not hold exactly the 1 expected root(s) - not expected 1: 'CN=%s' (#1 of "
        "root-cert.pem, SHA-256 %s...) (SHA-256 %s)" % (NAME, short(rot.a), sha256_fingerprint(rot.a.cert)))


def test_expect_roots_missing_and_extra_given_as_a_fingerprint(rot):
    other = make_ca("another root")
    report = run(rot.files(rot.int_a, [rot.a, rot.b]),
                 expect_roots=[rot.a.cert_pem, sha256_fingerprint(other.cert)])
    detail = check(report, "roots_expected")["detail"]
    assert "missing 1: a root (SHA-256 %s); not expected 1: 'CN=%s' (#2 of root-cert.pem" % (
        sha256_fingerprint(other.cert), NAME) in detail


def test_expect_roots_is_skipped_when_root_cert_does_not_parse(rot):
    files = dict(rot.files(rot.int_a, [rot.a]), root_cert="")
    report = run(files, expect_roots=[rot.a.cert_pem])
    entry = check(report, "roots_expected")
    assert entry["skipped"] is True and entry["passed"] is False


def test_without_expect_roots_there_is_no_such_check(rot):
    report = run(rot.files(rot.int_a, [rot.a, rot.b]))
    assert "roots_expected" not in [c["name"] for c in report["checks"]]
    assert report["ok"] is True and report["chain_root"]["position"] == 1


@pytest.mark.parametrize("entries, message", [
    ([], "expect_roots is an empty list"),
    (["AB:CD"], "expect_roots entry #1 ('AB:CD') is neither a PEM certificate nor a SHA-256 fingerprint"),
    (["zz" * 32], "is neither a PEM certificate nor a SHA-256 fingerprint"),
    (["-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"], "expect_roots entry #1: "),
    (["-----BEGIN CERTIFICATE-----\n"], "expect_roots entry #1 holds no complete PEM CERTIFICATE block"),
])
def test_bad_expect_roots_entries_are_refused(entries, message):
    with pytest.raises(PemError) as err:
        parse_expected_roots(entries)
    assert message in str(err.value)


def test_a_key_in_expect_roots_is_refused(rot):
    with pytest.raises(PemError, match="entry #2 holds PEM blocks other than certificates"):
        parse_expected_roots([rot.a.cert_pem, rot.a.cert_pem + rot.a.key_pem])


def test_parse_expected_roots_normalises_fingerprints(rot):
    colon = sha256_fingerprint(rot.a.cert)
    parsed = parse_expected_roots([colon.lower().replace(":", ""), rot.b.cert_pem])
    assert parsed == [(colon, None), (sha256_fingerprint(rot.b.cert), "'CN=%s'" % NAME)]
    assert [sha256_fingerprint(c) for c in load_certs(rot.b.cert_pem)] == [parsed[1][0]]


# ---------------------------------------------------------------------------------------------------------
# the module's task
# ---------------------------------------------------------------------------------------------------------

def params(**overrides):
    values = dict(path=None, ca_cert_pem=None, ca_key_pem=None, cert_chain_pem=None, root_cert_pem=None,
                  vault_paths=None, read_with_policy=None, policy_check="token", auth_role=None, min_days_left=None,
                  expect_roots=None)
    values.update(overrides)
    return values


def pem_params(files, **overrides):
    return params(ca_cert_pem=files["ca_cert"], ca_key_pem=files["ca_key"], cert_chain_pem=files["cert_chain"],
                  root_cert_pem=files["root_cert"], **overrides)


def test_task_returns_chain_root_and_fails_on_unexpected_roots(rot):
    files = rot.files(rot.int_b, [rot.a, rot.b])
    result = verify_ca_bundle(ModuleStub(pem_params(files, expect_roots=[rot.a.cert_pem, rot.b.cert_pem])))
    assert result["valid"] is True and result["chain_root"]["position"] == 2
    with pytest.raises(BundleInvalid) as err:
        verify_ca_bundle(ModuleStub(pem_params(files, expect_roots=[rot.b.cert_pem])))
    assert err.value.details["failed_checks"] == ["roots_expected"]
    assert "roots_expected: root-cert.pem does not hold exactly the 1 expected root(s) - not expected 1" in str(
        err.value)


def test_task_refuses_bad_expect_roots_before_reading_vault():
    module = ModuleStub(params(vault_paths={"intermediate_mount": "istioca", "root_mount": "pki",
                                            "kv_mount": "secret", "kv_path": "istioca", "kv_field": "ca-key.pem"},
                               expect_roots=["not a fingerprint"]))
    with pytest.raises(MeshPkiError) as err:
        verify_ca_bundle(module)  # a ModuleStub without a client: any login would be an AssertionError
    assert str(err.value).startswith("Invalid expect_roots: expect_roots entry #1 ('not a fingerprint')")
    assert str(err.value).endswith("Nothing was read.") and module.logins == 0
