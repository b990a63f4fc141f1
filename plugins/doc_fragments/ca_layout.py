# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Where the CA lives in Vault (module_utils/pki/layout.py CA_LAYOUT_ARGSPEC): all six options.
    DOCUMENTATION = r'''
options:
  root_mount:
    description: PKI mount of the root CA (the guide's V(pki)); istiod's agent reads C(<root_mount>/cert/ca).
    type: str
    default: pki
  intermediate_mount:
    description: PKI mount of Istio's intermediate CA (the guide's V(istioca)); istiod's agent reads
      C(<intermediate_mount>/cert/ca) and C(<intermediate_mount>/cert/ca_chain).
    type: str
    default: istioca
  kv_mount:
    description: KV version 2 mount that keeps the intermediate's private key.
    type: str
    default: secret
  kv_path:
    description: Path of the key's secret in O(kv_mount), without C(data/) (istiod's agent reads
      C(<kv_mount>/data/<kv_path>)).
    type: str
    default: istioca
  kv_field:
    description: Field of that secret holding the PEM private key (the guide's C(index .Data.data "ca-key.pem")).
    type: str
    default: ca-key.pem
  trust_bundle_path:
    description:
      - Path, in O(kv_mount) and without C(data/), of the KV version 2 secret holding the trust bundle istiod's
        C(root-cert.pem) renders (field C(root-cert.pem)) - the root, or both roots during a root rotation. The role
        keeps it with M(meshpki.vault_ca.vault_pki_root_rotation), so that the template stays the same while the
        roots change (istiod reloads the file; a new template is a new annotation and restarts istiod).
      - Unset, istiod's agent reads C(<root_mount>/cert/ca) (the root mount's default issuer, one root).
    type: str
'''

    # The layout of a module that writes the intermediate (its own mount option is the intermediate's):
    # the root's mount and the key's KV place (SIGNING_LAYOUT).
    SIGNING = r'''
options:
  root_mount:
    description:
      - PKI mount of the root CA that signs the intermediate (the guide's V(pki)).
    type: str
    default: pki
  kv_mount:
    description: KV version 2 mount that keeps the intermediate's private key.
    type: str
    default: secret
  kv_path:
    description: Path of the key's secret in O(kv_mount), without C(data/) (istiod's agent reads
      C(<kv_mount>/data/<kv_path>)).
    type: str
    default: istioca
  kv_field:
    description: Field of that secret holding the PEM private key (the guide's C(index .Data.data "ca-key.pem")).
    type: str
    default: ca-key.pem
'''

    # The root CA as a vault_pki_root task of the same run returned it (pki/layout.py ROOT_CA_ARGSPEC): the
    # option root_ca of vault_pki_intermediate and vault_pki_root_rotation.
    ROOT_CA = r'''
options:
  root_ca:
    description:
      - The root CA of O(root_mount) as a M(meshpki.vault_ca.vault_pki_root) task of the same run returned it
        (its RV(meshpki.vault_ca.vault_pki_root#module:certificate),
        RV(meshpki.vault_ca.vault_pki_root#module:issuer_id) and
        RV(meshpki.vault_ca.vault_pki_root#module:key_id)), so that this task does not read
        C(<root_mount>/issuer/default) again. The role C(meshpki.vault_ca.istio_vault_ca) passes it.
      - It is only used to find that B(nothing needs to change). Any other outcome (a write, a resumed step, a
        refusal) is planned on the root read from Vault, so stale or wrong data can cost one read, never a wrong
        write.
      - Not set - the root is read from Vault.
    type: dict
    suboptions:
      certificate:
        description: PEM certificate of the root's default issuer.
        type: str
        required: true
      issuer_id:
        description: Vault's id of the root's default issuer.
        type: str
      key_id:
        description: Vault's id of the root's key (an empty value is an offline root, which cannot sign).
        type: str
'''
