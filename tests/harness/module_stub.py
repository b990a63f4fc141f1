# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for MeshPkiModule when unit-testing the logic a module runs (``fn(module)`` of
``MeshPkiModule.run(fn)``), without Ansible: the params (validated against the module's real ARGUMENT_SPEC when
``argument_spec`` is given: defaults filled, aliases resolved), check mode, warn() (recorded), no_log_values and
get_authenticated_client() - the FakeVault given, counted in ``logins`` so a test can assert that invalid input
failed before the login, or an AssertionError when the task must not contact Vault (no client)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


class ModuleStub(object):
    def __init__(self, params, client=None, check_mode=False, argument_spec=None):
        if argument_spec is not None:
            result = ArgumentSpecValidator(argument_spec).validate(dict(params))
            if result.error_messages:
                raise AssertionError("invalid test parameters: %s" % result.error_messages)
            params = result.validated_parameters
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
