# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: input_problems
short_description: What is wrong with inputs that form Vault paths, certificate subjects or certificates
version_added: 0.2.0
author:
  - meshpki maintainers (@meshpki)
description:
  - Checks each input with the same code the modules run before their first request, and returns one sentence
    per problem, naming the input as the user typed it (a role variable, for example).
  - Path-forming inputs (C(mount), C(path), C(name), C(field), C(namespace), C(k8s_name)) may hold no C(.),
    C(..) or empty segment, no C(?), C(#), C(%), quotes, braces, backslashes, white space or control characters;
    C(name), C(field) and C(k8s_name) no C(/) at all.
  - C(subject) inputs may hold no control, bidi or other format characters; C(certificate) inputs no private key.
  - C(duration) inputs are positive durations (V(8760h), V(30m), seconds); with C(shorter_than) or C(at_most)
    (another input's C(name) and C(value)) they are compared with it. C(url) inputs are C(http(s\)://) URLs,
    C(volume_path) an absolute directory apart from C(/etc/cacerts), C(annotation_prefix) a DNS subdomain.
  - The role P(meshpki.vault_ca.istio_vault_ca#role) runs it as its first task, so a bad variable fails the play
    before anything is sent to Vault or Kubernetes.
options:
  _input:
    description:
      - The inputs, each a dictionary with C(name) (shown in the message), C(value), C(kind) (one of V(mount),
        V(path), V(name), V(field), V(namespace), V(k8s_name), V(subject), V(certificate), V(duration), V(url),
        V(volume_path), V(annotation_prefix)) and optionally C(required) (an empty or missing value is a problem;
        otherwise it is skipped), and for durations C(shorter_than) or C(at_most).
    type: list
    elements: dict
    required: true
'''

EXAMPLES = r'''
- name: Fail before the first request when a variable would escape its mount
  ansible.builtin.fail:
    msg: "{{ problems | join(' ') }}"
  when: problems | length > 0
  vars:
    problems: >-
      {{ [{'name': 'my_kv_path', 'value': my_kv_path, 'kind': 'path', 'required': true}]
         | meshpki.vault_ca.input_problems }}
'''

RETURN = r'''
_value:
  description: One sentence per problem (empty when every input is fine). A private key is never quoted.
  type: list
  elements: str
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.inputs import check_kubernetes_host, check_subject
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import (
    InjectorError,
    normalize_prefix,
    normalize_secret_volume_path,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.durations import to_seconds
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import KINDS, check_path

OTHER_KINDS = ("subject", "certificate", "duration", "url", "volume_path", "annotation_prefix")


def _duration(name, value, entry):
    """A positive duration; with ``shorter_than`` / ``at_most`` ({name, value}) compared with another one."""
    try:
        seconds = to_seconds(value, name)
    except ValueError as e:
        return "%s (nothing was sent)." % str(e).rstrip(".")
    if seconds <= 0:
        return "%s must be longer than 0 (nothing was sent)." % name
    for key, ok, words in (("shorter_than", lambda a, b: a < b, "shorter than"),
                           ("at_most", lambda a, b: a <= b, "at most")):
        other = entry.get(key)
        if not other or other.get("value") in (None, ""):
            continue
        try:
            limit = to_seconds(other["value"], other["name"])
        except ValueError:
            continue  # reported on its own entry
        if not ok(seconds, limit):
            return ("%s %s must be %s %s %s (nothing was sent)."
                    % (name, value, words, other["name"], other["value"]))
    return None


def _problem(name, value, kind, entry):
    if kind == "certificate":
        if "PRIVATE KEY-----" in str(value):
            return "%s contains a private key; pass only certificates (nothing was sent)." % name
        return None
    if kind == "duration":
        return _duration(name, value, entry)
    try:
        if kind == "url":
            check_kubernetes_host(name, str(value), outcome="nothing was sent")
        elif kind == "subject":
            check_subject(name, value)
        elif kind == "volume_path":
            normalize_secret_volume_path(value)
        elif kind == "annotation_prefix":
            normalize_prefix(value)
        else:
            check_path(name, value, kind)
    except MeshPkiError as e:
        return str(e)
    except InjectorError as e:
        text = str(e)
        for option in ("secret_volume_path", "prefix"):
            if text.startswith(option + " "):
                text = name + text[len(option):]
        return "%s (nothing was sent)." % text.rstrip(".")
    return None


def input_problems(inputs):
    if not isinstance(inputs, (list, tuple)):
        raise AnsibleFilterError("input_problems expects a list of {name, value, kind}, got %s"
                                 % type(inputs).__name__)
    problems = []
    for entry in inputs:
        if not isinstance(entry, dict) or "name" not in entry or "kind" not in entry:
            raise AnsibleFilterError("input_problems: each input needs name and kind, got %r" % (entry,))
        name, kind, value = entry["name"], entry["kind"], entry.get("value")
        if kind not in KINDS and kind not in OTHER_KINDS:
            raise AnsibleFilterError("input_problems: unknown kind '%s' for %s; use one of %s"
                                     % (kind, name, ", ".join(sorted(list(KINDS) + list(OTHER_KINDS)))))
        if value is None or value == "":
            if entry.get("required"):
                problems.append("%s is empty and must be set (nothing was sent)." % name)
            continue
        problem = _problem(name, value, kind, entry)
        if problem:
            problems.append(problem)
    return problems


class FilterModule(object):
    def filters(self):
        return {"input_problems": input_problems}
