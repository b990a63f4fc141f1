# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The token reviewer on the Kubernetes side: the ServiceAccount Vault uses to call TokenReview, its
ClusterRoleBinding to ``system:auth-delegator`` and a ``kubernetes.io/service-account-token`` Secret whose token
becomes ``token_reviewer_jwt``, created or checked through the kubernetes client (dry run in check mode).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import time

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import (
    api_client,
    describe_api_error,
    is_api_exception,
    kubernetes_library,
)

TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
AUTH_DELEGATOR = "system:auth-delegator"
RBAC_GROUP = "rbac.authorization.k8s.io"
MANAGED_BY = {"app.kubernetes.io/managed-by": "meshpki.vault_ca"}
CHECK_MODE_JWT = "(token not known in check mode)"

# The suboptions of vault_k8s_auth's ``token_reviewer``.
TOKEN_REVIEWER_ARGSPEC = dict(
    create=dict(type="bool", default=True),
    namespace=dict(type="str", default="vault"),
    service_account=dict(type="str", default="vault-token-reviewer"),
    secret_name=dict(type="str"),
    cluster_role_binding=dict(type="str"),
    wait_timeout=dict(type="int", default=30),
)


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
        k8s_client = kubernetes_library("The kubernetes Python library is needed for token_reviewer (pip install "
                                        "kubernetes).").client
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
            if is_api_exception(e, 404):
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


def ensure_token_reviewer(params, warn, check_mode):
    """The token reviewer of ``params['token_reviewer']`` ensured on the cluster of the kubeconfig context (the
    ``kubeconfig``/``context`` options): a ReviewerResult with the JWT to write."""
    spec = params["token_reviewer"]
    return TokenReviewer.from_api_client(api_client(params, warn), reviewer_names(spec), create=spec["create"],
                                         check_mode=check_mode, wait_timeout=spec["wait_timeout"]).ensure()


def account_name(account):
    return ((account or {}).get("metadata") or {}).get("name")
