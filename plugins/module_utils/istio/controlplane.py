# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where istiod's env and pod annotations live in a TSB ControlPlane, an IstioOperator and the istiod Helm
values; the merge that keeps everything the user has; the removal of exactly what the collection adds; and
the two ways of writing the result: a YAML manifest file (GitOps) or the live object (merge patch).

The pure part (:func:`desired_state`, :func:`apply_present`, :func:`apply_absent`, :func:`merge_patch_diff`)
has no module object and no network. :func:`reconcile_live` does the live I/O, ``istio.manifest`` the file I/O.
:func:`manage_annotations` is tsb_controlplane_annotations' whole task: the desired state, applied through
:func:`edit_live` or ``istio.manifest.edit_manifest``, and the module result. Every failure is a ``MeshPkiError``
whose message names the object or file and the fix.

Merge rules (``state: present``):

* ``env`` (a list of ``{name, value | valueFrom}``): an entry whose name is ours (``ROOT_CA_DIR`` and the extra
  env) is replaced in place, every occurrence; missing ones are appended; every other entry and the order stay.
  For ``helm_values`` ``pilot.env`` is a map: our keys are set, the others stay.
* ``podAnnotations``: dict merge; other annotations stay.
* Anything else in the object or document is never touched.

Removal rules (``state: absent``):

* The annotations of :func:`_injector.managed_keys` for the prefix and the keys of ``extra_annotations``.
* The ``extra_env`` names.
* ``ROOT_CA_DIR`` only when its value is ours: ``secret_volume_path``, or the value of the
  ``<prefix>/secret-volume-path`` annotation being removed. A ``ROOT_CA_DIR`` pointing elsewhere (or set with
  ``valueFrom``) belongs to someone else: it is kept and reported.
* ``env`` / ``podAnnotations`` left empty by the removal are dropped, and so are the parent mappings the removal
  left empty (never ``spec`` itself; an emptied ``pilot`` of Helm values goes too).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
from collections import namedtuple

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import (
    OPENBAO_PREFIX,
    ROOT_CA_DIR_ENV,
    VAULT_PREFIX,
    InjectorError,
    build_injection,
    managed_keys,
    normalize_prefix,
    normalize_secret_volume_path,
    normalize_vault_path,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import (
    api_version,
    dump_yaml,
    edit_manifest,
    type_name,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import (
    api_client,
    describe_api_error,
    is_api_exception,
    kubernetes_library,
)

# How many times a patch refused with 409 Conflict (someone else changed the object between our read and our
# patch) is retried with a fresh read before giving up.
CONFLICT_RETRIES = 5
FIELD_MANAGER = "meshpki.vault_ca"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = 60

# container: the mapping holding istiod's env and podAnnotations. mesh: where the mesh's default proxy metadata
# goes (istio_multiroot) - a mapping path (IstioOperator, Helm values), or for a TSB ControlPlane the kubeSpec
# whose overlays patch the IstioOperator the TSB operator generates. regions: the mappings a file-mode edit
# re-serialises, one after the other (the rest of the file keeps its text).
Target = namedtuple("Target", "name group version kind plural container env_style mesh regions")

_TSB_DEPLOYMENT = ("spec", "components", "istio", "kubeSpec", "deployment")
_IOP_K8S = ("spec", "components", "pilot", "k8s")
_IOP_MESH = ("spec", "meshConfig", "defaultConfig", "proxyMetadata")
_HELM_MESH = ("meshConfig", "defaultConfig", "proxyMetadata")

TARGETS = {
    "tsb_controlplane": Target("tsb_controlplane", "install.tetrate.io", "v1alpha1", "ControlPlane",
                               "controlplanes", _TSB_DEPLOYMENT, "list", _TSB_DEPLOYMENT[:-1],
                               (_TSB_DEPLOYMENT, _TSB_DEPLOYMENT[:-1] + ("overlays",))),
    "istio_operator": Target("istio_operator", "install.istio.io", "v1alpha1", "IstioOperator",
                             "istiooperators", _IOP_K8S, "list", _IOP_MESH, (_IOP_K8S, _IOP_MESH)),
    "helm_values": Target("helm_values", None, None, None, None, ("pilot",), "map", _HELM_MESH,
                          (("pilot",), _HELM_MESH)),
}

# istio_multiroot (root rotation, issue #18): istiod accepts a root-cert.pem whose set of roots changed (A -> A+B
# -> B) only with ISTIO_MULTIROOT_MESH=true, and proxies take the trust bundle over XDS only with
# PROXY_CONFIG_XDS_AGENT=true in the mesh's default proxy metadata.
MULTIROOT_ENV = "ISTIO_MULTIROOT_MESH"
XDS_AGENT_METADATA = "PROXY_CONFIG_XDS_AGENT"
# The IstioOperator the TSB operator generates from the ControlPlane (TSB docs, "Control Plane" concept page and
# "Customizing TSB Kubernetes Components"): spec.components.istio.kubeSpec.overlays patch it; a patch path sets one
# leaf, so other proxyMetadata keys (the user's, the operator's) stay.
TSB_ISTIO_OPERATOR = ("install.istio.io/v1alpha1", "IstioOperator", "tsb-istiocontrolplane")
TSB_XDS_AGENT_PATCH = "spec.meshConfig.defaultConfig.proxyMetadata." + XDS_AGENT_METADATA
# Go's strconv.ParseBool, which istiod and the istio-agent use for these variables.
GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_VALUE_FROM = object()  # an env entry set with valueFrom
_MISSING = object()     # an overlay patch that replaces a parent of proxyMetadata without our key

ENV_KEY = "env"
ANNOTATIONS_KEY = "podAnnotations"
KNOWN_PREFIXES = (VAULT_PREFIX, OPENBAO_PREFIX)


def where(target, *keys):
    return ".".join(target.container + keys)


# ---------------------------------------------------------------------------------------------------------
# desired state
# ---------------------------------------------------------------------------------------------------------

class Desired(object):
    """What this collection manages for one set of options."""

    def __init__(self, env, annotations, owned_annotations, owned_env, prefix, secret_volume_path, multiroot=False):
        self.env = env                              # [{"name", "value"}], ROOT_CA_DIR first
        self.multiroot = multiroot                  # istio_multiroot
        self.annotations = annotations              # {key: value} (ours + extra_annotations)
        self.owned_annotations = owned_annotations  # keys removed by state=absent (managed + extra)
        self.owned_env = owned_env                  # names removed by state=absent (ROOT_CA_DIR: by value)
        self.prefix = prefix
        self.secret_volume_path = secret_volume_path


def _extra_env(entries, present):
    if entries is None:
        return None
    result = []
    for entry in entries:
        value = entry.get("value")
        if value is None:
            if present:
                raise MeshPkiError("extra_env entry '%s' has no value: state=present sets each extra_env entry, "
                                   "give it a value (for example value: \"true\")." % entry.get("name"))
            value = ""
        result.append({"name": entry.get("name"), "value": value})
    return result


def _auth_mount(params):
    """The Kubernetes auth mount the agent logs in at (option kubernetes_auth_mount; AnsibleModule maps its alias
    auth_mount onto it)."""
    value = params.get("kubernetes_auth_mount")
    return None if value is None else normalize_vault_path(value, "kubernetes_auth_mount")


def desired_state(params):
    """Desired from the module options (injector options, extra_env, extra_annotations, state)."""
    present = params.get("state", "present") == "present"
    extra_env = _extra_env(params.get("extra_env"), present)
    extra_annotations = params.get("extra_annotations") or {}
    try:
        injection = build_injection(
            intermediate_mount=params["intermediate_mount"], root_mount=params["root_mount"],
            kv_mount=params["kv_mount"], kv_path=params["kv_path"], kv_field=params["kv_field"],
            role=params["role"], secret_volume_path=params["secret_volume_path"],
            prefix=params["annotation_prefix"], agent_init_first=params.get("agent_init_first"),
            agent_pre_populate_only=params.get("agent_pre_populate_only"), extra_env=extra_env,
            extra_annotations=extra_annotations, auth_mount=_auth_mount(params),
            vault_namespace=params.get("vault_namespace"), trust_bundle_path=params.get("trust_bundle_path"),
        )
        prefix = normalize_prefix(params["annotation_prefix"])
        owned = managed_keys(prefix, extra_env)
        volume = normalize_secret_volume_path(params["secret_volume_path"])
    except InjectorError as e:
        raise MeshPkiError("Invalid injector options: %s." % e)
    multiroot = bool(params.get("istio_multiroot"))
    for entry in (extra_env or []) if multiroot and present else []:
        if entry["name"] == MULTIROOT_ENV and not _go_bool(entry["value"]):
            raise MeshPkiError("extra_env sets %s to %r while istio_multiroot=true sets it true: drop it from "
                               "extra_env (istio_multiroot writes it)." % (MULTIROOT_ENV, entry["value"]))
    owned_env = owned["env"] + ([MULTIROOT_ENV] if multiroot and MULTIROOT_ENV not in owned["env"] else [])
    return Desired(
        env=injection["env"], annotations=injection["annotations"],
        owned_annotations=sorted(set(owned["annotations"]) | set(extra_annotations)),
        owned_env=owned_env, prefix=prefix, secret_volume_path=volume, multiroot=multiroot,
    )


# ---------------------------------------------------------------------------------------------------------
# pure merge / removal on one document or object
# ---------------------------------------------------------------------------------------------------------

def _container(doc, target, create):
    """The mapping at target.container in doc (created when ``create``), or None when missing."""
    return _mapping(doc, target.container, create, "env and podAnnotations")


def _annotations(container, target):
    value = container.get(ANNOTATIONS_KEY)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MeshPkiError("%s is %s, expected a mapping of annotation keys to strings."
                           % (where(target, ANNOTATIONS_KEY), type_name(value)))
    return value


def _env(container, target):
    value = container.get(ENV_KEY)
    if value is None:
        return None
    expected = list if target.env_style == "list" else dict
    if not isinstance(value, expected):
        raise MeshPkiError("%s is %s, expected %s." % (
            where(target, ENV_KEY), type_name(value),
            "a list of {name, value} entries" if expected is list else "a mapping of NAME: value (the istiod chart's "
            "pilot.env)"))
    return value


def helm_text(value):
    """How the istiod chart renders a pilot.env value: true -> "true", 1 -> "1"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _entry_name(entry):
    return entry.get("name") if isinstance(entry, dict) else None


def _merge_env_list(current, ours):
    by_name = dict((entry["name"], entry) for entry in ours)
    result, seen = [], set()
    for entry in current:
        name = _entry_name(entry)
        if name in by_name:
            result.append(dict(by_name[name]))
            seen.add(name)
        else:
            result.append(entry)
    result.extend(dict(entry) for entry in ours if entry["name"] not in seen)
    return result


def _merge_env_map(current, ours):
    result = dict(current)
    for entry in ours:
        if entry["name"] not in result or helm_text(result[entry["name"]]) != entry["value"]:
            result[entry["name"]] = entry["value"]
    return result


def _other_prefix_keys(annotations, prefix):
    found = []
    for other in KNOWN_PREFIXES:
        if other != prefix:
            found.extend(key for key in managed_keys(other)["annotations"] if key in (annotations or {}))
    return sorted(found)


def current_injection(doc, target):
    """``(annotations, env)`` as ``doc`` has them: a dict, and a list of ``{name, value}`` (a Helm values map becomes
    such a list with the values as the chart renders them); both empty when the document has none."""
    container = _container(doc, target, create=False) if isinstance(doc, dict) else None
    if container is None:
        return {}, []
    env = _env(container, target) or []
    if isinstance(env, dict):
        env = [{"name": name, "value": helm_text(value)} for name, value in env.items()]
    return dict(_annotations(container, target) or {}), [entry for entry in env if isinstance(entry, dict)]


def apply_present(doc, target, desired):
    """``(new_doc, info)``: ``doc`` (not modified) with our env and annotations merged in."""
    new = copy.deepcopy(doc) if doc is not None else {}
    if not isinstance(new, dict):
        raise MeshPkiError("The document is %s, expected a mapping." % type_name(new))
    container = _container(new, target, create=True)
    env = _env(container, target)
    annotations = _annotations(container, target)
    if target.env_style == "list":
        merged_env = _merge_env_list(env or [], desired.env)
    else:
        merged_env = _merge_env_map(env or {}, desired.env)
    merged_annotations = dict(annotations or {})
    merged_annotations.update(desired.annotations)
    if merged_env != env:
        container[ENV_KEY] = merged_env
    if merged_annotations != annotations:
        container[ANNOTATIONS_KEY] = merged_annotations
    warnings = []
    stale = _other_prefix_keys(annotations, desired.prefix)
    if stale:
        warnings.append(
            "%s also holds %d annotation(s) of another injector prefix (%s): they stay (this task manages the "
            "prefix %s). If you switched injectors, remove them with state=absent and annotation_prefix=%s."
            % (where(target, ANNOTATIONS_KEY), len(stale), ", ".join(stale), desired.prefix,
               stale[0].split("/", 1)[0]))
    info = dict(warnings=warnings, removed=dict(annotations=[], env=[]), kept_env=[])
    if desired.multiroot:
        multiroot_present(new, target)
        info["removed"]["proxy_metadata"] = []
    return new, info


def _prune(doc, path, keep_top):
    """Drop the empty mappings along ``path`` (deepest first); the top-level key (``spec``) only if not keep_top."""
    for depth in range(len(path), 1 if keep_top else 0, -1):
        parent = doc
        for key in path[:depth - 1]:
            parent = parent[key]
        if parent.get(path[depth - 1]) == {}:
            del parent[path[depth - 1]]
        else:
            return


def apply_absent(doc, target, desired):
    """``(new_doc, info)``: ``doc`` (not modified) without what this collection adds (with ``istio_multiroot``,
    also the proxy metadata setting :func:`multiroot_present` adds; its env entry is one of ``owned_env``)."""
    new = copy.deepcopy(doc) if doc is not None else {}
    if not isinstance(new, dict):
        raise MeshPkiError("The document is %s, expected a mapping." % type_name(new))
    removed_metadata = multiroot_absent(new, target) if desired.multiroot else None
    new, info = _absent_injection(new, target, desired)
    if removed_metadata is not None:
        info["removed"]["proxy_metadata"] = removed_metadata
    return new, info


def _absent_injection(new, target, desired):
    info = dict(warnings=[], removed=dict(annotations=[], env=[]), kept_env=[])
    container = _container(new, target, create=False)
    if container is None:
        return new, info
    annotations = _annotations(container, target)
    env = _env(container, target)

    ours_root = set([desired.secret_volume_path])
    if annotations:
        volume_annotation = annotations.get("%s/secret-volume-path" % desired.prefix)
        if isinstance(volume_annotation, str):
            ours_root.add(volume_annotation)
        removed = [key for key in desired.owned_annotations if key in annotations]
        for key in removed:
            del annotations[key]
        info["removed"]["annotations"] = removed
        if removed and not annotations:
            del container[ANNOTATIONS_KEY]

    if env:
        names = set(desired.owned_env) - set([ROOT_CA_DIR_ENV])
        removed_env, kept = [], []

        def ours(name, value):
            if name in names:
                return True
            if name != ROOT_CA_DIR_ENV:
                return False
            if value is not None and helm_text(value) in ours_root:
                return True
            kept.append(name)
            return False

        if target.env_style == "list":
            remaining = []
            for entry in env:
                name = _entry_name(entry)
                value = entry.get("value") if isinstance(entry, dict) and "valueFrom" not in entry else None
                if name is not None and ours(name, value):
                    removed_env.append(name)
                else:
                    remaining.append(entry)
        else:
            remaining = dict((name, value) for name, value in env.items() if not ours(name, value))
            removed_env = [name for name in env if name not in remaining]
        if removed_env:
            if remaining:
                container[ENV_KEY] = remaining
            else:
                del container[ENV_KEY]
        info["removed"]["env"] = removed_env
        if kept:
            info["kept_env"] = sorted(set(kept))
            info["warnings"].append(
                "%s sets ROOT_CA_DIR to a value this collection did not set (ours: %s); it was kept. Remove it "
                "by hand if istiod should go back to its default CA directory."
                % (where(target, ENV_KEY), ", ".join(sorted(ours_root))))
    if info["removed"]["annotations"] or info["removed"]["env"]:
        _prune(new, target.container, keep_top=target.kind is not None)
    return new, info


# ---------------------------------------------------------------------------------------------------------
# istio_multiroot: ISTIO_MULTIROOT_MESH=true for istiod, PROXY_CONFIG_XDS_AGENT=true for the proxies
# ---------------------------------------------------------------------------------------------------------

def _go_bool(value):
    """True, False, or None (not a boolean Go's strconv.ParseBool reads) for an env or metadata value."""
    text = helm_text(value) if isinstance(value, (bool, int, float, str)) else None
    if text in GO_TRUE:
        return True
    if text in GO_FALSE:
        return False
    return None


def _refuse_not_true(name, where_, value):
    shown = "set with valueFrom" if value is _VALUE_FROM else "%r" % (value,)
    raise MeshPkiError(
        "%s already sets %s to %s, and istio_multiroot=true needs it true: with it, istiod %s. This task does not "
        "override a setting the user made: set %s to \"true\" there yourself (or remove it), or run with "
        "istio_multiroot=false to leave it as it is. Nothing was changed."
        % (where_, name, shown,
           "ignores a root-cert.pem whose set of roots changes during a root rotation (ISTIO_MULTIROOT_MESH)"
           if name == MULTIROOT_ENV else
           "cannot hand the proxies the new trust bundle over XDS (PROXY_CONFIG_XDS_AGENT in the mesh's default "
           "proxy metadata)", name))


def _mapping(doc, path, create, what):
    """The mapping at ``path`` in ``doc`` (created when ``create``), None when missing; a non-mapping on the way is
    an error naming it."""
    node = doc
    for depth, key in enumerate(path):
        child = node.get(key)
        if child is None:
            if not create:
                return None
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            raise MeshPkiError("%s is %s, expected a mapping: fix the document so that %s can hold %s."
                               % (".".join(path[:depth + 1]), type_name(child), ".".join(path), what))
        node = child
    return node


def _ensure_multiroot_env(container, target):
    env = _env(container, target)
    label = where(target, ENV_KEY)
    if target.env_style == "map":
        env = container.setdefault(ENV_KEY, {}) if env is None else env
        if MULTIROOT_ENV not in env:
            env[MULTIROOT_ENV] = "true"
        elif not _go_bool(env[MULTIROOT_ENV]):
            _refuse_not_true(MULTIROOT_ENV, label, env[MULTIROOT_ENV])
        return
    env = container.setdefault(ENV_KEY, []) if env is None else env
    entries = [entry for entry in env if _entry_name(entry) == MULTIROOT_ENV]
    for entry in entries:
        if "valueFrom" in entry:
            _refuse_not_true(MULTIROOT_ENV, label, _VALUE_FROM)
        if not _go_bool(entry.get("value")):
            _refuse_not_true(MULTIROOT_ENV, label, entry.get("value"))
    if not entries:
        env.append({"name": MULTIROOT_ENV, "value": "true"})


def _ensure_metadata(doc, path):
    metadata = _mapping(doc, path, True, "the mesh's default proxy metadata")
    label = ".".join(path)
    if XDS_AGENT_METADATA not in metadata:
        metadata[XDS_AGENT_METADATA] = "true"
    elif not _go_bool(metadata[XDS_AGENT_METADATA]):
        _refuse_not_true(XDS_AGENT_METADATA, label, metadata[XDS_AGENT_METADATA])


def _tsb_overlays(kube_spec, create):
    """The kubeSpec's overlays list (created when ``create``) and the indexes of the overlays of the IstioOperator
    the TSB operator generates."""
    overlays = kube_spec.get("overlays") if kube_spec is not None else None
    if overlays is None:
        if not create:
            return None, []
        overlays = kube_spec["overlays"] = []
    if not isinstance(overlays, list):
        raise MeshPkiError("spec.components.istio.kubeSpec.overlays is %s, expected a list of overlays "
                           "({apiVersion, kind, name, patches})." % type_name(overlays))
    ours = [index for index, overlay in enumerate(overlays) if isinstance(overlay, dict)
            and (overlay.get("apiVersion"), overlay.get("kind"), overlay.get("name")) == TSB_ISTIO_OPERATOR]
    for index in ours:
        if not isinstance(overlays[index].get("patches") or [], list):
            raise MeshPkiError("spec.components.istio.kubeSpec.overlays[%d] (IstioOperator %s) has patches that are "
                               "%s, expected a list of {path, value}." % (index, TSB_ISTIO_OPERATOR[2],
                                                                          type_name(overlays[index]["patches"])))
    return overlays, ours


def _patch_sets(patch):
    """How an overlay patch acts on our key: ("exact", value), ("ancestor", value-or-missing), or None."""
    path = patch.get("path") if isinstance(patch, dict) else None
    if not isinstance(path, str):
        return None
    if path == TSB_XDS_AGENT_PATCH:
        return "exact", patch.get("value")
    if not TSB_XDS_AGENT_PATCH.startswith(path + "."):
        return None
    value = patch.get("value")
    for key in TSB_XDS_AGENT_PATCH[len(path) + 1:].split("."):
        if not isinstance(value, dict) or key not in value:
            return "ancestor", _MISSING
        value = value[key]
    return "ancestor", value


def _ensure_tsb_metadata(doc, target):
    """PROXY_CONFIG_XDS_AGENT=true through an overlay patch of the generated IstioOperator; the patch must be the
    last one touching that key (a later patch of proxyMetadata or a parent as a whole would replace it)."""
    kube_spec = _mapping(doc, target.mesh, True, "overlays")
    overlays, ours = _tsb_overlays(kube_spec, True)
    last = None
    for index in ours:
        for position, patch in enumerate(overlays[index].get("patches") or []):
            how = _patch_sets(patch)
            if how is None:
                continue
            label = "spec.components.istio.kubeSpec.overlays[%d].patches[%d] (path %s)" % (
                index, position, patch["path"])
            if how[1] is not _MISSING and not _go_bool(how[1]):
                _refuse_not_true(XDS_AGENT_METADATA, label, how[1])
            last = (index, position, how)
    if last is not None and last[2][1] is not _MISSING:
        return  # the last patch that decides already sets it true
    for index in ours:  # our own patch, followed by a patch that replaces it: moved to the end
        patches = overlays[index].get("patches") or []
        kept = [patch for patch in patches if _patch_sets(patch) != ("exact", "true")]
        if len(kept) != len(patches):
            overlays[index]["patches"] = kept
    patch = {"path": TSB_XDS_AGENT_PATCH, "value": "true"}
    if ours:
        overlays[ours[-1]]["patches"] = list(overlays[ours[-1]].get("patches") or []) + [patch]
    else:
        overlays.append({"apiVersion": TSB_ISTIO_OPERATOR[0], "kind": TSB_ISTIO_OPERATOR[1],
                         "name": TSB_ISTIO_OPERATOR[2], "patches": [patch]})


def multiroot_present(doc, target):
    """Write ISTIO_MULTIROOT_MESH=true in istiod's env and PROXY_CONFIG_XDS_AGENT=true in the mesh's default proxy
    metadata into ``doc`` (in place). A value already true for Go (``true``, ``1``, ``True``, ...) is kept as it is;
    a false or unreadable value set by the user is refused (MeshPkiError naming it), not overridden."""
    _ensure_multiroot_env(_container(doc, target, create=True), target)
    if target.name == "tsb_controlplane":
        _ensure_tsb_metadata(doc, target)
    else:
        _ensure_metadata(doc, target.mesh)


def multiroot_absent(doc, target):
    """Remove PROXY_CONFIG_XDS_AGENT from the mesh's default proxy metadata (for a TSB ControlPlane: our overlay
    patch; an overlay left without patches goes, and so do the mappings left empty); returns the removed names.
    The ISTIO_MULTIROOT_MESH env entry goes with the other env names (``Desired.owned_env``)."""
    if target.name != "tsb_controlplane":
        metadata = _mapping(doc, target.mesh, False, "the mesh's default proxy metadata")
        if metadata is None or XDS_AGENT_METADATA not in metadata:
            return []
        del metadata[XDS_AGENT_METADATA]
        _prune(doc, target.mesh, keep_top=target.kind is not None)
        return [XDS_AGENT_METADATA]
    kube_spec = _mapping(doc, target.mesh, False, "overlays")
    overlays, ours = _tsb_overlays(kube_spec, False)
    removed = False
    for index in reversed(ours):
        overlay = overlays[index]
        patches = overlay.get("patches") or []
        kept = [patch for patch in patches if (_patch_sets(patch) or ("",))[0] != "exact"]
        if len(kept) == len(patches):
            continue
        removed = True
        overlay["patches"] = kept
        if not kept and set(overlay) <= set(["apiVersion", "kind", "name", "patches"]):
            del overlays[index]
    if not removed:
        return []
    if not overlays:
        del kube_spec["overlays"]
        _prune(doc, target.mesh, keep_top=True)
    return [XDS_AGENT_METADATA]


def merge_patch_diff(before, after):
    """The RFC 7386 merge patch that turns ``before`` into ``after`` (lists are replaced as a whole)."""
    patch = {}
    for key in before:
        if key not in after:
            patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        elif before[key] != value:
            if isinstance(value, dict) and isinstance(before[key], dict):
                patch[key] = merge_patch_diff(before[key], value)
            else:
                patch[key] = copy.deepcopy(value)
    return patch


# ---------------------------------------------------------------------------------------------------------
# live objects
# ---------------------------------------------------------------------------------------------------------

def describe_object(target, namespace, name):
    resource = "%s.%s" % (target.plural, target.group)
    return "%s '%s/%s' (%s, resource %s)" % (target.kind, namespace, name, api_version(target), resource)


def custom_objects_api(params, warn):
    """CustomObjectsApi for the kubeconfig/context in params; ``warn`` (module.warn) as for api_client."""
    kubernetes = kubernetes_library("The kubernetes Python library (>= 24.2.0) is needed in live mode (pip install "
                                    "kubernetes); file mode (path) does not need it.")
    return kubernetes.client.CustomObjectsApi(api_client(params, warn))


def without_server_fields(obj):
    """A copy of ``obj`` without metadata.managedFields (noise in a diff)."""
    obj = copy.deepcopy(obj)
    if isinstance(obj.get("metadata"), dict):
        obj["metadata"].pop("managedFields", None)
    return obj


def reconcile_live(api, target, namespace, name, transform, check_mode, retries=CONFLICT_RETRIES):
    """Read the object, transform it, and merge-patch the difference guarded by its resourceVersion.

    A 409 Conflict (the object changed since our read) re-reads and retries, at most ``retries`` times. In check
    mode the patch is sent with ``dryRun=All`` (validated and authorised by the server, never stored); nothing is
    sent when nothing changes. Returns ``dict(changed, before, after, object, info, attempts, patch)``.
    """
    what = describe_object(target, namespace, name)
    attempts = 0
    while True:
        attempts += 1
        try:
            current = api.get_namespaced_custom_object(target.group, target.version, namespace, target.plural, name,
                                                       _request_timeout=REQUEST_TIMEOUT)
        except Exception as e:  # ApiException and transport errors, translated in one place
            raise describe_api_error(e, "read", what)
        before = without_server_fields(current)
        after, info = transform(before)
        result = dict(changed=after != before, before=before, after=after, info=info, attempts=attempts,
                      object=before, patch=None)
        if not result["changed"]:
            return result
        patch = merge_patch_diff(before, after)
        patch.setdefault("metadata", {})["resourceVersion"] = (before.get("metadata") or {}).get("resourceVersion")
        result["patch"] = patch
        try:
            answer = api.patch_namespaced_custom_object(
                target.group, target.version, namespace, target.plural, name, patch,
                dry_run="All" if check_mode else None, field_manager=FIELD_MANAGER,
                _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT)
        except Exception as e:
            if is_api_exception(e, 409):
                if attempts <= retries:
                    continue
                raise MeshPkiError(
                    "Failed to patch %s: it kept changing under us - %d conflicting updates (409) in a row. Another "
                    "controller or user is writing it; retry later." % (what, attempts), status=409, attempts=attempts)
            raise describe_api_error(e, "patch (dry run)" if check_mode else "patch", what)
        result["object"] = without_server_fields(answer) if isinstance(answer, dict) else after
        return result


def edit_live(module, target, transform):
    """Live mode of tsb_controlplane_annotations: the object ``name``/``namespace`` of ``module.params`` through
    the Kubernetes API (reconcile_live). Returns ``(changed, result, notes)`` as istio.manifest.edit_manifest."""
    params = module.params
    missing = [option for option in ("name", "namespace") if not params[option]]
    if missing:
        raise MeshPkiError("Live mode needs %s: set the %s of the %s to edit, or set path to edit a manifest file "
                           "instead." % (" and ".join(missing), " and ".join(missing), target.kind))
    api = custom_objects_api(params, module.warn)
    outcome = reconcile_live(api, target, params["namespace"], params["name"], transform, module.check_mode)
    metadata = outcome["object"].get("metadata") or {}
    result = dict(applied_to="live", name=params["name"], namespace=params["namespace"], info=outcome["info"],
                  attempts=outcome["attempts"], object=outcome["object"],
                  resource_version=(outcome["before"].get("metadata") or {}).get("resourceVersion")
                  if module.check_mode else metadata.get("resourceVersion"))
    header = "%s %s/%s" % (target.kind, params["namespace"], params["name"])
    result["diff"] = dict(before=dump_yaml(outcome["before"]), after=dump_yaml(outcome["after"]),
                          before_header=header, after_header=header)
    return outcome["changed"], result, []


def manage_annotations(module):
    """tsb_controlplane_annotations: istiod's ROOT_CA_DIR and injector annotations merged into (state=present) or
    removed from (absent) the target, in the manifest ``path`` (file mode) or the live object. ``module`` gives
    params, check_mode, warn() (and the AnsibleModule file helpers in file mode). Returns the module result."""
    params = module.params
    target = TARGETS[params["target"]]
    present = params["state"] == "present"
    desired = desired_state(params)

    def transform(doc):
        return apply_present(doc, target, desired) if present else apply_absent(doc, target, desired)

    changed, result, notes = (edit_manifest if params["path"] else edit_live)(module, target, transform)
    info = result.pop("info")
    for warning in info["warnings"] + notes:
        module.warn(warning)
    env = desired.env if present else []
    if present and desired.multiroot:
        env = env + [{"name": MULTIROOT_ENV, "value": "true"}]
    result.update(
        changed=changed, target=target.name, api_version=api_version(target), kind=target.kind,
        env=env, annotations=desired.annotations if present else {},
        proxy_metadata={XDS_AGENT_METADATA: "true"} if present and desired.multiroot else {},
        removed=info["removed"], kept_env=info["kept_env"],
    )
    return result
