"""Measuring one command: wall time, CPU time of its whole process tree, peak memory of that tree,
and the Vault requests it caused (from the server's file audit device).

Standard library only (the driver runs with the collection's own virtualenv).
"""

import os
import signal
import subprocess
import threading
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------------------
# memory of a process tree
# ---------------------------------------------------------------------------------------------------------

def _children_map():
    """{ppid: [pid, ...]} of every process, from /proc/<pid>/stat."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # the command name is in parentheses and may contain spaces: split after the last ')'
        fields = stat[stat.rfind(")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(name))
    return children


def tree_pids(root):
    children = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, ()))
    return pids


def _rss(pid):
    try:
        with open("/proc/%d/statm" % pid) as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


class TreeMemorySampler(threading.Thread):
    """Polls the process tree under ``root`` every ``interval`` seconds.

    Sums RSS (cheap: /proc/<pid>/statm) at every sample; when that sum reaches a new maximum it also
    reads PSS (/proc/<pid>/smaps_rollup, shared pages split between the processes sharing them, which
    is what forked Ansible workers really cost). Reports the peaks of both sums and of the process count.
    """

    def __init__(self, root, interval=0.1):
        super(TreeMemorySampler, self).__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def sample(self):
        pids = tree_pids(self.root)
        rss = sum(_rss(pid) for pid in pids)
        self.samples += 1
        self.peak_procs = max(self.peak_procs, len(pids))
        if rss > self.peak_rss:
            self.peak_rss = rss
            self.peak_pss = max(self.peak_pss, sum(_pss(pid) for pid in pids))

    def stop(self):
        self._halt.set()
        self.join(5)


# ---------------------------------------------------------------------------------------------------------
# the Vault server's CPU time (its audit log: tests/harness/audit.py, AuditLog.summary)
# ---------------------------------------------------------------------------------------------------------

def process_cpu_seconds(pid):
    """utime + stime of one process (the Vault server), in seconds."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / float(TICKS)


# ---------------------------------------------------------------------------------------------------------
# one measured command
# ---------------------------------------------------------------------------------------------------------

def run_measured(args, env, cwd, log_path, audit=None, server_pid=None, timeout=1800, sample_memory=True):
    """Run ``args`` with stdout+stderr to ``log_path``; return the measurements as a dict (with ``audit``, an
    AuditLog of tests/harness/audit.py, the counts of the Vault requests it caused too)."""
    mark = audit.mark() if audit else None
    vault_cpu0 = process_cpu_seconds(server_pid) if server_pid else 0.0
    with open(log_path, "wb") as log:
        started = time.time()
        # its own process group, so that a timeout or an interrupted benchmark leaves no process behind
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        sampler = TreeMemorySampler(proc.pid) if sample_memory else None
        if sampler:
            sampler.start()
        deadline = started + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.time() > deadline:
                    raise TimeoutError("%s ran longer than %d s" % (args[0], timeout))
                time.sleep(0.005)
        except BaseException:
            _kill_group(proc.pid)
            os.wait4(proc.pid, 0)
            raise
        finally:
            if sampler:
                sampler.stop()
        wall = time.time() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        _kill_group(proc.pid)  # anything it left running in the background
    result = {
        "rc": proc.returncode,
        "wall": wall,
        # the command and every descendant it waited for (ansible workers, modules, shells, bao CLI)
        "cpu": usage.ru_utime + usage.ru_stime,
        "maxrss_single": usage.ru_maxrss * 1024,
        "peak_rss": sampler.peak_rss if sampler else None,
        "peak_pss": sampler.peak_pss if sampler else None,
        "peak_procs": sampler.peak_procs if sampler else None,
        "log": log_path,
    }
    if server_pid:
        result["vault_cpu"] = process_cpu_seconds(server_pid) - vault_cpu0
    if audit:
        result.update(audit.summary(mark))
    return result


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_text(path, limit=None):
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-limit:] if limit else text
