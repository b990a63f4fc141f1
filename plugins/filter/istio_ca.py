# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: istio_ca_policy_rules
short_description: The least-privilege policy rules for istiod's Vault Agent
version_added: 0.1.0
author:
  - meshpki maintainers (@meshpki)
description:
  - Returns C(vault_policy) rules granting C(read) on exactly the four paths the Vault Agent Injector
    templates read for istiod (the intermediate, the chain, the root, and the key in KV v2) and nothing else.
  - The paths come from the same code that writes the annotations, so policy and templates cannot drift apart.
options:
  _input:
    description: The intermediate CA's PKI mount, for example V(istioca).
    type: str
    required: true
  root_mount:
    description: The root CA's PKI mount.
    type: str
    default: pki
  kv_mount:
    description: The KV v2 mount holding the intermediate key.
    type: str
    default: secret
  kv_path:
    description: The KV v2 path of the intermediate key (without C(data/)).
    type: str
    default: istioca
  trust_bundle_path:
    description:
      - The KV v2 path (without C(data/)) of the trust bundle C(root-cert.pem) renders; then the rules grant read on
        C(<kv_mount>/data/<trust_bundle_path>) instead of C(<root_mount>/cert/ca).
      - Empty or unset, C(root-cert.pem) reads C(<root_mount>/cert/ca).
    type: str
'''

EXAMPLES = r'''
- name: The guide's istioca policy, least privilege
  meshpki.vault_ca.vault_policy:
    name: istioca
    rules: >-
      {{ 'istioca' | meshpki.vault_ca.istio_ca_policy_rules(root_mount='pki', kv_mount='secret',
                                                            kv_path='istioca') }}
'''

RETURN = r'''
_value:
  description: A list of rules, each C({path, capabilities}), for O(meshpki.vault_ca.vault_policy#module:rules).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import InjectorError, vault_paths_read


def istio_ca_policy_rules(intermediate_mount, root_mount="pki", kv_mount="secret", kv_path="istioca",
                          trust_bundle_path=None):
    try:
        paths = vault_paths_read(intermediate_mount=intermediate_mount, root_mount=root_mount, kv_mount=kv_mount,
                                 kv_path=kv_path, trust_bundle_path=trust_bundle_path or None)
    except InjectorError as e:
        raise AnsibleFilterError("istio_ca_policy_rules: %s" % e)
    return [{"path": path, "capabilities": ["read"]} for path in paths]


class FilterModule(object):
    def filters(self):
        return {"istio_ca_policy_rules": istio_ca_policy_rules}
