"""Real ``ansible-playbook`` runs against this checkout: the one runner of the integration tests (the
``playbook`` fixture), the reliability suite (the ``ansible`` fixture) and the diagnose tests.

Every run uses the collection linked under ``.collections/`` (tests/conftest.py makes the link) and this
virtualenv's Python, and writes each task result as one JSON line (the test-only callback
tests/integration/plugins/callback/meshpki_results.py), so that tests assert on structured results while
stdout stays Ansible's default output.

Two layouts of the runner's directory, ``workdir``:

- ``isolated=False`` (integration): run N writes ``playN.yml``, ``resultsN.jsonl``, ``stdoutN`` and ``stderrN``
  into ``workdir``, which is also its working directory and holds the shared ``ansible-local`` and
  ``ansible-remote`` temp dirs; a play's ``playbook_dir`` is ``workdir``.
- ``isolated=True`` (reliability): run N has a directory of its own, ``workdir/runNN/`` (``play.yml``,
  ``results.jsonl``, ``stdout``, ``stderr``), with its own temp dirs, ``ANSIBLE_HOME`` and ``TMPDIR`` inside:
  whatever the run leaves behind is in that directory (the leak and fault tests scan it).

Every run is a process group of its own, so ``start()`` gives a ``Background`` run that can be killed with
its workers (fault injection) or waited for; ``run()`` starts and waits.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
COLLECTIONS = os.path.join(REPO, ".collections")
CALLBACKS = os.path.join(REPO, "tests", "integration", "plugins", "callback")
TIMEOUT = 600


def ansible_env(rundir=None, results=None, isolated=False):
    """The environment of a run: this process's environment, the checkout's collection, this virtualenv's
    Python and ``ansible-playbook``, Ansible's default output (whatever the caller's environment says), no
    colour, no localhost warnings. With ``rundir``, the run's temp dirs there; ``results``, the results
    callback writing there; ``isolated``, ANSIBLE_HOME and TMPDIR in ``rundir`` too."""
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
    )
    if rundir:
        env.update(ANSIBLE_LOCAL_TEMP=os.path.join(rundir, "ansible-local"),
                   ANSIBLE_REMOTE_TEMP=os.path.join(rundir, "ansible-remote"))
    if results:
        env.update(ANSIBLE_CALLBACK_PLUGINS=CALLBACKS, ANSIBLE_CALLBACKS_ENABLED="meshpki_results",
                   MESHPKI_RESULTS_FILE=results)
    if isolated:
        env.update(ANSIBLE_HOME=os.path.join(rundir, "ansible-home"), TMPDIR=os.path.join(rundir, "tmp"))
        os.makedirs(env["TMPDIR"], exist_ok=True)
    return env


class PlaybookRun(object):
    """A finished (or killed) ansible-playbook run: ``rc``, ``stdout``, ``stderr``, ``results`` (one dict per
    task result: ``status``, ``host``, ``task``, ``action``, ``result``), the run's directory ``workdir``,
    ``killed`` and ``duration`` (seconds)."""

    def __init__(self, rc, stdout, stderr, results, workdir, killed=False, duration=0.0):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.results = results
        self.workdir = workdir
        self.killed = killed
        self.duration = duration

    @property
    def output(self):
        return self.stdout + self.stderr

    def failed(self):
        return [r for r in self.results if r["status"] == "failed" and not r["result"].get("skipped")]

    def failed_msgs(self):
        return [r["result"].get("msg") for r in self.failed()]

    def changed(self):
        return [r for r in self.results if r["status"] == "changed"]

    def task(self, name):
        """The last result of the task called ``name``."""
        found = [r for r in self.results if r["task"] == name]
        assert found, "task %r not in results; output:\n%s" % (name, self.output[-4000:])
        return found[-1]

    def recap(self):
        """{'ok': n, 'changed': n, 'failed': n, ...} of the first host's PLAY RECAP line."""
        match = re.search(r"^\S+\s*:\s*(ok=.*)$", self.stdout, re.M)
        return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))) if match else {}

    def __repr__(self):
        return "PlaybookRun(rc=%s, killed=%s, failed=%r)\n%s" % (
            self.rc, self.killed, self.failed_msgs(), self.output[-6000:])


class Background(object):
    """An ansible-playbook process in its own process group (so that SIGKILL takes its workers too)."""

    def __init__(self, args, env, cwd, files):
        self.rundir = cwd
        self.files = files
        self.killed = False
        self.started = time.time()
        with open(files["stdout"], "w") as out, open(files["stderr"], "w") as err:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, cwd=cwd, start_new_session=True)

    def kill(self):
        """SIGKILL the controller and every process it started (forks, module processes)."""
        self.killed = True
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self, timeout=TIMEOUT):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(30)
            raise AssertionError("ansible-playbook did not finish within %ss: %s" % (timeout, self.rundir))
        duration = time.time() - self.started
        with open(self.files["stdout"]) as f:
            stdout = f.read()
        with open(self.files["stderr"]) as f:
            stderr = f.read()
        return PlaybookRun(rc, stdout, stderr, read_results(self.files["results"]), self.rundir,
                           killed=self.killed, duration=duration)


def read_results(path):
    """The task results the callback wrote to ``path`` (a line cut short by SIGKILL is left out)."""
    results = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        results.append(json.loads(line))
                    except ValueError:
                        pass
    return results


class Playbooks(object):
    """Runs real ansible-playbook processes in ``workdir`` (see the module's doc for the two layouts).
    ``count`` is the number of runs started so far."""

    def __init__(self, workdir, isolated=False):
        self.workdir = str(workdir)
        self.isolated = isolated
        self.count = 0

    def _files(self):
        """The directory and files of the next run."""
        self.count += 1
        if self.isolated:
            rundir = os.path.join(self.workdir, "run%02d" % self.count)
            names = {"play": "play.yml", "results": "results.jsonl", "stdout": "stdout", "stderr": "stderr"}
        else:
            rundir = self.workdir
            names = {"play": "play%d.yml" % self.count, "results": "results%d.jsonl" % self.count,
                     "stdout": "stdout%d" % self.count, "stderr": "stderr%d" % self.count}
        os.makedirs(rundir, exist_ok=True)
        return rundir, dict((key, os.path.join(rundir, name)) for key, name in names.items())

    def run(self, plays, env=None, check=False, diff=False, verbosity=0, extra_args=(), inventory=None,
            timeout=TIMEOUT):
        """Run ``plays`` (YAML text or a list of plays) and wait; returns a PlaybookRun."""
        return self.start(plays, env, check, diff, verbosity, extra_args, inventory).wait(timeout)

    def run_file(self, path, env=None, check=False, diff=False, verbosity=0, extra_args=(), inventory=None,
                 timeout=TIMEOUT):
        """Run the playbook file ``path`` as it is (e.g. one of playbooks/) and wait; returns a PlaybookRun."""
        return self._start(None, path, env, check, diff, verbosity, extra_args, inventory).wait(timeout)

    def start_file(self, path, env=None, check=False, diff=False, verbosity=0, extra_args=(), inventory=None):
        """Start the playbook file ``path`` in the background; returns a Background run (``wait()``, ``kill()``)."""
        return self._start(None, path, env, check, diff, verbosity, extra_args, inventory)

    def start(self, plays, env=None, check=False, diff=False, verbosity=0, extra_args=(), inventory=None):
        """Start ``plays`` in the background; returns a Background run (``wait()``, ``kill()``)."""
        return self._start(plays, None, env, check, diff, verbosity, extra_args, inventory)

    def _start(self, plays, path, env, check, diff, verbosity, extra_args, inventory):
        rundir, files = self._files()
        if path is None:
            path = files["play"]
            text = plays if isinstance(plays, str) else yaml.safe_dump(plays, sort_keys=False)
            with open(path, "w") as f:
                f.write(textwrap.dedent(text))
        full_env = ansible_env(rundir, files["results"], self.isolated)
        full_env.update(env or {})
        args = [os.path.join(BIN, "ansible-playbook"), path]
        if inventory:
            args += ["-i", inventory]
        if check:
            args.append("--check")
        if diff:
            args.append("--diff")
        if verbosity:
            args.append("-" + "v" * verbosity)
        args += list(extra_args)
        return Background(args, full_env, rundir, files)


def module_play(module, args, name="task", defaults=None, **play_kwargs):
    """A one-task play calling ``module`` (short name) with ``args``; ``defaults`` go to the
    group/meshpki.vault_ca.vault module_defaults."""
    play = {"hosts": "localhost", "gather_facts": False, "connection": "local",
            "tasks": [{"name": name, "meshpki.vault_ca." + module: args}]}
    if defaults:
        play["module_defaults"] = {"group/meshpki.vault_ca.vault": defaults}
    play.update(play_kwargs)
    return [play]


def role_play(role_vars, hosts="localhost", name="istio_vault_ca", tasks_from=None):
    """A play running the role meshpki.vault_ca.istio_vault_ca with ``role_vars``; with ``tasks_from``, that
    entry point of the role (imported, as playbooks/diagnose.yml runs it)."""
    play = {"name": name, "hosts": hosts, "gather_facts": False, "connection": "local", "vars": role_vars,
            "roles": [{"role": "meshpki.vault_ca.istio_vault_ca"}]}
    if tasks_from:
        del play["roles"]
        play["tasks"] = [{"name": "entry point", "ansible.builtin.import_role": {
            "name": "meshpki.vault_ca.istio_vault_ca", "tasks_from": tasks_from}}]
    return [play]
