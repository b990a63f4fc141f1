#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: vault_k8s_auth
short_description: Enable and configure the Kubernetes auth method of Vault or OpenBao idempotently
version_added: 0.1.0
description:
  - Ensures the Kubernetes auth method is enabled at O(mount) and that its configuration
    (C(auth/<mount>/config)) holds the API server address, its CA certificate, the token reviewer JWT and the
    other settings given - the guide's C(vault auth enable kubernetes) and C(vault write auth/kubernetes/config),
    runnable from outside the cluster and again without changing anything.
  - The API server address and CA can come from a kubeconfig cluster entry (O(kubeconfig), O(context)), the usual
    case when Ansible runs outside the cluster.
  - On Kubernetes 1.24 and later service accounts get no long-lived token; O(token_reviewer) creates a reviewer
    ServiceAccount, its ClusterRoleBinding to C(system:auth-delegator) and a C(kubernetes.io/service-account-token)
    Secret, and uses the token Kubernetes puts into that Secret as the reviewer JWT.
  - Vault rewrites the whole configuration on every write. Fields the task does not set keep the value the server
    returned; only a changed value causes a write. See O(update_token_reviewer_jwt) for the one field Vault never
    returns.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - hvac >= 2.0.0
  - cryptography (optional, to check that PEM input parses)
extends_documentation_fragment:
  - meshpki.vault_ca.connection
  - meshpki.vault_ca.auth
  - meshpki.vault_ca.kubernetes
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
  - meshpki.vault_ca.attributes.action_group_vault
attributes:
  check_mode:
    support: full
    details:
      - Reads the auth mount, its configuration and the Kubernetes objects, and reports what would change; writes
        nothing to Vault.
      - Kubernetes objects that would be created are sent with C(dryRun=All), so the API server validates them
        (namespace exists, permissions) without storing anything.
  diff_mode:
    support: full
    details:
      - Shows the auth method type, the configuration (without the reviewer JWT) and the token reviewer's
        Kubernetes objects before and after.
      - A reviewer JWT that is written appears as a placeholder, never as its value.
options:
  mount:
    description:
      - Path of the auth method, without C(auth/). Use one mount per cluster, for example V(kubernetes-east).
    type: str
    default: kubernetes
  state:
    description:
      - V(present) enables the auth method (if missing) and configures it.
      - V(absent) disables the auth method at O(mount). B(This deletes its configuration and every role under it,
        and revokes every token and lease issued through it) - istiod's Vault Agent can no longer log in or renew.
        A mount of another auth type at O(mount) is never disabled; the module fails instead. The token reviewer's
        Kubernetes objects are left in place.
    type: str
    choices: [present, absent]
    default: present
  description:
    description: Description of the auth method, used only when it is enabled.
    type: str
  kubernetes_host:
    description:
      - URL of the Kubernetes API server as Vault must reach it, for example V(https://10.96.0.1:443) (the guide's
        C(https://${KUBERNETES_PORT_443_TCP_ADDR}:443) when Vault runs in the cluster) or the external address.
      - When not set, the C(server) of the kubeconfig context's cluster is used (see O(kubeconfig), O(context)).
        Either is required with O(state=present).
      - A trailing C(/) does not count as a difference.
    type: str
  kubernetes_ca_cert:
    description:
      - CA certificate(s) Vault uses to verify the API server, as PEM text or as the path of a PEM file on the
        host running the module (a value without C(-----BEGIN) is taken as a path).
      - When not set and the kubeconfig is read, the context cluster's C(certificate-authority-data) (or
        C(certificate-authority) file) is used; otherwise the server keeps what it has.
      - Compared by meaning (the DER of each certificate), so the same certificate with other line breaks, from a
        file or from the kubeconfig, is not a change.
    type: str
  token_reviewer_jwt:
    description:
      - JWT that Vault presents to the TokenReview API to check the service-account tokens it is given at login.
        Never logged, returned or shown in diff.
      - When neither this nor O(token_reviewer) is set the stored JWT is kept; if another field changes while one
        is stored the module fails rather than drop it (Vault replaces the whole configuration on write). Set
        V('') to remove a stored JWT (Vault then uses the logging-in service account's own token as reviewer).
      - Mutually exclusive with O(token_reviewer).
    type: str
  token_reviewer:
    description:
      - Bootstrap a token reviewer on the cluster of the kubeconfig context and use its token as
        O(token_reviewer_jwt), for Kubernetes 1.24 and later where the guide's recipe yields no long-lived token.
      - Ensures, through the Kubernetes API, a ServiceAccount, a ClusterRoleBinding of it to the ClusterRole
        C(system:auth-delegator) (to create TokenReviews), and a Secret of type
        C(kubernetes.io/service-account-token) for it, then reads the token Kubernetes writes into that Secret.
      - Existing objects are reused, never rewritten; a binding that lacks the ServiceAccount gets it added. A
        Secret whose token belongs to an earlier ServiceAccount of the same name is replaced, and the new token is
        written to Vault.
      - Mutually exclusive with O(token_reviewer_jwt).
    type: dict
    suboptions:
      create:
        description:
          - Create the objects that are missing. With V(false) the objects must exist and only the token is read.
        type: bool
        default: true
      namespace:
        description: Namespace of the ServiceAccount and the Secret. It must exist.
        type: str
        default: vault
      service_account:
        description: Name of the reviewer ServiceAccount.
        type: str
        default: vault-token-reviewer
      secret_name:
        description: Name of the token Secret. Default C(<service_account>-token).
        type: str
      cluster_role_binding:
        description: Name of the ClusterRoleBinding. Default C(<namespace>-<service_account>-auth-delegator).
        type: str
      wait_timeout:
        description:
          - Seconds to wait for Kubernetes' token controller to put the token into a new Secret (it does so
            shortly after the Secret is created). The module fails with a clear message after that.
        type: int
        default: 30
  update_token_reviewer_jwt:
    description:
      - Vault never returns the reviewer JWT, so whether the stored one equals the one given cannot be checked.
      - V(on_create) writes the JWT when the configuration is created, when another field changes (the write
        replaces the whole configuration), when the server has none, or when O(token_reviewer) created a new token
        Secret. A re-run with the same input reports C(changed=false).
      - V(always) writes it on every run, which always reports C(changed=true); use it once to rotate a JWT
        that changed outside of O(token_reviewer).
    type: str
    choices: [on_create, always]
    default: on_create
  disable_local_ca_jwt:
    description:
      - Do not fall back to the CA certificate and service-account token of the pod Vault runs in. Requires a CA
        certificate (O(kubernetes_ca_cert), from the kubeconfig, or already stored).
      - When not set, the server keeps its value (V(false) on a new configuration).
    type: bool
  pem_keys:
    description:
      - PEM public keys or certificates (text or file paths) that Vault uses to verify service-account JWT
        signatures itself. Compared as a set.
      - When not set, the server keeps its value.
    type: list
    elements: str
  issuer:
    description:
      - Issuer the JWTs must carry (deprecated in Vault and OpenBao; only checked when issuer validation is on).
      - When not set, the server keeps its value.
    type: str
  use_annotations_as_alias_metadata:
    description:
      - Copy the service account's C(vault.hashicorp.com/alias-metadata-*) annotations into the entity alias
        metadata (Vault 1.16 and later).
      - The module fails, before writing anything, on a server that does not know this field (OpenBao 2.x), rather
        than let the server ignore it.
    type: bool
notes:
  - Fields compared for idempotency are every field the server returns - C(kubernetes_host), C(kubernetes_ca_cert),
    C(pem_keys), C(disable_local_ca_jwt), C(issuer), C(disable_iss_validation), C(use_annotations_as_alias_metadata)
    where the server has it - and C(token_reviewer_jwt_set). The JWT itself cannot be compared (see
    O(update_token_reviewer_jwt)).
  - A field the server does not know is refused (checked with the endpoint's parameter list), rather than ignored.
  - O(kubeconfig) and O(context) (or their environment variables) are read when O(kubernetes_host) is not set, when
    either option is set, and for O(token_reviewer).
seealso:
  - module: meshpki.vault_ca.vault_k8s_role
  - name: Kubernetes auth method (Vault)
    description: Configuration fields and how the login works.
    link: https://developer.hashicorp.com/vault/docs/auth/kubernetes
'''

EXAMPLES = r'''
- name: The guide's Kubernetes auth, from outside the cluster - host and CA from the kubeconfig context,
    reviewer token from a bootstrap ServiceAccount
  meshpki.vault_ca.vault_k8s_auth:
    url: https://vault.example.com:8200
    kubeconfig: ~/.kube/config
    context: prod-east
    token_reviewer:
      namespace: vault
      service_account: vault-token-reviewer

- name: Vault runs in the cluster - the guide's values, the JWT read from the Vault pod's service account
  meshpki.vault_ca.vault_k8s_auth:
    kubernetes_host: "https://{{ kubernetes_port_443_tcp_addr }}:443"
    kubernetes_ca_cert: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
    token_reviewer_jwt: "{{ lookup('ansible.builtin.file', '/var/run/secrets/kubernetes.io/serviceaccount/token') }}"

- name: One mount per cluster, connection and auth set once for every Vault module
  module_defaults:
    group/meshpki.vault_ca.vault:
      url: "{{ vault_url }}"
      auth_method: approle
      role_id: "{{ vault_role_id }}"
      secret_id: "{{ vault_secret_id }}"
  block:
    - name: East cluster
      meshpki.vault_ca.vault_k8s_auth:
        mount: kubernetes-east
        context: east
        disable_local_ca_jwt: true
        token_reviewer: {}

- name: Rotate a reviewer JWT that was changed outside of Ansible
  meshpki.vault_ca.vault_k8s_auth:
    kubernetes_host: https://api.east.example.com:6443
    kubernetes_ca_cert: "{{ lookup('ansible.builtin.file', 'east-ca.pem') }}"
    token_reviewer_jwt: "{{ new_reviewer_jwt }}"
    update_token_reviewer_jwt: always

- name: Remove a cluster - disables the mount, deletes its roles and revokes its tokens
  meshpki.vault_ca.vault_k8s_auth:
    mount: kubernetes-old
    state: absent
'''

RETURN = r'''
mount:
  description: Path of the auth method.
  returned: always
  type: str
  sample: kubernetes
config:
  description:
    - The configuration as the server returns it after the task (in check mode, as it would be written); empty when
      absent. Never contains the reviewer JWT, only C(token_reviewer_jwt_set).
  returned: always
  type: dict
  sample:
    kubernetes_host: https://127.0.0.1:6443
    kubernetes_ca_cert: "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n"
    disable_local_ca_jwt: true
    pem_keys: []
    issuer: ""
    disable_iss_validation: true
    token_reviewer_jwt_set: true
changed_fields:
  description: Configuration fields whose value differed (all the given fields when the configuration was new).
  returned: state is present
  type: list
  elements: str
  sample: [kubernetes_host]
token_reviewer_jwt_written:
  description: Whether the reviewer JWT was written (or would be, in check mode).
  returned: state is present
  type: bool
  sample: false
token_reviewer:
  description: The token reviewer's Kubernetes objects, and what was done to them.
  returned: O(token_reviewer) is set and state is present
  type: dict
  contains:
    namespace:
      description: Namespace of the ServiceAccount and the Secret.
      type: str
      sample: vault
    service_account:
      description: Name of the ServiceAccount.
      type: str
      sample: vault-token-reviewer
    secret_name:
      description: Name of the token Secret.
      type: str
      sample: vault-token-reviewer-token
    cluster_role_binding:
      description: Name of the ClusterRoleBinding to C(system:auth-delegator).
      type: str
      sample: vault-vault-token-reviewer-auth-delegator
    changes:
      description: What was created or changed (would be, in check mode); empty when everything existed.
      type: list
      elements: str
      sample: [created ServiceAccount vault/vault-token-reviewer]
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import check_kubernetes_host
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.auth_config import (
    BASE_CONFIG_FIELDS,
    CA_LABELS,
    JWT_SET,
    PEM_KEY_LABELS,
    config_differences,
    desired_config,
    load_pem_option,
    pem_identity,
    refuse_unknown,
    reviewer_jwt_plan,
    unknown_fields,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import (
    KUBE_ARGSPEC,
    api_client,
    cluster_entry,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.token_reviewer import (
    CHECK_MODE_JWT,
    TokenReviewer,
    reviewer_names,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import VaultModule
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import ensure_auth_method, read_auth_method

METHOD = "kubernetes"
JWT_PLACEHOLDER = "(new value written, not shown)"

TOKEN_REVIEWER_SPEC = dict(
    create=dict(type="bool", default=True),
    namespace=dict(type="str", default="vault"),
    service_account=dict(type="str", default="vault-token-reviewer"),
    secret_name=dict(type="str"),
    cluster_role_binding=dict(type="str"),
    wait_timeout=dict(type="int", default=30),
)


def user_config(module):
    """The config fields the task sets, PEM read and checked, host and CA filled from the
    kubeconfig when asked - all before any request."""
    p = module.params
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
            module.warn("The cluster of context '%s' skips TLS verification and has no CA; Vault cannot skip it. "
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


def check_known(module, client, path, user, known, mounted):
    """Refuse fields the server does not know (OpenBao would ignore them silently)."""
    if not mounted:
        if set(user) - known:
            module.warn("Cannot check yet whether the server knows %s: the auth method at '%s' is not enabled."
                        % (", ".join(sorted(set(user) - known)), path.rsplit("/", 1)[0]))
        return
    unknown = unknown_fields(client, path, user, known)
    if unknown is None:
        module.warn("The server does not list the parameters of '%s'; could not check that it knows %s."
                    % (path, ", ".join(sorted(set(user) - known))))
    else:
        refuse_unknown(unknown, path)


def run_absent(module, client, mount, path):
    info = read_auth_method(client, mount)
    if info is not None and info.get("type") != METHOD:
        raise MeshPkiError("The auth mount '%s' is a %s auth method, not kubernetes; refusing to disable it "
                           "(nothing was changed)." % (mount, info.get("type")))
    before = {}
    if info is not None:
        before = {"auth_method": METHOD, "config": config_data(client, path) or {}}
    changed = info is not None
    if changed and not module.check_mode:
        # sys/auth/<mount> needs both capabilities; the error text quotes each name.
        client.request("DELETE", "sys/auth/%s" % mount, action="disable kubernetes auth method",
                       capability=frozenset(["delete", "sudo"]))
    result = dict(changed=changed, mount=mount, config={})
    if module._diff:
        result["diff"] = dict(before=before, after={}, before_header="auth/%s" % mount, after_header="auth/%s" % mount)
    module.exit_json(**result)


def run_module(module):
    p = module.params
    mount = p["mount"].strip().strip("/")
    if not mount:
        raise MeshPkiError("mount must not be empty.")
    path = "auth/%s/config" % mount
    if p["state"] == "absent":
        return run_absent(module, module.get_authenticated_client(), mount, path)

    user = user_config(module)
    client = module.get_authenticated_client()
    # Read: the mount (its type is checked), the config, and which fields the server knows.
    mount_result = ensure_auth_method(client, mount, METHOD, check_mode=True)
    mounted = mount_result.before is not None
    current = config_data(client, path) if mounted else None
    exists = current is not None
    jwt_set = bool((current or {}).get(JWT_SET))
    known = BASE_CONFIG_FIELDS | set(current or {})
    check_known(module, client, path, user, known, mounted)

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
        spec = p["token_reviewer"]
        reviewer = TokenReviewer.from_api_client(api_client(p, module.warn), reviewer_names(spec),
                                                 create=spec["create"], check_mode=module.check_mode,
                                                 wait_timeout=spec["wait_timeout"]).ensure()
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
            check_known(module, client, path, user, known, True)
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
                  config=after_config, changed_fields=differences, token_reviewer_jwt_written=send_jwt)
    if reviewer:
        result["token_reviewer"] = reviewer.as_dict()
    if module._diff:
        before = {"auth_method": METHOD if mounted else None, "config": current or {}}
        after = {"auth_method": METHOD, "config": dict(after_config)}
        if send_jwt:
            after["config"]["token_reviewer_jwt"] = JWT_PLACEHOLDER
        if reviewer:
            before["token_reviewer_objects"] = reviewer.before
            after["token_reviewer_objects"] = reviewer.after
        result["diff"] = dict(before=before, after=after, before_header=path, after_header=path)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        mount=dict(type="str", default="kubernetes"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        description=dict(type="str"),
        kubernetes_host=dict(type="str"),
        kubernetes_ca_cert=dict(type="str"),
        token_reviewer_jwt=dict(type="str", no_log=True),
        token_reviewer=dict(type="dict", options=TOKEN_REVIEWER_SPEC, no_log=False),
        update_token_reviewer_jwt=dict(type="str", choices=["on_create", "always"], default="on_create"),
        disable_local_ca_jwt=dict(type="bool"),
        pem_keys=dict(type="list", elements="str", no_log=False),
        issuer=dict(type="str"),
        use_annotations_as_alias_metadata=dict(type="bool"),
    )
    argument_spec.update(KUBE_ARGSPEC)
    module = VaultModule(
        argument_spec=argument_spec,
        mutually_exclusive=[("token_reviewer_jwt", "token_reviewer")],
        supports_check_mode=True,
        path_options={"mount": "mount", "token_reviewer.namespace": "k8s_name",
                      "token_reviewer.service_account": "k8s_name", "token_reviewer.secret_name": "k8s_name",
                      "token_reviewer.cluster_role_binding": "name"},
    )
    try:
        run_module(module)
    except MeshPkiError as e:
        module.fail_from(e)


if __name__ == "__main__":
    main()
