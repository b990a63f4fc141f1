"""Unit tests of pki/issuers.py against the strict fake Vault beyond test_pki.py: what each request says when
Vault refuses it (the action and the capability), the mount table cache being transparent, a missing issuer,
and find_issuer when the list of issuers is missing (issue #16 point 6: each test kills a surviving mutant)."""

import pytest
from test_pki import issuer_body, make_cert, make_key

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import issuers as pki_issuers
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import cert_info
from harness.fake_vault import FakeVault

MOUNTS = {"data": {"pki/": {"type": "pki"}}}


def refused(call, path):
    """The MeshPkiError of ``call()`` (Vault answers 403) and the text before the path it names: the action."""
    with pytest.raises(MeshPkiError) as caught:
        call()
    message = str(caught.value)
    assert "'%s'" % path in message, message
    return message, message.split("'%s'" % path, 1)[0]


# ---------------------------------------------------------------------------------------------------------
# MountTableCache
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, kwargs", [
    ("pki/cert/ca", {}), ("pki/cert/ca", {"action": "read the CA certificate of"}),
    ("sys/mounts", {}), ("sys/mounts", {"action": "read the mount table"}),
])
def test_mount_table_cache_fails_as_the_client_does(path, kwargs):
    fake = FakeVault({("GET", path): 403})
    with pytest.raises(MeshPkiError) as direct:
        fake.read(path, **kwargs)
    with pytest.raises(MeshPkiError) as cached:
        pki_issuers.MountTableCache(fake).read(path, **kwargs)
    assert str(cached.value) == str(direct.value)


def test_mount_table_cache_knows_the_table_by_its_path_alone():
    fake = FakeVault({("GET", "sys/mounts"): MOUNTS, ("GET", "Xsys/mounts"): {"data": {"other": True}}})
    cache = pki_issuers.MountTableCache(fake)
    for path in ("sys/mounts", "/sys/mounts", "sys/mounts/", "/sys/mounts/"):
        assert cache.read(path) == MOUNTS
    assert fake.paths() == ["sys/mounts"]
    assert cache.read("Xsys/mounts") == {"data": {"other": True}}  # another mount's path: not the table
    assert fake.paths() == ["sys/mounts", "Xsys/mounts"]


# ---------------------------------------------------------------------------------------------------------
# reads and writes: the action and capability Vault's refusal is reported with
# ---------------------------------------------------------------------------------------------------------

def test_max_lease_ttl_refused_tuning_read_says_so():
    fake = FakeVault({("GET", "sys/mounts/pki/tune"): 403})
    _message, action = refused(lambda: pki_issuers.max_lease_ttl_of(fake, "pki", {"config": {}}),
                               "sys/mounts/pki/tune")
    assert "tuning" in action


def test_read_default_issuer_refused_says_what_it_read():
    fake = FakeVault({("GET", "pki/issuer/default"): 403})
    _message, action = refused(lambda: pki_issuers.read_default_issuer(fake, "pki"), "pki/issuer/default")
    assert "default issuer" in action


def test_read_issuer_refused_says_what_it_read():
    fake = FakeVault({("GET", "pki/issuer/abc"): 403})
    _message, action = refused(lambda: pki_issuers.read_issuer(fake, "pki", "abc"), "pki/issuer/abc")
    assert "issuer" in action


def test_read_issuer_missing_is_none_and_found_knows_its_mount():
    assert pki_issuers.read_issuer(FakeVault(), "pki", "gone") is None
    cert = make_cert()
    fake = FakeVault({("GET", "pki/issuer/abc"): issuer_body(cert, issuer_id="abc", key_id="k")})
    issuer = pki_issuers.read_issuer(fake, "pki", "abc")
    assert (issuer.mount, issuer.issuer_id, issuer.key_id, issuer.cert) == ("pki", "abc", "k", cert)


def test_set_default_issuer_sends_the_id_and_names_action_and_capability_when_refused():
    fake = FakeVault()
    pki_issuers.set_default_issuer(fake, "pki", "abc")
    assert fake.body("POST", "pki/config/issuers") == {"default": "abc"}
    denied = FakeVault({("POST", "pki/config/issuers"): 403})
    message, action = refused(lambda: pki_issuers.set_default_issuer(denied, "pki", "abc"), "pki/config/issuers")
    assert "default issuer" in action and "'update'" in message


def test_issuer_with_a_bad_certificate_names_the_issuer_and_mount():
    with pytest.raises(MeshPkiError) as caught:
        pki_issuers.Issuer.from_response("pki_int", {"data": {"issuer_id": "abc-123", "certificate": "junk"}})
    assert "abc-123" in str(caught.value) and "pki_int" in str(caught.value)


# ---------------------------------------------------------------------------------------------------------
# find_issuer
# ---------------------------------------------------------------------------------------------------------

def imported(*ids):
    return {"data": {"imported_issuers": list(ids), "mapping": dict((i, "key-" + i) for i in ids)}}


def test_find_issuer_without_a_list_of_issuers_names_serial_and_imported_ids():
    cert = make_cert(key=make_key("ec", 256))
    with pytest.raises(MeshPkiError) as caught:
        pki_issuers.find_issuer(FakeVault(), "pki", imported("a1", "b2"), cert)
    message = str(caught.value)
    assert cert_info(cert)["serial"] in message and "a1, b2" in message and "'pki/config/issuers'" in message


def test_find_issuer_list_refused_names_action_and_capability():
    cert = make_cert(key=make_key("ec", 256))
    fake = FakeVault({("LIST", "pki/issuers"): 403})
    message, action = refused(lambda: pki_issuers.find_issuer(fake, "pki", imported("a1", "b2"), cert),
                              "pki/issuers")
    assert "list" in action and "'list'" in message


def test_find_issuer_by_serial_from_the_list():
    cert = make_cert(key=make_key("ec", 256))
    other = make_cert(key=make_key("ec", 256))
    listing = {"data": {"keys": ["a1", "b2"], "key_info": {
        "a1": {"serial_number": cert_info(other)["serial"]}, "b2": {"serial_number": cert_info(cert)["serial"]}}}}
    fake = FakeVault({("LIST", "pki/issuers"): listing})
    assert pki_issuers.find_issuer(fake, "pki", imported("a1", "b2"), cert) == "b2"
    assert fake.paths() == ["pki/issuers"]  # one read, nothing sent
