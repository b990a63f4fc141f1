# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""THE checks of hostile input, used by every module (through MeshPkiModule / GuardedModule) and by the
role (through the ``meshpki.vault_ca.input_problems`` filter), before the first request:

- ``check_path(option, value, kind)``: an option that becomes part of a Vault path (a mount, a KV path, a
  name, a KV field, a Vault namespace) - no ``.``/``..``/empty segments, no ``?``, ``#``, ``%``, quotes,
  braces, backslashes, white space or control characters. What passes is percent-encoded when it is sent
  (``quote_request_path``), which also refuses any dot segment as the last line of defence.
- ``private_key_options(params)``: options other than no_log ones whose text holds a PRIVATE KEY block.
- ``check_subject(option, value)``: a certificate subject field without control, format (bidi) or line
  separator characters.
- ``kept_module_file(module)``: the AnsiballZ file (with the module's arguments) that
  ANSIBLE_KEEP_REMOTE_FILES leaves behind when pipelining is off.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import unicodedata
from urllib.parse import quote

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError

# What each kind of path-forming option is, for the error message, and whether it may hold '/'.
KINDS = {
    "mount": ("a Vault mount path", True, "such as 'pki' or 'team-a/pki'"),
    "path": ("a KV secret path inside its mount", True, "such as 'istioca' or 'clusters/east/istioca'"),
    "name": ("a single Vault name (no '/')", False, "such as 'istiod'"),
    "field": ("a KV field name (no '/')", False, "such as 'ca-key.pem'"),
    "namespace": ("a Vault namespace path", True, "such as 'team-a' or 'team-a/child'"),
    "k8s_name": ("a Kubernetes object name", False, "such as 'controlplane' or 'istio-system'"),
}
# Characters that a URL, a query, an ACL glob or an agent template would read as syntax.
FORBIDDEN = '?#%"\\{}`<>'
MAX_SEGMENT = 255
MAX_LENGTH = 1024
# Unicode categories never valid in a name: controls, format (bidi overrides, zero-width), separators,
# surrogates, private use, unassigned.
BAD_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp")
# Percent-encode everything but RFC 3986 unreserved and the sub-delimiters Vault's router takes literally.
SAFE_IN_SEGMENT = "-._~!$&'()*+,;=:@"


def shown(value):
    """A value as an error message may show it: control and bidi characters escaped, long values cut."""
    text = value if isinstance(value, str) else str(value)
    out = []
    for ch in text[:120]:
        if unicodedata.category(ch) in BAD_CATEGORIES and ch != " ":
            out.append(ch.encode("unicode_escape").decode("ascii") if ord(ch) > 0xff or ch in "\n\r\t"
                       else "\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return "'%s'%s" % ("".join(out), "... (%d characters)" % len(text) if len(text) > 120 else "")


def _bad_character(text):
    for ch in text:
        if ch in FORBIDDEN:
            return "the character '%s'" % ch
        category = unicodedata.category(ch)
        if category in BAD_CATEGORIES:
            if category == "Zs":
                return "white space"
            return "the %s character U+%04X" % ("control" if category == "Cc" else "invisible or format", ord(ch))
    return None


def path_problem(value, kind):
    """Why ``value`` cannot be a ``kind`` (see KINDS), or None. Leading/trailing '/' of slash kinds are fine
    (Vault strips them, so do we); an empty segment inside is not."""
    label, slashes, _example = KINDS[kind]
    if not isinstance(value, str):
        return "it is a %s, not a string" % type(value).__name__
    if len(value) > MAX_LENGTH:
        return "it is %d characters long (at most %d)" % (len(value), MAX_LENGTH)
    if kind == "k8s_name":
        if not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", value) or ".." in value or len(value) > 253:
            return "Kubernetes names are lower-case letters, digits, '-' and '.' (RFC 1123, at most 253)"
        return None
    text = value.strip("/") if slashes else value
    if not text:
        return "it is empty"
    if not slashes and "/" in text:
        return "it holds '/', and %s is one path segment" % label.split(" (")[0]
    for segment in text.split("/"):
        if segment == "":
            return "it holds an empty segment ('//')"
        if segment in (".", ".."):
            return "the segment '%s' would climb out of where it belongs" % segment
        if len(segment) > MAX_SEGMENT:
            return "a segment is %d characters long (at most %d)" % (len(segment), MAX_SEGMENT)
        bad = _bad_character(segment)
        if bad:
            return "it holds %s" % bad
    return None


def check_path(option, value, kind):
    """``value`` normalised (slashes stripped for slash kinds), or MeshPkiError naming ``option``."""
    problem = path_problem(value, kind)
    if problem:
        label, _slashes, example = KINDS[kind]
        raise MeshPkiError("%s %s is not %s: %s. Use letters, digits, '-', '_' and '.' in each segment, %s "
                           "(nothing was sent to Vault)." % (option, shown(value), label, problem, example),
                           option=option)
    return value.strip("/") if KINDS[kind][1] else value


def _values(params, dotted):
    """(display name, value) for a dotted option: 'vault_paths.kv_path' reaches into a sub-dict; a list
    of dicts is walked item by item (named 'option[1].sub')."""
    head, rest = dotted.partition(".")[::2]
    value = params.get(head) if isinstance(params, dict) else None
    if value is None:
        return []
    if not rest:
        return [(head, value)]
    items = value if isinstance(value, list) else [value]
    found = []
    for index, item in enumerate(items):
        for name, sub in _values(item, rest):
            prefix = "%s[%d]" % (head, index) if isinstance(value, list) else head
            found.append(("%s.%s" % (prefix, name), sub))
    return found


def check_path_options(params, path_options):
    """Check every option of ``path_options`` ({dotted option: kind}) that is set. Returns nothing; raises
    MeshPkiError for the first bad one (options in sorted order, so the error is stable)."""
    for dotted in sorted(path_options):
        kind = path_options[dotted]
        for name, value in _values(params, dotted):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    check_path("%s[%d]" % (name, index), item, kind)
            else:
                check_path(name, value, kind)


def quote_request_path(path):
    """The API path (without /v1/) percent-encoded segment by segment; MeshPkiError for a dot or empty
    segment, whatever built it - no request ever leaves its mount."""
    stripped = path.strip("/")
    segments = stripped.split("/")
    if not stripped or any(s in ("", ".", "..") for s in segments):
        raise MeshPkiError("Refusing to send a request to '%s': an empty, '.' or '..' segment would change which "
                           "Vault path it reaches. This is a bug if no option named it: please report it." % path)
    return "/".join(quote(s, safe=SAFE_IN_SEGMENT) for s in segments)
