#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_policy
short_description: Manage a Vault or OpenBao ACL policy idempotently
version_added: 0.1.0
description:
  - Creates, updates or deletes an ACL policy at C(sys/policies/acl/<name>).
  - The policy is given as HCL text (O(policy)) or as a list of path rules (O(rules)) rendered to canonical HCL.
  - Idempotent by meaning, not by bytes - white space, comments, the order of path blocks and of
    capabilities do not count as a change, so a policy written by hand or by the vault CLI is not rewritten.
  - Refuses to manage the built-in V(root) and V(default) policies.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details: Reads the current policy and reports whether it would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the policy text before and after.
options:
  name:
    description: Name of the policy.
    type: str
    required: true
  policy:
    description:
      - The policy in Vault's HCL (or JSON) policy language.
      - Mutually exclusive with O(rules). One of them is required when O(state=present).
    type: str
  rules:
    description:
      - The policy as a list of path rules, rendered to canonical HCL in the order given.
      - Mutually exclusive with O(policy).
    type: list
    elements: dict
    suboptions:
      path:
        description: The path (or glob, for example V(istioca/cert/*)) the rule applies to.
        type: str
        required: true
      capabilities:
        description: Capabilities granted on O(rules[].path), for example V([read]).
        type: list
        elements: str
        required: true
      allowed_parameters:
        description: Parameters the client may send, with allowed values (an empty list allows any value).
        type: dict
      denied_parameters:
        description: Parameters the client may not send.
        type: dict
      required_parameters:
        description: Parameters the client must send.
        type: list
        elements: str
      min_wrapping_ttl:
        description: Smallest response-wrapping TTL allowed, for example V(1m).
        type: str
      max_wrapping_ttl:
        description: Largest response-wrapping TTL allowed.
        type: str
  state:
    description: Whether the policy should exist.
    type: str
    choices: [present, absent]
    default: present
seealso:
  - name: Vault policies
    description: The policy language, capabilities and path matching.
    link: https://developer.hashicorp.com/vault/docs/concepts/policies
'''

EXAMPLES = r'''
- name: The guide's istioca policy, as rules (least privilege - read on the four paths istiod's agent reads)
  meshpki.vault_ca.vault_policy:
    url: https://vault.example.com:8200
    name: istioca
    rules:
      - path: secret/data/istioca
        capabilities: [read]
      - path: istioca/cert/ca
        capabilities: [read]
      - path: istioca/cert/ca_chain
        capabilities: [read]
      - path: pki/cert/ca
        capabilities: [read]

- name: The same from HCL text, with connection and auth set once for every Vault module
  module_defaults:
    group/meshpki.vault_ca.vault:
      url: "{{ vault_url }}"
      auth_method: approle
      role_id: "{{ vault_role_id }}"
      secret_id: "{{ vault_secret_id }}"
  block:
    - name: Apply the policy from a file
      meshpki.vault_ca.vault_policy:
        name: istioca
        policy: "{{ lookup('ansible.builtin.file', 'istioca.hcl') }}"

- name: Remove a policy
  meshpki.vault_ca.vault_policy:
    name: istioca-old
    state: absent
'''

RETURN = r'''
name:
  description: Name of the policy.
  returned: always
  type: str
  sample: istioca
policy:
  description:
    - The policy text as Vault stores it after the task (empty when absent).
    - In check mode, the text that would be stored.
  returned: always
  type: str
  sample: |
    path "pki/cert/ca" {
      capabilities = ["read"]
    }
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.policy import RULE_ARGSPEC, ensure_policy

ARGUMENT_SPEC = module_spec(dict(
    name=dict(type="str", required=True),
    policy=dict(type="str"),
    rules=dict(type="list", elements="dict", options=RULE_ARGSPEC),
    state=dict(type="str", choices=["present", "absent"], default="present"),
))


def main():
    MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True, path_options=dict(name="name"),
                  mutually_exclusive=[("policy", "rules")],
                  required_if=[("state", "present", ("policy", "rules"), True)]).run(ensure_policy)


if __name__ == "__main__":
    main()
