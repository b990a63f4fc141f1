#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_k8s_auth
short_description: Enable and configure the Kubernetes auth method of Vault or OpenBao idempotently
version_added: 0.1.0
description:
  - Ensures the Kubernetes auth method is enabled at O(kubernetes_auth_mount) and that its configuration
    (C(auth/<kubernetes_auth_mount>/config)) holds the API server address, its CA certificate, the token reviewer
    JWT and the other settings given - the guide's C(vault auth enable kubernetes) and
    C(vault write auth/kubernetes/config), runnable from outside the cluster and again without changing anything.
  - The API server address and CA can come from a kubeconfig cluster entry (O(kubeconfig), O(context)), the usual
    case when Ansible runs outside the cluster.
  - On Kubernetes 1.24 and later service accounts get no long-lived token; O(token_reviewer) creates a reviewer
    ServiceAccount, its ClusterRoleBinding to C(system:auth-delegator) and a C(kubernetes.io/service-account-token)
    Secret, and uses the token Kubernetes puts into that Secret as the reviewer JWT.
  - Vault rewrites the whole configuration on every write. Fields the task does not set keep the value the server
    returned; only a changed value causes a write. See O(update_token_reviewer_jwt) for the one field Vault never
    returns.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
  - cryptography (optional, to check that PEM input parses)
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.kubernetes
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details:
      - Reads the auth mount, its configuration and the Kubernetes objects, and reports what would change; writes
        nothing to Vault.
      - Kubernetes objects that would be created are sent with C(dryRun=All), so the API server validates them
        (namespace exists, permissions) without storing anything.
  diff_mode:
    support: full
    details:
      - Shows the auth method type, the configuration (without the reviewer JWT) and the token reviewer's
        Kubernetes objects before and after.
      - A reviewer JWT that is written appears as a placeholder, never as its value.
options:
  kubernetes_auth_mount:
    description:
      - Path of the auth method, without C(auth/). Use one mount per cluster, for example V(kubernetes-east).
      - The same option as O(meshpki.vault_ca.vault_k8s_role#module:kubernetes_auth_mount). Its former name
        V(mount) is kept as an alias.
    type: str
    default: kubernetes
    aliases: [mount]
  state:
    description:
      - V(present) enables the auth method (if missing) and configures it.
      - V(absent) disables the auth method at O(kubernetes_auth_mount). B(This deletes its configuration and every
        role under it, and revokes every token and lease issued through it) - istiod's Vault Agent can no longer log
        in or renew. A mount of another auth type at O(kubernetes_auth_mount) is never disabled; the module fails
        instead. The token reviewer's Kubernetes objects are left in place.
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Description of the auth method, used only when it is enabled.
    type: str
  kubernetes_host:
    description:
      - URL of the Kubernetes API server as Vault must reach it, for example V(https://10.96.0.1:443) (the guide's
        C(https://${KUBERNETES_PORT_443_TCP_ADDR}:443) when Vault runs in the cluster) or the external address.
      - When not set, the C(server) of the kubeconfig context's cluster is used (see O(kubeconfig), O(context)).
        Either is required with O(state=present).
      - A trailing C(/) does not count as a difference.
    type: str
  kubernetes_ca_cert:
    description:
      - CA certificate(s) Vault uses to verify the API server, as PEM text or as the path of a PEM file on the
        host running the module (a value without C(-----BEGIN) is taken as a path).
      - When not set and the kubeconfig is read, the context cluster's C(certificate-authority-data) (or
        C(certificate-authority) file) is used; otherwise the server keeps what it has.
      - Compared by meaning (the DER of each certificate), so the same certificate with other line breaks, from a
        file or from the kubeconfig, is not a change.
    type: str
  token_reviewer_jwt:
    description:
      - JWT that Vault presents to the TokenReview API to check the service-account tokens it is given at login.
        Never logged, returned or shown in diff.
      - When neither this nor O(token_reviewer) is set the stored JWT is kept; if another field changes while one
        is stored the module fails rather than drop it (Vault replaces the whole configuration on write). Set
        V('') to remove a stored JWT (Vault then uses the logging-in service account's own token as reviewer).
      - Mutually exclusive with O(token_reviewer).
    type: str
  token_reviewer:
    description:
      - Bootstrap a token reviewer on the cluster of the kubeconfig context and use its token as
        O(token_reviewer_jwt), for Kubernetes 1.24 and later where the guide's recipe yields no long-lived token.
      - Ensures, through the Kubernetes API, a ServiceAccount, a ClusterRoleBinding of it to the ClusterRole
        C(system:auth-delegator) (to create TokenReviews), and a Secret of type
        C(kubernetes.io/service-account-token) for it, then reads the token Kubernetes writes into that Secret.
      - Existing objects are reused, never rewritten; a binding that lacks the ServiceAccount gets it added. A
        Secret whose token belongs to an earlier ServiceAccount of the same name is replaced, and the new token is
        written to Vault.
      - Mutually exclusive with O(token_reviewer_jwt).
    type: dict
    suboptions:
      create:
        description:
          - Create the objects that are missing. With V(false) the objects must exist and only the token is read.
        type: bool
        default: true
      namespace:
        description: Namespace of the ServiceAccount and the Secret. It must exist.
        type: str
        default: vault
      service_account:
        description: Name of the reviewer ServiceAccount.
        type: str
        default: vault-token-reviewer
      secret_name:
        description: Name of the token Secret. Default C(<service_account>-token).
        type: str
      cluster_role_binding:
        description: Name of the ClusterRoleBinding. Default C(<namespace>-<service_account>-auth-delegator).
        type: str
      wait_timeout:
        description:
          - Seconds to wait for Kubernetes' token controller to put the token into a new Secret (it does so
            shortly after the Secret is created). The module fails with a clear message after that.
        type: int
        default: 30
  update_token_reviewer_jwt:
    description:
      - Vault never returns the reviewer JWT, so whether the stored one equals the one given cannot be checked.
      - V(on_create) writes the JWT when the configuration is created, when another field changes (the write
        replaces the whole configuration), when the server has none, or when O(token_reviewer) created a new token
        Secret. A re-run with the same input reports C(changed=false).
      - V(always) writes it on every run, which always reports C(changed=true); use it once to rotate a JWT
        that changed outside of O(token_reviewer).
    type: str
    choices: [on_create, always]
    default: on_create
  disable_local_ca_jwt:
    description:
      - Do not fall back to the CA certificate and service-account token of the pod Vault runs in. Requires a CA
        certificate (O(kubernetes_ca_cert), from the kubeconfig, or already stored).
      - When not set, the server keeps its value (V(false) on a new configuration).
    type: bool
  pem_keys:
    description:
      - PEM public keys or certificates (text or file paths) that Vault uses to verify service-account JWT
        signatures itself. Compared as a set.
      - When not set, the server keeps its value.
    type: list
    elements: str
  issuer:
    description:
      - Issuer the JWTs must carry (deprecated in Vault and OpenBao; only checked when issuer validation is on).
      - When not set, the server keeps its value.
    type: str
  use_annotations_as_alias_metadata:
    description:
      - Copy the service account's C(vault.hashicorp.com/alias-metadata-*) annotations into the entity alias
        metadata (Vault 1.16 and later).
      - The module fails, before writing anything, on a server that does not know this field (OpenBao 2.x), rather
        than let the server ignore it.
    type: bool
notes:
  - Fields compared for idempotency are every field the server returns - C(kubernetes_host), C(kubernetes_ca_cert),
    C(pem_keys), C(disable_local_ca_jwt), C(issuer), C(disable_iss_validation), C(use_annotations_as_alias_metadata)
    where the server has it - and C(token_reviewer_jwt_set). The JWT itself cannot be compared (see
    O(update_token_reviewer_jwt)).
  - A field the server does not know is refused (checked with the endpoint's parameter list), rather than ignored.
  - O(kubeconfig) and O(context) (or their environment variables) are read when O(kubernetes_host) is not set, when
    either option is set, and for O(token_reviewer).
seealso:
  - module: meshpki.vault_ca.vault_k8s_role
  - name: Kubernetes auth method (Vault)
    description: Configuration fields and how the login works.
    link: https://developer.hashicorp.com/vault/docs/auth/kubernetes
'''

EXAMPLES = r'''
- name: The guide's Kubernetes auth, from outside the cluster - host and CA from the kubeconfig context,
    reviewer token from a bootstrap ServiceAccount
  meshpki.vault_ca.vault_k8s_auth:
    url: https://vault.example.com:8200
    kubeconfig: ~/.kube/config
    context: prod-east
    token_reviewer:
      namespace: vault
      service_account: vault-token-reviewer

- name: Vault runs in the cluster - the guide's values, the JWT read from the Vault pod's service account
  meshpki.vault_ca.vault_k8s_auth:
    kubernetes_host: "https://{{ kubernetes_port_443_tcp_addr }}:443"
    kubernetes_ca_cert: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    token_reviewer_jwt: "{{ lookup('ansible.builtin.file', '/var/run/secrets/kubernetes.io/serviceaccount/token') }}"

- name: One mount per cluster, connection and auth set once for every Vault module
  module_defaults:
    group/meshpki.vault_ca.vault:
      url: "{{ vault_url }}"
      auth_method: approle
      role_id: "{{ vault_role_id }}"
      secret_id: "{{ vault_secret_id }}"
  block:
    - name: East cluster
      meshpki.vault_ca.vault_k8s_auth:
        kubernetes_auth_mount: kubernetes-east
        context: east
        disable_local_ca_jwt: true
        token_reviewer: {}

- name: Rotate a reviewer JWT that was changed outside of Ansible
  meshpki.vault_ca.vault_k8s_auth:
    kubernetes_host: https://api.east.example.com:6443
    kubernetes_ca_cert: "{{ lookup('ansible.builtin.file', 'east-ca.pem') }}"
    token_reviewer_jwt: "{{ new_reviewer_jwt }}"
    update_token_reviewer_jwt: always

- name: Remove a cluster - disables the mount, deletes its roles and revokes its tokens
  meshpki.vault_ca.vault_k8s_auth:
    kubernetes_auth_mount: kubernetes-old
    state: absent
'''

RETURN = r'''
kubernetes_auth_mount:
  description: Where the auth method is enabled (O(kubernetes_auth_mount)), without C(auth/).
  returned: always
  type: str
  sample: kubernetes
  version_added: 0.2.0
mount:
  description: Path of the auth method; the same as RV(kubernetes_auth_mount), kept under the option's former name.
  returned: always
  type: str
  sample: kubernetes
config:
  description:
    - The configuration as the server returns it after the task (in check mode, as it would be written); empty when
      absent. Never contains the reviewer JWT, only C(token_reviewer_jwt_set).
  returned: always
  type: dict
  sample:
    kubernetes_host: https://127.0.0.1:6443
    kubernetes_ca_cert: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
    disable_local_ca_jwt: true
    pem_keys: []
    issuer: ""
    disable_iss_validation: true
    token_reviewer_jwt_set: true
changed_fields:
  description: Configuration fields whose value differed (all the given fields when the configuration was new).
  returned: state is present
  type: list
  elements: str
  sample: [kubernetes_host]
token_reviewer_jwt_written:
  description: Whether the reviewer JWT was written (or would be, in check mode).
  returned: state is present
  type: bool
  sample: false
token_reviewer:
  description: The token reviewer's Kubernetes objects, and what was done to them.
  returned: O(token_reviewer) is set and state is present
  type: dict
  contains:
    namespace:
      description: Namespace of the ServiceAccount and the Secret.
      type: str
      sample: vault
    service_account:
      description: Name of the ServiceAccount.
      type: str
      sample: vault-token-reviewer
    secret_name:
      description: Name of the token Secret.
      type: str
      sample: vault-token-reviewer-token
    cluster_role_binding:
      description: Name of the ClusterRoleBinding to C(system:auth-delegator).
      type: str
      sample: vault-vault-token-reviewer-auth-delegator
    changes:
      description: What was created or changed (would be, in check mode); empty when everything existed.
      type: list
      elements: str
      sample: [created ServiceAccount vault/vault-token-reviewer]
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.auth_config import (
    MOUNT_ARGSPEC,
    ensure_kubernetes_auth,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import KUBE_ARGSPEC
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.token_reviewer import TOKEN_REVIEWER_ARGSPEC
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec

ARGUMENT_SPEC = module_spec(dict(
    MOUNT_ARGSPEC,
    state=dict(type="str", choices=["present", "absent"], default="present"),
    description=dict(type="str"),
    kubernetes_host=dict(type="str"),
    kubernetes_ca_cert=dict(type="str"),
    token_reviewer_jwt=dict(type="str", no_log=True),
    token_reviewer=dict(type="dict", options=TOKEN_REVIEWER_ARGSPEC, no_log=False),
    update_token_reviewer_jwt=dict(type="str", choices=["on_create", "always"], default="on_create"),
    disable_local_ca_jwt=dict(type="bool"),
    pem_keys=dict(type="list", elements="str", no_log=False),
    issuer=dict(type="str"),
    use_annotations_as_alias_metadata=dict(type="bool"),
    **KUBE_ARGSPEC
))


def main():
    MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True,
                  mutually_exclusive=[("token_reviewer_jwt", "token_reviewer")],
                  path_options={"kubernetes_auth_mount": "mount", "token_reviewer.namespace": "k8s_name",
                                "token_reviewer.service_account": "k8s_name", "token_reviewer.secret_name": "k8s_name",
                                "token_reviewer.cluster_role_binding": "name"}).run(ensure_kubernetes_auth)


if __name__ == "__main__":
    main()
