# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Vault ACL policies: parse the HCL (or JSON) policy language into a canonical form so that two texts that mean
the same policy compare equal, render rules to canonical HCL (pure), and the policy at ``sys/policies/acl/<name>``
read, compared and written only when it changes (:func:`ensure_policy`, the logic of the vault_policy module).

Meaning-preserving normalisation: whitespace, comments, the order of path blocks, the order and
duplicates of capabilities, and repeated blocks for one path (Vault merges them) do not matter.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError

_TOKEN = re.compile(r'''
    (?P<ws>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<heredoc><<-?(?P<tag>[A-Za-z_][A-Za-z0-9_]*)\n.*?\n\s*(?P=tag)(?=\s|$))
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_\-\.]*)
  | (?P<punct>[{}\[\]=,:])
''', re.VERBOSE | re.DOTALL)


class PolicyParseError(ValueError):
    pass


def _tokens(text):
    pos = 0
    out = []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            line = text.count("\n", 0, pos) + 1
            raise PolicyParseError("unexpected character %r on line %d" % (text[pos], line))
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "tag" else "heredoc"
        if m.group("ws") is not None:
            continue
        if m.group("heredoc") is not None:
            body = m.group("heredoc").split("\n", 1)[1].rsplit("\n", 1)[0]
            out.append(("string", body))
        elif kind == "string":
            out.append(("string", json.loads(m.group("string"))))
        elif kind == "number":
            out.append(("number", m.group("number")))
        else:
            out.append((kind, m.group(kind)))
    return out


class _Parser(object):
    """HCL body := (key ('=' value | label* '{' body '}'))*; blocks become [key, labels, body]."""

    def __init__(self, text):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise PolicyParseError("expected %s but found %r" % (value or kind, tok[1]))
        self.i += 1
        return tok

    def body(self, closing=None):
        items = []
        while self.peek()[1] != closing or self.peek()[0] not in ("punct", None):
            if closing is None and self.peek()[0] is None:
                break
            kind, key = self.peek()
            if kind not in ("ident", "string"):
                raise PolicyParseError("expected a key but found %r" % key)
            self.i += 1
            if self.peek() in (("punct", "="), ("punct", ":")):
                self.i += 1
                items.append(("attr", key, self.value()))
            else:
                labels = []
                while self.peek()[0] == "string":
                    labels.append(self.take()[1])
                self.take("punct", "{")
                items.append(("block", key, labels, self.body("}")))
                self.take("punct", "}")
            if self.peek() == ("punct", ","):
                self.i += 1
        return items

    def value(self):
        kind, val = self.peek()
        if kind in ("string", "number", "ident"):
            self.i += 1
            return val
        if val == "[":
            self.i += 1
            values = []
            while self.peek() != ("punct", "]"):
                values.append(self.value())
                if self.peek() == ("punct", ","):
                    self.i += 1
            self.take("punct", "]")
            return values
        if val == "{":
            self.i += 1
            items = self.body("}")
            self.take("punct", "}")
            return dict((i[1], i[2]) for i in items if i[0] == "attr")
        raise PolicyParseError("expected a value but found %r" % val)


def _canonical_value(value):
    if isinstance(value, dict):
        return dict((k, _canonical_value(v)) for k, v in value.items())
    if isinstance(value, list):
        return sorted(set(str(v) for v in value))
    return str(value)


def _merge(paths, path, settings):
    current = paths.setdefault(path, {})
    for key, value in settings.items():
        if key == "capabilities" and key in current:
            value = sorted(set(current[key]) | set(value))
        current[key] = value


def _from_json(data):
    paths = {}
    blocks = data.get("path") or {}
    if isinstance(blocks, dict):
        blocks = [blocks]
    for block in blocks:
        for path, settings in block.items():
            settings = settings[0] if isinstance(settings, list) and settings else settings
            _merge(paths, path, dict((k, _canonical_value(v)) for k, v in (settings or {}).items()))
    return paths


def canonical_policy(text):
    """Return {path: {"capabilities": [...sorted], other settings}} for a policy text.

    Raises PolicyParseError when the text is not the HCL or JSON policy language."""
    stripped = (text or "").strip()
    if stripped.startswith("{"):
        try:
            return _from_json(json.loads(stripped))
        except ValueError as e:
            raise PolicyParseError("invalid JSON policy: %s" % e)
    paths = {}
    for item in _Parser(stripped).body():
        if item[0] != "block" or item[1] != "path" or len(item[2]) != 1:
            raise PolicyParseError("only 'path \"<path>\" { ... }' blocks belong in a policy (found %r)" % item[1])
        settings = dict((i[1], _canonical_value(i[2])) for i in item[3] if i[0] == "attr")
        _merge(paths, item[2][0], settings)
    return paths


def same_policy(a, b):
    """True when the two policy texts mean the same. Falls back to comparing the texts with all
    white space removed when either one is outside the grammar understood here."""
    try:
        return canonical_policy(a) == canonical_policy(b)
    except PolicyParseError:
        return "".join((a or "").split()) == "".join((b or "").split())


def _hcl_value(value, indent):
    if isinstance(value, dict):
        pad = " " * (indent + 2)
        inner = "".join("%s%s = %s\n" % (pad, json.dumps(k), _hcl_value(v, indent + 2))
                        for k, v in sorted(value.items()))
        return "{\n%s%s}" % (inner, " " * indent)
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(json.dumps(str(v)) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(str(value))


def render_rules(rules):
    """Canonical HCL for a list of {path, capabilities, <other settings>} dicts, in the given order.

    Raises ValueError naming the rule at fault."""
    blocks = []
    for index, rule in enumerate(rules or []):
        if not isinstance(rule, dict) or not rule.get("path"):
            raise ValueError("rules[%d] needs a non-empty 'path'" % index)
        caps = rule.get("capabilities")
        if not caps or not isinstance(caps, (list, tuple)) or not all(isinstance(c, str) and c for c in caps):
            raise ValueError("rules[%d] (path '%s') needs 'capabilities', a non-empty list of strings"
                             % (index, rule["path"]))
        lines = ['path %s {' % json.dumps(rule["path"]), '  capabilities = %s' % _hcl_value(list(caps), 2)]
        for key in sorted(k for k in rule if k not in ("path", "capabilities") and rule[k] is not None):
            lines.append("  %s = %s" % (key, _hcl_value(rule[key], 2)))
        lines.append("}")
        blocks.append("\n".join(lines))
    if not blocks:
        raise ValueError("rules must list at least one path")
    return "\n\n".join(blocks) + "\n"


# ---------------------------------------------------------------------------------------------------------
# What a policy grants on one path, the way Vault's ACL decides it (vault/acl.go)
# ---------------------------------------------------------------------------------------------------------

def merge_policies(*canonicals):
    """One canonical policy from several (a token holding them all): Vault unions the capabilities of
    rules for the same path string; a rule for another path string never adds to it."""
    merged = {}
    for canonical in canonicals:
        for path, settings in (canonical or {}).items():
            _merge(merged, path, dict(settings))
    return merged


def _segment_match(pattern, path):
    """``+`` matches exactly one segment; a trailing ``*`` matches any rest (the last literal part is then a
    prefix of its segment)."""
    is_prefix = pattern.endswith("*")
    parts = (pattern[:-1] if is_prefix else pattern).split("/")
    segments = path.split("/")
    if len(segments) < len(parts) or (not is_prefix and len(segments) != len(parts)):
        return False
    for index, part in enumerate(parts):
        if part == "+":
            continue
        if is_prefix and index == len(parts) - 1:
            return segments[index].startswith(part)
        if part != segments[index]:
            return False
    return True


def _priority(pattern):
    """Higher sorts later. Vault's order: the first ``+``/``*`` later; not ending in ``*``; fewer ``+``
    segments; longer; lexicographically greater."""
    marks = [i for i in (pattern.find("+"), pattern.find("*")) if i >= 0]
    first = min(marks) if marks else len(pattern)
    plus = sum(1 for part in pattern.split("/") if part == "+")
    return (first, not pattern.endswith("*"), -plus, len(pattern), pattern)


def matching_rule(canonical, path):
    """The path of the rule Vault applies to ``path`` in a canonical policy, or None when no rule matches.

    An exact rule wins; otherwise the matching glob (``*``) or segment wildcard (``+``) rule of highest
    priority - and only that one: capabilities of other matching rules do not add up."""
    path = path.strip("/")
    if path in canonical and "+" not in path and not path.endswith("*"):
        return path
    candidates = [pattern for pattern in canonical
                  if ("+" in pattern or pattern.endswith("*")) and _segment_match(pattern, path)]
    return max(candidates, key=_priority) if candidates else None


def grants(canonical, path, capability="read"):
    """``(granted, rule, capabilities)``: whether ``capability`` on ``path`` is allowed by the canonical policy
    (``deny`` in the applying rule refuses everything), which rule decided, and its capabilities."""
    rule = matching_rule(canonical, path)
    if rule is None:
        return False, None, []
    capabilities = list(canonical[rule].get("capabilities") or [])
    return capability in capabilities and "deny" not in capabilities, rule, capabilities


# ---------------------------------------------------------------------------------------------------------
# The policy at sys/policies/acl/<name> (the vault_policy module)
# ---------------------------------------------------------------------------------------------------------

PROTECTED = ("root", "default")

# The suboptions of one entry of vault_policy's ``rules``.
RULE_ARGSPEC = dict(
    path=dict(type="str", required=True),
    capabilities=dict(type="list", elements="str", required=True),
    allowed_parameters=dict(type="dict"),
    denied_parameters=dict(type="dict"),
    required_parameters=dict(type="list", elements="str"),
    min_wrapping_ttl=dict(type="str"),
    max_wrapping_ttl=dict(type="str"),
)


def desired_text(params):
    """The policy text to store: ``rules`` rendered, or ``policy`` with a final newline. MeshPkiError for empty text
    or invalid rules."""
    if params["rules"] is not None:
        try:
            return render_rules(params["rules"])
        except ValueError as e:
            raise MeshPkiError("Invalid rules for policy '%s': %s." % (params["name"], e))
    text = params["policy"]
    if not text or not text.strip():
        raise MeshPkiError("Policy '%s': policy text is empty; give HCL in policy or a list in rules." % params["name"])
    return text if text.endswith("\n") else text + "\n"


def ensure_policy(module):
    """vault_policy: the inputs are checked before the login; then read, compare by meaning (same_policy), and write
    (or delete) only a change, never in check mode. Returns the result with its diff."""
    params = module.params
    name = params["name"]
    if name in PROTECTED:
        raise MeshPkiError("Refusing to manage the built-in '%s' policy: it is Vault's own. Put your rules in a "
                           "policy of your own and attach it to the role or token." % name)
    present = params["state"] == "present"
    after = desired_text(params) if present else ""
    client = module.get_authenticated_client()
    path = "sys/policies/acl/%s" % name

    current = client.read(path, action="read policy")
    before = ((current or {}).get("data") or {}).get("policy") or ""
    exists = current is not None
    changed = (not exists or not same_policy(before, after)) if present else exists
    if not changed:
        after = before
    if changed and not module.check_mode:
        if present:
            client.write(path, {"policy": after}, action="write policy",
                         capability=("create", "update"), method="PUT")
        else:
            client.delete(path, action="delete policy")
    return dict(changed=changed, name=name, policy=after,
                diff=dict(before=before, after=after, before_header=path, after_header=path))
