"""Checks of the benchmark's measuring tools (not of the collection): what they count must be right
before their numbers mean anything.

    .venv/bin/python -m pytest benchmarks -q
"""

import json
import os
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.join(os.path.dirname(BENCH), "tests")]

import bench  # noqa: E402
import measure  # noqa: E402
import report  # noqa: E402

from harness.audit import AuditLog  # noqa: E402


def test_fit_recovers_a_line_and_its_quality():
    a, b, r2 = report.fit([(1, 7.0), (10, 16.0), (50, 56.0)])
    assert abs(a - 6.0) < 1e-9 and abs(b - 1.0) < 1e-9 and abs(r2 - 1.0) < 1e-9
    a, b, r2 = report.fit([(1, 5.0), (10, 20.0), (50, 30.0)])
    assert r2 < 0.95
    assert report.fit([(10, 1.0), (10, 2.0)]) is None


def test_stats_and_formatting():
    st = report.stats([3.0, 1.0, 2.0, None])
    assert st == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    assert report.t(st) == "2.0 s (1.0–3.0, n=3)"
    assert report.num(report.stats([4, 4])) == "4"
    assert report.num(report.stats([4, 6, 5])) == "5 (4–6)"


def _audit_line(kind, operation, path, error=None):
    entry = {"type": kind, "request": {"operation": operation, "path": path}}
    if error:
        entry["error"] = error
    return json.dumps(entry) + "\n"


def test_audit_summary_counts_from_a_mark(tmp_path):
    log = tmp_path / "audit.log"
    log.write_text(_audit_line("request", "update", "sys/mounts/old"))
    audit = AuditLog(str(log))
    mark = audit.mark()
    with open(str(log), "a") as f:
        f.write(_audit_line("request", "update", "auth/approle/login"))
        f.write(_audit_line("response", "update", "auth/approle/login"))
        f.write(_audit_line("request", "read", "sys/mounts"))
        f.write(_audit_line("request", "list", "pki/issuers"))
        f.write(_audit_line("request", "update", "auth/token/create"))
        f.write(_audit_line("request", "create", "secret/data/istioca"))
        f.write(_audit_line("request", "update", "sys/mounts/pki"))
        f.write(_audit_line("response", "update", "sys/mounts/pki", error="path is already in use"))
        f.write(_audit_line("request", "read", "auth/token/lookup-self"))
    summary = audit.summary(mark)
    assert summary["requests"] == 7  # the entry before the mark and the responses are not requests counted
    assert summary["reads"] == 3
    assert summary["logins"] == 1
    assert summary["writes"] == 3  # token creation, KV write, mount; the login is not a write
    assert summary["write_paths"] == ["auth/token/create", "secret/data/istioca", "sys/mounts/pki"]
    assert summary["token_creates"] == 1 and summary["token_lookups"] == 1
    assert summary["failed"] == 1


def test_recap_sums_every_host():
    out = ("PLAY RECAP ****\n"
           "c001 : ok=9    changed=2    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0\n"
           "c002 : ok=8    changed=0    unreachable=0    failed=1    skipped=3    rescued=0    ignored=0\n")
    assert bench.recap(out) == {"ok": 17, "changed": 2, "unreachable": 0, "failed": 1, "skipped": 6}


def test_timing_summary_keeps_skipped_hosts_apart(tmp_path):
    started = 100.0
    path = tmp_path / "timing.json"
    path.write_text(json.dumps({"playbook_start": 100.5, "end": 110.0, "tasks": [
        {"name": "role : Ensure the root CA", "action": "meshpki.vault_ca.vault_pki_root", "start": 101.0,
         "end": 103.0, "hosts": {"a": [101.1, 102.0, "ok"], "b": [101.2, 103.0, "skipped"]}},
        {"name": "role : never ran", "action": "ansible.builtin.debug", "start": 104.0, "end": None, "hosts": {}},
    ]}))
    summary = bench.timing_summary(str(path), started)
    assert [task["name"] for task in summary["tasks"]] == ["Ensure the root CA"]
    task = summary["tasks"][0]
    assert task["hosts"] == 2 and task["ran"] == 1
    assert abs(task["wall"] - 2.0) < 1e-9 and abs(summary["startup"] - 1.1) < 1e-9


def test_run_measured_counts_the_cpu_and_memory_of_grandchildren(tmp_path):
    # a shell whose child Python holds 80 MB for a while and burns CPU: both must show up
    child = ("import time\nb = bytearray(80 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
             "while time.process_time() < 0.6: pass\n")  # CPU time, whatever else the machine runs
    script = tmp_path / "child.py"
    script.write_text(child)
    result = measure.run_measured(["/bin/sh", "-c", "%s %s; true" % (sys.executable, script)], dict(os.environ),
                                  str(tmp_path), str(tmp_path / "log"))
    assert result["rc"] == 0
    assert result["cpu"] >= 0.5
    assert result["peak_rss"] >= 80 * 1024 * 1024
    assert result["peak_pss"] >= 70 * 1024 * 1024
    assert result["peak_procs"] >= 2
    assert result["wall"] >= result["cpu"] - 0.05


def test_run_measured_reports_the_exit_code(tmp_path):
    started = time.time()
    result = measure.run_measured(["/bin/sh", "-c", "exit 3"], dict(os.environ), str(tmp_path), str(tmp_path / "l"))
    assert result["rc"] == 3 and time.time() - started < 5


def _frames(*processes, code=()):
    return ['process %d:"%s"' % (100 + i, cmd) for i, cmd in enumerate(processes)] + list(code)


PLAYBOOK = "/venv/bin/python3 /venv/bin/ansible-playbook site.yml"


def test_classify_stack_pipelined_and_file_modules():
    pipelined = _frames(PLAYBOOK, PLAYBOOK, "/bin/sh -c /bin/sh -c '/venv/bin/python3 && sleep 0'",
                        "/bin/sh -c /venv/bin/python3 && sleep 0", "/venv/bin/python3",
                        code=["<module> (<stdin>:266)", "_find_and_load (<frozen importlib._bootstrap>:1176)",
                              "<module> (hvac/__init__.py:1)", "<module> (requests/__init__.py:3)"])
    assert bench.classify_stack(pipelined) == ("module process", "importing hvac (+ requests, urllib3)")
    file_mode = _frames(PLAYBOOK, PLAYBOOK, "/bin/sh -c /venv/bin/python3 /tmp/x/AnsiballZ_vault_policy.py",
                        "/venv/bin/python3 /tmp/x/AnsiballZ_vault_policy.py",
                        code=["<module> (AnsiballZ_vault_policy.py:1)", "_find_and_load (<frozen importlib._b>:1)",
                              "get_code (<frozen zipimport>:701)", "_compile_source (<frozen zipimport>:695)"])
    assert bench.classify_stack(file_mode)[1].startswith("compiling the payload's Python sources")
    running = _frames(PLAYBOOK, PLAYBOOK, "/bin/sh -c x", "/venv/bin/python3", code=["run_module (vault_policy.py:3)"])
    assert bench.classify_stack(running)[1].startswith("running the module")
    assert bench.classify_stack(_frames(PLAYBOOK, PLAYBOOK, "/bin/sh -c x", "/venv/bin/python3"))[1].startswith(
        "starting and stopping")


def test_classify_stack_controller():
    build = _frames(PLAYBOOK, PLAYBOOK, code=["_find_module_utils (module_common.py:1)",
                                              "_compile_module_ast (ansible/executor/module_common.py:851)"])
    assert bench.classify_stack(build)[1].startswith("building the AnsiballZ payload")
    assert bench.classify_stack(_frames(PLAYBOOK, code=["StrategyBase._wait_on_pending_results (x.py:1)"])) == (
        "controller", "strategy loop waiting for results")
    assert bench.classify_stack(_frames(PLAYBOOK, "/bin/sh -c mkdir x")) == ("shell", "shell wrappers")


def test_parse_importtime_takes_the_first_cumulative_time_of_each_name():
    import import_times

    stderr = ("import time: self [us] | cumulative | imported package\n"
              "import time:       120 |        120 |   _io\n"
              "import time:      5000 |      41000 |     ansible.module_utils.basic\n"
              "import time:       300 |      90000 |   hvac\n"
              "import time:       100 |        100 |   hvac\n"  # a second line for the same name is ignored
              "import time:      2000 |     250000 | ansible_collections.x.plugins.modules.vault_policy\n"
              "not an importtime line\n")
    found = import_times.parse_importtime(stderr, ("hvac", "kubernetes", "ansible.module_utils.basic",
                                                   "ansible_collections.x.plugins.modules.vault_policy"))
    assert found == {"ansible.module_utils.basic": 0.041, "hvac": 0.09,
                     "ansible_collections.x.plugins.modules.vault_policy": 0.25}


def _record(section, variant, phase, wall, cpu, clusters=1, forks=1, **more):
    record = {"section": section, "variant": variant, "phase": phase, "wall": wall, "cpu": cpu,
              "clusters": clusters, "forks": forks, "rep": 0, "requests": 9, "reads": 9, "writes": 0,
              "peak_pss": 100 * report.MB, "peak_rss": 150 * report.MB, "recap": {"changed": 0, "failed": 0},
              "paths": []}
    record.update(more)
    return record


def _issue17_data(light=True):
    records = [
        _record("one", "cli", "first", 2.0, 1.0),
        _record("one", "collection", "first", 2.8, 1.8),
        _record("one", "collection", "rerun", 2.2, 1.5, requests=16, reads=16),
        _record("one", "collection", "rerun_noverify", 2.0, 1.4, requests=9, reads=9),
        _record("scale", "collection", "rerun", 30.0, 20.0, clusters=50, forks=10, after_converge_at_forks=10,
                peak_pss=400 * report.MB),
        _record("scale", "collection", "rerun", 99.0, 99.0, clusters=50, forks=1, after_converge_at_forks=10),
    ]
    if light:
        records.append(_record("scale", "collection", "rerun", 250.0, 200.0, clusters=500, forks=10, light=True,
                               peak_pss=440 * report.MB))
    return {"info": {"scale": [1, 10, 50], "light_scale": [500], "forks": [1, 10]}, "records": records}


def test_issue17_rows_compute_the_ratios_and_the_goals():
    first, cpu, rerun, requests, cpu50, light = report.issue17_rows(_issue17_data())
    assert first[0].startswith("first converge, one cluster, wall")
    assert first[2].startswith("1.40× (2.8 s / 2.0 s") and first[4] is True  # goal 1.5×
    assert first[1] == report.ISSUE17_BEFORE["first_wall"]
    assert cpu[2].startswith("1.80× (1.8 s / 1.0 s)") and cpu[4] is True
    assert rerun[2].startswith("1.10× (2.2 s / 2.0 s") and rerun[4] is False  # goal 1.0×
    assert requests[0] == "no-change re-run: Vault requests for 9 objects"
    assert requests[2].startswith("16 reads with verify on") and requests[2].endswith("9 with verify off")
    assert requests[4] is False  # 16 reads > 9 objects
    assert cpu50[2].startswith("0.40 s (20 s / 50") and cpu50[4] is True  # the forks-1 re-run is not this figure
    assert light[0].startswith("500 clusters (light variant")
    assert "250.0 s (0.50 s per cluster" in light[2] and "×1.10" in light[2] and light[4] is True


def test_issue17_rows_say_what_was_not_measured():
    rows = report.issue17_rows(_issue17_data(light=False))
    assert rows[-1][0].startswith("500 clusters") and rows[-1][4] is None
    assert "not measured" in rows[-1][2]
    table = "\n".join(report.issue17_table(_issue17_data(light=False)))
    assert "| not measured |" in table and "| **missed** |" in table


def test_memory_flat_and_light_estimate():
    assert report.memory_flat(120.0, 100.0) and not report.memory_flat(130.0, 100.0)
    assert not report.memory_flat(None, 100.0)
    # the biggest full point (converge + re-run) took 100 s for 50 clusters: a re-run is about half of it
    estimate = bench.light_estimate({"scale 50 forks 10 rep 1": 100.0}, 50, 10, 500, 5.0)
    assert abs(estimate - (1.0 * 500 * 1.1 + 5.0)) < 1e-9
    assert bench.light_estimate({}, 50, 10, 500, 5.0) is None


def test_light_inventory_shares_one_clusters_objects(tmp_path):
    runner = bench.Runner.__new__(bench.Runner)
    runner.env = type("E", (), {"k8s_ca_pem": "PEM"})()
    converged = tmp_path / "converged.yaml"
    converged.write_text("kind: ControlPlane # annotated\n")
    path, hosts = runner.inventory(str(tmp_path / "inv"), 3, shared=("c001", str(converged)))
    with open(path) as f:
        inventory = json.load(f)["istio_clusters"]["hosts"]
    assert len(hosts) == 3 and "c001" not in hosts
    assert set(h["istio_vault_ca_intermediate_mount"] for h in inventory.values()) == {"istioca-c001"}
    manifests = [h["istio_vault_ca_manifest_path"] for h in inventory.values()]
    assert len(set(manifests)) == 3  # a manifest each, copies of the converged one
    assert all(open(m).read() == "kind: ControlPlane # annotated\n" for m in manifests)


def test_requests_note_names_the_repeated_reads_and_what_verification_adds():
    off = ["read sys/mounts", "read pki/issuer/default", "read sys/mounts", "read secret/data/istioca"]
    on = off + ["read sys/policies/acl/default", "read secret/data/istioca"]
    records = [_record("one", "collection", "rerun", 1.0, 1.0, paths=on),
               _record("one", "collection", "rerun_noverify", 1.0, 1.0, paths=off)]
    note = report.requests_note(records)
    assert note == ("Reads of the one-cluster re-run: 4 with verify off, of them read more than once: `sys/mounts` ×2; "
                    "verification adds 2 (`sys/policies/acl/default`, `secret/data/istioca`).")
    assert report.requests_note(records[:1]) is None
