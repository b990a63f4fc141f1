# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Manifest files (file mode) against hostile or unusual input (security issue #14): duplicate keys, alias bombs,
size, non-regular files, symlinks, mode and owner. The module itself is run on the same cases in
tests/integration/test_tsb_controlplane_annotations.py and tests/reliability/test_manifest_limits.py."""

import builtins
import json
import os
import threading

import pytest
import yaml

from ansible_collections.meshpki.vault_ca.plugins.module_utils._controlplane import (
    TARGETS,
    Manifest,
    apply_present,
    desired_state,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils._errors import MeshPkiError

CP = TARGETS["tsb_controlplane"]
LIMIT = 4 * 1024 * 1024
ALIAS_LIMIT = 100000

CONTROLPLANE = """\
# the control plane
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: docker.io/tetrate   # registry mirror
  components:
    istio:
      kubeSpec:
        deployment:
          replicaCount: 2
"""


def guide():
    return desired_state(dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret",
                              kv_path="istioca", kv_field="ca-key.pem", role="istiod",
                              secret_volume_path="/etc/cacerts-vault", annotation_prefix="vault.hashicorp.com"))


def billion_laughs(levels=9, width=10):
    """The classic: ``width ** levels`` strings from about 1 KB of YAML."""
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append("a%d: &a%d [%s]" % (i, i, ",".join(["*a%d" % (i - 1)] * width)))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# duplicate keys
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, key, lines", [
    ("kind: ControlPlane\nkind: IstioOperator\n", "kind", (1, 2)),
    (CONTROLPLANE + "          env: []\n          replicaCount: 3\n", "replicaCount", (13, 15)),
    ("a: 1\n---\n" + CONTROLPLANE.replace("  name: controlplane\n", "  name: controlplane\n  name: other\n"),
     "name", (7, 8)),
    ("spec:\n  env:\n    - name: A\n      value: x\n      name: B\n", "name", (3, 5)),
    ("pilot: {env: {A: 1, B: 2, A: 3}}\n", "A", (1, 1)),
    ("'key': 1\nkey: 2\n", "key", (1, 2)),          # same string however it is quoted
    ("1: a\n0x1: b\n", "0x1", (1, 2)),              # same int: one dict key
])
def test_duplicate_keys_are_refused_with_the_file_and_both_lines(text, key, lines):
    with pytest.raises(MeshPkiError) as e:
        Manifest("gitops/cp.yaml", text)
    assert str(e.value) == (
        "Refused to read the manifest 'gitops/cp.yaml': the key '%s' appears twice in one mapping, at line %d and "
        "line %d. A YAML loader keeps only the last one and silently drops the other. Remove or merge one of the two."
        % ((key,) + lines))


def test_merge_keys_and_equal_keys_in_different_mappings_are_not_duplicates():
    text = ("defaults: &d {replicaCount: 1, hub: x}\nspec:\n  <<: *d\n  replicaCount: 2\n  a: {name: n}\n"
            "  b: {name: n}\n")
    assert Manifest("m.yaml", text).docs == [{"defaults": {"replicaCount": 1, "hub": "x"},
                                              "spec": {"replicaCount": 2, "hub": "x", "a": {"name": "n"},
                                                       "b": {"name": "n"}}}]
    with pytest.raises(MeshPkiError, match="the key 'replicaCount' appears twice in one mapping, at line 4 and line 5"):
        Manifest("m.yaml", text.replace("  a: {name: n}\n", "  replicaCount: 3\n"))


# ---------------------------------------------------------------------------------------------------------
# aliases
# ---------------------------------------------------------------------------------------------------------

def test_an_alias_bomb_is_refused_while_composing():
    bomb = billion_laughs()  # 10**9 strings when expanded; the code before this check loaded it (and then spent
    assert len(bomb) < 1100  # minutes comparing and re-serialising it)
    with pytest.raises(MeshPkiError) as e:
        Manifest("bomb.yaml", bomb)
    assert str(e.value).startswith(
        "Refused to read the manifest 'bomb.yaml': its YAML aliases expand to more than 100000 nodes (the limit) - "
        "reached at the alias *a")
    assert "alias bomb (\"billion laughs\")" in str(e.value) and "use fewer aliases" in str(e.value)


def test_an_alias_inside_what_it_names_is_refused():
    with pytest.raises(MeshPkiError) as e:
        Manifest("loop.yaml", "spec:\n  a: &a\n    b: [1, *a]\n")
    assert str(e.value) == ("Refused to read the manifest 'loop.yaml': the alias *a at line 3 refers to the list or "
                            "mapping that contains it (line 2), a structure without end. Write the value out instead "
                            "of the alias.")


def test_aliases_up_to_the_limit_load_and_stay_bounded_when_dumped():
    # 10 levels of 3 aliases over one string: 3**10 + ... nodes expanded. Below the limit it loads; what it loads
    # expands (JSON has no aliases) to a size bounded by the limit, whatever walks it later.
    ok = billion_laughs(levels=9, width=3)  # 3 + 9 + ... + 3**9 = 29523 alias-added nodes, and the lists
    docs = Manifest("ok.yaml", CONTROLPLANE + ok).docs
    assert len(json.dumps(docs)) < 16 * ALIAS_LIMIT
    with pytest.raises(MeshPkiError, match="expand to more than 100000 nodes"):
        Manifest("big.yaml", CONTROLPLANE + billion_laughs(levels=11, width=3))
    # a real manifest with a few anchors, merge keys included, edits as before
    text = CONTROLPLANE.replace("          replicaCount: 2\n", "          resources: &r {cpu: 1}\n"
                                "          limits: *r\n          base: &b {x: 1}\n          more: {<<: *b, y: 2}\n")
    manifest = Manifest("m.yaml", text)
    new, _info = apply_present(manifest.docs[0], CP, guide())
    out, _notes = manifest.render(0, new, CP.container)
    assert yaml.safe_load(out) == new


# ---------------------------------------------------------------------------------------------------------
# size and kind of file
# ---------------------------------------------------------------------------------------------------------

def _refuse_open_of(monkeypatch, path):
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        assert str(file) != str(path), "the manifest was opened before its size was checked"
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_size_limit_is_checked_before_reading(tmp_path, monkeypatch):
    exact = tmp_path / "exact.yaml"
    exact.write_text(CONTROLPLANE)
    assert Manifest.load(str(exact), max_size=len(CONTROLPLANE)).docs[0]["kind"] == "ControlPlane"  # at the limit
    big = tmp_path / "big.yaml"
    with open(str(big), "w") as f:
        f.write(CONTROLPLANE + "# " + "x" * (LIMIT - len(CONTROLPLANE) - 2) + "\n")
    assert os.path.getsize(str(big)) == LIMIT + 1
    _refuse_open_of(monkeypatch, big)
    with pytest.raises(MeshPkiError) as e:
        Manifest.load(str(big))
    assert str(e.value) == (
        "Refused to read the manifest '%s': it is 4194305 bytes (4.0 MiB), over the limit of 4194304 bytes (4.0 MiB). "
        "A manifest of istiod's settings is far smaller; check that path names the right file, or raise "
        "max_manifest_size if it really is." % big)
    _refuse_open_of(monkeypatch, exact)
    with pytest.raises(MeshPkiError, match=r"it is %d bytes \(0.0 MiB\), over the limit of %d bytes"
                       % (len(CONTROLPLANE), len(CONTROLPLANE) - 1)):
        Manifest.load(str(exact), max_size=len(CONTROLPLANE) - 1)


def test_a_pipe_is_refused_without_opening_it(tmp_path):
    fifo = str(tmp_path / "fifo.yaml")
    os.mkfifo(fifo)
    # A writer, so that code which opens the pipe does not hang the test: it reads an empty file instead.
    writer = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_WRONLY)), daemon=True)
    writer.start()
    try:
        with pytest.raises(MeshPkiError, match="Refused to read the manifest '%s': it is not a regular file" % fifo):
            Manifest.load(fifo)
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # releases the writer if nobody opened the pipe
        writer.join(5)


def test_a_dangling_symlink_is_refused_even_for_helm_values(tmp_path):
    link = tmp_path / "values.yaml"
    os.symlink("../shared/values.yaml", str(link))
    with pytest.raises(MeshPkiError) as e:
        Manifest.load(str(link), missing_ok=True)
    assert str(e.value) == ("The manifest '%s' is a symbolic link to '../shared/values.yaml', which does not exist. "
                            "Create the file it points to, or give the path of the file itself." % link)
