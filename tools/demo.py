"""`make demo`: the collection's main job against the embedded default, a local OpenBao dev server.

Starts ``bao server -dev`` on 127.0.0.1 and a free port, runs playbooks/demo.yml twice with
VAULT_ADDR/VAULT_TOKEN exported (as a user would), shows that the second run changed nothing,
and stops the server whatever happens.
"""

import os
import re
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))

from harness.openbao import OpenBaoServer  # noqa: E402

BIN = os.path.dirname(sys.executable)


def run_playbook(server, label):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, **server.env())
    print("\n=== %s: ansible-playbook playbooks/demo.yml --diff" % label, flush=True)
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), os.path.join(REPO, "playbooks", "demo.yml"),
                           "--diff"], env=env, capture_output=True, text=True, check=False)
    print(proc.stdout + proc.stderr, flush=True)
    if proc.returncode != 0:
        raise SystemExit("demo: %s failed (exit %d)" % (label, proc.returncode))
    recap = re.search(r"localhost\s+:\s+ok=(\d+)\s+changed=(\d+)", proc.stdout)
    return int(recap.group(2))


def main():
    with tempfile.TemporaryDirectory(prefix="meshpki-demo-") as workdir:
        with OpenBaoServer(workdir, audit=True) as server:
            print("OpenBao dev server (embedded default) at %s" % server.url)
            first = run_playbook(server, "first run")
            mark = server.audit.mark()
            second = run_playbook(server, "second run")
            writes = server.audit.writes(since=mark)
            print("=== summary")
            print("first run:  changed=%d" % first)
            print("second run: changed=%d, write requests to Vault: %d (audit log)" % (second, len(writes)))
            if first < 1 or second != 0 or writes:
                raise SystemExit("demo: expected a change on the first run and none on the second")
            print("verdict: the guide's istioca policy is applied and a re-run changes nothing")
        print("OpenBao stopped.")


if __name__ == "__main__":
    main()
