# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Environment-variable fallbacks (VAULT_*, K8S_AUTH_*, KUBECONFIG), in a file that imports nothing heavy: the
kubeconfig reader and the role's input filters use it without loading hvac or requests."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def env(*names):
    """First non-empty value among the environment variables ``names``."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None
