"""vault_pki_root against a real OpenBao server, through real ansible-playbook runs."""

import json
import os
import subprocess
import sys
import uuid

from conftest import assert_four_step
from cryptography import x509

from harness import certs
from harness.playbook import REPO, module_play


def _mount():
    return "pki-" + uuid.uuid4().hex[:8]


def _defaults(bao):
    return {"url": bao.url, "token": bao.token}


def _ca_pem(bao, mount):
    return bao.api("GET", "%s/cert/ca" % mount, token=None)["data"]["certificate"]


def _issuers(bao, mount):
    return bao.api("LIST", "%s/issuers" % mount)["data"]["key_info"]


def _load(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def test_four_steps_generate_ttl_only_change_and_request_counts(bao, playbook):
    """The guide's root: check -> changed, apply -> changed, check/apply -> unchanged with no write; a ttl-only
    change is reported, not applied; a first and a no-change run are counted in the audit log."""
    mount = _mount()
    args = {"mount": mount, "common_name": "tetrate.io", "ttl": "8760h"}
    play = module_play("vault_pki_root", args, defaults=_defaults(bao))
    mark = bao.audit.mark()
    runs = []
    for check, expected in ((True, True), (False, True), (True, False), (False, False)):
        before = bao.audit.mark()
        run = playbook(play, check=check, diff=True)
        assert run.rc == 0, run
        assert (run.task("task")["status"] == "changed") is expected, run
        runs.append((run, bao.audit.requests(since=before), bao.audit.writes(since=before)))
    check1, apply1, check2, apply2 = runs
    assert check1[2] == [] and check2[2] == [] and apply2[2] == []
    assert apply1[2] == [("update", "sys/mounts/" + mount), ("update", mount + "/root/generate/internal"),
                         ("update", mount + "/config/issuers")]
    assert apply2[1] == [("read", "sys/mounts"), ("read", mount + "/issuer/default")]  # one read per object
    print("\nvault_pki_root requests: first run %d (%d writes), no-change run %d (%d writes)"
          % (len(apply1[1]), len(apply1[2]), len(apply2[1]), len(apply2[2])))

    result = apply1[0].task("task")["result"]
    assert result["action"] == "create" and result["subject"] == "CN=tetrate.io"
    assert result["key_type"] == "rsa" and result["key_bits"] == 2048 and result["max_lease_ttl"] == "8760h"
    cert = _load(_ca_pem(bao, mount))
    assert result["certificate"].strip() == _ca_pem(bao, mount).strip()
    assert result["serial"] == _issuers(bao, mount)[result["issuer_id"]]["serial_number"]
    assert int(result["serial"].replace(":", ""), 16) == cert.serial_number
    lifetime = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds()
    assert abs(lifetime - (8760 * 3600 + 30)) <= 2  # Vault backdates not_before by 30 s
    assert bao.api("GET", "sys/mounts/%s/tune" % mount)["data"]["max_lease_ttl"] == 8760 * 3600
    # --diff: nothing before, the requested root after (check mode cannot know the serial)
    diff = check1[0].task("task")["result"]["diff"]
    assert diff["before"] == {} and diff["after"]["subject"] == "CN=tetrate.io" and diff["after"]["serial"] == "(new)"
    assert "+    \"subject\": \"CN=tetrate.io\"" in check1[0].stdout
    assert apply2[0].task("task")["result"]["serial"] == result["serial"]

    # ttl-only change: reported in pending_changes, nothing re-generated or written
    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_root", dict(args, ttl="4380h", max_lease_ttl="8760h"),
                               defaults=_defaults(bao)))
    assert run.rc == 0, run
    task = run.task("task")
    assert task["status"] == "ok" and task["result"]["serial"] == result["serial"]
    assert any(note.startswith("ttl: the certificate lives 8760h") for note in task["result"]["pending_changes"])
    assert bao.audit.writes(since=mark) == []


def test_differing_root_is_never_replaced_without_force(bao, playbook):
    mount = _mount()
    bao.api("POST", "sys/mounts/" + mount, {"type": "pki", "config": {"max_lease_ttl": "8760h"}})
    old = bao.api("POST", mount + "/root/generate/internal", {"common_name": "old.example.com", "ttl": "100h"})["data"]
    args = {"mount": mount, "common_name": "tetrate.io", "key_type": "ec", "ttl": "8760h"}
    mark = bao.audit.mark()
    for check in (True, False):
        run = playbook(module_play("vault_pki_root", args, defaults=_defaults(bao)), check=check)
        assert run.rc != 0
        msg = run.task("task")["result"]["msg"]
        assert "already has a different root CA" in msg and old["serial_number"] in msg
        assert "subject is 'CN=old.example.com', requested 'CN=tetrate.io'" in msg
        assert "key is RSA 2048, requested EC 256" in msg
        assert "set force: true" in msg and "Nothing was changed" in msg
    assert bao.audit.writes(since=mark) == []
    assert _ca_pem(bao, mount).strip() == old["certificate"].strip()

    run = playbook(module_play("vault_pki_root", dict(args, force=True), defaults=_defaults(bao)), diff=True)
    assert run.rc == 0, run
    result = run.task("task")["result"]
    assert result["changed"] and result["action"] == "replace" and result["replaced"]
    assert result["previous_serial"] == old["serial_number"] and result["serial"] != old["serial_number"]
    assert result["diff"]["before"]["subject"] == "CN=old.example.com"
    assert result["diff"]["after"]["subject"] == "CN=tetrate.io" and result["diff"]["after"]["key"] == "EC 256"
    new = _load(_ca_pem(bao, mount))
    assert new.subject.rfc4514_string() == "CN=tetrate.io"
    issuers = _issuers(bao, mount)
    assert set(issuers) == {old["issuer_id"], result["issuer_id"]}  # the old root stays in the mount
    assert issuers[result["issuer_id"]]["is_default"]
    # and the forced root is now the one asked for: a re-run (force still set) keeps it
    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_root", dict(args, force=True), defaults=_defaults(bao)))
    assert run.task("task")["status"] == "ok" and bao.audit.writes(since=mark) == []


def test_import_bundle_and_offline_certificate_key_never_in_output(bao, playbook):
    """Bring-your-own root (certificate + key, no_log) and an offline root (certificate only)."""
    own = certs.make_ca("Own Root CA", days=400)
    bundle_mount, offline_mount = _mount(), _mount()
    key_slice = own.key_pem.splitlines()[2]
    plays = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
              "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)},
              "tasks": [
                  {"name": "bundle", "meshpki.vault_ca.vault_pki_root": {
                      "mount": bundle_mount, "pem_bundle": own.cert_pem + own.key_pem, "max_lease_ttl": "8760h"}},
                  {"name": "offline", "meshpki.vault_ca.vault_pki_root": {
                      "mount": offline_mount, "certificate": own.cert_pem}},
              ]}]
    runs = assert_four_step(playbook, plays)
    for run in runs:
        assert key_slice not in run.output and key_slice not in json.dumps(run.results)
    bundle = runs[1].task("bundle")["result"]
    offline = runs[1].task("offline")["result"]
    assert bundle["action"] == "import" and offline["action"] == "import"
    assert bundle["subject"] == offline["subject"] == "CN=Own Root CA"
    assert bundle["key_id"] and offline["key_id"] is None  # the offline root's key is not in Vault
    assert _load(_ca_pem(bao, bundle_mount)) == own.cert
    # OpenBao serves an issuer without key from issuer/default/json only (cert/ca answers 400): the module says so
    assert _load(bao.api("GET", offline_mount + "/issuer/default/json", token=None)["data"]["certificate"]) == own.cert
    assert any("/issuer/default/json" in w for w in runs[1].task("offline")["result"]["warnings"])
    assert runs[3].task("bundle")["status"] == "ok"

    # the offline root cannot sign: the intermediate says so before writing anything
    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_intermediate", {
        "mount": "int-" + uuid.uuid4().hex[:8], "root_mount": offline_mount, "kv_path": "x-" + uuid.uuid4().hex[:8],
        "common_name": "Own Intermediate", "ttl": "100h"}, defaults=_defaults(bao)))
    assert run.rc != 0
    msg = run.task("task")["result"]["msg"]
    assert "is a certificate without its key in Vault (an offline root)" in msg and "signing: external" in msg
    assert bao.audit.writes(since=mark) == []

    # a different bundle over an existing root needs force, like a generated one
    other = certs.make_ca("Other Root CA", days=400)
    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_root", {"mount": bundle_mount, "pem_bundle": other.cert_pem + other.key_pem},
                               defaults=_defaults(bao)))
    assert run.rc != 0 and "already has a different root CA" in run.task("task")["result"]["msg"]
    assert other.key_pem.splitlines()[2] not in run.output
    assert bao.audit.writes(since=mark) == []


def test_bad_input_fails_clearly_and_writes_nothing(bao, playbook):
    mount = _mount()
    own = certs.make_ca("Own Root CA", days=400)
    stranger = certs.make_ca("Stranger", days=400)
    cases = [
        ({"common_name": "x", "key_bits": 1024}, "key_bits 1024 is not valid with key_type rsa"),
        ({"common_name": "x", "key_type": "ec", "key_bits": 521}, "EC keys for an Istio CA must be P-256 (256) or"),
        ({"common_name": "x", "ttl": "forever"}, "ttl 'forever' is not a duration"),
        ({"common_name": "x", "ttl": "87600h", "max_lease_ttl": "8760h"},
         "ttl 87600h is longer than max_lease_ttl 8760h of the mount '%s'" % mount),
        ({"common_name": "  "}, "common_name must not be empty"),
        ({"pem_bundle": own.cert_pem + stranger.key_pem}, "is not the key of its first certificate"),
        ({"pem_bundle": own.cert_pem}, "exactly one unencrypted private key (found 0 keys)"),
        ({"certificate": own.cert_pem + own.key_pem}, "certificate contains a private key"),
        ({"certificate": own.cert_pem, "organization": ["x"]}, "organization only apply to a generated root"),
        ({"common_name": "x", "certificate": own.cert_pem}, "mutually exclusive"),
    ]
    tasks = [{"name": "case%d" % i, "ignore_errors": True,
              "meshpki.vault_ca.vault_pki_root": dict(args, mount=mount)} for i, (args, _m) in enumerate(cases)]
    mark = bao.audit.mark()
    run = playbook([{"hosts": "localhost", "gather_facts": False, "connection": "local",
                     "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)}, "tasks": tasks}])
    for i, (_args, message) in enumerate(cases):
        task = run.task("case%d" % i)
        assert task["status"] == "failed", (i, task)
        assert message in task["result"]["msg"], (i, task["result"]["msg"])
    assert bao.audit.requests(since=mark) == []  # validated before the first request
    assert stranger.key_pem.splitlines()[2] not in run.output


def test_ansible_doc_renders():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "meshpki.vault_ca.vault_pki_root"], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["meshpki.vault_ca.vault_pki_root"]
    assert {"mount", "common_name", "pem_bundle", "certificate", "force", "url", "token"} <= set(doc["doc"]["options"])
    assert doc["doc"]["attributes"]["action_group"]["membership"] == ["meshpki.vault_ca.vault"]
    assert "common_name: tetrate.io" in doc["examples"] and "ttl: 8760h" in doc["examples"]
    assert {"certificate", "serial", "subject", "not_after", "issuer_id", "key_type", "key_bits"} <= set(doc["return"])
