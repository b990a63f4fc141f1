"""Run the reliability and security suite (tests/reliability) and print its one table.

    python tools/reliability.py            # everything: faults, concurrency, HA, bad input, leaks, privilege, TLS
    python tools/reliability.py --fast     # the fast part only (bad input, leaks, least privilege, TLS)
    python tools/reliability.py --report   # print the last report again (tests/output/reliability-report.md)
    python tools/reliability.py -- -k ha   # extra pytest arguments after --

The table is printed by the suite itself (tests/reliability/conftest.py) at the end of the pytest run and
written to tests/output/reliability-report.md with the detail tables (every bad input, fault, probe). The
run is bounded: it is stopped after --timeout seconds (default 1500). The exit status is pytest's.
"""

import argparse
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT = os.path.join(REPO, "tests", "output", "reliability-report.md")


def print_report():
    if not os.path.exists(REPORT):
        print("no report yet: run python tools/reliability.py first", file=sys.stderr)
        return 1
    with open(REPORT) as f:
        print(f.read().split("\n## ", 1)[0].rstrip())
    print("\n(details: %s)" % os.path.relpath(REPORT, REPO))
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--fast", action="store_true", help="only the cases marked reliability_fast")
    parser.add_argument("--report", action="store_true", help="print the last report and exit")
    parser.add_argument("--workers", default="2", help="pytest-xdist workers (default 2)")
    parser.add_argument("--timeout", type=int, default=1500, help="stop the run after this many seconds")
    args = parser.parse_args(argv)
    if args.report:
        return print_report()
    command = [sys.executable, "-m", "pytest", "tests/reliability", "-q", "-p", "no:cacheprovider",
               "-n", args.workers]
    if args.fast:
        command += ["-m", "reliability_fast"]
    command += extra
    print("+ " + " ".join(command), flush=True)
    started = time.time()
    proc = subprocess.Popen(command, cwd=REPO, start_new_session=True)
    try:
        rc = proc.wait(args.timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        print("reliability suite stopped after %d s (--timeout)" % args.timeout, file=sys.stderr)
        return 124
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGINT)
        return proc.wait()
    print("reliability suite: %s in %.0f s; report: %s"
          % ("passed" if rc == 0 else "FAILED (exit %d)" % rc, time.time() - started, os.path.relpath(REPORT, REPO)))
    return rc


if __name__ == "__main__":
    sys.exit(main())
