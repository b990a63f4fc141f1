#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_k8s_role
short_description: Manage a role of the Kubernetes auth method of Vault or OpenBao idempotently
version_added: 0.1.0
description:
  - Creates, updates or deletes the role C(auth/<mount>/role/<name>) that binds Kubernetes service accounts to Vault
    policies - the guide's C(vault write auth/kubernetes/role/istiod).
  - Only the fields the task sets are compared and written; the others keep their value. Durations are compared in
    seconds (V(600s), V(10m) and V(600) are the same), lists as sets (order and duplicates do not count).
  - A field the server does not know is refused before anything is written, rather than silently ignored.
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
    details: Reads the role and reports whether it would change; writes nothing.
  diff_mode:
    support: full
    details: Shows the role (all its fields, durations in seconds) before and after.
options:
  name:
    description: Name of the role; istiod's Vault Agent logs in with it (the injector's C(role) annotation).
    type: str
    default: istiod
  kubernetes_auth_mount:
    description:
      - Path of the Kubernetes auth method, without C(auth/), for example V(kubernetes-east).
      - The same option as O(meshpki.vault_ca.vault_k8s_auth#module:kubernetes_auth_mount). Its former name
        V(mount) is kept as an alias.
    type: str
    default: kubernetes
    aliases: [mount]
  state:
    description: Whether the role should exist.
    type: str
    choices: [present, absent]
    default: present
  bound_service_account_names:
    description:
      - Service accounts allowed to log in, for example V([istiod-service-account]). V(*) allows any.
      - Required to create a role.
    type: list
    elements: str
  bound_service_account_namespaces:
    description:
      - Namespaces of those service accounts, for example V([istio-system]). V(*) allows any.
      - Required to create a role unless O(bound_service_account_namespace_selector) is set.
    type: list
    elements: str
  bound_service_account_namespace_selector:
    description: Label selector (YAML or JSON) of the namespaces allowed to log in, besides the listed ones.
    type: str
  token_policies:
    description: Policies of the tokens issued, for example V([istioca]). Vault adds V(default) unless
      O(token_no_default_policy).
    type: list
    elements: str
    aliases: [policies]
  token_period:
    description:
      - Period of the tokens, for example V(600s) - the guide's C(period). A periodic token never expires while it
        is renewed within the period (Vault Agent renews it).
      - A duration such as V(600s), V(10m), V(1h) or a number of seconds; V(0) removes it.
    type: str
    aliases: [period]
  token_ttl:
    description: Initial TTL of the tokens (duration or seconds; V(0) for the system default).
    type: str
    aliases: [ttl]
  token_max_ttl:
    description: Maximum lifetime of the tokens (duration or seconds; V(0) for the system default).
    type: str
    aliases: [max_ttl]
  token_explicit_max_ttl:
    description: Hard maximum lifetime of the tokens, also for periodic tokens (duration or seconds; V(0) for none).
    type: str
  token_no_default_policy:
    description: Do not add the V(default) policy to the tokens.
    type: bool
  token_num_uses:
    description: Number of requests a token may make (V(0) for unlimited).
    type: int
  token_type:
    description: Type of the tokens.
    type: str
    choices: [default, service, batch, default-service, default-batch]
  token_bound_cidrs:
    description: Client addresses (CIDR blocks) allowed to use the tokens.
    type: list
    elements: str
  audience:
    description:
      - Audience the service-account JWT must carry (its C(aud) claim), for example V(vault). V('') accepts any.
    type: str
  alias_name_source:
    description: What names the entity alias of a login - the service account's UID (default of Vault) or its
      C(namespace/name).
    type: str
    choices: [serviceaccount_uid, serviceaccount_name]
notes:
  - The legacy field names Vault returns for roles written with them (C(policies), C(period), C(ttl), C(max_ttl),
    C(num_uses), C(bound_cidrs)) are read as their C(token_) counterparts; a write always uses the C(token_) names.
seealso:
  - module: meshpki.vault_ca.vault_k8s_auth
  - module: meshpki.vault_ca.vault_policy
  - name: Kubernetes auth method API (Vault)
    description: The role fields.
    link: https://developer.hashicorp.com/vault/api-docs/auth/kubernetes#create-role
'''

EXAMPLES = r'''
- name: The guide's role for istiod
  meshpki.vault_ca.vault_k8s_role:
    url: https://vault.example.com:8200
    name: istiod
    bound_service_account_names: [istiod-service-account]
    bound_service_account_namespaces: [istio-system]
    policies: [istioca]
    period: 600s

- name: The same role on a per-cluster mount, with an audience
  meshpki.vault_ca.vault_k8s_role:
    kubernetes_auth_mount: kubernetes-east
    name: istiod
    bound_service_account_names: [istiod-service-account]
    bound_service_account_namespaces: [istio-system]
    token_policies: [istioca]
    token_period: 10m
    audience: vault

- name: Remove a role
  meshpki.vault_ca.vault_k8s_role:
    name: istiod-old
    state: absent
'''

RETURN = r'''
name:
  description: Name of the role.
  returned: always
  type: str
  sample: istiod
kubernetes_auth_mount:
  description: Path of the auth method (O(kubernetes_auth_mount)).
  returned: always
  type: str
  sample: kubernetes
  version_added: 0.2.0
mount:
  description: Path of the auth method; the same as RV(kubernetes_auth_mount), kept under the option's former name.
  returned: always
  type: str
  sample: kubernetes
role:
  description:
    - The role after the task (in check mode, as it would be), durations in seconds, as Vault returns it; empty
      when absent.
  returned: always
  type: dict
  sample:
    bound_service_account_names: [istiod-service-account]
    bound_service_account_namespaces: [istio-system]
    token_policies: [istioca]
    token_period: 600
    token_ttl: 0
    alias_name_source: serviceaccount_uid
changed_fields:
  description: The fields the task set whose value differed (all of them for a new role).
  returned: state is present
  type: list
  elements: str
  sample: [token_period]
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.auth_config import MOUNT_ARGSPEC, ensure_role
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec

ARGUMENT_SPEC = module_spec(dict(
    MOUNT_ARGSPEC,
    name=dict(type="str", default="istiod"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    bound_service_account_names=dict(type="list", elements="str"),
    bound_service_account_namespaces=dict(type="list", elements="str"),
    bound_service_account_namespace_selector=dict(type="str"),
    token_policies=dict(type="list", elements="str", aliases=["policies"], no_log=False),
    token_period=dict(type="str", aliases=["period"]),
    token_ttl=dict(type="str", aliases=["ttl"], no_log=False),
    token_max_ttl=dict(type="str", aliases=["max_ttl"], no_log=False),
    token_explicit_max_ttl=dict(type="str", no_log=False),
    token_no_default_policy=dict(type="bool"),
    token_num_uses=dict(type="int", no_log=False),
    token_type=dict(type="str", choices=["default", "service", "batch", "default-service", "default-batch"]),
    token_bound_cidrs=dict(type="list", elements="str", no_log=False),
    audience=dict(type="str"),
    alias_name_source=dict(type="str", choices=["serviceaccount_uid", "serviceaccount_name"]),
))


def main():
    MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True,
                  path_options=dict(name="name", kubernetes_auth_mount="mount")).run(ensure_role)


if __name__ == "__main__":
    main()
