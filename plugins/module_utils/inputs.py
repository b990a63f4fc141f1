# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks of option values that are not Vault paths: private keys where only certificates belong, certificate
subject fields, the Kubernetes API URL, and the module file ANSIBLE_KEEP_REMOTE_FILES leaves behind.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re
import unicodedata
from urllib.parse import urlsplit

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import BAD_CATEGORIES, shown

PRIVATE_KEY_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
                               re.DOTALL)


def _walk(value, name, spec, out):
    """Collect (option name, text) of every string in a parameter, skipping no_log (sub)options."""
    if isinstance(value, str):
        out.append((name, value))
    elif isinstance(value, dict):
        sub_spec = (spec or {}).get("options") or {}
        for key in sorted(value):
            entry = sub_spec.get(key) or {}
            if entry.get("no_log"):
                continue
            _walk(value[key], "%s.%s" % (name, key), entry, out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk(item, "%s[%d]" % (name, index), spec, out)


def private_key_options(params, argument_spec):
    """[(option, [secret strings to mask])] for every option, not itself no_log, holding a PRIVATE KEY block.

    The strings to mask are the whole value, each block, and each line of a block's body (so no part of the
    key survives in a log, even when only a piece of the value is shown)."""
    found = []
    for option in sorted(argument_spec):
        entry = argument_spec[option] or {}
        if entry.get("no_log") or option not in params:
            continue
        texts = []
        _walk(params.get(option), option, entry, texts)
        for name, text in texts:
            if "PRIVATE KEY-----" not in text:
                continue
            secrets = set([text])
            for match in PRIVATE_KEY_BLOCK.finditer(text):
                secrets.add(match.group(0))
                secrets.update(line.strip() for line in match.group(0).splitlines()
                               if len(line.strip()) >= 16 and "-----" not in line)
            found.append((name, secrets))
    return found


def check_subject(option, value):
    """A certificate subject field (CN, O, OU, ...): MeshPkiError for control, bidi/format or line separator
    characters, which a CA certificate must never carry."""
    if value is None:
        return value
    if not isinstance(value, str):
        value = str(value)
    for ch in value:
        category = unicodedata.category(ch)
        if category in BAD_CATEGORIES and category != "Zs":
            raise MeshPkiError(
                "%s %s holds the %s character U+%04X, which has no place in a certificate subject (it can hide or "
                "reorder what a person reads). Remove it (nothing was sent to Vault)."
                % (option, shown(value), "control" if category == "Cc" else "invisible or format", ord(ch)),
                option=option)
    return value


def check_kubernetes_host(option, host, outcome="nothing was changed"):
    """Vault stores any string as kubernetes_host and only fails at each login: MeshPkiError naming ``option`` for
    what is not an http(s) URL with a host (and a numeric port, if any)."""
    if host is None:
        return
    parts = urlsplit(host.strip())
    try:
        port_ok = parts.port is None or parts.port > 0  # .port raises ValueError when it is not a number
    except ValueError:
        port_ok = False
    if parts.scheme not in ("https", "http") or not parts.hostname or not port_ok or \
            any(ch.isspace() for ch in host.strip()):
        raise MeshPkiError("%s '%s' is not a URL: Vault posts TokenReviews to "
                           "<kubernetes_host>/apis/authentication.k8s.io/v1/tokenreviews, so give the API server's "
                           "address, for example https://kubernetes.default.svc or https://203.0.113.10:6443 "
                           "(%s)." % (option, host, outcome), option=option)


def kept_module_file(keep_remote_files, tmpdir):
    """The AnsiballZ file(s) left in the task's remote tmp dir when ANSIBLE_KEEP_REMOTE_FILES is on and the
    module was not pipelined (a pipelined module has no such directory, ``tmpdir`` is None)."""
    if not keep_remote_files or not tmpdir or not os.path.isdir(tmpdir):
        return []
    return sorted(glob.glob(os.path.join(tmpdir, "AnsiballZ_*")))
