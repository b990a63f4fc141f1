# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""istio_ca_verify: gather the four files istiod reads (a directory, the PEM options, or Vault read as the injected
agent reads and renders them - optionally with a token holding only istiod's policy), verify them
(:func:`istio.bundle.verify_bundle`) and turn the report into the module's result.

:func:`verify_ca_bundle` is the whole task; ``module`` is anything with ``params``, ``warn()`` and, for
``vault_paths``, ``get_authenticated_client()``. A bundle that fails a check raises :class:`BundleInvalid`, whose
details are the whole result (the report stays in the failed task's result)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import (
    parse_expected_roots,
    read_bundle_dir,
    verify_bundle,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import (
    AGENT_READS,
    BUNDLE_FILES,
    InjectorError,
    bundle_secret_paths,
    normalize_vault_path,
    render_like_the_agent,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import PemError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.policy import (
    PolicyParseError,
    canonical_policy,
    grants,
    merge_policies,
)

# The PEM option of each file (the module's second input).
PEM_OPTIONS = dict((("ca-cert.pem", "ca_cert_pem"), ("ca-key.pem", "ca_key_pem"),
                    ("cert-chain.pem", "cert_chain_pem"), ("root-cert.pem", "root_cert_pem")))
WARN_DAYS = 30
NO_POLICY = dict(policy_check=None, policy_rules={})


class BundleInvalid(MeshPkiError):
    """At least one check failed; ``details`` is the module result (valid, checks, failed_checks, ...)."""


def read_policy(client, policy, required):
    """The canonical rules of ``policy``; None when this token may not read it and ``required`` is false."""
    try:
        found = client.read("sys/policies/acl/%s" % policy, action="read the policy given in read_with_policy")
    except MeshPkiError as e:
        if e.details.get("status") != 403:
            raise
        if not required:  # this token may not read policies: the token probe will tell
            return None
        raise MeshPkiError("policy_check=rules: this token may not read the policy 'sys/policies/acl/%s', so its "
                           "rules cannot be checked. Give the task a token with 'read' on that path, or use "
                           "policy_check=token. Nothing was written." % policy)
    if found is None:
        raise MeshPkiError("read_with_policy: the policy '%s' does not exist in Vault, so a token holding it could "
                           "read nothing. Create it first (meshpki.vault_ca.vault_policy) or fix the name. Nothing "
                           "was read." % policy)
    text = (found.get("data") or {}).get("policy") or ""
    try:
        return canonical_policy(text)
    except PolicyParseError as e:
        if not required:
            return None
        raise MeshPkiError("policy_check=rules: the policy '%s' is outside the policy language understood here (%s); "
                           "use policy_check=token to let Vault evaluate it." % (policy, e))


def default_policy(client):
    """The rules of the policy ``default`` every token of the auth role also holds ({} when unreadable)."""
    try:
        found = client.read("sys/policies/acl/default", action="read the policy 'default'")
        return canonical_policy(((found or {}).get("data") or {}).get("policy") or "")
    except (MeshPkiError, PolicyParseError):
        return {}


def check_policy_rules(client, policy, paths, required):
    """Every path the templates read must be granted 'read' by ``policy`` (plus ``default``): {path: rule}."""
    rules = read_policy(client, policy, required)
    if rules is None:
        return {}
    merged = merge_policies(rules, default_policy(client))
    granted, missing = {}, []
    for name in BUNDLE_FILES:
        allowed, rule, capabilities = grants(merged, paths[name], "read")
        if allowed:
            granted[paths[name]] = rule
        elif rule is None:
            missing.append("'%s' (%s, %s): no rule of the policy matches it"
                           % (paths[name], name, AGENT_READS[name][0]))
        else:
            missing.append("'%s' (%s, %s): the rule 'path \"%s\"' decides, with capabilities %s" % (
                paths[name], name, AGENT_READS[name][0], rule, capabilities))
    if missing:
        raise MeshPkiError("read_with_policy: the policy '%s' does not grant 'read' on %d path(s) istiod's agent "
                           "reads, so the agent could not render the bundle: %s. Grant read on exactly these paths "
                           "(meshpki.vault_ca.vault_policy with the istio_ca_policy_rules filter). No token was "
                           "created." % (policy, len(missing), "; ".join(missing)))
    return granted


def check_auth_role(client, policy, auth_role, required):
    try:
        mount = normalize_vault_path(auth_role["kubernetes_auth_mount"], "auth_role.kubernetes_auth_mount")
        name = normalize_vault_path(auth_role["name"], "auth_role.name")
    except InjectorError as e:
        raise MeshPkiError("Invalid auth_role: %s." % e)
    path = "auth/%s/role/%s" % (mount, name)
    try:
        role = client.read(path, action="read the auth role istiod logs in with")
    except MeshPkiError as e:
        if e.details.get("status") == 403 and not required:
            return
        raise
    if role is None:
        raise MeshPkiError("auth_role: '%s' does not exist, so istiod cannot log in. Create it "
                           "(meshpki.vault_ca.vault_k8s_role) or fix auth_role." % path)
    data = role.get("data") or {}
    policies = data.get("token_policies") or data.get("policies") or []
    if policy not in policies:
        raise MeshPkiError("auth_role: '%s' hands out the policies %s, not '%s': istiod's token would not hold the "
                           "policy checked here. Add it to the role's token_policies." % (path, policies, policy))


def read_bundle(client, paths, kv_field, trust_bundle=False):
    texts, sources = {}, {}
    for name in BUNDLE_FILES:
        what = AGENT_READS[name][0]
        body = client.read(paths[name], action="read %s for %s" % (what, name))
        texts[name] = render_like_the_agent(name, body, kv_field, trust_bundle)
        sources[name] = "vault:%s" % paths[name] + ("" if body is not None else " (not found)")
    return texts, sources


def read_with_a_token_of(module, client, policy, paths, kv_field, trust_bundle=False):
    """The full probe: a token holding only ``policy`` (and default) reads the bundle, then revokes itself."""
    created = client.write("auth/token/create", {
        "policies": [policy], "ttl": "60s", "explicit_max_ttl": "60s", "num_uses": len(BUNDLE_FILES) + 1,
        "renewable": False, "display_name": "meshpki-istio-ca-verify"},
        action="create a token with policy '%s' to read as istiod would" % policy, capability="update")
    own = client.hvac.token
    client.hvac.token = created["auth"]["client_token"]
    try:
        return read_bundle(client, paths, kv_field, trust_bundle)
    finally:
        try:  # its last use; revoke-self is in the default policy every such token holds
            client.write("auth/token/revoke-self", action="revoke the token created to read as istiod")
        except MeshPkiError as e:
            module.warn("The token created to read as istiod could not be revoked (%s); it expires within 60 seconds."
                        % e)
        client.hvac.token = own


def read_from_vault(module, options):
    """``(texts, sources, policy_check, policy_rules)``."""
    try:
        paths = bundle_secret_paths(options["intermediate_mount"], options["root_mount"], options["kv_mount"],
                                    options["kv_path"], options.get("trust_bundle_path"))
    except InjectorError as e:
        raise MeshPkiError("Invalid vault_paths: %s." % e)
    client = module.get_authenticated_client()
    policy, mode = module.params["read_with_policy"], module.params["policy_check"]
    bundle = options.get("trust_bundle_path") is not None
    if not policy:
        return read_bundle(client, paths, options["kv_field"], bundle) + (None, {})
    rules = check_policy_rules(client, policy, paths, required=mode == "rules")
    if module.params["auth_role"]:
        check_auth_role(client, policy, module.params["auth_role"], required=mode == "rules")
    if mode == "rules":
        return read_bundle(client, paths, options["kv_field"], bundle) + (mode, rules)
    return read_with_a_token_of(module, client, policy, paths, options["kv_field"], bundle) + (mode, rules)


def gather(module):
    """``(source, texts, file_names, sources, description, policy)``; policy: the policy_check result keys."""
    params = module.params
    if params["path"]:
        try:
            texts, names = read_bundle_dir(params["path"])
        except PemError as e:
            raise MeshPkiError("Cannot read the CA bundle: %s." % e)
        sources = dict((name, "%s/%s" % (params["path"].rstrip("/"), name) if texts[name] is not None
                        else "%s/%s (missing)" % (params["path"].rstrip("/"), name)) for name in BUNDLE_FILES)
        return "directory", texts, names, sources, "the directory '%s'" % params["path"], NO_POLICY
    if params["vault_paths"] is not None:
        texts, sources, mode, rules = read_from_vault(module, params["vault_paths"])
        description = "Vault (%s)" % ", ".join(sources[name] for name in BUNDLE_FILES)
        return "vault", texts, None, sources, description, dict(policy_check=mode, policy_rules=rules)
    texts = dict((name, params[option]) for name, option in PEM_OPTIONS.items())
    sources = dict((name, option) for name, option in PEM_OPTIONS.items())
    return "pem", texts, None, sources, "the PEM options", NO_POLICY


def min_days_check(report, minimum):
    days = report["days_left"]
    if days is None:
        return dict(name="min_days_left", passed=False, skipped=True,
                    detail="not run: no certificate parsed (see the checks above)")
    if days < minimum:
        return dict(name="min_days_left", passed=False,
                    detail="the bundle expires in %d day(s), fewer than min_days_left=%d: rotate the intermediate "
                           "(or the root) now" % (days, minimum))
    return dict(name="min_days_left", passed=True,
                detail="%d day(s) left, at least min_days_left=%d" % (days, minimum))


def failure_message(description, checks):
    failed = [check for check in checks if not check["passed"] and not check.get("skipped")]
    skipped = [check["name"] for check in checks if check.get("skipped")]
    msg = "The Istio CA bundle from %s would break istiod or the mesh - %d check(s) failed: %s" % (
        description, len(failed), "; ".join("%s: %s" % (check["name"], check["detail"]) for check in failed))
    if skipped:
        msg += ". Not run because of these failures: %s" % ", ".join(skipped)
    return msg


def verify_ca_bundle(module):
    """The result of istio_ca_verify for ``module.params``; BundleInvalid when a check fails."""
    params = module.params
    try:  # before anything is read (or a token created): bad input fails first
        expected = parse_expected_roots(params.get("expect_roots"))
    except PemError as e:
        raise MeshPkiError("Invalid expect_roots: %s. Nothing was read." % e)
    source, texts, names, sources, description, policy = gather(module)
    try:
        report = verify_bundle(texts["ca-cert.pem"], texts["ca-key.pem"], texts["cert-chain.pem"],
                               texts["root-cert.pem"], file_names=names, expect_roots=expected)
    except PemError as e:
        raise MeshPkiError("Cannot verify the CA bundle from %s: %s." % (description, e))
    checks = list(report["checks"])
    if params["min_days_left"] is not None:
        checks.append(min_days_check(report, params["min_days_left"]))
    failed = [check["name"] for check in checks if not check["passed"]]
    result = dict(
        changed=False, valid=not failed, failed_checks=failed, checks=checks, source=source, sources=sources,
        certificates=report["certificates"], chain_path=report["path"], chain_root=report["chain_root"],
        key_info=report["key"],
        days_left=report["days_left"], **policy
    )
    if failed:
        raise BundleInvalid(failure_message(description, checks), **result)
    if report["days_left"] is not None and report["days_left"] < WARN_DAYS and params["min_days_left"] is None:
        module.warn("The Istio CA bundle from %s expires in %d day(s): plan the rotation."
                    % (description, report["days_left"]))
    return result
