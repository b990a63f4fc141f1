# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: role_file_problems
short_description: What is wrong with the manifest and the kubeconfig a role run would use
version_added: 0.3.0
author:
  - meshpki maintainers (@meshpki)
description:
  - Reads the manifest and the kubeconfig with the code the modules read them with (the same size and alias limits,
    the same kubeconfig search order) and returns one sentence per problem, naming the role variable. Sends nothing
    to Vault or Kubernetes.
  - "Manifest: it exists (or, for V(helm_values), may be missing: it is created), is UTF-8 YAML within the limits, and
    holds exactly one document of the target's kind (and name and namespace when given)."
  - "Kubeconfig (when O(_input.kubeconfig_needed)): the file (the variable, else E(K8S_AUTH_KUBECONFIG), the first
    file of E(KUBECONFIG), C(~/.kube/config)) exists and is a kubeconfig, the context (the variable, else
    E(K8S_AUTH_CONTEXT), else C(current-context)) exists and names a cluster with a server."
  - The files are read where the filter runs - the controller. The role C(meshpki.vault_ca.istio_vault_ca) runs its
    modules there (with C(connection=local)) and runs this check only then.
options:
  _input:
    description: What to check.
    type: dict
    required: true
    suboptions:
      manifest_path:
        description: The manifest; empty - not checked.
        type: str
      target:
        description: V(tsb_controlplane), V(istio_operator) or V(helm_values).
        type: str
      name:
        description: The object's name; empty - any.
        type: str
      namespace:
        description: The object's namespace; empty - any.
        type: str
      kubeconfig:
        description: The kubeconfig; empty - the environment's, then C(~/.kube/config).
        type: str
      context:
        description: The context; empty - the environment's, then C(current-context).
        type: str
      kubeconfig_needed:
        description: Whether the run reads the kubeconfig at all.
        type: bool
      names:
        description:
          - The role variables to name in messages, by key - V(manifest_path), V(target), V(name), V(namespace),
            V(kubeconfig), V(context).
        type: dict
'''

EXAMPLES = r'''
- name: Fail before the first request when the manifest or the kubeconfig is wrong
  ansible.builtin.fail:
    msg: "{{ problems | join(' ') }}"
  when: problems | length > 0
  vars:
    problems: >-
      {{ {'manifest_path': 'controlplane.yaml', 'target': 'tsb_controlplane', 'kubeconfig_needed': false}
         | meshpki.vault_ca.role_file_problems }}
'''

RETURN = r'''
_value:
  description: One sentence per problem (empty when the files are fine).
  type: list
  elements: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import TARGETS
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import Manifest
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import cluster_entry

NAMES = dict(manifest_path="manifest_path", target="target", name="name", namespace="namespace",
             kubeconfig="kubeconfig", context="context")


def _say(message, names):
    """A module's message with its option words replaced by the role's variable names."""
    for old, new in (
            ("Check target, name and namespace.", "Check %s, %s and %s." % (names["target"], names["name"],
                                                                            names["namespace"])),
            ("set name (and namespace) to pick one", "set %s (and %s) to pick one" % (names["name"],
                                                                                      names["namespace"])),
            ("or leave path unset to edit the live object", "or leave %s empty to edit the live object"
             % names["manifest_path"]),
            ("raise max_manifest_size if it really is", "split the file"),
            ("Set kubeconfig (or K8S_AUTH_KUBECONFIG / KUBECONFIG)", "Set %s (or K8S_AUTH_KUBECONFIG / KUBECONFIG)"
             % names["kubeconfig"]),
            ("set context (or K8S_AUTH_CONTEXT)", "set %s (or K8S_AUTH_CONTEXT)" % names["context"])):
        message = message.replace(old, new)
    return message


def role_file_problems(inputs):
    if not isinstance(inputs, dict):
        raise AnsibleFilterError("role_file_problems expects a dict, got %s" % type(inputs).__name__)
    names = dict(NAMES, **(inputs.get("names") or {}))
    problems = []
    path = inputs.get("manifest_path")
    if path:
        target = TARGETS.get(inputs.get("target") or "tsb_controlplane")
        if target is None:
            raise AnsibleFilterError("role_file_problems: unknown target %r" % inputs.get("target"))
        try:
            manifest = Manifest.load(path, missing_ok=target.kind is None)
            if target.kind is not None:
                manifest.find(target, inputs.get("name") or None, inputs.get("namespace") or None)
            else:
                manifest.find(target)
        except MeshPkiError as e:
            problems.append("%s: %s (nothing was sent)" % (names["manifest_path"], _say(str(e), names)))
    if inputs.get("kubeconfig_needed"):
        params = dict(kubeconfig=inputs.get("kubeconfig") or None, context=inputs.get("context") or None)
        try:
            cluster_entry(params)
        except MeshPkiError as e:
            which = names["context"] if "context" in str(e).split("'", maxsplit=1)[0].lower() else names["kubeconfig"]
            problems.append("%s: %s (nothing was sent)" % (which, _say(str(e), names)))
    return problems


class FilterModule(object):
    def filters(self):
        return {"role_file_problems": role_file_problems}
