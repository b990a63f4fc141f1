#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: istio_ca_verify
short_description: Check an Istio plugin-CA bundle the way istiod loads it, before rollout
version_added: 0.1.0
description:
  - Verifies the four files istiod reads from C(ROOT_CA_DIR) - C(ca-cert.pem), C(ca-key.pem), C(cert-chain.pem),
    C(root-cert.pem) - with the checks istiod runs when it starts, and the ones that catch a bundle istiod would
    accept but that breaks the mesh later. A wrong file makes istiod crash-loop or, worse, silently fall back to a
    self-signed CA; this module lets a playbook fail before anything rolls out.
  - "Input, one of: a directory (O(path), for example what C(bao agent) or C(vault agent) rendered), the four PEM
    texts (O(ca_cert_pem), O(ca_key_pem), O(cert_chain_pem), O(root_cert_pem)), or Vault itself (O(vault_paths)): the
    module then reads C(<intermediate>/cert/ca), C(<intermediate>/cert/ca_chain), C(<root>/cert/ca) and the KV v2 field
    C(<kv>/data/<path>) with the connection and auth options, and renders them exactly as the injector's templates do
    (a missing field becomes C(<no value>), a missing root certificate an empty file). Authenticating as istiod does
    (O(auth_method=kubernetes), O(role_id)) also proves its policy."
  - "Checks (each reported with its result and a detail that says how to fix it): C(files_not_empty),
    C(no_unrendered_values) (no C(<no value>)), C(no_tls_crt) (a C(tls.crt) switches istiod to another file layout),
    C(ca_cert_parses), C(ca_key_parses) (PKCS#1, PKCS#8 or EC, not encrypted), C(cert_chain_parses),
    C(root_cert_parses), C(key_matches_cert), C(ca_cert_is_ca) (basic constraints), C(ca_cert_key_cert_sign),
    C(cert_chain_starts_with_ca_cert), C(chains_to_root) (the first certificate of C(ca-cert.pem) verifies to
    C(root-cert.pem) through C(cert-chain.pem)), C(roots_self_signed_ca), C(root_cert_excludes_intermediate),
    C(ext_key_usage), C(certificates_valid_now), C(intermediate_within_root_lifetime), and finally
    C(workload_cert_verifies) - a throw-away SPIFFE workload certificate is signed with the key and verified leaf to
    intermediate to root, as a peer would. O(min_days_left) adds C(min_days_left), O(expect_roots) adds
    C(roots_expected)."
  - "B(Several roots) in C(root-cert.pem) (a root rotation: the old and the new root while workloads move from one to
    the other): every root must be a self-signed CA certificate valid now, the intermediate must chain to one of them,
    and the test workload certificate must verify against the whole set. Two roots with the same name (the new root
    of a rotation usually keeps the old one's common name, with a new key) are told apart by key identifier and
    signature, as Go's C(crypto/x509) does; the details say which root (C(#2 of root-cert.pem) and its SHA-256
    fingerprint), and RV(chain_root) which one the intermediate chains to."
  - Fails when any check fails; the message lists every failed check and the result still holds the whole report.
  - The private key is never returned, logged or written anywhere.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - cryptography
  - hvac >= 2.0.0 (only with O(vault_paths))
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details: The module only reads, so it runs exactly the same in check mode.
  diff_mode:
    support: none
    details: Nothing is changed, so there is nothing to diff.
options:
  path:
    description:
      - Directory holding the four files, as istiod's C(ROOT_CA_DIR) (for example a directory rendered by the agent).
      - A missing file counts as empty.
    type: path
  ca_cert_pem:
    description: The text of C(ca-cert.pem) (the intermediate CA certificate). Give all four PEM options together.
    type: str
  ca_key_pem:
    description: The text of C(ca-key.pem) (the intermediate's private key). Never returned or logged.
    type: str
  cert_chain_pem:
    description: The text of C(cert-chain.pem) (intermediate first, then up to the root).
    type: str
  root_cert_pem:
    description: The text of C(root-cert.pem) (the root CA certificate or certificates).
    type: str
  vault_paths:
    description:
      - Read the bundle from Vault as the injected agent does, with the connection and auth options. V({}) reads the
        guide's paths.
      - Without it, the connection and auth options are not needed and not used.
    type: dict
    suboptions:
      intermediate_mount:
        description: PKI mount of Istio's intermediate CA.
        type: str
        default: istioca
      root_mount:
        description: PKI mount of the root CA.
        type: str
        default: pki
      kv_mount:
        description: KV version 2 mount holding the intermediate's key.
        type: str
        default: secret
      kv_path:
        description: Path of the key's secret in O(vault_paths.kv_mount), without C(data/).
        type: str
        default: istioca
      kv_field:
        description: Field of that secret holding the PEM key.
        type: str
        default: ca-key.pem
      trust_bundle_path:
        description:
          - Path, in O(vault_paths.kv_mount) and without C(data/), of the KV version 2 trust bundle C(root-cert.pem)
            renders (field C(root-cert.pem)), as the role writes it. Unset, C(<root_mount>/cert/ca) is read.
        type: str
        version_added: 0.2.0
  read_with_policy:
    description:
      - With O(vault_paths), check that this policy - the one istiod's agent gets from its Kubernetes auth role -
        grants the four reads, in the way O(policy_check) says. A policy that does not grant them fails with the
        path and the rule that decided.
      - A policy that does not exist is an error before anything else (Vault would create a token that can read
        nothing); it is checked with a read of C(sys/policies/acl/<name>).
      - "Whatever O(policy_check) is, the stored policy's rules are first evaluated against the four paths the
        templates read (as Vault does: an exact rule wins, otherwise the matching C(*) or C(+) rule of highest
        priority alone decides, C(deny) refuses; the C(default) policy is merged in when it can be read). A policy
        that misses a path therefore fails B(before) any token is created."
    type: str
  policy_check:
    description:
      - How O(read_with_policy) is proven, after the rules check above.
      - V(token) (the full probe) creates a fresh token holding only that policy and C(default)
        (C(auth/token/create), which needs a task token allowed to create tokens with that policy - root, or
        C(sudo) on C(auth/token/create)), reads the four paths with it - Vault itself then decides - and revokes
        it right after the reads, also when they fail (C(auth/token/revoke-self) with that token, its 5th and last
        use; it also expires after 60 seconds). That is two writes to Vault on every run.
      - V(rules) creates nothing and writes nothing. It needs the task token to read C(sys/policies/acl/<name>)
        (else it fails saying so) and reads the four paths with the task's own token, so that the bundle is still
        checked as istiod would load it. With O(auth_role) it also checks that the role hands out the policy.
        Use it for runs that changed nothing; the role P(meshpki.vault_ca.istio_vault_ca#role) does (see its variable
        C(istio_vault_ca_verify_token_probe)).
      - Note that the rules check is stricter than Vault on C(<mount>/cert/ca) and C(<mount>/cert/ca_chain), which
        Vault serves without authentication - the policy must still grant C(read) on them, as the policy this
        collection writes does.
    type: str
    choices: [token, rules]
    default: token
  auth_role:
    description:
      - With O(read_with_policy), the auth role istiod logs in with; its C(token_policies) must include
        O(read_with_policy). Read from C(auth/<kubernetes_auth_mount>/role/<name>). With O(policy_check=token) a
        role the task token may not read is not checked; with V(rules) that is an error.
    type: dict
    suboptions:
      kubernetes_auth_mount:
        description: Mount of the Kubernetes auth method (without C(auth/)); the name every module of the collection
          gives it.
        type: str
        default: kubernetes
        aliases: [mount]
        version_added: 0.2.0
      name:
        description: Name of the role.
        type: str
        required: true
  expect_roots:
    description:
      - The roots C(root-cert.pem) must hold, exactly - each a PEM certificate (a text with one or more certificates)
        or a SHA-256 fingerprint of one (64 hex digits, colons and a C(sha256:) prefix allowed, as
        C(sha256_fingerprint) in RV(certificates.roots) shows it).
      - Adds the check C(roots_expected), which fails naming each expected root that is missing and each root that is
        there but not expected. In a root rotation that is the old and the new root during the phases C(trust) and
        C(sign), and the new root alone after C(retire).
      - Not given - any set of roots passes this part (the other checks still apply to every root).
      - An entry that is neither is an error before anything is read.
    type: list
    elements: str
    version_added: 0.2.0
  min_days_left:
    description:
      - Also fail (check C(min_days_left)) when the intermediate or a CA above it expires in fewer days than this.
      - Without it, the days left are only reported (and a warning is given under 30 days).
    type: int
notes:
  - istiod itself verifies with Go's C(crypto/x509) at start; this module runs the same checks with C(cryptography)
    plus the ones that istiod skips (chain order, root file holding the intermediate, intermediate outliving the root).
seealso:
  - module: meshpki.vault_ca.tsb_controlplane_annotations
  - name: Istio plugin CA certificates
    description: The files istiod reads from ROOT_CA_DIR.
    link: https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/
'''

EXAMPLES = r'''
- name: Check the files an agent rendered (what istiod will read from ROOT_CA_DIR)
  meshpki.vault_ca.istio_ca_verify:
    path: /etc/cacerts-vault

- name: Check the bundle in Vault before changing the ControlPlane, logged in as istiod would be
  meshpki.vault_ca.istio_ca_verify:
    url: https://vault.example.com:8200
    auth_method: kubernetes
    role_id: istiod
    jwt: "{{ istiod_service_account_token }}"
    vault_paths:
      intermediate_mount: istioca
      root_mount: pki
      kv_mount: secret
      kv_path: istioca
      kv_field: ca-key.pem
    min_days_left: 30
  register: bundle

- name: Show when the intermediate expires
  ansible.builtin.debug:
    msg: "{{ bundle.certificates.intermediate.subject }} expires {{ bundle.certificates.intermediate.not_after }}"

- name: Check PEM texts from elsewhere (the key stays out of logs)
  meshpki.vault_ca.istio_ca_verify:
    ca_cert_pem: "{{ lookup('ansible.builtin.file', 'istioca.crt') }}"
    ca_key_pem: "{{ istioca_key }}"
    cert_chain_pem: "{{ lookup('ansible.builtin.file', 'istioca-chain.pem') }}"
    root_cert_pem: "{{ lookup('ansible.builtin.file', 'root.crt') }}"

- name: During a root rotation - the rendered bundle must trust exactly the old and the new root
  meshpki.vault_ca.istio_ca_verify:
    path: /etc/cacerts-vault
    expect_roots:
      - "{{ lookup('ansible.builtin.file', 'old-root.pem') }}"
      - "3F:1C:0A:...:9B"  # the new root's SHA-256 fingerprint (certificates.roots[].sha256_fingerprint)
  register: bundle

- name: Which root signs the intermediate now
  ansible.builtin.debug:
    msg: "{{ bundle.chain_root.position }} {{ bundle.chain_root.sha256_fingerprint }}"

- name: Report without failing, then decide
  meshpki.vault_ca.istio_ca_verify:
    path: /tmp/rendered
  register: report
  failed_when: false

- name: List what is wrong
  ansible.builtin.debug:
    msg: "{{ report.checks | rejectattr('passed') | map(attribute='detail') | list }}"
'''

RETURN = r'''
valid:
  description: Whether every check passed.
  returned: always
  type: bool
  sample: true
failed_checks:
  description: Names of the checks that did not pass (including those skipped because an earlier check failed).
  returned: always
  type: list
  elements: str
  sample: [key_matches_cert, workload_cert_verifies]
checks:
  description: Every check in order, with its result.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the check.
      type: str
    passed:
      description: Whether it passed.
      type: bool
    detail:
      description: What was found, and for a failure how to fix it.
      type: str
    skipped:
      description: Present and true when the check could not run because an earlier check failed.
      type: bool
  sample:
    - name: key_matches_cert
      passed: true
      detail: ca-key.pem (RSA 2048) is the key of 'CN=tetrate.io Intermediate Authority'
source:
  description: Where the files came from - V(directory), V(pem) or V(vault).
  returned: always
  type: str
  sample: vault
sources:
  description: For each of the four files, where it was read (file path, C(vault:<path>) or the option name).
  returned: always
  type: dict
  sample: {ca-cert.pem: "vault:istioca/cert/ca", ca-key.pem: "vault:secret/data/istioca"}
certificates:
  description: Each certificate found (no key material).
  returned: always
  type: dict
  contains:
    intermediate:
      description: The first certificate of C(ca-cert.pem) - subject, issuer, serial (Vault's colon format),
        not_before, not_after, days_left, sha256_fingerprint, is_ca, self_signed, key_type, key_bits. Null when it
        did not parse.
      type: dict
    chain:
      description: The certificates of C(cert-chain.pem), same fields.
      type: list
      elements: dict
    roots:
      description: The certificates of C(root-cert.pem), same fields.
      type: list
      elements: dict
chain_root:
  description: The root of C(root-cert.pem) the intermediate chains to - C(position) (1 for the first certificate of
    the file), C(subject) and C(sha256_fingerprint); null when it chains to none. With two roots of the same name (a
    rotation) this says which one signs.
  returned: always
  type: dict
  sample: {position: 2, subject: "CN=tetrate.io", sha256_fingerprint: "3F:1C:..."}
  version_added: 0.2.0
chain_path:
  description: Subjects from the intermediate to the root it verified to; empty when it did not.
  returned: always
  type: list
  elements: str
  sample: ["CN=tetrate.io Intermediate Authority", "CN=tetrate.io"]
key_info:
  description: Type, size and PEM format of the key (never the key itself); null when it did not parse.
  returned: always
  type: dict
  sample: {type: rsa, bits: 2048, format: pkcs1}
days_left:
  description: Days until the first expiry among the intermediate and the CAs above it; null when nothing parsed.
  returned: always
  type: int
  sample: 364
policy_check:
  description: How O(read_with_policy) was proven - V(token) (a token was created, used and revoked) or V(rules);
    null without O(read_with_policy).
  returned: always
  type: str
  sample: rules
policy_rules:
  description: With O(read_with_policy) and a readable policy, for each path read the policy rule that grants it.
  returned: always
  type: dict
  sample: {"secret/data/istioca": "secret/data/istioca", "istioca/cert/ca": "istioca/cert/*"}
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.verify import PEM_OPTIONS, verify_ca_bundle
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import ca_layout_paths, ca_layout_spec

ARGUMENT_SPEC = module_spec(dict(
    path=dict(type="path"),
    ca_cert_pem=dict(type="str"),
    ca_key_pem=dict(type="str", no_log=True),
    cert_chain_pem=dict(type="str"),
    root_cert_pem=dict(type="str"),
    vault_paths=dict(type="dict", options=ca_layout_spec()),
    read_with_policy=dict(type="str"),
    policy_check=dict(type="str", choices=["token", "rules"], default="token"),
    auth_role=dict(type="dict", options=dict(
        kubernetes_auth_mount=dict(type="str", default="kubernetes", aliases=["mount"]),
        name=dict(type="str", required=True))),
    min_days_left=dict(type="int"),
    expect_roots=dict(type="list", elements="str"),
))
SOURCES = ("path", "vault_paths")


def main():
    MeshPkiModule(
        ARGUMENT_SPEC,
        mutually_exclusive=[SOURCES] + [(source, option) for source in SOURCES for option in PEM_OPTIONS.values()],
        required_together=[tuple(PEM_OPTIONS.values())],
        required_one_of=[("path", "vault_paths", "ca_cert_pem")],
        required_by={"read_with_policy": ("vault_paths",), "auth_role": ("read_with_policy",)},
        supports_check_mode=True,
        hvac_required=False,
        path_options=dict(ca_layout_paths(prefix="vault_paths."), read_with_policy="name",
                          **{"auth_role.kubernetes_auth_mount": "mount", "auth_role.name": "name"}),
        requires=("cryptography",),
    ).run(verify_ca_bundle)


if __name__ == "__main__":
    main()
