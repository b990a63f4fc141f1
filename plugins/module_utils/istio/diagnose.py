# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The guide's troubleshooting section: everything istiod's Vault Agent depends on, checked in order and reported
in words (module istio_ca_diagnose).

:func:`diagnose` takes the module - or anything with ``params``, ``connection()`` (a VaultConnection),
``get_authenticated_client()`` (a VaultClient) and ``warn(text)`` - and returns the module's result dict. Each check
ends as ``ok``, ``warning``, ``problem`` or ``skipped``; a finding never raises. Only invalid options raise
MeshPkiError (the module then fails).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError, describe_request_error
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import verify_bundle
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import (
    KNOWN_PREFIXES,
    TARGETS,
    apply_present,
    current_injection,
    custom_objects_api,
    describe_object,
    desired_state,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import (
    AGENT_READS,
    BUNDLE_FILES,
    InjectorError,
    bundle_secret_paths,
    render_like_the_agent,
    vault_paths_read,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import Manifest
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import (
    api_client,
    describe_api_error,
    kubernetes_library,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.issuers import read_default_issuer
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import (
    PemError,
    cert_info,
    load_private_key,
    public_key_matches,
    signature_error,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.auth.kubernetes import KubernetesAuth
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import read_secret
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import (
    mount_summary,
    read_auth_method,
    read_secrets_engine,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.policy import PolicyParseError, canonical_policy

# The checks, in the order they are reported.
CHECKS = ("vault_reachable", "vault_login", "mounts", "root_ca", "intermediate_ca", "intermediate_key", "policy",
          "kubernetes_auth", "role", "istiod_login", "bundle", "target")

# With trust_bundle_path: the root rotation's record, reported after root_ca.
ROTATION_CHECK = "root_rotation"

OK = "ok"
WARNING = "warning"
PROBLEM = "problem"
SKIPPED = "skipped"
ROOT_WARN_DAYS = 90

# What OpenBao / Vault answer a failed Kubernetes login with, and what it means.
LOGIN_HINTS = (
    ("service account name not authorized", "the role's bound_service_account_names does not include the token's "
     "service account"),
    ("namespace not authorized", "the role's bound_service_account_namespaces does not include the token's namespace"),
    ("invalid role name", "the role does not exist on this auth mount"),
    ("lookup failed", "Vault's TokenReview call to the Kubernetes API failed: check kubernetes_host, "
     "kubernetes_ca_cert and the reviewer JWT (it needs system:auth-delegator)"),
    ("permission denied", "the Kubernetes API refused the TokenReview or the token (expired, wrong audience, or the "
     "reviewer lacks system:auth-delegator)"),
    ("audience", "the token's audience is not the role's audience"),
)


class Findings(object):
    def __init__(self):
        self.checks = []

    def add(self, name, status, message):
        self.checks.append(dict(name=name, status=status, message=message))

    def ok(self, name, message):
        self.add(name, OK, message)

    def warn(self, name, message):
        self.add(name, WARNING, message)

    def problem(self, name, message):
        self.add(name, PROBLEM, message)

    def skip(self, name, why):
        self.add(name, SKIPPED, why)

    def of(self, status):
        return ["%s: %s" % (check["name"], check["message"]) for check in self.checks if check["status"] == status]

    def report(self):
        width = max([len(check["name"]) for check in self.checks] + [0])
        return ["%-8s %-*s %s" % (check["status"], width, check["name"], check["message"]) for check in self.checks]


def _cert_summary(cert):
    info = cert_info(cert)
    return dict((key, info[key]) for key in ("subject", "serial", "not_after", "days_left"))


class Diagnosis(object):
    """The checks of one run. ``module``: see the module docstring; its params are istio_ca_diagnose's."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.found = Findings()
        self.vault = {}
        self.certificates = {}
        self.annotations = None
        self.client = None
        self.istiod = None
        self.root = None
        self.intermediate = None
        self.rotation = None
        try:
            self.paths = bundle_secret_paths(self.params["intermediate_mount"], self.params["root_mount"],
                                             self.params["kv_mount"], self.params["kv_path"],
                                             self.params.get("trust_bundle_path"))
            self.policy_paths = vault_paths_read(self.params["intermediate_mount"], self.params["root_mount"],
                                                 self.params["kv_mount"], self.params["kv_path"],
                                                 self.params.get("trust_bundle_path"))
        except InjectorError as e:
            raise MeshPkiError("Invalid mount or path options: %s." % e)
        try:
            self.renew_before = to_seconds(self.params["renew_before"], "renew_before")
        except ValueError as e:
            raise MeshPkiError("Invalid renew_before: %s." % e)

    # ------------------------------------------------------------------------------------------ Vault server
    def server(self):
        conn = self.conn = self.module.connection()
        raw = conn.client()
        try:
            health = raw.adapter.request("GET", "/v1/sys/health", params={
                "standbyok": "true", "perfstandbyok": "true", "sealedcode": 200, "uninitcode": 200,
                "drsecondarycode": 200, "performancestandbycode": 200})
        except Exception as e:  # translated into the finding's words
            self.found.problem("vault_reachable", str(describe_request_error(e, "reach Vault at", "sys/health", None,
                                                                             conn)))
            return False
        health = health if isinstance(health, dict) else {}
        fields = ("version", "initialized", "sealed", "standby", "cluster_name")
        self.vault = dict((key, health.get(key)) for key in fields)
        where = "%s %s at %s" % ("Vault/OpenBao", health.get("version") or "", conn.url)
        if not health.get("initialized"):
            self.found.problem("vault_reachable", "%s is not initialised: run 'bao operator init' (or 'vault operator "
                                                  "init') and unseal it." % where)
            return False
        if health.get("sealed"):
            self.found.problem("vault_reachable", "%s is sealed: istiod's agent cannot log in or read anything until "
                                                  "it is unsealed ('bao operator unseal')." % where)
            return False
        self.found.ok("vault_reachable", "%s: initialised, unsealed, %s" % (
            where, "standby node (requests are forwarded to the active node)" if health.get("standby")
            else "active node"))
        return True

    def login(self):
        try:
            self.client = self.module.get_authenticated_client()
            self.client.read("auth/token/lookup-self", action="look up the token of")
        except MeshPkiError as e:
            self.found.problem("vault_login", "%s Fix the connection/auth options (url, token, auth_method...) or "
                                              "the VAULT_* variables." % e)
            return False
        self.found.ok("vault_login", "logged in with the auth options given")
        return True

    # ------------------------------------------------------------------------------------------ mounts and CAs
    def mounts(self):
        p = self.params
        wanted = ((p["root_mount"], "pki", None, "the root CA"),
                  (p["intermediate_mount"], "pki", None, "Istio's intermediate CA"),
                  (p["kv_mount"], "kv", "2", "the intermediate's key"))
        bad = []
        for path, kind, version, what in wanted:
            info = mount_summary(read_secrets_engine(self.client, path))
            if info is None:
                bad.append("no secrets engine at '%s/' (%s): the main playbook's %s step creates it" % (
                    path, what, "root CA" if what == "the root CA" else "intermediate CA"))
                continue
            have, have_version = info["type"], info.get("version")
            if have != kind or (version and have_version != version):
                bad.append("'%s/' is a %s%s mount, but %s needs %s%s" % (
                    path, have, " v" + have_version if have_version else "", what, kind, " v" + version if version
                    else "") + ("; the key is read at %s (KV v2 API)" % self.paths["ca-key.pem"] if kind == "kv"
                                else ""))
        mount = p["kubernetes_auth_mount"]
        auth = mount_summary(read_auth_method(self.client, mount))
        if auth is None:
            bad.append("no auth method at 'auth/%s/': istiod's agent cannot log in (the main playbook's Kubernetes "
                       "auth step enables it)" % mount)
        elif auth["type"] != "kubernetes":
            bad.append("'auth/%s/' is a %s auth method, not kubernetes" % (mount, auth["type"]))
        if bad:
            self.found.problem("mounts", "; ".join(bad) + ".")
            return False
        self.found.ok("mounts", "%s/ and %s/ are pki, %s/ is KV v2, auth/%s/ is kubernetes" % (
            p["root_mount"], p["intermediate_mount"], p["kv_mount"], mount))
        return True

    def default_issuer(self, check, which, mount, renders):
        """``(issuer, info, facts)`` for the default issuer of ``mount``, or Nones after reporting that there is
        none (``renders``: the files that then render empty)."""
        issuer = read_default_issuer(self.client, mount)
        if issuer is None:
            self.found.problem(check, "'%s' has no default issuer, so %s render(s) empty and istiod refuses the "
                                      "bundle. Run the main playbook (%s CA step)." % (mount, renders, which))
            return None, None, None
        info = _cert_summary(issuer.cert)
        self.certificates[which] = info
        facts = "%s, serial %s, expires %s (%d days left)" % (info["subject"], info["serial"], info["not_after"],
                                                              info["days_left"])
        return issuer, info, facts

    def root_ca(self):
        issuer, info, facts = self.default_issuer("root_ca", "root", self.params["root_mount"], "root-cert.pem")
        if issuer is None:
            return
        self.root = issuer
        if info["days_left"] < 0:
            self.found.problem("root_ca", "the root %s has EXPIRED: every workload certificate fails to verify. "
                                          "A new root means a new trust domain root for the whole mesh: plan a root "
                                          "rotation." % facts)
        elif not issuer.key_id:
            self.found.warn("root_ca", "%s has no key in Vault (an imported, offline root): the intermediate cannot be "
                                       "re-signed here." % facts)
        elif info["days_left"] < ROOT_WARN_DAYS:
            self.found.warn("root_ca", "%s: fewer than %d days left, plan the root rotation." % (facts, ROOT_WARN_DAYS))
        else:
            self.found.ok("root_ca", facts)

    def root_rotation(self):
        """The trust bundle and the root rotation's record (pki/rotation.py): the phase, both issuer ids, the
        earliest time of the next phase."""
        p = self.params
        secret = read_secret(self.client, p["kv_mount"], p["trust_bundle_path"])
        where = "%s/%s" % (p["kv_mount"], p["trust_bundle_path"])
        data = secret.data
        if not data.get("root-cert.pem"):
            self.found.problem(ROTATION_CHECK, "the trust bundle %s holds no root-cert.pem: root-cert.pem renders "
                                               "empty. Run the main playbook (root step)." % where)
            return
        phase = data.get("phase") or ""
        self.rotation = dict((name, data.get(name) or None) for name in (
            "phase", "old_issuer_id", "new_issuer_id", "trusted", "signer", "next_phase_at"))
        if not phase:
            self.found.ok(ROTATION_CHECK, "no root rotation; the trust bundle %s holds the root %s" % (
                where, data.get("trusted")))
            return
        text = "phase %s (root rotation): trusted %s, signing root %s, old root %s, new root %s" % (
            phase, data.get("trusted"), data.get("signer"), data.get("old_issuer_id"), data.get("new_issuer_id"))
        if data.get("next_phase_at") and phase in ("trust", "sign", "aborted"):
            text += ", next phase not before %s (run the playbook meshpki.vault_ca.rotate_root)" % data["next_phase_at"]
        self.found.ok(ROTATION_CHECK, text)

    def intermediate_ca(self):
        issuer, info, facts = self.default_issuer("intermediate_ca", "intermediate",
                                                  self.params["intermediate_mount"], "ca-cert.pem and cert-chain.pem")
        if issuer is None:
            return
        self.intermediate = issuer
        if self.root is not None and signature_error(issuer.cert, self.root.cert) is not None:
            self.found.problem("intermediate_ca", "the intermediate (%s) was not signed by the current root of '%s' "
                                                  "(%s): workloads would get certificates that do not chain to "
                                                  "root-cert.pem. Run the main playbook to re-issue it under this "
                                                  "root." % (facts, self.params["root_mount"],
                                                             self.certificates["root"]["subject"]))
        elif info["days_left"] < 0:
            self.found.problem("intermediate_ca", "the intermediate %s has EXPIRED: istiod issues certificates that "
                                                  "fail to verify. Run the main playbook to rotate it." % facts)
        elif info["days_left"] * 86400 < self.renew_before:
            self.found.warn("intermediate_ca", "%s: within renew_before (%s); the next run of the main playbook "
                                               "rotates it." % (facts, self.params["renew_before"]))
        else:
            self.found.ok("intermediate_ca", facts)

    def intermediate_key(self):
        p = self.params
        where = "%s/%s field %s" % (p["kv_mount"], p["kv_path"], p["kv_field"])
        if self.intermediate is None:
            self.found.skip("intermediate_key", "no intermediate certificate to compare %s with" % where)
            return
        secret = read_secret(self.client, p["kv_mount"], p["kv_path"])
        pem = secret.data.get(p["kv_field"])
        if not secret.version:
            self.found.problem("intermediate_key", "%s has no readable version: ca-key.pem renders empty. Run the main "
                                                   "playbook (intermediate CA step) to issue a key and certificate."
                               % where)
            return
        if not pem:
            fields = ", ".join(sorted(secret.data)) or "none"
            self.found.problem("intermediate_key", "%s (version %d) has no field '%s' (fields: %s): ca-key.pem renders "
                                                   "'<no value>'. Fix kv_field or the secret." % (
                                                       where, secret.version, p["kv_field"], fields))
            return
        try:
            key = load_private_key(pem)
        except PemError as e:
            self.found.problem("intermediate_key", "%s (version %d) is not a usable private key: %s." % (
                where, secret.version, e))
            return
        if not public_key_matches(self.intermediate.cert, key):
            self.found.problem("intermediate_key", "the key in %s (version %d) does not belong to the default issuer "
                                                   "of '%s' (serial %s): istiod would refuse ca-key.pem with "
                                                   "ca-cert.pem. Run the main playbook (it re-issues the intermediate "
                                                   "for the stored key), or restore the matching key version." % (
                                                       where, secret.version, p["intermediate_mount"],
                                                       self.certificates["intermediate"]["serial"]))
            return
        self.found.ok("intermediate_key", "%s (version %d) matches the intermediate certificate" % (
            where, secret.version))

    # ------------------------------------------------------------------------------------------ access
    def policy(self):
        name = self.params["policy_name"]
        body = self.client.read("sys/policies/acl/%s" % name, action="read the policy")
        if body is None:
            self.found.problem("policy", "the policy '%s' does not exist: istiod's token can read nothing. Run the "
                                         "main playbook (policy step)." % name)
            return
        text = (body.get("data") or body).get("policy") or ""
        try:
            rules = canonical_policy(text)
        except PolicyParseError as e:
            self.found.problem("policy", "the policy '%s' could not be parsed (%s)." % (name, e))
            return
        missing = [path for path in self.policy_paths if "read" not in (rules.get(path) or {}).get("capabilities", [])
                   and not any(_glob_grants(glob, path, settings) for glob, settings in rules.items())]
        extra = sorted(path for path in rules if path not in self.policy_paths)
        key_path = self.paths["ca-key.pem"]
        if key_path in missing:
            self.found.problem("policy", "the policy '%s' does not grant read on %s, so the agent cannot render "
                                         "ca-key.pem (403) and istiod never starts with Vault's CA. Re-run the main "
                                         "playbook, or add read on that path." % (name, key_path))
        elif missing:
            # <mount>/cert/ca and cert/ca_chain are unauthenticated endpoints of the PKI engine: the agent
            # renders them with any token, so a policy without them still works.
            self.found.warn("policy", "the policy '%s' does not grant read on %s; the PKI engine serves these without "
                                      "a token, so the agent still renders them, but the policy is not the one the "
                                      "main playbook writes." % (name, ", ".join(missing)))
        elif extra:
            self.found.warn("policy", "the policy '%s' grants more than the four reads istiod needs (also: %s)." % (
                name, ", ".join(extra)))
        else:
            self.found.ok("policy", "'%s' grants read on exactly the four paths: %s" % (name, ", ".join(
                self.policy_paths)))

    def kubernetes_auth(self):
        mount = self.params["kubernetes_auth_mount"]
        body = self.client.read("auth/%s/config" % mount, action="read the Kubernetes auth config")
        data = (body or {}).get("data") or {}
        if not data.get("kubernetes_host"):
            self.found.problem("kubernetes_auth", "auth/%s is not configured (no kubernetes_host): every login fails. "
                                                  "Run the main playbook (Kubernetes auth step) with "
                                                  "istio_vault_ca_k8s_host." % mount)
            return
        reviewer = "a reviewer JWT" if data.get("token_reviewer_jwt_set") else (
            "no reviewer JWT (the client's own token is used for TokenReview)" if data.get("disable_local_ca_jwt")
            else "no reviewer JWT (Vault uses its own pod's token when it runs in Kubernetes)")
        self.found.ok("kubernetes_auth", "auth/%s talks to %s with %s" % (mount, data["kubernetes_host"], reviewer))

    def role(self):
        p = self.params
        path = "auth/%s/role/%s" % (p["kubernetes_auth_mount"], p["role"])
        body = self.client.read(path, action="read the Kubernetes auth role")
        if body is None:
            self.found.problem("role", "%s does not exist: the agent's login fails with 'invalid role name'. Run the "
                                       "main playbook (role step)." % path)
            return
        data = body.get("data") or {}
        names = data.get("bound_service_account_names") or []
        namespaces = data.get("bound_service_account_namespaces") or []
        policies = data.get("token_policies") or data.get("policies") or []
        wrong = []
        if "*" not in names and p["service_account"] not in names:
            wrong.append("is bound to service account(s) %s, not %s" % (
                ", ".join(names) or "none", p["service_account"]))
        if "*" not in namespaces and p["service_account_namespace"] not in namespaces:
            wrong.append("is bound to namespace(s) %s, not %s" % (
                ", ".join(namespaces) or "none", p["service_account_namespace"]))
        if p["policy_name"] not in policies:
            wrong.append("gives the policies %s, not %s" % (", ".join(policies) or "none", p["policy_name"]))
        if wrong:
            self.found.problem("role", "%s %s: istiod's agent %s. Re-run the main playbook (role step)." % (
                path, "; ".join(wrong), "cannot log in" if len(wrong) > 1 or "policies" not in wrong[0]
                else "logs in but cannot read the CA"))
            return
        self.found.ok("role", "%s: %s/%s gets the policy %s" % (
            path, p["service_account_namespace"], p["service_account"], p["policy_name"]))

    def istiod_jwt(self):
        """istiod's service-account token from istiod_jwt, istiod_jwt_file or a TokenRequest; None after reporting
        why there is none."""
        p = self.params
        jwt = p["istiod_jwt"]
        if p["istiod_jwt_file"]:
            try:
                with open(p["istiod_jwt_file"]) as f:
                    jwt = f.read().strip()
            except (IOError, OSError) as e:
                raise MeshPkiError("Cannot read istiod_jwt_file '%s': %s." % (p["istiod_jwt_file"], e.strerror or e))
        if p["istiod_request_jwt"]:
            return self.request_jwt()
        if not jwt:
            self.found.skip("istiod_login", "no istiod_jwt given; pass one (kubectl -n %s create token %s) or set "
                                            "istiod_request_jwt to prove the login as istiod" % (
                                                p["service_account_namespace"], p["service_account"]))
        return jwt or None

    def istiod_login(self):
        """Log in as istiod's agent does: Kubernetes auth at kubernetes_auth_mount with the role and the JWT."""
        p = self.params
        jwt = self.istiod_jwt()
        if jwt is None:
            return
        login = KubernetesAuth(dict(auth_mount=p["kubernetes_auth_mount"], role_id=p["role"], jwt=jwt))
        login.validate()
        path = "auth/%s/login" % login.mount
        raw = self.conn.client()
        try:
            auth = login.authenticate(raw, self.conn)
        except MeshPkiError as e:  # translated into the finding's words
            text = str(e)
            hints = [hint for needle, hint in LOGIN_HINTS if needle in text.lower()]
            self.found.problem("istiod_login", "%s%s" % (text, (" Meaning: %s." % hints[0]) if hints else ""))
            return
        policies = auth.get("token_policies") or auth.get("policies") or []
        self.istiod = VaultClient(raw, self.conn)  # authenticate() gave raw istiod's token
        if p["policy_name"] not in policies:
            self.found.problem("istiod_login", "istiod logged in at %s with role %s, but its token holds %s, not %s: "
                                               "every read fails. Fix the role's token_policies." % (
                                                   path, p["role"], ", ".join(policies) or "no policy",
                                                   p["policy_name"]))
            return
        metadata = auth.get("metadata") or {}
        self.found.ok("istiod_login", "logged in at %s as %s/%s, token policies %s, ttl %ss" % (
            path, metadata.get("service_account_namespace", "?"), metadata.get("service_account_name", "?"),
            ", ".join(policies), auth.get("lease_duration", "?")))

    def request_jwt(self):
        """A 10-minute token for istiod's service account (TokenRequest), or None after reporting why not."""
        p = self.params
        what = "a token for the service account '%s/%s'" % (p["service_account_namespace"], p["service_account"])
        try:
            api = api_client(p, self.module.warn)  # imports the kubernetes library, or says it is missing
            core = kubernetes_library().client.CoreV1Api(api)
            answer = core.create_namespaced_service_account_token(
                p["service_account"], p["service_account_namespace"], {"spec": {"expirationSeconds": 600}},
                _request_timeout=60)
        except MeshPkiError as e:
            self.found.problem("istiod_login", "cannot request %s: %s" % (what, e))
            return None
        except Exception as e:  # ApiException and transport errors, translated in one place
            self.found.problem("istiod_login", str(describe_api_error(e, "request", what)))
            return None
        return answer.status.token

    def revoke_istiod_token(self):
        if self.istiod is None:
            return
        try:
            self.istiod.request("POST", "auth/token/revoke-self", "revoke the diagnose login's token", "update")
        except MeshPkiError as e:
            self.module.warn("The token created by the login as istiod could not be revoked (%s); it expires with the "
                             "role's ttl." % e)

    def bundle(self):
        reader, who = self.istiod, "istiod's token"
        if reader is None:
            reader, who = self.client, "this module's token"
        texts, denied = {}, []
        for name in BUNDLE_FILES:
            try:
                body = reader.read(self.paths[name], action="read %s for %s" % (AGENT_READS[name][0], name))
            except MeshPkiError as e:
                if e.details.get("status") == 403:
                    denied.append("%s (%s)" % (name, self.paths[name]))
                    texts[name] = None
                    continue
                raise
            texts[name] = render_like_the_agent(name, body, self.params["kv_field"],
                                                self.params.get("trust_bundle_path") is not None)
        if denied:
            self.found.problem("bundle", "%s may not read %s: the agent would fail at init with 403. Fix the policy."
                               % (who, ", ".join(denied)))
            return
        # verify_bundle reports bad PEM as failed checks; it raises PemError only without cryptography, which the
        # module requires
        report = verify_bundle(texts["ca-cert.pem"], texts["ca-key.pem"], texts["cert-chain.pem"],
                               texts["root-cert.pem"])
        failed = [check for check in report["checks"] if not check["passed"] and not check.get("skipped")]
        if failed:
            self.found.problem("bundle", "rendered with %s, istiod would reject the bundle: %s." % (
                who, "; ".join("%s: %s" % (check["name"], check["detail"]) for check in failed)))
            return
        self.found.ok("bundle", "rendered with %s, the four files pass all %d checks istiod's loading needs" % (
            who, len(report["checks"])))

    # ------------------------------------------------------------------------------------------ target
    def target(self):
        p = self.params
        if not p["target"]:
            self.found.skip("target", "no target given (ControlPlane, IstioOperator or Helm values)")
            return
        target = TARGETS[p["target"]]
        options = dict(state="present", intermediate_mount=p["intermediate_mount"], root_mount=p["root_mount"],
                       kv_mount=p["kv_mount"], kv_path=p["kv_path"], kv_field=p["kv_field"], role=p["role"],
                       secret_volume_path=p["secret_volume_path"], annotation_prefix=p["annotation_prefix"],
                       agent_init_first=p["agent_init_first"], agent_pre_populate_only=p["agent_pre_populate_only"],
                       extra_env=p["extra_env"], extra_annotations=None,
                       kubernetes_auth_mount=p["kubernetes_auth_mount"], vault_namespace=self.conn.namespace,
                       trust_bundle_path=p.get("trust_bundle_path"))
        desired = desired_state(options)
        if p["path"]:
            manifest = Manifest.load(p["path"], max_size=p["max_manifest_size"])
            index = manifest.find(target, p["target_name"], p["target_namespace"])
            doc = manifest.docs[index] if index is not None else {}
            what = "%s in %s" % (target.kind or "the Helm values", p["path"])
        else:
            if not (p["target_name"] and p["target_namespace"]):
                raise MeshPkiError("target in live mode needs target_name and target_namespace (or set path for a "
                                   "manifest file).")
            what = describe_object(target, p["target_namespace"], p["target_name"])
            api = custom_objects_api(p, self.module.warn)
            try:
                doc = api.get_namespaced_custom_object(target.group, target.version, p["target_namespace"],
                                                       target.plural, p["target_name"])
            except Exception as e:  # ApiException and transport errors, translated in one place
                self.found.problem("target", str(describe_api_error(e, "read", what)))
                return
        annotations, env = current_injection(doc, target)
        after, _info = apply_present(doc, target, desired)
        missing = sorted(key for key in desired.annotations if key not in annotations)
        different = sorted(key for key in desired.annotations if key in annotations
                           and annotations[key] != desired.annotations[key])
        others = [prefix for prefix in KNOWN_PREFIXES if prefix != desired.prefix]
        other_prefix = sorted(key for key in annotations if any(key.startswith(o + "/") for o in others))
        self.annotations = dict(missing=missing, different=different, other_prefix=other_prefix)
        env_values = dict((entry.get("name"), entry.get("value")) for entry in env)
        wrong_env = [entry["name"] for entry in desired.env if str(env_values.get(entry["name"])) != str(
            entry["value"])]
        words = []
        if missing:
            words.append("missing annotations %s" % ", ".join(missing))
        if different:
            words.append("annotations that differ from what these Vault paths need: %s" % ", ".join(different))
        if wrong_env:
            words.append("env %s not set to %s" % (", ".join(wrong_env), ", ".join(
                "%s=%s" % (entry["name"], entry["value"]) for entry in desired.env if entry["name"] in wrong_env)))
        if not words and after != doc:
            words.append("other differences from what tsb_controlplane_annotations would write")
        if words:
            self.found.problem("target", "%s has %s: istiod starts without Vault's CA (self-signed) or its agent "
                                         "renders the wrong files. Run the main playbook (ControlPlane step)." % (
                                             what, "; ".join(words)))
        elif other_prefix:
            self.found.warn("target", "%s is as expected, but also carries %d annotation(s) under another injector "
                                      "prefix (%s): the cluster's injector reads only its own prefix; remove the "
                                      "stale ones." % (what, len(other_prefix), ", ".join(others)))
        else:
            self.found.ok("target", "%s carries the %d injector annotations and ROOT_CA_DIR=%s" % (
                what, len(desired.annotations), desired.secret_volume_path))

    # ------------------------------------------------------------------------------------------ run
    def run(self):
        steps = [("vault_login", self.login), ("mounts", self.mounts), ("root_ca", self.root_ca)]
        if self.params.get("trust_bundle_path") is not None:
            steps.append((ROTATION_CHECK, self.root_rotation))
        steps += [("intermediate_ca", self.intermediate_ca), ("intermediate_key", self.intermediate_key),
                  ("policy", self.policy), ("kubernetes_auth", self.kubernetes_auth), ("role", self.role),
                  ("istiod_login", self.istiod_login), ("bundle", self.bundle)]
        blocked = None if self.server() else "Vault is not usable (see vault_reachable)"
        try:
            for name, step in steps:
                if blocked:
                    self.found.skip(name, blocked)
                    continue
                try:
                    result = step()
                except MeshPkiError as e:
                    self.found.problem(name, str(e))
                    result = None
                if name == "vault_login" and result is False:
                    blocked = "no Vault session (see vault_login)"
        finally:
            self.revoke_istiod_token()
        try:
            self.target()
        except MeshPkiError as e:
            self.found.problem("target", str(e))


def _glob_grants(glob, path, settings):
    """True when a policy path with a trailing ``*`` (Vault's prefix glob) grants read on ``path``."""
    return glob.endswith("*") and path.startswith(glob[:-1]) and "read" in (settings or {}).get("capabilities", [])


def diagnose(module):
    """Run every check; the module's result dict (never changed)."""
    path = module.params["istiod_jwt_file"]
    if path and not os.path.isfile(path):
        raise MeshPkiError("istiod_jwt_file '%s' is not a file: give the path of a file holding istiod's "
                           "service-account token, or pass it as istiod_jwt." % path)
    diagnosis = Diagnosis(module)
    diagnosis.run()
    found = diagnosis.found
    problems = found.of(PROBLEM)
    result = dict(changed=False, healthy=not problems, problems=problems, notices=found.of(WARNING),
                  report=found.report(), checks=found.checks, vault=diagnosis.vault,
                  certificates=diagnosis.certificates)
    if diagnosis.annotations is not None:
        result["annotations"] = diagnosis.annotations
    if diagnosis.rotation is not None:
        result["root_rotation"] = diagnosis.rotation
    return result
