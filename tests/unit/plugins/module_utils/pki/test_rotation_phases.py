# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every phase of the root rotation (pki/rotation.py) against the strict fake Vault, written for the mutation run
of issue #16 point 6: the request bodies each phase sends (the new root's request, the whole record, the default
issuer), the gates at their exact boundaries, the verdicts of a run that waits, and what the result reports.
test_rotation.py holds the first tests of the engine; this file the rest (kept apart so that changes to both merge
cleanly)."""

import datetime

import hvac.exceptions as hvac_exc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import summary
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.rotation import (
    Record,
    Rotation,
    RotationRequest,
    common_name,
    manage_root_rotation,
    parse_time,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import KvSecret
from harness.certs import make_ca, make_intermediate
from harness.fake_vault import FakeVault

NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.timezone.utc)
A, B, C = make_ca("root A"), make_ca("root B"), make_ca("root C")
# Issuer ids longer than the 8 characters the new root's name takes of the old one's.
AID, BID, CID = "aaaaaaaa-1111-2222", "bbbbbbbb-3333-4444", "cccccccc-5555-6666"
RECORD = "secret/data/pki-trust"
TRUST_AT = "2026-12-07T10:30:00Z"
DAY_AND_HOUR = datetime.timedelta(hours=25)  # workload_cert_ttl 24h + margin 1h


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def serial(pair):
    return summary(pair.cert)["serial"]


def issuer(issuer_id, pair, key_id=None):
    return {"data": {"issuer_id": issuer_id, "certificate": pem(pair.cert),
                     "key_id": "k-" + issuer_id if key_id is None else key_id, "ca_chain": [pem(pair.cert)]}}


def params(**more):
    values = dict(root_mount="pki", kv_mount="secret", trust_bundle_path="pki-trust", rotation="advance",
                  workload_cert_ttl="24h", margin="1h", common_name=None, key_type=None, key_bits=None,
                  root_ttl=None, clusters=[{"name": "east", "intermediate_mount": "istioca-east", "verified": True}])
    values.update(more)
    return values


def secret(record, version):
    return {"data": {"data": record, "metadata": {"version": version}}}


def vault(record=None, default=AID, after=None, version=4, intermediate=None):
    """The fake Vault: the record (``after``: what the read after the writes finds), the root mount with A, B, C."""
    answers = {("GET", "sys/mounts"): {"data": {"secret/": {"type": "kv", "options": {"version": "2"}}}},
               ("GET", "pki/config/issuers"): {"data": {"default": default}},
               ("GET", "pki/issuer/" + AID): issuer(AID, A), ("GET", "pki/issuer/" + BID): issuer(BID, B),
               ("GET", "pki/issuer/" + CID): issuer(CID, C)}
    if record is not None:
        answers[("GET", RECORD)] = [secret(record, version)] + ([secret(after, version + 1)] if after else [])
    if intermediate is not None:
        answers[("GET", "istioca-east/config/issuers")] = {"data": {"default": "i"}}
        answers[("GET", "istioca-east/issuer/i")] = {"data": {"issuer_id": "i", "certificate": pem(
            intermediate.cert), "key_id": "ki", "ca_chain": [pem(intermediate.cert)]}}
    fake = FakeVault(answers, strict_writes=True)
    fake.answers[("POST", RECORD)] = {"data": {"version": version + 1}}
    fake.answers[("POST", "pki/config/issuers")] = {}
    return fake


def engine(fake, check_mode=False, now=NOW, **more):
    return Rotation(RotationRequest(params(**more)), fake, check_mode, now=now)


def run(fake, check_mode=False, now=NOW, **more):
    return engine(fake, check_mode, now, **more).run()


def one_root(pair=A, issuer_id=AID, **more):
    return dict({"root-cert.pem": pem(pair.cert), "trusted": issuer_id}, **more)


def trust_record(**more):
    record = {"root-cert.pem": pem(A.cert) + pem(B.cert), "phase": "trust", "old_issuer_id": AID,
              "new_issuer_id": BID, "new_issuer_name": "rotation-aaaaaaaa-4", "trusted": AID + "," + BID,
              "signer": AID, "trust_at": TRUST_AT, "next_phase_at": "2026-12-07T11:30:00Z"}
    record.update(more)
    return record


def sign_record(**more):
    return trust_record(**dict(dict(phase="sign", signer=BID, sign_at="2026-12-07T11:30:00Z"), **more))


def record_written(fake):
    return fake.body("POST", RECORD)


def issued(intermediate):
    """When Vault issued ``intermediate``: its notBefore + the 30 s Vault backdates it by."""
    return intermediate.cert.not_valid_before_utc + datetime.timedelta(seconds=30)


def iso(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------------
# start -> trust
# ---------------------------------------------------------------------------------------------------------

def test_start_generates_the_new_root_like_the_old_one_and_records_both_roots():
    fake = vault(one_root(), after=trust_record())
    fake.answers[("LIST", "pki/issuers")] = {"data": {"keys": [AID], "key_info": {AID: {"issuer_name": "first"}}}}
    fake.answers[("POST", "pki/root/rotate/internal")] = {"data": {"issuer_id": BID}, "warnings": [
        "the new root expires before the old one"]}
    rotation = engine(fake)
    result = rotation.run()
    assert fake.writes() == [("POST", "pki/root/rotate/internal"), ("POST", RECORD)]
    assert fake.body("POST", "pki/root/rotate/internal") == {
        "common_name": "root A", "key_type": "ec", "key_bits": 256, "issuer_name": "rotation-aaaaaaaa-5"}
    assert rotation.warnings == ["the new root expires before the old one"]
    assert record_written(fake) == {"options": {"cas": 4}, "data": {
        "root-cert.pem": pem(A.cert) + pem(B.cert), "trusted": AID + "," + BID, "phase": "trust",
        "old_issuer_id": AID, "new_issuer_id": BID, "new_issuer_name": "rotation-aaaaaaaa-5", "signer": AID,
        "trust_at": "2026-12-07T12:00:00Z", "sign_at": "", "retire_at": "", "aborted_at": "",
        "next_phase_at": "2026-12-07T13:00:00Z"}}
    assert result["changed"] is True and result["advanced"] is True
    assert result["phase"] == "trust" and result["previous_phase"] == "none"
    assert result["next_phase_at"] == "2026-12-07T13:00:00Z" and result["waiting_for"] == []
    assert result["message"] == "Advanced to phase 'trust'."
    assert [root["issuer_id"] for root in result["roots"]] == [AID, BID]
    assert result["roots"][1]["certificate"] == pem(B.cert) and result["roots"][1]["serial"] == serial(B)
    assert result["signer_issuer_id"] == AID and result["writes"] == ["pki/root/rotate/internal", RECORD]
    assert result["clusters"] == [{"name": "east", "phase": "trust", "verified": True,
                                   "roots": [serial(A), serial(B)], "signing_chain": None,
                                   "next_phase_at": "2026-12-07T13:00:00Z"}]
    assert result["diff"]["before"] == {"trusted": AID, "roots": [serial(A)], "default_issuer": AID}
    assert result["diff"]["after"]["phase"] == "trust" and result["diff"]["after"]["roots"] == [serial(A), serial(B)]
    assert result["diff"]["after"]["default_issuer"] == AID  # B signs only from the sign phase on
    header = "secret/pki-trust (root rotation record)"
    assert result["diff"]["before_header"] == result["diff"]["after_header"] == header


def test_start_takes_the_requested_name_key_and_ttl():
    fake = vault(one_root(), after=trust_record())
    fake.answers[("POST", "pki/root/rotate/internal")] = {"data": {"issuer_id": BID}}
    run(fake, rotation="start", common_name="mesh root 2027", key_type="rsa", key_bits=4096, root_ttl="87600h")
    assert fake.body("POST", "pki/root/rotate/internal") == {
        "common_name": "mesh root 2027", "key_type": "rsa", "key_bits": 4096, "issuer_name": "rotation-aaaaaaaa-5",
        "ttl": "315360000s"}


def test_start_in_check_mode_lists_both_writes_and_sends_none():
    fake = vault(one_root())
    result = run(fake, check_mode=True, rotation="start")
    assert fake.writes() == []
    assert result["changed"] is True and result["phase"] == "trust" and result["advanced"] is True
    assert result["writes"] == ["pki/root/rotate/internal", RECORD]
    after = result["diff"]["after"]
    assert after["phase"] == "trust" and after["old_issuer_id"] == AID and after["default_issuer"] == AID
    assert after["writes"] == ["pki/root/rotate/internal", RECORD] and len(after["roots"]) == 2
    assert after["roots"][0] == serial(A)


def test_start_resumes_with_the_new_root_a_killed_run_generated():
    fake = vault(one_root(), after=trust_record())
    fake.answers[("LIST", "pki/issuers")] = {"data": {"key_info": {
        AID: {"issuer_name": "first"}, BID: {"issuer_name": "rotation-aaaaaaaa-5"}}}}
    result = run(fake)
    assert fake.writes() == [("POST", RECORD)]  # no second new root
    assert record_written(fake)["data"]["new_issuer_id"] == BID and result["phase"] == "trust"


@pytest.mark.parametrize("named, key_id", [(AID, None), (BID, "")], ids=["the-current-root", "no-key-in-vault"])
def test_an_issuer_of_the_new_roots_name_that_cannot_be_it_is_refused(named, key_id):
    fake = vault(one_root())
    fake.answers[("GET", "pki/issuer/" + BID)] = issuer(BID, B, key_id)
    fake.answers[("LIST", "pki/issuers")] = {"data": {"key_info": {named: {"issuer_name": "rotation-aaaaaaaa-5"}}}}
    with pytest.raises(MeshPkiError, match="'rotation-aaaaaaaa-5' in 'pki'"):
        run(fake)
    assert fake.writes() == []


def test_a_cluster_that_did_not_verify_without_a_reason_blocks_the_start():
    fake = vault(one_root())
    result = run(fake, clusters=[{"name": "west", "intermediate_mount": None, "verified": False}])
    assert result["waiting_for"] == ["cluster west did not verify"] and fake.writes() == []
    assert result["message"] == "Phase 'none': waiting for cluster west did not verify."
    assert result["clusters"][0]["phase"] == "none" and result["clusters"][0]["verified"] is False
    assert result["next_phase_at"] is None and result["changed"] is False


@pytest.mark.parametrize("last", [
    one_root(B, BID, phase="retire", old_issuer_id=AID, new_issuer_id=BID, signer=BID,
             retire_at="2026-12-01T00:00:00Z"),
    one_root(B, BID, phase="aborted", old_issuer_id=BID, new_issuer_id=AID, signer=BID,
             aborted_at="2026-12-01T00:00:00Z"),
], ids=["after-retire", "after-abort"])
def test_start_after_a_finished_rotation_rotates_again(last):
    fake = vault(last, default=BID, version=9, after=trust_record())
    fake.answers[("POST", "pki/root/rotate/internal")] = {"data": {"issuer_id": CID}}
    result = run(fake, rotation="start")
    assert fake.body("POST", "pki/root/rotate/internal")["issuer_name"] == "rotation-bbbbbbbb-10"
    data = record_written(fake)["data"]
    assert (data["phase"], data["old_issuer_id"], data["new_issuer_id"], data["trusted"]) == (
        "trust", BID, CID, BID + "," + CID)
    assert data["retire_at"] == data["aborted_at"] == data["sign_at"] == ""
    assert data["root-cert.pem"] == pem(B.cert) + pem(C.cert) and result["advanced"] is True


@pytest.mark.parametrize("phase, field", [("retire", "retire_at"), ("aborted", "aborted_at")])
def test_advance_after_a_finished_rotation_waits_for_start(phase, field):
    fake = vault(one_root(B, BID, phase=phase, signer=BID, **{field: "2026-12-01T00:00:00Z"}), default=BID)
    result = run(fake)
    assert fake.writes() == [] and result["advanced"] is False and result["phase"] == phase
    assert result["waiting_for"] == ["no rotation in progress: the last one ended with '%s' at 2026-12-01T00:00:00Z; "
                                     "run with rotation=start (-e istio_vault_ca_root_rotation=start) to rotate "
                                     "again" % phase]


def test_start_while_a_rotation_is_in_progress_does_not_make_another_root():
    fake = vault(trust_record())
    result = run(fake, rotation="start", now=datetime.datetime(2026, 12, 7, 11, 0, tzinfo=datetime.timezone.utc))
    assert fake.writes() == [] and result["phase"] == "trust" and "LIST" not in [r.method for r in fake.requests]


# ---------------------------------------------------------------------------------------------------------
# trust -> sign
# ---------------------------------------------------------------------------------------------------------

def test_trust_advances_when_the_margin_has_just_passed():
    fake = vault(trust_record(), after=sign_record())
    now = datetime.datetime(2026, 12, 7, 11, 30, tzinfo=datetime.timezone.utc)  # trust_at + margin exactly
    result = run(fake, now=now)
    assert record_written(fake) == {"options": {"cas": 4}, "data": dict(
        trust_record(), phase="sign", signer=BID, sign_at="2026-12-07T11:30:00Z",
        next_phase_at="2026-12-08T12:30:00Z")}
    assert fake.body("POST", "pki/config/issuers") == {"default": BID}
    assert result["phase"] == "sign" and result["next_phase_at"] == "2026-12-08T12:30:00Z"
    assert result["previous_phase"] == "trust" and result["record"]["phase"] == "sign"


def test_trust_one_second_before_the_margin_waits_until_it_ends():
    fake = vault(trust_record())
    result = run(fake, now=datetime.datetime(2026, 12, 7, 11, 29, 59, tzinfo=datetime.timezone.utc))
    assert fake.writes() == [] and result["next_phase_at"] == "2026-12-07T11:30:00Z"
    assert result["waiting_for"][0].startswith("margin 1h after the trust phase began (2026-12-07T10:30:00Z)")


def test_trust_with_a_cluster_that_did_not_verify_waits_after_the_margin_too():
    fake = vault(trust_record())
    result = run(fake, clusters=[{"name": "west", "intermediate_mount": None, "verified": False, "problem": "x"}])
    assert fake.writes() == [] and result["waiting_for"] == ["cluster west did not verify: x"]
    assert result["message"] == "Phase 'trust': waiting for cluster west did not verify: x (not before " \
                                "2026-12-07T11:30:00Z)."


# ---------------------------------------------------------------------------------------------------------
# sign -> retire
# ---------------------------------------------------------------------------------------------------------

def test_sign_retires_the_old_root_when_the_last_intermediate_is_old_enough():
    intermediate = make_intermediate(B)
    now = issued(intermediate) + DAY_AND_HOUR  # exactly workload_cert_ttl + margin after it was issued
    fake = vault(sign_record(sign_at="2026-01-01T00:00:00Z"), default=BID, intermediate=intermediate,
                 after=one_root(B, BID, phase="retire"))
    result = run(fake, now=now)
    assert record_written(fake) == {"options": {"cas": 4}, "data": dict(
        sign_record(sign_at="2026-01-01T00:00:00Z"), phase="retire", trusted=BID, retire_at=iso(now),
        next_phase_at="", **{"root-cert.pem": pem(B.cert)})}
    assert fake.writes() == [("POST", RECORD)]
    assert result["phase"] == "retire" and result["next_phase_at"] is None and result["advanced"] is True
    assert result["clusters"][0]["signing_chain"] == "%s -> %s" % (serial(intermediate), serial(B))


def test_sign_waits_for_the_workload_certificates_of_the_last_intermediate():
    intermediate = make_intermediate(B)
    until = issued(intermediate) + DAY_AND_HOUR
    fake = vault(sign_record(sign_at="2026-01-01T00:00:00Z"), default=BID, intermediate=intermediate)
    result = run(fake, now=until - datetime.timedelta(seconds=1))
    assert fake.writes() == [] and result["next_phase_at"] == iso(until)
    assert result["waiting_for"] == [
        "workload certificates of the previous chain may live until %s (workload_cert_ttl 24h (1.0 days) + margin "
        "1h after the last cluster's intermediate changed, %s)" % (iso(until), iso(issued(intermediate)))]


def test_sign_counts_from_sign_at_when_the_phase_began_after_the_intermediate():
    intermediate = make_intermediate(B)
    sign_at = issued(intermediate) + datetime.timedelta(hours=2)
    fake = vault(sign_record(sign_at=iso(sign_at)), default=BID, intermediate=intermediate)
    result = run(fake, now=sign_at + DAY_AND_HOUR - datetime.timedelta(seconds=1))
    assert fake.writes() == [] and result["next_phase_at"] == iso(sign_at + DAY_AND_HOUR)


def test_sign_without_sign_at_counts_from_the_intermediate():
    intermediate = make_intermediate(B)
    fake = vault(sign_record(sign_at=""), default=BID, intermediate=intermediate, after=one_root(B, BID))
    result = run(fake, now=issued(intermediate) + DAY_AND_HOUR)
    assert result["phase"] == "retire"


def test_sign_with_a_cluster_without_an_intermediate_waits_and_names_it():
    fake = vault(sign_record(), default=BID)
    fake.answers[("GET", "istioca-east/issuer/default")] = 404
    result = run(fake, clusters=[{"name": "east", "intermediate_mount": "istioca-east", "verified": True},
                                 {"name": "west", "intermediate_mount": None, "verified": True}])
    assert fake.writes() == [] and result["next_phase_at"] is None
    assert result["waiting_for"] == [
        "cluster east: its intermediate (none) is not signed by %s yet" % serial(B),
        "cluster west: its intermediate (none) is not signed by %s yet" % serial(B)]
    assert [c["signing_chain"] for c in result["clusters"]] == [None, None]


def test_sign_waiting_for_an_intermediate_of_the_old_root_names_its_serial():
    intermediate = make_intermediate(A)
    fake = vault(sign_record(), default=BID, intermediate=intermediate)
    result = run(fake)
    assert result["waiting_for"] == ["cluster east: its intermediate (%s) is not signed by %s yet" % (
        serial(intermediate), serial(B))]
    assert result["clusters"][0]["signing_chain"] == "%s -> %s" % (serial(intermediate), serial(A))


def test_an_intermediate_of_no_trusted_root_is_reported_so():
    intermediate = make_intermediate(C)
    fake = vault(sign_record(), default=BID, intermediate=intermediate)
    result = run(fake)
    assert result["clusters"][0]["signing_chain"] == "%s -> (no trusted root)" % serial(intermediate)


def test_an_intermediate_mount_vault_refuses_to_read_fails_the_run():
    fake = vault(sign_record(), default=BID)
    fake.answers[("GET", "istioca-east/issuer/default")] = 403
    with pytest.raises(MeshPkiError, match="istioca-east/issuer/default"):
        run(fake)


def test_an_intermediate_mount_vault_calls_a_bad_request_has_no_intermediate():
    fake = vault(sign_record(), default=BID)
    fake.answers[("GET", "istioca-east/issuer/default")] = 400
    result = run(fake)
    assert result["waiting_for"][0].startswith("cluster east: its intermediate (none)")


# ---------------------------------------------------------------------------------------------------------
# abort
# ---------------------------------------------------------------------------------------------------------

def test_abort_from_trust_drops_the_new_root_from_the_bundle():
    fake = vault(trust_record(), after=one_root(phase="aborted"))
    result = run(fake, rotation="abort")
    assert fake.writes() == [("POST", RECORD)]
    assert record_written(fake)["data"] == dict(trust_record(), phase="aborted", trusted=AID, signer=AID,
                                                aborted_at="2026-12-07T12:00:00Z", next_phase_at="",
                                                **{"root-cert.pem": pem(A.cert)})
    assert result["phase"] == "aborted" and result["advanced"] is True and result["next_phase_at"] is None


def test_abort_from_sign_moves_the_default_back_after_the_record():
    fake = vault(sign_record(), default=BID, after=sign_record(phase="aborted", signer=AID))
    result = run(fake, rotation="abort")
    assert fake.writes() == [("POST", RECORD), ("POST", "pki/config/issuers")]
    assert fake.body("POST", "pki/config/issuers") == {"default": AID}
    assert record_written(fake)["data"] == dict(sign_record(), phase="aborted", signer=AID,
                                                aborted_at="2026-12-07T12:00:00Z",
                                                next_phase_at="2026-12-08T13:00:00Z")
    assert result["phase"] == "aborted" and result["next_phase_at"] == "2026-12-08T13:00:00Z"


@pytest.mark.parametrize("mode", ["abort", "advance"])
def test_after_an_abort_from_sign_the_new_root_leaves_the_bundle_once_drained(mode):
    intermediate = make_intermediate(A)
    record = sign_record(phase="aborted", signer=AID, aborted_at="2026-01-01T00:00:00Z")
    fake = vault(record, intermediate=intermediate, after=one_root(phase="aborted"))
    result = run(fake, rotation=mode, now=issued(intermediate) + DAY_AND_HOUR)
    assert fake.writes() == [("POST", RECORD)]
    assert record_written(fake)["data"] == dict(record, trusted=AID, next_phase_at="",
                                                **{"root-cert.pem": pem(A.cert)})
    assert result["phase"] == "aborted" and result["advanced"] is True


@pytest.mark.parametrize("mode", ["abort", "advance"])
def test_after_an_abort_from_sign_the_bundle_keeps_both_roots_until_drained(mode):
    intermediate = make_intermediate(A)
    record = sign_record(phase="aborted", signer=AID, aborted_at="2026-01-01T00:00:00Z")
    fake = vault(record, intermediate=intermediate)
    until = issued(intermediate) + DAY_AND_HOUR
    result = run(fake, rotation=mode, now=until - datetime.timedelta(seconds=1))
    assert fake.writes() == [] and result["next_phase_at"] == iso(until) and result["advanced"] is False


def test_after_an_abort_a_cluster_that_did_not_verify_holds_the_bundle():
    intermediate = make_intermediate(A)
    record = sign_record(phase="aborted", signer=AID, aborted_at="2026-01-01T00:00:00Z")
    fake = vault(record, intermediate=intermediate)
    result = run(fake, rotation="abort", now=issued(intermediate) + DAY_AND_HOUR, clusters=[
        {"name": "east", "intermediate_mount": "istioca-east", "verified": False}])
    assert fake.writes() == [] and result["waiting_for"] == ["cluster east did not verify"]


def test_abort_without_a_rotation_says_so_and_writes_nothing():
    fake = vault(one_root())
    result = run(fake, rotation="abort")
    assert fake.writes() == [] and result["waiting_for"] == ["no rotation in progress, nothing to abort"]
    assert result["message"] == "Phase 'none': waiting for no rotation in progress, nothing to abort."


def test_abort_after_retire_names_the_old_root():
    fake = vault(one_root(B, BID, phase="retire", old_issuer_id=AID, signer=BID, retire_at="2026-12-01T00:00:00Z"),
                 default=BID)
    with pytest.raises(MeshPkiError) as caught:
        run(fake, rotation="abort")
    assert "'pki'" in str(caught.value) and AID in str(caught.value) and "2026-12-01T00:00:00Z" in str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# converging to the record (a killed run), hold
# ---------------------------------------------------------------------------------------------------------

def test_a_bundle_that_lost_a_root_is_rewritten_from_the_record_and_the_run_stops():
    fake = vault(trust_record(**{"root-cert.pem": pem(A.cert)}), after=trust_record())
    result = run(fake)
    assert fake.writes() == [("POST", RECORD)]
    assert record_written(fake)["data"] == trust_record()
    assert result["advanced"] is False and result["phase"] == "trust"
    assert result["waiting_for"] == ["this run completed the phase 'trust' an earlier run started (%s); the next run "
                                     "checks the gate" % RECORD]


def test_hold_in_a_consistent_phase_writes_nothing():
    fake = vault(trust_record())
    result = run(fake, rotation="hold", clusters=[])
    assert fake.writes() == [] and result["changed"] is False and result["waiting_for"] == []
    assert result["message"] == "Phase 'trust': nothing to do."
    assert result["diff"]["after"] == result["diff"]["before"]


@pytest.mark.parametrize("record, signer", [
    (one_root(signer=BID, phase="retire"), AID),
    (one_root(B, BID), ""),
    (one_root(trusted=BID), ""),
], ids=["stale-signer", "another-bundle", "another-trusted"])
def test_no_rotation_the_record_follows_the_default_issuer(record, signer):
    fake = vault(record, after=one_root())
    result = run(fake, rotation="hold", clusters=[])
    data = record_written(fake)["data"]
    assert (data["trusted"], data["signer"], data["root-cert.pem"]) == (AID, signer, pem(A.cert))
    assert result["changed"] is True and "completed the phase" in result["waiting_for"][0]


def test_the_signer_the_record_names_is_read_before_the_default_moves():
    fake = vault(sign_record())
    del fake.answers[("GET", "pki/issuer/" + BID)]
    with pytest.raises(MeshPkiError) as caught:
        run(fake)
    assert BID in str(caught.value) and "secret/pki-trust" in str(caught.value) and "'pki'" in str(caught.value)
    assert fake.writes() == []


def test_a_root_mount_without_a_root_fails_naming_it():
    fake = vault(one_root(), default="")
    with pytest.raises(MeshPkiError, match="'pki'"):
        run(fake)


def test_another_writer_of_the_record_fails_the_run():
    fake = vault(trust_record())
    fake.answers[("POST", RECORD)] = hvac_exc.InvalidRequest(
        "check-and-set parameter did not match the current version", errors=[
            "check-and-set parameter did not match the current version"], method="POST", url=RECORD)
    with pytest.raises(MeshPkiError) as caught:
        run(fake)
    assert "secret/pki-trust" in str(caught.value) and "at a time" in str(caught.value)
    assert fake.writes() == [("POST", RECORD)]


def test_a_fresh_vault_gets_the_kv_mount_and_check_mode_only_lists_it():
    checked = vault()
    checked.answers[("GET", "sys/mounts")] = {"data": {}}
    result = run(checked, check_mode=True, rotation="hold", clusters=[])
    assert checked.writes() == [] and result["writes"] == ["sys/mounts/secret", RECORD]
    applied = vault(after=one_root())
    applied.answers[("GET", "sys/mounts")] = {"data": {}}
    applied.answers[("POST", "sys/mounts/secret")] = None
    applied.answers[("GET", RECORD)] = [404, secret(one_root(), 1)]
    run(applied, rotation="hold", clusters=[])
    assert applied.writes() == [("POST", "sys/mounts/secret"), ("POST", RECORD)]
    assert applied.body("POST", "sys/mounts/secret")["options"] == {"version": "2"}


def test_manage_root_rotation_passes_vault_warnings_to_the_module():
    class Module(object):
        check_mode = False

        def __init__(self, fake):
            self.params = params(rotation="start")
            self.fake = fake
            self.warnings = []

        def get_authenticated_client(self):
            return self.fake

        def warn(self, text):
            self.warnings.append(text)

    fake = vault(one_root(), after=trust_record())
    fake.answers[("POST", "pki/root/rotate/internal")] = {"data": {"issuer_id": BID}, "warnings": ["heads up"]}
    module = Module(fake)
    result = manage_root_rotation(module)
    assert module.warnings == ["heads up"] and result["phase"] == "trust"


# ---------------------------------------------------------------------------------------------------------
# the request, the record, small helpers
# ---------------------------------------------------------------------------------------------------------

def test_the_request_validates_and_converts_the_options():
    request = RotationRequest(params(key_type="rsa", root_ttl="1h", clusters=[
        {"name": "east", "intermediate_mount": "istioca-east", "verified": True, "problem": None},
        {"name": "west", "intermediate_mount": None, "verified": False}]))
    assert (request.key_type, request.key_bits, request.root_ttl) == ("rsa", 2048, 3600)
    assert (request.ttl, request.margin, request.path) == (86400, 3600, "pki-trust")
    assert request.clusters == [dict(name="east", mount="istioca-east", verified=True, problem=""),
                                dict(name="west", mount=None, verified=False, problem="")]
    assert RotationRequest(params(rotation="hold", clusters=None)).clusters == []


@pytest.mark.parametrize("options, named", [
    (dict(trust_bundle_path=None), "trust_bundle_path"),
    (dict(trust_bundle_path="bad path/"), "trust_bundle_path"),
    (dict(clusters=[{"name": "x", "intermediate_mount": "no such/mount", "verified": True}]),
     r"clusters\[0\].intermediate_mount"),
    (dict(rotation="start", clusters=[]), "rotation=start"),
    (dict(margin="soon"), "margin"),
    (dict(key_type="dsa"), "dsa"),
])
def test_the_request_names_the_option_in_error(options, named):
    with pytest.raises(MeshPkiError, match=named):
        RotationRequest(params(**options))


def test_common_name_of_a_root_without_one_and_parse_time():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no cn")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + DAY_AND_HOUR)
            .sign(key, hashes.SHA256()))
    assert common_name(cert) == "root" and common_name(A.cert) == "root A"
    assert parse_time("") is None and parse_time(None) is None
    assert parse_time("2026-12-07T10:30:00Z") == datetime.datetime(2026, 12, 7, 10, 30, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("fields, active", [
    (dict(phase="trust", trusted=AID + "," + BID), True),
    (dict(phase="sign", trusted=AID + "," + BID), True),
    (dict(phase="aborted", trusted=AID + "," + BID), True),
    (dict(phase="aborted", trusted=AID), False),
    (dict(phase="retire", trusted=BID), False),
    (dict(phase="", trusted=AID), False),
])
def test_a_rotation_is_in_progress_in_trust_sign_and_an_abort_with_both_roots(fields, active):
    assert Record(KvSecret("secret", "pki-trust", fields, 1, 1)).active is active


def test_the_record_reads_missing_fields_as_empty_and_refuses_others():
    record = Record(KvSecret("secret", "pki-trust", {"trusted": AID + ",," + BID, "phase": None}, 1, 1))
    assert record.phase == "" and record.trusted_ids == [AID, BID] and record.bundle == ""
    with pytest.raises(AttributeError):
        record.no_such_field  # noqa: B018 - the attribute access is the test


# ---------------------------------------------------------------------------------------------------------
# the survivors of the first mutation sample (issue 16 point 6)
# ---------------------------------------------------------------------------------------------------------

def key_text(pair):
    return pair.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()


def test_an_invalid_root_ttl_is_named():
    with pytest.raises(MeshPkiError, match="root_ttl"):
        RotationRequest(params(root_ttl="soon"))


@pytest.mark.parametrize("more, named", [
    (dict(key_type="rsa", key_bits=4096), "key_type, key_bits"),
    (dict(root_ttl="87600h"), "root_ttl"),
])
def test_with_pem_bundle_every_option_of_a_generated_root_is_refused_by_name(more, named):
    with pytest.raises(MeshPkiError, match=named):
        RotationRequest(params(pem_bundle=pem(B.cert) + key_text(B), **more))


def test_a_refused_generation_names_what_it_was_doing():
    fake = vault(one_root())
    fake.answers[("POST", "pki/root/rotate/internal")] = 403
    with pytest.raises(MeshPkiError) as caught:
        run(fake, rotation="start")
    assert "generate the new root" in str(caught.value) and "pki/root/rotate/internal" in str(caught.value)
    assert fake.writes() == [("POST", "pki/root/rotate/internal")]  # the record is not written


def test_the_kv_mount_a_fresh_vault_gets_says_who_made_it():
    applied = vault(after=one_root())
    applied.answers[("GET", "sys/mounts")] = {"data": {}}
    applied.answers[("POST", "sys/mounts/secret")] = None
    applied.answers[("GET", RECORD)] = [404, secret(one_root(), 1)]
    run(applied, rotation="hold", clusters=[])
    body = applied.body("POST", "sys/mounts/secret")
    assert body["type"] == "kv" and "meshpki.vault_ca" in body["description"]


def test_the_result_names_the_signer_vault_holds_after_the_writes():
    """A run that wrote reads the default issuer again: the result says what Vault holds (here another run moved it
    to C meanwhile), not what this run planned."""
    fake = vault(one_root(), after=one_root())
    fake.answers[("GET", "pki/config/issuers")] = [{"data": {"default": AID}}, {"data": {"default": CID}}]
    fake.answers[("GET", RECORD)] = [secret(dict(one_root(), **{"root-cert.pem": ""}), 4), secret(one_root(), 5)]
    result = run(fake, rotation="hold", clusters=[])
    assert fake.writes() == [("POST", RECORD)]
    assert result["signer_issuer_id"] == CID and result["signer"]["issuer_id"] == CID
    assert result["signer"]["certificate"] == pem(C.cert) and result["signer"]["key_id"] == "k-" + CID


def test_the_result_gives_the_signer_in_root_cas_shape():
    fake = vault(sign_record(), default=BID)
    result = run(fake, rotation="hold", clusters=[])
    assert fake.writes() == []
    assert result["signer"] == {"certificate": pem(B.cert), "issuer_id": BID, "key_id": "k-" + BID}
