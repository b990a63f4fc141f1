"""IntermediateCA (pki/intermediate) beyond the decisions: the guard's refusal and its old -> new details, the
whole result and --diff of each kind of run, the root checks, the external-signing paths (issue, await, complete,
chain import from the given chain) and the request bodies of the less common steps (issue #16 point 6)."""

import datetime

import pytest
from test_pki import NOW, FakeClient, cert_pem, issuer_body, key_pem, make_cert, make_key, mounts
from test_pki_intermediate import CN, HOUR, World, backend, csr_for, params, resume_vault, vault

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import intermediate
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.certs import diff_view, summary
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.intermediate import (
    IntermediateCA,
    IntermediateRequest,
    Outcome,
    Root,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.issuers import Issuer
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.x509 import cert_info

ARROW = "\u2192"


def posts(fake):
    return dict((path, body) for method, path, body in fake.log if method == "POST")


# ---------------------------------------------------------------------------------------------------------
# the guard: a new subject or key alone never replaces an intermediate
# ---------------------------------------------------------------------------------------------------------

def test_changes_lists_subject_and_key_old_and_new():
    world = World()
    old_subject = "CN=" + CN
    assert backend(common_name="other", key_type="ec", key_bits=384).changes(world.cert) == [
        dict(what="subject", old=old_subject, new="CN=other",
             text="subject '%s' %s 'CN=other'" % (old_subject, ARROW)),
        dict(what="key", old="RSA 2048", new="EC 384", text="key RSA 2048 %s EC 384" % ARROW)]
    assert backend(key_type="rsa", key_bits=4096).changes(world.cert) == [
        dict(what="key", old="RSA 2048", new="RSA 4096", text="key RSA 2048 %s RSA 4096" % ARROW)]
    assert backend().changes(world.cert) == []


def test_guard_refuses_a_new_subject_and_key_naming_old_new_and_the_switch():
    world = World()
    ca = backend(common_name="other", key_type="ec")
    with pytest.raises(MeshPkiError) as err:
        ca.guard(world.current, world.stored(version=3), world.root)
    message = str(err.value)
    serial = cert_info(world.cert)["serial"]
    assert "'istioca'" in message and "int-iss" in message and serial in message
    assert "subject 'CN=%s' %s 'CN=other', key RSA 2048 %s EC 256" % (CN, ARROW, ARROW) in message
    assert "force: true" in message and "'secret/istioca' as version 3" in message
    assert err.value.details["guard"] == dict(
        mount="istioca", issuer_id="int-iss", serial=serial,
        changes=[dict(what="subject", old="CN=" + CN, new="CN=other",
                      text="subject 'CN=%s' %s 'CN=other'" % (CN, ARROW)),
                 dict(what="key", old="RSA 2048", new="EC 256", text="key RSA 2048 %s EC 256" % ARROW)],
        kv=dict(mount="secret", path="istioca", version=3))
    assert ca.warnings == []


def test_guard_lets_force_and_unchanged_requests_through():
    world = World()
    forced = backend(common_name="other", force=True)
    forced.guard(world.current, world.stored(), world.root)
    assert forced.warnings == []
    same = backend()
    same.guard(world.current, world.stored(), world.root)
    assert same.warnings == []


def test_guard_warns_when_the_intermediate_is_due_anyway():
    world = World(int_hours=100)
    ca = backend(common_name="other", ttl="4380h", renew_before="200h")
    ca.guard(world.current, world.stored(), world.root)
    assert len(ca.warnings) == 1
    warning = ca.warnings[0]
    assert "'istioca'" in warning and "within renew_before (200h" in warning
    assert "subject 'CN=%s' %s 'CN=other'" % (CN, ARROW) in warning
    assert "requested 'CN=other'" not in warning  # only the reasons that need a new certificate anyway


def test_guard_checks_the_signer_against_the_given_root():
    # The intermediate is signed by the old root (its Vault chain says so); the root mount now has another CA:
    # replacing is due, so the new subject is taken with a warning instead of a refusal.
    world = World()
    new_root_key = make_key("ec", 256)
    new_root_cert = make_cert("CN=tetrate.io", key=new_root_key, days=365)
    new_root = Root("pki", world.root.info, Issuer("pki", "root2", cert_pem(new_root_cert), "root-key2", []))
    ca = backend(common_name="other")
    ca.guard(world.current, world.stored(), new_root)
    assert len(ca.warnings) == 1 and "it is not signed by the current root CA of 'pki'" in ca.warnings[0]


def test_guard_refusal_comes_before_any_write_in_a_run_and_in_check_mode():
    world = World()
    for check_mode in (False, True):
        fake = vault(world, world.stored())
        ca = IntermediateCA(IntermediateRequest(params(common_name="other")), fake, check_mode, now=NOW)
        with pytest.raises(MeshPkiError) as err:
            ca.run()
        assert "subject 'CN=%s' %s 'CN=other'" % (CN, ARROW) in str(err.value)
        assert fake.paths("POST") == [] and fake.paths("DELETE") == []


def test_a_due_run_with_new_values_is_issued_with_a_warning():
    # within renew_before: the new subject is taken (issue), the guard only warns
    world = World(int_hours=100)
    fake = vault(world, world.stored())
    ca = IntermediateCA(IntermediateRequest(params(common_name="other", renew_before="200h")), fake, True, now=NOW)
    result = ca.run()
    assert result["action"] == "issue" and result["changed"] is True
    assert any("subject 'CN=%s' %s 'CN=other'" % (CN, ARROW) in warning for warning in ca.warnings)
    assert result["diff"]["after"]["subject"] == "CN=other"


# ---------------------------------------------------------------------------------------------------------
# the result and --diff
# ---------------------------------------------------------------------------------------------------------

def expected_cert_fields(cert):
    info = summary(cert)
    return dict(certificate=cert_pem(cert), serial=info["serial"], subject=info["subject"],
                not_before=info["not_before"], not_after=info["not_after"], key_type=info["key_type"],
                key_bits=info["key_bits"])


MOUNT_VIEWS = dict(mount_type="pki", max_lease_ttl="4380h", kv_mount_type="kv v2")
HEADER = "istioca (intermediate CA), secret/istioca"


def test_result_of_a_healthy_run_in_full():
    world = World()
    fake = vault(world, world.stored(version=4))
    result = IntermediateCA(IntermediateRequest(params(max_path_length=0)), fake, False, now=NOW).run()
    view = dict(diff_view(world.cert), kv_version=4, **MOUNT_VIEWS)
    assert result == dict(
        changed=False, mount="istioca", signing="internal", action="none", reasons=[],
        pending_changes=["max_path_length: the certificate has -1, 0 is asked for; applies when a new certificate "
                         "is issued"],
        ca_chain=[cert_pem(world.cert), cert_pem(world.root_cert)],
        issuer_id="int-iss", key_id="int-key", kv=dict(mount="secret", path="istioca", field="ca-key.pem", version=4),
        rotated=False, previous_serial=None, resumed=False, pending=False, csr=None, root_mount="pki",
        diff=dict(before=view, after=view, before_header=HEADER, after_header=HEADER),
        **expected_cert_fields(world.cert))


def test_result_of_a_check_mode_run_on_an_empty_mount_in_full():
    world = World()
    fake = vault(world, current=False)
    fake.responses[("GET", "sys/mounts")] = mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}})
    result = IntermediateCA(IntermediateRequest(params(ttl="100h")), fake, True, now=NOW).run()
    assert fake.paths("POST") == [] and "istioca/config/issuers" not in fake.paths()
    not_after = (NOW + datetime.timedelta(hours=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result == dict(
        changed=True, mount="istioca", signing="internal", action="issue",
        reasons=["'istioca' has no intermediate CA yet (no default issuer)"], pending_changes=[],
        certificate=None, ca_chain=[], serial=None, subject=None, not_before=None, not_after=None, key_type=None,
        key_bits=None, issuer_id=None, key_id=None,
        kv=dict(mount="secret", path="istioca", field="ca-key.pem", version=0),
        rotated=False, previous_serial=None, resumed=False, pending=False, csr=None, root_mount="pki",
        diff=dict(before=dict(kv_version=0),
                  after=dict(subject="CN=" + CN, serial="(new)", key="RSA 2048", not_after=not_after, kv_version=1,
                             mount_type="pki", max_lease_ttl="100h", kv_mount_type="kv v2"),
                  before_header=HEADER, after_header=HEADER))


def test_check_mode_predicts_a_resume_with_the_stored_version_and_a_switch():
    world = World()
    pending_key = make_key(fresh=True)
    fake, _signed, _csr = resume_vault(world, pending_key, csr_for(pending_key))
    result = IntermediateCA(IntermediateRequest(params(ttl="100h")), fake, True, now=NOW).run()
    assert result["action"] == "resume" and result["changed"] is True and result["resumed"] is True
    assert result["rotated"] is True and result["previous_serial"] == cert_info(world.cert)["serial"]
    assert result["pending"] is False and result["key_id"] == "int-key"
    after = result["diff"]["after"]
    assert after["kv_version"] == 2 and after["serial"] == "(new)" and after["key"] == "RSA 2048"
    assert after["not_after"] == (NOW + datetime.timedelta(hours=100)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result["diff"]["before"]["kv_version"] == 2
    assert result["diff"]["before"]["serial"] == cert_info(world.cert)["serial"]
    # the certificate shown is the one in place until the run applies
    assert result["certificate"] == cert_pem(world.cert) and result["issuer_id"] == "int-iss"


def test_check_mode_with_cap_predicts_the_capped_end():
    world = World(root_days=10, int_hours=240)
    fake = vault(world, world.stored())
    result = IntermediateCA(IntermediateRequest(params(ttl="4380h", ttl_exceeds_root="cap", force=True)), fake, True,
                            now=NOW).run()
    predicted = datetime.datetime.strptime(result["diff"]["after"]["not_after"], "%Y-%m-%dT%H:%M:%SZ")
    assert abs(predicted - world.root_cert.not_valid_after_utc.replace(tzinfo=None)) < datetime.timedelta(minutes=2)


def test_mount_views_show_types_and_max_lease_ttl():
    views = intermediate._mount_views({"type": "pki", "max_lease_ttl": 3600}, {"type": "kv", "version": "2"})
    assert views == {"mount_type": "pki", "max_lease_ttl": "1h", "kv_mount_type": "kv v2"}
    assert intermediate._mount_views({"type": "pki"}, {"type": "kv"}) == {"mount_type": "pki", "kv_mount_type": "kv v1"}
    assert intermediate._mount_views(None, None) == {}


def test_result_without_a_root_mount_for_external_signing():
    world = World()
    fake = vault(world, world.stored())
    result = IntermediateCA(IntermediateRequest(params(signing="external")), fake, False, now=NOW).run()
    assert result["action"] == "none" and "root_mount" not in result and result["signing"] == "external"
    assert "pki/issuer/default" not in fake.paths()


def test_changed_is_true_when_only_the_mount_is_tuned():
    world = World()
    fake = vault(world, world.stored())
    tuned = mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}},
                   istioca={"type": "pki", "config": {"max_lease_ttl": 4380 * HOUR}},
                   secret={"type": "kv", "options": {"version": "2"}, "config": {}})
    fake.responses[("GET", "sys/mounts")] = [
        mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}},
               istioca={"type": "pki", "config": {"max_lease_ttl": 100 * HOUR}},
               secret={"type": "kv", "options": {"version": "2"}, "config": {}}), tuned]
    fake.responses[("POST", "sys/mounts/istioca/tune")] = None
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["changed"] is True and result["action"] == "none"
    assert posts(fake) == {"sys/mounts/istioca/tune": {"max_lease_ttl": "%ds" % (4380 * HOUR)}}
    assert result["diff"]["before"]["max_lease_ttl"] == "100h" and result["diff"]["after"]["max_lease_ttl"] == "4380h"
    check = vault(world, world.stored())
    check.responses[("GET", "sys/mounts")] = fake.responses[("GET", "sys/mounts")] = [
        mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}},
               istioca={"type": "pki", "config": {"max_lease_ttl": 100 * HOUR}},
               secret={"type": "kv", "options": {"version": "2"}, "config": {}})]
    result = IntermediateCA(IntermediateRequest(params()), check, True, now=NOW).run()
    assert result["changed"] is True and result["action"] == "none" and check.paths("POST") == []


# ---------------------------------------------------------------------------------------------------------
# the root
# ---------------------------------------------------------------------------------------------------------

def test_read_root_refuses_another_engine_and_an_offline_root():
    world = World()
    fake = FakeClient({("GET", "sys/mounts"): mounts(pki={"type": "kv", "options": {"version": "2"}})})
    with pytest.raises(MeshPkiError) as err:
        backend(client=fake).read_root()
    assert "'pki' is a kv secrets engine, not pki" in str(err.value)
    assert not isinstance(err.value, intermediate.RootUnavailable)
    offline = FakeClient({("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {}}),
                          ("GET", "pki/issuer/default"): issuer_body(world.root_cert, "root-iss", "")})
    with pytest.raises(MeshPkiError) as err:
        backend(client=offline).read_root()
    assert "offline root" in str(err.value) and cert_info(world.root_cert)["serial"] in str(err.value)
    assert not isinstance(err.value, intermediate.RootUnavailable)
    empty = FakeClient({("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {}})})
    with pytest.raises(intermediate.RootUnavailable, match="The root mount 'pki' has no CA"):
        backend(client=empty).read_root()
    fine = FakeClient({("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {"max_lease_ttl": 60}}),
                       ("GET", "pki/issuer/default"): issuer_body(world.root_cert, "root-iss", "root-key")})
    root = backend(client=fine).read_root()
    assert root.mount == "pki" and root.cert == world.root_cert and root.issuer.issuer_id == "root-iss"
    assert root.info["type"] == "pki"


def test_root_chain_pems_is_its_certificate_then_its_own_issuers():
    parent = make_cert("CN=parent", key=make_key("ec", 256))
    root_cert = make_cert("CN=tetrate.io")
    issuer = Issuer("pki", "r", cert_pem(root_cert), "k", [cert_pem(root_cert), cert_pem(parent)])
    assert Root("pki", {}, issuer).chain_pems() == [cert_pem(root_cert), cert_pem(parent)]
    alone = Issuer("pki", "r", cert_pem(root_cert), "k", [cert_pem(root_cert) + "\n"])
    assert Root("pki", {}, alone).chain_pems() == [cert_pem(root_cert)]


def test_renew_before_longer_than_the_root_allows_fails_before_any_write():
    world = World(root_days=10, int_hours=100)
    fake = vault(world, world.stored())
    with pytest.raises(MeshPkiError) as err:
        IntermediateCA(IntermediateRequest(params(ttl="4380h", ttl_exceeds_root="cap", renew_before="300h")),
                       fake, False, now=NOW).run()
    assert "renew_before (300h" in str(err.value) and "'pki'" in str(err.value)
    assert fake.paths("POST") == []


def test_a_healthy_intermediate_with_a_ttl_the_root_mount_cannot_sign_is_refused():
    world = World()
    fake = vault(world, world.stored())
    with pytest.raises(MeshPkiError) as err:
        IntermediateCA(IntermediateRequest(params(ttl="9000h", max_lease_ttl="4380h")), fake, False, now=NOW).run()
    assert "the root mount 'pki' signs for at most 8760h" in str(err.value) and fake.paths("POST") == []
    # with cap, the same is only a note
    fake = vault(world, world.stored())
    request = IntermediateRequest(params(ttl="9000h", ttl_exceeds_root="cap", max_lease_ttl="4380h"))
    result = IntermediateCA(request, fake, False, now=NOW).run()
    assert result["action"] == "none" and fake.paths("POST") == []


def test_check_ttl_limit_uses_the_root_mounts_max_lease_ttl():
    world = World()
    world.root.info = {"type": "pki", "config": {"max_lease_ttl": 100 * HOUR}}
    backend(ttl="100h").check_ttl_limit(world.root)
    with pytest.raises(MeshPkiError, match="signs for at most 100h"):
        backend(ttl="101h").check_ttl_limit(world.root)
    backend(ttl="101h", ttl_exceeds_root="cap").check_ttl_limit(world.root)


# ---------------------------------------------------------------------------------------------------------
# signing: external
# ---------------------------------------------------------------------------------------------------------

def test_external_first_run_stores_the_key_and_returns_its_csr_unsigned():
    world = World()
    new_key = make_key(fresh=True)
    csr = csr_for(new_key)
    fake = vault(world, current=False)
    fake.responses.update({
        ("GET", "secret/metadata/istioca"): None,
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(new_key), "csr": csr,
                                                                      "key_id": "k-new"}},
        ("POST", "secret/data/istioca"): {"data": {"version": 1}},
    })
    ca = IntermediateCA(IntermediateRequest(params(signing="external", key_type="rsa", key_bits=3072)), fake,
                        False, now=NOW)
    result = ca.run()
    assert fake.paths("POST") == ["istioca/intermediate/generate/exported", "secret/data/istioca"]
    assert posts(fake)["istioca/intermediate/generate/exported"] == {"common_name": CN, "key_type": "rsa",
                                                                     "key_bits": 3072}
    assert result["action"] == "issue" and result["changed"] is True and result["pending"] is True
    assert result["csr"] == csr and result["kv"]["version"] == 1 and result["certificate"] is None
    assert result["key_id"] is None and result["rotated"] is False


def test_external_run_with_an_installed_certificate_returns_it_with_the_csr():
    world = World()
    new_key = make_key(fresh=True)
    csr = csr_for(new_key)
    fake = vault(world, world.stored())
    fake.responses.update({
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(new_key), "csr": csr,
                                                                      "key_id": "k-new"}},
        ("POST", "secret/data/istioca"): {"data": {"version": 2}},
    })
    result = IntermediateCA(IntermediateRequest(params(signing="external", force=True)), fake, False,
                            now=NOW).run()
    assert posts(fake)["secret/data/istioca"]["options"] == {"cas": 1}
    assert result["csr"] == csr and result["kv"]["version"] == 2 and result["pending"] is True
    assert result["certificate"] == cert_pem(world.cert) and result["issuer_id"] == "int-iss"
    assert result["rotated"] is False


def test_await_with_an_installed_certificate_keeps_showing_it():
    world = World()
    pending_key = make_key(fresh=True)
    stored_csr = csr_for(pending_key)
    fake, _signed, _fresh = resume_vault(world, pending_key, stored_csr)
    result = IntermediateCA(IntermediateRequest(params(signing="external")), fake, False, now=NOW).run()
    assert result["action"] == "await" and result["certificate"] == cert_pem(world.cert)
    assert result["issuer_id"] == "int-iss" and result["kv"]["version"] == 2 and result["csr"] == stored_csr
    assert result["rotated"] is False and result["changed"] is False


def complete_setup(world, pending_key):
    signed = make_cert("CN=" + CN, key=pending_key, issuer=world.root_cert, issuer_key=world.root_key)
    fake, _signed, _fresh = resume_vault(world, pending_key, csr_for(pending_key))
    fake.responses[("POST", "istioca/intermediate/set-signed")] = {
        "data": {"imported_issuers": ["i-new"], "mapping": {"i-new": "k-pending"}}, "warnings": ["from set-signed"]}
    return fake, signed


def test_external_certificate_for_the_stored_key_is_installed():
    world = World()
    pending_key = make_key(fresh=True)
    fake, signed = complete_setup(world, pending_key)
    request = IntermediateRequest(params(signing="external", certificate=cert_pem(signed),
                                         ca_chain=cert_pem(world.root_cert)))
    ca = IntermediateCA(request, fake, False, now=NOW)
    result = ca.run()
    assert fake.paths("POST") == ["istioca/intermediate/set-signed", "istioca/config/issuers"]
    assert posts(fake) == {"istioca/intermediate/set-signed": {"certificate": cert_pem(signed) +
                                                               cert_pem(world.root_cert)},
                           "istioca/config/issuers": {"default": "i-new"}}
    assert result["action"] == "complete" and result["changed"] is True and result["issuer_id"] == "i-new"
    assert result["reasons"] == ["a signed certificate was given for the key stored at 'secret/istioca' version 2 "
                                 "(field 'ca-key.pem')"]
    assert result["key_id"] == "k-pending" and result["kv"]["version"] == 2 and result["pending"] is False
    assert result["rotated"] is True and result["previous_serial"] == cert_info(world.cert)["serial"]
    assert result["ca_chain"] == [cert_pem(signed), cert_pem(world.root_cert)]
    assert "from set-signed" in ca.warnings


def test_check_mode_complete_predicts_the_given_certificate():
    world = World()
    pending_key = make_key(fresh=True)
    fake, signed = complete_setup(world, pending_key)
    request = IntermediateRequest(params(signing="external", certificate=cert_pem(signed),
                                         ca_chain=cert_pem(world.root_cert)))
    result = IntermediateCA(request, fake, True, now=NOW).run()
    assert fake.paths("POST") == [] and result["action"] == "complete" and result["changed"] is True
    assert result["diff"]["after"] == dict(diff_view(signed), kv_version=2, **MOUNT_VIEWS)
    assert result["rotated"] is True


def test_external_chain_is_imported_from_the_given_chain():
    world = World()
    fake = vault(world, world.stored())
    lonely = issuer_body(world.cert, issuer_id="int-iss", key_id="int-key")
    fixed = issuer_body(world.cert, issuer_id="int-iss", key_id="int-key", chain=[world.root_cert])
    fake.responses[("GET", "istioca/issuer/int-iss")] = [lonely, fixed]
    fake.responses[("POST", "istioca/issuers/import/cert")] = {"data": {"imported_issuers": ["root-copy"]}}
    request = IntermediateRequest(params(signing="external", certificate=cert_pem(world.cert),
                                         ca_chain=cert_pem(world.root_cert)))
    result = IntermediateCA(request, fake, False, now=NOW).run()
    assert result["action"] == "chain" and result["changed"] is True
    assert posts(fake) == {"istioca/issuers/import/cert": {"pem_bundle": cert_pem(world.root_cert)}}
    assert result["ca_chain"] == [cert_pem(world.cert), cert_pem(world.root_cert)]
    assert result["kv"]["version"] == 1


# ---------------------------------------------------------------------------------------------------------
# the less common steps: sign's answer, resume adopting an issuer, a race lost under external signing
# ---------------------------------------------------------------------------------------------------------

def test_sign_sends_the_sign_parameters_and_reads_the_chain_vault_returns():
    world = World()
    new_key = make_key(fresh=True)
    signed = make_cert("CN=" + CN, key=new_key, issuer=world.root_cert, issuer_key=world.root_key)
    fake = FakeClient({("POST", "pki/root/sign-intermediate"): {"data": {
        "certificate": cert_pem(signed), "ca_chain": [cert_pem(signed), cert_pem(world.root_cert)]},
        "warnings": ["capped"]}})
    ca = backend(client=fake, organization=["Tetrate"], max_path_length=1)
    cert, chain = ca.sign("CSR", {"not_after": "2030-01-01T00:00:00Z"})
    assert cert == signed and chain == [cert_pem(world.root_cert)]
    assert posts(fake)["pki/root/sign-intermediate"] == {
        "common_name": CN, "organization": ["Tetrate"], "csr": "CSR", "format": "pem", "max_path_length": 1,
        "use_csr_values": False, "not_after": "2030-01-01T00:00:00Z"}
    assert ca.warnings == ["capped"]
    # no ca_chain: the issuing CA is the chain
    fake.responses[("POST", "pki/root/sign-intermediate")] = {"data": {
        "certificate": cert_pem(signed), "issuing_ca": cert_pem(world.root_cert).strip()}}
    assert ca.sign("CSR", {"ttl": "1s"})[1] == [cert_pem(world.root_cert)]
    fake.responses[("POST", "pki/root/sign-intermediate")] = {"data": {"certificate": cert_pem(signed)}}
    assert ca.sign("CSR", {"ttl": "1s"})[1] == []


def test_generate_key_without_a_csr_or_key_fails_naming_the_path():
    fake = FakeClient({("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": "K"}}})
    with pytest.raises(MeshPkiError, match="'istioca/intermediate/generate/exported' returned no private_key"):
        backend(client=fake).generate_key()
    fake.responses[("POST", "istioca/intermediate/generate/exported")] = {"data": {"csr": "C"}}
    with pytest.raises(MeshPkiError, match="returned no private_key or csr"):
        backend(client=fake).generate_key()
    fake.responses[("POST", "istioca/intermediate/generate/exported")] = {"data": {"csr": "C", "private_key": "K"}}
    protected = []
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, protect=protected.append, now=NOW)
    assert ca.generate_key() == ("", "K", "C") and protected == ["K"]


def test_store_key_keeps_other_fields_and_writes_with_check_and_set():
    world = World()
    fake = FakeClient({("POST", "secret/data/istioca"): {"data": {"version": 5}}})
    stored = world.stored(version=4, note="kept")
    new = backend(client=fake).store_key(stored, "k5", key_pem(world.key), "CSR5")
    assert posts(fake)["secret/data/istioca"] == {"options": {"cas": 4}, "data": {
        "ca-key.pem": key_pem(world.key), "key_id": "k5", "csr": "CSR5", "note": "kept"}}
    assert new.secret.version == 5 and new.key_id == "k5" and new.csr == "CSR5" and new.field == "ca-key.pem"
    assert new.matches(world.cert) and new.where == "'secret/istioca' version 5 (field 'ca-key.pem')"


def test_resume_skips_issuers_of_another_key_the_current_one_and_unfit_ones():
    world = World()
    pending_key = make_key(fresh=True)
    fake, signed, _csr = resume_vault(world, pending_key, csr_for(pending_key))
    other_subject = make_cert("CN=other", key=pending_key, issuer=world.root_cert, issuer_key=world.root_key)
    old_root_key = make_key("ec", 256)
    old_root = make_cert("CN=tetrate.io", key=old_root_key)
    by_old_root = make_cert("CN=" + CN, key=pending_key, issuer=old_root, issuer_key=old_root_key)
    fake.responses[("LIST", "istioca/issuers")] = {"data": {"key_info": {
        "a-other-key": {"key_id": "int-key"}, "b-bad": {"key_id": "k-pending"}, "c-lonely": {"key_id": "k-pending"},
        "int-iss": {"key_id": "k-pending"}, "y-old-root": {"key_id": "k-pending"}, "z-good": {"key_id": "k-pending"}}}}
    fake.responses[("GET", "istioca/issuer/b-bad")] = issuer_body(other_subject, "b-bad", "k-pending",
                                                                  chain=[world.root_cert])
    fake.responses[("GET", "istioca/issuer/c-lonely")] = issuer_body(signed, "c-lonely", "k-pending")
    fake.responses[("GET", "istioca/issuer/y-old-root")] = issuer_body(by_old_root, "y-old-root", "k-pending",
                                                                       chain=[old_root])
    fake.responses[("GET", "istioca/issuer/z-good")] = issuer_body(signed, "z-good", "k-pending",
                                                                   chain=[world.root_cert])
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["issuer_id"] == "z-good" and posts(fake) == {"istioca/config/issuers": {"default": "z-good"}}
    read = [path for method, path, _body in fake.log if method == "GET" and path.startswith("istioca/issuer/")]
    assert "istioca/issuer/a-other-key" not in read and "istioca/issuer/int-iss" not in read  # current: issuer/default
    assert "istioca/issuer/y-old-root" in read
    assert result["kv"]["version"] == 2 and result["key_id"] == "k-pending"
    assert result["ca_chain"] == [cert_pem(signed), cert_pem(world.root_cert)]


def test_resume_with_no_fitting_issuer_signs_and_installs_with_the_stored_key_id():
    world = World()
    pending_key = make_key(fresh=True)
    stored_csr = csr_for(pending_key)
    fake, signed, _csr = resume_vault(world, pending_key, stored_csr)
    fake.responses[("LIST", "istioca/issuers")] = None
    result = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert result["issuer_id"] == "i-new" and result["key_id"] == "k-pending"
    assert posts(fake)["pki/root/sign-intermediate"]["csr"] == stored_csr
    assert result["certificate"] == cert_pem(signed) and result["kv"]["version"] == 2
    assert result["ca_chain"] == [cert_pem(signed), cert_pem(world.root_cert)]


def test_key_in_mount_reuses_the_stored_key_id_or_imports_the_key():
    world = World()
    fake = FakeClient({("LIST", "istioca/keys"): {"data": {"keys": ["int-key"]}}})
    ca = backend(client=fake)
    assert ca.key_in_mount(world.stored()) == "int-key" and fake.paths("POST") == []
    fake.responses[("LIST", "istioca/keys")] = None
    fake.responses[("POST", "istioca/keys/import")] = {"data": {"key_id": "k-back"}}
    no_id = world.stored(key_id="")
    assert ca.key_in_mount(no_id) == "k-back"
    assert posts(fake)["istioca/keys/import"] == {"pem_bundle": key_pem(world.key)}
    assert ca.warnings == ["The key stored at 'secret/istioca' version 1 (field 'ca-key.pem') was not in 'istioca'; "
                           "it was imported from KV as key k-back."]


def test_csr_for_asks_vault_for_a_csr_of_the_stored_key_when_none_is_stored():
    world = World()
    fake = FakeClient({("POST", "istioca/intermediate/generate/existing"): {"data": {"csr": "NEW"}}})
    ca = backend(client=fake, country=["NL"])
    assert ca.csr_for(world.stored(), "k1") == "NEW"
    assert posts(fake)["istioca/intermediate/generate/existing"] == {"common_name": CN, "country": ["NL"],
                                                                     "key_ref": "k1"}
    stored_csr = csr_for(world.key)
    assert ca.csr_for(world.stored(csr=stored_csr), "k1") == stored_csr


def test_lost_race_under_external_signing_returns_the_winners_csr(monkeypatch):
    world = World()
    winner_key = make_key(fresh=True)
    winner_csr = csr_for(winner_key)
    winner = world.stored(key=winner_key, version=2, key_id="k-win", csr=winner_csr)
    fake = vault(world, world.stored())
    fake.responses.update({
        ("GET", "secret/data/istioca"): [{"data": {"data": world.stored().secret.data, "metadata": {"version": 1}}},
                                         {"data": {"data": winner.secret.data, "metadata": {"version": 2}}}],
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(make_key()),
                                                                      "csr": "C", "key_id": "k-mine"}},
        ("POST", "secret/data/istioca"): MeshPkiError("check-and-set parameter did not match", status=400),
        ("DELETE", "istioca/key/k-mine"): None,
    })
    monkeypatch.setattr(intermediate.time, "sleep", lambda seconds: None)
    ca = IntermediateCA(IntermediateRequest(params(signing="external", force=True)), fake, False, now=NOW)
    result = ca.run()
    assert result["changed"] is False and result["csr"] == winner_csr and result["kv"]["version"] == 2
    assert result["certificate"] == cert_pem(world.cert)
    assert fake.paths("DELETE") == ["istioca/key/k-mine"]
    assert any("sign the CSR of the stored one" in warning for warning in ca.warnings)


def test_outcome_from_issuer_drops_the_certificate_from_its_chain():
    world = World()
    outcome = Outcome.from_issuer(world.current, 7, changed=False)
    assert outcome.cert == world.cert and outcome.chain_pems == [cert_pem(world.root_cert)]
    assert outcome.issuer_id == "int-iss" and outcome.key_id == "int-key" and outcome.kv_version == 7
    assert outcome.changed is False and outcome.csr is None
    assert Outcome().changed is True and Outcome().chain_pems == [] and Outcome().kv_version == 0


def test_stored_key_fields_and_problems():
    world = World()
    assert world.stored(csr="C").csr == "C" and world.stored().key_id == "int-key"
    blank = intermediate.StoredKey(intermediate.KvSecret("secret", "istioca", {"ca-key.pem": "  "}, 1, 1),
                                   "ca-key.pem")
    assert blank.pem is None and blank.key is None and blank.problem is None and blank.key_id == ""
    assert blank.csr == "" and not blank.matches(world.cert)
    assert not world.stored().matches(None)


# ---------------------------------------------------------------------------------------------------------
# the reasons, word for word where they are values (the result's reasons), and their boundaries
# ---------------------------------------------------------------------------------------------------------

def test_reasons_are_exact():
    world = World()
    where = "'secret/istioca' version 1 (field 'ca-key.pem')"
    assert backend(force=True).problems(world.current, world.stored(), world.root) == ["force: true"]
    assert backend().problems(world.current, world.stored(key=make_key("ec", 256)), world.root) == [
        "the key at %s is not the key of this certificate" % where]
    empty = intermediate.StoredKey(intermediate.KvSecret("secret", "istioca"), "ca-key.pem")
    assert backend().problems(world.current, empty, world.root) == [
        "there is no usable key at 'secret/istioca' (field 'ca-key.pem')"]
    garbage = intermediate.StoredKey(intermediate.KvSecret("secret", "istioca", {"ca-key.pem": "garbage"}, 2, 2),
                                     "ca-key.pem")
    reasons = backend().problems(world.current, garbage, world.root)
    assert len(reasons) == 1
    assert reasons[0].startswith("there is no usable key at 'secret/istioca' version 2 (field 'ca-key.pem'): its "
                                 "value is not a usable private key (")


def test_a_leaf_certificate_is_not_a_ca():
    world = World()
    leaf = make_cert("CN=" + CN, key=world.key, issuer=world.root_cert, issuer_key=world.root_key, ca=False)
    current = Issuer("istioca", "int-iss", cert_pem(leaf), "int-key", [cert_pem(leaf), cert_pem(world.root_cert)])
    assert backend().problems(current, world.stored(), world.root) == ["it is not a CA certificate"]


def test_without_a_root_the_signer_is_the_chain_vault_holds():
    world = World()
    stranger = make_cert("CN=tetrate.io", key=make_key("ec", 256))
    current = Issuer("istioca", "int-iss", cert_pem(world.cert), "int-key",
                     [cert_pem(world.cert), cert_pem(stranger)])
    reasons = backend(signing="external").problems(current, world.stored(), None)
    assert len(reasons) == 1
    assert reasons[0].startswith("it is not signed by the current root CA (serial %s): "
                                 % cert_info(stranger)["serial"])
    assert backend(signing="external").problems(world.current, world.stored(), None) == []


def test_expiry_and_renew_before_boundaries():
    world = World()
    end = world.cert.not_valid_after_utc
    expired = backend(now=end).problems(world.current, world.stored(), world.root)
    assert any(r.startswith("it expired on") for r in expired)
    assert not any("expired" in r for r in backend(now=end - datetime.timedelta(seconds=1)).problems(
        world.current, world.stored(), world.root))
    due = backend(now=end - datetime.timedelta(hours=100), renew_before="100h")
    assert [r for r in due.problems(world.current, world.stored(), world.root) if "renew_before" in r] == [
        "it expires on %s, within renew_before (100h (4.2 days))" % end.strftime("%Y-%m-%dT%H:%M:%SZ")]
    not_due = backend(now=end - datetime.timedelta(hours=100, seconds=1), renew_before="100h")
    assert not_due.problems(world.current, world.stored(), world.root) == []


def given_backend(cert, chain, now=None, **overrides):
    return backend(signing="external", certificate=cert_pem(cert), ca_chain=cert_pem(chain), now=now, **overrides)


def test_check_given_names_each_problem():
    world = World()
    leaf = make_cert("CN=" + CN, key=world.key, issuer=world.root_cert, issuer_key=world.root_key, ca=False)
    with pytest.raises(MeshPkiError) as err:
        given_backend(leaf, world.root_cert).check_given()
    assert "it is not a CA certificate (basicConstraints CA:TRUE missing)" in str(err.value)
    end = world.cert.not_valid_after_utc
    iso_end = end.strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(MeshPkiError) as err:
        given_backend(world.cert, world.root_cert, now=end).check_given()
    assert "it expired on %s" % iso_end in str(err.value)
    given_backend(world.cert, world.root_cert, now=end - datetime.timedelta(seconds=1)).check_given()
    with pytest.raises(MeshPkiError) as err:
        given_backend(world.cert, world.root_cert, now=end - datetime.timedelta(hours=100),
                      renew_before="100h").check_given()
    assert "it expires on %s, within renew_before (100h (4.2 days)): the next run would rotate it" % iso_end \
        in str(err.value)
    given_backend(world.cert, world.root_cert, now=end - datetime.timedelta(hours=100, seconds=1),
                  renew_before="100h").check_given()


def test_the_given_certificate_repeated_in_its_chain_is_dropped():
    world = World()
    request = IntermediateRequest(params(signing="external", certificate=cert_pem(world.cert),
                                         ca_chain=cert_pem(world.cert) + cert_pem(world.root_cert)))
    assert request.given_cert == world.cert and request.given_chain == [world.root_cert]


@pytest.mark.parametrize("overrides, named", [
    ({"mount": "/"}, "mount must not be empty"),
    ({"root_mount": ""}, "root_mount must not be empty"),
    ({"kv_mount": "//"}, "kv_mount must not be empty"),
    ({"ttl": "soon"}, "ttl"),
    ({"max_lease_ttl": "soon"}, "max_lease_ttl"),
    ({"renew_before": "soon"}, "renew_before"),
    ({"max_path_length": -2}, "max_path_length must be -1"),
])
def test_each_invalid_option_is_named(overrides, named):
    with pytest.raises(MeshPkiError) as err:
        IntermediateRequest(params(**overrides))
    message = str(err.value)
    assert message.startswith(named) or ("'%s'" % named) in message or ("%s " % named) in message, message
    assert "None" not in message


def test_request_defaults():
    request = IntermediateRequest(params(mount="/istioca/", renew_before=None, max_path_length=-1))
    assert request.mount == "istioca" and request.renew_before is None and request.max_path_length == -1
    assert request.given_cert is None and request.given_chain == []
    assert request.kv_display == "secret/istioca"
    assert IntermediateRequest(params(renew_before="")).renew_before is None  # an empty option is no option


# ---------------------------------------------------------------------------------------------------------
# fitting the ttl: the boundaries
# ---------------------------------------------------------------------------------------------------------

def test_fit_ttl_boundaries():
    world = World(root_days=3650)
    world.root.info = {"type": "pki", "config": {"max_lease_ttl": 100 * HOUR}}
    assert backend(ttl="100h").fit_ttl(world.root) == ({"ttl": "360000s"}, 360000)
    root_end = world.root_cert.not_valid_after_utc
    at_slack = backend(ttl="1h", now=root_end - datetime.timedelta(seconds=60))
    with pytest.raises(MeshPkiError, match="it cannot sign an intermediate any more"):
        at_slack.fit_ttl(world.root)
    one_second_left = backend(ttl="1h", now=root_end - datetime.timedelta(seconds=61))
    with pytest.raises(MeshPkiError, match="does not fit under the root"):
        one_second_left.fit_ttl(world.root)


def test_fit_ttl_names_only_the_limits_that_apply():
    root_key = make_key("ec", 256)
    root_cert = make_cert("CN=tetrate.io", key=root_key, start=NOW - datetime.timedelta(seconds=10), days=10)
    root = Root("pki", {"type": "pki", "config": {"max_lease_ttl": 240 * HOUR}},
                Issuer("pki", "root-iss", cert_pem(root_cert), "root-key", [cert_pem(root_cert)]))
    with pytest.raises(MeshPkiError) as err:
        backend(ttl="240h").fit_ttl(root)
    message = str(err.value)
    assert "signs for at most" not in message  # 240h is what the mount allows; the root's end is the limit
    assert "in 240h (10.0 days)" in message and "Use a ttl of at most 239h58m" in message


def test_notes_with_cap_and_an_untuned_root_mount_expect_the_roots_end():
    capped = World(root_days=10, int_hours=240)
    ca = backend(ttl="43800h", ttl_exceeds_root="cap")
    capped.root.info = {"type": "pki"}
    assert ca.notes(capped.current, capped.root) == []
    capped.root.info = None
    assert ca.notes(capped.current, capped.root) == []


def test_check_ttl_limit_reads_the_system_default_when_the_root_mount_is_not_tuned():
    world = World()
    world.root.info = {"type": "pki"}
    fake = FakeClient({("GET", "sys/mounts/pki/tune"): {"data": {"max_lease_ttl": 100 * HOUR}}})
    with pytest.raises(MeshPkiError, match="signs for at most 100h"):
        backend(client=fake, ttl="101h").check_ttl_limit(world.root)
    assert fake.paths() == ["sys/mounts/pki/tune"]
    fake = FakeClient({("GET", "sys/mounts/pki/tune"): {"data": {"max_lease_ttl": 100 * HOUR}}})
    with pytest.raises(MeshPkiError, match="signs for at most 100h"):
        backend(client=fake, ttl="101h").fit_ttl(world.root)
    assert fake.paths() == ["sys/mounts/pki/tune"]


# ---------------------------------------------------------------------------------------------------------
# whole runs: what is decided before applying
# ---------------------------------------------------------------------------------------------------------

def new_root_vault(world):
    """The root mount now holds another CA than the one that signed the intermediate (whose Vault chain still
    ends at the old one)."""
    new_root_key = make_key("ec", 256)
    new_root = make_cert("CN=tetrate.io", key=new_root_key, days=365)
    fake = vault(world, world.stored())
    fake.responses[("GET", "pki/issuer/default")] = issuer_body(new_root, "root2", "root-key2")
    return fake, new_root


def test_a_new_root_ca_means_a_new_intermediate_even_with_new_values():
    world = World()
    fake, new_root = new_root_vault(world)
    ca = IntermediateCA(IntermediateRequest(params(common_name="other")), fake, True, now=NOW)
    result = ca.run()
    assert result["action"] == "issue" and result["changed"] is True and fake.paths("POST") == []
    assert any(reason.startswith("it is not signed by the current root CA of 'pki' (serial %s)"
                                 % cert_info(new_root)["serial"]) for reason in result["reasons"])
    assert any("is replaced because it is not signed by the current root CA" in warning for warning in ca.warnings)


def test_check_mode_of_a_healthy_intermediate_predicts_no_change():
    world = World()
    fake = vault(world, world.stored(version=3))
    result = IntermediateCA(IntermediateRequest(params()), fake, True, now=NOW).run()
    assert result["changed"] is False and result["action"] == "none"
    assert result["diff"]["after"] == result["diff"]["before"] == dict(diff_view(world.cert), kv_version=3,
                                                                       **MOUNT_VIEWS)
    assert result["rotated"] is False and result["previous_serial"] is None


def test_check_mode_external_issue_keeps_showing_the_installed_certificate():
    world = World()
    fake = vault(world, world.stored())
    result = IntermediateCA(IntermediateRequest(params(signing="external", force=True)), fake, True,
                            now=NOW).run()
    assert result["action"] == "issue" and result["changed"] is True and result["pending"] is True
    assert result["diff"]["after"] == dict(diff_view(world.cert), kv_version=2, **MOUNT_VIEWS)
    assert result["rotated"] is False and result["csr"] is None


def test_check_mode_await_is_not_a_change():
    world = World()
    pending_key = make_key(fresh=True)
    fake, _signed, _fresh = resume_vault(world, pending_key, csr_for(pending_key))
    result = IntermediateCA(IntermediateRequest(params(signing="external")), fake, True, now=NOW).run()
    assert result["action"] == "await" and result["changed"] is False and result["pending"] is True
    assert result["rotated"] is False


def test_renew_before_equal_to_the_longest_lifetime_the_root_allows_is_refused():
    world = World(root_days=3650)
    fake = vault(world, world.stored())
    fake.responses[("GET", "sys/mounts")] = mounts(pki={"type": "pki", "config": {"max_lease_ttl": 300 * HOUR}},
                                                   istioca={"type": "pki", "config": {"max_lease_ttl": 4380 * HOUR}},
                                                   secret={"type": "kv", "options": {"version": "2"}, "config": {}})
    with pytest.raises(MeshPkiError) as err:
        IntermediateCA(IntermediateRequest(params(ttl="4380h", ttl_exceeds_root="cap", renew_before="300h",
                                                  max_lease_ttl="4380h", force=True)), fake, False, now=NOW).run()
    assert "could live only 300h (12.5 days)" in str(err.value) and fake.paths("POST") == []


def test_first_run_creates_both_mounts_with_their_descriptions():
    world = World()
    fake = vault(world, current=False)
    fake.responses[("GET", "sys/mounts")] = [
        mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}}),
        mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}}),
        mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}},
               istioca={"type": "pki", "config": {"max_lease_ttl": 4380 * HOUR}},
               secret={"type": "kv", "options": {"version": "2"}, "config": {}})]
    fake.responses[("POST", "sys/mounts/istioca")] = None
    fake.responses[("POST", "sys/mounts/secret")] = None
    fake.responses[("POST", "istioca/intermediate/generate/exported")] = MeshPkiError("stop here")
    with pytest.raises(MeshPkiError, match="stop here"):
        IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW).run()
    assert posts(fake)["sys/mounts/istioca"] == {"type": "pki", "description": intermediate.MOUNT_DESCRIPTION,
                                                 "config": {"max_lease_ttl": "%ds" % (4380 * HOUR)}}
    assert posts(fake)["sys/mounts/secret"] == {"type": "kv", "description": intermediate.KV_DESCRIPTION,
                                                "options": {"version": "2"}}


def test_lost_race_under_force_converges_on_the_winners_new_certificate(monkeypatch):
    world = World()
    winner_key = make_key(fresh=True)
    winner_cert = make_cert("CN=" + CN, key=winner_key, issuer=world.root_cert, issuer_key=world.root_key)
    winner = world.stored(key=winner_key, version=2, key_id="k-win")
    fake = vault(world, world.stored())
    fake.responses.update({
        ("GET", "secret/data/istioca"): [{"data": {"data": world.stored().secret.data, "metadata": {"version": 1}}},
                                         {"data": {"data": winner.secret.data, "metadata": {"version": 2}}}],
        ("GET", "istioca/config/issuers"): [{"data": {"default": "int-iss"}}, {"data": {"default": "i-win"}}],
        ("GET", "istioca/issuer/i-win"): issuer_body(winner_cert, "i-win", "k-win", chain=[world.root_cert]),
        ("POST", "istioca/intermediate/generate/exported"): {"data": {"private_key": key_pem(make_key()),
                                                                      "csr": "C", "key_id": "k-mine"}},
        ("POST", "secret/data/istioca"): MeshPkiError("check-and-set parameter did not match", status=400),
        ("DELETE", "istioca/key/k-mine"): None,
    })
    clock = [0.0]
    monkeypatch.setattr(intermediate.time, "time", lambda: clock[0])
    monkeypatch.setattr(intermediate.time, "sleep", lambda seconds: clock.__setitem__(0, clock[0] + seconds))
    result = IntermediateCA(IntermediateRequest(params(force=True)), fake, False, now=NOW).run()
    assert result["changed"] is False and result["issuer_id"] == "i-win" and result["kv"]["version"] == 2
    assert result["certificate"] == cert_pem(winner_cert) and result["rotated"] is True


# ---------------------------------------------------------------------------------------------------------
# errors from Vault name the step, the path and the capability (the strict FakeVault words them like Vault)
# ---------------------------------------------------------------------------------------------------------

def strict(answers):
    from harness.fake_vault import FakeVault
    return FakeVault(answers, strict_writes=True)


def assert_names(err, path, capability):
    message = str(err.value)
    assert "'%s'" % path in message and "needs '%s'" % capability in message and "None" not in message, message


def test_write_errors_name_the_path_and_capability():
    world = World()
    pending_key = make_key(fresh=True)
    cases = [
        ("istioca/intermediate/generate/exported", lambda ca: ca.generate_key()),
        ("pki/root/sign-intermediate", lambda ca: ca.sign("CSR", {"ttl": "1s"})),
        ("istioca/intermediate/set-signed", lambda ca: ca.install(world.cert, [], "k")),
        ("istioca/intermediate/generate/existing", lambda ca: ca.csr_for(world.stored(), "k")),
        ("istioca/keys/import", lambda ca: ca.key_in_mount(world.stored(key=pending_key))),
        ("istioca/issuers/import/cert", lambda ca: ca.apply("chain", world.current, world.stored(), world.root,
                                                            None)),
    ]
    for path, step in cases:
        ca = IntermediateCA(IntermediateRequest(params()), strict({("POST", path): 403}), False, now=NOW)
        with pytest.raises(MeshPkiError) as err:
            step(ca)
        assert_names(err, path, "update")


def test_list_and_read_errors_name_the_path_and_capability():
    world = World()
    ca = IntermediateCA(IntermediateRequest(params()), strict({("LIST", "istioca/keys"): 403}), False, now=NOW)
    with pytest.raises(MeshPkiError) as err:
        ca.key_in_mount(world.stored())
    assert_names(err, "istioca/keys", "list")
    ca = IntermediateCA(IntermediateRequest(params()), strict({("LIST", "istioca/issuers"): 403}), False, now=NOW)
    with pytest.raises(MeshPkiError) as err:
        ca.existing_issuer_for("k", world.stored(), world.root, None)
    assert_names(err, "istioca/issuers", "list")
    ca = IntermediateCA(IntermediateRequest(params()), strict({
        ("GET", "sys/mounts"): {"data": {"pki/": {"type": "pki", "config": {}}}},
        ("GET", "pki/issuer/default"): 403}), False, now=NOW)
    with pytest.raises(MeshPkiError) as err:
        ca.read_root()
    assert_names(err, "pki/issuer/default", "read")


def test_a_key_that_cannot_be_deleted_after_a_lost_race_is_a_warning_naming_it(monkeypatch):
    world = World()
    fake = strict({
        ("DELETE", "istioca/key/k-mine"): 403,
        ("GET", "secret/data/istioca"): {"data": {"data": world.stored().secret.data, "metadata": {"version": 1}}},
        ("GET", "istioca/config/issuers"): {"data": {"default": "int-iss"}},
        ("GET", "istioca/issuer/int-iss"): issuer_body(world.cert, "int-iss", "int-key", chain=[world.root_cert]),
    })
    ca = IntermediateCA(IntermediateRequest(params()), fake, False, now=NOW)
    outcome = ca.lost_race(MeshPkiError("lost"), "k-mine", world.root)
    assert outcome.changed is False and outcome.issuer_id == "int-iss" and outcome.kv_version == 1
    assert ca.warnings[0].startswith("Could not delete the key k-mine")
    assert "'istioca/key/k-mine'" in ca.warnings[0] and "None" not in ca.warnings[0]


def test_fit_ttl_caps_to_the_roots_end_when_that_is_exactly_the_mounts_limit():
    world = World(root_days=3650)
    world.root.info = {"type": "pki", "config": {"max_lease_ttl": 100 * HOUR}}
    root_end = world.root_cert.not_valid_after_utc
    now = root_end - datetime.timedelta(hours=100, seconds=60)
    ca = backend(ttl="200h", ttl_exceeds_root="cap", now=now)
    assert ca.fit_ttl(world.root) == ({"not_after": root_end.strftime("%Y-%m-%dT%H:%M:%SZ")}, 100 * HOUR + 60)
    # a ttl exactly as long as the root still lives is refused for the mount's limit only
    with pytest.raises(MeshPkiError) as err:
        backend(ttl="200h", now=root_end - datetime.timedelta(hours=200, seconds=60)).fit_ttl(world.root)
    assert "signs for at most 100h" in str(err.value) and "the root CA expires on" not in str(err.value)
