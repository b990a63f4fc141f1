"""Every plugin's documentation parses and renders with ansible-doc (what ansible-doc, the docs site
and ansible-lint read), and every module is in an action group of meta/runtime.yml."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from harness.playbook import REPO

MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))
FILTERS = ["istio_ca_policy_rules"]


def _doc(plugin_type, names):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "-t", plugin_type, "--json"]
                         + ["meshpki.vault_ca." + n for n in names], env=env, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    return json.loads(out.stdout)


# Modules added after the first release.
ADDED = {"vault_pki_root_rotation": "0.2.0"}


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders_with_examples_and_return(module):
    doc = _doc("module", [module])["meshpki.vault_ca." + module]
    assert doc["doc"]["short_description"] and doc["doc"]["version_added"] == ADDED.get(module, "0.1.0")
    assert "meshpki.vault_ca.%s:" % module in doc["examples"]
    assert doc["return"], "RETURN is empty"


def test_filter_docs_render():
    assert set(_doc("filter", FILTERS)) == {"meshpki.vault_ca." + f for f in FILTERS}


def test_every_module_is_in_an_action_group():
    with open(os.path.join(REPO, "meta", "runtime.yml")) as f:
        groups = yaml.safe_load(f)["action_groups"]
    grouped = set(m for members in groups.values() for m in members)
    assert grouped == set(MODULES)
