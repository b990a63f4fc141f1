# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Manifest files (file mode of tsb_controlplane_annotations): read a YAML file within limits (size, alias
expansion), find the document of the target object, render the changed document back keeping the rest of the file
byte for byte where it can, and write it atomically through symlinks keeping owner, mode, ACLs and SELinux
context (:func:`edit_manifest` does all of it for one task). Every failure is a ``MeshPkiError`` that names the
file and the fix.
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

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError

try:
    import yaml
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_YAML = True
    YAML_IMPORT_ERROR = None

# File mode limits (issue #14). A Kubernetes object is at most ~1.5 MiB (etcd's request limit), so a manifest
# of a ControlPlane / IstioOperator / values file is far below 4 MiB; a bigger file is refused before it is read
# (PyYAML needs ~35 times the file size in memory). The module option max_manifest_size raises the limit.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
# Nodes that YAML aliases may add in one file when expanded (each use of *anchor adds the size of what the anchor
# names). A few anchors in a real manifest add hundreds; a 1 KB "billion laughs" adds 10**9, which every later
# walk of the data (compare, deepcopy, dump, JSON) would pay for. The loader counts while composing and stops.
MAX_ALIAS_NODES = 100000


def api_version(target):
    """The apiVersion of the documents of ``target`` (istio.controlplane.TARGETS); None for Helm values."""
    return "%s/%s" % (target.group, target.version) if target.group else None


def type_name(value):
    """'a mapping', 'a list', ... for messages about a YAML value."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number"}.get(type(value), type(value).__name__)


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
        return "#%d: %s" % (index + 1, "empty" if doc is None else type_name(doc))
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
                                   % (self.path, type_name(self.docs[content[0]])))
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
            if start == end:  # a new key appended to an existing mapping: every line indented, nothing replaced
                indented = [(" " * column + line) if line.strip() else line for line in lines]
                if start and self.text[start - 1] not in "\r\n":
                    indented.insert(0, "\n")
            else:
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
            if node is None and isinstance(new_value, (dict, list)) and new_value:
                insertion = self._insertion(index, new_doc, path, new_value)
                if insertion is not None:
                    yield insertion
                continue
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

    def _insertion(self, index, new_doc, path, new_value):
        """The candidate that appends the new key ``path[-1]`` at the end of its existing parent block mapping, when
        nothing else changes (``((end, end), column, {key: value}, label)``), or None."""
        old_doc = self.docs[index]
        parent_path = path[:-1]
        parent = _node_at(self.nodes[index], parent_path)
        old_parent = _data_at(old_doc, parent_path) if parent_path else old_doc
        if not isinstance(old_parent, dict) or path[-1] in old_parent or not isinstance(parent, yaml.MappingNode):
            return None
        if _replaced(old_doc, path, new_value) != new_doc:
            return None
        region = _region(self.text, parent)
        if region is None:
            return None
        column = parent.value[0][0].start_mark.column
        return (region[1], region[1]), column, {path[-1]: new_value}, ".".join(path)

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


def _with_subtree(doc, source, path):
    """A copy of ``doc`` whose value at ``path`` is ``source``'s (removed when ``source`` has none there; the
    parents it needs are taken from ``source``)."""
    result = copy.deepcopy(doc)
    value = _data_at(source, path)
    node, wanted = result, source
    for key in path[:-1]:
        wanted = wanted.get(key) if isinstance(wanted, dict) else None
        if not isinstance(node.get(key), dict):
            if not isinstance(wanted, dict):
                return result  # neither has the parents: nothing to carry over at this path
            node[key] = {}
        node = node[key]
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)
    return result


def render_regions(manifest, index, before, after, regions):
    """``(text, notes)`` for document ``index`` going from ``before`` to ``after`` when the change may touch several
    mappings (istiod's env and the mesh config): each region is re-serialised on its own, one after the other, so
    the text between them keeps its comments; what is left (parents emptied by a removal) goes as one last step."""
    if index is None:
        return manifest.render(index, after, regions[0])
    current, notes = before, []
    for path in regions:
        step = _with_subtree(current, after, path)
        if step != current:
            text, more = manifest.render(index, step, path)
            notes.extend(more)
            manifest, current = Manifest(manifest.path, text), step
    if current != after:
        text, more = manifest.render(index, after, regions[0])
        notes.extend(more)
        manifest = Manifest(manifest.path, text)
    return manifest.text, notes


def _identity(doc):
    metadata = (doc or {}).get("metadata") if isinstance(doc, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    return metadata.get("name"), metadata.get("namespace")


def edit_manifest(module, target, transform):
    """File mode of tsb_controlplane_annotations: load ``module.params['path']`` within its limits, find the
    target's document, ``transform`` it and write the file back (not in check mode, not when nothing changes).
    ``module`` gives params, check_mode and the AnsibleModule file helpers write_file() uses.

    Returns ``(changed, result, notes)``: ``result`` holds ``info`` (from ``transform``) and ``diff``; ``notes``
    are warnings of the rendering (comments dropped inside the rewritten mapping)."""
    params = module.params
    path = params["path"]
    if params["max_manifest_size"] < 1:
        raise MeshPkiError("max_manifest_size is %d: give the largest manifest size to read, in bytes (default %d, "
                           "4 MiB)." % (params["max_manifest_size"], MAX_MANIFEST_SIZE))
    manifest = Manifest.load(path, missing_ok=target.kind is None, max_size=params["max_manifest_size"])
    index = manifest.find(target, params["name"], params["namespace"])
    before = manifest.docs[index] if index is not None else None
    after, info = transform(before)
    before_doc = before if before is not None else {}
    changed = after != before_doc
    notes = []
    result = dict(applied_to="file", manifest=path, info=info)
    result["name"], result["namespace"] = _identity(before_doc)
    if changed:
        text, notes = render_regions(manifest, index, before, after, getattr(target, "regions", None)
                                     or (target.container,))
        if not module.check_mode:
            backup_file = write_file(module, path, text, params["backup"])
            if backup_file:
                result["backup_file"] = backup_file
    header = "%s (%s)" % (path, target.kind or "Helm values")
    before_text = dump_yaml(before) if before is not None else ""  # no document yet: a new values file
    after_text = dump_yaml(after) if changed or before is not None else ""
    result["diff"] = dict(before=before_text, after=after_text, before_header=header, after_header=header)
    return changed, result, notes


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
