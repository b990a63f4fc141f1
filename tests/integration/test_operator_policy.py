"""The least-privilege policy shipped for the token Ansible runs the role with
(roles/istio_vault_ca/files/ansible-operator-policy.hcl) is enough, and every block of it is needed.

A real OpenBao with a file audit device and a fake Kubernetes API (the kubeconfig's server is where
Vault's Kubernetes auth is pointed); the main playbook writes the annotations into a ControlPlane
manifest (file mode). The root token only sets the stage: it removes the dev server's ``secret/`` mount
(a production server has none, so the policy's KV-enable grant is exercised), writes the policy read
from the shipped file, and creates the operator token with that policy alone - ``no_default_policy``, so
nothing of Vault's ``default`` policy helps: what the role needs must be in the file. From then on every
request is the operator's (or the verify step's child token's), and the audit log must show no
permission denied.

The docs page reproduces the file (antsibull-docs copies the pages, so a literalinclude of the role's
file cannot resolve): the last test keeps the two identical.
"""

import json
import os
import re
import sys

import pytest
import yaml

from harness.fake_k8s import FakeKubeApi
from harness.openbao import OpenBaoServer
from harness.playbook import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402  (tools/embedded.py: the sample ControlPlane)

POLICY_FILE = os.path.join(REPO, "roles", "istio_vault_ca", "files", "ansible-operator-policy.hcl")
SECURITY_PAGE = os.path.join(REPO, "docs", "docsite", "rst", "security.rst")
POLICY_NAME = "meshpki-operator"
MAIN_PLAYBOOK = [{"import_playbook": "meshpki.vault_ca.istio_vault_ca"}]
DENIED = "permission denied"


def shipped_policy():
    with open(POLICY_FILE) as f:
        return f.read()


def without_block(rules, path):
    """The policy text without the ``path "<path>" { ... }`` block."""
    block = re.compile(r'^path "%s" \{\n.*?^\}\n' % re.escape(path), re.M | re.S)
    stripped, count = block.subn("", rules)
    assert count == 1, "the shipped policy has no block for %s" % path
    return stripped


class Stage(object):
    """OpenBao (audit on), a fake cluster, a ControlPlane manifest, and an operator token holding only ``rules``."""

    def __init__(self, workdir, rules):
        self.workdir = str(workdir)
        self.runs = 0
        self.bao = OpenBaoServer(os.path.join(self.workdir, "bao"), audit=True).start()
        self.api = FakeKubeApi().start()
        try:
            self.kubeconfig = self.api.write_kubeconfig(os.path.join(self.workdir, "kubeconfig"))
            self.manifest = os.path.join(self.workdir, "controlplane.yaml")
            with open(self.manifest, "w") as f:
                yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE, f)
            self.bao.api("DELETE", "sys/mounts/secret")  # what a non-dev server looks like
            self.bao.api("PUT", "sys/policies/acl/" + POLICY_NAME, {"policy": rules})
            created = self.bao.api("POST", "auth/token/create", {
                "policies": [POLICY_NAME], "no_default_policy": True, "ttl": "1h", "display_name": "ansible-operator"})
            self.token = created["auth"]["client_token"]
            assert created["auth"]["policies"] == [POLICY_NAME], created["auth"]
            self.mark = self.bao.audit.mark()  # the root token's setup ends here
        except BaseException:
            self.stop()
            raise

    def env(self):
        """What an AWX Vault credential (token auth) injects: the address and the operator token."""
        return {"VAULT_ADDR": self.bao.url, "VAULT_TOKEN": self.token}

    def vars_file(self, **overrides):
        role_vars = {"istio_vault_ca_kubeconfig": self.kubeconfig, "istio_vault_ca_manifest_path": self.manifest}
        role_vars.update(overrides)
        self.runs += 1
        path = os.path.join(self.workdir, "vars-%d.json" % self.runs)
        with open(path, "w") as f:
            json.dump(role_vars, f)
        return path

    def run(self, playbook, check=False, **overrides):
        return playbook(MAIN_PLAYBOOK, env=self.env(), check=check, diff=True,
                        extra_args=["-e", "@" + self.vars_file(**overrides)])

    def responses(self, since=None):
        entries = self.bao.audit.entries()[self.mark if since is None else since:]
        return [e for e in entries if e.get("type") == "response"]

    def denied(self, since=None):
        """[(operation, path, policies)] of every request Vault refused for lack of a capability."""
        return [(e["request"].get("operation"), e["request"].get("path"), (e.get("auth") or {}).get("policies"))
                for e in self.responses(since) if DENIED in (e.get("error") or "")]

    def requests_by(self, policies, since=None):
        """Set of (operation, path) of the requests made with a token holding exactly ``policies``."""
        return set((e["request"].get("operation"), e["request"].get("path")) for e in self.responses(since)
                   if sorted((e.get("auth") or {}).get("policies") or []) == sorted(policies))

    def stop(self):
        self.api.stop()
        self.bao.stop()


@pytest.fixture
def stage(tmp_path):
    created = Stage(tmp_path, shipped_policy())
    yield created
    created.stop()


ROLE = "meshpki.vault_ca.istio_vault_ca : "
INTERMEDIATE_TASK = "Ensure the Istio intermediate CA in istioca"
VERIFY_TASK = "Verify the CA bundle istiod will read, and what the policy grants - istioca"


def tasks(run, status):
    """Names (without the role prefix) of the tasks that ended with ``status``."""
    return [r["task"].replace(ROLE, "", 1) for r in run.results if r["status"] == status]


def changed_tasks(run):
    return tasks(run, "changed")


def test_the_whole_role_runs_with_only_the_shipped_policy(playbook, stage):
    # check mode on an empty server: plans everything, writes nothing
    with open(stage.manifest) as f:
        manifest = f.read()
    check = stage.run(playbook, check=True)
    assert check.rc == 0, check
    assert changed_tasks(check), check
    with open(stage.manifest) as f:
        assert f.read() == manifest, "check mode changed the manifest"
    assert [p for p in stage.requests_by([POLICY_NAME]) if p[0] in ("create", "update", "delete")] == [], \
        "check mode wrote to Vault"

    first = stage.run(playbook)
    assert first.rc == 0, first
    assert INTERMEDIATE_TASK in changed_tasks(first), first
    with open(stage.manifest) as f:
        assert "vault.hashicorp.com/agent-inject-secret-ca-key.pem" in f.read()
    verified = first.task(ROLE + VERIFY_TASK)
    assert verified["result"]["valid"] is True, verified

    second = stage.run(playbook)
    assert second.rc == 0, second
    assert changed_tasks(second) == [], second

    again = stage.run(playbook, check=True)
    assert again.rc == 0, again
    assert changed_tasks(again) == [], again

    # a rotation (istio_vault_ca_rotate: a new common name alone is refused) with a new lifetime: tunes the
    # intermediate mount, writes a new key version (update, not create)
    mark = stage.bao.audit.mark()
    rotation = stage.run(playbook, istio_vault_ca_intermediate_common_name="tetrate.io Intermediate Authority 2",
                         istio_vault_ca_intermediate_ttl="4000h", istio_vault_ca_rotate=True)
    assert rotation.rc == 0, rotation
    assert INTERMEDIATE_TASK in changed_tasks(rotation), rotation
    rotated = stage.requests_by([POLICY_NAME], since=mark)
    assert ("update", "sys/mounts/istioca/tune") in rotated, sorted(rotated)
    assert ("update", "secret/data/istioca") in rotated, sorted(rotated)

    # Every request was the operator's (or the verify token's, a child holding istiod's policy), none refused.
    made = stage.requests_by([POLICY_NAME])
    for expected in [("update", "sys/mounts/pki"), ("update", "sys/mounts/secret"), ("update", "sys/auth/kubernetes"),
                     ("create", "secret/data/istioca"), ("update", "auth/token/create")]:
        assert expected in made, (expected, sorted(made))
    assert stage.requests_by(["default", "istioca"]), "the verify step did not read with istiod's policy"
    assert not [e for e in stage.responses() if "root" in ((e.get("auth") or {}).get("policies") or [])]
    assert stage.denied() == [], stage.denied()


def test_a_policy_without_the_key_path_fails_naming_the_path_and_the_capability(playbook, tmp_path):
    stage = Stage(tmp_path, without_block(shipped_policy(), "secret/data/istioca"))
    try:
        run = stage.run(playbook)
        assert run.rc != 0, run
        # The module's failure, then the role's rescue that stops the play with the same message.
        assert tasks(run, "failed") == [INTERMEDIATE_TASK, "Stop, the intermediate CA task failed - istioca"], run
        msg = run.task(ROLE + INTERMEDIATE_TASK)["result"]["msg"]
        # The KV mount exists by then (the root step enabled it for the trust bundle), so the key's first access
        # is the read of what is stored.
        assert "secret/data/istioca" in msg and "permission denied" in msg, msg
        assert "the token needs 'read' on 'secret/data/istioca'" in msg, msg
        assert ("read", "secret/data/istioca", [POLICY_NAME]) in stage.denied(), stage.denied()
        # The key Vault generated was never stored, so it was never signed: no CA istiod could use without its key.
        assert ("update", "pki/root/sign-intermediate") not in stage.requests_by([POLICY_NAME])
    finally:
        stage.stop()


def test_the_security_page_shows_the_shipped_policy():
    with open(SECURITY_PAGE) as f:
        page = f.read()
    match = re.search(r"^\.\. code-block:: text\n   :caption: roles/istio_vault_ca/files/ansible-operator-policy\.hcl\n"
                      r"\n((?:   .*\n|\n)+)", page, re.M)
    assert match, "security.rst has no hcl code block captioned with the policy file"
    shown = "\n".join(line[3:] for line in match.group(1).rstrip("\n").split("\n")) + "\n"
    assert shown == shipped_policy(), "docs/docsite/rst/security.rst differs from the shipped policy file"
