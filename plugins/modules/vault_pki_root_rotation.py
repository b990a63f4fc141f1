#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_pki_root_rotation
short_description: Rotate the mesh's root CA without downtime, one phase per run, and keep istiod's trust bundle
version_added: 0.2.0
description:
  - Keeps the trust bundle istiod's C(root-cert.pem) renders - a KV version 2 secret at
    C(<kv_mount>/data/<trust_bundle_path>), field C(root-cert.pem) - and, in the same secret, the record of a root
    rotation - fields C(phase) (V(trust), V(sign), V(retire), V(aborted); none when no rotation ran), C(old_issuer_id),
    C(new_issuer_id), C(new_issuer_name), C(trusted) (issuer ids in the bundle), C(signer) (the root mount's default
    issuer in this phase) and the times C(trust_at), C(sign_at), C(retire_at), C(aborted_at). Bundle and record are
    written together, in one check-and-set write.
  - O(rotation=hold) (the main playbook) only keeps the bundle - the root mount's default issuer when no rotation is
    in progress, the recorded roots during one - and completes the writes of a run that was killed.
  - O(rotation=advance) moves the rotation one phase when its gate holds, and otherwise writes nothing and says what
    it waits for and until when. Start (no rotation yet, or O(rotation=start) after a finished one) - every cluster
    verified; a new root B is generated as a second issuer of O(root_mount) (C(root/rotate/internal)) - or
    imported from O(pem_bundle) - and the bundle becomes A+B (V(trust)). V(trust) to V(sign) - every cluster
    verified and O(margin) passed; B becomes the mount's default issuer, so vault_pki_intermediate re-issues each
    cluster's intermediate from B (new key, the old one kept as a KV version). V(sign) to V(retire) - every
    cluster verified with an intermediate signed by B, and O(workload_cert_ttl) + O(margin) passed since the last
    one was issued; the bundle becomes B. A stays in the mount.
  - O(rotation=abort) before V(retire) goes back to A (the default issuer again, so the intermediates are re-issued
    from A); after an abort in V(sign), B stays in the bundle until O(workload_cert_ttl) + O(margin) passed since the
    last intermediate went back to A (a later V(advance) or V(abort) run drops it).
  - The record is written before the default issuer moves, and B is found by its name, so a run killed between two
    writes is completed by the next run (which then does not advance).
notes:
  - Requests of a O(rotation=hold) run that changes nothing (no rotation in progress, the bundle is the root) - 2
    reads (the record, C(<root_mount>/issuer/default)); 1 with O(root_ca) (the record only). The KV mount is read
    from C(sys/mounts) only when the record is not there yet (the first run enables the KV v2 mount when missing).
    A rotation in progress always reads the root mount's default issuer from Vault.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
  - cryptography >= 3.4.0
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.ca_layout.root_ca
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details: Reads everything, writes nothing, and returns what a real run would do - the phase it would reach,
      the writes it would make (RV(writes)), the record, roots and signing root it would leave (RV(record),
      RV(roots), RV(signer)) and RV(message) saying so. A new root it would generate is not there yet - its
      serial is V((new root)), without a certificate.
  diff_mode:
    support: full
    details: The record before and after (phase, issuer ids, times, serials of the trusted roots, the root mount's
      default issuer); in check mode the after is the record a real run would write, with its writes.
options:
  root_mount:
    description: PKI mount of the root CA; the new root is a second issuer of it.
    type: str
    default: pki
  kv_mount:
    description: KV version 2 mount of the trust bundle and record.
    type: str
    default: secret
  trust_bundle_path:
    description:
      - Path of the trust bundle and record in O(kv_mount), without C(data/); the same as the
        O(meshpki.vault_ca.tsb_controlplane_annotations#module:trust_bundle_path) the templates read.
      - Required (a missing value fails before any request).
    type: str
  rotation:
    description: V(hold) keeps the bundle; V(advance) one phase; V(start) a new rotation after a finished one;
      V(abort) back to the old root (before V(retire)).
    type: str
    choices: [hold, advance, start, abort]
    default: hold
  clusters:
    description: Every cluster of the mesh and whether it verified in this run - the gate of each phase.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The cluster's name (its inventory host).
        type: str
        required: true
      intermediate_mount:
        description: The cluster's intermediate PKI mount (unknown for a cluster that failed before it was read).
        type: str
      verified:
        description: Whether the cluster's bundle verified in this run.
        type: bool
        default: false
      problem:
        description: Why it did not verify (shown in RV(waiting_for)).
        type: str
  workload_cert_ttl:
    description: The longest lifetime of a workload certificate (Istio's default is 24h).
    type: str
    default: 24h
  margin:
    description: Added to every wait (agents' render interval, istiod's push to the proxies, clock skew).
    type: str
    default: 1h
  common_name:
    description: Common name of a new root generated in Vault; unset, the old root's.
    type: str
  key_type:
    description:
      - Key type of a new root generated in Vault; unset, the old root's (type and size). A change of algorithm -
        for example an RSA root A and an EC root B - is one of the reasons to rotate.
    type: str
    choices: [rsa, ec]
  key_bits:
    description:
      - Key size of a new root generated in Vault - V(2048), V(3072), V(4096) for RSA, V(256), V(384) for EC; unset,
        V(2048) for RSA and V(256) for EC. Needs O(key_type) (a size without a type is refused).
    type: int
  root_ttl:
    description: Lifetime of a new root generated in Vault, for example V(87600h); unset, Vault's default for the
      mount.
    type: str
  pem_bundle:
    description:
      - The new root B - its PEM certificate and its unencrypted private key, in one text - imported as the second
        issuer of O(root_mount) (C(issuers/import/bundle), then named) instead of generated in Vault; for an
        operator who imported the old root and keeps making roots outside Vault.
      - Used only when a rotation starts; checked (a CA certificate, the key its own, not expired, not the current
        root) before any request. Not together with O(common_name), O(key_type), O(key_bits), O(root_ttl).
    type: str
    version_added: 0.2.0
  generate:
    description:
      - Whether a rotation that starts without O(pem_bundle) may generate B inside Vault (C(root/rotate/internal)).
      - V(false) - such a start is refused before any write, with the fix; the role C(meshpki.vault_ca.istio_vault_ca)
        passes V(false) when its root was imported (C(istio_vault_ca_root_pem_bundle)) and
        C(istio_vault_ca_root_rotation_common_name) is not set.
      - A root whose key is not in Vault (an offline root) never gets a successor generated in Vault - give
        O(pem_bundle).
    type: bool
    default: true
    version_added: 0.2.0
seealso:
  - module: meshpki.vault_ca.vault_pki_root
  - module: meshpki.vault_ca.vault_pki_intermediate
'''

EXAMPLES = r'''
- name: One phase of the root rotation, when every cluster verified
  meshpki.vault_ca.vault_pki_root_rotation:
    root_mount: pki
    trust_bundle_path: pki-trust
    rotation: advance
    clusters:
      - {name: east, intermediate_mount: istioca-east, verified: true}
      - {name: west, intermediate_mount: istioca-west, verified: true}
  register: rotation
'''

RETURN = r'''
phase:
  description: The phase after this run (V(none) when no rotation ran); in check mode the phase a real run would
    reach.
  returned: always
  type: str
  sample: trust
previous_phase:
  description: The phase before this run.
  returned: always
  type: str
  sample: none
advanced:
  description: Whether this run moved to another phase.
  returned: always
  type: bool
waiting_for:
  description: What keeps the rotation from advancing (empty when it advanced or has nothing to do).
  returned: always
  type: list
  elements: str
next_phase_at:
  description: The earliest time (UTC, ISO 8601) of the next phase, when known.
  returned: always
  type: str
message:
  description: One line that says what happened or what the rotation waits for.
  returned: always
  type: str
record:
  description: The record's fields after the run (without the bundle); in check mode as a real run would write
    them.
  returned: always
  type: dict
record_path:
  description: The API path of the record.
  returned: always
  type: str
  sample: secret/data/pki-trust
roots:
  description: The roots in the bundle, each C({issuer_id, serial, subject, not_after, certificate}) (the PEM
    certificate, for example for the C(expect_roots) option of M(meshpki.vault_ca.istio_ca_verify)). In check mode
    the roots a real run would leave in the bundle; a new root it would generate has the serial V((new root)) and
    no issuer_id or certificate.
  returned: always
  type: list
  elements: dict
signer_issuer_id:
  description: The root mount's default issuer (the root that signs intermediates); in check mode the one a real
    run would leave.
  returned: always
  type: str
signer:
  description: That root as C({certificate, issuer_id, key_id}), the shape of the O(root_ca) option of
    M(meshpki.vault_ca.vault_pki_intermediate), which plans the intermediate on it (the role's C(rotate_root)
    passes it, so that a check-mode run shows the intermediates a real run would re-issue).
  returned: always
  type: dict
clusters:
  description: Per cluster - C(name), C(phase), C(verified), C(roots) (serials trusted), C(signing_chain)
    (intermediate serial -> root serial), C(next_phase_at).
  returned: always
  type: list
  elements: dict
writes:
  description: The Vault paths this run wrote (would write, in check mode), in order.
  returned: always
  type: list
  elements: str
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import ROOT_CA_ARGSPEC, ca_layout_paths
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.rotation import MODES, manage_root_rotation

ARGUMENT_SPEC = module_spec(dict(
    rotation=dict(type="str", choices=list(MODES), default="hold"),
    clusters=dict(type="list", elements="dict", default=[], options=dict(
        name=dict(type="str", required=True), intermediate_mount=dict(type="str"),
        verified=dict(type="bool", default=False), problem=dict(type="str"))),
    workload_cert_ttl=dict(type="str", default="24h"),
    margin=dict(type="str", default="1h"),
    common_name=dict(type="str"),
    key_type=dict(type="str", choices=["rsa", "ec"], no_log=False),
    key_bits=dict(type="int", no_log=False),
    root_ttl=dict(type="str"),
    pem_bundle=dict(type="str", no_log=True),
    generate=dict(type="bool", default=True),
    root_ca=ROOT_CA_ARGSPEC,
), ca_layout=("root_mount", "kv_mount", "trust_bundle_path"))


def main():
    MeshPkiModule(ARGUMENT_SPEC, supports_check_mode=True, requires=("cryptography",),
                  path_options=dict(ca_layout_paths(("root_mount", "kv_mount", "trust_bundle_path")),
                                    **{"clusters.intermediate_mount": "mount"})).run(manage_root_rotation)


if __name__ == "__main__":
    main()
