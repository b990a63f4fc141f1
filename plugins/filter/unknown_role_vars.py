# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: unknown_role_vars
short_description: Variables with a role's prefix that the role does not know, with the nearest known name
version_added: 0.3.0
author:
  - meshpki maintainers (@meshpki)
description:
  - Takes the names of the defined variables that start with a role's prefix and returns one sentence per name that
    is in no entry point of the role's argument specs, is not private (prefix followed by C(_), for example
    C(istio_vault_ca__vault)) and is not in O(internal) - with the nearest known name when there is one.
  - The role C(meshpki.vault_ca.istio_vault_ca) runs it as its first check, so that a typo such as
    C(istio_vault_ca_manifest_pth) fails the play instead of silently switching the role from file mode to live mode.
options:
  _input:
    description: The names of the defined variables, for example C(q('ansible.builtin.varnames', '^istio_vault_ca_')).
    type: list
    elements: str
    required: true
  spec:
    description:
      - The role's argument specs as read from C(meta/argument_specs.yml) (the mapping with the key
        C(argument_specs)), or the mapping of entry points. Every option of every entry point is a known name.
    type: dict
    required: true
  internal:
    description: Further names that are known - results the role registers itself, variables of its playbooks.
    type: list
    elements: str
    default: []
  prefix:
    description: The prefix of the role's variables.
    type: str
    default: istio_vault_ca_
'''

EXAMPLES = r'''
- name: Fail on a variable the role does not know
  ansible.builtin.fail:
    msg: "{{ unknown | join(' ') }}"
  when: unknown | length > 0
  vars:
    unknown: >-
      {{ q('ansible.builtin.varnames', '^istio_vault_ca_')
         | meshpki.vault_ca.unknown_role_vars(lookup('ansible.builtin.file', role_path ~ '/meta/argument_specs.yml')
                                              | from_yaml) }}
'''

RETURN = r'''
_value:
  description: One sentence per unknown variable (empty when every name is known), sorted by name.
  type: list
  elements: str
'''

import difflib

from ansible.errors import AnsibleFilterError


def known_names(spec):
    """Every option name of every entry point of ``spec`` (argument_specs.yml, or its argument_specs mapping)."""
    if not isinstance(spec, dict):
        raise AnsibleFilterError("unknown_role_vars: spec must be the role's argument specs, got %s"
                                 % type(spec).__name__)
    entry_points = spec.get("argument_specs", spec)
    names = set()
    for name, entry in entry_points.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("options") or {}, dict):
            raise AnsibleFilterError("unknown_role_vars: entry point %r of spec has no options mapping" % (name,))
        names.update(entry.get("options") or {})
    return names


def unknown_role_vars(names, spec, internal=None, prefix="istio_vault_ca_"):
    if not isinstance(names, (list, tuple, set)):
        raise AnsibleFilterError("unknown_role_vars expects a list of variable names, got %s" % type(names).__name__)
    known = known_names(spec) | set(internal or [])
    candidates = sorted(known)
    problems = []
    for name in sorted(set(str(n) for n in names)):
        if not name.startswith(prefix) or name.startswith(prefix + "_") or name in known:
            continue
        close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
        hint = (" - did you mean %s?" % close[0]) if close else " - see the role's argument specs for the names."
        problems.append("%s is not a variable of this role%s Rename or remove it (nothing was sent)."
                        % (name, hint))
    return problems


class FilterModule(object):
    def filters(self):
        return {"unknown_role_vars": unknown_role_vars}
