# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where the CA lives in Vault - the guide's layout: the root's PKI mount, the intermediate's PKI mount, and the
KV v2 mount, path and field that keep the intermediate's private key. One argument spec (documented by the
``meshpki.vault_ca.ca_layout`` doc fragment) for every module that reads or writes that layout, with the path
kind of each option for the path validator."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

CA_LAYOUT_ARGSPEC = dict(
    root_mount=dict(type="str", default="pki"),
    intermediate_mount=dict(type="str", default="istioca"),
    kv_mount=dict(type="str", default="secret"),
    kv_path=dict(type="str", default="istioca"),
    kv_field=dict(type="str", default="ca-key.pem", no_log=False),
    trust_bundle_path=dict(type="str"),
)

# The kind of Vault path each option forms (vault.paths.KINDS).
CA_LAYOUT_PATHS = dict(root_mount="mount", intermediate_mount="mount", kv_mount="mount", kv_path="path",
                       kv_field="field", trust_bundle_path="path")

# The root CA as a vault_pki_root task of the same run returned it (option root_ca of vault_pki_intermediate and
# vault_pki_root_rotation, doc fragment meshpki.vault_ca.ca_layout.root_ca): lets a run that changes nothing skip
# re-reading <root_mount>/issuer/default. Only ever used to decide "nothing changes" (pki.issuers.given_root).
ROOT_CA_ARGSPEC = dict(type="dict", options=dict(
    certificate=dict(type="str", required=True),
    issuer_id=dict(type="str"),
    key_id=dict(type="str", no_log=False),
))

# All six, and the options a module that writes the intermediate takes (its own 'mount' is the intermediate's).
CA_LAYOUT = tuple(CA_LAYOUT_ARGSPEC)
SIGNING_LAYOUT = ("root_mount", "kv_mount", "kv_path", "kv_field")


def ca_layout_spec(names=tuple(CA_LAYOUT_ARGSPEC)):
    """The layout options ``names`` (all by default), the shared definitions themselves."""
    return dict((name, CA_LAYOUT_ARGSPEC[name]) for name in names)


def ca_layout_paths(names=tuple(CA_LAYOUT_ARGSPEC), prefix=""):
    """path_options for the layout options ``names``; ``prefix`` ('vault_paths.') when they are sub-options."""
    return dict((prefix + name, CA_LAYOUT_PATHS[name]) for name in names)
