"""vault_pki_intermediate's root_ca option (issue 17): the root as the role's vault_pki_root task returned it
spares the read of <root_mount>/issuer/default on a run that changes nothing; any other plan is made on the root
read from Vault (stale or wrong data costs one read, never a wrong write)."""

import pytest
from test_pki import NOW, cert_pem, issuer_body, make_cert, make_key
from test_pki_intermediate import World, params, vault

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.intermediate import (
    IntermediateCA,
    IntermediateRequest,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import cert_info


def root_ca(cert, issuer_id="root-iss", key_id="root-key"):
    return dict(certificate=cert_pem(cert), issuer_id=issuer_id, key_id=key_id)


def run(fake, check_mode=False, **overrides):
    ca = IntermediateCA(IntermediateRequest(params(**overrides)), fake, check_mode, now=NOW)
    return ca, ca.run()


@pytest.mark.parametrize("check_mode", [False, True])
def test_no_change_run_with_the_root_given_does_not_read_it(check_mode):
    world = World()
    fake = vault(world, world.stored())
    ca, result = run(fake, check_mode, root_ca=root_ca(world.root_cert))
    assert result["changed"] is False and result["action"] == "none"
    assert fake.paths() == ["sys/mounts", "istioca/issuer/default", "secret/data/istioca"]
    # the same result as with the root read from Vault
    baseline = vault(world, world.stored())
    assert run(baseline, check_mode)[1] == result
    assert baseline.paths() == ["sys/mounts", "pki/issuer/default", "istioca/issuer/default", "secret/data/istioca"]


def test_a_stale_given_root_that_signs_the_intermediate_writes_nothing():
    # The root mount got another CA between the root task and this one: the given root (the one that signed the
    # intermediate) says "nothing to do" - nothing is written, and the next run (its root task returns the new
    # root) plans the new intermediate on it. Stale data can only postpone a write, never cause one.
    world = World()
    new_root = make_cert("CN=tetrate.io", key=make_key("ec", 256), days=365)
    fake = vault(world, world.stored())
    fake.responses[("GET", "pki/issuer/default")] = issuer_body(new_root, "root2", "root-key2")
    ca, result = run(fake, False, root_ca=root_ca(world.root_cert))
    assert result["action"] == "none" and result["changed"] is False
    assert "pki/issuer/default" not in fake.paths() and fake.paths("POST") == []


def test_a_given_root_that_does_not_sign_the_intermediate_is_checked_against_vaults_root():
    # Given data that says "replace" never replaces by itself: Vault's root (which signed the intermediate) decides.
    world = World()
    other = make_cert("CN=tetrate.io", key=make_key("ec", 256), days=365)
    fake = vault(world, world.stored())
    ca, result = run(fake, False, root_ca=root_ca(other, "other-iss", "other-key"))
    assert result["action"] == "none" and result["changed"] is False
    assert fake.paths() == ["sys/mounts", "istioca/issuer/default", "secret/data/istioca", "pki/issuer/default"]
    assert fake.paths("POST") == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_a_new_root_in_vault_is_planned_on_vaults_root_not_the_given_one(check_mode):
    # Vault has a new root; the given one is the new root too: the intermediate (signed by the old root) is due,
    # and the plan names the root as read from Vault (check mode: the given issuer as Vault has it).
    world = World()
    new_root = make_cert("CN=tetrate.io", key=make_key("ec", 256), days=365)
    fake = vault(world, world.stored())
    fake.responses[("GET", "pki/issuer/default")] = issuer_body(new_root, "root2", "root-key2")
    fake.responses[("GET", "pki/issuer/root2")] = issuer_body(new_root, "root2", "root-key2")
    fake.responses[("POST", "istioca/intermediate/generate/exported")] = {"data": {}}  # the real run stops there
    if check_mode:
        ca, result = run(fake, True, root_ca=root_ca(new_root, "root2", "root-key2"))
        assert result["action"] == "issue" and result["changed"] is True and fake.paths("POST") == []
    else:
        with pytest.raises(MeshPkiError, match="returned no private_key"):
            run(fake, False, root_ca=root_ca(new_root, "root2", "root-key2"))
    # read once, after the given root said the intermediate is due
    read = "pki/issuer/root2" if check_mode else "pki/issuer/default"
    assert fake.paths()[:4] == ["sys/mounts", "istioca/issuer/default", "secret/data/istioca", read]
    if check_mode:
        assert any(reason.startswith("it is not signed by the current root CA of 'pki' (serial %s)"
                                     % cert_info(new_root)["serial"]) for reason in result["reasons"])


def test_check_mode_plans_on_the_given_root_that_is_not_the_default_yet():
    """rotate_root in check mode: the rotation task would make B the root mount's default issuer (nothing is
    written), and passes B as root_ca - the intermediate (signed by A, Vault's default) would be re-issued from B,
    as a real run does once B is the default. A real run still plans on Vault's default issuer."""
    world = World()
    root_b = make_cert("CN=tetrate.io", key=make_key("ec", 256), days=365)
    fake = vault(world, world.stored())
    fake.responses[("GET", "pki/issuer/root-b")] = issuer_body(root_b, "root-b", "root-key-b")
    ca, result = run(fake, True, root_ca=root_ca(root_b, "root-b", "root-key-b"))
    assert result["action"] == "issue" and result["changed"] is True and fake.paths("POST") == []
    assert "pki/issuer/default" not in fake.paths() and "pki/issuer/root-b" in fake.paths()
    assert any("(serial %s)" % cert_info(root_b)["serial"] in reason for reason in result["reasons"])
    assert result["diff"]["after"]["serial"] == "(new)" and result["diff"]["after"]["kv_version"] == 2
    real = vault(world, world.stored())
    ca, result = run(real, False, root_ca=root_ca(root_b, "root-b", "root-key-b"))
    assert result["action"] == "none" and real.paths("POST") == []


@pytest.mark.parametrize("issuer_id", [None, "gone"])
def test_check_mode_with_a_given_root_vault_does_not_have_plans_on_the_default(issuer_id):
    world = World()
    other = make_cert("CN=tetrate.io", key=make_key("ec", 256), days=365)
    fake = vault(world, world.stored())
    ca, result = run(fake, True, root_ca=root_ca(other, issuer_id, "other-key"))
    assert result["action"] == "none" and result["changed"] is False
    assert fake.paths()[-1] == "pki/issuer/default"


def test_the_given_root_is_checked_like_the_one_read():
    world = World()
    with pytest.raises(MeshPkiError) as err:
        IntermediateRequest(params(root_ca=dict(certificate="not a pem", issuer_id=None, key_id=None)))
    assert "root_ca.certificate must be the root's PEM certificate" in str(err.value)
    assert "Nothing was changed" in str(err.value)
    fake = vault(world, world.stored())
    with pytest.raises(MeshPkiError, match="without its key in Vault"):
        run(fake, False, root_ca=root_ca(world.root_cert, key_id=None))
    assert fake.paths("POST") == []
    missing = vault(world, world.stored())
    missing.responses[("GET", "sys/mounts")] = {"data": {}}  # the root mount is checked in the mount table
    with pytest.raises(MeshPkiError, match="The root mount 'pki' does not exist"):
        run(missing, False, root_ca=root_ca(world.root_cert))


def test_external_signing_ignores_the_given_root():
    world = World()
    request = IntermediateRequest(params(signing="external", root_ca=root_ca(world.root_cert)))
    assert request.given_root is None
