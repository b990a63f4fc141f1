"""Unit tests of the intermediate backend's decisions (pki/intermediate): what is healthy, when to issue,
resume, await or complete, TTL fitting under the root, and whole runs against a recording fake client."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from test_pki import NOW, FakeClient, cert_pem, issuer_body, key_pem, make_cert, make_key, mounts

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import intermediate
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.intermediate import (
    IntermediateCA,
    IntermediateRequest,
    Root,
    StoredKey,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.issuers import Issuer
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import cert_info
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import KvSecret

CN = "tetrate.io Intermediate Authority"
HOUR = 3600


def params(**overrides):
    values = dict(mount="istioca", max_lease_ttl=None, root_mount="pki", kv_mount="secret", kv_path="istioca",
                  kv_field="ca-key.pem", common_name=CN, organization=None, ou=None, country=None, locality=None,
                  province=None, key_type="rsa", key_bits=None, ttl="4380h", ttl_exceeds_root="fail",
                  max_path_length=-1, renew_before=None, force=False, signing="internal", certificate=None,
                  ca_chain=None)
    values.update(overrides)
    return values


class World(object):
    """A root, an intermediate signed by it, and the intermediate's key."""

    def __init__(self, root_days=365, int_hours=4380, int_key=None, subject="CN=" + CN):
        self.root_key = make_key("ec", 256)
        self.root_cert = make_cert("CN=tetrate.io", key=self.root_key, days=root_days)
        self.root = Root("pki", {"type": "pki", "config": {"max_lease_ttl": root_days * 24 * HOUR}},
                         Issuer("pki", "root-iss", cert_pem(self.root_cert), "root-key", [cert_pem(self.root_cert)]))
        self.key = int_key or make_key()
        self.cert = make_cert(subject, key=self.key, issuer=self.root_cert, issuer_key=self.root_key,
                              lifetime=datetime.timedelta(hours=int_hours, seconds=30))
        self.current = Issuer("istioca", "int-iss", cert_pem(self.cert), "int-key",
                              [cert_pem(self.cert), cert_pem(self.root_cert)])

    def stored(self, key=None, version=1, **extra):
        data = {"ca-key.pem": key_pem(key or self.key), "key_id": "int-key"}
        data.update(extra)
        return StoredKey(KvSecret("secret", "istioca", data, version, version), "ca-key.pem")


def backend(check_mode=False, client=None, now=None, **overrides):
    return IntermediateCA(IntermediateRequest(params(**overrides)), client or FakeClient(), check_mode,
                          now=now or NOW)


# ---------------------------------------------------------------------------------------------------------
# the request
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"root_mount": "istioca"}, "mount and root_mount are both 'istioca'"),
    ({"kv_field": "key_id"}, "kv_field 'key_id' is reserved"),
    ({"kv_field": ""}, "kv_field must not be empty"),
    ({"kv_path": "/"}, "kv_path must not be empty"),
    ({"renew_before": "4380h"}, "renew_before 4380h (182.5 days) must be shorter than ttl 4380h"),
    ({"ttl": "0s"}, "ttl must be longer than 0 seconds"),
    ({"max_path_length": -5}, "max_path_length must be -1"),
    ({"certificate": "x"}, "only used with signing: external"),
    ({"signing": "external", "ca_chain": "x"}, "ca_chain goes with certificate"),
    ({"signing": "external", "certificate": "no pem"}, "certificate holds no PEM 'CERTIFICATE' block"),
    ({"key_type": "ec", "key_bits": 2048}, "key_bits 2048 is not valid with key_type ec"),
])
def test_request_validation(overrides, message):
    with pytest.raises(MeshPkiError) as err:
        IntermediateRequest(params(**overrides))
    assert message in str(err.value) and "Nothing was changed" in str(err.value)


def test_external_certificate_needs_its_chain_and_no_key():
    world = World()
    with pytest.raises(MeshPkiError, match="issuing CA chain of the certificate is missing"):
        IntermediateRequest(params(signing="external", certificate=cert_pem(world.cert)))
    with pytest.raises(MeshPkiError, match="contains a private key"):
        IntermediateRequest(params(signing="external", certificate=cert_pem(world.cert) + key_pem(world.key),
                                   ca_chain=cert_pem(world.root_cert)))
    request = IntermediateRequest(params(signing="external", certificate=cert_pem(world.cert) +
                                         cert_pem(world.root_cert), ca_chain=cert_pem(world.root_cert)))
    assert request.given_cert == world.cert and request.given_chain == [world.root_cert]  # duplicates dropped


def test_max_lease_ttl_defaults_to_ttl():
    assert IntermediateRequest(params(ttl="43800h")).max_lease_ttl == 43800 * HOUR
    assert IntermediateRequest(params(max_lease_ttl="1h")).max_lease_ttl == HOUR


# ---------------------------------------------------------------------------------------------------------
# deciding
# ---------------------------------------------------------------------------------------------------------

def test_healthy_intermediate_has_no_problem():
    world = World()
    ca = backend()
    assert ca.problems(world.current, world.stored(), world.root) == []
    assert ca.choose(world.current, world.stored(), []) == "none"
    assert ca.chain_problem(world.current, world.root) is None


def test_each_difference_is_a_reason():
    world = World()
    other_root = make_cert("CN=tetrate.io", key=make_key("ec", 256))
    cases = [
        (dict(common_name="other"), world.root, world.stored(), "subject is 'CN=%s', requested 'CN=other'" % CN),
        (dict(key_type="ec"), world.root, world.stored(), "key is RSA 2048, requested EC 256"),
        ({}, Root("pki", {}, Issuer("pki", "r2", cert_pem(other_root), "k", [])), world.stored(),
         "it is not signed by the current root CA of 'pki'"),
        ({}, world.root, world.stored(key=make_key("ec", 256)), "the key at 'secret/istioca' version 1 (field "
                                                                "'ca-key.pem') is not the key of this certificate"),
        ({}, world.root, StoredKey(KvSecret("secret", "istioca"), "ca-key.pem"),
         "there is no usable key at 'secret/istioca' (field 'ca-key.pem')"),
        ({}, world.root, StoredKey(KvSecret("secret", "istioca", {"ca-key.pem": "garbage"}, 2, 2), "ca-key.pem"),
         "its value is not a usable private key"),
        (dict(renew_before="5000h", ttl="8760h"), world.root, world.stored(), "within renew_before (5000h"),
        (dict(force=True), world.root, world.stored(), "force: true"),
    ]
    for overrides, root, stored, expected in cases:
        reasons = backend(**overrides).problems(world.current, stored, root)
        assert any(expected in reason for reason in reasons), (overrides, reasons)
    expired = backend(now=NOW + datetime.timedelta(hours=5000))
    assert any("it expired on" in reason for reason in expired.problems(world.current, world.stored(), world.root))
    expected = ["'istioca' has no intermediate CA yet (no default issuer)"]
    assert backend().problems(None, world.stored(), world.root) == expected


def test_stored_key_nobody_uses_is_resumed_not_replaced():
    world = World()
    pending_key = make_key(fresh=True)
    stored = world.stored(key=pending_key, version=2)
    ca = backend()
    reasons = ca.problems(world.current, stored, world.root)
    assert ca.pending(world.current, stored) and ca.choose(world.current, stored, reasons) == "resume"
    assert ca.choose(None, stored, ["none yet"]) == "resume"
    # a stored key of another type than requested is not used: a new one is issued
    ec_ca = backend(key_type="ec")
    assert ec_ca.choose(world.current, stored, ec_ca.problems(world.current, stored, world.root)) == "issue"
    # the installed certificate's own key is not pending: renewal means a new key
    forced = backend(force=True)
    assert forced.choose(world.current, world.stored(), forced.problems(world.current, world.stored(),
                                                                        world.root)) == "issue"
    # external: the stored key waits for its certificate
    external = backend(signing="external")
    assert external.choose(None, stored, ["x"]) == "await"


def test_external_certificate_for_the_stored_key_completes_else_is_refused():
    world = World()
    chain = cert_pem(world.root_cert)
    ok = backend(signing="external", certificate=cert_pem(world.cert), ca_chain=chain)
    assert ok.choose(None, world.stored(), ["x"]) == "complete"
    ok.check_given()
    # the installed certificate given again is not a new one
    assert ok.choose(world.current, world.stored(), []) == "none"
    with pytest.raises(MeshPkiError) as err:
        ok.choose(None, world.stored(key=make_key("ec", 256)), ["x"])
    assert "was not issued for the key stored at 'secret/istioca' version 1" in str(err.value)
    renamed = backend(signing="external", certificate=cert_pem(world.cert), ca_chain=chain, common_name="other")
    with pytest.raises(MeshPkiError, match="subject is 'CN=%s', requested 'CN=other'" % CN):
        renamed.check_given()
    stranger = make_cert("CN=tetrate.io", key=make_key("ec", 256))
    wrong_chain = backend(signing="external", certificate=cert_pem(world.cert), ca_chain=cert_pem(stranger))
    with pytest.raises(MeshPkiError, match="the first certificate of the chain did not sign it"):
        wrong_chain.check_given()


def test_chain_problem_when_vault_lacks_the_issuer():
    world = World()
    lonely = Issuer("istioca", "int-iss", cert_pem(world.cert), "int-key", [cert_pem(world.cert)])
    assert "holds no issuing CA" in backend().chain_problem(lonely, world.root)
    assert backend(signing="external").chain_problem(lonely, None) is None  # nothing to compare with


# ---------------------------------------------------------------------------------------------------------
# TTL under the root
# ---------------------------------------------------------------------------------------------------------

def test_ttl_that_fits_is_sent_as_is():
    world = World(root_days=3650)
    assert backend(ttl="43800h").fit_ttl(world.root) == ({"ttl": "157680000s"}, 157680000)


def test_ttl_longer_than_the_root_mount_allows_fails_or_caps_to_max_lease_ttl():
    world = World(root_days=3650)
    world.root.info = {"config": {"max_lease_ttl": 8760 * HOUR}}
    with pytest.raises(MeshPkiError) as err:
        backend(ttl="43800h").fit_ttl(world.root)
    message = str(err.value)
    assert "ttl 43800h (5.0 years) does not fit under the root: the root mount 'pki' signs for at most 8760h" in message
    assert "Use a ttl of at most 8760h" in message and "ttl_exceeds_root: cap" in message
    ca = backend(ttl="43800h", ttl_exceeds_root="cap")
    assert ca.fit_ttl(world.root) == ({"ttl": "31536000s"}, 31536000)
    assert "capped to 8760h" in ca.warnings[0]


def test_ttl_outliving_the_root_fails_or_ends_with_the_root():
    world = World(root_days=365)  # the guide: root 8760h, intermediate 43800h
    with pytest.raises(MeshPkiError, match="the root CA expires on .*, in 87(59h|60h)"):
        backend(ttl="43800h").fit_ttl(world.root)
    ca = backend(ttl="43800h", ttl_exceeds_root="cap")
    sign, lifetime = ca.fit_ttl(world.root)
    assert sign == {"not_after": world.root_cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert abs(lifetime - 365 * 24 * HOUR) < 120


def test_ttl_equal_to_the_root_lifetime_does_not_fit_a_root_already_running():
    with pytest.raises(MeshPkiError, match="Use a ttl of at most 8759h"):
        backend(ttl="8760h").fit_ttl(World(root_days=365).root)


def test_expired_root_cannot_sign():
    world = World(root_days=1)
    with pytest.raises(MeshPkiError, match="it cannot sign an intermediate any more"):
        backend(now=NOW + datetime.timedelta(days=2)).fit_ttl(world.root)


def test_notes_report_ttl_and_path_length_changes_only():
    world = World(int_hours=4380)
    assert backend(ttl="4380h").notes(world.current, world.root) == []
    notes = backend(ttl="8760h", max_path_length=0).notes(world.current, world.root)
    assert notes[0].startswith("ttl: the certificate lives 4380h") and notes[1].startswith("max_path_length")
    # capped to the root: the expected lifetime is the capped one, no note
    capped = World(root_days=10, int_hours=240)
    assert backend(ttl="43800h", ttl_exceeds_root="cap").notes(capped.current, capped.root) == []


# ---------------------------------------------------------------------------------------------------------
# whole runs against a fake client
# ---------------------------------------------------------------------------------------------------------

def vault(world, stored=None, current=True, default="int-iss"):
    responses = {
        ("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}},
                                      istioca={"type": "pki", "config": {"max_lease_ttl": 4380 * HOUR}},
                                      secret={"type": "kv", "options": {"version": "2"}, "config": {}}),
        ("GET", "pki/issuer/default"): issuer_body(world.root_cert, issuer_id="root-iss", key_id="root-key"),
        ("GET", "istioca/config/issuers"): {"data": {"default": default if current else ""}},
        ("GET", "istioca/issuer/int-iss"): issuer_body(world.cert, issuer_id="int-iss", key_id="int-key",
                                                       chain=[world.root_cert]),
    }
    if stored is not None:
        responses[("GET", "secret/data/istioca")] = {"data": {"data": stored.secret.data,
                                                              "metadata": {"version": stored.secret.version}}}
    return FakeClient(responses)


def test_no_change_run_reads_four_times_and_writes_nothing():
    world = World()
    fake = vault(world, world.stored())
    protected = []
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, protect=protected.append, now=NOW)
    result = ca.run()
    assert not result["changed"] and result["action"] == "none"
    assert fake.paths() == ["sys/mounts", "pki/issuer/default", "istioca/issuer/default", "secret/data/istioca"]
    assert protected == [key_pem(world.key)]  # the key read from KV is masked in the module's output
    assert result["ca_chain"] == [cert_pem(world.cert), cert_pem(world.root_cert)]
    assert result["kv"]["version"] == 1 and result["key_id"] == "int-key"
    assert key_pem(world.key) not in repr(result)


def test_first_run_writes_in_order_key_before_signing():
    world = World()
    new_key = make_key(fresh=True)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(world.cert.subject)
           .sign(new_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    signed = make_cert("CN=" + CN, key=new_key, issuer=world.root_cert, issuer_key=world.root_key)
    fake = vault(world, current=False)
    fake.responses.update({
        ("GET", "secret/metadata/istioca"): None,
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(new_key), "csr": csr,
                                                                      "key_id": "k-new"}},
        ("POST", "secret/data/istioca"): {"data": {"version": 1}},
        ("POST", "pki/root/sign-intermediate"): {"data": {"certificate": cert_pem(signed),
                                                          "issuing_ca": cert_pem(world.root_cert),
                                                          "ca_chain": [cert_pem(signed), cert_pem(world.root_cert)]}},
        ("POST", "istioca/intermediate/set-signed"): {"data": {"imported_issuers": ["i-new", "i-root"],
                                                               "mapping": {"i-new": "k-new", "i-root": ""}}},
        ("POST", "istioca/config/issuers"): {"data": {"default": "i-new"}},
    })
    protected = []
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, protect=protected.append, now=NOW)
    result = ca.run()
    assert result["changed"] and result["action"] == "issue" and result["issuer_id"] == "i-new"
    assert fake.paths("POST") == ["istioca/intermediate/generate/exported", "secret/data/istioca",
                                  "pki/root/sign-intermediate", "istioca/intermediate/set-signed",
                                  "istioca/config/issuers"]
    bodies = dict((path, body) for method, path, body in fake.log if method == "POST")
    assert bodies["secret/data/istioca"] == {"options": {"cas": 0}, "data": {
        "ca-key.pem": key_pem(new_key), "key_id": "k-new", "csr": csr}}
    assert bodies["pki/root/sign-intermediate"] == {"common_name": CN, "csr": csr, "format": "pem",
                                                    "max_path_length": -1, "use_csr_values": False,
                                                    "ttl": "15768000s"}
    assert bodies["istioca/intermediate/set-signed"]["certificate"] == cert_pem(signed) + cert_pem(world.root_cert)
    assert bodies["istioca/config/issuers"] == {"default": "i-new"}
    assert protected == [key_pem(new_key)]
    assert key_pem(new_key) not in repr(result)


def test_check_mode_reads_and_predicts_only():
    world = World()
    fake = vault(world, world.stored())
    result = IntermediateCA(IntermediateRequest(params(force=True)), fake, True, now=NOW).run()
    assert result["changed"] and result["action"] == "issue" and result["rotated"]
    assert fake.paths("POST") == [] and fake.paths("DELETE") == []
    assert result["diff"]["before"]["serial"] == cert_info(world.cert)["serial"]
    assert result["diff"]["after"]["serial"] == "(new)" and result["diff"]["after"]["kv_version"] == 2


def test_failure_after_the_key_is_stored_says_how_to_resume():
    world = World()
    new_key = make_key(fresh=True)
    fake = vault(world, world.stored())
    fake.responses.update({
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(new_key), "csr": "CSR",
                                                                      "key_id": "k-new"}},
        ("POST", "secret/data/istioca"): {"data": {"version": 2}},
        ("POST", "pki/root/sign-intermediate"): MeshPkiError("Failed to sign ...: permission denied", status=403),
    })
    with pytest.raises(MeshPkiError) as err:
        IntermediateCA(IntermediateRequest(params(force=True)), fake, False, now=NOW).run()
    message = str(err.value)
    assert message.startswith("Failed to sign ...: permission denied. The key for the new intermediate is stored at "
                              "'secret/istioca' version 2")
    assert "re-run" in message and "do not restart istiod" in message and err.value.details == {"status": 403}


def test_lost_race_discards_own_key_and_converges(monkeypatch):
    world = World()
    mine = make_key(fresh=True)
    fake = vault(world, current=False)
    winner = world.stored()
    conflict = MeshPkiError("Failed to write: Vault rejected the request (400): check-and-set parameter did not "
                            "match the current version", status=400)
    fake.responses.update({
        ("GET", "secret/data/istioca"): [None, {"data": {"data": winner.secret.data, "metadata": {"version": 1}}}],
        ("GET", "secret/metadata/istioca"): None,
        ("GET", "istioca/config/issuers"): [{"data": {"default": ""}}, {"data": {"default": ""}},
                                            {"data": {"default": "int-iss"}}],
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(mine), "csr": "C",
                                                                      "key_id": "k-mine"}},
        ("POST", "secret/data/istioca"): conflict,
        ("DELETE", "istioca/key/k-mine"): None,
    })
    monkeypatch.setattr(intermediate.time, "sleep", lambda seconds: None)
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW)
    result = ca.run()
    assert not result["changed"] and result["serial"] == cert_info(world.cert)["serial"]
    assert "istioca/key/k-mine" in fake.paths("DELETE")
    assert any("converged on it" in warning for warning in ca.warnings)
    assert "pki/root/sign-intermediate" not in fake.paths()


def test_lost_race_without_the_winner_finishing_fails_clearly(monkeypatch):
    world = World(int_key=make_key("ec", 256))  # parsed 60 times while waiting: EC keys load fast
    fake = vault(world, current=False)
    fake.responses.update({
        ("GET", "secret/metadata/istioca"): None,
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(make_key()),
                                                                      "csr": "C", "key_id": "k-mine"}},
        ("POST", "secret/data/istioca"): MeshPkiError("check-and-set parameter did not match", status=400),
        ("DELETE", "istioca/key/k-mine"): MeshPkiError("permission denied", status=403),
    })
    fake.responses[("GET", "secret/data/istioca")] = [None, {"data": {"data": world.stored().secret.data,
                                                                      "metadata": {"version": 1}}}]
    clock = [0.0]
    monkeypatch.setattr(intermediate.time, "time", lambda: clock[0])
    monkeypatch.setattr(intermediate.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW)
    with pytest.raises(MeshPkiError) as err:
        ca.run()
    assert "Another writer changed 'secret/istioca'" in str(err.value)
    assert "waited 60 s for the other run" in str(err.value) and "Re-run: it resumes" in str(err.value)
    assert any("Could not delete the key k-mine" in warning for warning in ca.warnings)


def test_root_mount_missing_is_an_error_except_in_check_mode():
    world = World()
    fake = vault(world, world.stored())
    fake.responses[("GET", "sys/mounts")] = mounts(istioca={"type": "pki", "config": {}},
                                                   secret={"type": "kv", "options": {"version": "2"}})
    with pytest.raises(MeshPkiError, match="The root mount 'pki' does not exist"):
        IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    ca = IntermediateCA(IntermediateRequest(params()), fake, True, now=NOW)
    ca.run()
    assert any("Check mode goes on" in warning for warning in ca.warnings)


# ---------------------------------------------------------------------------------------------------------
# resuming with the stored key: which CSR is signed
# ---------------------------------------------------------------------------------------------------------

def csr_for(key):
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string("CN=" + CN))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())


def resume_vault(world, pending_key, stored_csr):
    """KV holds ``pending_key`` (version 2) with ``stored_csr``, which no installed certificate uses: a resume."""
    stored = world.stored(key=pending_key, version=2, key_id="k-pending", csr=stored_csr)
    signed = make_cert("CN=" + CN, key=pending_key, issuer=world.root_cert, issuer_key=world.root_key)
    fresh_csr = csr_for(pending_key)
    fake = vault(world, stored)
    fake.responses.update({
        ("LIST", "istioca/keys"): {"data": {"keys": ["int-key", "k-pending"]}},
        ("LIST", "istioca/issuers"): {"data": {"key_info": {"int-iss": {"key_id": "int-key"}}}},
        ("POST", "istioca/intermediate/generate/existing"): {"data": {"csr": fresh_csr}},
        ("POST", "pki/root/sign-intermediate"): {"data": {"certificate": cert_pem(signed),
                                                          "issuing_ca": cert_pem(world.root_cert)}},
        ("POST", "istioca/intermediate/set-signed"): {"data": {"imported_issuers": ["i-new"],
                                                               "mapping": {"i-new": "k-pending"}}},
        ("POST", "istioca/config/issuers"): {"data": {"default": "i-new"}},
    })
    return fake, signed, fresh_csr


def test_resume_signs_the_stored_csr_when_it_belongs_to_the_stored_key():
    world = World()
    pending_key = make_key(fresh=True)
    stored_csr = csr_for(pending_key)
    fake, signed, _fresh_csr = resume_vault(world, pending_key, stored_csr)
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["action"] == "resume" and result["resumed"] is True and result["issuer_id"] == "i-new"
    assert fake.paths("POST") == ["pki/root/sign-intermediate", "istioca/intermediate/set-signed",
                                  "istioca/config/issuers"]
    bodies = dict((path, body) for method, path, body in fake.log if method == "POST")
    assert bodies["pki/root/sign-intermediate"]["csr"] == stored_csr
    assert bodies["istioca/intermediate/set-signed"]["certificate"] == cert_pem(signed) + cert_pem(world.root_cert)


def test_resume_makes_a_new_csr_when_the_stored_one_is_of_another_key():
    # The KV secret's csr field belongs to another key (e.g. written by hand or by an older run): signing it
    # would give a certificate whose key is not the stored key. A CSR is made from the stored key instead.
    world = World()
    pending_key = make_key(fresh=True)
    stale_csr = csr_for(make_key("ec", 256))
    fake, _signed, fresh_csr = resume_vault(world, pending_key, stale_csr)
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["action"] == "resume" and result["issuer_id"] == "i-new"
    assert fake.paths("POST") == ["istioca/intermediate/generate/existing", "pki/root/sign-intermediate",
                                  "istioca/intermediate/set-signed", "istioca/config/issuers"]
    bodies = dict((path, body) for method, path, body in fake.log if method == "POST")
    assert bodies["istioca/intermediate/generate/existing"] == {"common_name": CN, "key_ref": "k-pending"}
    assert bodies["pki/root/sign-intermediate"]["csr"] == fresh_csr


def test_read_root_no_default_issuer_is_root_unavailable_other_errors_propagate():
    fake = FakeClient({("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {}})})
    fake.responses[("GET", "pki/issuer/default")] = MeshPkiError("cannot read the root CA pki/issuer/default: "
                                                                 "no default issuer currently configured")
    with pytest.raises(intermediate.RootUnavailable, match="The root mount 'pki' has no CA"):
        backend(client=fake).read_root()
    denied = MeshPkiError("cannot read the root CA pki/issuer/default: permission denied", status=403)
    fake.responses[("GET", "pki/issuer/default")] = denied
    with pytest.raises(MeshPkiError) as err:
        backend(client=fake).read_root()
    assert err.value is denied


def test_resume_imports_the_stored_key_back_when_vault_lost_it():
    world = World()
    pending_key = make_key(fresh=True)
    fake, _signed, fresh_csr = resume_vault(world, pending_key, csr_for(make_key("ec", 256)))
    fake.responses[("LIST", "istioca/keys")] = {"data": {"keys": ["int-key"]}}  # k-pending was deleted
    fake.responses[("POST", "istioca/keys/import")] = {"data": {"key_id": "k-back"}}
    fake.responses[("POST", "istioca/intermediate/set-signed")] = {"data": {"imported_issuers": ["i-new"],
                                                                            "mapping": {"i-new": "k-back"}}}
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW)
    result = ca.run()
    assert result["action"] == "resume" and result["key_id"] == "k-back"
    bodies = dict((path, body) for method, path, body in fake.log if method == "POST")
    assert bodies["istioca/keys/import"] == {"pem_bundle": key_pem(pending_key)}
    assert bodies["istioca/intermediate/generate/existing"] == {"common_name": CN, "key_ref": "k-back"}
    assert bodies["pki/root/sign-intermediate"]["csr"] == fresh_csr
    assert ca.warnings == ["The key stored at 'secret/istioca' version 2 (field 'ca-key.pem') was not in 'istioca' "
                           "(key k-pending was deleted?); it was imported from KV as key k-back."]


def test_resume_adopts_an_issuer_the_mount_already_has_for_the_stored_key():
    # An earlier run stopped between set-signed and config/issuers: the issuer is there, only the default is not.
    world = World()
    pending_key = make_key(fresh=True)
    fake, signed, _fresh_csr = resume_vault(world, pending_key, csr_for(pending_key))
    fake.responses[("LIST", "istioca/issuers")] = {"data": {"key_info": {
        "int-iss": {"key_id": "int-key"}, "i-done": {"key_id": "k-pending"}}}}
    fake.responses[("GET", "istioca/issuer/i-done")] = issuer_body(signed, issuer_id="i-done", key_id="k-pending",
                                                                   chain=[world.root_cert])
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["action"] == "resume" and result["issuer_id"] == "i-done" and result["changed"] is True
    assert fake.paths("POST") == ["istioca/config/issuers"]
    assert dict((path, body) for method, path, body in fake.log if method == "POST") == {
        "istioca/config/issuers": {"default": "i-done"}}
    assert result["certificate"] == cert_pem(signed) and result["rotated"] is True
    assert result["previous_serial"] == cert_info(world.cert)["serial"]


def test_notes_with_cap_expect_the_root_mounts_max_lease_ttl():
    world = World(root_days=3650, int_hours=240)
    world.root.info = {"type": "pki", "config": {"max_lease_ttl": 240 * HOUR}}
    ca = backend(ttl="43800h", ttl_exceeds_root="cap")
    assert ca.notes(world.current, world.root) == []  # the root mount signs for 240h: that is what it got
    world.root.info = {"type": "pki", "config": {"max_lease_ttl": 480 * HOUR}}
    assert ca.notes(world.current, world.root)[0].startswith("ttl: the certificate lives 240h")
    assert backend(ttl="240h", max_path_length=0).notes(world.current, world.root) == [
        "max_path_length: the certificate has -1, 0 is asked for; applies when a new certificate is issued"]
    assert backend(ttl="240h").notes(world.current, None) == []  # signing: external, no root to compare with


def test_an_intermediate_whose_vault_chain_lacks_the_root_gets_the_root_imported():
    world = World()
    fake = vault(world, world.stored())
    lonely = issuer_body(world.cert, issuer_id="int-iss", key_id="int-key")  # set-signed without issuing_ca
    fixed = issuer_body(world.cert, issuer_id="int-iss", key_id="int-key", chain=[world.root_cert])
    fake.responses[("GET", "istioca/issuer/int-iss")] = [lonely, fixed]
    fake.responses[("POST", "istioca/issuers/import/cert")] = {"data": {"imported_issuers": ["root-copy"]}}
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["action"] == "chain" and result["changed"] is True and result["rotated"] is False
    assert result["reasons"] == ["'istioca/cert/ca_chain' holds no issuing CA for the intermediate (it was imported "
                                 "without its chain): istiod's cert-chain.pem would end at the intermediate"]
    assert fake.paths("POST") == ["istioca/issuers/import/cert"]
    assert [body for method, path, body in fake.log if method == "POST"] == [{"pem_bundle": cert_pem(world.root_cert)}]
    assert result["ca_chain"] == [cert_pem(world.cert), cert_pem(world.root_cert)]


def test_external_signing_awaits_with_the_stored_csr_and_writes_nothing():
    world = World()
    pending_key = make_key(fresh=True)
    stored_csr = csr_for(pending_key)
    fake, _signed, _fresh_csr = resume_vault(world, pending_key, stored_csr)
    ca = IntermediateCA(IntermediateRequest(params(signing="external")), fake, False, now=NOW)
    result = ca.run()
    assert result["action"] == "await" and result["changed"] is False and result["pending"] is True
    assert result["csr"] == stored_csr and result["kv"]["version"] == 2
    assert fake.paths("POST") == [] and ("LIST", "istioca/keys") not in [(m, p) for m, p, _b in fake.log]
    assert ca.warnings == ["The key at 'secret/istioca' version 2 (field 'ca-key.pem') awaits its signed certificate: "
                           "sign the CSR (csr) with your CA and pass it as certificate (with ca_chain)."]


def test_external_signing_awaits_with_a_new_csr_when_the_stored_one_is_of_another_key():
    world = World()
    pending_key = make_key(fresh=True)
    fake, _signed, fresh_csr = resume_vault(world, pending_key, csr_for(make_key("ec", 256)))
    result = IntermediateCA(IntermediateRequest(params(signing="external")), fake, False, now=NOW).run()
    assert result["action"] == "await" and result["csr"] == fresh_csr
    assert fake.paths("POST") == ["istioca/intermediate/generate/existing"]


def test_check_mode_await_never_returns_a_csr_of_another_key():
    world = World()
    pending_key = make_key(fresh=True)
    stored_csr = csr_for(pending_key)
    fake, _signed, _fresh_csr = resume_vault(world, pending_key, stored_csr)
    result = IntermediateCA(IntermediateRequest(params(signing="external")), fake, True, now=NOW).run()
    assert result["action"] == "await" and result["csr"] == stored_csr and fake.paths("POST") == []
    # the KV secret's csr belongs to another key: check mode cannot make a new one, so it returns none
    fake, _signed, _fresh_csr = resume_vault(world, pending_key, csr_for(make_key("ec", 256)))
    result = IntermediateCA(IntermediateRequest(params(signing="external")), fake, True, now=NOW).run()
    assert result["action"] == "await" and result["csr"] is None and fake.paths("POST") == []
