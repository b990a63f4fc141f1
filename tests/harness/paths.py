"""The two ways a module of the collection runs (plugins/plugin_utils/in_process.py), for tests that run the same
case through both and compare.

- ``in_process``: on the local connection the action plugin calls the module's ``main()`` in the controller's
  worker (the default; ``MESHPKI_IN_PROCESS=1`` says so explicitly);
- ``module``: ``MESHPKI_IN_PROCESS=0`` forces the normal module execution (AnsiballZ, a shell, a Python).

At ``-vvv`` each task says which one ran: the action plugin's line for in-process, its fallback line (with the
reason) and ansible-core's ``Using module file`` for a module process. :func:`run_both` checks it, so a case that
silently ran the same way twice fails.
"""

import copy
import json

PATHS = ("in_process", "module")
ENV = {"in_process": {"MESHPKI_IN_PROCESS": "1"}, "module": {"MESHPKI_IN_PROCESS": "0"}}
IN_PROCESS_MARK = "in-process in the controller's worker"
FALLBACK_MARK = "as a module process ("  # the action plugin's line, with the reason
MODULE_MARK = "Using module file"  # ansible-core's, when it builds the AnsiballZ payload


def path_env(path, env=None):
    """``env`` plus the switch for ``path``."""
    merged = dict(env or {})
    merged.update(ENV[path])
    return merged


def assert_ran(run, path, tasks=None):
    """Every module task of the -vvv ``run`` (or ``tasks`` of them) ran the ``path`` way."""
    marks = run.stdout.count(IN_PROCESS_MARK), run.stdout.count(MODULE_MARK)
    expected = tasks if tasks is not None else len([r for r in run.results if r["action"].startswith("meshpki.")])
    assert expected, ("no module task in the run", run)
    if path == "in_process":
        assert marks == (expected, 0), ("expected %d in-process runs, saw %r (in-process, module)" % (expected, marks),
                                        run)
    else:
        fallbacks = run.stdout.count(FALLBACK_MARK)
        assert marks[0] == 0 and fallbacks == expected and marks[1] >= expected, (
            "expected %d module processes, saw %r (in-process, module) and %d fallbacks" % (expected, marks, fallbacks),
            run)


class PathRunner(object):
    """``playbook`` (the integration fixture) bound to one path: same signature, the switch in the env."""

    def __init__(self, playbook, path):
        self.playbook = playbook
        self.path = path

    def __call__(self, plays, env=None, **kwargs):
        return self.playbook(plays, env=path_env(self.path, env), **kwargs)


def comparable(result):
    """A task result as both paths must give it: a copy without what differs by nature between two runs
    (durations; the AnsiballZ file a failing module process names in its traceback)."""
    result = copy.deepcopy(result)
    for key in ("start", "end", "delta"):
        result.pop(key, None)
    return result


def results_by_task(run):
    return [(r["task"], r["status"], comparable(r["result"])) for r in run.results]


def run_both(playbook, plays, env=None, tasks=None, **kwargs):
    """Run ``plays`` at -vvv in-process and then as module processes (same env, check, diff, ...), check that
    each ran its way, and assert the task results are equal. Returns the two PlaybookRuns."""
    kwargs.setdefault("verbosity", 3)
    runs = {}
    for path in PATHS:
        runs[path] = playbook(plays, env=path_env(path, env), **kwargs)
        assert_ran(runs[path], path, tasks)
    assert runs["in_process"].rc == runs["module"].rc, (runs["in_process"], runs["module"])
    left, right = results_by_task(runs["in_process"]), results_by_task(runs["module"])
    assert left == right, "results differ between the paths:\nin-process: %s\nmodule:     %s" % (
        json.dumps(left, sort_keys=True, default=str), json.dumps(right, sort_keys=True, default=str))
    return runs["in_process"], runs["module"]
