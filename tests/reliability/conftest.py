"""The reliability suite: markers, fixtures, and the report.

Markers (registered here, so pytest.ini needs no change):

- ``reliability``: every test of this directory (added automatically).
- ``reliability_fast``: bad input, secret leaks, least privilege, TLS - part of ``make test``.
- ``reliability_slow``: fault injection, concurrency, Vault HA - only in ``make reliability``.

Report: a test records its numbers with the ``report`` fixture *before* asserting on them. At the end
of the session (the xdist controller, or the only process) the rows are joined with the outcome of the
test that produced them, printed as one table, and written to tests/output/reliability-report.md. A
number whose test failed is shown as FAILED: nothing in the table comes from a test that could not fail.
"""

import json
import os
import shutil
import time

import pytest
from relharness import Cluster, FaultProxy, raw_audit_server

from harness.openbao import OpenBaoServer
from harness.playbook import Playbooks

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUTPUT = os.path.join(REPO, "tests", "output")
RECORDS = os.path.join(OUTPUT, "reliability-records")
_SESSION = {}
REPORT = os.path.join(OUTPUT, "reliability-report.md")

# Summary rows in table order: key -> (area, what is counted, what must hold)
ROWS = [
    ("faults", "Fault injection at step boundaries", "faults injected / converged / lost",
     "converged = injected, lost = 0"),
    ("concurrency", "Concurrent runs (fresh server)", "runs / succeeded / clear conflicts / roots / default "
     "intermediates / KV key versions / re-run changed", "roots = 1, intermediates = 1, versions = 1, changed = 0"),
    ("ha", "Vault HA (3-node raft)", "failover outcome", "completes, or fails clearly and the next run converges"),
    ("bad_input", "Bad input", "tried / clear errors / writes", "clear = tried, writes = 0"),
    ("leaks", "Secret leaks", "probes / leaks", "leaks = 0"),
    ("privilege", "Least privilege (istiod token)", "probes / allowed reads / denied", "every other probe denied"),
    ("tls", "TLS", "checks / held", "held = checks"),
    ("traversal", "Path traversal (every path-forming option)", "tried / rejected / requests",
     "rejected = tried, requests = 0"),
    ("redirects", "Redirects carrying credentials", "redirects / refused / credentials received elsewhere",
     "refused = redirects, received = 0"),
    ("pem_keys", "Private keys in certificate options", "options tried / refused / key in output",
     "refused = tried, in output = 0"),
    ("tokens", "Tokens the collection creates", "created / revoked / no-change re-run writes",
     "revoked = created, writes = 0"),
    ("manifest", "Manifest files (symlink, duplicates, size, aliases)", "cases / held", "held = cases"),
]

# Rows summed field by field, in this order ("a / b / c"); the other rows have their own formats below.
SUMMED_FIELDS = {
    "traversal": ("tried", "rejected", "requests"),
    "redirects": ("redirects", "refused", "received"),
    "pem_keys": ("tried", "refused", "leaked"),
    "tokens": ("created", "revoked", "writes"),
    "manifest": ("cases", "held"),
}


def pytest_configure(config):
    config.addinivalue_line("markers", "reliability: the reliability suite (tests/reliability)")
    config.addinivalue_line("markers", "reliability_fast: fast reliability cases run by make test "
                                       "(bad input, leaks, least privilege, TLS)")
    config.addinivalue_line("markers", "reliability_slow: fault injection, concurrency and HA (make reliability)")
    config._reliability_outcomes = {}
    config._reliability_started = time.time()
    if hasattr(config, "workerinput"):  # an xdist worker writes where its controller reads
        _SESSION["records"] = config.workerinput.get("reliability_records") or os.path.join(
            RECORDS, "worker-%d-%d" % (os.getpid(), int(time.time() * 1000)))  # controller loaded us too late
        os.makedirs(_SESSION["records"], exist_ok=True)
    else:  # the controller (or a run without xdist): a records directory of this session's own
        _prune_old_records()
        _SESSION["records"] = os.path.join(RECORDS, "%d-%d" % (os.getpid(), int(time.time() * 1000)))
        os.makedirs(_SESSION["records"])


def _prune_old_records(age=6 * 3600):
    """Records of sessions that ended long ago (a session running now keeps its own directory)."""
    if not os.path.isdir(RECORDS):
        return
    for name in os.listdir(RECORDS):
        path = os.path.join(RECORDS, name)
        if time.time() - os.path.getmtime(path) > age:
            shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist (controller): tell each worker the session's records directory."""
    node.workerinput["reliability_records"] = _SESSION["records"]


def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).startswith(HERE):
            item.add_marker(pytest.mark.reliability)


class Report(object):
    """Rows written by one test: ``metric(key, **numbers)`` for the summary, ``detail(table, row)`` for
    the detail tables (bad-input cases, faults, probes)."""

    def __init__(self, nodeid):
        self.nodeid = nodeid
        safe = "".join(c if c.isalnum() else "_" for c in nodeid)[-150:]
        self.path = os.path.join(_SESSION["records"], safe + ".jsonl")

    def _write(self, record):
        record["nodeid"] = self.nodeid
        with open(self.path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def metric(self, key, **values):
        self._write({"kind": "metric", "key": key, "values": values})

    def detail(self, table, **row):
        self._write({"kind": "detail", "table": table, "row": row})


@pytest.fixture
def report(request):
    return Report(request.node.nodeid)


def pytest_runtest_logreport(report):
    """Collects each test's outcome (on the controller too: xdist replays workers' reports here)."""
    config = _CONFIG.get("config")
    if config is None:
        return
    outcomes = config._reliability_outcomes
    if report.when == "call" or report.outcome != "passed":
        previous = outcomes.get(report.nodeid)
        if previous != "failed":
            outcomes[report.nodeid] = "failed" if report.outcome == "failed" else report.outcome


_CONFIG = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    _CONFIG["config"] = session.config


def _load_records():
    records = []
    directory = _SESSION.get("records")
    if not directory or not os.path.isdir(directory):
        return records
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as f:
            records.extend(json.loads(line) for line in f if line.strip())
    return records


def _sum(metrics, field):
    return sum(m["values"].get(field, 0) for m in metrics)


def _summary_cell(key, metrics):
    """The summary text of one row from the metrics of its tests."""
    if not metrics:
        return "not run"
    if key in SUMMED_FIELDS:
        return " / ".join("%d" % _sum(metrics, field) for field in SUMMED_FIELDS[key])
    if key == "faults":
        return "%d / %d / %d" % (_sum(metrics, "injected"), _sum(metrics, "converged"), _sum(metrics, "lost"))
    if key == "concurrency":
        m = metrics[-1]["values"]
        return "%s / %s / %s / %s / %s / %s / %s" % (m.get("runs"), m.get("succeeded"), m.get("conflicts"),
                                                     m.get("roots"), m.get("intermediates"), m.get("kv_versions"),
                                                     m.get("rerun_changed"))
    if key == "ha":
        return "; ".join(str(m["values"].get("outcome")) for m in metrics)
    if key == "bad_input":
        return "%d / %d / %d" % (_sum(metrics, "tried"), _sum(metrics, "clear"), _sum(metrics, "writes"))
    if key == "leaks":
        return "%d / %d" % (_sum(metrics, "probes"), _sum(metrics, "leaks"))
    if key == "privilege":
        return "%d / %d / %d" % (_sum(metrics, "probes"), _sum(metrics, "allowed"), _sum(metrics, "denied"))
    if key == "tls":
        return "%d / %d" % (_sum(metrics, "checks"), _sum(metrics, "held"))
    return json.dumps([m["values"] for m in metrics])


def build_report(records, outcomes, elapsed):
    metrics = [r for r in records if r["kind"] == "metric"]
    lines = ["# Reliability and security report", "",
             "Run time: %.0f s. Every number comes from a test that asserts on it; a row whose test failed "
             "says FAILED." % elapsed, "",
             "| Area | Counted | Result | Must hold | Held |", "| --- | --- | --- | --- | --- |"]
    for key, area, counted, must in ROWS:
        mine = [m for m in metrics if m["key"] == key]
        states = [outcomes.get(m["nodeid"], "unknown") for m in mine]
        if not mine:
            held = "not run"
        elif all(s == "passed" for s in states):
            held = "yes"
        else:
            bad = sorted(set(m["nodeid"].split("::")[-1] for m, s in zip(mine, states) if s != "passed"))
            held = "FAILED (%s)" % ", ".join(bad)
        lines.append("| %s | %s | %s | %s | %s |" % (area, counted, _summary_cell(key, mine), must, held))
    details = {}
    for record in records:
        if record["kind"] == "detail":
            details.setdefault(record["table"], []).append(record)
    for table in sorted(details):
        rows = details[table]
        columns = []
        for record in rows:
            for column in record["row"]:
                if column not in columns:
                    columns.append(column)
        lines += ["", "## %s" % table, "", "| " + " | ".join(columns) + " | test |",
                  "| " + " | ".join("---" for _column in columns) + " | --- |"]
        for record in rows:
            cells = [_cell(record["row"].get(c, "")) for c in columns]
            lines.append("| " + " | ".join(cells) + " | %s |" % outcomes.get(record["nodeid"], "unknown"))
    return "\n".join(lines) + "\n"


def _cell(value):
    text = value if isinstance(value, str) else json.dumps(value)
    return text.replace("|", "\\|").replace("\n", " ")


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput"):
        return
    records = _load_records()
    if not records:
        return
    text = build_report(records, config._reliability_outcomes, time.time() - config._reliability_started)
    os.makedirs(OUTPUT, exist_ok=True)
    with open(REPORT, "w") as f:
        f.write(text)
    summary = text.split("\n## ", 1)[0].rstrip()
    terminalreporter.write_sep("=", "reliability report (%s)" % os.path.relpath(REPORT, REPO))
    terminalreporter.write_line(summary)


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def cluster(tmp_path):
    """A fake Kubernetes API with the sample ControlPlane (tools/embedded.py), for this test only."""
    fake = Cluster(tmp_path)
    yield fake
    fake.stop()


@pytest.fixture
def ansible(tmp_path):
    return Playbooks(tmp_path / "runs", isolated=True)


@pytest.fixture
def raft_bao(tmp_path):
    """OpenBao on raft storage (survives SIGKILL and restart), with a file audit device."""
    with OpenBaoServer(tmp_path / "bao", storage="raft", audit=True) as server:
        yield server


@pytest.fixture
def bao_dev(tmp_path):
    """A plain dev OpenBao for this test."""
    with OpenBaoServer(tmp_path / "bao-dev") as server:
        yield server


@pytest.fixture
def raw_bao(tmp_path):
    """A dev OpenBao whose audit log has every token, secret_id and key in clear (the leak test's witness)."""
    with raw_audit_server(tmp_path / "bao-raw") as server:
        yield server


@pytest.fixture(autouse=True)
def _stop_proxies():
    yield
    FaultProxy.stop_all()
