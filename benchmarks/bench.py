"""`make bench`: this collection against the guide by hand (bao CLI) and against community.hashi_vault
playbooks, and how its cost grows with the number of clusters.

Every figure comes from real runs against a real OpenBao server started here, with a file audit
device declared in its config file, so every request and every write is counted from the server's
own log. Each figure is the median of several runs, with min and max. Absolute times depend on the
machine and on what else runs on it: compare the ratios measured in the same run.

    .venv/bin/python benchmarks/bench.py [--quick] [--reps N] [--scale 1,10,50] [--forks 1,10]

Needs the collection's virtualenv (.venv, `make venv`) and the benchmark's own one with the `ansible`
package (community.hashi_vault) and matplotlib (benchmarks/.venv-peer, made by benchmarks/run.sh).
Writes benchmarks/results.md, benchmarks/scale.png and the raw data in benchmarks/out/.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path[:0] = [BENCH, os.path.join(REPO, "tests")]

from measure import read_text, run_measured  # noqa: E402

from harness import certs  # noqa: E402
from harness.openbao import OpenBaoServer  # noqa: E402

MAIN_BIN = os.path.join(REPO, ".venv", "bin")
MAIN_PY = os.path.join(MAIN_BIN, "python")
PEER_BIN = os.path.join(BENCH, ".venv-peer", "bin")
PEER_PY = os.path.join(PEER_BIN, "python")
COLLECTIONS = os.path.join(REPO, ".collections")
MAIN_PLAYBOOK = os.path.join(REPO, "playbooks", "istio_vault_ca.yml")
PEER_PLAYBOOK = os.path.join(BENCH, "peer", "istio_ca_hashi_vault.yml")
GUIDE_SCRIPT = os.path.join(BENCH, "guide.sh")
OUT = os.path.join(BENCH, "out")

K8S_HOST = "https://127.0.0.1:6443"  # a placeholder: Vault does not contact the cluster on a config write
# A JWT-shaped placeholder for the token reviewer (Vault stores it; nothing logs in through it here).
REVIEWER_JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6ImJlbmNoIn0.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3"
                "lzdGVtOnNlcnZpY2VhY2NvdW50OnZhdWx0OnZhdWx0LXRva2VuLXJldmlld2VyIn0.cGxhY2Vob2xkZXI")

BASE_MANIFEST = """\
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: registry.example.com/tetrate
"""

VARIANTS = {
    "cli": "(a) guide by hand: bao CLI script",
    "peer": "(b) community.hashi_vault playbook",
    "collection": "(c) this collection's main playbook",
    "collection_noverify": "(c') the same, istio_vault_ca_verify: false",
}

# Vault objects the role manages: the root (mount, issuer) once, and per cluster the intermediate mount
# and issuer, the KV secret holding the key, the policy, the auth mount, its config and the role.
ROOT_OBJECTS = 2
CLUSTER_OBJECTS = 7


def log(msg):
    print("[%6.0fs] %s" % (time.time() - START, msg), flush=True)


START = time.time()


# ---------------------------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------------------------

class Env(object):
    """Files shared by every run: the placeholder Kubernetes CA and reviewer JWT, ansible.cfg."""

    def __init__(self, workdir):
        self.workdir = workdir
        ca = certs.make_ca("placeholder Kubernetes API CA (benchmark)")
        self.k8s_ca_pem = ca.cert_pem
        self.k8s_ca_file = os.path.join(workdir, "k8s-ca.crt")
        self.jwt_file = os.path.join(workdir, "reviewer.jwt")
        self.ansible_cfg = os.path.join(workdir, "ansible.cfg")
        with open(self.k8s_ca_file, "w") as f:
            f.write(self.k8s_ca_pem)
        with open(self.jwt_file, "w") as f:
            f.write(REVIEWER_JWT)
        # Ansible's defaults, whatever ~/.ansible.cfg says (no pipelining, linear strategy).
        with open(self.ansible_cfg, "w") as f:
            f.write("[defaults]\n")

    def ansible(self, server, timing_file, peer=False, extra=None):
        bin_dir = PEER_BIN if peer else MAIN_BIN
        env = dict(os.environ)
        for name in list(env):
            if name.startswith(("VAULT_", "BAO_", "ANSIBLE_")):
                del env[name]
        env.update(server.env())
        env.update({
            "PATH": bin_dir + os.pathsep + MAIN_BIN + os.pathsep + env.get("PATH", ""),
            "ANSIBLE_CONFIG": self.ansible_cfg,
            "ANSIBLE_PYTHON_INTERPRETER": os.path.join(bin_dir, "python"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(BENCH, "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "bench_timing",
            "BENCH_TIMING_FILE": timing_file,
        })
        if not peer:
            env["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS
        env.update(extra or {})
        return env


def start_server(workdir):
    server = OpenBaoServer(workdir, audit=True)
    server.start()
    return server


def vault_list(server, path):
    try:
        body = server.api("GET", path + "?list=true")
    except Exception:  # 404: nothing there
        return []
    return (body.get("data") or {}).get("keys") or []


def vault_state(server, intermediate_mounts=("istioca",), kv=(("secret", "istioca"),)):
    """What a re-run leaves behind: issuers and keys per PKI mount, versions of the KV secrets."""
    state = {"root_issuers": len(vault_list(server, "pki/issuers")), "root_keys": len(vault_list(server, "pki/keys")),
             "int_issuers": 0, "int_keys": 0, "kv_versions": 0}
    for mount in intermediate_mounts:
        state["int_issuers"] += len(vault_list(server, mount + "/issuers"))
        state["int_keys"] += len(vault_list(server, mount + "/keys"))
    for mount, path in kv:
        try:
            meta = server.api("GET", "%s/metadata/%s" % (mount, path))
            state["kv_versions"] += int((meta.get("data") or {}).get("current_version") or 0)
        except Exception:
            pass
    return state


def recap(stdout):
    """ok/changed/failed summed over the hosts of every PLAY RECAP line."""
    totals = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0}
    for match in re.finditer(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)", stdout):
        for key, value in zip(("ok", "changed", "unreachable", "failed", "skipped"), match.groups()):
            totals[key] += int(value)
    return totals


def timing_summary(path, started):
    """Per-task durations from the bench_timing callback: startup before the first task, the tasks
    (wall of each, summed over hosts per task), the tail after the last one."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    tasks = []
    for task in data["tasks"]:
        spans = [(v[0], v[1]) for v in task["hosts"].values() if v[1]]
        ran = sum(1 for v in task["hosts"].values() if v[1] and v[2] != "skipped")
        if not spans:
            continue
        first = min(s for s, _e in spans)
        last = max(e for _s, e in spans)
        tasks.append({"name": task["name"].split(" : ", 1)[-1], "action": task["action"],
                      "wall": last - task["start"], "host_sum": sum(e - s for s, e in spans),
                      "hosts": len(spans), "ran": ran, "start": first - started})
    first_task = min((t["start"] for t in tasks), default=0.0)
    return {"startup": first_task, "python_start": data["playbook_start"] - started,
            "tasks": tasks, "end": data["end"] - started}


# ---------------------------------------------------------------------------------------------------------
# the variants
# ---------------------------------------------------------------------------------------------------------

class Runner(object):
    def __init__(self, env, outdir):
        self.env = env
        self.outdir = outdir
        self.records = []
        self.counter = 0

    def _paths(self, label):
        self.counter += 1
        stem = os.path.join(self.outdir, "runs", "%03d-%s" % (self.counter, label))
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        return stem + ".log", stem + ".timing.json"

    def record(self, result, **keys):
        result.update(keys)
        self.records.append(result)
        return result

    def measure(self, label, args, env, server, cwd):
        log_path, timing = self._paths(label)
        env = dict(env, BENCH_TIMING_FILE=timing)
        started = time.time()
        result = run_measured(args, env, cwd, log_path, audit=server.audit, server_pid=server.proc.pid)
        output = read_text(log_path)
        result["recap"] = recap(output)
        result["timing"] = timing_summary(timing, started)
        if result["rc"] != 0:
            result["error_tail"] = output[-1500:]
        return result

    # -- (a) the guide's commands with the bao CLI ------------------------------------------------
    def cli(self, server, workdir, keep_going=False):
        env = self.env.ansible(server, os.devnull)
        env.update(K8S_HOST=K8S_HOST, K8S_CA_FILE=self.env.k8s_ca_file, REVIEWER_JWT_FILE=self.env.jwt_file,
                   MANIFEST=os.path.join(workdir, "controlplane.yaml"), KEEP_GOING="1" if keep_going else "0")
        result = self.measure("cli", ["bash", GUIDE_SCRIPT], env, server, workdir)
        result["timing"] = None
        text = read_text(result["log"])
        result["stopped_at"] = re.findall(r"guide\.sh: FAILED \(exit \d+\): (.*)", text)
        return result

    # -- (b) community.hashi_vault ----------------------------------------------------------------
    def peer(self, server, workdir):
        env = self.env.ansible(server, os.devnull, peer=True)
        extra = {"k8s_host": K8S_HOST, "k8s_ca_cert_file": self.env.k8s_ca_file,
                 "token_reviewer_jwt_file": self.env.jwt_file,
                 "manifest_path": os.path.join(workdir, "controlplane.yaml")}
        args = [os.path.join(PEER_BIN, "ansible-playbook"), PEER_PLAYBOOK, "-e", json.dumps(extra)]
        return self.measure("peer", args, env, server, workdir)

    # -- (c) this collection -----------------------------------------------------------------------
    def collection_vars(self, workdir, verify=True, **more):
        manifest = os.path.join(workdir, "controlplane.yaml")
        if not os.path.exists(manifest):
            with open(manifest, "w") as f:
                f.write(BASE_MANIFEST)
        extra = {"istio_vault_ca_k8s_host": K8S_HOST, "istio_vault_ca_k8s_ca_cert": self.env.k8s_ca_pem,
                 "istio_vault_ca_k8s_token_reviewer_jwt": REVIEWER_JWT, "istio_vault_ca_manifest_path": manifest,
                 "istio_vault_ca_verify": verify}
        extra.update(more)
        path = os.path.join(workdir, "vars.json")
        with open(path, "w") as f:
            json.dump(extra, f)
        return path

    def collection(self, server, workdir, verify=True, label="collection", env_extra=None, **more):
        env = self.env.ansible(server, os.devnull, extra=env_extra)
        args = [os.path.join(MAIN_BIN, "ansible-playbook"), MAIN_PLAYBOOK, "-e",
                "@" + self.collection_vars(workdir, verify, **more)]
        return self.measure(label, args, env, server, workdir)

    def inventory(self, workdir, clusters, extra_group_vars=None, shared=None):
        """An inventory of ``clusters`` hosts c001, c002, ..., each with its own Vault objects and manifest; with
        ``shared`` (a cluster name and the manifest its converge left), every host manages that cluster's Vault
        objects and starts from a copy of that manifest (the light variant of the biggest scale points)."""
        hosts = {}
        manifest_text = read_text(shared[1]) if shared else BASE_MANIFEST
        for i in range(1, clusters + 1):
            name = "c%03d" % (i + 1000 if shared else i)
            objects = shared[0] if shared else name
            cdir = os.path.join(workdir, name)
            os.makedirs(cdir, exist_ok=True)
            manifest = os.path.join(cdir, "controlplane.yaml")
            with open(manifest, "w") as f:
                f.write(manifest_text)
            hosts[name] = {
                "istio_vault_ca_intermediate_mount": "istioca-" + objects,
                "istio_vault_ca_intermediate_common_name": "%s.mesh.example.com Intermediate Authority" % objects,
                "istio_vault_ca_kv_path": "istioca/" + objects,
                "istio_vault_ca_k8s_auth_mount": "kubernetes-" + objects,
                "istio_vault_ca_policy_name": "istioca-" + objects,
                "istio_vault_ca_manifest_path": manifest,
            }
        group_vars = {"ansible_connection": "local", "ansible_python_interpreter": MAIN_PY,
                      "istio_vault_ca_root_mount": "pki", "istio_vault_ca_k8s_host": K8S_HOST,
                      "istio_vault_ca_k8s_ca_cert": self.env.k8s_ca_pem,
                      "istio_vault_ca_k8s_token_reviewer_jwt": REVIEWER_JWT}
        group_vars.update(extra_group_vars or {})
        path = os.path.join(workdir, "inventory.yml")
        with open(path, "w") as f:  # JSON is YAML
            json.dump({"istio_clusters": {"vars": group_vars, "hosts": hosts}}, f, indent=1)
        return path, sorted(hosts)

    def collection_inventory(self, server, workdir, inventory, forks, label, env_extra=None, extra_vars=None):
        env = self.env.ansible(server, os.devnull, extra=env_extra)
        args = [os.path.join(MAIN_BIN, "ansible-playbook"), "-i", inventory, "-f", str(forks), MAIN_PLAYBOOK]
        if extra_vars:
            path = os.path.join(workdir, "extra-vars.json")
            with open(path, "w") as f:
                json.dump(extra_vars, f)
            args += ["-e", "@" + path]
        return self.measure(label, args, env, server, workdir)


# ---------------------------------------------------------------------------------------------------------
# sections
# ---------------------------------------------------------------------------------------------------------

def role_default_pipelining():
    """Whether the role runs its modules with pipelining by default (istio_vault_ca_pipelining), else
    Ansible's default (off)."""
    import yaml

    with open(os.path.join(REPO, "roles", "istio_vault_ca", "defaults", "main.yml")) as f:
        defaults = yaml.safe_load(f) or {}
    return bool(defaults.get("istio_vault_ca_pipelining", False))


def _one_run(runner, server, workdir, variant, phase, rep, **kw):
    if variant == "cli":
        result = runner.cli(server, workdir, **kw)
    elif variant == "peer":
        result = runner.peer(server, workdir)
    else:
        result = runner.collection(server, workdir, **kw)
    result["state"] = vault_state(server)
    runner.record(result, section="one", variant=variant, phase=phase, clusters=1, forks=1, rep=rep)
    log("one cluster  %-11s %-18s %6.1fs rc=%s requests=%s writes=%s changed=%s" % (
        variant, phase, result["wall"], result["rc"], result["requests"], result["writes"],
        result["recap"]["changed"] if variant != "cli" else "-"))
    return result


def one_cluster_rep(runner, root, rep):
    """1 and 2, one repetition: first converge and re-run, one cluster, the guide's values, for (a), (b)
    and (c); for (c) also re-runs with istio_vault_ca_verify false and with pipelining on (same state)."""
    order = ["cli", "peer", "collection"]
    rotated = order[rep % len(order):] + order[:rep % len(order)]  # spread drift over the variants
    for variant in rotated:
        workdir = os.path.join(root, "one-%d-%s" % (rep, variant))
        os.makedirs(workdir)
        server = start_server(os.path.join(workdir, "bao"))
        try:
            first = _one_run(runner, server, workdir, variant, "first", rep)
            if first["rc"] != 0:
                raise SystemExit("bench: %s first converge failed:\n%s" % (variant, first.get("error_tail")))
            rerun = _one_run(runner, server, workdir, variant, "rerun", rep)
            if variant == "cli":
                _one_run(runner, server, workdir, variant, "rerun_keep_going", rep, keep_going=True)
            elif variant == "collection":
                if rerun["rc"] != 0:
                    raise SystemExit("bench: collection re-run failed:\n%s" % rerun.get("error_tail"))
                _one_run(runner, server, workdir, variant, "rerun_noverify", rep, verify=False)
                # the other pipelining setting than the role's default (the role sets ansible_pipelining
                # from istio_vault_ca_pipelining where it has that variable; the environment covers older roles)
                other = not role_default_pipelining()
                _one_run(runner, server, workdir, variant, "rerun_pipelining_%s" % ("on" if other else "off"), rep,
                         env_extra={"ANSIBLE_PIPELINING": str(other)}, istio_vault_ca_pipelining=other)
        finally:
            server.stop()


def scale_point(runner, root, clusters, forks, rep, extra_rerun_forks=None):
    """3, one point: a fresh server, N clusters (inventory hosts under one root), first converge and
    re-run at ``forks``; ``extra_rerun_forks``: one more re-run at that forks value (same state)."""
    workdir = os.path.join(root, "scale-%d-f%d-%d" % (clusters, forks, rep))
    os.makedirs(workdir)
    server = start_server(os.path.join(workdir, "bao"))
    try:
        inventory, hosts = runner.inventory(workdir, clusters)
        mounts = ["istioca-" + h for h in hosts]
        kv = [("secret", "istioca/" + h) for h in hosts]
        steps = [("first", forks), ("rerun", forks)]
        if extra_rerun_forks:
            steps.append(("rerun", extra_rerun_forks))
        for phase, step_forks in steps:
            result = runner.collection_inventory(server, workdir, inventory, step_forks,
                                                 "scale-%d-f%d-%s" % (clusters, step_forks, phase))
            result["state"] = vault_state(server, mounts, kv)
            result["after_converge_at_forks"] = forks
            runner.record(result, section="scale", variant="collection", phase=phase, clusters=clusters,
                          forks=step_forks, rep=rep)
            log("scale %2d clusters forks %2d %-6s %6.1fs rc=%s requests=%s writes=%s changed=%s" % (
                clusters, step_forks, phase, result["wall"], result["rc"], result["requests"], result["writes"],
                result["recap"]["changed"]))
            if result["rc"] != 0:
                raise SystemExit("bench: scale run failed:\n%s" % result.get("error_tail"))
    finally:
        server.stop()


def scale_point_first_only(runner, root, clusters, forks):
    """A first converge alone (no re-run) on a fresh server."""
    workdir = os.path.join(root, "scale-%d-f%d-first" % (clusters, forks))
    os.makedirs(workdir)
    server = start_server(os.path.join(workdir, "bao"))
    try:
        inventory, hosts = runner.inventory(workdir, clusters)
        result = runner.collection_inventory(server, workdir, inventory, forks,
                                             "scale-%d-f%d-first" % (clusters, forks))
        result["state"] = vault_state(server, ["istioca-" + h for h in hosts],
                                      [("secret", "istioca/" + h) for h in hosts])
        runner.record(result, section="scale", variant="collection", phase="first", clusters=clusters, forks=forks,
                      rep=0)
        log("scale %2d clusters forks %2d first  %6.1fs rc=%s requests=%s writes=%s changed=%s" % (
            clusters, forks, result["wall"], result["rc"], result["requests"], result["writes"],
            result["recap"]["changed"]))
        if result["rc"] != 0:
            raise SystemExit("bench: scale run failed:\n%s" % result.get("error_tail"))
    finally:
        server.stop()


def scale_point_light(runner, root, clusters, forks):
    """3, the lighter variant for the biggest cluster counts (one run, file mode, re-run only): one cluster is
    converged (not measured), then ``clusters`` inventory hosts that all manage that cluster's Vault objects, each
    with its own copy of the converged manifest, run the role once at ``forks``. Every host makes the requests and
    runs the tasks of a cluster of its own; what it does not measure is a first converge of that many clusters and
    a Vault holding that many sets of objects."""
    workdir = os.path.join(root, "scale-%d-f%d-light" % (clusters, forks))
    os.makedirs(workdir)
    server = start_server(os.path.join(workdir, "bao"))
    try:
        seed_inventory, hosts = runner.inventory(os.path.join(workdir, "seed"), 1)
        seed = runner.collection_inventory(server, workdir, seed_inventory, 1, "scale-%d-seed" % clusters)
        if seed["rc"] != 0:
            raise SystemExit("bench: the converge before the light scale point failed:\n%s" % seed.get("error_tail"))
        manifest = os.path.join(workdir, "seed", hosts[0], "controlplane.yaml")
        inventory, _hosts = runner.inventory(workdir, clusters, shared=(hosts[0], manifest))
        result = runner.collection_inventory(server, workdir, inventory, forks,
                                             "scale-%d-f%d-light" % (clusters, forks))
        result["state"] = vault_state(server, ["istioca-" + hosts[0]], [("secret", "istioca/" + hosts[0])])
        result["light"] = True
        runner.record(result, section="scale", variant="collection", phase="rerun", clusters=clusters, forks=forks,
                      rep=0)
        log("scale %3d clusters forks %2d rerun (light) %6.1fs rc=%s requests=%s writes=%s changed=%s" % (
            clusters, forks, result["wall"], result["rc"], result["requests"], result["writes"],
            result["recap"]["changed"]))
        if result["rc"] != 0:
            raise SystemExit("bench: light scale run failed:\n%s" % result.get("error_tail"))
    finally:
        server.stop()


def light_estimate(durations, big, forks, clusters, one_cluster):
    """Seconds a light point of ``clusters`` should take: the per-cluster time of the biggest full point (its
    converge and re-run at ``forks``, so about twice a re-run) for a re-run of ``clusters``, plus the one-cluster
    converge before it; None when the biggest point was not measured."""
    measured = durations.get("scale %d forks %d rep 1" % (big, forks))
    if not measured:
        return None
    return measured / 2.0 / big * clusters * 1.1 + (one_cluster or 0)


INTERMEDIATE_ARGS = {
    "mount": "istioca", "max_lease_ttl": "4380h", "common_name": "tetrate.io Intermediate Authority",
    "ttl": "4380h", "renew_before": "720h", "key_type": "rsa", "key_bits": 2048, "root_mount": "pki",
    "kv_mount": "secret", "kv_path": "istioca", "kv_field": "ca-key.pem",
}


def write_play(path, tasks):
    play = [{"name": "benchmark", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": tasks}]
    with open(path, "w") as f:
        json.dump(play, f, indent=1)
    return path


def section_overhead(runner, root, reps, loops=20):
    """4a: one no-change vault_pki_intermediate call as an Ansible task, against the same reads with
    hvac in one process; and what an Ansible task costs at all (empty play, ping)."""
    workdir = os.path.join(root, "overhead")
    os.makedirs(workdir)
    server = start_server(os.path.join(workdir, "bao"))
    out = {}
    try:
        setup = runner.collection(server, workdir, verify=False, label="overhead-setup")
        if setup["rc"] != 0:
            raise SystemExit("bench: overhead setup failed:\n%s" % setup.get("error_tail"))
        env = runner.env.ansible(server, os.devnull)
        plays = {
            "empty_play": write_play(os.path.join(workdir, "empty.yml"), []),
            "ping_task": write_play(os.path.join(workdir, "ping.yml"), [{"name": "ping", "ansible.builtin.ping": {}}]),
            "module_task": write_play(os.path.join(workdir, "intermediate.yml"), [
                {"name": "intermediate", "meshpki.vault_ca.vault_pki_intermediate": INTERMEDIATE_ARGS}]),
        }
        args_file = os.path.join(workdir, "args.json")
        with open(args_file, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": INTERMEDIATE_ARGS}, f)
        module_file = os.path.join(REPO, "plugins", "modules", "vault_pki_intermediate.py")
        module_env = dict(env, PYTHONPATH=COLLECTIONS)
        module_import = "import ansible_collections.meshpki.vault_ca.plugins.modules.vault_pki_intermediate"
        commands = {
            "module_process": [MAIN_PY, module_file, args_file],
            "module_imports": [MAIN_PY, "-c", module_import],
            "python_start": [MAIN_PY, "-c", "pass"],
        }
        plays["module_task_pipelining"] = plays["module_task"]
        runs = dict((name, []) for name in list(plays) + list(commands) + ["hvac_process"])
        reads = None
        for _rep in range(reps):
            for name, play in plays.items():
                play_env = dict(env, ANSIBLE_PIPELINING="True") if name.endswith("_pipelining") else env
                result = runner.measure("overhead-" + name, [os.path.join(MAIN_BIN, "ansible-playbook"), play],
                                        play_env, server, workdir)
                if result["rc"] != 0:
                    raise SystemExit("bench: %s failed:\n%s" % (name, result.get("error_tail")))
                runs[name].append(result)
                if name == "module_task" and reads is None:
                    reads = [p.split(" ", 1)[1] for p in result["paths"]]
            for name, args in commands.items():
                result = runner.measure("overhead-" + name, args, module_env, server, workdir)
                if result["rc"] != 0:
                    raise SystemExit("bench: %s failed:\n%s" % (name, read_text(result["log"], 1500)))
                runs[name].append(result)
            paths_file = os.path.join(workdir, "reads.json")
            with open(paths_file, "w") as f:
                json.dump(reads, f)
            result = runner.measure("overhead-hvac", [MAIN_PY, os.path.join(BENCH, "hvac_reads.py"), paths_file, "1"],
                                    env, server, workdir)
            runs["hvac_process"].append(result)
        warm = subprocess.run([MAIN_PY, os.path.join(BENCH, "hvac_reads.py"), paths_file, str(loops)], env=env,
                              capture_output=True, text=True, check=True)
        warm = json.loads(warm.stdout)
        out = {
            "reads": reads,
            "runs": runs,
            "hvac_warm": warm,
            "module_task_changed": [r["recap"]["changed"] for r in runs["module_task"]],
            "imports": module_import_costs(module_env, reps),
        }
    finally:
        server.stop()
    return out


# The modules the role runs, and the libraries whose import time is worth telling apart.
ROLE_MODULES = ("vault_login", "vault_pki_root", "vault_pki_intermediate", "vault_policy", "vault_k8s_auth",
                "vault_k8s_role", "istio_ca_verify", "tsb_controlplane_annotations")
LIBRARIES = ("ansible.module_utils.basic", "hvac", "cryptography", "kubernetes", "yaml")


def module_import_costs(env, reps):
    """Import time of each module the role runs, in a fresh Python (``-X importtime``), and how much of
    it each big library takes (the first import of a package carries its whole cumulative time)."""
    costs = {}
    for name in ROLE_MODULES:
        fqn = "ansible_collections.meshpki.vault_ca.plugins.modules." + name
        samples = []
        for _rep in range(reps):
            proc = subprocess.run([MAIN_PY, "-X", "importtime", "-c", "import " + fqn], env=env, capture_output=True,
                                  text=True, check=True)
            cumulative = {}
            for line in proc.stderr.splitlines():
                parts = line.split("|")
                if len(parts) == 3 and parts[1].strip().isdigit():
                    package = parts[2].strip()
                    if package in LIBRARIES + (fqn,) and package not in cumulative:
                        cumulative[package] = int(parts[1]) / 1e6
            samples.append(cumulative)
        costs[name] = dict((key, statistics.median([s.get(key, 0.0) for s in samples]))
                           for key in LIBRARIES + (fqn,))
        costs[name]["total"] = costs[name].pop(fqn)
    return costs


# py-spy's raw output: one line per distinct stack, "frame;frame;... count". Frames are "function
# (path:line)" and "process PID:\"command\"" for each process level of --subprocesses.
PROFILE_LIBRARIES = (("kubernetes/", "kubernetes client (+ pydantic)"), ("pydantic", "kubernetes client (+ pydantic)"),
                     ("hvac/", "hvac (+ requests, urllib3)"), ("requests/", "hvac (+ requests, urllib3)"),
                     ("urllib3/", "hvac (+ requests, urllib3)"), ("cryptography/", "cryptography"),
                     ("yaml/", "PyYAML"))


def classify_stack(frames):
    processes = [f for f in frames if f.startswith("process ")]
    last = processes[-1] if processes else ""
    command = last.split(":", 1)[-1].strip('"')
    code = [f for f in frames if not f.startswith("process ")]
    # a module process: a Python under a worker that is neither ansible-playbook nor a shell (its command is
    # AnsiballZ_<module>.py, or the interpreter alone reading the module from stdin with pipelining)
    if len(processes) > 2 and "ansible-playbook" not in command and not command.startswith("/bin/sh"):
        if not code:
            return "module process", "starting and stopping the interpreter (no Python frame on the stack)"
        importing = any("<frozen importlib" in f or "<frozen zipimport>" in f for f in code)
        if importing:
            for frame in code:
                for prefix, label in PROFILE_LIBRARIES:
                    if "(" + prefix in frame:
                        return "module process", "importing " + label
            if any("_compile_source (<frozen zipimport>" in f for f in code):
                return "module process", "compiling the payload's Python sources (zipimport: ansible.module_utils, " \
                                         "this collection's module_utils, the module)"
            return "module process", "other imports (executing the payload's modules)"
        return "module process", "running the module (argument parsing, Vault requests, comparing)"
    if command.startswith("/bin/sh"):
        return "shell", "shell wrappers"
    if any("_compile_module_ast" in f or "recursive_finder" in f for f in code):
        return "controller", "building the AnsiballZ payload (AST of the module and its module_utils; once per " \
                             "module per run)"
    if any("_wait_on_pending_results" in f for f in code):
        return "controller", "strategy loop waiting for results"
    if len(processes) > 1:
        return "controller", "worker processes: templating, connection, executing the task (the rest)"
    return "controller", "main process: parsing, templating, strategy, callbacks (the rest)"


def section_profile(runner, root, rate=100):
    """Where a one-cluster re-run spends its CPU: py-spy on the controller and every process under it.
    Returns None when py-spy is not installed or may not trace processes here."""
    py_spy = os.path.join(PEER_BIN, "py-spy")
    if not os.path.exists(py_spy):
        return {"error": "py-spy is not installed in benchmarks/.venv-peer"}
    workdir = os.path.join(root, "profile")
    os.makedirs(workdir)
    server = start_server(os.path.join(workdir, "bao"))
    try:
        setup = runner.collection(server, workdir, label="profile-setup")
        if setup["rc"] != 0:
            return {"error": "converge failed: %s" % setup.get("error_tail")}
        raw = os.path.join(runner.outdir, "profile-rerun.raw.txt")
        env = runner.env.ansible(server, os.devnull)
        args = [os.path.join(MAIN_BIN, "ansible-playbook"), MAIN_PLAYBOOK, "-e",
                "@" + runner.collection_vars(workdir, True)]
        result = runner.measure("profile-rerun", [py_spy, "record", "--subprocesses", "--rate", str(rate), "--format",
                                                  "raw", "-o", raw, "--"] + args, env, server, workdir)
        if result["rc"] != 0 or not os.path.exists(raw):
            return {"error": "py-spy failed (exit %s): %s" % (result["rc"], read_text(result["log"], 600))}
        categories = {}
        total = 0
        with open(raw) as f:
            for line in f:
                stack, _sep, count = line.rstrip("\n").rpartition(" ")
                if not count.isdigit():
                    continue
                key = classify_stack(stack.split(";"))
                categories[key] = categories.get(key, 0) + int(count)
                total += int(count)
        return {"rate": rate, "samples": total, "wall": result["wall"], "cpu": result["cpu"],
                "categories": sorted(([k[0], k[1], v / float(rate)] for k, v in categories.items()),
                                     key=lambda row: (row[0], -row[2]))}
    finally:
        server.stop()


ADMIN_POLICY = 'path "*" {\n  capabilities = ["create", "read", "update", "patch", "delete", "list", "sudo"]\n}\n'


def section_logins(runner, root, clusters, forks):
    """4b: logins per run when the role authenticates with AppRole (not a token): the session task logs
    in once (vault_login, run_once) and every Vault task reuses that token."""
    workdir = os.path.join(root, "approle")
    os.makedirs(workdir)
    server = start_server(os.path.join(workdir, "bao"))
    results = []
    try:
        server.api("POST", "sys/auth/approle", {"type": "approle"})
        server.api("PUT", "sys/policies/acl/bench-admin", {"policy": ADMIN_POLICY})
        server.api("POST", "auth/approle/role/bench", {"token_policies": ["bench-admin"], "token_ttl": "1h"})
        role_id = server.api("GET", "auth/approle/role/bench/role-id")["data"]["role_id"]
        secret_id = server.api("POST", "auth/approle/role/bench/secret-id", {})["data"]["secret_id"]
        inventory, _hosts = runner.inventory(workdir, clusters)
        extra_vars = {"istio_vault_ca_vault": {"auth_method": "approle", "role_id": role_id, "secret_id": secret_id}}
        # no VAULT_TOKEN in the environment: a module that did not get the session token would fail
        for phase in ("first", "rerun"):
            env_extra = {"VAULT_TOKEN": "", "BAO_TOKEN": ""}
            result = runner.collection_inventory(server, workdir, inventory, forks, "approle-" + phase,
                                                 env_extra=env_extra, extra_vars=extra_vars)
            if result["rc"] != 0:
                raise SystemExit("bench: approle run failed:\n%s" % result.get("error_tail"))
            login_paths = [p for p in result["paths"] if "/login" in p]
            result["login_paths"] = login_paths
            runner.record(result, section="logins", variant="collection", phase=phase, clusters=clusters, forks=forks,
                          rep=0)
            results.append(result)
            log("approle %d clusters %-6s %6.1fs logins=%d (%s) writes=%d" % (
                clusters, phase, result["wall"], result["logins"], ", ".join(login_paths), result["writes"]))
    finally:
        server.stop()
    return results


# ---------------------------------------------------------------------------------------------------------
# machine and versions
# ---------------------------------------------------------------------------------------------------------

def command_output(args, env=None):
    try:
        return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_info():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576.0)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "os": platform.platform(), "loadavg_start": os.getloadavg()}


def versions():
    def pip_version(py, dist):
        return command_output([py, "-c", "from importlib.metadata import version; print(version('%s'))" % dist])

    galaxy = read_text(os.path.join(REPO, "galaxy.yml"))
    match = re.search(r"^version:\s*(\S+)", galaxy, re.M)
    manifest = os.path.join(os.path.dirname(os.path.dirname(PEER_PY)), "lib")
    hashi = ""
    for dirpath, _dirs, files in os.walk(manifest):
        if dirpath.endswith(os.path.join("community", "hashi_vault")) and "MANIFEST.json" in files:
            with open(os.path.join(dirpath, "MANIFEST.json")) as f:
                hashi = json.load(f)["collection_info"]["version"]
            break
    return {
        "meshpki.vault_ca": match.group(1) if match else "?",
        "git commit": command_output(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]) + (
            " (with uncommitted changes)" if command_output(["git", "-C", REPO, "status", "--porcelain",
                                                             "--untracked-files=no"]) else ""),
        "python": platform.python_version(),
        "ansible-core (collection runs)": pip_version(MAIN_PY, "ansible-core"),
        "hvac (collection runs)": pip_version(MAIN_PY, "hvac"),
        "ansible (peer runs)": pip_version(PEER_PY, "ansible"),
        "ansible-core (peer runs)": pip_version(PEER_PY, "ansible-core"),
        "community.hashi_vault": hashi,
        "hvac (peer runs)": pip_version(PEER_PY, "hvac"),
        "OpenBao": command_output([os.path.join(MAIN_BIN, "bao"), "version"]).split(" (")[0],
    }


# ---------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------

def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--reps", type=int, default=3,
                        help="repetitions of the one-cluster runs and of the overhead measurement")
    parser.add_argument("--scale", default="1,10,50,500", help="cluster counts")
    parser.add_argument("--light-from", type=int, default=100,
                        help="cluster counts from this one on are measured with the light variant: one re-run, file "
                             "mode, every host on one converged cluster's Vault objects (scale_point_light)")
    parser.add_argument("--forks", default="1,10", help="forks values")
    parser.add_argument("--scale-reps", default="10:2,50:1",
                        help="most repetitions per cluster count (more than one only while the budget allows)")
    parser.add_argument("--login-clusters", type=int, default=2)
    parser.add_argument("--budget", type=float, default=17 * 60,
                        help="seconds for the peer virtualenv set-up and this script (`make venv` comes on top): "
                             "optional steps run only when their estimate fits in what is left")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 repetition, 1 and 3 clusters")
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--results", default=os.path.join(BENCH, "results.md"))
    parser.add_argument("--plot", default=os.path.join(BENCH, "scale.png"))
    parser.add_argument("--command", default=None, help="the command to report as the one that produced the results")
    parser.add_argument("--setup-seconds", type=float, default=0.0,
                        help="time spent before this script (virtualenv install), counted in the budget")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.scale, args.scale_reps, args.login_clusters = 1, "1,2,3,5", "2:1,3:1", 2
        args.light_from = 4
    return args


def check_prerequisites():
    missing = [p for p in (MAIN_PY, os.path.join(MAIN_BIN, "ansible-playbook"), os.path.join(MAIN_BIN, "bao"),
                           os.path.join(PEER_BIN, "ansible-playbook"), COLLECTIONS) if not os.path.exists(p)]
    if missing:
        raise SystemExit("bench: missing %s - run `make venv` and benchmarks/run.sh (which makes benchmarks/.venv-peer)"
                         % ", ".join(missing))


class Plan(object):
    """Runs steps in priority order within the time budget. Required steps always run; an optional step
    runs only when its estimate (from what was already measured) fits in what is left."""

    def __init__(self, budget, setup_seconds):
        self.deadline = START + budget - setup_seconds
        self.skipped = []
        self.durations = {}

    def left(self):
        return self.deadline - time.time()

    def run(self, key, step, required=False, estimate=None, why=""):
        if not required and estimate is not None and estimate > self.left():
            self.skipped.append("%s (about %.0f s; %.0f s left of the budget)%s" % (key, estimate, self.left(), why))
            log("skipped: %s" % self.skipped[-1])
            return False
        started = time.time()
        step()
        self.durations[key] = time.time() - started
        return True


def main():
    args = parse_args()
    check_prerequisites()
    scale_all = [int(n) for n in args.scale.split(",")]
    scale = [n for n in scale_all if n < args.light_from]
    light = [n for n in scale_all if n >= args.light_from]
    forks = [int(n) for n in args.forks.split(",")]
    scale_reps = dict((int(k), int(v)) for k, v in (item.split(":") for item in args.scale_reps.split(",")))
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    root = tempfile.mkdtemp(prefix="meshpki-bench-")
    info = {"machine": machine_info(), "versions": versions(),
            "started": datetime.datetime.now().isoformat(" ", "seconds"),
            "argv": sys.argv[1:], "command": args.command or " ".join([sys.executable] + sys.argv),
            "reps": args.reps, "scale": scale, "light_scale": light, "light_from": args.light_from,
            "forks": forks, "scale_reps": scale_reps, "budget": args.budget,
            "setup_seconds": args.setup_seconds}
    log("versions: %s" % json.dumps(info["versions"]))
    runner = Runner(Env(root), args.out)
    plan = Plan(args.budget, args.setup_seconds)
    results = {}
    big, small = max(scale), [n for n in scale if n not in (1, max(scale))]
    try:
        # required: every figure once. The one-cluster point of the scale series is the (c) runs of the
        # one-cluster section (the same role on one cluster; forks makes no difference with one host).
        plan.run("one-cluster rep 1", lambda: one_cluster_rep(runner, root, 0), required=True)
        plan.run("overhead", lambda: results.update(overhead=section_overhead(runner, root, args.reps)), required=True)
        plan.run("profile", lambda: results.update(profile=section_profile(runner, root)), required=True)
        plan.run("logins", lambda: results.update(
            logins=section_logins(runner, root, args.login_clusters, forks[-1])), required=True)
        for clusters in small:
            for f in forks[::-1]:
                plan.run("scale %d forks %d rep 1" % (clusters, f),
                         lambda c=clusters, f=f: scale_point(runner, root, c, f, 0), required=True)
        # the biggest: first converge and re-run at the highest forks, then a re-run at forks 1 (same state)
        plan.run("scale %d forks %d rep 1" % (big, forks[-1]), lambda: scale_point(
            runner, root, big, forks[-1], 0, extra_rerun_forks=forks[0] if len(forks) > 1 else None), required=True)
        # optional, the biggest point first: the light variant (one re-run, file mode), estimated from the
        # biggest full point's time per cluster
        for clusters in light:
            plan.run("scale %d forks %d light re-run" % (clusters, forks[-1]),
                     lambda c=clusters: scale_point_light(runner, root, c, forks[-1]),
                     estimate=light_estimate(plan.durations, big, forks[-1], clusters,
                                             plan.durations.get("one-cluster rep 1", 0) / 8.0),
                     why=" - the light variant: one re-run of that many clusters")
        # optional, most useful first: the one-cluster repetitions (the ratios and the scale baseline), the
        # biggest first converge at forks 1 (sequential, so linear: estimated from the next size down), more
        # repetitions of the middle sizes
        for rep in range(1, args.reps):
            plan.run("one-cluster rep %d" % (rep + 1), lambda r=rep: one_cluster_rep(runner, root, r),
                     estimate=plan.durations["one-cluster rep 1"])
        if len(forks) > 1 and small:
            below = max(small)
            per = plan.durations.get("scale %d forks %d rep 1" % (below, forks[0]), 0) / float(below)
            plan.run("scale %d forks %d first converge" % (big, forks[0]),
                     lambda: scale_point_first_only(runner, root, big, forks[0]), estimate=per * big * 0.6)
        for clusters in small:
            for rep in range(1, scale_reps.get(clusters, 1)):
                for f in forks[::-1]:
                    key = "scale %d forks %d rep %d" % (clusters, f, rep + 1)
                    plan.run(key, lambda c=clusters, f=f, r=rep: scale_point(runner, root, c, f, r),
                             estimate=plan.durations["scale %d forks %d rep 1" % (clusters, f)])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["step_seconds"] = plan.durations
    info["skipped"] = plan.skipped
    info["bench_seconds"] = time.time() - START
    info["machine"]["loadavg_end"] = os.getloadavg()
    data = {"info": info, "records": runner.records, "overhead": results.get("overhead"),
            "logins": results.get("logins"), "profile": results.get("profile")}
    data_file = os.path.join(args.out, "results.json")
    with open(data_file, "w") as f:
        json.dump(data, f, indent=1, default=str)
    import report  # noqa: E402  (after the runs: a bug in the report must not cost the measurements)

    report.write(data, args.results, os.path.basename(args.plot))
    plot = subprocess.run([PEER_PY, os.path.join(BENCH, "plot.py"), data_file, args.plot], capture_output=True,
                          text=True, check=False)
    if plot.returncode != 0:
        raise SystemExit("bench: plot failed: %s" % plot.stderr[-2000:])
    log("wrote %s, %s and %s (%.0f s)" % (args.results, args.plot, data_file, time.time() - START))


if __name__ == "__main__":
    main()
