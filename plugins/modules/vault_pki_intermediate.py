#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_pki_intermediate
short_description: Ensure Istio's intermediate CA in Vault or OpenBao, its key kept in KV v2
version_added: 0.1.0
description:
  - One call does the guide's whole chain - C(intermediate/generate/exported) in O(mount), the private key
    straight into KV v2 at O(kv_mount)/O(kv_path) (field O(kv_field)) with check-and-set, C(root/sign-intermediate)
    in O(root_mount), C(intermediate/set-signed) with the certificate B(followed by its issuing CA) (so
    C(<mount>/cert/ca_chain) holds the intermediate then the root), and C(config/issuers) to make the new
    issuer the mount's default B(explicitly) (else C(cert/ca) keeps serving the old certificate while KV holds
    the new key).
  - Ensures the PKI mount O(mount) (and its C(max_lease_ttl)) and the KV v2 mount O(kv_mount) exist.
  - B(Idempotent) - nothing is written when the mount's default issuer has the requested subject, key type and
    size, is signed by the current root (its signature is checked against the CA of O(root_mount)), its public key
    is the key stored in KV, and it does not expire within O(renew_before). A change of O(ttl) or
    O(max_path_length) alone does not re-issue and needs no switch; it is reported in RV(pending_changes).
  - B(Crash-safe) - the key is stored in KV B(before) the CSR is signed, with the Vault C(key_id) and the CSR
    beside it. When a run stops after that (permission denied on C(root/sign-intermediate), Vault restarted...),
    the next run finds a key no certificate uses yet and B(resumes) with it - an issuer Vault already made for it,
    the stored CSR, or a new CSR from C(intermediate/generate/existing). It never generates a second key for one
    certificate. A key deleted from the PKI mount meanwhile is imported back from KV (C(keys/import)).
  - B(Concurrent runs) - the KV write uses check-and-set (C(cas=0) for the first key, C(cas=<version>) for the
    next), so of two runs at once exactly one stores its key. The other deletes the key it generated, waits for
    the winner to install its certificate, and reports that (not changed) - or fails clearly if the winner does
    not finish within a minute (a re-run then resumes with the stored key).
  - B(Rotation) - when the intermediate expires within O(renew_before), or with O(force=true), a new key and
    certificate are issued. KV v2 keeps the old key as the previous version, the default issuer switches,
    RV(rotated) is true and RV(previous_serial) the old serial.
  - B(Never replaced silently) - when the intermediate in place has another subject (O(common_name) and the other
    subject options), key type or key size than requested, and is not due for renewal, the task B(fails) - in
    check mode too, as a failure rather than C(changed) - naming the mount, the default issuer and serial, what
    differs as old and new (C(subject 'CN=a' → 'CN=b', key RSA 2048 → EC 256)) and the switch, O(force=true).
    Nothing is written. A variable forgotten on a later run (a default value instead of the one in place) is
    refused the same way. Run once with O(force=true) to rotate to the new values; the next run without it
    changes nothing. The failure result holds C(guard) (C(mount), C(issuer_id), C(serial), C(changes) - a list
    of C(what), C(old), C(new), C(text) - and C(kv)).
  - When the intermediate must be replaced anyway - inside O(renew_before), expired, not signed by the current
    root, its key not in KV, or an interrupted rotation to finish - the new one takes the requested subject and
    key without O(force), and a warning says what also changes.
  - A change of O(ttl) or O(max_path_length) alone never replaces the intermediate and is not refused - it is
    reported in RV(pending_changes) and applies to the next certificate, at the next renewal or with O(force=true).
  - B(External signing) (an offline root) - with O(signing=external) the key is stored and the CSR returned in
    RV(csr); a later call with O(certificate) (and O(ca_chain)) checks the certificate was issued for the stored
    key and completes set-signed and the default issuer.
  - B(Validation before any write) - O(ttl) must fit inside the root's remaining validity and the root mount's
    C(max_lease_ttl) (Vault would silently shorten the intermediate, or let it outlive its root); the task fails,
    or caps with a warning when O(ttl_exceeds_root=cap). Key type and size must be a pair Istio accepts. The
    subject must not be empty. The root mount must exist and hold a root whose key is in Vault.
  - The private key is never returned, never shown in diff and never written to the controller's disk; it is
    masked should it ever reach the output.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
  - cryptography >= 3.4.0
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.ca_layout.signing
  - meshpki.vault_ca.ca_layout.root_ca
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details: Reads the mounts, the root, the default issuer and the KV secret and reports what would happen
      (RV(action), RV(reasons)); generates, stores, signs and imports nothing. With O(root_ca), a plan other than
      "nothing to do" is made on that issuer as Vault has it (read by its id in O(root_mount)), even when it is not
      the mount's default issuer yet - a task before this one would make it the default, as the root rotation's
      signing root (C(meshpki.vault_ca.rotate_root) in check mode). A real run plans on the default issuer.
  diff_mode:
    support: full
    details: Shows subject, serial, expiry and key of the intermediate and the KV version of its key, before and
      after (in check mode a certificate still to issue has serial C((new))). Never the key.
options:
  mount:
    description: Path of the PKI secrets engine for the intermediate CA (istiod reads C(<mount>/cert/ca) and
      C(<mount>/cert/ca_chain)).
    type: str
    default: istioca
  max_lease_ttl:
    description:
      - Maximum lease TTL of O(mount), for example V(43800h). When not set, the value of O(ttl).
    type: str
  common_name:
    description: Common name of the intermediate, for example V(tetrate.io Intermediate Authority).
    type: str
    required: true
  organization:
    description: Organization (O) values of the subject.
    type: list
    elements: str
  ou:
    description: Organizational unit (OU) values of the subject.
    type: list
    elements: str
  country:
    description: Country (C) values of the subject.
    type: list
    elements: str
  locality:
    description: Locality (L) values of the subject.
    type: list
    elements: str
  province:
    description: Province or state (ST) values of the subject.
    type: list
    elements: str
  key_type:
    description: Key type of the intermediate. Istio accepts RSA and ECDSA CA keys.
    type: str
    choices: [rsa, ec]
    default: rsa
  key_bits:
    description:
      - Key size - V(2048), V(3072) or V(4096) for RSA, V(256) (P-256) or V(384) (P-384) for EC.
      - When not set, V(2048) for RSA and V(256) for EC.
    type: int
  ttl:
    description:
      - Lifetime of the intermediate certificate, for example V(43800h). Applied when a certificate is issued.
      - Must fit inside the root's remaining validity and the root mount's C(max_lease_ttl), see
        O(ttl_exceeds_root).
    type: str
    default: 43800h
  ttl_exceeds_root:
    description:
      - What to do when O(ttl) does not fit under the root (the guide asks for 43800h under a root tuned to
        8760h - Vault would silently shorten it).
      - V(fail) fails before anything is written. V(cap) issues the longest certificate the root allows (until
        the root's own expiry, or the root mount's C(max_lease_ttl)) and warns.
    type: str
    choices: [fail, cap]
    default: fail
  max_path_length:
    description: Maximum path length of the intermediate (basic constraints); V(-1) for no limit. istiod only
      signs workload certificates, so V(0) is enough.
    type: int
    default: -1
  renew_before:
    description:
      - Rotate (new key, new certificate) when the intermediate expires within this duration, for example
        V(720h). Must be shorter than O(ttl). Not set - never rotate because of age.
    type: str
  force:
    description:
      - Issue a new key and certificate even when the current intermediate is what is asked for (every run
        with V(true) rotates). A stored key no certificate uses yet is used rather than a new one.
      - The switch that replaces an intermediate whose subject, key type or key size differ from the request
        outside O(renew_before); without it such a run fails and writes nothing. Use it for one run; the next run
        without it, with the same values, changes nothing.
      - The role C(meshpki.vault_ca.istio_vault_ca) sets it from C(istio_vault_ca_rotate)
        (C(-e istio_vault_ca_rotate=true)).
    type: bool
    default: false
  signing:
    description:
      - V(internal) - the root CA in O(root_mount) signs the CSR.
      - V(external) - the root is outside Vault (an offline root, the guide's alternative path). The key is
        stored in KV and the CSR returned in RV(csr) (RV(pending) is true); sign it with your CA and call again
        with O(certificate) to complete. With V(external), rotation also takes two calls.
    type: str
    choices: [internal, external]
    default: internal
  certificate:
    description:
      - The signed intermediate certificate (PEM), O(signing=external) only. It may be followed by its issuing
        chain; otherwise give O(ca_chain).
      - It must be issued for the key stored in KV (the CSR of RV(csr)) and have the requested subject and key.
    type: str
  ca_chain:
    description:
      - The issuing CA chain of O(certificate) (PEM, issuing CA first, up to the root). It is imported with the
        certificate, so that C(<mount>/cert/ca_chain) and istiod's C(cert-chain.pem) hold the intermediate
        then its issuers.
    type: str
notes:
  - O(root_mount) and O(root_ca) are not used with O(signing=external). O(kv_mount) is enabled as KV v2 when
    missing (a KV v1 mount there is an error). Besides O(kv_field), the module stores C(key_id) (Vault's key id)
    and C(csr) in the secret; its other fields are kept.
  - Requests, measured in OpenBao 2.7's audit log (token auth) - a first run (root ready, KV mount present) makes
    10 (4 reads; 6 writes - enable the mount, generate/exported, the KV write, sign-intermediate, set-signed,
    config/issuers); a run that changes nothing makes 4 reads (sys/mounts, the root's issuer/default, the
    intermediate's issuer/default, the KV secret) and no write - 3 with O(root_ca) (the root's issuer/default is
    not read).
  - Between storing a new key and installing its certificate (a few requests during a rotation, or until the
    re-run after a failure), C(<kv_mount>/data/<kv_path>) holds a key that does not match C(<mount>/cert/ca).
    istiod reads both only when it starts or reloads; do not restart it while a run has failed half-way.
  - Two runs that find the same stored key waiting for its certificate at the same moment may both sign it
    (two certificates for one key, the last one is the default issuer); there is never more than one key.
    Run the task once per Vault (C(run_once)) all the same.
  - The key stays in KV v2 history. Deleting a KV version does not revoke the key; destroy old versions
    (C(vault kv destroy)) once the certificates they belong to are retired.
seealso:
  - module: meshpki.vault_ca.vault_pki_root
  - name: PKI secrets engine API
    description: intermediate/generate, root/sign-intermediate, intermediate/set-signed, config/issuers.
    link: https://openbao.org/api-docs/secret/pki/
  - name: KV v2 check-and-set
    description: options.cas on writes.
    link: https://openbao.org/api-docs/secret/kv/kv-v2/
'''

EXAMPLES = r'''
# The guide's values: root tetrate.io (8760h) in pki, intermediate in istioca, key at secret/istioca
# field ca-key.pem. The guide asks for 43800h under a root that lives 8760h: Vault would silently shorten
# it, so say what to do - here, the longest lifetime the root allows.
- name: Root CA
  meshpki.vault_ca.vault_pki_root:
    common_name: tetrate.io
    ttl: 8760h

- name: Istio intermediate CA, its key in secret/istioca (field ca-key.pem)
  meshpki.vault_ca.vault_pki_intermediate:
    mount: istioca
    root_mount: pki
    common_name: tetrate.io Intermediate Authority
    ttl: 43800h
    max_lease_ttl: 43800h
    ttl_exceeds_root: cap
    kv_mount: secret
    kv_path: istioca
    kv_field: ca-key.pem
  register: intermediate

- name: Show what istiod will get (never the key)
  ansible.builtin.debug:
    msg: "{{ intermediate.subject }} {{ intermediate.serial }} until {{ intermediate.not_after }}, key in
      {{ intermediate.kv.mount }}/{{ intermediate.kv.path }} v{{ intermediate.kv.version }}"

# Rotation: run it on a schedule; it rotates once the intermediate has less than 30 days left.
# Keep the subject and key the intermediate has: a new common_name, key_type or key_bits alone fails
# (outside renew_before), naming what differs and force.
- name: Intermediate CA with rotation
  meshpki.vault_ca.vault_pki_intermediate:
    common_name: tetrate.io Intermediate Authority
    key_type: rsa
    key_bits: 2048
    ttl: 2160h
    renew_before: 720h
    max_path_length: 0
  register: intermediate

- name: Tell the mesh team
  ansible.builtin.debug:
    msg: "rotated {{ intermediate.previous_serial }} -> {{ intermediate.serial }}"
  when: intermediate.rotated

# Move the RSA intermediate to EC now: force, for this one run (e.g. a variable set with -e). The next run
# with key_type ec and without force changes nothing.
- name: Rotate the intermediate to an EC P-256 key now
  meshpki.vault_ca.vault_pki_intermediate:
    common_name: tetrate.io Intermediate Authority
    key_type: ec
    key_bits: 256
    ttl: 2160h
    renew_before: 720h
    max_path_length: 0
    force: "{{ rotate_now | default(false) | bool }}"

# External signing: the root is offline. The first call stores the key and returns the CSR; sign it with
# your CA; the second call imports the certificate.
- name: Key and CSR for the offline root to sign
  meshpki.vault_ca.vault_pki_intermediate:
    common_name: tetrate.io Intermediate Authority
    signing: external
  register: pending

- name: Save the CSR for the CA operators (not secret)
  ansible.builtin.copy:
    content: "{{ pending.csr }}"
    dest: istioca.csr
    mode: "0644"
  when: pending.pending

- name: Later - import the signed certificate and its chain
  meshpki.vault_ca.vault_pki_intermediate:
    common_name: tetrate.io Intermediate Authority
    signing: external
    certificate: "{{ lookup('ansible.builtin.file', 'istioca.crt') }}"
    ca_chain: "{{ lookup('ansible.builtin.file', 'offline-root.crt') }}"
'''

RETURN = r'''
mount:
  description: The intermediate's PKI mount.
  returned: always
  type: str
  sample: istioca
root_mount:
  description: The mount whose root CA signs the intermediate.
  returned: when O(signing=internal)
  type: str
  sample: pki
signing:
  description: O(signing).
  returned: always
  type: str
  sample: internal
action:
  description:
    - What the task did (in check mode, would do). V(none); V(issue) - a new key and certificate (with
      O(signing=external), a new key and CSR); V(resume) - a certificate for a key an earlier run stored;
      V(await) - the stored key still waits for its signed certificate (O(signing=external)); V(complete) -
      the given certificate was imported; V(chain) - the issuing CA was added to Vault's chain.
  returned: always
  type: str
  sample: issue
reasons:
  description: Why the current intermediate was not kept (empty when nothing changes).
  returned: always
  type: list
  elements: str
  sample: ["it expires on 2026-12-28T20:28:02Z, within renew_before (720h (30.0 days))"]
pending_changes:
  description: Requested settings (ttl, max_path_length) the current certificate does not have and that apply
    only to the next certificate (renew_before or force).
  returned: always
  type: list
  elements: str
  sample: []
certificate:
  description: PEM certificate of the intermediate, the mount's default issuer after the task (in check mode,
    the current one; null when there is none).
  returned: always
  type: str
  sample: "-----BEGIN CERTIFICATE-----\nMIIDMjCCAhqgAwIBAgIU...\n-----END CERTIFICATE-----\n"
ca_chain:
  description: The intermediate followed by its issuing chain up to the root, as C(<mount>/cert/ca_chain)
    serves it (istiod's C(cert-chain.pem)).
  returned: always
  type: list
  elements: str
  sample: ["-----BEGIN CERTIFICATE-----\n(intermediate)...", "-----BEGIN CERTIFICATE-----\n(root)..."]
serial:
  description: Serial number of RV(certificate), in Vault's format.
  returned: always
  type: str
  sample: "11:c9:5b:83:b3:26:ad:72:ae:e6:40:6c:f1:49:e1:01:f8:f6:ab:1d"
subject:
  description: Subject of RV(certificate).
  returned: always
  type: str
  sample: CN=tetrate.io Intermediate Authority
not_before:
  description: Start of validity of RV(certificate) (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-28T20:27:48Z"
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
  description: Vault's id of the default issuer of O(mount).
  returned: always
  type: str
  sample: 3b23ea41-146d-0c25-f8a1-41fdfa95e74d
key_id:
  description: Vault's id of the intermediate's key in O(mount) (the key itself is never returned).
  returned: always
  type: str
  sample: 6be6977d-e6ab-a879-5839-ca25552f4ee7
kv:
  description: Where the key is - mount, path, field, and the KV v2 version that holds it (0 when none).
  returned: always
  type: dict
  sample: {"mount": "secret", "path": "istioca", "field": "ca-key.pem", "version": 1}
rotated:
  description: Whether a previous intermediate was replaced as the default issuer (in check mode, would be).
  returned: always
  type: bool
  sample: false
previous_serial:
  description: Serial of the replaced intermediate when RV(rotated).
  returned: always
  type: str
  sample: null
resumed:
  description: Whether the certificate was issued for a key stored by an earlier, interrupted run.
  returned: always
  type: bool
  sample: false
pending:
  description: Whether the stored key waits for its signed certificate (O(signing=external)).
  returned: always
  type: bool
  sample: false
csr:
  description: The CSR of the stored key, to sign with the external CA, when RV(pending).
  returned: always
  type: str
  sample: null
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.intermediate import manage_intermediate
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import (
    ROOT_CA_ARGSPEC,
    SIGNING_LAYOUT,
    ca_layout_paths,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.request import SUBJECT_ARGSPEC

ARGUMENT_SPEC = module_spec(dict(
    SUBJECT_ARGSPEC,
    common_name=dict(type="str", required=True),
    mount=dict(type="str", default="istioca"),
    max_lease_ttl=dict(type="str"),
    key_type=dict(type="str", choices=["rsa", "ec"], default="rsa", no_log=False),
    key_bits=dict(type="int", no_log=False),
    ttl=dict(type="str", default="43800h"),
    ttl_exceeds_root=dict(type="str", choices=["fail", "cap"], default="fail"),
    max_path_length=dict(type="int", default=-1),
    renew_before=dict(type="str"),
    force=dict(type="bool", default=False),
    signing=dict(type="str", choices=["internal", "external"], default="internal"),
    certificate=dict(type="str"),
    ca_chain=dict(type="str"),
    root_ca=ROOT_CA_ARGSPEC,
), ca_layout=SIGNING_LAYOUT)


def main():
    MeshPkiModule(
        ARGUMENT_SPEC,
        required_by={"ca_chain": "certificate"},
        supports_check_mode=True,
        path_options=dict(ca_layout_paths(SIGNING_LAYOUT), mount="mount"),
        requires=("cryptography",),
    ).run(manage_intermediate)


if __name__ == "__main__":
    main()
