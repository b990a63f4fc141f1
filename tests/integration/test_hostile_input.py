"""Names in certificates and arguments left on disk.

- A subject field of a generated root or intermediate (common name, O, OU, C, L, ST) with a newline, a NUL,
  a bidi override or another invisible character is refused before any request: the audit log shows none.
- With ANSIBLE_KEEP_REMOTE_FILES=1 Ansible turns pipelining off (even when it is asked for) and leaves each
  module's AnsiballZ file - its arguments, the token included - in the remote temp dir: every module run as a
  module process (MESHPKI_IN_PROCESS=0 here; any connection but local) warns, naming the file. Without it there
  is no such file and no warning, pipelining on or off. In-process (the local connection's default) there is no
  AnsiballZ file at all, so nothing is kept and nothing is warned about.
"""

import glob
import os

import pytest

from harness.hostile import run_module
from harness.paths import path_env

BAD_SUBJECTS = ["tetrate.io\nCN=evil", "tetrate.io\x00evil", "tetrate\u202eoi.etartet", "a\u200bb", "a\u2028b",
                "a\rb"]


@pytest.mark.parametrize("module,extra", [("vault_pki_root", {}), ("vault_pki_intermediate", {"ttl": "24h"})])
def test_control_and_bidi_characters_in_a_subject_are_refused_before_any_request(bao, module, extra):
    conn = {"url": bao.url, "token": bao.token, "mount": "subject-" + module.split("_")[-1]}
    wrong = []
    cases = [("common_name", value) for value in BAD_SUBJECTS]
    cases += [(field, ["ok", value]) for field in ("organization", "ou", "country", "locality", "province")
              for value in BAD_SUBJECTS[:3]]
    for field, value in cases:
        args = dict(conn, common_name="ok.example", **extra)
        args[field] = value
        mark = bao.audit.mark()
        result = run_module(module, args)
        msg = result.get("msg") or ""
        sent = bao.audit.requests(mark)
        if not result.get("failed") or "no place in a certificate subject" not in msg or field not in msg or sent:
            wrong.append("%s=%r: failed=%s sent=%s msg=%s" % (field, value, result.get("failed"), sent, msg[:160]))
    assert not wrong, "\n".join(wrong)
    assert "subject-" + module.split("_")[-1] + "/" not in bao.api("GET", "sys/mounts")["data"]


def test_a_plain_subject_with_spaces_and_unicode_letters_is_accepted(bao):
    result = run_module("vault_pki_root", {"url": bao.url, "token": bao.token, "mount": "subject-ok",
                                           "common_name": "Zürich Mesh Root CA", "organization": ["Tetrate Ä"],
                                           "ttl": "48h"})
    assert not result.get("failed"), result
    assert result["changed"]


def _kept_play(bao):
    return [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [{"name": "log in", "meshpki.vault_ca.vault_login": {"url": bao.url, "token": bao.token}},
                       {"name": "verify", "meshpki.vault_ca.istio_ca_verify": {"path": "/nonexistent/cacerts"},
                        "ignore_errors": True},
                       {"name": "annotate", "meshpki.vault_ca.tsb_controlplane_annotations": {
                           "path": "/nonexistent/controlplane.yaml"}, "ignore_errors": True}]}]


@pytest.mark.parametrize("pipelining", ["0", "1"])
def test_keep_remote_files_warns_and_names_the_file(playbook, bao, tmp_path, pipelining):
    remote = tmp_path / "remote-tmp"
    run = playbook(_kept_play(bao), env=path_env("module", {"ANSIBLE_KEEP_REMOTE_FILES": "1",
                                                            "ANSIBLE_PIPELINING": pipelining,
                                                            "ANSIBLE_REMOTE_TEMP": str(remote)}))
    kept = glob.glob(str(remote / "**" / "AnsiballZ_vault_login.py"), recursive=True)
    assert kept, "Ansible kept no AnsiballZ file: the case does not show what it should"
    with open(kept[0], "rb") as f:
        assert bao.token.encode() in f.read(), "the token is not in the kept file"
    for name in ("log in", "verify", "annotate"):
        warnings = " ".join(run.task(name)["result"].get("warnings") or [])
        assert "ANSIBLE_KEEP_REMOTE_FILES is on, which also turns pipelining off" in warnings, (name, run)
        assert "AnsiballZ_" in warnings and str(remote) in warnings, (name, warnings)


def test_keep_remote_files_warns_also_when_the_arguments_are_refused(playbook, bao, tmp_path):
    """A task whose arguments fail Ansible's own checks still leaves its file (and the token in it) behind."""
    remote = tmp_path / "remote-tmp"
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "tasks": [{"name": "no policy text", "ignore_errors": True,
                        "meshpki.vault_ca.vault_policy": {"url": bao.url, "token": bao.token, "name": "p"}}]}]
    run = playbook(play, env=path_env("module", {"ANSIBLE_KEEP_REMOTE_FILES": "1",
                                                 "ANSIBLE_REMOTE_TEMP": str(remote)}))
    result = run.task("no policy text")
    assert result["status"] == "failed" and "missing" in result["result"]["msg"], result
    warnings = " ".join(result["result"].get("warnings") or [])
    assert "ANSIBLE_KEEP_REMOTE_FILES is on" in warnings and "AnsiballZ_vault_policy.py" in warnings, result


@pytest.mark.parametrize("pipelining", ["0", "1"])
def test_without_keep_remote_files_there_is_no_warning(playbook, bao, tmp_path, pipelining):
    run = playbook(_kept_play(bao), env={"ANSIBLE_KEEP_REMOTE_FILES": "0", "ANSIBLE_PIPELINING": pipelining,
                                         "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote-tmp")})
    for name in ("log in", "verify", "annotate"):
        assert not any("KEEP_REMOTE_FILES" in w for w in run.task(name)["result"].get("warnings") or []), run
    assert not os.path.exists(str(tmp_path / "remote-tmp")) or not glob.glob(
        str(tmp_path / "remote-tmp" / "**" / "AnsiballZ_*"), recursive=True)


def test_keep_remote_files_in_process_keeps_nothing_and_warns_about_nothing(playbook, bao, tmp_path):
    """In the controller's worker the arguments never reach a file: no AnsiballZ file, no warning."""
    remote = tmp_path / "remote-tmp"
    run = playbook(_kept_play(bao), env=path_env("in_process", {"ANSIBLE_KEEP_REMOTE_FILES": "1",
                                                                "ANSIBLE_REMOTE_TEMP": str(remote)}))
    assert run.task("log in")["status"] == "ok", run
    for name in ("log in", "verify", "annotate"):
        assert not any("KEEP_REMOTE_FILES" in w for w in run.task(name)["result"].get("warnings") or []), run
    assert not glob.glob(str(remote / "**" / "AnsiballZ_*"), recursive=True)
