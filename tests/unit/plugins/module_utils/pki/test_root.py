"""manage_root (vault_pki_root's task) against the strict FakeVault: the requests it sends and their bodies, check
mode that writes nothing, Vault's warnings passed to module.warn, and validation before any request."""

import pytest
from test_pki import cert_pem, issuer_body, key_pem, make_cert, make_key, mounts
from test_pki import root_params as params

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.root import MOUNT_DESCRIPTION, manage_root
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import cert_info
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub

HOUR = 3600


def pki_mount(max_lease_ttl=8760 * HOUR):
    return mounts(pki={"type": "pki", "config": {"max_lease_ttl": max_lease_ttl}})


def generated(cert, issuer_id="iss-new", key_id="key-new", warnings=()):
    return {"data": {"issuer_id": issuer_id, "key_id": key_id, "certificate": cert_pem(cert)},
            "warnings": list(warnings)}


def test_first_run_enables_the_mount_generates_and_sets_the_default_explicitly():
    cert = make_cert("CN=tetrate.io,O=Tetrate,OU=Mesh,C=US", key=make_key("ec", 384), days=365)
    vault = FakeVault({
        ("POST", "pki/root/generate/internal"): generated(cert),
        ("GET", "pki/config/issuers"): {"data": {"default": "iss-new"}},
        ("GET", "pki/issuer/iss-new"): issuer_body(cert, "iss-new", "key-new"),
        ("POST", "pki/config/issuers"): None,
        ("POST", "sys/mounts/pki"): None,
    }, strict_writes=True)
    module = ModuleStub(params(organization=["Tetrate"], ou=["Mesh"], country=["US"], locality=["Berkeley"],
                               province=["CA"], key_type="ec", key_bits=384, ttl="8760h", max_path_length=1),
                        vault)
    result = manage_root(module)

    assert vault.writes() == [("POST", "sys/mounts/pki"), ("POST", "pki/root/generate/internal"),
                              ("POST", "pki/config/issuers")]
    assert vault.body("POST", "sys/mounts/pki") == {"type": "pki", "description": MOUNT_DESCRIPTION,
                                                    "config": {"max_lease_ttl": "%ds" % (8760 * HOUR)}}
    # Every requested property reaches Vault: key, lifetime, path length and each subject attribute.
    assert vault.body("POST", "pki/root/generate/internal") == {
        "common_name": "tetrate.io", "organization": ["Tetrate"], "ou": ["Mesh"], "country": ["US"],
        "locality": ["Berkeley"], "province": ["CA"], "key_type": "ec", "key_bits": 384,
        "ttl": "%ds" % (8760 * HOUR), "max_path_length": 1}
    assert vault.body("POST", "pki/config/issuers") == {"default": "iss-new"}
    assert result["changed"] is True and result["action"] == "create" and result["replaced"] is False
    assert result["issuer_id"] == "iss-new" and result["key_id"] == "key-new"
    assert result["certificate"] == cert_pem(cert) and result["key_type"] == "ec" and result["key_bits"] == 384
    assert result["max_lease_ttl"] == "8760h" and module.warnings == []


def test_rsa_defaults_to_2048_bits_in_the_request():
    cert = make_cert("CN=tetrate.io", days=365)
    vault = FakeVault({("POST", "pki/root/generate/internal"): generated(cert),
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-new"}},
                       ("GET", "pki/issuer/iss-new"): issuer_body(cert, "iss-new", "key-new")})
    manage_root(ModuleStub(params(), vault))
    body = vault.body("POST", "pki/root/generate/internal")
    assert body == {"common_name": "tetrate.io", "key_type": "rsa", "key_bits": 2048, "ttl": "%ds" % (8760 * HOUR),
                    "max_path_length": -1}


def test_check_mode_reads_and_reports_but_writes_nothing():
    vault = FakeVault(strict_writes=True)
    module = ModuleStub(params(), vault, check_mode=True)
    result = manage_root(module)
    assert vault.writes() == []
    assert vault.paths() == ["sys/mounts"]  # no mount yet: nothing else to read
    assert result["changed"] is True and result["action"] == "create" and result["certificate"] is None
    assert result["diff"]["after"]["serial"] == "(new)" and result["diff"]["after"]["subject"] == "CN=tetrate.io"
    assert result["diff"]["before"] == {}


def test_check_mode_force_replacement_writes_nothing():
    old = make_cert("CN=old.example", days=365)
    vault = FakeVault({("GET", "sys/mounts"): pki_mount(),
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-old"}},
                       ("GET", "pki/issuer/iss-old"): issuer_body(old, "iss-old", "key-old")}, strict_writes=True)
    result = manage_root(ModuleStub(params(force=True), vault, check_mode=True))
    assert vault.writes() == [] and result["changed"] is True and result["action"] == "replace"
    assert result["replaced"] is True and result["certificate"] == cert_pem(old)


def test_the_same_root_is_kept_with_two_reads_and_no_write():
    cert = make_cert("CN=tetrate.io", days=365)
    vault = FakeVault({("GET", "sys/mounts"): pki_mount(),
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-1"}},
                       ("GET", "pki/issuer/iss-1"): issuer_body(cert, "iss-1", "key-1")}, strict_writes=True)
    result = manage_root(ModuleStub(params(), vault))
    assert vault.paths() == ["sys/mounts", "pki/issuer/default"] and vault.writes() == []
    assert result["changed"] is False and result["action"] == "none" and result["issuer_id"] == "iss-1"


def test_a_new_max_lease_ttl_only_tunes_the_mount():
    cert = make_cert("CN=tetrate.io", days=365)
    vault = FakeVault({("GET", "sys/mounts"): pki_mount(720 * HOUR),
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-1"}},
                       ("GET", "pki/issuer/iss-1"): issuer_body(cert, "iss-1", "key-1"),
                       ("POST", "sys/mounts/pki/tune"): None}, strict_writes=True)
    result = manage_root(ModuleStub(params(max_lease_ttl="8760h", ttl="720h"), vault))
    assert vault.writes() == [("POST", "sys/mounts/pki/tune")]
    assert vault.body("POST", "sys/mounts/pki/tune") == {"max_lease_ttl": "%ds" % (8760 * HOUR)}
    assert result["changed"] is True and result["action"] == "none" and result["max_lease_ttl"] == "8760h"


def test_a_different_root_is_refused_without_force_and_nothing_is_written():
    old = make_cert("CN=old.example", days=365)
    vault = FakeVault({("GET", "sys/mounts"): pki_mount(),
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-old"}},
                       ("GET", "pki/issuer/iss-old"): issuer_body(old, "iss-old", "key-old")}, strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(), vault))
    assert "already has a different root CA" in str(err.value) and "force: true" in str(err.value)
    assert err.value.details["guard"]["issuer_id"] == "iss-old"
    assert vault.writes() == []


def test_force_generates_a_new_root_and_makes_it_the_default():
    old = make_cert("CN=old.example", days=365)
    new = make_cert("CN=tetrate.io", days=365)
    vault = FakeVault({("GET", "sys/mounts"): pki_mount(),
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-old"}},
                       ("GET", "pki/issuer/iss-old"): issuer_body(old, "iss-old", "key-old"),
                       ("POST", "pki/root/generate/internal"): generated(new),
                       ("POST", "pki/config/issuers"): None}, strict_writes=True)
    result = manage_root(ModuleStub(params(force=True), vault))
    assert vault.writes() == [("POST", "pki/root/generate/internal"), ("POST", "pki/config/issuers")]
    assert vault.body("POST", "pki/config/issuers") == {"default": "iss-new"}
    assert result["action"] == "replace" and result["replaced"] is True
    assert result["previous_serial"] == cert_info(old)["serial"] and result["serial"] == cert_info(new)["serial"]
    assert result["reasons"] == ["subject is 'CN=old.example', requested 'CN=tetrate.io'"]


def test_vault_warnings_reach_module_warn():
    cert = make_cert("CN=tetrate.io", days=365)
    vault = FakeVault({("POST", "pki/root/generate/internal"): generated(cert, warnings=[
        "something Vault wants to say", "This mount hasn't configured any authority information access (AIA) "
        "fields"]),
        ("GET", "pki/config/issuers"): {"data": {"default": "iss-new"}},
        ("GET", "pki/issuer/iss-new"): issuer_body(cert, "iss-new", "key-new")})
    module = ModuleStub(params(), vault)
    manage_root(module)
    assert module.warnings == ["something Vault wants to say"]


def test_import_of_a_bundle_sends_certificate_and_key_and_sets_the_default():
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    bundle = cert_pem(cert) + key_pem(key)
    vault = FakeVault({("POST", "pki/issuers/import/bundle"): {"data": {"imported_issuers": ["iss-imp"],
                                                                        "mapping": {"iss-imp": "key-imp"}}},
                       ("POST", "sys/mounts/pki"): None, ("POST", "pki/config/issuers"): None}, strict_writes=True)
    module = ModuleStub(params(common_name=None, pem_bundle=bundle), vault)
    result = manage_root(module)
    assert vault.writes() == [("POST", "sys/mounts/pki"), ("POST", "pki/issuers/import/bundle"),
                              ("POST", "pki/config/issuers")]
    assert vault.body("POST", "pki/issuers/import/bundle") == {"pem_bundle": bundle}
    assert vault.body("POST", "pki/config/issuers") == {"default": "iss-imp"}
    assert result["action"] == "import" and result["key_id"] == "key-imp" and module.warnings == []


def test_import_of_an_offline_root_warns_where_to_read_its_certificate():
    cert = make_cert("CN=offline root", days=365)
    vault = FakeVault({("POST", "pki/issuers/import/cert"): {"data": {"imported_issuers": ["iss-off"]}}})
    module = ModuleStub(params(common_name=None, certificate=cert_pem(cert)), vault)
    result = manage_root(module)
    assert vault.body("POST", "pki/issuers/import/cert") == {"pem_bundle": cert_pem(cert)}
    assert result["key_id"] is None
    assert len(module.warnings) == 1 and "pki/issuer/default/json" in module.warnings[0]


@pytest.mark.parametrize("overrides, message", [
    (dict(ttl="87600h", max_lease_ttl="8760h"), "Vault would silently cut the root"),
    (dict(key_type="rsa", key_bits=1024), "key_bits 1024 is not valid"),
    (dict(mount="/"), "mount must not be empty"),
])
def test_invalid_options_fail_before_any_login_or_request(overrides, message):
    vault = FakeVault()
    module = ModuleStub(params(**overrides), vault)
    with pytest.raises(MeshPkiError) as err:
        manage_root(module)
    assert message in str(err.value) and vault.requests == [] and module.logins == 0


def race_vault(ours, theirs, their_key_id="key-theirs"):
    """Two runs generated a root into a new mount at once; Vault made the other run's root the default."""
    return FakeVault({
        ("POST", "pki/root/generate/internal"): generated(ours, "iss-ours", "key-ours"),
        ("GET", "pki/config/issuers"): {"data": {"default": "iss-theirs"}},
        ("GET", "pki/issuer/iss-theirs"): issuer_body(theirs, "iss-theirs", their_key_id),
        ("POST", "sys/mounts/pki"): None,
        ("DELETE", "pki/issuer/iss-ours"): None,
        ("DELETE", "pki/key/key-ours"): None,
    }, strict_writes=True)


def test_a_root_generated_at_the_same_time_by_another_run_wins_and_ours_is_deleted():
    ours, theirs = make_cert("CN=tetrate.io", days=365), make_cert("CN=tetrate.io", days=365)
    vault = race_vault(ours, theirs)
    module = ModuleStub(params(ttl="8760h"), vault)
    result = manage_root(module)
    assert vault.writes() == [("POST", "sys/mounts/pki"), ("POST", "pki/root/generate/internal"),
                              ("DELETE", "pki/issuer/iss-ours"), ("DELETE", "pki/key/key-ours")]
    assert result["action"] == "none" and result["changed"] is True  # the mount was created
    assert result["issuer_id"] == "iss-theirs" and result["key_id"] == "key-theirs"
    assert result["certificate"] == cert_pem(theirs)
    assert module.warnings == ["Another run created the root CA in 'pki' at the same time (issuer iss-theirs); this "
                               "run discarded the root it generated (issuer iss-ours) and converged on that one."]


def test_a_different_root_generated_at_the_same_time_fails_after_deleting_ours():
    ours = make_cert("CN=tetrate.io", days=365)
    theirs = make_cert("CN=another.io", days=365)
    vault = race_vault(ours, theirs)
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(ttl="8760h"), vault))
    assert str(err.value).startswith("Another run created a different root CA in 'pki' at the same time (default "
                                     "issuer iss-theirs, serial %s): subject is 'CN=another.io'"
                                     % cert_info(theirs)["serial"])
    assert ("DELETE", "pki/issuer/iss-ours") in vault.writes() and ("DELETE", "pki/key/key-ours") in vault.writes()
