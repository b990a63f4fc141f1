# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a module's task function (``fn`` of ``MeshPkiModule.run(fn)``) uses of its module, without Ansible: the
params, check mode, warn() (recorded), no_log_values and get_authenticated_client() (a FakeVault, or an error when
the task must not contact Vault)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleStub(object):
    def __init__(self, params, client=None, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.client = client
        self.warnings = []
        self.no_log_values = set()
        self.logins = 0

    def warn(self, warning):
        self.warnings.append(warning)

    def get_authenticated_client(self):
        if self.client is None:
            raise AssertionError("the task contacted Vault, it should not have")
        self.logins += 1
        return self.client
