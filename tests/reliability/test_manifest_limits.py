"""Manifest files (file mode of tsb_controlplane_annotations, security issue #14) through real ansible-playbook
runs: a symlinked manifest is edited through the link (the link stays a link); the real file keeps mode 0640 and
its owner and group; a duplicate key, a file over the size limit (the option and the 4 MiB default) and a YAML
alias bomb each fail with an error naming the file; and nothing is written when they do (same inode, mtime and
text, no backup, no temporary file). One playbook, one task per case."""

import os

import pytest
import yaml

from harness.fixtures import controlplane_text

pytestmark = pytest.mark.reliability_fast

MODULE = "meshpki.vault_ca.tsb_controlplane_annotations"
CONTROLPLANE = controlplane_text()  # tests/harness/fixtures/controlplane.yaml


def alias_bomb(levels=7, width=9):
    """About 500 bytes that expand to width ** levels strings. Small enough that the code before the alias limit
    gets through it in about a second (a 9-level bomb took it minutes), far over the limit of 100000 nodes."""
    lines = [CONTROLPLANE.rstrip("\n"), 'lol0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append("lol%d: &l%d [%s]" % (i, i, ", ".join(["*l%d" % (i - 1)] * width)))
    return "\n".join(lines) + "\n"


def state(path):
    """What 'nothing written' compares: inode, mtime and bytes of the file, and the other names in its directory."""
    st = os.stat(path)
    with open(path, "rb") as f:
        return st.st_ino, st.st_mtime_ns, f.read(), sorted(os.listdir(os.path.dirname(path)))


def test_manifest_limits(tmp_path, ansible, report):
    shared, cluster, bad = tmp_path / "shared", tmp_path / "clusters" / "eu", tmp_path / "bad"
    for directory in (shared, cluster, bad):
        directory.mkdir(parents=True)
    real, link = str(shared / "controlplane.yaml"), str(cluster / "controlplane.yaml")
    with open(real, "w") as f:
        f.write(CONTROLPLANE)
    os.chmod(real, 0o640)
    if os.geteuid() == 0:
        os.chown(real, 1234, 2345)  # a file of someone else, as in a shared checkout
    owner = (os.stat(real).st_uid, os.stat(real).st_gid)
    os.symlink("../../shared/controlplane.yaml", link)

    files = {}

    def bad_file(name, text):
        path = str(bad / name)
        with open(path, "w") as f:
            f.write(text)
        files[name] = path
        return path

    bad_file("duplicate.yaml", CONTROLPLANE + "          replicaCount: 3\n")
    bad_file("option.yaml", CONTROLPLANE + "# " + "x" * 2000 + "\n")
    bad_file("default.yaml", CONTROLPLANE + "# " + "x" * (4 * 1024 * 1024 - len(CONTROLPLANE)) + "\n")
    bad_file("bomb.yaml", alias_bomb())
    before = dict((name, state(path)) for name, path in files.items())
    size = os.path.getsize(files["default.yaml"])

    # name -> (module args, error substring or None for success)
    cases = [
        ("through the symlink", {"path": link, "name": "controlplane", "backup": True}, None),
        ("duplicate key", {"path": files["duplicate.yaml"]},
         "Refused to read the manifest '%s': the key 'replicaCount' appears twice in one mapping, at line 13 and "
         "line 14" % files["duplicate.yaml"]),
        ("size over max_manifest_size", {"path": files["option.yaml"], "max_manifest_size": 1024},
         "Refused to read the manifest '%s': it is %d bytes (0.0 MiB), over the limit of 1024 bytes (0.0 MiB)"
         % (files["option.yaml"], os.path.getsize(files["option.yaml"]))),
        ("size over the 4 MiB default", {"path": files["default.yaml"]},
         "Refused to read the manifest '%s': it is %d bytes (4.0 MiB), over the limit of 4194304 bytes (4.0 MiB)"
         % (files["default.yaml"], size)),
        ("alias bomb", {"path": files["bomb.yaml"], "backup": True},
         "Refused to read the manifest '%s': its YAML aliases expand to more than 100000 nodes (the limit)"
         % files["bomb.yaml"]),
    ]
    tasks = [{"name": name, MODULE: args, "ignore_errors": True, "timeout": 300} for name, args, _expected in cases]
    run = ansible.run([{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}])
    assert run.rc == 0, run

    checks = []  # (case, must, shown, held)
    for name, _args, expected in cases:
        found = [r for r in run.results if r["task"] == name]
        result = found[-1]["result"] if found else {}
        status = found[-1]["status"] if found else "missing"
        if expected is None:
            checks.append((name, "changed", status, status == "changed"))
        else:
            msg = result.get("msg") or ""
            checks.append((name, expected, msg or status, status == "failed" and expected in msg))

    real_st = os.stat(real)
    with open(real) as f:
        docs = list(yaml.safe_load_all(f.read()))
    deployment = docs[0]["spec"]["components"]["istio"]["kubeSpec"]["deployment"] if docs else {}
    target = os.readlink(link) if os.path.islink(link) else None
    checks.append(("symlink stays a link, its target is edited", "link -> ../../shared/controlplane.yaml, "
                   "podAnnotations in the shared file",
                   "link -> %s, annotated=%s" % (target, "podAnnotations" in deployment),
                   target == "../../shared/controlplane.yaml" and "podAnnotations" in deployment))
    shown = "mode %o, owner %d:%d, %s" % (real_st.st_mode & 0o7777, real_st.st_uid, real_st.st_gid,
                                          sorted(os.listdir(str(shared))))
    checks.append(("mode, owner and group kept", "mode 640, owner %d:%d, no temporary file" % owner, shown,
                   (real_st.st_mode & 0o7777, real_st.st_uid, real_st.st_gid) == (0o640,) + owner
                   and os.listdir(str(shared)) == ["controlplane.yaml"]))
    changed = sorted(name for name, path in files.items() if state(path) != before[name])
    checks.append(("nothing written on error", "inode, mtime, text and directory of the 4 refused files unchanged",
                   "changed: %s" % (", ".join(changed) or "none"), not changed))

    held = 0
    for name, must, shown, good in checks:
        held += int(good)
        report.detail("Manifest files", case=name, must=must, shown=str(shown)[:250], held=good)
    report.metric("manifest", cases=len(checks), held=held)
    assert held == len(checks), "\n".join("%s: expected %r, got %r" % (name, must, shown)
                                          for name, must, shown, good in checks if not good)
