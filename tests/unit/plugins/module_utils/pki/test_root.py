"""manage_root (vault_pki_root's task) against the strict FakeVault: the requests it sends and their bodies, check
mode that writes nothing, Vault's warnings passed to module.warn, and validation before any request."""

import pytest
from test_pki import cert_pem, issuer_body, key_pem, make_cert, make_key, mounts
from test_pki import root_params as params

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import root as root_module
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import diff_view, not_after, summary
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.root import (
    MOUNT_DESCRIPTION,
    RootRequest,
    manage_root,
)
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


# -- what a kept root reports: the result fields and the --diff, mount included --------------------------------

def kept_root_vault(cert, answers=None, key_id="key-1", max_lease_ttl=8760 * HOUR):
    base = {("GET", "sys/mounts"): pki_mount(max_lease_ttl),
            ("GET", "pki/config/issuers"): {"data": {"default": "iss-1"}},
            ("GET", "pki/issuer/iss-1"): issuer_body(cert, "iss-1", key_id)}
    base.update(answers or {})
    return FakeVault(base, strict_writes=True)


def test_a_kept_root_reports_its_certificate_and_an_unchanged_diff():
    cert = make_cert("CN=tetrate.io", days=365)
    result = manage_root(ModuleStub(params(), kept_root_vault(cert)))
    info = summary(cert)
    assert result["action"] == "none" and result["changed"] is False
    assert result["mount"] == "pki" and result["replaced"] is False and result["previous_serial"] is None
    for field in ("serial", "subject", "not_before", "not_after", "key_type", "key_bits"):
        assert result[field] == info[field], field
    assert result["issuer_id"] == "iss-1" and result["key_id"] == "key-1"
    shown = dict(diff_view(cert), mount_type="pki", max_lease_ttl="8760h")
    assert result["diff"] == {"before": shown, "after": shown,
                              "before_header": "pki (root CA)", "after_header": "pki (root CA)"}


def test_the_diff_shows_the_mount_tuning_old_and_new():
    cert = make_cert("CN=tetrate.io", days=365)
    vault = kept_root_vault(cert, {("POST", "sys/mounts/pki/tune"): None}, max_lease_ttl=720 * HOUR)
    result = manage_root(ModuleStub(params(max_lease_ttl="8760h", ttl="720h"), vault))
    assert result["diff"]["before"] == dict(diff_view(cert), mount_type="pki", max_lease_ttl="720h")
    assert result["diff"]["after"] == dict(diff_view(cert), mount_type="pki", max_lease_ttl="8760h")


def test_a_different_path_length_is_a_pending_change_naming_both_values():
    cert = make_cert("CN=tetrate.io", days=365, path_length=1)
    result = manage_root(ModuleStub(params(max_path_length=-1), kept_root_vault(cert)))
    assert result["action"] == "none" and result["changed"] is False
    notes = [note for note in result["pending_changes"] if note.startswith("max_path_length:")]
    assert len(notes) == 1
    assert "has 1," in notes[0] and "-1 is asked" in notes[0] and notes[0].endswith("(force: true)")


def test_a_forced_new_root_shows_old_and_new_certificate_in_the_diff():
    old = make_cert("CN=old.example", days=365)
    new = make_cert("CN=tetrate.io", days=365)
    vault = kept_root_vault(old, {("POST", "pki/root/generate/internal"): generated(new),
                                  ("POST", "pki/config/issuers"): None})
    result = manage_root(ModuleStub(params(force=True), vault))
    assert result["diff"]["before"] == dict(diff_view(old), mount_type="pki", max_lease_ttl="8760h")
    assert result["diff"]["after"] == dict(diff_view(new), mount_type="pki", max_lease_ttl="8760h")


def test_a_root_without_its_key_in_vault_is_a_reason_to_generate_a_new_one():
    cert = make_cert("CN=tetrate.io", days=365)
    new = make_cert("CN=tetrate.io", days=365)
    vault = kept_root_vault(cert, {("POST", "pki/root/generate/internal"): generated(new),
                                   ("POST", "pki/config/issuers"): None}, key_id="")
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(), FakeVault(dict(vault.answers), strict_writes=True)))
    assert "generate a new root" in str(err.value)
    result = manage_root(ModuleStub(params(force=True), vault))
    assert result["action"] == "replace"
    assert [reason for reason in result["reasons"] if reason.startswith("its key is not in Vault")]


def test_the_refusal_guard_names_mount_issuer_serial_and_differences():
    old = make_cert("CN=old.example", days=365)
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(), kept_root_vault(old)))
    assert err.value.details["guard"] == {"mount": "pki", "issuer_id": "iss-1", "serial": cert_info(old)["serial"],
                                          "differences": ["subject is 'CN=old.example', requested 'CN=tetrate.io'"]}
    assert "generate a new root" in str(err.value)


def test_a_generated_root_without_key_id_reports_no_key_id():
    cert = make_cert("CN=tetrate.io", days=365)
    vault = FakeVault({("POST", "pki/root/generate/internal"): {"data": {"issuer_id": "iss-new",
                                                                         "certificate": cert_pem(cert)}},
                       ("GET", "pki/config/issuers"): {"data": {"default": "iss-new"}},
                       ("GET", "pki/issuer/iss-new"): issuer_body(cert, "iss-new", "")})
    result = manage_root(ModuleStub(params(), vault))
    assert result["action"] == "create" and result["issuer_id"] == "iss-new" and result["key_id"] is None


def test_a_root_vault_returns_unparsable_is_named_in_the_error():
    vault = FakeVault({("POST", "pki/root/generate/internal"): {"data": {
        "issuer_id": "iss-new", "key_id": "key-new",
        "certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}}})
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(), vault))
    assert str(err.value).startswith("The root certificate Vault returned ")


# -- every write Vault refuses names the action, the path and the capability -----------------------------------

def test_a_refused_generate_names_action_path_and_capability():
    vault = FakeVault({("POST", "pki/root/generate/internal"): 403})
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(), vault))
    assert "generate a root CA in 'pki/root/generate/internal'" in str(err.value)
    assert "'update'" in str(err.value)


@pytest.mark.parametrize("option, endpoint", [("pem_bundle", "bundle"), ("certificate", "cert")])
def test_a_refused_import_names_action_path_and_capability(option, endpoint):
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    text = cert_pem(cert) + (key_pem(key) if option == "pem_bundle" else "")
    vault = FakeVault({("POST", "pki/issuers/import/%s" % endpoint): 403})
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(common_name=None, **{option: text}), vault))
    assert "import the root CA into 'pki/issuers/import/%s'" % endpoint in str(err.value)
    assert "'update'" in str(err.value)


@pytest.mark.parametrize("path, action", [
    ("pki/issuer/iss-ours", "delete the discarded root issuer in"),
    ("pki/key/key-ours", "delete the key of the discarded root in"),
])
def test_a_refused_delete_of_the_discarded_root_names_action_and_path(path, action):
    ours, theirs = make_cert("CN=tetrate.io", days=365), make_cert("CN=tetrate.io", days=365)
    vault = race_vault(ours, theirs)
    vault.answers[("DELETE", path)] = 403
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(ttl="8760h"), vault))
    assert "%s '%s'" % (action, path) in str(err.value)


# -- import: which issuer is ours, what is returned, force ---------------------------------------------------

def test_an_import_of_several_issuers_finds_ours_by_serial_and_passes_vault_warnings():
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    other = make_cert("CN=other", days=365)
    bundle = cert_pem(cert) + key_pem(key)
    vault = FakeVault({
        ("POST", "pki/issuers/import/bundle"): {"data": {"imported_issuers": ["iss-other", "iss-imp"],
                                                         "mapping": {"iss-other": "", "iss-imp": "key-imp"}},
                                                "warnings": ["a warning from Vault"]},
        ("LIST", "pki/issuers"): {"data": {"keys": ["iss-other", "iss-imp"], "key_info": {
            "iss-other": {"serial_number": cert_info(other)["serial"]},
            "iss-imp": {"serial_number": cert_info(cert)["serial"]}}}},
        ("POST", "sys/mounts/pki"): None, ("POST", "pki/config/issuers"): None}, strict_writes=True)
    module = ModuleStub(params(common_name=None, pem_bundle=bundle), vault)
    result = manage_root(module)
    assert vault.body("POST", "pki/config/issuers") == {"default": "iss-imp"}
    assert result["issuer_id"] == "iss-imp" and result["key_id"] == "key-imp"
    assert result["certificate"] == cert_pem(cert) and result["serial"] == cert_info(cert)["serial"]
    assert result["diff"]["after"] == dict(diff_view(cert), mount_type="pki", max_lease_ttl="8760h")
    assert module.warnings == ["a warning from Vault"]


def test_an_import_of_the_kept_root_with_its_key_says_the_key_is_added():
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    vault = kept_root_vault(cert, {
        ("POST", "pki/issuers/import/bundle"): {"data": {"imported_issuers": ["iss-1"], "mapping": {"iss-1": "k"}}},
        ("POST", "pki/config/issuers"): None}, key_id="")
    result = manage_root(ModuleStub(params(common_name=None, pem_bundle=cert_pem(cert) + key_pem(key)), vault))
    assert result["action"] == "import" and result["replaced"] is False
    assert result["reasons"] == ["the key of the root is added to Vault"]


def test_another_imported_root_is_refused_without_force_and_imported_with_force():
    old = make_cert("CN=old.example", days=365)
    mine = make_cert("CN=offline root", days=365)
    vault = kept_root_vault(old, {
        ("POST", "pki/issuers/import/cert"): {"data": {"imported_issuers": ["iss-off"]}},
        ("POST", "pki/config/issuers"): None})
    with pytest.raises(MeshPkiError) as err:
        manage_root(ModuleStub(params(common_name=None, certificate=cert_pem(mine)), vault))
    assert "import this one as the default issuer" in str(err.value) and vault.writes() == []
    assert err.value.details["guard"]["serial"] == cert_info(old)["serial"]

    module = ModuleStub(params(common_name=None, certificate=cert_pem(mine), force=True), vault)
    result = manage_root(module)
    assert vault.writes() == [("POST", "pki/issuers/import/cert"), ("POST", "pki/config/issuers")]
    assert result["action"] == "import" and result["replaced"] is True
    assert result["previous_serial"] == cert_info(old)["serial"] and result["serial"] == cert_info(mine)["serial"]
    assert len(result["reasons"]) == 1 and result["reasons"][0].startswith("it is the certificate ")
    assert cert_info(old)["serial"] in result["reasons"][0] and cert_info(mine)["serial"] in result["reasons"][0]


# -- RootRequest: options checked before any request, errors that name the option ------------------------------

def test_the_mount_is_stripped_of_slashes_only():
    assert RootRequest(params(mount="/pki-X/")).mount == "pki-X"
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(mount=None))
    assert "mount must not be empty" in str(err.value)


@pytest.mark.parametrize("option", ["ttl", "max_lease_ttl"])
def test_a_bad_duration_names_its_option(option):
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(**{option: "bogus"}))
    assert str(err.value).startswith("%s 'bogus'" % option)


def test_a_ttl_beyond_max_lease_ttl_names_the_lifetime_vault_would_cut_to():
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(ttl="87600h", max_lease_ttl="8760h"))
    assert "cut the root to 8760h" in str(err.value)


@pytest.mark.parametrize("option", ["common_name", "organization", "ou", "country", "locality", "province"])
@pytest.mark.parametrize("source", ["pem_bundle", "certificate"])
def test_subject_options_with_an_imported_root_are_refused_by_name(option, source):
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    text = cert_pem(cert) + (key_pem(key) if source == "pem_bundle" else "")
    overrides = dict(common_name=None)
    overrides[option] = "tetrate.io" if option == "common_name" else ["x"]
    overrides[source] = text
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(**overrides))
    assert str(err.value).startswith("%s only apply to a generated root" % option)


def test_a_bundle_not_a_ca_names_the_option():
    key = make_key("ec", 256)
    leaf = make_cert("CN=leaf", key=key, days=365, ca=False)
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(common_name=None, pem_bundle=cert_pem(leaf) + key_pem(key)))
    assert "in pem_bundle (CN=leaf)" in str(err.value)


def test_a_certificate_that_does_not_parse_names_the_option():
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(common_name=None, certificate=broken))
    assert str(err.value).startswith("certificate does not parse")


@pytest.mark.parametrize("keys", [0, 2])
def test_a_bundle_needs_exactly_one_key(keys):
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    text = cert_pem(cert) + "".join(key_pem(k) for k in [key, make_key("ec", 256)][:keys])
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(common_name=None, pem_bundle=text))
    assert "pem_bundle" in str(err.value) and "found %d keys" % keys in str(err.value)


def test_a_bundle_with_the_key_of_another_certificate_names_the_certificate():
    cert = make_cert("CN=own root", key=make_key("ec", 256), days=365)
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(common_name=None, pem_bundle=cert_pem(cert) + key_pem(make_key("ec", 256))))
    assert "pem_bundle" in str(err.value) and "(CN=own root)" in str(err.value)


def test_a_certificate_with_a_key_points_to_pem_bundle():
    key = make_key("ec", 256)
    cert = make_cert("CN=own root", key=key, days=365)
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(common_name=None, certificate=cert_pem(cert) + key_pem(key)))
    assert "pem_bundle" in str(err.value)


def test_a_certificate_expiring_this_very_moment_is_expired(monkeypatch):
    cert = make_cert("CN=offline root", days=365)
    monkeypatch.setattr(root_module, "now_utc", lambda: not_after(cert))
    with pytest.raises(MeshPkiError) as err:
        RootRequest(params(common_name=None, certificate=cert_pem(cert)))
    assert "expired" in str(err.value)


# -- a root rotation moved the default issuer (issue 18): the record says both roots are the root --------------

def rotated_vault(record, default_key="key-b"):
    """The mount after a rotation: A (iss-a, CN=tetrate.io RSA) and B (iss-b, CN=mesh root 2027, EC) - B default."""
    root_a = make_cert("CN=tetrate.io", days=365)
    root_b = make_cert("CN=mesh root 2027", key=make_key("ec", 256), days=365)
    answers = {("GET", "sys/mounts"): pki_mount(),
               ("GET", "pki/config/issuers"): {"data": {"default": "iss-b"}},
               ("GET", "pki/issuer/iss-a"): issuer_body(root_a, "iss-a", "key-a"),
               ("GET", "pki/issuer/iss-b"): issuer_body(root_b, "iss-b", default_key)}
    if record is not None:
        answers[("GET", "secret/data/roots/pki")] = {"data": {"data": record, "metadata": {"version": 3}}}
    return FakeVault(answers, strict_writes=True), root_a, root_b


@pytest.mark.parametrize("phase", ["sign", "retire"])
def test_the_new_root_of_a_rotation_is_the_root_while_the_request_describes_the_old_one(phase):
    vault, _a, root_b = rotated_vault({"phase": phase, "old_issuer_id": "iss-a", "new_issuer_id": "iss-b"})
    result = manage_root(ModuleStub(params(trust_bundle_path="roots/pki", kv_mount="secret"), vault))
    assert vault.writes() == [] and result["changed"] is False and result["action"] == "none"
    assert result["issuer_id"] == "iss-b" and result["certificate"] == cert_pem(root_b)
    assert vault.paths() == ["sys/mounts", "pki/issuer/default", "secret/data/roots/pki", "pki/issuer/iss-a"]
    assert any("root rotation recorded at 'secret/data/roots/pki' (phase %s)" % phase in note
               and "made the new root" in note for note in result["pending_changes"]), result["pending_changes"]


def test_an_imported_old_root_is_not_imported_again_over_the_new_one():
    vault, root_a, _b = rotated_vault({"phase": "sign", "old_issuer_id": "iss-a", "new_issuer_id": "iss-b"})
    key = make_key("rsa", 2048)
    root_a = make_cert("CN=imported root", key=key, days=365)
    vault.answers[("GET", "pki/issuer/iss-a")] = issuer_body(root_a, "iss-a", "key-a")
    bundle = cert_pem(root_a) + key_pem(key)
    result = manage_root(ModuleStub(params(common_name=None, pem_bundle=bundle, trust_bundle_path="roots/pki"),
                                    vault))
    assert vault.writes() == [] and result["action"] == "none" and result["issuer_id"] == "iss-b"


@pytest.mark.parametrize("record", [
    None,  # no record
    {"phase": "", "old_issuer_id": "", "new_issuer_id": ""},  # no rotation ran
    {"phase": "sign", "old_issuer_id": "iss-x", "new_issuer_id": "iss-y"},  # another rotation's roots
    # the record names A (what the request describes) and another root: the default issuer B is neither
    {"phase": "sign", "old_issuer_id": "iss-a", "new_issuer_id": "iss-x"},
])
def test_a_different_root_the_record_does_not_explain_is_still_refused(record):
    vault, _a, _b = rotated_vault(record)
    with pytest.raises(MeshPkiError, match="already has a different root CA"):
        manage_root(ModuleStub(params(trust_bundle_path="roots/pki"), vault))
    assert vault.writes() == []


def test_the_request_must_describe_the_rotations_other_root():
    vault, _a, _b = rotated_vault({"phase": "retire", "old_issuer_id": "iss-a", "new_issuer_id": "iss-b"})
    with pytest.raises(MeshPkiError, match="already has a different root CA"):
        manage_root(ModuleStub(params(common_name="another.example", trust_bundle_path="roots/pki"), vault))
    assert vault.writes() == []


def test_without_trust_bundle_path_no_record_is_read():
    vault, _a, _b = rotated_vault({"phase": "sign", "old_issuer_id": "iss-a", "new_issuer_id": "iss-b"})
    with pytest.raises(MeshPkiError, match="already has a different root CA"):
        manage_root(ModuleStub(params(), vault))
    assert "secret/data/roots/pki" not in vault.paths()


def test_a_root_that_matches_reads_no_record():
    vault, _a, _b = rotated_vault({"phase": "sign", "old_issuer_id": "iss-a", "new_issuer_id": "iss-b"})
    result = manage_root(ModuleStub(params(common_name="mesh root 2027", key_type="ec", trust_bundle_path="roots/pki"),
                                    vault))
    assert result["action"] == "none" and vault.paths() == ["sys/mounts", "pki/issuer/default"]
