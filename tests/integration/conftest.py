"""Integration fixtures: a real OpenBao server (plain, TLS), and real ``ansible-playbook`` runs."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from harness.openbao import OpenBaoServer

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="session")
def bao(tmp_path_factory):
    """One dev server for the session, with a file audit device. Tests use unique names."""
    with OpenBaoServer(tmp_path_factory.mktemp("bao"), audit=True) as server:
        yield server


@pytest.fixture(scope="session")
def bao_tls(tmp_path_factory):
    """A dev server with a TLS listener (its own CA) besides the plain one, and an audit device."""
    with OpenBaoServer(tmp_path_factory.mktemp("bao-tls"), tls=True, audit=True) as server:
        yield server


class PlaybookRun(object):
    def __init__(self, proc, results):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.results = results

    @property
    def output(self):
        return self.stdout + self.stderr

    def task(self, name):
        """The last result of the task called ``name``."""
        found = [r for r in self.results if r["task"] == name]
        assert found, "task %r not in results; output:\n%s" % (name, self.output[-4000:])
        return found[-1]

    def __repr__(self):
        failed = [r["result"].get("msg") for r in self.results if r["status"] == "failed"]
        return "PlaybookRun(rc=%s, failed=%r)\n%s" % (self.rc, failed, self.output[-6000:])


@pytest.fixture
def playbook(tmp_path):
    """Run a real ``ansible-playbook`` on YAML text (or a list of plays); returns a PlaybookRun."""
    counter = [0]

    def run(plays, env=None, check=False, diff=False, verbosity=0, extra_args=(), inventory=None):
        counter[0] += 1
        path = tmp_path / ("play%d.yml" % counter[0])
        text = plays if isinstance(plays, str) else yaml.safe_dump(plays, sort_keys=False)
        path.write_text(textwrap.dedent(text))
        results_file = tmp_path / ("results%d.jsonl" % counter[0])
        full_env = dict(os.environ)
        full_env.update(
            ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
            ANSIBLE_CALLBACK_PLUGINS=os.path.join(HERE, "plugins", "callback"),
            ANSIBLE_CALLBACKS_ENABLED="meshpki_results",
            MESHPKI_RESULTS_FILE=str(results_file),
            ANSIBLE_LOCALHOST_WARNING="false",
            ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_PYTHON_INTERPRETER=sys.executable,
            ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
            ANSIBLE_REMOTE_TEMP=str(tmp_path / "ansible-remote"),
            PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
        )
        full_env.update(env or {})
        args = [os.path.join(BIN, "ansible-playbook"), str(path)]
        if inventory:
            args += ["-i", inventory]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        if verbosity:
            args.append("-" + "v" * verbosity)
        args += list(extra_args)
        proc = subprocess.run(args, env=full_env, capture_output=True, text=True, timeout=600, cwd=str(tmp_path),
                              check=False)
        results = []
        if results_file.exists():
            results = [json.loads(line) for line in results_file.read_text().splitlines() if line.strip()]
        return PlaybookRun(proc, results)

    return run


def module_play(module, args, name="task", defaults=None, **play_kwargs):
    """A one-task play calling ``module`` (short name) with ``args``; ``defaults`` go to the
    group/meshpki.vault_ca.vault module_defaults."""
    play = {"hosts": "localhost", "gather_facts": False, "connection": "local",
            "tasks": [{"name": name, "meshpki.vault_ca." + module: args}]}
    if defaults:
        play["module_defaults"] = {"group/meshpki.vault_ca.vault": defaults}
    play.update(play_kwargs)
    return [play]


def assert_four_step(playbook, plays, env=None):
    """check -> changed, apply -> changed, check -> not changed, apply -> not changed.

    Returns the four PlaybookRuns; every run must succeed."""
    runs = []
    for check, expected in ((True, True), (False, True), (True, False), (False, False)):
        run = playbook(plays, env=env, check=check, diff=True)
        assert run.rc == 0, run
        changed = [r for r in run.results if r["status"] == "changed"]
        assert bool(changed) is expected, ("check=%s expected changed=%s" % (check, expected), run)
        runs.append(run)
    return runs
