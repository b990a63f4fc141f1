# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where istiod's env and pod annotations live in a TSB ControlPlane, an IstioOperator and the istiod Helm
values; the merge that keeps everything the user has; the removal of exactly what the collection adds; and
the two ways of writing the result: a YAML manifest file (GitOps) or the live object (merge patch).

The pure part (:func:`desired_state`, :func:`apply_present`, :func:`apply_absent`, :func:`merge_patch_diff`,
:class:`Manifest`) has no module object and no network. :func:`write_file` and :func:`reconcile_live` do the
I/O. Every failure is a ``MeshPkiError`` whose message names the object or file and the fix.

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
import errno
import os
import shutil
import stat
import tempfile
import traceback
from collections import namedtuple

from ansible_collections.meshpki.vault_ca.plugins.module_utils._errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils._injector import (
    OPENBAO_PREFIX,
    ROOT_CA_DIR_ENV,
    VAULT_PREFIX,
    InjectorError,
    build_injection,
    managed_keys,
    normalize_prefix,
    normalize_secret_volume_path,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils._kube_client import (
    HAS_KUBERNETES,
    KUBERNETES_IMPORT_ERROR,
    api_client,
    describe_api_error,
)

try:
    import yaml
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_YAML = True
    YAML_IMPORT_ERROR = None

try:
    from kubernetes.client import CustomObjectsApi
    from kubernetes.client.rest import ApiException
except ImportError:
    CustomObjectsApi = None
    ApiException = None

# How many times a patch refused with 409 Conflict (someone else changed the object between our read and our
# patch) is retried with a fresh read before giving up.
CONFLICT_RETRIES = 5
FIELD_MANAGER = "meshpki.vault_ca"
MERGE_PATCH = "application/merge-patch+json"
REQUEST_TIMEOUT = 60

Target = namedtuple("Target", "name group version kind plural container env_style")

TARGETS = {
    "tsb_controlplane": Target("tsb_controlplane", "install.tetrate.io", "v1alpha1", "ControlPlane",
                               "controlplanes", ("spec", "components", "istio", "kubeSpec", "deployment"), "list"),
    "istio_operator": Target("istio_operator", "install.istio.io", "v1alpha1", "IstioOperator",
                             "istiooperators", ("spec", "components", "pilot", "k8s"), "list"),
    "helm_values": Target("helm_values", None, None, None, None, ("pilot",), "map"),
}

# File mode limits (issue #14). A Kubernetes object is at most ~1.5 MiB (etcd's request limit), so a manifest
# of a ControlPlane / IstioOperator / values file is far below 4 MiB; a bigger file is refused before it is read
# (PyYAML needs ~35 times the file size in memory). The module option max_manifest_size raises the limit.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
# Nodes that YAML aliases may add in one file when expanded (each use of *anchor adds the size of what the anchor
# names). A few anchors in a real manifest add hundreds; a 1 KB "billion laughs" adds 10**9, which every later
# walk of the data (compare, deepcopy, dump, JSON) would pay for. The loader counts while composing and stops.
MAX_ALIAS_NODES = 100000

ENV_KEY = "env"
ANNOTATIONS_KEY = "podAnnotations"
KNOWN_PREFIXES = (VAULT_PREFIX, OPENBAO_PREFIX)


def api_version(target):
    return "%s/%s" % (target.group, target.version) if target.group else None


def where(target, *keys):
    return ".".join(target.container + keys)


# ---------------------------------------------------------------------------------------------------------
# desired state
# ---------------------------------------------------------------------------------------------------------

class Desired(object):
    """What this collection manages for one set of options."""

    def __init__(self, env, annotations, owned_annotations, owned_env, prefix, secret_volume_path):
        self.env = env                              # [{"name", "value"}], ROOT_CA_DIR first
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
            extra_annotations=extra_annotations, auth_mount=params.get("auth_mount"),
            vault_namespace=params.get("vault_namespace"),
        )
        prefix = normalize_prefix(params["annotation_prefix"])
        owned = managed_keys(prefix, extra_env)
        volume = normalize_secret_volume_path(params["secret_volume_path"])
    except InjectorError as e:
        raise MeshPkiError("Invalid injector options: %s." % e)
    return Desired(
        env=injection["env"], annotations=injection["annotations"],
        owned_annotations=sorted(set(owned["annotations"]) | set(extra_annotations)),
        owned_env=owned["env"], prefix=prefix, secret_volume_path=volume,
    )


# ---------------------------------------------------------------------------------------------------------
# pure merge / removal on one document or object
# ---------------------------------------------------------------------------------------------------------

def _type_name(value):
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


def _container(doc, target, create):
    """The mapping at target.container in doc (created when ``create``), or None when missing."""
    node = doc
    for depth, key in enumerate(target.container):
        child = node.get(key)
        if child is None:
            if not create:
                return None
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            raise MeshPkiError("%s is %s, expected a mapping: fix the document so that %s can hold env and "
                               "podAnnotations." % (".".join(target.container[:depth + 1]), _type_name(child),
                                                    ".".join(target.container)))
        node = child
    return node


def _annotations(container, target):
    value = container.get(ANNOTATIONS_KEY)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise MeshPkiError("%s is %s, expected a mapping of annotation keys to strings."
                           % (where(target, ANNOTATIONS_KEY), _type_name(value)))
    return value


def _env(container, target):
    value = container.get(ENV_KEY)
    if value is None:
        return None
    expected = list if target.env_style == "list" else dict
    if not isinstance(value, expected):
        raise MeshPkiError("%s is %s, expected %s." % (
            where(target, ENV_KEY), _type_name(value),
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
        raise MeshPkiError("The document is %s, expected a mapping." % _type_name(new))
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
    return new, dict(warnings=warnings, removed=dict(annotations=[], env=[]), kept_env=[])


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
    """``(new_doc, info)``: ``doc`` (not modified) without what this collection adds."""
    new = copy.deepcopy(doc) if doc is not None else {}
    if not isinstance(new, dict):
        raise MeshPkiError("The document is %s, expected a mapping." % _type_name(new))
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
# YAML text
# ---------------------------------------------------------------------------------------------------------

def _require_yaml():
    if not HAS_YAML:
        raise MeshPkiError("PyYAML is needed to read and write YAML manifests (pip install PyYAML).",
                           exception=YAML_IMPORT_ERROR)


if HAS_YAML:
    class _Dumper(yaml.SafeDumper):
        """kubectl-like YAML: block scalars for multi-line text, double quotes only where needed."""

    def _represent_str(dumper, value):
        tag = "tag:yaml.org,2002:str"
        if "\n" in value:
            return dumper.represent_scalar(tag, value, style="|")
        if dumper.resolve(yaml.ScalarNode, value, (True, False)) != tag:
            return dumper.represent_scalar(tag, value, style='"')
        return dumper.represent_scalar(tag, value)

    _Dumper.add_representer(str, _represent_str)

    class ManifestRefused(yaml.YAMLError):
        """The text is YAML, but a manifest this module will not read (str(): why and how to fix it)."""

    _SIZE = "_meshpki_expanded_nodes"
    _MERGE_TAG = "tag:yaml.org,2002:merge"

    class _ManifestLoader(yaml.SafeLoader):
        """``yaml.SafeLoader`` (same resolver and constructors, so documents load exactly as with ``safe_load_all``)
        that refuses while composing, before any Python data is built: a key twice in one mapping (at any depth,
        in any document), an alias to the list or mapping that holds it, and aliases adding more than
        ``max_alias_nodes`` nodes in all (each node records how many nodes it stands for once aliases are
        expanded, so the count costs one addition per alias)."""

        max_alias_nodes = MAX_ALIAS_NODES

        def __init__(self, stream):
            super(_ManifestLoader, self).__init__(stream)
            self.alias_nodes = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                node = self.anchors.get(event.anchor)
                if node is not None:  # an unknown alias: the composer's own error follows
                    size = getattr(node, _SIZE, None)
                    if size is None:
                        raise ManifestRefused(
                            "the alias *%s at line %d refers to the list or mapping that contains it (line %d), a "
                            "structure without end. Write the value out instead of the alias."
                            % (event.anchor, event.start_mark.line + 1, node.start_mark.line + 1))
                    self.alias_nodes += size
                    if self.alias_nodes > self.max_alias_nodes:
                        raise ManifestRefused(
                            "its YAML aliases expand to more than %d nodes (the limit) - reached at the alias *%s at "
                            "line %d. That is an alias bomb (\"billion laughs\"), not a manifest; nothing was built "
                            "from it. Write the repeated values out or use fewer aliases."
                            % (self.max_alias_nodes, event.anchor, event.start_mark.line + 1))
            return super(_ManifestLoader, self).compose_node(parent, index)

        def compose_scalar_node(self, anchor):
            node = super(_ManifestLoader, self).compose_scalar_node(anchor)
            setattr(node, _SIZE, 1)
            return node

        def compose_sequence_node(self, anchor):
            node = super(_ManifestLoader, self).compose_sequence_node(anchor)
            setattr(node, _SIZE, 1 + sum(getattr(item, _SIZE, 1) for item in node.value))
            return node

        def compose_mapping_node(self, anchor):
            node = super(_ManifestLoader, self).compose_mapping_node(anchor)
            seen = {}
            for key_node, _value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key = self._key(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # unhashable: the constructor reports it
                    continue
                if first is not key_node:
                    raise ManifestRefused(
                        "the key '%s' appears twice in one mapping, at line %d and line %d. A YAML loader keeps only "
                        "the last one and silently drops the other. Remove or merge one of the two."
                        % (_short(key_node.value), first.start_mark.line + 1, key_node.start_mark.line + 1))
            setattr(node, _SIZE, 1 + sum(getattr(k, _SIZE, 1) + getattr(v, _SIZE, 1) for k, v in node.value))
            return node

        def _key(self, key_node):
            """The key as the mapping will hold it (``1``, ``0x1`` and ``1.0`` are one key, as in a dict)."""
            constructor = self.yaml_constructors.get(key_node.tag)
            return constructor(self, key_node) if constructor is not None else key_node.value


def _short(text, limit=80):
    return text if len(text) <= limit else text[:limit] + "..."


def _size_text(size):
    return "%d bytes (%.1f MiB)" % (size, size / 1048576.0)


def load_manifest_yaml(text, max_alias_nodes=MAX_ALIAS_NODES):
    """``(docs, nodes)`` of ``text``: the documents as ``yaml.safe_load_all`` gives them and their composed nodes
    (with the positions :class:`Manifest` edits by). Raises ``ManifestRefused`` for a duplicate key, a recursive
    alias or too many nodes added by aliases, ``yaml.YAMLError`` for invalid YAML."""
    _require_yaml()

    def loader(stream):
        instance = _ManifestLoader(stream)
        instance.max_alias_nodes = max_alias_nodes
        return instance

    # Two passes as before: constructing flattens merge keys (<<) in the nodes, and the editor needs them as written.
    docs = list(yaml.load_all(text, Loader=loader))
    nodes = list(yaml.compose_all(text, Loader=loader))
    return docs, nodes


def dump_yaml(data):
    """YAML text of ``data`` (one document, no ``---``), keys in their order."""
    _require_yaml()
    return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, sort_keys=False, allow_unicode=True,
                     width=1 << 30)


def _describe_doc(index, doc):
    if not isinstance(doc, dict):
        return "#%d: %s" % (index + 1, "empty" if doc is None else _type_name(doc))
    metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    name = metadata.get("name")
    if metadata.get("namespace"):
        name = "%s/%s" % (metadata["namespace"], name)
    kind = doc.get("kind") or "(no kind)"
    return "#%d: %s %s %s" % (index + 1, kind, doc.get("apiVersion") or "(no apiVersion)", name or "(no name)")


def _line_start(text, index):
    return text.rfind("\n", 0, index) + 1


def _content_end(node):
    """Index just after the last character of ``node``'s own content (not the comments or blank lines after)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False) or not node.value:
        return node.end_mark.index
    last = node.value[-1]
    if isinstance(node, yaml.MappingNode):
        last = last[1]
    return max(_content_end(last), node.start_mark.index)


def _region(text, node):
    """``(start, end)`` of the lines holding ``node`` (a block mapping that starts its line), or None."""
    if not isinstance(node, yaml.MappingNode) or node.flow_style or not node.value:
        return None
    start = node.start_mark.index
    if text[_line_start(text, start):start].strip(" "):
        return None
    end = _content_end(node)
    if end <= start:
        return None
    if text[end - 1] != "\n":
        newline = text.find("\n", end)
        end = len(text) if newline < 0 else newline + 1
    return start, end


def _has_comment(text):
    return any(line.lstrip().startswith("#") or " #" in line for line in text.splitlines())


def _node_at(node, path):
    for key in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        found = None
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found = value_node
        if found is None:
            return None
        node = found
    return node


def _data_at(doc, path):
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def _replaced(doc, path, value):
    result = copy.deepcopy(doc)
    parent = result
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = copy.deepcopy(value)
    return result


def _too_big(path, size, limit, at_least=""):
    return MeshPkiError("Refused to read the manifest '%s': it is %s%s, over the limit of %s. A manifest of istiod's "
                        "settings is far smaller; check that path names the right file, or raise max_manifest_size "
                        "if it really is." % (path, at_least, _size_text(size), _size_text(limit)))


class Manifest(object):
    """A YAML file with one or more documents, edited so that what is not ours keeps its text.

    Only the smallest block mapping that holds the change (``deployment`` / ``k8s`` / ``pilot``, or the deepest
    existing parent) is re-serialised; other documents, other keys and their comments stay byte for byte.
    """

    def __init__(self, path, text):
        _require_yaml()
        self.path = path
        self.text = text
        self.newline = "\r\n" if "\r\n" in text else "\n"
        try:
            self.docs, self.nodes = load_manifest_yaml(text)
        except ManifestRefused as e:
            raise MeshPkiError("Refused to read the manifest '%s': %s" % (path, e))
        except yaml.YAMLError as e:
            raise MeshPkiError("The file '%s' is not valid YAML: %s" % (path, e))
        except RecursionError:
            raise MeshPkiError("Refused to read the manifest '%s': its lists or mappings are nested too deeply for "
                               "the YAML loader. Flatten the structure." % path)
        # Empty documents ('---' alone) have no node; keep the lists aligned on documents with content.
        if len(self.nodes) != len(self.docs):
            raise MeshPkiError("The file '%s' could not be split into YAML documents reliably." % path)

    @classmethod
    def load(cls, path, missing_ok=False, max_size=MAX_MANIFEST_SIZE):
        """The manifest at ``path`` (a symlink is followed). Refused before reading: a dangling symlink, anything
        but a regular file, a file over ``max_size`` bytes."""
        if os.path.islink(path) and not os.path.exists(path):
            raise MeshPkiError("The manifest '%s' is a symbolic link to '%s', which does not exist. Create the file it "
                               "points to, or give the path of the file itself." % (path, os.readlink(path)))
        if not os.path.exists(path):
            if missing_ok:
                return cls(path, "")
            raise MeshPkiError("The manifest '%s' does not exist. Give the path of the YAML file that holds the "
                               "object (file mode), or leave path unset to edit the live object." % path)
        if os.path.isdir(path):
            raise MeshPkiError("The path '%s' is a directory; give the YAML manifest file." % path)
        try:
            st = os.stat(path)
        except (IOError, OSError) as e:
            raise MeshPkiError("Cannot read the manifest '%s': %s" % (path, e.strerror or e))
        if not stat.S_ISREG(st.st_mode):
            raise MeshPkiError("Refused to read the manifest '%s': it is not a regular file (a device, pipe or "
                               "socket). Give the path of the YAML file." % path)
        if st.st_size > max_size:
            raise _too_big(path, st.st_size, max_size)
        try:
            with open(path, "rb") as f:
                raw = f.read(max_size + 1)
        except (IOError, OSError) as e:
            raise MeshPkiError("Cannot read the manifest '%s': %s" % (path, e.strerror or e))
        if len(raw) > max_size:  # it grew after the check
            raise _too_big(path, len(raw), max_size, "at least ")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MeshPkiError("The manifest '%s' is not UTF-8 text (%s)." % (path, e))
        return cls(path, text)

    def find(self, target, name=None, namespace=None):
        """Index of the one document for ``target`` (and name/namespace when given)."""
        if target.kind is None:
            content = [i for i, doc in enumerate(self.docs) if doc is not None]
            if not content:
                return None
            if len(content) > 1:
                raise MeshPkiError("The Helm values file '%s' has %d YAML documents; a values file has one."
                                   % (self.path, len(content)))
            if not isinstance(self.docs[content[0]], dict):
                raise MeshPkiError("The Helm values file '%s' holds %s, expected a mapping of values."
                                   % (self.path, _type_name(self.docs[content[0]])))
            return content[0]
        matches = []
        for index, doc in enumerate(self.docs):
            if not isinstance(doc, dict) or doc.get("kind") != target.kind or doc.get("apiVersion") != api_version(
                    target):
                continue
            metadata = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            if name is not None and metadata.get("name") != name:
                continue
            if namespace is not None and metadata.get("namespace") != namespace:
                continue
            matches.append(index)
        wanted = "%s (%s)%s%s" % (target.kind, api_version(target), " named '%s'" % name if name else "",
                                  " in namespace '%s'" % namespace if namespace else "")
        if not matches:
            found = "; ".join(_describe_doc(i, doc) for i, doc in enumerate(self.docs)) or "no documents"
            raise MeshPkiError("No document in '%s' is a %s. Documents found: %s. Check target, name and namespace."
                               % (self.path, wanted, found))
        if len(matches) > 1:
            raise MeshPkiError("%d documents in '%s' are a %s (%s): set name (and namespace) to pick one."
                               % (len(matches), self.path, wanted,
                                  "; ".join(_describe_doc(i, self.docs[i]) for i in matches)))
        return matches[0]

    def render(self, index, new_doc, container):
        """``(text, notes)``: the file text with document ``index`` replaced by ``new_doc`` (``index`` None: the
        file has no document yet and ``new_doc`` is appended)."""
        expected = list(self.docs)
        if index is None:
            prefix = self.text
            if prefix and not prefix.endswith(("\n", "\r")):
                prefix += self.newline
            return self._checked(prefix + self._nl(dump_yaml(new_doc)), expected + [new_doc]), []
        expected[index] = new_doc
        for (start, end), column, value, label in self._candidates(index, new_doc, container):
            lines = dump_yaml(value).splitlines(True)
            indented = lines[:1] + [(" " * column + line) if line.strip() else line for line in lines[1:]]
            text = self.text[:start] + self._nl("".join(indented)) + self.text[end:]
            if self._reads_back(text, expected):
                notes = []
                if _has_comment(self.text[start:end]):
                    notes.append("comments inside %s of '%s' are not kept: that mapping is rewritten (the rest of "
                                 "the file keeps its text)" % (label, self.path))
                return text, notes
        texts = [self._nl(dump_yaml(doc)) if doc is not None else "" for doc in expected]
        separator = "---" + self.newline
        text = separator + separator.join(texts) if len(texts) > 1 else texts[0]
        notes = ["'%s' was rewritten as a whole: its comments and formatting were not kept" % self.path]
        return self._checked(text, expected), notes

    def _candidates(self, index, new_doc, container):
        """Text regions that may be re-serialised alone, smallest first: the container mapping or its deepest
        existing parent when nothing outside it changes, then the whole document."""
        old_doc, root = self.docs[index], self.nodes[index]
        for depth in range(len(container), 0, -1):
            path = container[:depth]
            node = _node_at(root, path)
            new_value = _data_at(new_doc, path)
            if node is None or not isinstance(new_value, dict) or not new_value:
                continue
            if not isinstance(_data_at(old_doc, path), dict) or _replaced(old_doc, path, new_value) != new_doc:
                continue
            region = _region(self.text, node)
            if region is not None:
                yield region, node.start_mark.column, new_value, ".".join(path)
        region = _region(self.text, root) if isinstance(new_doc, dict) and new_doc else None
        if region is not None:
            yield region, root.start_mark.column, new_doc, "the document"

    def _nl(self, text):
        return text.replace("\n", self.newline) if self.newline != "\n" else text

    @staticmethod
    def _reads_back(text, expected):
        try:
            return list(yaml.safe_load_all(text)) == expected
        except yaml.YAMLError:
            return False

    def _checked(self, text, expected):
        if not self._reads_back(text, expected):
            raise MeshPkiError("Internal error: the rewritten '%s' does not read back as intended; nothing was "
                               "written. Please report this with the file." % self.path)
        return text


def write_file(module, path, text, backup):
    """Write ``text`` to the manifest ``path`` atomically; back the old file up first when asked. Returns the backup
    path or None.

    A symlink is written through: the file it resolves to is replaced and the link stays a link (a GitOps checkout
    that links a cluster's manifest to a shared one keeps its links). The new content goes to a temporary file in
    the directory of that real file, which gets the file's owner, group, mode, extended attributes (ACLs) and
    SELinux context, is fsync'ed, then ``os.replace``'d over it; the directory is fsync'ed after. A new file gets
    0666 minus the umask, as with ``AnsibleModule.atomic_move``. When the owner or group cannot be kept (not root,
    file of another user) nothing is written and the error says so - ``atomic_move`` would silently change them.
    """
    real = os.path.realpath(path)
    shown = path if real == os.path.abspath(path) else "%s' -> '%s" % (path, real)  # inside '...' quotes
    try:
        current = os.stat(real)
    except (IOError, OSError) as e:
        if e.errno != errno.ENOENT:
            raise MeshPkiError("Cannot write the manifest '%s': %s" % (shown, e.strerror or e))
        current = None
    directory = os.path.dirname(real)
    context = None
    if module.selinux_enabled():
        context = module.selinux_context(real) if current is not None else module.selinux_default_context(real)
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(real), suffix=".tmp")
    except (IOError, OSError) as e:
        raise MeshPkiError("Cannot write next to '%s' (a temporary file in '%s' is needed for an atomic write): %s"
                           % (shown, directory, e.strerror or e))
    backup_file = None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            _copy_attributes(f.fileno(), tmp, real, current, shown)
            os.fsync(f.fileno())
        if context is not None:
            module.set_context_if_different(tmp, context, False)
        if backup and current is not None:
            backup_file = module.backup_local(path)
        os.replace(tmp, real)
    except (IOError, OSError) as e:
        raise MeshPkiError("Cannot write the manifest '%s': %s; it was left as it was." % (shown, e.strerror or e))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_directory(directory)
    return backup_file


def _copy_attributes(fd, tmp, real, current, shown):
    """Give the open temporary file ``fd`` the owner, group, mode and extended attributes of ``real`` (its stat
    result ``current``, None for a new file)."""
    if current is None:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        return
    mine = os.fstat(fd)
    if (mine.st_uid, mine.st_gid) != (current.st_uid, current.st_gid):
        try:
            os.fchown(fd, current.st_uid, current.st_gid)
        except (IOError, OSError) as e:
            raise MeshPkiError(
                "Refused to write the manifest '%s': the new file could not keep its owner and group (uid %d, gid %d) "
                "- %s. Nothing was written. Run the task as that owner or with become, or change the file's owner."
                % (shown, current.st_uid, current.st_gid, e.strerror or e))
    try:
        shutil.copystat(real, tmp)  # extended attributes (POSIX ACLs) where the file system has them
    except (IOError, OSError):
        pass  # best effort, as atomic_move: the mode below is what must hold
    os.fchmod(fd, stat.S_IMODE(current.st_mode))
    os.utime(tmp, None)


def _fsync_directory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except (IOError, OSError):
        return
    try:
        os.fsync(fd)
    except (IOError, OSError):
        pass  # not every file system can fsync a directory; the rename itself is atomic
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------
# live objects
# ---------------------------------------------------------------------------------------------------------

def describe_object(target, namespace, name):
    resource = "%s.%s" % (target.plural, target.group)
    return "%s '%s/%s' (%s, resource %s)" % (target.kind, namespace, name, api_version(target), resource)


def custom_objects_api(params, warn):
    """CustomObjectsApi for the kubeconfig/context in params; ``warn`` (module.warn) as for api_client."""
    if not HAS_KUBERNETES or CustomObjectsApi is None:
        raise MeshPkiError("The kubernetes Python library (>= 24.2.0) is needed in live mode (pip install "
                           "kubernetes); file mode (path) does not need it.", exception=KUBERNETES_IMPORT_ERROR)
    return CustomObjectsApi(api_client(params, warn))


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
            if ApiException is not None and isinstance(e, ApiException) and e.status == 409:
                if attempts <= retries:
                    continue
                raise MeshPkiError(
                    "Failed to patch %s: it kept changing under us - %d conflicting updates (409) in a row. Another "
                    "controller or user is writing it; retry later." % (what, attempts), status=409, attempts=attempts)
            raise describe_api_error(e, "patch (dry run)" if check_mode else "patch", what)
        result["object"] = without_server_fields(answer) if isinstance(answer, dict) else after
        return result
