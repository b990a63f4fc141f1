"""Check mode on an empty Vault (issue 15, point 5): the role's summary says what a real run would create -
the root, the intermediate, the policy, the auth role and the annotations - instead of blank fields.

A fresh OpenBao with nothing in it, the role in file mode (the annotations go into a manifest) with the fake
Kubernetes API, run with ansible-playbook --check."""

import re

import pytest

# cluster is a fixture, used by name
from test_tokens import cluster, role_vars  # noqa: F401 pylint: disable=unused-import

from harness.openbao import OpenBaoServer
from harness.playbook import role_play


@pytest.fixture
def empty_bao(tmp_path):
    with OpenBaoServer(tmp_path / "empty-bao") as server:
        yield server


def _summary(run):
    found = [r["result"] for r in run.results if r["task"].endswith("Summary") and "msg" in r["result"]]
    assert found, run
    return found[-1]["msg"]


def _fields(run):
    """The summary as {field: value}."""
    return dict(re.match(r"(\w[\w ]*?):\s+(.*)", line).groups() for line in _summary(run))


def test_check_mode_on_an_empty_vault_says_what_would_be_created(empty_bao, playbook, cluster, tmp_path):  # noqa: F811
    values = role_vars(empty_bao, cluster, tmp_path)
    mounts_before = sorted(empty_bao.api("GET", "sys/mounts")["data"])
    run = playbook(role_play(values), check=True)
    assert run.rc == 0, run
    fields = _fields(run)
    assert set(fields) >= {"root", "intermediate", "key", "policy", "role", "target", "verified"}, fields
    # No blank field: no '?' placeholder, no empty value, no "read on )" list.
    for name, value in fields.items():
        assert value.strip(), name
        assert "?" not in value, "%s: %s" % (name, value)
        assert "()" not in value and "on )" not in value, "%s: %s" % (name, value)
    root_mount = values["istio_vault_ca_root_mount"]
    int_mount = values["istio_vault_ca_intermediate_mount"]
    assert fields["root"].startswith("would be generated: CN=tetrate.io, rsa 2048, ttl 8760h"), fields["root"]
    assert "in %s" % root_mount in fields["root"], fields["root"]
    assert fields["intermediate"].startswith(
        "would be generated: CN=tetrate.io Intermediate Authority, rsa 2048, ttl 4380h"), fields["intermediate"]
    assert "signed by %s" % root_mount in fields["intermediate"] and "in %s" % int_mount in fields["intermediate"]
    assert fields["key"] == "would be written: secret/data/%s field ca-key.pem" % values["istio_vault_ca_kv_path"]
    assert fields["policy"].startswith("would be written: %s (read on " % values["istio_vault_ca_policy_name"])
    # root-cert.pem reads the trust bundle the root step keeps, not the root mount's cert/ca
    assert "%s/cert/ca" % int_mount in fields["policy"] and "secret/data/%s-trust" % root_mount in fields["policy"]
    assert "%s/cert/ca" % root_mount not in fields["policy"]
    assert fields["role"].startswith("would be written: auth/%s/role/istiod for istio-system/" % (
        values["istio_vault_ca_k8s_auth_mount"])), fields["role"]
    assert fields["target"].endswith("would be annotated"), fields["target"]
    assert fields["verified"].startswith("not yet: check mode"), fields["verified"]
    # check mode: nothing was created
    assert sorted(empty_bao.api("GET", "sys/mounts")["data"]) == mounts_before

    # The real run fills the fields from Vault; check mode after it has nothing that "would" change.
    real = playbook(role_play(values))
    assert real.rc == 0, real
    after = [_fields(playbook(role_play(values), check=True)), _fields(real)]
    for fields in after:
        assert fields["root"].startswith("CN=tetrate.io  serial "), fields["root"]
        assert fields["intermediate"].startswith("CN=tetrate.io Intermediate Authority  serial "), fields
        assert re.search(r"\(\d+ days left\)$", fields["intermediate"]), fields["intermediate"]
        assert not [line for line in fields.values() if "would be" in line or "?" in line], fields
    # the real run changed everything and verified; the check run after it changes nothing: no verification needed
    # (istio_vault_ca_verify true), and the days left come from the intermediate's and root's tasks
    assert after[1]["verified"] == "istiod would accept the bundle", after[1]["verified"]
    assert after[0]["verified"].startswith("not needed: nothing changed"), after[0]["verified"]
    assert after[0]["intermediate"] == after[1]["intermediate"], after
    assert after[0]["target"].endswith(" unchanged") and after[1]["target"].endswith(" changed")
