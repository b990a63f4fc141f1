"""`make demo` prints readable lines (issue 15, point 5): one line per task of each run instead of the cut-off
tail of ansible-playbook's --diff output, the failing task's message instead of a raw result blob, and it ends
with the summary block and a verdict line. tools/demo.py's printing functions on ansible-playbook output of the
default callback, as the demo's runs produce it."""

import json
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import demo  # noqa: E402

ROLE = "meshpki.vault_ca.istio_vault_ca"
SUMMARY = [
    "root:         CN=tetrate.io  serial 66:00:2a  expires 2027-11-28T20:58:21Z",
    "intermediate: CN=tetrate.io Intermediate Authority  serial 6d:c0:64  expires 2027-05-30T08:58:23Z (182 days left)",
    "key:          secret/data/istioca field ca-key.pem",
    "policy:       istioca (read on istioca/cert/ca, istioca/cert/ca_chain, pki/cert/ca, secret/data/istioca)",
    "role:         auth/kubernetes/role/istiod for istio-system/istiod-service-account",
    "target:       tsb_controlplane tsb/controlplane in /tmp/meshpki-demo-x/controlplane.yaml changed",
    "verified:     istiod would accept the bundle",
]
PEM = ("-----BEGIN CERTIFICATE-----\\nMIIBfzCCASWgAwIBAgIUALx4PemVZHfeUwCgYIKoZIzj0EAwIw" + "A" * 300
       + "\\n-----END CERTIFICATE-----")


def _task(name, status, body=""):
    return "TASK [%s : %s] %s\n%s%s: [localhost]\n\n" % (ROLE, name, "*" * 40, body, status)


def _playbook_stdout(failing=False):
    diff = json.dumps({"kubernetes_ca_cert": PEM, "token_reviewer_jwt": "(new value written, not shown)",
                       "pem_keys": []}, indent=4)
    out = "\nPLAY [Istio CA in Vault] %s\n\n" % ("*" * 40)
    out += _task("Check the inputs before the first request", "ok")
    out += _task("Log in to Vault once", "skipping")
    out += _task("Ensure the root CA in pki", "changed",
                 "--- before: pki\n+++ after: pki\n@@ -1 +1,3 @@\n-{}\n" + "".join(
                     "+" + line + "\n" for line in json.dumps({"common_name": "tetrate.io", "ttl": "8760h"},
                                                              indent=4).splitlines()) + "\n")
    out += _task("Ensure Kubernetes auth at kubernetes", "changed",
                 "--- before: auth/kubernetes/config\n+++ after\n" + "".join("+" + line + "\n" for line in
                                                                             diff.splitlines()) + "\n")
    if failing:
        out += "TASK [%s : Ensure the injector annotations on the tsb_controlplane] %s\n" % (ROLE, "*" * 20)
        out += "fatal: [localhost]: FAILED! => " + json.dumps(
            {"changed": False, "msg": "The manifest '/tmp/x/cp.yaml' does not exist"}, indent=4) + "\n\n"
        out += "PLAY RECAP %s\nlocalhost : ok=3 changed=2 unreachable=0 failed=1 skipped=1\n" % ("*" * 40)
        return out
    out += "TASK [%s : Summary] %s\nok: [localhost] => " % (ROLE, "*" * 40)
    out += json.dumps({"msg": SUMMARY}, indent=4) + "\n\n"
    out += "PLAY RECAP %s\nlocalhost : ok=6 changed=2 unreachable=0 failed=0 skipped=1\n" % ("*" * 40)
    return out


def _raw(line):
    """A line that is a piece of a result or diff blob rather than words."""
    text = line.strip()
    return (not text or text[0] in '{}[]"+-@' or re.search(r"[A-Za-z0-9+/=]{60,}", text) is not None
            or len(line) > 200)


def test_each_run_shows_one_line_per_task_not_the_diff_blob():
    lines = demo.task_lines(_playbook_stdout())
    assert lines == [
        "ok       Check the inputs before the first request",
        "changed  Ensure the root CA in pki",
        "changed  Ensure Kubernetes auth at kubernetes",
        "ok       Summary",
        "(1 tasks skipped)",
    ]
    assert not [line for line in lines if _raw(line)]


def test_the_rendered_files_are_named_in_words():
    out = json.dumps({"files": ["ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem"], "role": "istiod",
                      "auth_path": "auth/kubernetes", "agent_rc": 0})
    assert demo.render_line(out + "\n") == ("bao agent (exit 0) rendered ca-cert.pem, ca-key.pem, cert-chain.pem, "
                                            "root-cert.pem, logged in as role istiod at auth/kubernetes")


def test_a_failed_run_says_which_task_and_why():
    lines = demo.failure_lines(_playbook_stdout(failing=True), "")
    assert lines == ["FAILED   Ensure the injector annotations on the tsb_controlplane: "
                     "The manifest '/tmp/x/cp.yaml' does not exist"]
    assert demo.failure_lines("", "ERROR! the playbook: x.yml could not be found\n") == [
        "error: ERROR! the playbook: x.yml could not be found"]


@pytest.mark.parametrize("accepted", [True, False])
def test_the_demo_ends_with_the_summary_block_and_a_verdict(accepted):
    stdout = _playbook_stdout()
    checks = [("chains_to_root", "true"), ("key_matches_cert", "true" if accepted else "false")]
    lines = demo.final_summary(demo.summary_lines(stdout), demo.recap(stdout),
                               dict(ok=6, changed=0, unreachable=0, failed=0), [], 34.2, checks, accepted)
    assert lines[0] == "=== summary"
    assert lines[1:8] == ["  " + line for line in SUMMARY]
    assert lines[8:11] == ["  first run:  changed=2 failed=0",
                           "  second run: changed=0 failed=0, Vault writes: 0 (none)",
                           "  wall time: 34 s"]
    if accepted:
        assert lines[-1] == "verdict: istiod would accept the bundle (2 checks passed, openssl OK)"
    else:
        assert lines[-1] == "verdict: istiod would REJECT this bundle (key_matches_cert)"
    assert not [line for line in lines if _raw(line)], lines


def test_the_demo_reads_the_default_callback_whatever_the_environment_says(monkeypatch):
    monkeypatch.setenv("ANSIBLE_STDOUT_CALLBACK", "json")
    monkeypatch.setenv("ANSIBLE_CALLBACK_RESULT_FORMAT", "yaml")
    env = demo.ansible_env({"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_TOKEN": "t"})
    assert env["ANSIBLE_STDOUT_CALLBACK"] == "default" and env["ANSIBLE_CALLBACK_RESULT_FORMAT"] == "json"
