"""vault_pki_intermediate against a real OpenBao server: the guide's chain, idempotency, crash-safe resume,
concurrency, rotation, external signing, validation before writes, and the key never in any output."""

import json
import os
import subprocess
import sys
import threading
import uuid

import pytest
from conftest import assert_four_step
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import verify_bundle
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.intermediate import (
    IntermediateCA,
    IntermediateRequest,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from harness.playbook import REPO, module_play

INT_CN = "tetrate.io Intermediate Authority"


class Names(object):
    def __init__(self):
        suffix = uuid.uuid4().hex[:8]
        self.root = "pki-" + suffix
        self.int = "istioca-" + suffix
        self.kv_path = "istioca-" + suffix

    def args(self, **extra):
        args = {"mount": self.int, "root_mount": self.root, "kv_path": self.kv_path, "common_name": INT_CN}
        args.update(extra)
        return args


def _defaults(bao, token=None):
    return {"url": bao.url, "token": token or bao.token}


def _make_root(bao, mount, ttl="8760h", max_lease_ttl="8760h", common_name="tetrate.io"):
    bao.api("POST", "sys/mounts/" + mount, {"type": "pki", "config": {"max_lease_ttl": max_lease_ttl}})
    return bao.api("POST", mount + "/root/generate/internal", {"common_name": common_name, "ttl": ttl})["data"]


def _kv(bao, path, version=None):
    suffix = "?version=%d" % version if version else ""
    return bao.api("GET", "secret/data/%s%s" % (path, suffix))["data"]


def _kv_versions(bao, path):
    return bao.api("GET", "secret/metadata/" + path)["data"]["current_version"]


def _cert(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def _spki(obj):
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_matches(key_pem, cert_pem):
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    return _spki(key) == _spki(_cert(cert_pem))


def _get(bao, path):
    return bao.api("GET", path, token=None)["data"]


def _keys(bao, mount):
    return bao.api("LIST", mount + "/keys")["data"]["keys"]


def _issuer_serial(bao, mount):
    default = bao.api("GET", mount + "/config/issuers")["data"]["default"]
    return bao.api("LIST", mount + "/issuers")["data"]["key_info"][default]["serial_number"]


def _token(bao, rules):
    name = "limited-" + uuid.uuid4().hex[:8]
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": rules})
    return bao.api("POST", "auth/token/create", {"policies": [name], "ttl": "1h"})["auth"]["client_token"]


def _all_but(*denied):
    rules = 'path "*" { capabilities = ["create", "read", "update", "delete", "list", "sudo"] }\n'
    for path, capabilities in denied:
        rules += 'path "%s" { capabilities = %s }\n' % (path, json.dumps(capabilities))
    return rules


def test_guide_values_four_steps_chain_and_key_never_in_output(bao, playbook, tmp_path):
    """The guide: root tetrate.io 8760h in pki, intermediate 43800h in istioca (capped: the root lives 8760h),
    key at secret/istioca field ca-key.pem. Check mode on an empty Vault, apply, then nothing to do."""
    names = Names()
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)},
             "tasks": [
                 {"name": "root", "meshpki.vault_ca.vault_pki_root": {
                     "mount": names.root, "common_name": "tetrate.io", "ttl": "8760h"}},
                 {"name": "intermediate", "meshpki.vault_ca.vault_pki_intermediate": names.args(
                     ttl="43800h", max_lease_ttl="43800h", ttl_exceeds_root="cap", kv_mount="secret",
                     kv_field="ca-key.pem")},
             ]}]
    runs = []
    for check, expected in ((True, True), (False, True), (True, False), (False, False)):
        mark = bao.audit.mark()
        run = playbook(play, check=check, diff=True, verbosity=4 if not check else 0)
        assert run.rc == 0, run
        assert (run.task("intermediate")["status"] == "changed") is expected, run
        writes = bao.audit.writes(since=mark)
        assert (writes != []) is (not check and expected), writes
        runs.append(run)
    check1, apply1, _check2, apply2 = runs
    planned = check1.task("intermediate")["result"]
    assert planned["action"] == "issue" and planned["certificate"] is None
    assert any("does not exist" in w and "Check mode goes on" in w for w in planned["warnings"])
    assert planned["diff"]["after"]["serial"] == "(new)" and planned["diff"]["after"]["kv_version"] == 1

    result = apply1.task("intermediate")["result"]
    assert result["action"] == "issue" and result["subject"] == "CN=" + INT_CN and not result["rotated"]
    assert any("capped to the root's end" in w for w in result["warnings"])
    assert result["kv"] == {"mount": "secret", "path": names.kv_path, "field": "ca-key.pem", "version": 1}

    # What istiod's four templates read
    ca_cert = _get(bao, names.int + "/cert/ca")["certificate"]
    chain = _get(bao, names.int + "/cert/ca_chain")["certificate"]
    root_cert = _get(bao, names.root + "/cert/ca")["certificate"]
    stored = _kv(bao, names.kv_path)
    key = stored["data"]["ca-key.pem"]
    assert stored["metadata"]["version"] == 1
    assert stored["data"]["key_id"] == result["key_id"]
    begin = "-----BEGIN CERTIFICATE-----"
    chain_certs = [_cert(begin + part) for part in chain.split(begin)[1:]]
    assert [c.subject.rfc4514_string() for c in chain_certs] == ["CN=" + INT_CN, "CN=tetrate.io"]
    assert chain_certs[0] == _cert(ca_cert) == _cert(result["certificate"])
    assert chain_certs[1] == _cert(root_cert)
    assert _cert(root_cert).subject == _cert(root_cert).issuer  # pki/cert/ca is the root
    assert _key_matches(key, ca_cert)
    assert result["ca_chain"] == [result["certificate"], root_cert.strip() + "\n"]
    # capped: the intermediate ends with the root, never after it
    assert _cert(ca_cert).not_valid_after_utc == _cert(root_cert).not_valid_after_utc
    for name, text in (("root.pem", root_cert), ("chain.pem", chain), ("int.pem", ca_cert)):
        (tmp_path / name).write_text(text)
    verify = subprocess.run(["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "int.pem"],
                            cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert verify.returncode == 0 and "int.pem: OK" in verify.stdout, verify.stdout + verify.stderr
    report = verify_bundle(ca_cert, key, chain, root_cert)
    assert report["ok"], report["failed"]

    # the private key: never in any run's output (-vvvv, --diff), results or diff
    body = key.splitlines()
    for run in runs:
        for line in (body[1], body[len(body) // 2], body[-2]):
            assert line not in run.output and line not in json.dumps(run.results)
    assert "ca-key.pem" not in json.dumps(result["diff"])

    # no-change run: the same serial
    assert apply2.task("intermediate")["result"]["serial"] == result["serial"]

    # a ttl-only change does not re-issue; it is reported
    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_intermediate", names.args(ttl="4380h", max_lease_ttl="43800h"),
                               defaults=_defaults(bao)))
    assert run.rc == 0, run
    task = run.task("task")
    assert task["status"] == "ok" and task["result"]["serial"] == result["serial"]
    assert any(note.startswith("ttl: the certificate lives") for note in task["result"]["pending_changes"])
    assert bao.audit.writes(since=mark) == []


def test_request_counts_first_and_no_change_run(bao, playbook):
    names = Names()
    _make_root(bao, names.root)
    play = module_play("vault_pki_intermediate", names.args(ttl="4380h"), defaults=_defaults(bao))
    mark = bao.audit.mark()
    first = playbook(play)
    assert first.rc == 0, first
    first_requests, first_writes = bao.audit.requests(since=mark), bao.audit.writes(since=mark)
    mark = bao.audit.mark()
    again = playbook(play)
    assert again.task("task")["status"] == "ok", again
    assert bao.audit.requests(since=mark) == [
        ("read", "sys/mounts"), ("read", names.root + "/issuer/default"), ("read", names.int + "/issuer/default"),
        ("read", "secret/data/" + names.kv_path)]
    assert first_writes == [
        ("update", "sys/mounts/" + names.int), ("update", names.int + "/intermediate/generate/exported"),
        ("create", "secret/data/" + names.kv_path), ("update", names.root + "/root/sign-intermediate"),
        ("update", names.int + "/intermediate/set-signed"), ("update", names.int + "/config/issuers")]
    print("\nvault_pki_intermediate requests: first run %d (%d writes: %s), no-change run 4 reads, 0 writes"
          % (len(first_requests), len(first_writes), ", ".join(path for _op, path in first_writes)))


def test_resume_after_sign_denied_keeps_one_key(bao, playbook):
    """The chain breaks after the key is stored (no permission on root/sign-intermediate); the re-run with a
    good token resumes with the stored key: one KV version, whose key is the final certificate's."""
    names = Names()
    _make_root(bao, names.root)
    limited = _token(bao, _all_but((names.root + "/root/sign-intermediate", ["deny"])))
    args = names.args(ttl="4380h", key_type="ec", key_bits=384)
    run = playbook(module_play("vault_pki_intermediate", args, defaults=_defaults(bao, limited)))
    assert run.rc != 0
    msg = run.task("task")["result"]["msg"]
    assert "Failed to sign the intermediate CSR with the root CA of '%s/root/sign-intermediate': permission " \
           "denied" % names.root in msg
    assert "stored at 'secret/%s' version 1" % names.kv_path in msg and "re-run" in msg
    stored = _kv(bao, names.kv_path)
    assert stored["metadata"]["version"] == 1 and stored["data"]["key_id"] in _keys(bao, names.int)
    assert bao.api("GET", names.int + "/config/issuers")["data"]["default"] == ""

    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_intermediate", args, defaults=_defaults(bao)))
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["changed"] and result["action"] == "resume" and result["resumed"]
    ops = [path for _op, path in bao.audit.writes(since=mark)]
    assert names.int + "/intermediate/generate/exported" not in ops and "secret/data/" + names.kv_path not in ops
    assert names.int + "/intermediate/generate/existing" not in ops  # the stored CSR was used
    assert ops == [names.root + "/root/sign-intermediate", names.int + "/intermediate/set-signed",
                   names.int + "/config/issuers"]
    assert _kv_versions(bao, names.kv_path) == 1
    final = _get(bao, names.int + "/cert/ca")["certificate"]
    assert _key_matches(_kv(bao, names.kv_path)["data"]["ca-key.pem"], final)
    assert result["key_id"] == stored["data"]["key_id"] and result["kv"]["version"] == 1
    assert _keys(bao, names.int) == [stored["data"]["key_id"]]


def test_resume_reimports_a_key_deleted_from_the_mount(bao, playbook):
    names = Names()
    _make_root(bao, names.root)
    limited = _token(bao, _all_but((names.root + "/root/sign-intermediate", ["deny"])))
    args = names.args(ttl="4380h")
    assert playbook(module_play("vault_pki_intermediate", args, defaults=_defaults(bao, limited))).rc != 0
    stored = _kv(bao, names.kv_path)
    bao.api("DELETE", "%s/key/%s" % (names.int, stored["data"]["key_id"]))

    run = playbook(module_play("vault_pki_intermediate", args, defaults=_defaults(bao)))
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["action"] == "resume"
    assert any("was not in '%s'" % names.int in w and "imported from KV" in w for w in result["warnings"])
    assert _kv_versions(bao, names.kv_path) == 1
    assert _key_matches(stored["data"]["ca-key.pem"], _get(bao, names.int + "/cert/ca")["certificate"])
    assert result["key_id"] in _keys(bao, names.int) and result["key_id"] != stored["data"]["key_id"]


def test_rotation_that_stopped_before_the_default_issuer_switch_is_finished(bao, playbook):
    """A forced rotation is denied the config/issuers write (after set-signed): cert/ca still serves the old
    certificate while KV holds the new key. The re-run only switches the default issuer."""
    names = Names()
    _make_root(bao, names.root)
    args = names.args(ttl="4380h")
    first = playbook(module_play("vault_pki_intermediate", args, defaults=_defaults(bao)))
    assert first.rc == 0, first
    old = first.task("task")["result"]
    limited = _token(bao, _all_but((names.int + "/config/issuers", ["read"])))
    run = playbook(module_play("vault_pki_intermediate", dict(args, force=True), defaults=_defaults(bao, limited)))
    assert run.rc != 0
    msg = run.task("task")["result"]["msg"]
    assert "Failed to set the default issuer in '%s/config/issuers'" % names.int in msg
    assert "do not restart istiod" in msg
    assert _cert(_get(bao, names.int + "/cert/ca")["certificate"]) == _cert(old["certificate"])
    assert _kv_versions(bao, names.kv_path) == 2

    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_intermediate", args, defaults=_defaults(bao)))
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["action"] == "resume" and result["rotated"] and result["previous_serial"] == old["serial"]
    assert bao.audit.writes(since=mark) == [("update", names.int + "/config/issuers")]
    assert _key_matches(_kv(bao, names.kv_path)["data"]["ca-key.pem"], _get(bao, names.int + "/cert/ca")["certificate"])


def test_two_parallel_playbook_hosts_leave_one_key(bao, playbook, tmp_path):
    """Two hosts run the task at the same moment (no run_once): one key in KV, its certificate installed."""
    names = Names()
    _make_root(bao, names.root)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[vaultclients]\nh1 ansible_connection=local\nh2 ansible_connection=local\n")
    play = [{"hosts": "vaultclients", "gather_facts": False,
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)},
             "tasks": [{"name": "task", "meshpki.vault_ca.vault_pki_intermediate": names.args(ttl="4380h")}]}]
    mark = bao.audit.mark()
    run = playbook(play, inventory=str(inventory), extra_args=("--forks", "2"))
    assert run.rc == 0, run
    statuses = sorted(r["status"] for r in run.results)
    # one issues; the other converges on it (ok), or - when it read KV after the key was stored but before the
    # certificate was installed - resumes with the same key (changed: a second certificate for that one key)
    assert statuses in (["changed", "ok"], ["changed", "changed"]), run
    generated = [p for _o, p in bao.audit.writes(since=mark) if p.endswith("/intermediate/generate/exported")]
    assert _kv_versions(bao, names.kv_path) == 1, run
    assert len(_keys(bao, names.int)) == 1, run  # a losing run deletes the key it generated
    assert _key_matches(_kv(bao, names.kv_path)["data"]["ca-key.pem"], _get(bao, names.int + "/cert/ca")["certificate"])
    serials = {r["result"]["serial"] for r in run.results}
    assert len(serials) == 1 or statuses == ["changed", "changed"], run
    assert _issuer_serial(bao, names.int) in serials, run
    print("\nparallel hosts: %d key(s) generated, statuses %s" % (len(generated), statuses))


def test_adopts_a_setup_made_by_hand_with_the_guide_and_repairs_its_chain(bao, playbook):
    """The guide's commands run by hand (set-signed with the certificate alone, the key put in KV with
    'vault kv put'): the module keeps that key and certificate and only adds the root to Vault's chain."""
    names = Names()
    root = _make_root(bao, names.root)
    bao.api("POST", "sys/mounts/" + names.int, {"type": "pki", "config": {"max_lease_ttl": "43800h"}})
    generated = bao.api("POST", names.int + "/intermediate/generate/exported", {"common_name": INT_CN})["data"]
    signed = _sign(bao, names.root, generated["csr"])["certificate"]
    bao.api("POST", names.int + "/intermediate/set-signed", {"certificate": signed})
    bao.api("POST", "secret/data/" + names.kv_path, {"data": {"ca-key.pem": generated["private_key"]}})
    assert _get(bao, names.int + "/cert/ca_chain")["certificate"].count("BEGIN CERTIFICATE") == 1

    play = module_play("vault_pki_intermediate", names.args(ttl="2000h", max_lease_ttl="43800h"),
                       defaults=_defaults(bao))
    mark = bao.audit.mark()
    run = playbook(play)
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["action"] == "chain" and result["changed"] and not result["rotated"]
    assert bao.audit.writes(since=mark) == [("update", names.int + "/issuers/import/cert")]
    chain = _get(bao, names.int + "/cert/ca_chain")["certificate"]
    assert chain.count("BEGIN CERTIFICATE") == 2 and root["certificate"].strip() in chain
    assert _cert(_get(bao, names.int + "/cert/ca")["certificate"]) == _cert(signed)
    assert result["ca_chain"][1].strip() == root["certificate"].strip() and result["kv"]["version"] == 1
    mark = bao.audit.mark()
    assert playbook(play).task("task")["status"] == "ok" and bao.audit.writes(since=mark) == []


class _BarrierClient(object):
    """Lets both runs generate their key before either writes KV: the check-and-set race, every time."""

    def __init__(self, client, kv_api_path, barrier):
        self._client, self._path, self._barrier = client, kv_api_path, barrier

    def write(self, path, data=None, **kwargs):
        if path == self._path:
            self._barrier.wait(timeout=60)
        return self._client.write(path, data, **kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


def _params(**overrides):
    params = dict(mount="istioca", max_lease_ttl=None, root_mount="pki", kv_mount="secret", kv_path="istioca",
                  kv_field="ca-key.pem", common_name=INT_CN, organization=None, ou=None, country=None, locality=None,
                  province=None, key_type="rsa", key_bits=None, ttl="43800h", ttl_exceeds_root="fail",
                  max_path_length=-1, renew_before=None, force=False, signing="internal", certificate=None,
                  ca_chain=None)
    params.update(overrides)
    return params


def test_check_and_set_race_loser_discards_its_key_and_converges(bao):
    names = Names()
    _make_root(bao, names.root)
    # the mount exists: the runs race for the KV write only (a race to enable a mount is covered elsewhere)
    bao.api("POST", "sys/mounts/" + names.int, {"type": "pki", "config": {"max_lease_ttl": "4380h"}})
    params = _params(**names.args(ttl="4380h"))
    barrier = threading.Barrier(2)
    results, errors = [None, None], []

    def run(index):
        try:
            conn = VaultConnection.from_params({"url": bao.url})
            client = _BarrierClient(VaultClient(conn.client(bao.token), conn),
                                    "secret/data/" + names.kv_path, barrier)
            backend = IntermediateCA(IntermediateRequest(params), client, check_mode=False)
            results[index] = (backend.run(), backend.warnings)
        except Exception as e:  # reported below
            errors.append(e)

    mark = bao.audit.mark()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    (winner, _w), (loser, loser_warnings) = sorted(results, key=lambda r: not r[0]["changed"])
    assert winner["changed"] and winner["action"] == "issue", results
    assert not loser["changed"] and any("converged on it" in w for w in loser_warnings), results
    assert winner["serial"] == loser["serial"] and loser["kv"]["version"] == 1
    writes = [p for _o, p in bao.audit.writes(since=mark)]
    assert writes.count(names.int + "/intermediate/generate/exported") == 2
    assert writes.count("secret/data/" + names.kv_path) == 2  # both tried, check-and-set let one through
    assert writes.count(names.root + "/root/sign-intermediate") == 1
    assert len([p for p in writes if p.startswith(names.int + "/key/")]) == 1  # the loser's key, deleted
    assert _kv_versions(bao, names.kv_path) == 1 and len(_keys(bao, names.int)) == 1
    assert _key_matches(_kv(bao, names.kv_path)["data"]["ca-key.pem"], _get(bao, names.int + "/cert/ca")["certificate"])


def test_rotation_with_renew_before(bao, playbook):
    names = Names()
    root = _make_root(bao, names.root)
    first = playbook(module_play("vault_pki_intermediate", names.args(ttl="1h"), defaults=_defaults(bao)))
    assert first.rc == 0, first
    old = first.task("task")["result"]
    rotate = module_play("vault_pki_intermediate", names.args(ttl="10h", renew_before="2h"), defaults=_defaults(bao))
    check = playbook(rotate, check=True, diff=True)
    assert check.task("task")["status"] == "changed" and check.task("task")["result"]["rotated"]
    assert check.task("task")["result"]["diff"]["after"]["kv_version"] == 2
    run = playbook(rotate, diff=True)
    assert run.rc == 0, run
    new = run.task("task")["result"]
    assert new["action"] == "issue" and new["rotated"] and new["previous_serial"] == old["serial"]
    assert new["serial"] != old["serial"] and new["kv"]["version"] == 2
    assert any("within renew_before" in reason for reason in new["reasons"])
    assert new["diff"]["before"]["serial"] == old["serial"] and new["diff"]["after"]["serial"] == new["serial"]
    assert bao.api("GET", names.int + "/config/issuers")["data"]["default"] == new["issuer_id"] != old["issuer_id"]
    ca = _get(bao, names.int + "/cert/ca")["certificate"]
    assert _cert(ca) == _cert(new["certificate"])
    chain = _get(bao, names.int + "/cert/ca_chain")["certificate"]
    assert chain.count("BEGIN CERTIFICATE") == 2 and _cert(chain) == _cert(ca)
    assert root["certificate"].strip() in chain
    v1, v2 = _kv(bao, names.kv_path, 1), _kv(bao, names.kv_path, 2)
    assert _key_matches(v1["data"]["ca-key.pem"], old["certificate"])  # the old key is still readable
    assert _key_matches(v2["data"]["ca-key.pem"], ca)
    assert v1["data"]["ca-key.pem"] != v2["data"]["ca-key.pem"]
    mark = bao.audit.mark()
    again = playbook(rotate)
    assert again.task("task")["status"] == "ok" and bao.audit.writes(since=mark) == []


def test_bad_input_fails_clearly_and_writes_nothing(bao, playbook):
    names = Names()
    _make_root(bao, names.root)
    empty_root = "empty-" + uuid.uuid4().hex[:8]
    bao.api("POST", "sys/mounts/" + empty_root, {"type": "pki"})
    cases = [
        ({"ttl": "43800h"}, "ttl 43800h (5.0 years) does not fit under the root: the root mount '%s' signs for at "
                            "most 8760h (1.0 years) (its max_lease_ttl) and the root CA expires on" % names.root),
        ({"ttl": "8760h"}, "Use a ttl of at most 8759h"),
        ({"key_bits": 1024}, "RSA keys for an Istio CA must have 2048, 3072 or 4096 bits"),
        ({"key_type": "ec", "key_bits": 521}, "EC keys for an Istio CA must be P-256 (256) or P-384 (384)"),
        ({"root_mount": "nope-" + uuid.uuid4().hex[:6]}, "does not exist: create the root CA first"),
        ({"root_mount": empty_root, "retries": 0}, "The root mount '%s' has no CA (no default issuer)" % empty_root),
        ({"common_name": " "}, "common_name must not be empty"),
        ({"ttl": "10h", "renew_before": "10h"}, "renew_before 10h must be shorter than ttl 10h"),
        ({"kv_field": "csr"}, "kv_field 'csr' is reserved"),
        ({"certificate": "x"}, "only used with signing: external"),
        ({"ttl": "ten hours"}, "ttl 'ten hours' is not a duration"),
        ({"mount": names.root}, "mount and root_mount are both"),
    ]
    tasks = [{"name": "case%d" % i, "ignore_errors": True,
              "meshpki.vault_ca.vault_pki_intermediate": names.args(**args)} for i, (args, _m) in enumerate(cases)]
    mark = bao.audit.mark()
    run = playbook([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                     "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)}, "tasks": tasks}])
    for i, (_args, message) in enumerate(cases):
        task = run.task("case%d" % i)
        assert task["status"] == "failed", (i, task)
        assert message in task["result"]["msg"], (i, task["result"]["msg"])
        assert "Nothing was changed" in task["result"]["msg"], (i, task["result"]["msg"])
    assert bao.audit.writes(since=mark) == []
    assert names.int + "/" not in bao.api("GET", "sys/mounts")["data"]


def _sign(bao, ca_mount, csr_pem, common_name=INT_CN):
    return bao.api("POST", ca_mount + "/root/sign-intermediate",
                   {"csr": csr_pem, "common_name": common_name, "format": "pem", "ttl": "2000h"})["data"]


def test_external_signing_two_calls(bao, playbook):
    """signing: external - the key is stored and the CSR returned (four steps: a re-run returns the same
    CSR and writes nothing); a certificate for another key is refused; the right one completes the chain."""
    names = Names()
    offline = "offline-" + uuid.uuid4().hex[:8]
    offline_root = _make_root(bao, offline, ttl="8760h", common_name="Offline Root")
    args = names.args(signing="external", key_type="ec", root_mount="does-not-matter")
    runs = assert_four_step(playbook, module_play("vault_pki_intermediate", args, defaults=_defaults(bao)))
    pending = runs[1].task("task")["result"]
    assert pending["pending"] and pending["action"] == "issue"
    assert pending["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert pending["certificate"] is None and pending["kv"]["version"] == 1
    again = runs[3].task("task")["result"]
    assert again["action"] == "await" and again["csr"] == pending["csr"]
    assert "root_mount" not in pending

    # a certificate issued for another key is refused
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_csr = (x509.CertificateSigningRequestBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INT_CN)]))
                 .sign(other_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    wrong = _sign(bao, offline, other_csr)["certificate"]
    mark = bao.audit.mark()
    chain = offline_root["certificate"]
    mark = bao.audit.mark()
    run = playbook([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                     "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)},
                     "tasks": [
                         {"name": "wrong key", "ignore_errors": True,
                          "meshpki.vault_ca.vault_pki_intermediate": dict(args, certificate=wrong, ca_chain=chain)},
                         {"name": "no chain", "ignore_errors": True,
                          "meshpki.vault_ca.vault_pki_intermediate": dict(args, certificate=wrong)}]}])
    assert "was not issued for the key stored at" in run.task("wrong key")["result"]["msg"]
    assert "issuing CA chain of the certificate is missing" in run.task("no chain")["result"]["msg"]
    assert bao.audit.writes(since=mark) == []

    signed = _sign(bao, offline, pending["csr"])["certificate"]
    complete = module_play("vault_pki_intermediate", dict(args, certificate=signed, ca_chain=chain),
                           defaults=_defaults(bao))
    run = playbook(complete, diff=True)
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["action"] == "complete" and not result["pending"] and result["csr"] is None
    assert _cert(_get(bao, names.int + "/cert/ca")["certificate"]) == _cert(signed)
    chain = _get(bao, names.int + "/cert/ca_chain")["certificate"]
    assert chain.count("BEGIN CERTIFICATE") == 2 and offline_root["certificate"].strip() in chain
    assert _key_matches(_kv(bao, names.kv_path)["data"]["ca-key.pem"], signed)
    assert _kv_versions(bao, names.kv_path) == 1
    # again with the certificate, and without it (the task as first written): nothing to do
    mark = bao.audit.mark()
    run = playbook([dict(complete[0], tasks=complete[0]["tasks"] + [
        {"name": "without", "meshpki.vault_ca.vault_pki_intermediate": args}])])
    assert [r["status"] for r in run.results] == ["ok", "ok"], run
    assert bao.audit.writes(since=mark) == []


@pytest.mark.parametrize("module", ["vault_pki_intermediate"])
def test_ansible_doc_renders(module):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "meshpki.vault_ca." + module], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["meshpki.vault_ca." + module]
    assert {"mount", "root_mount", "kv_mount", "kv_path", "kv_field", "renew_before", "signing", "certificate",
            "ttl_exceeds_root", "url", "token"} <= set(doc["doc"]["options"])
    assert doc["doc"]["attributes"]["action_group"]["membership"] == ["meshpki.vault_ca.vault"]
    examples = doc["examples"]
    assert "mount: istioca" in examples and "kv_field: ca-key.pem" in examples and "ttl: 43800h" in examples
    assert "renew_before:" in examples and "signing: external" in examples and "certificate:" in examples
    assert {"certificate", "ca_chain", "serial", "issuer_id", "key_id", "kv", "rotated", "previous_serial",
            "csr"} <= set(doc["return"])
