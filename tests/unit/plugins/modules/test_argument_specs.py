# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every module's argument spec: built by module_spec() at import time, and no option of a module shadows a shared
one (issue #16: istio_ca_diagnose's own ``auth_mount``/``jwt``/``jwt_file`` replaced the login's, so with
``auth_method: approle`` it logged in at ``auth/kubernetes/login``)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib
import os

import pytest
import yaml

from ansible_collections.meshpki.vault_ca.plugins.module_utils.module import (
    SHARED_ARGSPECS,
    ArgspecClash,
    module_spec,
)

MODULES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "..", "plugins", "modules")
MODULES = sorted(name[:-3] for name in os.listdir(MODULES_DIR) if name.endswith(".py") and name != "__init__.py")
PACKAGE = "ansible_collections.meshpki.vault_ca.plugins.modules."


def test_every_module_is_listed():
    assert len(MODULES) >= 10 and "istio_ca_diagnose" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_spec_built_at_import_without_shadowing(name):
    module = importlib.import_module(PACKAGE + name)  # an ArgspecClash fails here, at import
    spec = getattr(module, "ARGUMENT_SPEC", None)
    assert isinstance(spec, dict), "%s: define ARGUMENT_SPEC = module_spec(...) at module level" % name
    fragments = yaml.safe_load(module.DOCUMENTATION).get("extends_documentation_fragment") or []
    for set_name in ("connection", "auth"):  # documented shared options are in the spec
        if "meshpki.vault_ca.%s" % set_name in fragments:
            assert set(SHARED_ARGSPECS[set_name]) <= set(spec), "%s: %s options missing" % (name, set_name)
    if "meshpki.vault_ca.ca_layout" in fragments:
        assert set(SHARED_ARGSPECS["ca_layout"]) <= set(spec), "%s: CA layout options missing" % name
    for option, definition in SHARED_ARGSPECS["ca_layout"].items():  # taken in part, never redefined
        if option in spec:
            assert spec[option] is definition, "%s: option %r redefines the shared CA layout option" % (name, option)
    for set_name in ("connection", "auth"):
        shared = SHARED_ARGSPECS[set_name]
        present = [option for option in shared if option in spec]
        if not present or "meshpki.vault_ca.%s" % set_name not in fragments:
            # Without the set there is nothing to shadow: a module that does not talk to Vault may name an option
            # of its own like a shared one (tsb_controlplane_annotations' namespace is the Kubernetes namespace).
            continue
        # A module that has a shared set has all of it, each option exactly the shared definition.
        assert present == list(shared), (name, set_name)
        for option in shared:
            assert spec[option] is shared[option], "%s: option %r shadows the shared %s option" % (
                name, option, set_name)
    own_aliases = [alias for option in spec.values() for alias in option.get("aliases") or ()]
    assert len(own_aliases) == len(set(own_aliases)), name


@pytest.mark.parametrize("own", [
    {"jwt": {"type": "str", "no_log": True}},
    {"auth_mount": {"type": "str", "default": "kubernetes"}},
    {"url": {"type": "str"}},
    {"istiod_jwt": {"type": "str", "aliases": ["jwt"]}},
    {"mount": {"type": "str", "aliases": ["namespace"]}},
])
def test_an_option_that_shadows_a_shared_one_is_refused(own):
    with pytest.raises(ArgspecClash) as caught:
        module_spec(own)
    assert "shadow" in str(caught.value) and "another name" in str(caught.value)


def test_ca_layout_options_are_shared_too():
    spec = module_spec({"mount": {"type": "str"}}, ca_layout=("root_mount", "kv_path"))
    assert spec["root_mount"] is SHARED_ARGSPECS["ca_layout"]["root_mount"] and "intermediate_mount" not in spec
    with pytest.raises(ArgspecClash):
        module_spec({"kv_path": {"type": "str"}}, ca_layout=("kv_path",))


def test_own_options_join_the_shared_ones():
    spec = module_spec({"istiod_jwt": {"type": "str", "no_log": True}})
    assert "istiod_jwt" in spec and "jwt" in spec and spec["jwt"] is SHARED_ARGSPECS["auth"]["jwt"]
    assert module_spec({"jwt": {"type": "str"}}, shared=()) == {"jwt": {"type": "str"}}
