"""The root rotation engine (pki/rotation.py) against the strict fake Vault: what each phase reads, decides and
writes - the gate, the record written before the default issuer moves, nothing written by a run that waits."""

import datetime

import pytest
from cryptography.hazmat.primitives import serialization

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.rotation import Rotation, RotationRequest
from harness.certs import make_ca, make_intermediate
from harness.fake_vault import FakeVault

NOW = datetime.datetime(2026, 12, 7, 12, 0, 0, tzinfo=datetime.timezone.utc)
A, B = make_ca("root A"), make_ca("root B")


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def issuer(issuer_id, pair):
    return {"data": {"issuer_id": issuer_id, "certificate": pem(pair.cert), "key_id": "k-" + issuer_id,
                     "ca_chain": [pem(pair.cert)]}}


def params(**more):
    values = dict(root_mount="pki", kv_mount="secret", trust_bundle_path="pki-trust", rotation="advance",
                  workload_cert_ttl="24h", margin="1h", common_name=None, key_type=None, key_bits=None,
                  root_ttl=None, clusters=[{"name": "east", "intermediate_mount": "istioca-east", "verified": True}])
    values.update(more)
    return values


def vault(record=None, default="a", intermediate=None):
    answers = {("GET", "sys/mounts"): {"data": {"secret/": {"type": "kv", "options": {"version": "2"}}}},
               ("GET", "pki/config/issuers"): {"data": {"default": default}},
               ("GET", "pki/issuer/a"): issuer("a", A), ("GET", "pki/issuer/b"): issuer("b", B)}
    if record is not None:
        answers[("GET", "secret/data/pki-trust")] = {"data": {"data": record, "metadata": {"version": 4}}}
    if intermediate is not None:
        answers[("GET", "istioca-east/config/issuers")] = {"data": {"default": "i"}}
        answers[("GET", "istioca-east/issuer/i")] = {"data": {"issuer_id": "i", "certificate": pem(
            intermediate.cert), "key_id": "ki", "ca_chain": [pem(intermediate.cert)]}}
    return FakeVault(answers, strict_writes=True)


def run(fake, check_mode=False, now=NOW, **more):
    return Rotation(RotationRequest(params(**more)), fake, check_mode, now=now).run()


def trust_record(**more):
    record = {"root-cert.pem": pem(A.cert) + pem(B.cert), "phase": "trust", "old_issuer_id": "a",
              "new_issuer_id": "b", "trusted": "a,b", "signer": "a", "trust_at": "2026-12-07T10:30:00Z"}
    record.update(more)
    return record


def test_hold_writes_the_bundle_of_the_one_root_when_there_is_none():
    fake = vault()
    fake.answers[("PUT", "secret/data/pki-trust")] = {"data": {"version": 1}}
    fake.answers[("POST", "secret/data/pki-trust")] = {"data": {"version": 1}}
    result = run(fake, rotation="hold", clusters=[])
    assert result["changed"] and result["phase"] == "none"
    write = [r for r in fake.requests if r.path == "secret/data/pki-trust" and r.method not in ("GET", "LIST")][0]
    assert write.json["data"]["root-cert.pem"] == pem(A.cert) and write.json["options"] == {"cas": 0}


def test_a_cluster_that_did_not_verify_blocks_the_start_and_nothing_is_written():
    fake = vault(record={"root-cert.pem": pem(A.cert), "trusted": "a"})
    result = run(fake, clusters=[{"name": "east", "intermediate_mount": "istioca-east", "verified": True},
                                 {"name": "west", "intermediate_mount": None, "verified": False,
                                  "problem": "unreachable"}])
    assert fake.writes() == [] and not result["changed"] and result["phase"] == "none"
    assert result["waiting_for"] == ["cluster west did not verify: unreachable"]


def test_trust_waits_for_the_margin_and_says_until_when():
    fake = vault(record=trust_record(), intermediate=make_intermediate(A))
    result = run(fake, now=NOW - datetime.timedelta(minutes=45))  # 45 min after trust_at, margin 1h
    assert fake.writes() == [] and result["phase"] == "trust" and result["next_phase_at"] == "2026-12-07T11:30:00Z"
    assert "margin 1h" in result["waiting_for"][0]


def test_trust_to_sign_writes_the_record_before_the_default_issuer(monkeypatch):
    fake = vault(record=trust_record(), intermediate=make_intermediate(A))
    fake.answers[("POST", "secret/data/pki-trust")] = {"data": {"version": 5}}
    fake.answers[("POST", "pki/config/issuers")] = {}
    result = run(fake)
    assert result["advanced"] and result["phase"] == "sign"
    assert fake.writes() == [("POST", "secret/data/pki-trust"), ("POST", "pki/config/issuers")]
    assert fake.body("POST", "pki/config/issuers") == {"default": "b"}
    record = fake.body("POST", "secret/data/pki-trust")
    assert record["options"] == {"cas": 4} and record["data"]["phase"] == "sign" and record["data"]["signer"] == "b"
    assert record["data"]["root-cert.pem"] == pem(A.cert) + pem(B.cert)


def test_check_mode_says_what_it_would_write_and_writes_nothing():
    fake = vault(record=trust_record(), intermediate=make_intermediate(A))
    result = run(fake, check_mode=True)
    assert fake.writes() == [] and result["changed"] and result["phase"] == "sign"
    assert result["writes"] == ["secret/data/pki-trust", "pki/config/issuers"]


def test_check_mode_returns_the_record_and_signer_a_real_run_would_write():
    """rotate_root --check: the result (phase, record, roots, signer - the root the intermediates would be re-issued
    from) and --diff's after are what a real run writes, not what Vault holds."""
    fake = vault(record=trust_record(), intermediate=make_intermediate(A))
    result = run(fake, check_mode=True)
    assert fake.writes() == []
    assert result["signer_issuer_id"] == "b" and result["record"]["phase"] == "sign"
    assert result["record"]["signer"] == "b" and result["record"]["sign_at"] == "2026-12-07T12:00:00Z"
    assert [r["issuer_id"] for r in result["roots"]] == ["a", "b"] and result["roots"][1]["certificate"] == pem(B.cert)
    diff = result["diff"]
    assert (diff["before"]["phase"], diff["after"]["phase"]) == ("trust", "sign")
    assert (diff["before"]["default_issuer"], diff["after"]["default_issuer"]) == ("a", "b")
    assert diff["after"]["writes"] == ["secret/data/pki-trust", "pki/config/issuers"]
    assert result["message"].startswith("Check mode, nothing was written: a real run would advance to phase 'sign'")


def test_check_mode_start_names_the_root_it_would_generate():
    fake = vault(record={"root-cert.pem": pem(A.cert), "trusted": "a"})
    fake.answers[("LIST", "pki/issuers")] = {"data": {"keys": ["a"], "key_info": {"a": {"issuer_name": ""}}}}
    result = run(fake, check_mode=True)
    assert fake.writes() == [] and result["phase"] == "trust" and result["changed"]
    assert result["writes"] == ["pki/root/rotate/internal", "secret/data/pki-trust"]
    assert [r["serial"] for r in result["roots"]][1] == "(new root)" and result["roots"][1]["certificate"] is None
    assert result["signer_issuer_id"] == "a" and result["record"]["new_issuer_id"] == "(new root)"
    assert result["diff"]["after"]["phase"] == "trust" and result["diff"]["after"]["roots"][1] == "(new root)"
    assert result["clusters"][0]["roots"][1] == "(new root)" and result["clusters"][0]["phase"] == "trust"


def test_check_mode_abort_from_sign_plans_the_old_root_as_signer():
    fake = vault(record=trust_record(phase="sign", signer="b", sign_at="2026-12-07T11:00:00Z"), default="b",
                 intermediate=make_intermediate(B))
    result = run(fake, check_mode=True, rotation="abort")
    assert fake.writes() == [] and result["phase"] == "aborted" and result["signer_issuer_id"] == "a"
    assert result["writes"] == ["secret/data/pki-trust", "pki/config/issuers"]
    assert [r["issuer_id"] for r in result["roots"]] == ["a", "b"]  # B stays trusted until its chain expired
    assert result["diff"]["after"]["signer"] == "a" and result["diff"]["after"]["default_issuer"] == "a"


def test_sign_waits_until_every_intermediate_is_signed_by_the_new_root():
    fake = vault(record=trust_record(phase="sign", signer="b", sign_at="2026-12-06T00:00:00Z"), default="b",
                 intermediate=make_intermediate(A))
    result = run(fake)
    assert fake.writes() == [] and result["phase"] == "sign"
    assert "cluster east: its intermediate" in result["waiting_for"][0]


def test_a_killed_run_is_completed_and_the_run_does_not_advance():
    """The record says sign, the default issuer is still A: the run switches it, and stops there."""
    fake = vault(record=trust_record(phase="sign", signer="b", sign_at="2026-12-06T00:00:00Z"),
                 intermediate=make_intermediate(A))
    fake.answers[("POST", "pki/config/issuers")] = {}
    result = run(fake)
    assert fake.writes() == [("POST", "pki/config/issuers")] and not result["advanced"]
    assert "completed the phase 'sign'" in result["waiting_for"][0]


def test_abort_after_retire_is_refused():
    fake = vault(record=trust_record(phase="retire", trusted="b", signer="b", retire_at="2026-12-07T00:00:00Z",
                                     **{"root-cert.pem": pem(B.cert)}), default="b")
    with pytest.raises(MeshPkiError, match="nothing to abort"):
        run(fake, rotation="abort")
    assert fake.writes() == []


def test_advance_needs_the_clusters():
    with pytest.raises(MeshPkiError, match="needs clusters"):
        RotationRequest(params(clusters=[]))


ROOT_A = {"certificate": pem(A.cert), "issuer_id": "a", "key_id": "k-a"}


def test_hold_with_the_root_tasks_result_reads_only_the_record():
    """Issue 17: the main playbook's no-change re-run reads the record and nothing else (the root task of the same
    run returned the root; the record read back with a version proves the KV v2 mount)."""
    fake = vault(record={"root-cert.pem": pem(A.cert), "trusted": "a"})
    result = run(fake, rotation="hold", clusters=[], root_ca=ROOT_A)
    assert not result["changed"] and result["phase"] == "none" and result["signer_issuer_id"] == "a"
    assert fake.paths() == ["secret/data/pki-trust"]


def test_hold_reads_the_mount_table_only_when_there_is_no_record_yet():
    fake = vault(record={"root-cert.pem": pem(A.cert), "trusted": "a"})
    run(fake, rotation="hold", clusters=[])
    assert "sys/mounts" not in fake.paths() and "pki/issuer/default" in fake.paths()
    empty = vault()
    empty.answers[("POST", "secret/data/pki-trust")] = {"data": {"version": 1}}
    run(empty, rotation="hold", clusters=[], root_ca=ROOT_A)
    assert "sys/mounts" in empty.paths()


@pytest.mark.parametrize("given, record", [
    ({"certificate": pem(B.cert), "issuer_id": "b"}, {"root-cert.pem": pem(A.cert), "trusted": "a"}),
    ({"certificate": pem(A.cert), "issuer_id": "a"}, {"root-cert.pem": pem(B.cert), "trusted": "a"}),
    ({"certificate": pem(A.cert)}, {"root-cert.pem": pem(A.cert), "trusted": "a"}),
    (ROOT_A, {"root-cert.pem": pem(A.cert), "trusted": "a", "signer": "b"}),
    (ROOT_A, trust_record()),
], ids=["another-root", "another-bundle", "no-issuer-id", "another-signer", "rotation-in-progress"])
def test_hold_reads_the_root_from_vault_unless_the_given_root_confirms_the_record(given, record):
    """Anything but "the record is exactly the given root, no rotation" is decided on the root read from Vault:
    stale data costs one read, never a wrong write."""
    fake = vault(record=record)
    fake.answers[("POST", "secret/data/pki-trust")] = {"data": {"version": 5}}
    fake.answers[("POST", "pki/config/issuers")] = {}
    run(fake, rotation="hold", clusters=[], root_ca=given)
    assert "pki/issuer/default" in fake.paths()


def test_advance_never_takes_the_given_root():
    fake = vault(record={"root-cert.pem": pem(A.cert), "trusted": "a"})
    east = {"name": "east", "intermediate_mount": "istioca-east", "verified": False}
    run(fake, rotation="advance", clusters=[east], root_ca=ROOT_A)
    assert "pki/issuer/default" in fake.paths()


# -- the new root: imported (pem_bundle), or generated with its own subject and key (issue 18) -----------------

def key_text(pair):
    return pair.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()


def start_vault(key_id="k-a"):
    fake = vault(record={"root-cert.pem": pem(A.cert), "trusted": "a"})
    fake.answers[("GET", "pki/issuer/a")]["data"]["key_id"] = key_id
    fake.answers[("POST", "secret/data/pki-trust")] = {"data": {"version": 5}}
    return fake


def test_start_imports_the_new_root_from_pem_bundle_and_names_it():
    fake = start_vault()
    fake.answers[("POST", "pki/issuers/import/bundle")] = {"data": {"imported_issuers": ["b"],
                                                                    "mapping": {"b": "k-b"}}}
    fake.answers[("POST", "pki/issuer/b")] = {"data": {"issuer_id": "b"}}
    result = run(fake, pem_bundle=pem(B.cert) + key_text(B), generate=False)
    assert result["advanced"] and result["phase"] == "trust"
    assert fake.writes() == [("POST", "pki/issuers/import/bundle"), ("POST", "pki/issuer/b"),
                             ("POST", "secret/data/pki-trust")]
    assert fake.body("POST", "pki/issuers/import/bundle") == {"pem_bundle": pem(B.cert) + key_text(B)}
    assert fake.body("POST", "pki/issuer/b") == {"issuer_name": "rotation-a-5"}
    record = fake.body("POST", "secret/data/pki-trust")["data"]
    assert record["new_issuer_id"] == "b" and record["root-cert.pem"] == pem(A.cert) + pem(B.cert)


def test_start_in_check_mode_with_pem_bundle_writes_nothing():
    fake = start_vault()
    result = run(fake, check_mode=True, pem_bundle=pem(B.cert) + key_text(B))
    assert fake.writes() == [] and result["changed"] and result["phase"] == "trust"
    assert result["writes"][0] == "pki/issuers/import/bundle"


@pytest.mark.parametrize("key_id, more, message", [
    ("k-a", dict(generate=False), "was imported, and generate is false"),
    ("", {}, "has no key in Vault"),
], ids=["imported-root", "offline-root"])
def test_start_without_pem_bundle_is_refused_before_any_write_when_b_must_not_be_generated(key_id, more, message):
    fake = start_vault(key_id=key_id)
    with pytest.raises(MeshPkiError, match=message) as err:
        run(fake, **more)
    assert "istio_vault_ca_root_rotation_pem_bundle" in str(err.value)
    assert fake.writes() == []


def test_a_killed_import_is_adopted_by_name_whatever_generate_says():
    fake = start_vault()
    fake.answers[("LIST", "pki/issuers")] = {"data": {"keys": ["a", "b"], "key_info": {
        "a": {"issuer_name": ""}, "b": {"issuer_name": "rotation-a-5"}}}}
    result = run(fake, generate=False)
    assert result["phase"] == "trust" and fake.writes() == [("POST", "secret/data/pki-trust")]


def test_pem_bundle_holding_the_current_root_is_refused():
    fake = start_vault()
    with pytest.raises(MeshPkiError, match="holds the current root"):
        run(fake, pem_bundle=pem(A.cert) + key_text(A))
    assert fake.writes() == []


@pytest.mark.parametrize("more, message", [
    (dict(key_bits=384), "key_bits 384 needs key_type"),
    (dict(key_type="ec", key_bits=2048), "key_bits 2048 is not valid with key_type ec"),
    (dict(pem_bundle=pem(B.cert) + key_text(B), common_name="x"), "common_name only apply to a new root generated"),
    (dict(pem_bundle=pem(B.cert) + key_text(B), key_type="ec"), "key_type only apply"),
    (dict(pem_bundle=pem(B.cert)), "pem_bundle must hold the CA certificate and exactly one"),
])
def test_the_new_roots_options_are_checked_before_any_request(more, message):
    with pytest.raises(MeshPkiError, match=message):
        RotationRequest(params(**more))


def test_start_generates_b_with_the_given_subject_and_key():
    fake = start_vault()
    fake.answers[("POST", "pki/root/rotate/internal")] = {"data": {"issuer_id": "b"}}
    run(fake, common_name="root 2027", key_type="ec", key_bits=384, root_ttl="87600h")
    assert fake.body("POST", "pki/root/rotate/internal") == {
        "common_name": "root 2027", "key_type": "ec", "key_bits": 384, "issuer_name": "rotation-a-5",
        "ttl": "%ds" % (87600 * 3600)}
