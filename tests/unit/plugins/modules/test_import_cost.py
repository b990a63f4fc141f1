# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each module imports only what its calls need (issue #17): the kubernetes client - the costliest import of all -
only when an API client is built (kubernetes/client.py ``kubernetes_library()``), so importing a module loads it
for none of them; cryptography only in the modules that parse certificates or keys on every call. Checked in a
fresh Python per module (``sys.modules`` after ``import <module>``), not by timing."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
COLLECTIONS = os.path.join(REPO, ".collections")
PACKAGE = "ansible_collections.meshpki.vault_ca.plugins.modules."
HEAVY = ("kubernetes", "cryptography")
PROBE = "import sys, json; import %s; print(json.dumps(sorted(m for m in %r if m in sys.modules)))"

# The heavy libraries loaded by importing each module. The PKI modules and the verification parse certificates
# on every call; nothing imports kubernetes until it builds a client (live ControlPlane, kubeconfig
# lookups that reach the API, the token reviewer, diagnose's cluster checks).
EXPECTED = {
    "istio_ca_diagnose": ["cryptography"],
    "istio_ca_verify": ["cryptography"],
    "tsb_controlplane_annotations": [],
    "vault_audit": [],
    "vault_k8s_auth": [],
    "vault_k8s_role": [],
    "vault_login": [],
    "vault_pki_intermediate": ["cryptography"],
    "vault_pki_root": ["cryptography"],
    "vault_pki_root_rotation": ["cryptography"],
    "vault_policy": [],
}


def loaded_by(module):
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    out = subprocess.run([sys.executable, "-c", PROBE % (PACKAGE + module, HEAVY)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_importing_a_module_loads_only_the_heavy_libraries_its_calls_always_need():
    modules_dir = os.path.join(REPO, "plugins", "modules")
    modules = sorted(name[:-3] for name in os.listdir(modules_dir) if name.endswith(".py"))
    found = dict((module, loaded_by(module)) for module in modules)
    assert found == EXPECTED


def test_the_kubernetes_library_loads_when_a_client_is_built():
    code = ("import sys\n"
            "from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes import client\n"
            "assert 'kubernetes' not in sys.modules\n"
            "assert not client.is_api_exception(ValueError('x'))\n"
            "lib = client.kubernetes_library()\n"
            "from kubernetes.client.rest import ApiException\n"
            "assert client.is_api_exception(ApiException(status=409), 409)\n"
            "assert not client.is_api_exception(ApiException(status=404), 409)\n"
            "print(lib.__name__)\n")
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "kubernetes", out.stderr
