#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_pki_root
short_description: Ensure the root CA of a Vault or OpenBao PKI mount, without ever replacing it silently
version_added: 0.1.0
description:
  - Ensures the PKI secrets engine at O(mount) exists (enables it if missing) and that its C(max_lease_ttl)
    is O(max_lease_ttl) (tunes it only when different).
  - Ensures the mount's default issuer is a root CA with the requested subject, key type and key size,
    generated inside Vault (C(root/generate/internal)) - the key never leaves Vault.
  - Or imports a root you already have - certificate and key (O(pem_bundle)), or the certificate only
    (O(certificate)) for an offline root whose key stays outside Vault - as the guide's
    "if you already have your own CA" path. The imported certificate becomes the default issuer.
  - Idempotency compares the current default issuer's certificate with the request - subject (order of
    attributes aside), key type and size; for an import, the certificate itself. A B(different) existing
    root is never replaced without O(force=true) - the task fails and says what differs, because replacing a
    root breaks trust for every workload of the mesh. With O(force=true) the new root becomes the default
    issuer; the old issuer stays in the mount.
  - A change of O(ttl) or O(max_path_length) alone does not re-generate the root; it is reported in
    RV(pending_changes) and applies to the next root (O(force=true)).
  - Returns the certificate and its details, never a private key.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
  - cryptography >= 3.4.0
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details: Reads the mount and its default issuer and reports what would change; generates, imports and
      tunes nothing.
  diff_mode:
    support: full
    details: Shows subject, serial, expiry and key of the root, and the mount's type and max_lease_ttl,
      before and after (in check mode the serial of a root to generate is shown as C((new))).
options:
  mount:
    description: Path of the PKI secrets engine that holds the root CA.
    type: str
    default: pki
  max_lease_ttl:
    description:
      - Maximum lease TTL of the mount, for example V(8760h). It caps how long the certificates this root
        signs (the intermediate) may live.
      - When not set, the value of O(ttl).
    type: str
  common_name:
    description:
      - Common name of a root generated in Vault, for example V(tetrate.io).
      - Required unless O(pem_bundle) or O(certificate) is given.
    type: str
  organization:
    description: Organization (O) values of the subject of a generated root.
    type: list
    elements: str
  ou:
    description: Organizational unit (OU) values of the subject of a generated root.
    type: list
    elements: str
  country:
    description: Country (C) values of the subject of a generated root.
    type: list
    elements: str
  locality:
    description: Locality (L) values of the subject of a generated root.
    type: list
    elements: str
  province:
    description: Province or state (ST) values of the subject of a generated root.
    type: list
    elements: str
  key_type:
    description: Key type of a generated root. Istio accepts RSA and ECDSA CA keys.
    type: str
    choices: [rsa, ec]
    default: rsa
  key_bits:
    description:
      - Key size of a generated root - V(2048), V(3072) or V(4096) for RSA, V(256) (P-256) or V(384) (P-384)
        for EC.
      - When not set, V(2048) for RSA and V(256) for EC.
    type: int
  ttl:
    description:
      - Lifetime of a generated root, for example V(87600h) (10 years). Must not exceed O(max_lease_ttl)
        (Vault would cut it silently); the module fails instead.
      - Used only when a root is generated; changing it later does not re-generate the root.
    type: str
    default: 87600h
  max_path_length:
    description: Maximum path length of a generated root (basic constraints); V(-1) for no limit.
    type: int
    default: -1
  force:
    description:
      - Replace an existing root that differs from the request (a new generated root, or the imported one),
        making it the mount's default issuer. The old issuer stays in the mount.
      - Every intermediate signed by the old root must be re-issued (meshpki.vault_ca.vault_pki_intermediate
        does it on its next run) and workloads must trust the new root (Istio C(ISTIO_MULTIROOT_MESH)).
    type: bool
    default: false
  pem_bundle:
    description:
      - Import this root instead of generating one - its PEM certificate (optionally followed by its own
        chain) and its unencrypted private key, in one text.
      - Mutually exclusive with O(certificate) and O(common_name).
    type: str
  certificate:
    description:
      - Import this root certificate without its key - an offline root. Vault can then serve it
        but cannot sign with it; sign the intermediate outside Vault (M(meshpki.vault_ca.vault_pki_intermediate)
        with O(meshpki.vault_ca.vault_pki_intermediate#module:signing=external)).
      - OpenBao (2.7) answers C(<mount>/cert/ca) with an error for an issuer without its key; istiod's
        C(root-cert.pem) template must read C(<mount>/issuer/default/json) (the same C(.Data.certificate))
        instead. The module warns when it imports such a root.
      - Mutually exclusive with O(pem_bundle) and O(common_name).
    type: str
  trust_bundle_path:
    description:
      - The root rotation record of this mount - the
        O(meshpki.vault_ca.vault_pki_root_rotation#module:trust_bundle_path) of
        M(meshpki.vault_ca.vault_pki_root_rotation), in O(kv_mount). The role C(meshpki.vault_ca.istio_vault_ca)
        passes it.
      - When the mount's default issuer differs from the request, the record is read (one read, and one of the
        other root's issuer) before refusing. If it names the default issuer as one of the two roots of a rotation
        (the old root A, the new root B) and the request describes the other one, the root in place is kept - no
        error, no write, a note in RV(pending_changes). So a task whose options still describe A (a generated root's
        subject and key, or A's O(pem_bundle)) keeps working while the rotation moved the default issuer to B
        (phases V(sign) and V(retire)), and is never re-imported or re-generated over B.
      - Not set - no record is read; a default issuer that differs from the request is refused (see O(force)).
    type: str
    version_added: 0.2.0
  kv_mount:
    description: KV version 2 mount of O(trust_bundle_path).
    type: str
    default: secret
    version_added: 0.2.0
notes:
  - A root generated by an earlier run (or by hand, with the same subject and key) is kept as it is;
    nothing is written when nothing differs. Requests, measured in OpenBao 2.7's audit log - a first run makes
    4 (1 read; enable the mount, root/generate/internal, config/issuers); a no-change run makes 2 reads
    (sys/mounts, issuer/default) and no write.
  - Two runs against an empty mount at the same moment may both generate a root; the last one to set the
    default issuer wins. Run this task once (C(run_once)) per Vault.
seealso:
  - module: meshpki.vault_ca.vault_pki_intermediate
  - name: PKI secrets engine API
    description: root/generate, issuers/import, config/issuers.
    link: https://openbao.org/api-docs/secret/pki/
'''

EXAMPLES = r'''
- name: The guide's root CA - tetrate.io, one year, in the pki mount tuned to 8760h
  meshpki.vault_ca.vault_pki_root:
    url: https://vault.example.com:8200
    mount: pki
    common_name: tetrate.io
    ttl: 8760h
    max_lease_ttl: 8760h
  register: root

- name: A longer-lived EC root, with connection and auth set once for every Vault module
  module_defaults:
    group/meshpki.vault_ca.vault:
      url: "{{ vault_url }}"
      auth_method: approle
      role_id: "{{ vault_role_id }}"
      secret_id: "{{ vault_secret_id }}"
  block:
    - name: Root CA
      meshpki.vault_ca.vault_pki_root:
        common_name: mesh.example.com Root CA
        organization: [Example Inc.]
        key_type: ec
        key_bits: 384
        ttl: 87600h

- name: Bring your own root, certificate and key (the key is no_log)
  meshpki.vault_ca.vault_pki_root:
    pem_bundle: "{{ lookup('ansible.builtin.file', 'root-ca.pem') }}\n{{ root_ca_key }}"

- name: An offline root - Vault serves the certificate, the intermediate is signed outside
  meshpki.vault_ca.vault_pki_root:
    certificate: "{{ lookup('ansible.builtin.file', 'offline-root.crt') }}"

- name: Replace the root on purpose (breaks trust until every workload trusts the new root)
  meshpki.vault_ca.vault_pki_root:
    common_name: tetrate.io
    key_type: ec
    ttl: 8760h
    force: true
'''

RETURN = r'''
mount:
  description: The PKI mount.
  returned: always
  type: str
  sample: pki
action:
  description:
    - What the task did (or, in check mode, would do) - V(none), V(create) (a root where there was none),
      V(replace) (a new generated root, O(force=true)), V(import) (the given root became the default issuer).
  returned: always
  type: str
  sample: create
reasons:
  description: What differed between the existing root and the request, when it was replaced.
  returned: always
  type: list
  elements: str
  sample: ["subject is 'CN=old.example.com', requested 'CN=tetrate.io'"]
pending_changes:
  description: Requested settings (ttl, max_path_length) the existing root does not have and that apply only
    to a new root.
  returned: always
  type: list
  elements: str
  sample: ["ttl: the certificate lives 8760h (1.0 years) (until 2027-11-28T20:28:02Z) but ttl asks for 87600h ..."]
replaced:
  description: Whether an existing root was replaced as the default issuer (O(force=true)).
  returned: always
  type: bool
  sample: false
previous_serial:
  description: Serial number of the root that was (or would be) replaced.
  returned: always
  type: str
  sample: null
max_lease_ttl:
  description: The mount's max lease TTL after the task.
  returned: always
  type: str
  sample: 8760h
certificate:
  description:
    - PEM certificate of the mount's default issuer after the task (in check mode, the current one; null when
      there is none).
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIDMjCCAhqgAwIBAgIU...\n-----END CERTIFICATE-----\n"
serial:
  description: Serial number of RV(certificate), in Vault's format.
  returned: always
  type: str
  sample: "14:d3:50:5d:f6:1d:44:1d:1d:10:a9:eb:70:14:3a:4e:71:0a:eb:5b"
subject:
  description: Subject of RV(certificate).
  returned: always
  type: str
  sample: CN=tetrate.io
not_before:
  description: Start of validity of RV(certificate) (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-28T20:27:32Z"
not_after:
  description: End of validity of RV(certificate) (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2027-11-28T20:28:02Z"
key_type:
  description: Key type of RV(certificate).
  returned: always
  type: str
  sample: rsa
key_bits:
  description: Key size of RV(certificate).
  returned: always
  type: int
  sample: 2048
issuer_id:
  description: Vault's id of the default issuer.
  returned: always
  type: str
  sample: 45fad4d6-a7c3-a495-0abe-4d4eb464ad00
key_id:
  description: Vault's id of the root's key (the key itself is never returned); null for an offline root.
  returned: always
  type: str
  sample: 73e7b61d-c9f6-685b-fa1f-0eb4af28cf70
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import ca_layout_paths
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.request import SUBJECT_ARGSPEC
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.root import manage_root

ARGUMENT_SPEC = module_spec(dict(
    SUBJECT_ARGSPEC,
    mount=dict(type="str", default="pki"),
    max_lease_ttl=dict(type="str"),
    key_type=dict(type="str", choices=["rsa", "ec"], default="rsa", no_log=False),
    key_bits=dict(type="int", no_log=False),
    ttl=dict(type="str", default="87600h"),
    max_path_length=dict(type="int", default=-1),
    force=dict(type="bool", default=False),
    pem_bundle=dict(type="str", no_log=True),
    certificate=dict(type="str"),
), ca_layout=("kv_mount", "trust_bundle_path"))


def main():
    MeshPkiModule(
        ARGUMENT_SPEC,
        mutually_exclusive=[("pem_bundle", "certificate"), ("common_name", "pem_bundle"),
                            ("common_name", "certificate")],
        required_one_of=[("common_name", "pem_bundle", "certificate")],
        supports_check_mode=True,
        path_options=dict(mount="mount", **ca_layout_paths(("kv_mount", "trust_bundle_path"))),
        requires=("cryptography",),
    ).run(manage_root)


if __name__ == "__main__":
    main()
