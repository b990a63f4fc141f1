"""Integration fixtures: a real OpenBao server (plain, TLS), and real ``ansible-playbook`` runs
(tests/harness/playbook.py)."""

import pytest

from harness.openbao import OpenBaoServer
from harness.playbook import Playbooks


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


@pytest.fixture
def playbook(tmp_path):
    """Run a real ``ansible-playbook`` on YAML text (or a list of plays) in ``tmp_path``; returns a
    harness.playbook.PlaybookRun. Options: env, check, diff, verbosity, extra_args, inventory."""
    return Playbooks(tmp_path).run


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
