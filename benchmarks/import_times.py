"""Import cost of each module of the collection in a fresh Python: wall time of `python -c "import <module>"`
(median of N), the cumulative `-X importtime` of the module, and which big libraries it loads at import.

    .venv/bin/python benchmarks/import_times.py [--reps 5] [--json out.json] [module ...]

Used by bench.py (section 4) and to compare a change before/after (run it in each checkout)."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
COLLECTIONS = os.path.join(REPO, ".collections")
PREFIX = "ansible_collections.meshpki.vault_ca.plugins.modules."
MODULES = ("vault_login", "vault_audit", "vault_pki_root", "vault_pki_intermediate", "vault_policy", "vault_k8s_auth",
           "vault_k8s_role", "istio_ca_verify", "tsb_controlplane_annotations", "istio_ca_diagnose")
# The big libraries told apart (top-level package names as sys.modules holds them).
LIBRARIES = ("ansible.module_utils.basic", "hvac", "requests", "cryptography", "kubernetes", "yaml")
PROBE = ("import sys, json; import %s; print(json.dumps(sorted(m for m in %r if m in sys.modules)))")


def parse_importtime(stderr, names):
    """{name: cumulative seconds} of the first ``import time:`` line of each of ``names`` (the first import of a
    package carries its whole cumulative time)."""
    found = {}
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            package = parts[2].strip()
            if package in names and package not in found:
                found[package] = int(parts[1]) / 1e6
    return found


def measure(module, reps=5, python=sys.executable):
    """{'wall': s, 'importtime': s, 'libraries': {lib: s}, 'loaded': [lib...]} for ``module`` (short name)."""
    fqn = PREFIX + module
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, PYTHONDONTWRITEBYTECODE="")
    walls, cumulative = [], []
    for _rep in range(reps):
        started = time.perf_counter()
        subprocess.run([python, "-c", "import " + fqn], env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        proc = subprocess.run([python, "-X", "importtime", "-c", "import " + fqn], env=env, check=True,
                              capture_output=True, text=True)
        cumulative.append(parse_importtime(proc.stderr, LIBRARIES + (fqn,)))
    loaded = subprocess.run([python, "-c", PROBE % (fqn, LIBRARIES)], env=env, check=True, capture_output=True,
                            text=True).stdout
    return {
        "wall": statistics.median(walls),
        "importtime": statistics.median([c.get(fqn, 0.0) for c in cumulative]),
        "libraries": dict((lib, statistics.median([c.get(lib, 0.0) for c in cumulative])) for lib in LIBRARIES),
        "loaded": json.loads(loaded),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--json")
    parser.add_argument("modules", nargs="*", default=list(MODULES))
    args = parser.parse_args(argv)
    results = dict((name, measure(name, args.reps)) for name in args.modules)
    print("| Module | import (wall, python -c) | -X importtime | libraries loaded at import |")
    print("| --- | --- | --- | --- |")
    for name, r in results.items():
        loaded = ", ".join(r["loaded"]) or "-"
        print("| `%s` | %.0f ms | %.0f ms | %s |" % (name, r["wall"] * 1000, r["importtime"] * 1000, loaded))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
