# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Vault/OpenBao Kubernetes auth: the config and the roles (read, normalise, compare, build the
write), PEM options given as text or as a file, the parameters a server knows, and the logic of the two modules:
:func:`ensure_kubernetes_auth` (vault_k8s_auth: the auth method and its config, with the token reviewer of
kubernetes.token_reviewer) and :func:`ensure_role` (vault_k8s_role). Both name the auth mount
``kubernetes_auth_mount``, the one name of that option across the collection's modules.

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

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import check_kubernetes_host
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import cluster_entry
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.token_reviewer import (
    CHECK_MODE_JWT,
    ensure_token_reviewer,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import (
    MountResult,
    ensure_auth_method,
    read_auth_method,
)

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
    """Why ``der`` does not parse as ``label``, or None; None also without cryptography (imported here, on the
    first PEM option given: vault_k8s_role and a config without CA or keys never load it)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
    except ImportError:
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


# ------------------------------------------------------------------------------------ the mount

# The option that names the Kubernetes auth mount, in every module (vault_k8s_auth, vault_k8s_role, ...); ``mount``
# is its alias, the name these two modules used before.
MOUNT_OPTION = "kubernetes_auth_mount"
MOUNT_ARGSPEC = {MOUNT_OPTION: dict(type="str", default="kubernetes", aliases=["mount"])}
METHOD = "kubernetes"


def auth_mount(params):
    """The Kubernetes auth mount of the task, without slashes; MeshPkiError when empty."""
    mount = (params[MOUNT_OPTION] or "").strip().strip("/")
    if not mount:
        raise MeshPkiError("%s must not be empty." % MOUNT_OPTION)
    return mount


def _warn_unlisted(warn, path, fields):
    warn("The server does not list the parameters of '%s'; could not check that it knows %s."
         % (path, ", ".join(sorted(fields))))


# ---------------------------------------------------------------------------------- vault_k8s_role


def write_role(client, path, mount, payload):
    try:
        client.write(path, payload, action="write kubernetes auth role", capability=("create", "update"))
    except MeshPkiError as e:
        if e.details.get("status") == 404:
            raise MeshPkiError("Failed to write kubernetes auth role '%s': no Kubernetes auth method is enabled at "
                               "'auth/%s' - enable it first (meshpki.vault_ca.vault_k8s_auth with %s: %s)."
                               % (path, mount, MOUNT_OPTION, mount), status=404)
        raise


def _read_role(client, path):
    return (client.read(path, action="read kubernetes auth role") or {}).get("data")


def ensure_role(module):
    """vault_k8s_role: compare only the fields the task sets (durations in seconds, lists as sets) and write only
    those that differ (a role write merges), or delete the role. Returns the result with its diff."""
    p = module.params
    name = p["name"].strip()
    if not name:
        raise MeshPkiError("name and %s must not be empty." % MOUNT_OPTION)
    mount = auth_mount(p)
    path = "auth/%s/role/%s" % (mount, name)
    present = p["state"] == "present"
    desired = desired_role(p) if present else {}

    client = module.get_authenticated_client()
    raw = _read_role(client, path)
    current = role_from_server(raw)
    differences = None
    if present:
        if current is None:
            check_new_role(name, desired)
        unknown = unknown_fields(client, path, desired, BASE_ROLE_FIELDS | set(raw or {}))
        if unknown is None and current is not None:
            _warn_unlisted(module.warn, path, set(desired) - BASE_ROLE_FIELDS - set(raw or {}))
        refuse_unknown(unknown, path)
        differences = role_differences(current, desired)
        changed = bool(differences)
        after = dict(current or {}, **desired) if changed else current
    else:
        changed = current is not None
        after = {}
    if changed and not module.check_mode:
        if present:
            write_role(client, path, mount, desired if current is None else
                       dict((f, desired[f]) for f in differences))
            after = role_from_server(_read_role(client, path))
        else:
            client.delete(path, action="delete kubernetes auth role")
    result = dict(changed=changed, name=name, mount=mount, kubernetes_auth_mount=mount, role=after or {},
                  diff=dict(before=current or {}, after=after or {}, before_header=path, after_header=path))
    if present:
        result["changed_fields"] = differences
    return result


# ---------------------------------------------------------------------------------- vault_k8s_auth

JWT_PLACEHOLDER = "(new value written, not shown)"


def user_config(params, warn):
    """The config fields the task sets, PEM read and checked, host and CA filled from the
    kubeconfig when asked - all before any request."""
    p = params
    host = p["kubernetes_host"]
    ca = load_pem_option(p["kubernetes_ca_cert"], "kubernetes_ca_cert", CA_LABELS)
    if not host or p["kubeconfig"] or p["context"]:
        try:
            entry = cluster_entry(p)
        except MeshPkiError as e:
            if host or p["kubeconfig"] or p["context"]:
                raise
            raise MeshPkiError("kubernetes_host is not set and no kubeconfig cluster entry gives it: %s Set "
                               "kubernetes_host, or kubeconfig/context to the cluster Vault must reach." % e)
        host = host or entry["server"]
        if ca is None and entry["ca_pem"]:
            what = "The CA of context '%s' in '%s'" % (entry["context"], entry["kubeconfig"])
            ca = load_pem_option(entry["ca_pem"], what, CA_LABELS)
        elif ca is None and entry["insecure"]:
            warn("The cluster of context '%s' skips TLS verification and has no CA; Vault cannot skip it. "
                 "Set kubernetes_ca_cert to the API server's CA." % entry["context"])
    check_kubernetes_host("kubernetes_host", host)
    pem_keys = None
    if p["pem_keys"] is not None:
        pem_keys = [load_pem_option(v, "pem_keys[%d]" % i, PEM_KEY_LABELS) for i, v in enumerate(p["pem_keys"])]
    config = dict(kubernetes_host=host, kubernetes_ca_cert=ca, pem_keys=pem_keys,
                  disable_local_ca_jwt=p["disable_local_ca_jwt"], issuer=p["issuer"],
                  use_annotations_as_alias_metadata=p["use_annotations_as_alias_metadata"])
    return dict((k, v) for k, v in config.items() if v is not None)


def config_data(client, path):
    body = client.read(path, action="read kubernetes auth config")
    return (body or {}).get("data") if body else None


def kubernetes_config_if_there(client, path):
    """The config at ``path`` when it is a Kubernetes auth method's (it has ``kubernetes_host``), else None - also
    when it cannot be read: the caller then reads the auth table, and the config again only if it is mounted."""
    try:
        current = config_data(client, path)
    except MeshPkiError:
        return None
    return current if isinstance(current, dict) and "kubernetes_host" in current else None


def check_known(warn, client, path, user, known, mounted):
    """Refuse fields the server does not know (OpenBao would ignore them silently)."""
    if not mounted:
        if set(user) - known:
            warn("Cannot check yet whether the server knows %s: the auth method at '%s' is not enabled."
                 % (", ".join(sorted(set(user) - known)), path.rsplit("/", 1)[0]))
        return
    unknown = unknown_fields(client, path, user, known)
    if unknown is None:
        _warn_unlisted(warn, path, set(user) - known)
    else:
        refuse_unknown(unknown, path)


def disable_kubernetes_auth(client, mount, check_mode):
    """state=absent: disable the Kubernetes auth method at ``mount`` (its config, roles and tokens go with it);
    another auth type there is never disabled."""
    path = "auth/%s/config" % mount
    info = read_auth_method(client, mount)
    if info is not None and info.get("type") != METHOD:
        raise MeshPkiError("The auth mount '%s' is a %s auth method, not kubernetes; refusing to disable it "
                           "(nothing was changed)." % (mount, info.get("type")))
    before = {}
    if info is not None:
        before = {"auth_method": METHOD, "config": config_data(client, path) or {}}
    changed = info is not None
    if changed and not check_mode:
        # sys/auth/<mount> needs both capabilities; the error text quotes each name.
        client.request("DELETE", "sys/auth/%s" % mount, action="disable kubernetes auth method",
                       capability=frozenset(["delete", "sudo"]))
    return dict(changed=changed, mount=mount, kubernetes_auth_mount=mount, config={},
                diff=dict(before=before, after={}, before_header="auth/%s" % mount, after_header="auth/%s" % mount))


def ensure_kubernetes_auth(module):
    """vault_k8s_auth: enable the auth method at the mount if missing and write its config only when a field
    differs (or the reviewer JWT must be written: see reviewer_jwt_plan). Inputs (PEM, kubeconfig, host) are
    checked before the login. Returns the result with its diff (the JWT only as a placeholder)."""
    p = module.params
    mount = auth_mount(p)
    path = "auth/%s/config" % mount
    if p["state"] == "absent":
        return disable_kubernetes_auth(module.get_authenticated_client(), mount, module.check_mode)

    user = user_config(p, module.warn)
    client = module.get_authenticated_client()
    # Read: the mount (its type is checked), the config, and which fields the server knows. A Kubernetes config
    # read first answers for its mount too (only this auth method has kubernetes_host there): a re-run reads one
    # object, not the auth table as well; without one, the table says whether and what is mounted.
    current = kubernetes_config_if_there(client, path)
    if current is not None:
        mount_result = MountResult(mount, {"type": METHOD}, {"type": METHOD})
    else:
        mount_result = ensure_auth_method(client, mount, METHOD, check_mode=True)
        current = config_data(client, path) if mount_result.before is not None else None
    mounted = mount_result.before is not None
    exists = current is not None
    jwt_set = bool((current or {}).get(JWT_SET))
    known = BASE_CONFIG_FIELDS | set(current or {})
    check_known(module.warn, client, path, user, known, mounted)

    desired = desired_config(current, user)
    if not desired.get("kubernetes_host"):
        raise MeshPkiError("kubernetes_host is required: set it, or kubeconfig/context to take it from a cluster "
                           "entry.")
    if desired.get("disable_local_ca_jwt") and not pem_identity(desired.get("kubernetes_ca_cert")):
        raise MeshPkiError("disable_local_ca_jwt is true but there is no CA certificate: set kubernetes_ca_cert (PEM "
                           "or a file), or kubeconfig/context to a cluster entry with certificate-authority-data.")
    differences = config_differences(current, desired)

    jwt = p["token_reviewer_jwt"]
    mode = p["update_token_reviewer_jwt"]
    # Refuse a write that would drop a stored JWT before anything is written anywhere.
    reviewer_jwt_plan(exists, differences, jwt_set, CHECK_MODE_JWT if p["token_reviewer"] else jwt, mode)

    reviewer = None
    if p["token_reviewer"]:
        reviewer = ensure_token_reviewer(p, module.warn, module.check_mode)
        jwt = reviewer.jwt
        if jwt and jwt != CHECK_MODE_JWT:
            module.no_log_values.add(jwt)
    write, _reasons = reviewer_jwt_plan(exists, differences, jwt_set, jwt, mode,
                                        reviewer.secret_replaced if reviewer else False)
    send_jwt = bool(write and jwt)

    after_config = dict(desired)
    after_config[JWT_SET] = bool(jwt) if jwt is not None else jwt_set
    if not module.check_mode:
        if mount_result.changed:
            ensure_auth_method(client, mount, METHOD, check_mode=False, description=p["description"])
            check_known(module.warn, client, path, user, known, True)
        if write:
            payload = dict(desired)
            if send_jwt:
                payload["token_reviewer_jwt"] = jwt
            response = client.write(path, payload, action="write kubernetes auth config",
                                    capability=("create", "update"))
            for warning in (response or {}).get("warnings") or []:
                module.warn("Vault: %s" % warning)
            after_config = config_data(client, path) or after_config

    result = dict(changed=bool(mount_result.changed or write or (reviewer and reviewer.changes)), mount=mount,
                  kubernetes_auth_mount=mount, config=after_config, changed_fields=differences,
                  token_reviewer_jwt_written=send_jwt)
    before = {"auth_method": METHOD if mounted else None, "config": current or {}}
    after = {"auth_method": METHOD, "config": dict(after_config)}
    if send_jwt:
        after["config"]["token_reviewer_jwt"] = JWT_PLACEHOLDER
    if reviewer:
        result["token_reviewer"] = reviewer.as_dict()
        before["token_reviewer_objects"] = reviewer.before
        after["token_reviewer_objects"] = reviewer.after
    result["diff"] = dict(before=before, after=after, before_header=path, after_header=path)
    return result
