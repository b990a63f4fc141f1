#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: tsb_controlplane_annotations
short_description: Make istiod take its CA from Vault - injector annotations and ROOT_CA_DIR
version_added: 0.1.0
description:
  - Sets what the guide's last step adds to istiod - the env variable C(ROOT_CA_DIR) and the Vault Agent Injector
    C(podAnnotations) that render C(ca-cert.pem), C(ca-key.pem), C(cert-chain.pem) and C(root-cert.pem) from Vault into
    the directory istiod reads - or removes exactly that again with O(state=absent).
  - "Three targets: a TSB C(ControlPlane) (C(install.tetrate.io/v1alpha1),
    C(spec.components.istio.kubeSpec.deployment.env) and C(.podAnnotations)), an C(IstioOperator)
    (C(install.istio.io/v1alpha1), C(spec.components.pilot.k8s.env) and C(.podAnnotations)), or a values file of the
    istiod Helm chart (C(pilot.env), a map, and C(pilot.podAnnotations))."
  - "B(Live mode) (no O(path)): reads the object through the Kubernetes API, merges, and sends a JSON merge patch that
    carries the object's C(resourceVersion), so a concurrent change is refused with 409 instead of being overwritten;
    the module then reads again and retries, at most 5 times."
  - "B(File mode) (O(path)): edits the matching document of a YAML manifest (one or several documents) for GitOps
    workflows that never let Ansible touch the cluster. Other documents, other keys and their comments keep their
    exact text: only the mapping that holds C(env) and C(podAnnotations) is re-serialised (a warning says so when
    comments inside it are dropped). The file is written atomically, keeps its mode and owner, is written through a
    symbolic link, and is not touched at all when nothing changes (see O(path) for the limits it is read with)."
  - "Merging never loses anything: other C(env) entries and their order, other annotations and every other field stay.
    An C(env) entry with one of our names is replaced in place."
  - "With O(state=absent) the module removes the injector annotations it manages for O(annotation_prefix)
    (C(agent-inject), C(role), C(secret-volume-path), C(agent-init-first), C(agent-pre-populate-only) and the
    C(agent-inject-secret-*) / C(agent-inject-template-*) pair of each of the four files), the keys of
    O(extra_annotations), the O(extra_env) names, and C(ROOT_CA_DIR) B(only when its value is ours) - equal to
    O(secret_volume_path) or to the C(secret-volume-path) annotation being removed. A C(ROOT_CA_DIR) pointing elsewhere
    (or set with C(valueFrom)) is someone else's: it is kept, returned in RV(kept_env) and warned about. C(env) and
    C(podAnnotations) left empty are dropped, and so are parent mappings the removal left empty."
  - Annotations of the other injector prefix (for example C(vault.hashicorp.com) left behind after switching to OpenBao)
    are never touched by O(state=present); the module warns about them.
author:
  - meshpki maintainers (@meshpki)
requirements:
  - PyYAML
  - kubernetes >= 24.2.0 (the Python client), in live mode only
extends_documentation_fragment:
  - meshpki.vault_ca.ca_layout
  - meshpki.vault_ca.attributes
  - meshpki.vault_ca.attributes.inputs
attributes:
  check_mode:
    support: full
    details:
      - Reads and compares, then reports what would change.
      - In live mode a patch that would change the object is sent with C(dryRun=All), so the API server validates and
        authorises it without storing anything; nothing is sent when nothing would change. In file mode nothing is
        written.
  diff_mode:
    support: full
    details: Shows the matching document (file mode) or the object (live mode, without C(managedFields)) as YAML before
      and after.
  action_group:
    description: Use C(group/meshpki.vault_ca.istio) in C(module_defaults) to set O(kubeconfig) and O(context) once.
    support: full
    membership:
      - meshpki.vault_ca.istio
options:
  target:
    description:
      - What holds istiod's settings.
      - V(tsb_controlplane) - a TSB C(ControlPlane), C(install.tetrate.io/v1alpha1), in
        C(spec.components.istio.kubeSpec.deployment).
      - V(istio_operator) - an C(IstioOperator), C(install.istio.io/v1alpha1), in C(spec.components.pilot.k8s).
      - V(helm_values) - a values file of the istiod chart, in C(pilot) (C(pilot.env) is a map there). File mode only;
        a missing file is created.
    type: str
    choices: [tsb_controlplane, istio_operator, helm_values]
    default: tsb_controlplane
  state:
    description:
      - V(present) merges the env and annotations in; V(absent) removes exactly what V(present) adds (see the
        description for C(ROOT_CA_DIR)).
    type: str
    choices: [present, absent]
    default: present
  name:
    description:
      - Name of the C(ControlPlane) or C(IstioOperator).
      - Required in live mode. In file mode it selects the document when the file holds several of that kind.
    type: str
  namespace:
    description:
      - Kubernetes namespace of the object (the guide's C(ControlPlane) lives in V(tsb); an C(IstioOperator) usually
        in V(istio-system)).
      - Required in live mode. In file mode it selects the document by C(metadata.namespace) when set.
    type: str
  kubeconfig:
    description:
      - Live mode. Path to the kubeconfig file that names the cluster (API server URL and CA) and the credentials.
      - When not set, E(K8S_AUTH_KUBECONFIG) is used, then the first file of E(KUBECONFIG), then C(~/.kube/config)
        - the same order as the C(kubernetes.core) collection.
    type: path
  context:
    description:
      - Live mode. Name of the kubeconfig context to use; it selects the cluster entry (server and CA) and the user.
      - When not set, E(K8S_AUTH_CONTEXT) is used, then the kubeconfig's C(current-context).
      - An unknown context is an error that lists the contexts the file has.
    type: str
  path:
    description:
      - File mode. Path of the YAML manifest to edit instead of the live object.
      - For V(tsb_controlplane) and V(istio_operator) the document is found by C(kind) and C(apiVersion) (and O(name),
        O(namespace) when given); it is an error when none or several match. For V(helm_values) the file holds one
        values document and is created when missing.
      - "B(Symbolic links) are written through: when O(path) is a symlink (a GitOps checkout that links a cluster's
        manifest to a shared file), the file it resolves to is edited and the link stays a link. A link to a file that
        does not exist is an error, also for V(helm_values)."
      - "B(Writing) is atomic: a temporary file in the directory of the real file, with that file's owner, group, mode,
        extended attributes (ACLs) and SELinux context, is flushed to disk and renamed over it. When the owner or group
        cannot be kept (the task does not run as root or as the owner), the module fails and writes nothing. A new
        values file gets mode 0666 minus the umask."
      - "B(Refused before anything is written), each with an error naming the file: a file larger than
        O(max_manifest_size) (checked before reading); a key twice in one mapping, at any depth of any document (YAML
        loaders silently keep the last one; the error gives both lines); YAML aliases that expand to more than 100000
        nodes in all (an alias bomb) or an alias inside the list or mapping it names; anything but a regular file."
    type: path
  max_manifest_size:
    description:
      - File mode. Largest manifest, in bytes, the module reads; a bigger file is refused before it is read.
      - The default, 4 MiB, is well above any ControlPlane, IstioOperator or values file (Kubernetes stores objects of
        at most about 1.5 MiB); raise it only for a multi-document manifest that really is that big.
    type: int
    default: 4194304
    version_added: 0.2.0
  backup:
    description:
      - File mode. Keep a timestamped copy of the file before changing it (like M(ansible.builtin.copy)); its path is
        returned in RV(backup_file).
    type: bool
    default: false
  role:
    description: Vault Kubernetes auth role the injected agent logs in with (the C(role) annotation).
    type: str
    default: istiod
  kubernetes_auth_mount:
    description:
      - Mount of the Kubernetes auth method the agent logs in at. The injector's default is C(auth/kubernetes); for any
        other mount (one per cluster in a multi-cluster mesh, for example V(kubernetes-east)) the C(auth-path)
        annotation is set to C(auth/<kubernetes_auth_mount>).
      - The same name as in the other modules of the collection that take the Kubernetes auth mount. Version 0.1.0
        named it O(auth_mount), which stays an alias.
    type: str
    default: kubernetes
    aliases: [auth_mount]
  vault_namespace:
    description:
      - The Vault Enterprise or OpenBao namespace the agent logs in and reads in (the C(namespace) annotation), for
        example V(team-a) or V(team-a/istio). It must be the namespace the CA, the auth mount and the policy live in.
      - Not set - no annotation; the agent uses the root namespace.
    type: str
  secret_volume_path:
    description:
      - Directory the agent renders the four files into (the C(secret-volume-path) annotation); C(ROOT_CA_DIR) is always
        set to the same value.
      - Must stay apart from C(/etc/cacerts), where the istiod chart mounts the C(cacerts) secret.
    type: str
    default: /etc/cacerts-vault
  annotation_prefix:
    description:
      - Annotation prefix of the injector. V(vault.hashicorp.com) for HashiCorp's Vault Agent Injector,
        V(openbao.openbao.org) for the OpenBao Agent Injector.
    type: str
    default: vault.hashicorp.com
  agent_init_first:
    description: Sets the C(agent-init-first) annotation (run the agent's init container before the other init
      containers). Not managed when unset.
    type: bool
  agent_pre_populate_only:
    description: Sets the C(agent-pre-populate-only) annotation (render once in the init container, no sidecar). Not
      managed when unset. Leave it unset or V(false) when O(extra_env) sets C(AUTO_RELOAD_PLUGIN_CERTS), which needs the
      sidecar to re-render rotated files.
    type: bool
  extra_env:
    description:
      - More env variables for istiod, set next to C(ROOT_CA_DIR), for example C(AUTO_RELOAD_PLUGIN_CERTS=true) so that
        istiod reloads a rotated intermediate without a restart.
      - C(ROOT_CA_DIR) itself is refused (it always equals O(secret_volume_path)).
      - With O(state=absent) these names are removed; their values are not needed.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the variable.
        type: str
        required: true
      value:
        description: Its value; booleans and numbers become the strings Kubernetes expects (V(true) becomes C("true")).
          Required with O(state=present).
        type: raw
  extra_annotations:
    description:
      - More pod annotations (for example C(vault.hashicorp.com/agent-limits-cpu)). Keys this module manages are
        refused - use the dedicated options.
      - With O(state=absent) these keys are removed.
    type: dict
  istio_multiroot:
    description:
      - "Prepare the mesh for a root rotation (several roots in C(root-cert.pem), see
        R(Rotating the root,ansible_collections.meshpki.vault_ca.docsite.rotation)): V(true) also writes
        C(ISTIO_MULTIROOT_MESH=true) in istiod's env - without it istiod ignores a C(root-cert.pem) whose set of roots
        changes - and C(PROXY_CONFIG_XDS_AGENT=true) in the mesh's default proxy metadata, so that the proxies take the
        new trust bundle from istiod."
      - "Where, per O(target): V(istio_operator) - C(spec.components.pilot.k8s.env) and
        C(spec.meshConfig.defaultConfig.proxyMetadata); V(helm_values) - C(pilot.env) and
        C(meshConfig.defaultConfig.proxyMetadata); V(tsb_controlplane) -
        C(spec.components.istio.kubeSpec.deployment.env) and, as TSB's documentation changes the mesh config, an
        overlay patch of the C(IstioOperator) C(tsb-istiocontrolplane) that the TSB operator generates
        (C(spec.components.istio.kubeSpec.overlays), patch path
        C(spec.meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT), value C(\"true\")). That patch sets one
        key, so other proxy metadata stays; it is kept after any patch of the same overlay that replaces
        C(proxyMetadata) or a parent of it as a whole."
      - "Everything else stays: other env entries, other proxy metadata keys, other overlays and patches. A value that
        is already true for istiod (Go's C(strconv.ParseBool): C(true), C(1), C(True), ...) is kept as written."
      - "B(A user setting that says false is refused, not overridden): when C(ISTIO_MULTIROOT_MESH) or
        C(PROXY_CONFIG_XDS_AGENT) is already set to C(false) (or anything that is not true, or through C(valueFrom)),
        the task fails naming where, and writes nothing. Set it to C(\"true\") there or remove it, then run again."
      - V(false) (the default) leaves whatever the target has - it never removes these settings.
      - With O(state=absent) and V(true), C(ISTIO_MULTIROOT_MESH) and C(PROXY_CONFIG_XDS_AGENT) are removed (for
        V(tsb_controlplane) the overlay patch with that path, and the overlay when nothing else is left in it).
    type: bool
    default: false
    version_added: 0.2.0
notes:
  - The pure logic (annotations and templates) is shared with M(meshpki.vault_ca.istio_ca_verify) and the
    C(istio_ca_policy_rules) filter, so the policy, the templates and the verification read the same four paths.
  - Switching O(annotation_prefix) does not remove the annotations of the old prefix; run the module with
    O(state=absent) and the old prefix.
  - In file mode YAML anchors and aliases inside the rewritten mapping are expanded.
seealso:
  - module: meshpki.vault_ca.istio_ca_verify
  - name: Vault Agent Injector annotations
    description: Every annotation the injector understands.
    link: https://developer.hashicorp.com/vault/docs/platform/k8s/injector/annotations
  - name: Istio plugin CA certificates
    description: The files istiod reads from ROOT_CA_DIR.
    link: https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/
  - name: Customizing TSB Kubernetes components (overlays)
    description: How a TSB ControlPlane patches the IstioOperator C(tsb-istiocontrolplane) its operator
      generates - where O(istio_multiroot) puts the mesh's proxy metadata for V(tsb_controlplane).
    link: https://docs.tetrate.io/service-bridge/operations/kube-customization
'''

EXAMPLES = r'''
- name: The guide's ControlPlane, live (env ROOT_CA_DIR and the injector annotations)
  meshpki.vault_ca.tsb_controlplane_annotations:
    name: controlplane
    namespace: tsb

- name: The same with rotation without restarts, a kubeconfig context and OpenBao's injector
  meshpki.vault_ca.tsb_controlplane_annotations:
    kubeconfig: ~/.kube/prod
    context: prod-eu
    name: controlplane
    namespace: istio-system
    annotation_prefix: openbao.openbao.org
    agent_init_first: true
    extra_env:
      - name: AUTO_RELOAD_PLUGIN_CERTS
        value: true

- name: kubeconfig and context once for the istiod side
  module_defaults:
    group/meshpki.vault_ca.istio:
      kubeconfig: "{{ playbook_dir }}/kubeconfig"
      context: mesh-admin
  block:
    - name: Upstream Istio - the IstioOperator, live
      meshpki.vault_ca.tsb_controlplane_annotations:
        target: istio_operator
        name: installed-state
        namespace: istio-system
        intermediate_mount: istioca
        root_mount: pki

- name: GitOps - edit the ControlPlane document of a multi-document manifest, keep a backup
  meshpki.vault_ca.tsb_controlplane_annotations:
    path: "{{ repo_dir }}/clusters/eu/controlplane.yaml"
    name: controlplane
    backup: true
  register: cp

- name: GitOps - an IstioOperator manifest
  meshpki.vault_ca.tsb_controlplane_annotations:
    target: istio_operator
    path: "{{ repo_dir }}/istio/operator.yaml"

- name: Helm - a values file for the istiod chart (created when missing), then install with it
  meshpki.vault_ca.tsb_controlplane_annotations:
    target: helm_values
    path: "{{ repo_dir }}/istiod-vault-values.yaml"
    extra_env:
      - name: AUTO_RELOAD_PLUGIN_CERTS
        value: "true"

- name: Ready for a root rotation - istiod accepts a root-cert.pem holding two roots, proxies take it over XDS
  meshpki.vault_ca.tsb_controlplane_annotations:
    name: controlplane
    namespace: tsb
    istio_multiroot: true
    extra_env:
      - name: AUTO_RELOAD_PLUGIN_CERTS
        value: "true"

- name: Back to istiod's own CA - remove exactly what was added, live
  meshpki.vault_ca.tsb_controlplane_annotations:
    name: controlplane
    namespace: tsb
    state: absent
    extra_env:
      - name: AUTO_RELOAD_PLUGIN_CERTS
'''

RETURN = r'''
applied_to:
  description: V(live) (the object, through the Kubernetes API) or V(file) (the manifest O(path)).
  returned: always
  type: str
  sample: live
target:
  description: The target, as given.
  returned: always
  type: str
  sample: tsb_controlplane
api_version:
  description: apiVersion of the object or document; null for V(helm_values).
  returned: always
  type: str
  sample: install.tetrate.io/v1alpha1
kind:
  description: Kind of the object or document; null for V(helm_values).
  returned: always
  type: str
  sample: ControlPlane
name:
  description: Name of the object (live mode) or of the matching document (file mode, null for V(helm_values)).
  returned: always
  type: str
  sample: controlplane
namespace:
  description: Namespace of the object (live mode) or of the matching document (file mode, when it has one).
  returned: always
  type: str
  sample: tsb
manifest:
  description: The manifest file (O(path)).
  returned: file mode
  type: str
  sample: /srv/gitops/controlplane.yaml
backup_file:
  description: The backup copy made before the file was changed.
  returned: file mode, when O(backup=true) and the file changed
  type: str
  sample: /srv/gitops/controlplane.yaml.12345.2025-01-31@10:00:00~
env:
  description:
    - With O(state=present), the env entries this module manages (C(ROOT_CA_DIR) first, then O(extra_env), then
      C(ISTIO_MULTIROOT_MESH) with O(istio_multiroot=true)), as set.
    - With O(state=absent), an empty list.
  returned: always
  type: list
  elements: dict
  sample: [{name: ROOT_CA_DIR, value: /etc/cacerts-vault}]
annotations:
  description: With O(state=present), the annotations this module manages, as set; with O(state=absent), empty.
  returned: always
  type: dict
  sample:
    vault.hashicorp.com/agent-inject: "true"
    vault.hashicorp.com/role: istiod
    vault.hashicorp.com/secret-volume-path: /etc/cacerts-vault
proxy_metadata:
  description: With O(state=present) and O(istio_multiroot=true), the mesh default proxy metadata this module manages;
    otherwise empty.
  returned: always
  type: dict
  sample: {PROXY_CONFIG_XDS_AGENT: "true"}
  version_added: 0.2.0
removed:
  description: What O(state=absent) removed (or would remove in check mode).
  returned: always
  type: dict
  contains:
    annotations:
      description: The annotation keys removed.
      type: list
      elements: str
    env:
      description: The env names removed.
      type: list
      elements: str
    proxy_metadata:
      description: The proxy metadata keys removed (C(PROXY_CONFIG_XDS_AGENT)); present only with
        O(istio_multiroot=true).
      type: list
      elements: str
      version_added: 0.2.0
  sample: {annotations: [vault.hashicorp.com/agent-inject], env: [ROOT_CA_DIR]}
kept_env:
  description: Env names of ours found with a value this module did not set (C(ROOT_CA_DIR) pointing elsewhere), kept by
    O(state=absent).
  returned: always
  type: list
  elements: str
  sample: []
attempts:
  description: Read-and-patch attempts; more than 1 when the object changed under us (409 Conflict) and was read again.
  returned: live mode
  type: int
  sample: 1
resource_version:
  description: resourceVersion of the object after the task (unchanged in check mode).
  returned: live mode
  type: str
  sample: "48213"
object:
  description: The object after the task as the API server returned it (in check mode, its dry-run answer), without
    C(managedFields).
  returned: live mode
  type: dict
'''

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import manage_annotations
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import MAX_MANIFEST_SIZE
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import KUBE_ARGSPEC
from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import MeshPkiModule, module_spec
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.layout import CA_LAYOUT, ca_layout_paths

ARGUMENT_SPEC = module_spec(dict(
    KUBE_ARGSPEC,
    target=dict(type="str", choices=["tsb_controlplane", "istio_operator", "helm_values"],
                default="tsb_controlplane"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    name=dict(type="str"),
    namespace=dict(type="str"),
    path=dict(type="path"),
    max_manifest_size=dict(type="int", default=MAX_MANIFEST_SIZE),
    backup=dict(type="bool", default=False),
    role=dict(type="str", default="istiod"),
    kubernetes_auth_mount=dict(type="str", default="kubernetes", aliases=["auth_mount"]),
    vault_namespace=dict(type="str"),
    secret_volume_path=dict(type="str", default="/etc/cacerts-vault", no_log=False),
    annotation_prefix=dict(type="str", default="vault.hashicorp.com"),
    agent_init_first=dict(type="bool"),
    agent_pre_populate_only=dict(type="bool"),
    extra_env=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True),
        value=dict(type="raw"),
    )),
    extra_annotations=dict(type="dict"),
    istio_multiroot=dict(type="bool", default=False),
), shared=(), ca_layout=CA_LAYOUT)


def main():
    MeshPkiModule(
        ARGUMENT_SPEC,
        vault=False,
        required_if=[("target", "helm_values", ("path",))],
        supports_check_mode=True,
        path_options=dict(ca_layout_paths(), name="k8s_name", namespace="k8s_name", role="name",
                          kubernetes_auth_mount="mount", vault_namespace="namespace"),
        requires=("PyYAML",),
    ).run(manage_annotations)


if __name__ == "__main__":
    main()
