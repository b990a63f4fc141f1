"""The one reader of OpenBao's file audit device, for tests, tools/demo.py and the benchmarks.

The device writes one JSON object per line: a ``request`` entry when a request arrives, a ``response``
entry when it is answered. A position in the log is a number of entries (``mark()``); every query counts
from such a position, so a test sees only what happened after it took its mark.
"""

import json
import os

WRITE_OPERATIONS = ("create", "update", "delete")


def is_login(path):
    """Whether ``path`` is a login (an update of ``auth/<mount>/login...``): left out of the writes."""
    return (path or "").startswith("auth/") and "/login" in path


class AuditLog(object):
    """The audit log at ``path`` (it may not exist yet: then it holds nothing)."""

    def __init__(self, path):
        self.path = path

    def _lines(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if line.strip()]

    def mark(self):
        """The position to count from: ``requests(since=mark)``, ``writes(since=mark)``, ``entries(mark)``."""
        return len(self._lines())

    def entries(self, since=0):
        """The entries (requests and responses) logged after ``since`` entries."""
        return [json.loads(line) for line in self._lines()[since:]]

    def requests(self, since=0):
        """[(operation, path)] of the requests logged after ``since`` entries."""
        return [(e["request"].get("operation"), e["request"].get("path"))
                for e in self.entries(since) if e.get("type") == "request"]

    def writes(self, since=0, include_logins=False):
        """Write requests (create/update/delete). Logins are updates too; left out unless asked."""
        return [(op, path) for op, path in self.requests(since)
                if op in WRITE_OPERATIONS and (include_logins or not is_login(path))]

    def created_tokens(self, since=0):
        """[(path, accessor)] of the responses after ``since`` that created a token (logins, auth/token/create)."""
        found = []
        for entry in self.entries(since):
            auth = (entry.get("response") or {}).get("auth") or {}
            if entry.get("type") == "response" and auth.get("accessor"):
                found.append((entry["request"]["path"], auth["accessor"]))
        return found

    def summary(self, since=0):
        """Counts of the requests logged after ``since``: all, reads, writes (logins apart), logins,
        token creations, token lookups, failed responses, and the write paths (the benchmarks' columns)."""
        requests, failed = [], 0
        for entry in self.entries(since):
            if entry.get("type") == "request":
                req = entry.get("request") or {}
                requests.append((req.get("operation"), req.get("path") or ""))
            elif entry.get("type") == "response" and entry.get("error"):
                failed += 1
        writes = [(op, path) for op, path in requests if op in WRITE_OPERATIONS and not is_login(path)]
        return {
            "requests": len(requests),
            "reads": sum(1 for op, _p in requests if op in ("read", "list")),
            "writes": len(writes),
            "logins": sum(1 for _op, path in requests if is_login(path)),
            "token_creates": sum(1 for _op, path in requests if path.startswith("auth/token/create")),
            "token_lookups": sum(1 for _op, path in requests if path.startswith("auth/token/lookup")),
            "failed": failed,
            "write_paths": [path for _op, path in writes],
            "paths": ["%s %s" % (op, path) for op, path in requests],
        }
