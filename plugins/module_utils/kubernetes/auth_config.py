# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Vault/OpenBao Kubernetes auth: the config and the roles (read, normalise, compare, build the
write), PEM options given as text or as a file, the parameters a server knows, and the
token-reviewer bootstrap on the Kubernetes side (ServiceAccount, ClusterRoleBinding to
system:auth-delegator, kubernetes.io/service-account-token Secret) through the kubernetes client.

Facts this file relies on (OpenBao 2.x and Vault's vault-plugin-auth-kubernetes):

- ``auth/<mount>/config`` is replaced as a whole on every write: a field left out goes back to its
  default. So a write sends every field the server returned (except read-only ``*_set`` markers)
  plus the ones the user set - and ``token_reviewer_jwt``, which is never returned, only when we
  have it (else it is dropped).
- ``auth/<mount>/role/<name>`` writes merge: fields left out keep their value.
- A parameter the server does not know is ignored silently by OpenBao; we refuse it instead, using
  the parameters of the endpoint's ``?help=1`` answer (its OpenAPI request schema).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import os
import re
import traceback

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

try:
    from kubernetes import client as k8s_client
except ImportError:
    k8s_client = None

# ----------------------------------------------------------------------------------------- PEM

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
CA_LABELS = ("CERTIFICATE",)
PEM_KEY_LABELS = ("CERTIFICATE", "PUBLIC KEY")


def pem_blocks(text):
    """[(label, DER bytes)] of the PEM blocks in ``text``, white space ignored. ValueError when a
    block's body is not base64."""
    blocks = []
    for label, body in _PEM_BLOCK.findall(text or ""):
        compact = "".join(body.split())
        try:
            der = base64.b64decode(compact.encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise ValueError("the body of its %s block is not base64" % label)
        if not der:
            raise ValueError("its %s block is empty" % label)
        blocks.append((label, der))
    return blocks


def pem_identity(text):
    """What two PEM texts must share to mean the same thing: the sorted (label, DER) pairs. Text
    that holds no PEM (a server value written by hand) is compared as stripped text."""
    if text is None or not str(text).strip():
        return ()
    try:
        blocks = pem_blocks(text)
    except ValueError:
        blocks = []
    if not blocks:
        return (("text", str(text).strip()),)
    return tuple(sorted(blocks))


def _check_der(label, der):
    if not HAS_CRYPTOGRAPHY:
        return None
    try:
        if label == "CERTIFICATE":
            x509.load_der_x509_certificate(der)
        else:
            serialization.load_der_public_key(der)
    except (ValueError, TypeError) as e:
        return str(e) or e.__class__.__name__
    return None


def load_pem_option(value, option, labels):
    """``value`` is PEM text or the path of a PEM file: return the PEM text to send to Vault.

    Raises MeshPkiError naming ``option`` when the file cannot be read or holds no valid PEM of
    one of ``labels``."""
    if value is None:
        return None
    source = option
    text = value
    if "-----BEGIN" not in value:
        path = os.path.expanduser(value.strip())
        if not path or not os.path.isfile(path):
            raise MeshPkiError("%s is neither PEM text (-----BEGIN %s-----) nor the path of a readable file "
                               "(no file '%s'). Give the PEM itself or a path to it." % (option, labels[0], path))
        try:
            with open(path) as f:
                text = f.read()
        except (IOError, OSError, UnicodeDecodeError) as e:
            raise MeshPkiError("Cannot read %s from '%s': %s" % (option, path, getattr(e, "strerror", None) or e))
        source = "%s (file '%s')" % (option, path)
    try:
        blocks = pem_blocks(text)
    except ValueError as e:
        raise MeshPkiError("%s is not valid PEM: %s." % (source, e))
    if not blocks:
        raise MeshPkiError("%s is not PEM: no -----BEGIN %s----- block found." % (source, labels[0]))
    for label, der in blocks:
        if label not in labels:
            raise MeshPkiError("%s holds a %s block; only %s blocks belong there."
                               % (source, label, " or ".join(labels)))
        problem = _check_der(label, der)
        if problem:
            raise MeshPkiError("%s holds a %s block that does not parse: %s." % (source, label, problem))
    return text


# ----------------------------------------------------------------------------- known parameters


def schema_fields(help_body):
    """Names of the request parameters in a ``?help=1`` answer (its OpenAPI request schemas)."""
    names = set()
    openapi = (help_body or {}).get("openapi") or {}
    schemas = (openapi.get("components") or {}).get("schemas") or {}
    for schema in schemas.values():
        names.update((schema or {}).get("properties") or {})
    return names


def unknown_fields(client, path, wanted, known):
    """The fields of ``wanted`` the server does not take at ``path``.

    ``known`` are fields known without asking (those the server returned, or that every supported
    version has). For the others the endpoint's ``?help=1`` answer decides. Returns None when the
    server cannot tell (no OpenAPI in its help, or the mount does not exist yet)."""
    missing = sorted(f for f in wanted if f not in known)
    if not missing:
        return []
    body = client.request("GET", path, action="read the parameters of", capability="read",
                          params={"help": "1"}, missing_ok=True)
    fields = schema_fields(body)
    if not fields:
        return None
    return [f for f in missing if f not in fields]


def refuse_unknown(unknown, path):
    """MeshPkiError for parameters the server does not know (it would ignore them silently)."""
    if unknown:
        them = "it" if len(unknown) == 1 else "them"
        raise MeshPkiError("The server does not know %s at '%s' and would ignore %s. Remove %s from the task, or "
                           "upgrade Vault/OpenBao to a version that has %s (nothing was changed)."
                           % (", ".join(unknown), path, them, them, them))


# ------------------------------------------------------------------------------------- config

# Parameters every supported Vault/OpenBao has on auth/<mount>/config.
BASE_CONFIG_FIELDS = frozenset(["kubernetes_host", "kubernetes_ca_cert", "token_reviewer_jwt", "pem_keys",
                                "disable_local_ca_jwt", "issuer", "disable_iss_validation"])
# Options of vault_k8s_auth that are config fields, in the order shown.
CONFIG_OPTIONS = ("kubernetes_host", "kubernetes_ca_cert", "disable_local_ca_jwt", "pem_keys", "issuer",
                  "use_annotations_as_alias_metadata")
JWT_SET = "token_reviewer_jwt_set"


def stored_config(data):
    """The writable part of a config as read: everything but the read-only ``*_set`` markers."""
    return dict((k, v) for k, v in (data or {}).items() if not k.endswith("_set") and k != "token_reviewer_jwt")


def comparable_config(config):
    """A config (read, or about to be written) reduced to what it means: host without a trailing
    slash, CA and pem_keys as sorted DER, empty strings and None alike."""
    out = {}
    for key, value in stored_config(config).items():
        if key == "kubernetes_host":
            value = (value or "").strip().rstrip("/")
        elif key == "kubernetes_ca_cert":
            value = pem_identity(value)
        elif key == "pem_keys":
            value = tuple(sorted(set(block for text in (value or []) for block in pem_identity(text))))
        elif key in ("disable_local_ca_jwt", "disable_iss_validation", "use_annotations_as_alias_metadata"):
            value = bool(value)
        elif isinstance(value, list):
            value = tuple(sorted(set(str(v) for v in value)))
        elif value is None:
            value = ""
        out[key] = value
    return out


def config_differences(current, desired):
    """Names of the fields whose meaning differs (a missing current config differs in everything)."""
    if current is None:
        return sorted(stored_config(desired))
    have, want = comparable_config(current), comparable_config(desired)
    return sorted(k for k in set(have) | set(want) if have.get(k, _default(k)) != want.get(k, _default(k)))


def _default(key):
    return False if key in ("disable_local_ca_jwt", "use_annotations_as_alias_metadata") else ""


def desired_config(current, user):
    """What to write: the server's fields (a write replaces the whole config), then the user's."""
    payload = stored_config(current)
    payload.update(dict((k, v) for k, v in user.items() if v is not None))
    return payload


def reviewer_jwt_plan(exists, differences, jwt_set, jwt, mode, secret_replaced=False):
    """Whether to write the config, and why, given that Vault never returns ``token_reviewer_jwt``.

    ``jwt`` is None (not managed: keep what is there), "" (remove it) or the JWT to use (in check
    mode a placeholder when the token is not known yet). ``mode`` is ``on_create`` or ``always``.
    Returns ``(write, reasons)``; a write that would silently drop a stored JWT is refused."""
    reasons = []
    if not exists:
        reasons.append("the config does not exist")
    if differences:
        reasons.append("changed: " + ", ".join(differences))
    if jwt is None:
        if exists and differences and jwt_set:
            raise MeshPkiError(
                "The config has a token_reviewer_jwt, which Vault never returns, and a write replaces the whole "
                "config: writing the changed fields (%s) without one would remove it. Pass token_reviewer_jwt "
                "(or token_reviewer) to keep a reviewer JWT, or token_reviewer_jwt: '' to remove it "
                "(nothing was changed)." % ", ".join(differences))
    elif jwt == "":
        if jwt_set:
            reasons.append("token_reviewer_jwt is removed")
    else:
        if exists and not jwt_set:
            reasons.append("token_reviewer_jwt is not set")
        if mode == "always":
            reasons.append("update_token_reviewer_jwt=always")
        if secret_replaced:
            reasons.append("the reviewer's token Secret is new")
    return bool(reasons), reasons


# --------------------------------------------------------------------------------------- roles

ROLE_LISTS = ("bound_service_account_names", "bound_service_account_namespaces", "token_policies",
              "token_bound_cidrs")
ROLE_DURATIONS = ("token_ttl", "token_max_ttl", "token_period", "token_explicit_max_ttl")
ROLE_FIELDS = ROLE_LISTS + ROLE_DURATIONS + (
    "bound_service_account_namespace_selector", "token_no_default_policy", "token_num_uses", "token_type",
    "audience", "alias_name_source")
# Parameters every supported Vault/OpenBao has on auth/<mount>/role/<name>.
BASE_ROLE_FIELDS = frozenset(ROLE_LISTS + ROLE_DURATIONS + (
    "token_no_default_policy", "token_num_uses", "token_type"))
# Legacy names Vault still returns when a role was written with them; the token_* field is the truth.
LEGACY_ROLE_FIELDS = (("policies", "token_policies"), ("period", "token_period"), ("ttl", "token_ttl"),
                      ("max_ttl", "token_max_ttl"), ("num_uses", "token_num_uses"),
                      ("bound_cidrs", "token_bound_cidrs"))


def role_from_server(data):
    """A role as read, with the legacy field names folded into the token_* ones."""
    if data is None:
        return None
    role = dict(data)
    for legacy, field in LEGACY_ROLE_FIELDS:
        if legacy in role:
            if not role.get(field):
                role[field] = role[legacy]
            del role[legacy]
    return role


def _unique(values):
    seen, out = set(), []
    for value in values:
        if value not in seen:
            seen.add(value)
            out.append(value)
    return out


def desired_role(params):
    """The role fields the user set, normalised: durations in seconds, lists without duplicates."""
    desired = {}
    for field in ROLE_FIELDS:
        value = params.get(field)
        if value is None:
            continue
        if field in ROLE_DURATIONS:
            try:
                value = to_seconds(value, field)
            except ValueError as e:
                raise MeshPkiError("Invalid %s: %s." % (field, e))
        elif field in ROLE_LISTS:
            value = _unique(str(v).strip() for v in value if str(v).strip())
        desired[field] = value
    return desired


def comparable_role_value(field, value):
    if field in ROLE_LISTS:
        return frozenset(str(v) for v in (value or []))
    if field in ROLE_DURATIONS:
        return to_seconds(value or 0, field)
    if field in ("audience", "bound_service_account_namespace_selector"):
        return value or ""
    return value


def role_differences(current, desired):
    """Names of the fields the user set whose meaning differs from the role as read."""
    if current is None:
        return sorted(desired)
    return sorted(f for f, value in desired.items()
                  if comparable_role_value(f, current.get(f)) != comparable_role_value(f, value))


def check_new_role(name, desired):
    """Refuse, before any write, a new role Vault would refuse: it needs names and namespaces."""
    missing = []
    if not desired.get("bound_service_account_names"):
        missing.append("bound_service_account_names")
    if not desired.get("bound_service_account_namespaces") and not desired.get(
            "bound_service_account_namespace_selector"):
        missing.append("bound_service_account_namespaces (or bound_service_account_namespace_selector)")
    if missing:
        raise MeshPkiError("Role '%s' does not exist yet, and a new role needs %s (nothing was changed)."
                           % (name, " and ".join(missing)))
