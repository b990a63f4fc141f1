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
import time
import traceback

from ansible_collections.meshpki.vault_ca.plugins.module_utils._durations import to_seconds
from ansible_collections.meshpki.vault_ca.plugins.module_utils._errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils._kube_client import (
    ApiException,
    describe_api_error,
)

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


# ------------------------------------------------------------------------ token reviewer (k8s)

TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
AUTH_DELEGATOR = "system:auth-delegator"
RBAC_GROUP = "rbac.authorization.k8s.io"
MANAGED_BY = {"app.kubernetes.io/managed-by": "meshpki.vault_ca"}
CHECK_MODE_JWT = "(token not known in check mode)"


def reviewer_names(spec):
    """Namespace and object names of the token reviewer, defaults filled in."""
    namespace, account = spec["namespace"], spec["service_account"]
    return dict(namespace=namespace, service_account=account,
                secret_name=spec.get("secret_name") or "%s-token" % account,
                cluster_role_binding=spec.get("cluster_role_binding") or "%s-%s-auth-delegator" % (namespace, account))


class ReviewerResult(object):
    def __init__(self, names):
        self.names = names
        self.changes = []
        self.jwt = None
        self.secret_replaced = False
        self.before = []
        self.after = []

    def as_dict(self):
        return dict(self.names, changes=list(self.changes))


class TokenReviewer(object):
    """Ensure (or, with create=False, only find) the reviewer's ServiceAccount, its
    ClusterRoleBinding to system:auth-delegator and its token Secret, and read the token.

    ``core`` and ``rbac`` are CoreV1Api and RbacAuthorizationV1Api; ``to_dict`` turns a client
    model into the API's JSON shape. In check mode creations are sent with ``dryRun=All`` (the
    server validates them, stores nothing) and nothing is deleted or replaced."""

    def __init__(self, core, rbac, to_dict, names, create=True, check_mode=False, wait_timeout=30,
                 sleep=time.sleep, clock=time.monotonic):
        self.core, self.rbac, self.to_dict = core, rbac, to_dict
        self.names = names
        self.create = create
        self.check_mode = check_mode
        self.wait_timeout = wait_timeout
        self.sleep, self.clock = sleep, clock
        self.result = ReviewerResult(names)

    @classmethod
    def from_api_client(cls, api, names, **kwargs):
        if k8s_client is None:
            raise MeshPkiError("The kubernetes Python library is needed for token_reviewer (pip install kubernetes).")
        return cls(k8s_client.CoreV1Api(api), k8s_client.RbacAuthorizationV1Api(api), api.sanitize_for_serialization,
                   names, **kwargs)

    # -- plumbing
    def _call(self, action, what, method, *args, **kwargs):
        try:
            return self.to_dict(method(*args, **kwargs))
        except Exception as e:  # ApiException and transport errors, translated in one place
            error = describe_api_error(e, action, what)
            if action == "create" and error.details.get("status") == 404 and self.names["namespace"] in str(e):
                error = MeshPkiError("%s Create the namespace first, or set token_reviewer.namespace to an existing "
                                     "one." % error, **error.details)
            raise error

    def _get(self, what, method, *args):
        try:
            return self.to_dict(method(*args))
        except Exception as e:
            if ApiException is not None and isinstance(e, ApiException) and e.status == 404:
                return None
            raise describe_api_error(e, "read", what)

    def _dry_run(self):
        return {"dry_run": "All"} if self.check_mode else {}

    def _need_create(self, what):
        if not self.create:
            raise MeshPkiError("%s is missing and token_reviewer.create is false: create it, or set "
                               "token_reviewer.create to true (nothing was changed)." % what)

    def _note(self, exists_before, what):
        if exists_before:
            self.result.before.append(what)
        self.result.after.append(what)

    # -- the three objects
    def ensure(self):
        account = self._service_account()
        self._binding()
        secret = self._secret(account)
        if secret is None:  # check mode, Secret to be created: its token does not exist yet
            self.result.jwt = CHECK_MODE_JWT
        else:
            self.result.jwt = self._token(secret)
        return self.result

    def _service_account(self):
        ns, name = self.names["namespace"], self.names["service_account"]
        what = "ServiceAccount %s/%s" % (ns, name)
        account = self._get(what, self.core.read_namespaced_service_account, name, ns)
        self._note(account is not None, what)
        if account is None:
            self._need_create(what)
            body = {"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": name, "namespace": ns, "labels": dict(MANAGED_BY)}}
            account = self._call("create", what, self.core.create_namespaced_service_account, ns, body,
                                 **self._dry_run())
            self.result.changes.append("created " + what)
        return account

    def _subject(self):
        return {"kind": "ServiceAccount", "name": self.names["service_account"], "namespace": self.names["namespace"]}

    def _binding(self):
        name = self.names["cluster_role_binding"]
        what = "ClusterRoleBinding %s" % name
        subject = self._subject()
        binding = self._get(what, self.rbac.read_cluster_role_binding, name)
        self._note(binding is not None, what)
        if binding is None:
            self._need_create(what)
            body = {"apiVersion": "%s/v1" % RBAC_GROUP, "kind": "ClusterRoleBinding",
                    "metadata": {"name": name, "labels": dict(MANAGED_BY)},
                    "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": AUTH_DELEGATOR},
                    "subjects": [subject]}
            self._call("create", what, self.rbac.create_cluster_role_binding, body, **self._dry_run())
            self.result.changes.append("created %s to ClusterRole %s" % (what, AUTH_DELEGATOR))
            return
        role_ref = binding.get("roleRef") or {}
        if (role_ref.get("kind"), role_ref.get("name")) != ("ClusterRole", AUTH_DELEGATOR):
            raise MeshPkiError("%s exists but binds %s %s, not ClusterRole %s; a binding's roleRef cannot change. Set "
                               "token_reviewer.cluster_role_binding to another name (nothing was changed)."
                               % (what, role_ref.get("kind"), role_ref.get("name"), AUTH_DELEGATOR))
        subjects = binding.get("subjects") or []
        if any(dict((k, s.get(k)) for k in subject) == subject for s in subjects):
            return
        if not self.create:
            raise MeshPkiError("%s does not bind ServiceAccount %s/%s and token_reviewer.create is false (nothing "
                               "was changed)." % (what, subject["namespace"], subject["name"]))
        binding["subjects"] = subjects + [subject]
        self._call("update", what, self.rbac.replace_cluster_role_binding, name, binding, **self._dry_run())
        self.result.changes.append("added ServiceAccount %s/%s to %s" % (subject["namespace"], subject["name"], what))

    def _secret(self, account):
        ns, name = self.names["namespace"], self.names["secret_name"]
        what = "Secret %s/%s" % (ns, name)
        secret = self._get(what, self.core.read_namespaced_secret, name, ns)
        self._note(secret is not None, what)
        if secret is not None:
            annotations = (secret.get("metadata") or {}).get("annotations") or {}
            if secret.get("type") != TOKEN_SECRET_TYPE or annotations.get(SA_NAME_ANNOTATION) != account_name(account):
                raise MeshPkiError("%s exists but is not a %s Secret of ServiceAccount %s (type %s, for %s). Set "
                                   "token_reviewer.secret_name to another name (nothing was changed)."
                                   % (what, TOKEN_SECRET_TYPE, account_name(account), secret.get("type"),
                                      annotations.get(SA_NAME_ANNOTATION) or "no ServiceAccount"))
            uid = annotations.get(SA_UID_ANNOTATION)
            account_uid = (account.get("metadata") or {}).get("uid")
            if not (uid and account_uid and uid != account_uid):
                return secret
            # The ServiceAccount was deleted and created again: the Secret's token is dead.
            if not self.create:
                raise MeshPkiError("%s holds the token of an earlier ServiceAccount %s/%s (uid %s, now %s), which "
                                   "Kubernetes no longer accepts; token_reviewer.create is false (nothing was "
                                   "changed)." % (what, ns, account_name(account), uid, account_uid))
            if not self.check_mode:
                self._call("delete", what, self.core.delete_namespaced_secret, name, ns)
            self.result.changes.append("deleted %s (its token belonged to an earlier ServiceAccount)" % what)
        self._need_create(what)
        body = {"apiVersion": "v1", "kind": "Secret", "type": TOKEN_SECRET_TYPE,
                "metadata": {"name": name, "namespace": ns, "labels": dict(MANAGED_BY),
                             "annotations": {SA_NAME_ANNOTATION: self.names["service_account"]}}}
        created = self._call("create", what, self.core.create_namespaced_secret, ns, body, **self._dry_run())
        self.result.changes.append("created " + what)
        self.result.secret_replaced = True
        return None if self.check_mode else created

    def _token(self, secret):
        """The token the token controller put into the Secret, waiting for it (it is written by a
        separate update after the create) at most wait_timeout seconds."""
        ns, name = self.names["namespace"], self.names["secret_name"]
        what = "Secret %s/%s" % (ns, name)
        deadline = self.clock() + self.wait_timeout
        delay = 0.1
        while True:
            token = ((secret or {}).get("data") or {}).get("token")
            if token:
                try:
                    return base64.b64decode(token).decode("utf-8").strip()
                except (ValueError, TypeError, UnicodeDecodeError):
                    raise MeshPkiError("The token in %s is not base64 text." % what)
            if self.check_mode:
                return CHECK_MODE_JWT
            if self.clock() >= deadline:
                raise MeshPkiError(
                    "Timed out after %ss waiting for Kubernetes to put a token into %s. Its token controller "
                    "(kube-controller-manager) fills %s Secrets of existing ServiceAccounts: check that it runs and "
                    "that ServiceAccount %s/%s exists, or raise token_reviewer.wait_timeout."
                    % (self.wait_timeout, what, TOKEN_SECRET_TYPE, ns, self.names["service_account"]))
            self.sleep(delay)
            delay = min(delay * 2, 1.0)
            secret = self._get(what, self.core.read_namespaced_secret, name, ns)
            if secret is None:
                raise MeshPkiError("%s disappeared while waiting for its token: Kubernetes deletes token Secrets "
                                   "whose ServiceAccount is gone. Check ServiceAccount %s/%s and run again."
                                   % (what, ns, self.names["service_account"]))


def account_name(account):
    return ((account or {}).get("metadata") or {}).get("name")
