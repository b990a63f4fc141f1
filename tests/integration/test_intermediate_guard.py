"""Issue 15, point 1: the intermediate is never replaced without a guard.

A new subject, key type or key size alone (a changed variable, or one forgotten on a later run) makes
vault_pki_intermediate fail - naming the mount, what differs as old -> new and the switch (force) - in check
mode too, with no write in the audit log. force rotates once: the next plain run changes nothing. Inside
renew_before the renewal stays automatic and takes the new values. A ttl change alone replaces nothing.

Through the role (file mode, a fake Kubernetes API): a new istio_vault_ca_intermediate_common_name fails
naming the role variables; one run with -e istio_vault_ca_rotate=true rotates (a new KV version, the old one
kept); the next run without it changes nothing."""

import os
import sys
import uuid

import pytest
import yaml
from conftest import assert_four_step

from harness.fake_k8s import FakeKubeApi
from harness.playbook import REPO, module_play

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402

CN = "tetrate.io Intermediate Authority"
ARROW = "\u2192"


class Names(object):
    def __init__(self):
        suffix = uuid.uuid4().hex[:8]
        self.root = "pki-" + suffix
        self.int = "istioca-" + suffix
        self.kv_path = "istioca-" + suffix

    def args(self, **extra):
        args = {"mount": self.int, "root_mount": self.root, "kv_path": self.kv_path, "common_name": CN,
                "ttl": "4380h"}
        args.update(extra)
        return args


def _defaults(bao):
    return {"url": bao.url, "token": bao.token}


def _make_root(bao, mount):
    bao.api("POST", "sys/mounts/" + mount, {"type": "pki", "config": {"max_lease_ttl": "8760h"}})
    bao.api("POST", mount + "/root/generate/internal", {"common_name": "tetrate.io", "ttl": "8760h"})


def _kv(bao, path, version=None):
    suffix = "?version=%d" % version if version else ""
    return bao.api("GET", "secret/data/%s%s" % (path, suffix))["data"]


def _first(bao, playbook, names, **extra):
    _make_root(bao, names.root)
    run = playbook(module_play("vault_pki_intermediate", names.args(**extra), defaults=_defaults(bao)))
    assert run.rc == 0, run
    return run.task("task")["result"]


# ------------------------------------------------------------------------------------------------ module
def test_new_subject_or_key_is_refused_naming_old_new_and_force_and_writes_nothing(bao, playbook):
    names = Names()
    old = _first(bao, playbook, names)
    cases = [
        ("cn", {"common_name": "other"}, "subject 'CN=%s' %s 'CN=other'" % (CN, ARROW)),
        ("key-type", {"key_type": "ec"}, "key RSA 2048 %s EC 256" % ARROW),
        ("key-bits", {"key_bits": 4096}, "key RSA 2048 %s RSA 4096" % ARROW),
        ("both", {"common_name": "other", "key_type": "ec", "key_bits": 384},
         "subject 'CN=%s' %s 'CN=other', key RSA 2048 %s EC 384" % (CN, ARROW, ARROW)),
        # renew_before set, but the intermediate is far from it: no renewal, so no new values either
        ("renew-before-far", {"common_name": "other", "renew_before": "720h"}, "subject 'CN=%s' %s" % (CN, ARROW)),
    ]
    tasks = [{"name": cid, "ignore_errors": True, "meshpki.vault_ca.vault_pki_intermediate": names.args(**args)}
             for cid, args, _m in cases]
    # a ttl (and max_path_length) change alone replaces nothing: reported, not changed (the mount's
    # max_lease_ttl kept: a tune is a change of its own)
    tasks.append({"name": "ttl", "meshpki.vault_ca.vault_pki_intermediate": names.args(
        ttl="2000h", max_lease_ttl="4380h", max_path_length=0)})
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "module_defaults": {"group/meshpki.vault_ca.vault": _defaults(bao)}, "tasks": tasks}]
    for check in (True, False):
        mark = bao.audit.mark()
        run = playbook(play, check=check, diff=True)
        for cid, _args, difference in cases:
            task = run.task(cid)
            assert task["status"] == "failed", (check, cid, task)  # in check mode: a failure-to-be, not changed
            msg = task["result"]["msg"]
            assert ("The mount '%s' already has a different intermediate CA (default issuer %s, serial %s): "
                    % (names.int, old["issuer_id"], old["serial"])) in msg, msg
            assert difference in msg, (cid, msg)
            assert "set force: true once" in msg and "Nothing was changed." in msg, msg
            assert "'secret/%s' as version 1" % names.kv_path in msg, msg
            assert task["result"]["guard"]["changes"][0]["old"], task["result"]
        ttl = run.task("ttl")
        assert ttl["status"] == "ok", ttl
        assert any(note.startswith("ttl: the certificate lives") for note in ttl["result"]["pending_changes"]), ttl
        assert any(note.startswith("max_path_length") for note in ttl["result"]["pending_changes"]), ttl
        assert bao.audit.writes(since=mark) == [], check  # nothing written for any refused input
    assert _kv(bao, names.kv_path)["metadata"]["version"] == 1
    assert bao.api("GET", names.int + "/config/issuers")["data"]["default"] == old["issuer_id"]


def test_refused_without_force_then_force_rotates_once(bao, playbook):
    """RSA -> EC with a new common name: refused without force (check and apply); then the four steps -
    check -> changed and apply -> changed with force, check and apply without it -> not changed."""
    names = Names()
    old = _first(bao, playbook, names)
    new_values = dict(common_name="other", key_type="ec", key_bits=256)
    plain = module_play("vault_pki_intermediate", names.args(**new_values), defaults=_defaults(bao))
    mark = bao.audit.mark()
    for check_mode in (True, False):
        refused = playbook(plain, check=check_mode)
        assert refused.rc != 0 and refused.task("task")["status"] == "failed", (check_mode, refused)
    assert bao.audit.writes(since=mark) == []

    forced = module_play("vault_pki_intermediate", names.args(force=True, **new_values), defaults=_defaults(bao))
    steps = [(forced, True, True), (forced, False, True), (plain, True, False), (plain, False, False)]
    runs = []
    for plays, check_mode, expected in steps:
        run = playbook(plays, check=check_mode, diff=True)
        assert run.rc == 0, run
        assert (run.task("task")["status"] == "changed") is expected, (check_mode, expected, run)
        runs.append(run)
        if len(runs) == 2:
            mark = bao.audit.mark()
    assert runs[0].task("task")["result"]["rotated"] and runs[0].task("task")["result"]["action"] == "issue"
    new = runs[1].task("task")["result"]
    assert new["rotated"] and new["previous_serial"] == old["serial"]
    assert new["subject"] == "CN=other" and (new["key_type"], new["key_bits"]) == ("ec", 256)
    assert new["kv"]["version"] == 2 and _kv(bao, names.kv_path, 1)["data"]["ca-key.pem"]  # the old key kept
    assert bao.audit.writes(since=mark) == []  # the plain check and apply after the rotation


def test_inside_renew_before_the_renewal_takes_the_new_values_without_force(bao, playbook):
    names = Names()
    old = _first(bao, playbook, names, ttl="1h")
    renew = module_play("vault_pki_intermediate", names.args(ttl="10h", renew_before="2h", common_name="renewed"),
                        defaults=_defaults(bao))
    check = playbook(renew, check=True)
    assert check.task("task")["status"] == "changed", check
    run = playbook(renew)
    assert run.rc == 0, run
    new = run.task("task")["result"]
    assert new["rotated"] and new["previous_serial"] == old["serial"] and new["subject"] == "CN=renewed"
    assert any("within renew_before" in w and "also changes subject 'CN=%s' %s 'CN=renewed'" % (CN, ARROW) in w
               for w in new["warnings"]), new["warnings"]
    assert new["kv"]["version"] == 2
    mark = bao.audit.mark()
    assert playbook(renew).task("task")["status"] == "ok" and bao.audit.writes(since=mark) == []


def test_external_signing_is_guarded_too(bao, playbook):
    """signing: external - a new subject would store a new key and CSR: refused as well."""
    names = Names()
    offline = "offline-" + uuid.uuid4().hex[:8]
    _make_root(bao, offline)
    args = names.args(signing="external", root_mount="does-not-matter", key_type="ec")
    assert_four_step(playbook, module_play("vault_pki_intermediate", args, defaults=_defaults(bao)))
    csr = _kv(bao, names.kv_path)["data"]["csr"]
    signed = bao.api("POST", offline + "/root/sign-intermediate",
                     {"csr": csr, "common_name": CN, "format": "pem", "ttl": "2000h"})["data"]["certificate"]
    root_pem = bao.api("GET", offline + "/cert/ca", token=None)["data"]["certificate"]
    done = playbook(module_play("vault_pki_intermediate", dict(args, certificate=signed, ca_chain=root_pem),
                                defaults=_defaults(bao)))
    assert done.rc == 0, done
    mark = bao.audit.mark()
    run = playbook(module_play("vault_pki_intermediate", dict(args, common_name="other"), defaults=_defaults(bao),
                               ignore_errors=True))
    assert run.task("task")["status"] == "failed", run
    assert "subject 'CN=%s' %s 'CN=other'" % (CN, ARROW) in run.task("task")["result"]["msg"]
    assert bao.audit.writes(since=mark) == []


# ------------------------------------------------------------------------------------------------ role
@pytest.fixture
def cluster(tmp_path):
    api = FakeKubeApi().start()
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    embedded.seed_controlplane(kubeconfig)
    yield kubeconfig
    api.stop()


def _role_vars(bao, kubeconfig, tmp_path, **more):
    suffix = uuid.uuid4().hex[:8]
    manifest = tmp_path / "controlplane.yaml"
    manifest.write_text(yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE))
    values = {
        "istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
        "istio_vault_ca_root_mount": "pki-" + suffix,
        "istio_vault_ca_intermediate_mount": "istioca-" + suffix,
        "istio_vault_ca_kv_path": "istioca-" + suffix,
        "istio_vault_ca_policy_name": "istioca-" + suffix,
        "istio_vault_ca_k8s_auth_mount": "kubernetes-" + suffix,
        "istio_vault_ca_manifest_path": str(manifest),
        "istio_vault_ca_kubeconfig": kubeconfig,
        "istio_vault_ca_k8s_token_reviewer": {"create": True, "service_account": "reviewer-" + suffix},
    }
    values.update(more)
    return values


def _role_play(values):
    return [{"name": "istio_vault_ca", "hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": values, "roles": [{"role": "meshpki.vault_ca.istio_vault_ca"}]}]


def _intermediate(run, mount):
    return run.task("meshpki.vault_ca.istio_vault_ca : Ensure the Istio intermediate CA in " + mount)


def test_role_names_its_variables_when_the_root_differs_and_rotate_does_not_replace_it(bao, playbook, cluster,
                                                                                       tmp_path):
    """A new key type/size (which the role applies to the root too) or root common name: the root task refuses in
    the role's words - the variables, that istio_vault_ca_rotate is for the intermediate only - and nothing is
    written, also with -e istio_vault_ca_rotate=true."""
    values = _role_vars(bao, cluster, tmp_path)
    first = playbook(_role_play(values))
    assert first.rc == 0, first
    for changed in ({"istio_vault_ca_key_type": "ec", "istio_vault_ca_key_bits": 256},
                    {"istio_vault_ca_root_common_name": "other.example"}):
        for extra in ((), ("-e", "istio_vault_ca_rotate=true")):
            mark = bao.audit.mark()
            refused = playbook(_role_play(dict(values, **changed)), extra_args=extra)
            assert refused.rc != 0, refused
            msg = [r for r in refused.results if r["status"] == "failed"][-1]["result"]["msg"]
            assert "already has a different root CA" in msg and "istio_vault_ca_key_type" in msg, msg
            assert "istio_vault_ca_rotate rotates the intermediate only" in msg and "Nothing was changed." in msg, msg
            assert bao.audit.writes(since=mark) == [], (changed, extra)


def test_role_refuses_a_new_common_name_until_rotate_then_converges(bao, playbook, cluster, tmp_path):
    values = _role_vars(bao, cluster, tmp_path)
    mount, kv_path = values["istio_vault_ca_intermediate_mount"], values["istio_vault_ca_kv_path"]
    first = playbook(_role_play(values))
    assert first.rc == 0, first
    old = _intermediate(first, mount)["result"]

    renamed = dict(values, istio_vault_ca_intermediate_common_name=CN + " 2")
    for check in (True, False):
        mark = bao.audit.mark()
        refused = playbook(_role_play(renamed), check=check, diff=True)
        assert refused.rc != 0, refused
        assert not [r for r in refused.results if r["status"] == "changed"], refused
        failed = [r for r in refused.results if r["status"] == "failed"]
        msg = failed[-1]["result"]["msg"]
        assert ("The mount '%s' already has a different intermediate CA (default issuer %s, serial %s) than the "
                "role's variables ask for: subject 'CN=%s' %s 'CN=%s 2' (istio_vault_ca_intermediate_common_name)."
                % (mount, old["issuer_id"], old["serial"], CN, ARROW, CN)) in msg, msg
        assert "run the playbook once with -e istio_vault_ca_rotate=true" in msg, msg
        assert "the old key stays in secret/%s as version 1" % kv_path in msg and "Nothing was changed." in msg, msg
        assert "force" not in msg, msg  # the role's words, not the module's
        assert bao.audit.writes(since=mark, include_logins=True) == [], check

    rotate = playbook(_role_play(renamed), extra_args=("-e", "istio_vault_ca_rotate=true"))
    assert rotate.rc == 0, rotate
    new = _intermediate(rotate, mount)
    assert new["status"] == "changed" and new["result"]["rotated"], new
    assert new["result"]["subject"] == "CN=%s 2" % CN and new["result"]["previous_serial"] == old["serial"]
    current = _kv(bao, kv_path)
    assert current["metadata"]["version"] == 2
    assert _kv(bao, kv_path, 1)["data"]["ca-key.pem"] not in ("", None, current["data"]["ca-key.pem"])

    mark = bao.audit.mark()
    again = playbook(_role_play(renamed))
    assert again.rc == 0, again
    assert [r["task"] for r in again.results if r["status"] == "changed"] == [], again
    assert bao.audit.writes(since=mark) == []
