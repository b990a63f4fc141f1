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
