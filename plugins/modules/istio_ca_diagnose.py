#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: istio_ca_diagnose
short_description: Say what is wrong with Vault as the CA of Istio - read only
version_added: 0.1.0
description:
  - The guide's troubleshooting section, automated. Looks at everything istiod's Vault Agent depends on and reports,
    in words, what is wrong and how to fix it, instead of leaving you to read C(vault-agent-init) and C(discovery)
    logs.
  - "The checks, in order. A check that cannot run because an earlier one failed is reported as C(skipped)."
  - "C(vault_reachable): Vault is reachable, initialised and unsealed; active or standby node; version."
  - "C(vault_login): the connection and auth options work."
  - "C(mounts): the root and intermediate mounts are C(pki), the key mount is KV B(v2), O(kubernetes_auth_mount) is
    C(kubernetes)."
  - "C(root_ca): the root mount has a default issuer with a key; days left."
  - "C(intermediate_ca): the intermediate mount's default issuer is signed by the root's default issuer and not
    expired; days left against O(renew_before)."
  - "C(intermediate_key): the KV field holds a private key that belongs to the intermediate's certificate - the
    C(ca-key.pem) / C(ca-cert.pem) pair istiod needs."
  - "C(policy): exists and grants C(read) on the key's KV path (a problem otherwise) and on the three certificate
    paths, which the PKI engine also serves without a token (a warning otherwise); more than the four reads is a
    warning."
  - "C(kubernetes_auth): the auth method is configured with a C(kubernetes_host)."
  - "C(role): exists, is bound to O(service_account) in O(service_account_namespace), and gives the policy."
  - "C(istiod_login): with O(istiod_jwt), O(istiod_jwt_file) or O(istiod_request_jwt), logs in as istiod at
    C(auth/<kubernetes_auth_mount>/login) and checks the token's policies."
  - "C(bundle): renders the four files exactly as the injector's templates would - with istiod's token after a
    successful login, else with the module's own token - and runs every check of M(meshpki.vault_ca.istio_ca_verify)."
  - "C(target): with O(target), the ControlPlane, IstioOperator or Helm values carry the injector annotations and
    C(ROOT_CA_DIR) that M(meshpki.vault_ca.tsb_controlplane_annotations) would write for these options (the
    connection's O(namespace) as the agent's C(namespace) annotation), nothing missing or different, and no
    annotations left under the other injector prefix."
  - Never changes anything and never fails because of a finding - RV(healthy) and RV(problems) say how it went, so a
    playbook decides (the role's C(diagnose) entry point fails at the end, after printing the report). It fails only
    for invalid options.
  - "The module logs in itself with the connection and auth options (O(auth_method), O(auth_mount), O(jwt) and the
    others), as every module of the collection does; istiod's login has options of its own:
    O(kubernetes_auth_mount), O(role), and O(istiod_jwt), O(istiod_jwt_file) or O(istiod_request_jwt)."
  - The login as istiod creates one token for istiod's role (as the agent would) and revokes it at the end when the
    role's policies allow C(auth/token/revoke-self) (the C(default) policy does).
  - No private key, token or JWT is returned; the key is only parsed to compare it with the certificate.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
  - cryptography
  - PyYAML (O(target) in file mode)
  - kubernetes (the Python client), for O(target) in live mode
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.ca_layout
  - meshpki.vault_ca.kubernetes
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
attributes:
  check_mode:
    support: full
    details: Reads only; check mode changes nothing about what it does.
  diff_mode:
    support: none
  action_group:
    description: Use C(group/meshpki.vault_ca.vault) (connection and auth) and C(group/meshpki.vault_ca.istio)
      (kubeconfig and context) in C(module_defaults).
    support: full
    membership:
      - meshpki.vault_ca.vault
      - meshpki.vault_ca.istio
options:
  renew_before:
    description:
      - A warning is reported when the intermediate expires within this duration (the main playbook then rotates it
        on its next run), a problem when it has expired.
      - A Vault duration (V(720h), V(30d)) or seconds.
    type: str
    default: 720h
  policy_name:
    description: The policy istiod's role gives its token.
    type: str
    default: istioca
  kubernetes_auth_mount:
    description:
      - The Kubernetes auth mount istiod logs in at (without C(auth/)).
      - Was O(auth_mount) before 0.2.0, which is now the mount of the module's own login.
    type: str
    default: kubernetes
    version_added: 0.2.0
  role:
    description: The Kubernetes auth role istiod's agent logs in with.
    type: str
    default: istiod
  service_account:
    description: istiod's service account, which the role must be bound to.
    type: str
    default: istiod-service-account
  service_account_namespace:
    description: The namespace of O(service_account).
    type: str
    default: istio-system
  istiod_jwt:
    description:
      - A service-account token of istiod (for example C(kubectl -n istio-system create token istiod-service-account)).
        When given, the module logs in with it as the agent would, which proves the whole Kubernetes auth path
        (TokenReview included), and renders the bundle with the token obtained.
      - Never returned or logged.
      - Was O(jwt) before 0.2.0, which is now the module's own login (O(auth_method=kubernetes)).
    type: str
    version_added: 0.2.0
  istiod_jwt_file:
    description:
      - A file holding that token, instead of O(istiod_jwt).
      - Was O(jwt_file) before 0.2.0, which is now the module's own login (O(auth_method=kubernetes)).
    type: path
    version_added: 0.2.0
  istiod_request_jwt:
    description:
      - Get that token from the Kubernetes API (a TokenRequest for O(service_account) in O(service_account_namespace),
        valid 10 minutes, as C(kubectl create token) does) with O(kubeconfig) and O(context), instead of
        O(istiod_jwt).
      - Needs C(create) on C(serviceaccounts/token) in that namespace.
      - Was C(request_jwt) before 0.2.0.
    type: bool
    default: false
    version_added: 0.2.0
  target:
    description:
      - Also check the object istiod is deployed from (see M(meshpki.vault_ca.tsb_controlplane_annotations)). Not
        set - not checked.
    type: str
    choices: [tsb_controlplane, istio_operator, helm_values]
  target_name:
    description: Name of the ControlPlane or IstioOperator (live mode; in file mode it picks the document).
    type: str
  target_namespace:
    description: Its namespace.
    type: str
  path:
    description:
      - The manifest file holding the target (file mode). Not set - the live object through the Kubernetes API.
      - Read as M(meshpki.vault_ca.tsb_controlplane_annotations) reads it - a symbolic link is followed; a file over
        O(max_manifest_size), a key twice in one mapping, or YAML aliases expanding to more than 100000 nodes is an
        error naming the file.
    type: path
  max_manifest_size:
    description: Largest manifest, in bytes, read from O(path); a bigger file is refused before it is read.
    type: int
    default: 4194304
    version_added: 0.2.0
  annotation_prefix:
    description: The injector's annotation prefix (V(vault.hashicorp.com), or V(openbao.openbao.org) for OpenBao's).
    type: str
    default: vault.hashicorp.com
  secret_volume_path:
    description: The directory the agent renders the files to, which C(ROOT_CA_DIR) must name.
    type: str
    default: /etc/cacerts-vault
  agent_init_first:
    description: As given to M(meshpki.vault_ca.tsb_controlplane_annotations), when it was.
    type: bool
  agent_pre_populate_only:
    description: As given to M(meshpki.vault_ca.tsb_controlplane_annotations), when it was.
    type: bool
  extra_env:
    description:
      - As given to M(meshpki.vault_ca.tsb_controlplane_annotations); each entry must be present with its value.
    type: list
    elements: dict
    suboptions:
      name:
        description: Variable name.
        type: str
        required: true
      value:
        description: Its value.
        type: raw
notes:
  - Reading C(sys/mounts), C(sys/auth), C(sys/policies/acl/<policy_name>) and the auth config needs a token that may
    read them (the operator's token used for the main playbook can); a check the token may not run is reported as a
    problem that names the missing capability.
seealso:
  - module: meshpki.vault_ca.istio_ca_verify
  - module: meshpki.vault_ca.tsb_controlplane_annotations
'''

EXAMPLES = r'''
- name: What is wrong? (the guide's values, ControlPlane in a manifest, logging in as istiod)
  meshpki.vault_ca.istio_ca_diagnose:
    url: https://vault.example.com:8200
    istiod_jwt: "{{ lookup('ansible.builtin.pipe', 'kubectl -n istio-system create token istiod-service-account') }}"
    target: tsb_controlplane
    path: gitops/tsb/controlplane.yaml
  register: diagnosis

- name: The module logs in with AppRole, istiod at its own Kubernetes auth mount, with a TokenRequest
  meshpki.vault_ca.istio_ca_diagnose:
    url: https://vault.example.com:8200
    auth_method: approle
    role_id: "{{ vault_role_id }}"
    secret_id: "{{ vault_secret_id }}"
    kubernetes_auth_mount: kubernetes-eu1
    istiod_request_jwt: true
    kubeconfig: ~/.kube/eu1
  register: diagnosis

- name: Print the report
  ansible.builtin.debug:
    msg: "{{ diagnosis.report }}"

- name: Fail with the problems, in words
  ansible.builtin.assert:
    that: diagnosis.healthy
    fail_msg: "{{ diagnosis.problems }}"

- name: Whole role, as a playbook (prints the report, fails when something is wrong)
  ansible.builtin.import_role:
    name: meshpki.vault_ca.istio_vault_ca
    tasks_from: diagnose
'''

RETURN = r'''
healthy:
  description: True when no check found a problem (warnings and skipped checks do not count).
  returned: always
  type: bool
  sample: false
problems:
  description: What is wrong, one sentence per problem with the fix.
  returned: always
  type: list
  elements: str
  sample:
    - "policy: the policy 'istioca' does not grant read on secret/data/istioca, so the agent cannot render
       ca-key.pem (403) and istiod never starts with Vault's CA. Re-run the main playbook, or add read on that path."
notices:
  description: What works but deserves attention (the checks with status V(warning)).
  returned: always
  type: list
  elements: str
report:
  description: One line per check - status, check, message - for printing.
  returned: always
  type: list
  elements: str
  sample:
    - "ok       vault_reachable   OpenBao 2.7.2 at http://127.0.0.1:8200: initialised, unsealed, active node"
checks:
  description: Every check with its outcome.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check.
      type: str
    status:
      description: V(ok), V(warning), V(problem) or V(skipped).
      type: str
    message:
      description: What was seen and, for a problem, how to fix it.
      type: str
vault:
  description: What C(sys/health) said; empty when Vault could not be reached.
  returned: always
  type: dict
  sample: {"version": "2.7.2", "initialized": true, "sealed": false, "standby": false}
root_rotation:
  description:
    - With O(trust_bundle_path) - the root rotation's record (M(meshpki.vault_ca.vault_pki_root_rotation)) - C(phase)
      (V(trust), V(sign), V(retire), V(aborted); null when no rotation ran), C(old_issuer_id), C(new_issuer_id),
      C(trusted) (issuer ids in the bundle), C(signer) (the root that signs intermediates) and C(next_phase_at) (the
      earliest time of the next phase). The check C(root_rotation) reports them in words.
  returned: when O(trust_bundle_path) is set and the bundle exists
  type: dict
  version_added: 0.2.0
certificates:
  description: Subject, serial, not_after and days_left of the root and the intermediate (when found).
  returned: always
  type: dict
  contains:
    root:
      description: The root mount's default issuer.
      type: dict
    intermediate:
      description: The intermediate mount's default issuer.
      type: dict
annotations:
  description: For O(target), the annotation keys that are missing, differ, or sit under the other injector prefix.
  returned: when O(target) is set and the object could be read
  type: dict
  contains:
    missing:
      description: Keys the injector needs that the object does not have.
      type: list
      elements: str
    different:
      description: Keys whose value is not what these options need.
      type: list
      elements: str
    other_prefix:
      description: Keys under the other known injector prefix.
      type: list
      elements: str
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.diagnose import diagnose
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import MAX_MANIFEST_SIZE
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import KUBE_ARGSPEC
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import CA_LAYOUT, ca_layout_paths

OWN = dict(
    KUBE_ARGSPEC,
    renew_before=dict(type="str", default="720h"),
    policy_name=dict(type="str", default="istioca"),
    # istiod's login (the module's own is the shared auth_method, auth_mount, jwt...)
    kubernetes_auth_mount=dict(type="str", default="kubernetes"),
    role=dict(type="str", default="istiod"),
    service_account=dict(type="str", default="istiod-service-account"),
    service_account_namespace=dict(type="str", default="istio-system"),
    istiod_jwt=dict(type="str", no_log=True),
    istiod_jwt_file=dict(type="path"),
    istiod_request_jwt=dict(type="bool", default=False),
    target=dict(type="str", choices=["tsb_controlplane", "istio_operator", "helm_values"]),
    target_name=dict(type="str"),
    target_namespace=dict(type="str"),
    path=dict(type="path"),
    max_manifest_size=dict(type="int", default=MAX_MANIFEST_SIZE),
    annotation_prefix=dict(type="str", default="vault.hashicorp.com"),
    secret_volume_path=dict(type="str", default="/etc/cacerts-vault", no_log=False),
    agent_init_first=dict(type="bool"),
    agent_pre_populate_only=dict(type="bool"),
    extra_env=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        value=dict(type="raw"),
    )),
)
ARGUMENT_SPEC = module_spec(OWN, ca_layout=CA_LAYOUT)


def main():
    MeshPkiModule(
        ARGUMENT_SPEC,
        mutually_exclusive=[("istiod_jwt", "istiod_jwt_file", "istiod_request_jwt")],
        supports_check_mode=True,
        requires=("cryptography",),
        path_options=dict(ca_layout_paths(), policy_name="name", kubernetes_auth_mount="mount", role="name",
                          service_account="k8s_name", service_account_namespace="k8s_name",
                          target_name="k8s_name", target_namespace="k8s_name"),
    ).run(diagnose)


if __name__ == "__main__":
    main()
