"""Issue 18: ``ansible-playbook meshpki.vault_ca.rotate_root --check`` at each point of a rotation - no rotation
yet, trust with the margin passed, sign with the wait passed, an abort from sign - writes nothing to Vault (the
audit log), leaves no token behind (as the main playbook's check run: compared), and says what a real run would
do: the phase it would reach, the root rotation's writes, which clusters' intermediates would be re-issued, the
record before and after (--diff), a summary per cluster. Then the real run, which must do just that.

Three clusters, the real playbooks against a real OpenBao (one server for the module, a mesh per test).
"""

import uuid

import test_root_rotation as rotation
import yaml
from test_root_rotation import MAIN, ROTATE, STATS, phase_result, sleep_until

# the fixtures of test_root_rotation.py: one OpenBao for this module, a mesh of three clusters per test
rbao = rotation.rbao
mesh = rotation.mesh

INTERMEDIATE = "meshpki.vault_ca.vault_pki_intermediate"
TIMES = ("trust_at", "sign_at", "retire_at", "aborted_at", "next_phase_at")


def accessors(bao):
    return set(bao.api("LIST", "auth/token/accessors")["data"]["keys"])


def check_run(mesh, label, playbook=ROTATE, inventory=None, *extra):
    """A --check --diff run: (run, writes, tokens it created, tokens it left behind)."""
    bao = mesh.bao
    before, mark = accessors(bao), bao.audit.mark()
    run = mesh.runner.run_file(playbook, inventory=inventory or mesh.inventory, check=True, diff=True,
                               extra_args=list(extra))
    writes, created = bao.audit.writes(since=mark), bao.audit.created_tokens(since=mark)
    STATS.append((label, round(run.duration, 1), len(writes)))
    return run, writes, created, accessors(bao) - before


def reissued(run):
    """The clusters whose intermediate task changed (would change, in check mode)."""
    return sorted(r["host"] for r in run.results if r["action"] == INTERMEDIATE and r["status"] == "changed")


def summaries(run):
    return dict((r["host"], r["result"]["msg"]) for r in run.results if r["task"].endswith("Rotation summary"))


def check_then_real(mesh, label, *extra):
    """The check run writes nothing and plans exactly what the real run then does. Returns both results."""
    check, writes, created, left = check_run(mesh, label + " --check", ROTATE, None, *extra)
    assert check.rc == 0, check.failed_msgs()
    assert writes == [] and created == [] and left == set(), (writes, created, left)
    plan = phase_result(check)
    would = reissued(check)
    lines = summaries(check)
    assert sorted(lines) == sorted(mesh.hosts), lines
    for host, msg in lines.items():
        assert msg[0].startswith("rotation:      Check mode, nothing was written: a real run would"), msg
        assert msg[1] == "phase:         " + plan["phase"], msg
        assert ("would be re-issued from root" in msg[4]) is (host in would), msg
        assert msg[5].startswith("writes:        would write " + ", ".join(plan["writes"])), msg
    assert "(root rotation record)" in check.stdout  # --diff shows the record before and after
    diff = plan["diff"]
    assert diff["before"].get("phase", "") == ("" if plan["previous_phase"] == "none" else plan["previous_phase"])
    assert diff["after"]["phase"] == plan["phase"] and diff["after"]["writes"] == plan["writes"]

    mark = mesh.bao.audit.mark()
    run, real_writes = mesh.rotate(label, *extra)
    assert run.rc == 0, run
    done = phase_result(run)
    assert (done["phase"], done["advanced"], done["writes"]) == (plan["phase"], plan["advanced"], plan["writes"])
    # the rotation's writes come first, then the intermediates of exactly the clusters the check named
    assert [path for _op, path in real_writes[:len(done["writes"])]] == done["writes"], real_writes
    assert reissued(run) == would
    mounts = set(path.split("/")[0] for _op, path in real_writes[len(done["writes"]):] if "/intermediate/" in path)
    assert mounts == set(mesh.hosts[host]["istio_vault_ca_intermediate_mount"] for host in would), real_writes
    assert mesh.bao.audit.writes(since=mark) == real_writes
    record = dict((k, v) for k, v in done["record"].items() if k not in TIMES)
    planned = dict((k, v) for k, v in plan["record"].items() if k not in TIMES)
    if planned.get("new_issuer_id") == "(new root)":  # B did not exist before the real run
        assert planned["trusted"] == record["old_issuer_id"] + ",(new root)"
        planned.update(new_issuer_id=record["new_issuer_id"], trusted=record["trusted"])
    assert planned == record, (planned, record)
    assert plan["signer_issuer_id"] == done["signer_issuer_id"]
    assert [r["serial"] for r in plan["roots"] if r["issuer_id"]] == \
        [r["serial"] for r in done["roots"] if r["issuer_id"] in [p["issuer_id"] for p in plan["roots"]]]
    return plan, done, would


def test_check_mode_at_each_point_writes_nothing_and_plans_the_real_run(mesh):
    first = len(STATS)
    # the main playbook's check run, to compare with: no write, no token left behind
    main, writes, _created, left = check_run(mesh, "main --check", MAIN)
    assert main.rc == 0 and writes == [] and left == set(), (main, writes, left)

    plan, done, would = check_then_real(mesh, "start")
    assert plan["phase"] == "trust" and would == []
    assert plan["writes"] == [mesh.root_mount + "/root/rotate/internal", "secret/data/" + mesh.bundle_path]
    assert [r["serial"] for r in plan["roots"]][1] == "(new root)"

    sleep_until(mesh.record()["next_phase_at"])
    plan, done, would = check_then_real(mesh, "trust -> sign")
    assert plan["phase"] == "sign" and would == sorted(mesh.hosts)  # every intermediate, from B
    assert plan["writes"] == ["secret/data/" + mesh.bundle_path, mesh.root_mount + "/config/issuers"]
    assert plan["signer_issuer_id"] == done["record"]["new_issuer_id"]

    sleep_until(mesh.record()["next_phase_at"], slack=60)
    plan, done, would = check_then_real(mesh, "sign -> retire")
    assert plan["phase"] == "retire" and would == [] and len(plan["roots"]) == 1
    assert plan["diff"]["before"]["roots"] != plan["diff"]["after"]["roots"]
    for label, seconds, count in STATS[first:]:
        print("rotation run %-26s %6.1f s  %d write(s)" % (label, seconds, count))


def test_check_mode_of_an_abort_from_sign(mesh):
    first = len(STATS)
    run, _writes = mesh.rotate("start")
    assert run.rc == 0 and phase_result(run)["phase"] == "trust", run
    sleep_until(mesh.record()["next_phase_at"])
    run, _writes = mesh.rotate("sign")
    assert run.rc == 0 and phase_result(run)["phase"] == "sign", run
    plan, done, would = check_then_real(mesh, "abort from sign", "-e", "istio_vault_ca_root_rotation=abort")
    assert plan["phase"] == "aborted" and would == sorted(mesh.hosts)  # every intermediate, back to A
    assert plan["signer_issuer_id"] == done["record"]["old_issuer_id"]
    for label, seconds, count in STATS[first:]:
        print("rotation run %-26s %6.1f s  %d write(s)" % (label, seconds, count))


def test_check_mode_logs_in_and_out_like_the_main_playbooks_check_run(mesh):
    """With a login (userpass), the check run's session is the main playbook's: one login, its token revoked at
    the end (the only write), nothing left behind."""
    bao = mesh.bao
    name = "userpass-" + uuid.uuid4().hex[:6]
    policy = "admin-" + name
    bao.api("POST", "sys/auth/" + name, {"type": "userpass"})
    bao.api("PUT", "sys/policies/acl/" + policy, {"policy": 'path "*" { capabilities = ["create", "read", '
                                                            '"update", "delete", "list", "sudo"] }'})
    password = uuid.uuid4().hex
    bao.api("POST", "auth/%s/users/operator" % name, {"password": password, "token_policies": policy})
    doc = yaml.safe_load(open(mesh.inventory))
    doc["istio_clusters"]["vars"]["istio_vault_ca_vault"] = {"url": bao.url, "auth_method": "userpass",
                                                             "auth_mount": name, "username": "operator",
                                                             "password": password}
    inventory = mesh.tmp_path / "inventory-userpass.yml"
    inventory.write_text(yaml.safe_dump(doc))
    main = check_run(mesh, "main --check (login)", MAIN, str(inventory))
    rotate = check_run(mesh, "rotate --check (login)", ROTATE, str(inventory))
    for run, _writes, created, left in (main, rotate):
        assert run.rc == 0, run
        assert len(created) == 1 and left == set(), (created, left)
    assert [path for _op, path in rotate[1]] == [path for _op, path in main[1]], (rotate[1], main[1])
