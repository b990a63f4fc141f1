# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only callback: appends every task result as one JSON line to $MESHPKI_RESULTS_FILE,
so integration tests assert on structured results while stdout stays the default one."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: meshpki_results
type: aggregate
short_description: Write task results as JSON lines for the collection's integration tests
description:
  - Appends one JSON object per task result to the file named by E(MESHPKI_RESULTS_FILE).
requirements:
  - MESHPKI_RESULTS_FILE set in the environment
'''

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "meshpki_results"
    CALLBACK_NEEDS_ENABLED = True

    def _write(self, status, result):
        path = os.environ.get("MESHPKI_RESULTS_FILE")
        if not path:
            return
        record = dict(status=status, host=result._host.get_name(), task=result._task.get_name(),
                      action=result._task.action, result=result._result)
        with open(path, "a") as f:
            f.write(json.dumps(record, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._write("changed" if result._result.get("changed") else "ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write("failed", result)

    def v2_runner_on_skipped(self, result):
        self._write("skipped", result)
