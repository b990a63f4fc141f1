"""`make demo`: the collection's main job end to end against the embedded default.

1. Starts a local OpenBao dev server and a fake Kubernetes API (tools/embedded.py).
2. Writes a sample TSB ControlPlane manifest (file mode: the GitOps way, no cluster write).
3. Runs the main playbook (meshpki.vault_ca.istio_vault_ca) with the guide's values.
4. Renders the four files with the real `bao agent` from the annotations just written, logging in
   as istiod's service account through Vault's Kubernetes auth (the fake answers TokenReview).
5. Checks them with meshpki.vault_ca.istio_ca_verify and `openssl verify`, prints the verdict.
6. Runs the playbook again and shows changed=0 (and zero writes in Vault's audit log).
   Each run prints one line per task; its whole output (diffs included) is kept in .demo/*.log.
7. Runs the troubleshooting job (meshpki.vault_ca.diagnose), logging in as istiod, and prints its report.
8. Stops every process it started, whatever happened.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "tools"), os.path.join(REPO, "tests")]

import embedded  # noqa: E402

from harness.audit import AuditLog  # noqa: E402
from harness.playbook import ansible_env as playbook_env  # noqa: E402

BIN = os.path.dirname(sys.executable)

MANIFEST = """\
# The TSB ControlPlane of this cluster, as kept in Git. The collection adds ROOT_CA_DIR and the
# Vault Agent Injector annotations and keeps everything else, this comment included.
apiVersion: v1
kind: Namespace
metadata:
  name: tsb
---
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: registry.example.com/tetrate
  managementPlane:
    host: tsb.example.com
    port: 8443
    clusterName: demo
  components:
    istio:
      kubeSpec:
        deployment:
          env:
            - name: PILOT_TRACE_SAMPLING
              value: "1"
          podAnnotations:
            example.com/owner: platform-team
"""


# The full output of each ansible run (diffs included) is kept here; the terminal gets one line per task.
LOG_DIR = os.path.join(REPO, ".demo")


def ansible_env(env):
    """The tests' Ansible environment (tests/harness/playbook.py: the checkout's collection, this Python, the
    default callback's output whatever the user's environment sets) with the embedded OpenBao's address and
    token."""
    return dict(playbook_env(), VAULT_ADDR=env["VAULT_ADDR"], VAULT_TOKEN=env["VAULT_TOKEN"])


def step(title):
    print("\n=== %s" % title, flush=True)


def keep_log(name, proc):
    """Write a run's whole output to .demo/<name>.log; return the path."""
    os.makedirs(LOG_DIR, exist_ok=True)
    path = os.path.join(LOG_DIR, name + ".log")
    with open(path, "w") as f:
        f.write(proc.stdout + ("\n--- stderr\n" + proc.stderr if proc.stderr else ""))
    return path


def run(args, env, check=True, log=None):
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    path = keep_log(log, proc) if log else None
    if check and proc.returncode != 0:
        for line in failure_lines(proc.stdout, proc.stderr):
            print("  " + line)
        if path:
            print("  full output: %s" % path)
        name = os.path.basename(args[1]) if len(args) > 1 else args[0]
        raise SystemExit("demo: %s failed (exit %d)" % (name, proc.returncode))
    return proc


TASK_HEADER = re.compile(r"^TASK \[(?:.+? : )?(.+?)\] \**$")
TASK_STATUS = re.compile(r"^(ok|changed|skipping|fatal|failed|included): \[[^\]]+\]")
STATUS_RANK = {"skipping": 0, "included": 0, "ok": 1, "changed": 2, "failed": 3, "fatal": 3}


def task_lines(stdout):
    """One readable line per task of an ansible-playbook run ('changed  Ensure the root CA in pki'),
    from the default callback's output: task names and statuses, never the diffs or result JSON."""
    tasks, current = [], None
    for line in stdout.splitlines():
        header = TASK_HEADER.match(line)
        if header:
            current = [None, header.group(1)]
            tasks.append(current)
            continue
        status = TASK_STATUS.match(line)
        if status and current is not None:
            found = "failed" if status.group(1) == "fatal" else status.group(1)
            if current[0] is None or STATUS_RANK[found] > STATUS_RANK[current[0]]:
                current[0] = found
        elif line.startswith("...ignoring") and current is not None and current[0] == "failed":
            current[0] = "failed (ignored)"
    shown = ["%-8s %s" % (status, name) for status, name in tasks if status not in (None, "skipping", "included")]
    skipped = sum(1 for status, _name in tasks if status == "skipping")
    return shown + (["(%d tasks skipped)" % skipped] if skipped else [])


def failure_lines(stdout, stderr=""):
    """What failed, in words: the failing task and its message (not the tail of the output)."""
    lines, current, pending = [], None, None
    for line in stdout.splitlines():
        header = TASK_HEADER.match(line)
        if header:
            current = header.group(1)
        if line.startswith(("fatal: [", "failed: [")):
            head, _sep, rest = line.partition(" => ")
            pending = [current, head, [rest]]
        elif pending is not None:
            pending[2].append(line)
            if line == "}":
                lines.append(_failure_text(*pending))
                pending = None
    if pending is not None:
        lines.append(_failure_text(*pending))
    if not lines:
        error = [line for line in stderr.splitlines() if line.strip()]
        lines = ["error: " + (error[-1] if error else "(no message; see the full output)")]
    return lines


def _failure_text(task, head, body):
    try:
        result = json.loads("\n".join(body))
        msg = result.get("msg") or result.get("stderr") or "(no message)"
    except ValueError:
        msg = " ".join(part.strip() for part in body)[:500]
    return "FAILED   %s: %s" % (task or head, msg)


def recap(stdout):
    match = re.search(r"ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", stdout)
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


def summary_lines(stdout):
    """The role's summary task output (the msg list)."""
    block = stdout.split("TASK [meshpki.vault_ca.istio_vault_ca : Summary]")[-1]
    return [json.loads(line.strip().rstrip(",")) for line in block.splitlines()
            if line.strip().startswith('"') and ":" in line and not line.strip().startswith('"msg"')]


def render_line(stdout):
    """tools/render_bundle.py's JSON result in words."""
    try:
        result = json.loads(stdout.strip().splitlines()[-1])
        return "bao agent (exit %s) rendered %s, logged in as role %s at %s" % (
            result["agent_rc"], ", ".join(result["files"]), result["role"], result["auth_path"])
    except (ValueError, KeyError, IndexError, TypeError):
        return stdout.strip()


def final_summary(role_summary, first_recap, second_recap, writes, wall, checks, accepted):
    """The lines `make demo` ends with: the role's summary, both runs, the wall time and the verdict."""
    lines = ["=== summary"] + ["  " + line for line in role_summary]
    lines.append("  first run:  changed=%(changed)d failed=%(failed)d" % first_recap)
    lines.append("  second run: changed=%(changed)d failed=%(failed)d" % second_recap
                 + ", Vault writes: %d (%s)" % (len(writes), ", ".join(p for _op, p in writes) or "none"))
    lines.append("  wall time: %.0f s" % wall)
    if accepted:
        lines.append("verdict: istiod would accept the bundle (%d checks passed, openssl OK)" % len(checks))
    else:
        failed = [name for name, passed in checks if passed != "true"]
        lines.append("verdict: istiod would REJECT this bundle (%s)" % (", ".join(failed) or "openssl verify failed"))
    return lines


def diagnose_lines(stdout):
    """The diagnose entry point's report (one line per check)."""
    block = stdout.split("Report - one line per check]")[-1].split("TASK [")[0]
    return [json.loads(line.strip().rstrip(",")) for line in block.splitlines() if line.strip().startswith('"')
            and not line.strip().startswith('"msg"')]


def main():
    started = time.time()
    workdir = tempfile.mkdtemp(prefix="meshpki-demo-")
    try:
        step("1. embedded default: local OpenBao dev server + fake Kubernetes API")
        env = embedded.start(os.path.join(workdir, "embedded"))
        cluster = env["clusters"][embedded.DEFAULT_CLUSTER]
        print("OpenBao at %s, Kubernetes API at %s" % (env["VAULT_ADDR"], cluster["host"]))
        manifest = os.path.join(workdir, "controlplane.yaml")
        with open(manifest, "w") as f:
            f.write(MANIFEST)
        extra = {
            "istio_vault_ca_manifest_path": manifest,
            "istio_vault_ca_kubeconfig": cluster["kubeconfig"],
            "istio_vault_ca_k8s_token_reviewer": {"create": True},
            "istio_vault_ca_extra_env": {"AUTO_RELOAD_PLUGIN_CERTS": "true"},
        }
        extra_file = os.path.join(workdir, "vars.json")
        with open(extra_file, "w") as f:
            json.dump(extra, f)
        aenv = ansible_env(env)
        playbook = [os.path.join(BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "istio_vault_ca.yml"),
                    "-e", "@" + extra_file]

        step("2. ansible-playbook playbooks/istio_vault_ca.yml (the guide's values, ControlPlane in %s)" % manifest)
        first = run(playbook + ["--diff"], aenv, log="first-run")
        for line in task_lines(first.stdout):
            print("  " + line)
        print("  full output, with the diffs: %s" % os.path.join(LOG_DIR, "first-run.log"))

        step("3. bao agent renders the four files from the annotations written to the manifest")
        bundle = os.path.join(workdir, "etc-cacerts-vault")
        rendered = run([sys.executable, os.path.join(REPO, "tools", "render_bundle.py"), "--embedded",
                        os.path.join(workdir, "embedded"), "--out", bundle, "--manifest", manifest], aenv)
        print("  " + render_line(rendered.stdout))

        step("4. would istiod accept them? meshpki.vault_ca.istio_ca_verify and openssl verify")
        verdict = run([os.path.join(BIN, "ansible"), "localhost", "-m", "meshpki.vault_ca.istio_ca_verify",
                       "-a", "path=" + bundle], aenv, check=False)
        checks = re.findall(r'"name": "([a-z_]+)",\s+"passed": (true|false)', verdict.stdout)
        for name, passed in checks:
            print("  %-36s %s" % (name, "ok" if passed == "true" else "FAILED"))
        openssl = run(["openssl", "verify", "-CAfile", os.path.join(bundle, "root-cert.pem"), "-untrusted",
                       os.path.join(bundle, "cert-chain.pem"), os.path.join(bundle, "ca-cert.pem")], aenv,
                      check=False)
        print("  openssl verify: %s" % (openssl.stdout.strip() or openssl.stderr.strip()))

        step("5. second run: nothing to do")
        audit = AuditLog(env["MESHPKI_AUDIT_LOG"])
        mark = audit.mark()
        second = run(playbook, aenv, log="second-run")
        writes = audit.writes(since=mark, include_logins=True)  # verification included: no token minted

        step("6. ansible-playbook playbooks/diagnose.yml (the guide's troubleshooting, logging in as istiod)")
        diagnosis = run([os.path.join(BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "diagnose.yml"),
                         "-e", "@" + extra_file, "-e", "istio_vault_ca_diagnose_request_jwt=true"], aenv, check=False)
        report = diagnose_lines(diagnosis.stdout)
        for line in report:
            print("  " + line)
        if diagnosis.returncode != 0 or not report:
            for line in failure_lines(diagnosis.stdout, diagnosis.stderr):
                print("  " + line)
            print("  full output: %s" % keep_log("diagnose", diagnosis))
            raise SystemExit("demo: the diagnosis found a problem")

        print()
        first_recap, second_recap = recap(first.stdout), recap(second.stdout)
        accepted = verdict.returncode == 0 and openssl.returncode == 0 and bool(checks)
        for line in final_summary(summary_lines(first.stdout), first_recap, second_recap, writes,
                                  time.time() - started, checks, accepted):
            print(line)
        if not accepted:
            raise SystemExit("demo: istiod would reject the bundle")
        if second_recap["changed"] != 0:
            raise SystemExit("demo: the second run changed something")
        if writes:
            raise SystemExit("demo: the second run wrote to Vault: %s" % ", ".join(p for _op, p in writes))
    finally:
        embedded.stop(os.path.join(workdir, "embedded"))
        shutil.rmtree(workdir, ignore_errors=True)
        print("all processes stopped.")


if __name__ == "__main__":
    main()
