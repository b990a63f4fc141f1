# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-task and per-host timing for the benchmarks (ansible.posix.profile_tasks is not in
ansible-core; this notification callback is enough and has no dependency).

Writes one JSON file, ``$BENCH_TIMING_FILE``, at the end of the run:
``{"playbook_start": t0, "end": t1, "tasks": [{"name", "action", "start", "end",
"hosts": {host: [start, end, status]}}]}`` with ``time.time()`` stamps. A task's ``start`` is when
the strategy queued it; a host's ``start`` is when its worker began (v2_runner_on_start).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: bench_timing
type: aggregate
short_description: Write per-task, per-host timings to a JSON file (benchmarks only)
version_added: 0.1.0
description:
  - Records when each task started and ended, overall and per host, and writes them to the file named by the
    environment variable C(BENCH_TIMING_FILE) when the playbook ends.
requirements:
  - enable in ansible.cfg or with ANSIBLE_CALLBACKS_ENABLED=bench_timing
author:
  - meshpki maintainers (@meshpki)
'''

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_timing"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._start = time.time()
        self._tasks = []
        self._by_uuid = {}

    def _task(self, task):
        entry = self._by_uuid.get(task._uuid)
        if entry is None:
            entry = {"name": task.get_name(), "action": task.action, "start": time.time(), "end": None,
                     "hosts": {}}
            self._by_uuid[task._uuid] = entry
            self._tasks.append(entry)
        return entry

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task)

    def v2_runner_on_start(self, host, task):
        self._task(task)["hosts"][host.get_name()] = [time.time(), None, None]

    def _done(self, result, status):
        now = time.time()
        entry = self._task(result._task)
        host = result._host.get_name()
        record = entry["hosts"].setdefault(host, [now, None, None])
        record[1], record[2] = now, status
        entry["end"] = now if entry["end"] is None else max(entry["end"], now)

    def v2_runner_on_ok(self, result):
        self._done(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._done(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._done(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_TIMING_FILE")
        if not path:
            return
        with open(path, "w") as f:
            json.dump({"playbook_start": self._start, "end": time.time(), "tasks": self._tasks}, f)
