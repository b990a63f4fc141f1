# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Manifest files (file mode) against hostile or unusual input (security issue #14): duplicate keys, alias bombs,
size, non-regular files, symlinks, mode and owner. The module itself is run on the same cases in
tests/integration/test_tsb_controlplane_annotations.py and tests/reliability/test_manifest_limits.py."""

import builtins
import errno
import json
import os
import shutil
import stat
import threading

import pytest
import yaml
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import (
    TARGETS,
    apply_present,
    desired_state,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import Manifest, write_file
from harness.fixtures import controlplane_text

CP = TARGETS["tsb_controlplane"]
LIMIT = 4 * 1024 * 1024
ALIAS_LIMIT = 100000

CONTROLPLANE = controlplane_text()  # tests/harness/fixtures/controlplane.yaml


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


# ---------------------------------------------------------------------------------------------------------
# writing: through symlinks, keeping mode and owner
# ---------------------------------------------------------------------------------------------------------

class FakeModule(object):
    """What write_file uses of AnsibleModule (SELinux off); atomic_move and cleanup are AnsibleModule's own."""

    check_mode = False
    atomic_move = AnsibleModule.atomic_move
    cleanup = AnsibleModule.cleanup

    def selinux_enabled(self):
        return False

    def backup_local(self, path):  # AnsibleModule's also copies file attributes with lsattr/chattr
        backup = path + ".1.backup~"
        shutil.copy2(path, backup)
        return backup


def gitops(tmp_path, mode=0o640, owner=None):
    """clusters/eu/controlplane.yaml -> ../../shared/controlplane.yaml (the real file, ``mode``, ``owner``)."""
    shared, cluster = tmp_path / "shared", tmp_path / "clusters" / "eu"
    shared.mkdir()
    cluster.mkdir(parents=True)
    real = shared / "controlplane.yaml"
    real.write_text(CONTROLPLANE)
    os.chmod(str(real), mode)
    if owner:
        os.chown(str(real), *owner)
    link = cluster / "controlplane.yaml"
    os.symlink("../../shared/controlplane.yaml", str(link))
    return str(link), str(real)


def edited(path):
    manifest = Manifest.load(path)
    new, _info = apply_present(manifest.docs[0], CP, guide())
    return manifest.render(0, new, CP.container)[0]


def test_a_symlink_is_written_through_keeping_mode_owner_and_the_link(tmp_path):
    owner = (1234, 2345) if os.geteuid() == 0 else None  # only root can give a file to someone else
    link, real = gitops(tmp_path, owner=owner)
    before = os.stat(real)
    text = edited(link)
    backup = write_file(FakeModule(), link, text, backup=True)
    assert os.path.islink(link) and os.readlink(link) == "../../shared/controlplane.yaml"
    with open(real) as f:
        assert f.read() == text
    after = os.stat(real)
    assert stat.S_IMODE(after.st_mode) == 0o640
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced (atomically), not rewritten in place
    with open(backup) as f:
        assert f.read() == CONTROLPLANE
    assert sorted(os.listdir(os.path.dirname(real))) == ["controlplane.yaml"]  # no temporary file left
    assert sorted(os.listdir(os.path.dirname(link))) == sorted(["controlplane.yaml", os.path.basename(backup)])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs a file owned by another user")
def test_an_owner_that_cannot_be_kept_fails_and_writes_nothing(tmp_path, monkeypatch):
    link, real = gitops(tmp_path, owner=(1234, 2345))
    text = edited(link)

    def no_chown(*_args):  # what a user who is not root gets for a file of someone else
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "fchown", no_chown)
    monkeypatch.setattr(os, "chown", no_chown)
    with pytest.raises(MeshPkiError) as e:
        write_file(FakeModule(), link, text, backup=True)
    monkeypatch.undo()
    assert str(e.value) == (
        "Refused to write the manifest '%s' -> '%s': the new file could not keep its owner and group (uid 1234, gid "
        "2345) - Operation not permitted. Nothing was written. Run the task as that owner or with become, or change "
        "the file's owner." % (link, real))
    with open(real) as f:
        assert f.read() == CONTROLPLANE
    assert os.path.islink(link) and (os.stat(real).st_uid, os.stat(real).st_gid) == (1234, 2345)
    assert sorted(os.listdir(os.path.dirname(real))) == ["controlplane.yaml"]
    assert sorted(os.listdir(os.path.dirname(link))) == ["controlplane.yaml"]  # no backup either
