"""manage_intermediate (vault_pki_intermediate's task) against the strict FakeVault: the guide's chain of requests
in order with their bodies (key type and size in the generate request, the key in KV before the CSR is signed,
set-signed with the issuing CA, the default issuer set explicitly), the private key masked and never returned, check
mode that writes nothing, and validation before any request."""

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from test_pki import cert_pem, issuer_body, key_pem, make_cert, make_key, mounts, name
from test_pki_intermediate import CN, HOUR
from test_pki_intermediate import params as pki_params

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.intermediate import manage_intermediate
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub


def params(**overrides):
    return pki_params(**dict(dict(ttl="720h"), **overrides))


def csr_pem(key, subject):
    csr = x509.CertificateSigningRequestBuilder().subject_name(name(subject)).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


class Setup(object):
    """A root in 'pki' (its key in Vault), the key Vault will generate for the intermediate, and the certificate
    the root will sign for it."""

    def __init__(self, key_type="rsa", bits=2048, subject=(("CN", CN),)):
        self.root_key = make_key("ec", 256)
        self.root = make_cert("CN=tetrate.io", key=self.root_key, days=365)
        self.key = make_key(key_type, bits)
        self.cert = make_cert(list(subject), key=self.key, issuer=self.root, issuer_key=self.root_key, days=30)
        self.csr = csr_pem(self.key, list(subject))

    def answers(self, **extra):
        answers = {
            ("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}}),
            ("GET", "pki/issuer/default"): issuer_body(self.root, "root-iss", "root-key"),
            ("POST", "sys/mounts/istioca"): None,
            ("POST", "sys/mounts/secret"): None,
            ("POST", "istioca/intermediate/generate/exported"): {"data": {
                "private_key": key_pem(self.key), "csr": self.csr, "key_id": "int-key"}},
            ("POST", "secret/data/istioca"): {"data": {"version": 1}},
            ("POST", "pki/root/sign-intermediate"): {"data": {
                "certificate": cert_pem(self.cert), "issuing_ca": cert_pem(self.root),
                "ca_chain": [cert_pem(self.cert), cert_pem(self.root)]}},
            ("POST", "istioca/intermediate/set-signed"): {"data": {"imported_issuers": ["int-iss"],
                                                                   "mapping": {"int-iss": "int-key"}}},
            ("POST", "istioca/config/issuers"): None,
        }
        answers.update(extra)
        return answers


def test_first_run_sends_the_guides_chain_with_the_requested_key_and_subject():
    setup = Setup("ec", 384, subject=(("CN", CN), ("O", "Tetrate")))
    vault = FakeVault(setup.answers(), strict_writes=True)
    module = ModuleStub(params(key_type="ec", key_bits=384, organization=["Tetrate"], max_path_length=0), vault)
    result = manage_intermediate(module)

    assert vault.writes() == [
        ("POST", "sys/mounts/istioca"), ("POST", "sys/mounts/secret"),
        ("POST", "istioca/intermediate/generate/exported"),
        ("POST", "secret/data/istioca"),  # the key is in KV before the CSR is signed
        ("POST", "pki/root/sign-intermediate"), ("POST", "istioca/intermediate/set-signed"),
        ("POST", "istioca/config/issuers")]
    assert vault.body("POST", "istioca/intermediate/generate/exported") == {
        "common_name": CN, "organization": ["Tetrate"], "key_type": "ec", "key_bits": 384}
    assert vault.body("POST", "sys/mounts/istioca")["config"] == {"max_lease_ttl": "%ds" % (720 * HOUR)}
    assert vault.body("POST", "sys/mounts/secret")["options"] == {"version": "2"}
    stored = vault.body("POST", "secret/data/istioca")
    assert stored == {"options": {"cas": 0}, "data": {"ca-key.pem": key_pem(setup.key), "key_id": "int-key",
                                                      "csr": setup.csr}}
    assert vault.body("POST", "pki/root/sign-intermediate") == {
        "common_name": CN, "organization": ["Tetrate"], "csr": setup.csr, "format": "pem", "max_path_length": 0,
        "use_csr_values": False, "ttl": "%ds" % (720 * HOUR)}
    # set-signed gets the certificate followed by its issuing CA: <mount>/cert/ca_chain is intermediate + root.
    assert vault.body("POST", "istioca/intermediate/set-signed") == {
        "certificate": cert_pem(setup.cert) + cert_pem(setup.root)}
    assert vault.body("POST", "istioca/config/issuers") == {"default": "int-iss"}

    assert result["changed"] is True and result["action"] == "issue" and result["issuer_id"] == "int-iss"
    assert result["kv"] == {"mount": "secret", "path": "istioca", "field": "ca-key.pem", "version": 1}
    assert result["key_type"] == "ec" and result["key_bits"] == 384
    # The key is masked should it reach the output, and it is never part of the result.
    assert key_pem(setup.key) in module.no_log_values and key_pem(setup.key).strip() in module.no_log_values
    assert "PRIVATE KEY" not in repr(result)


def test_default_key_size_is_in_the_generate_request():
    setup = Setup()
    vault = FakeVault(setup.answers())
    manage_intermediate(ModuleStub(params(), vault))
    assert vault.body("POST", "istioca/intermediate/generate/exported") == {
        "common_name": CN, "key_type": "rsa", "key_bits": 2048}


def test_check_mode_reads_and_writes_nothing():
    setup = Setup()
    vault = FakeVault(setup.answers(), strict_writes=True)
    module = ModuleStub(params(), vault, check_mode=True)
    result = manage_intermediate(module)
    assert vault.writes() == []
    assert result["changed"] is True and result["action"] == "issue" and result["certificate"] is None
    assert result["diff"]["after"]["serial"] == "(new)" and result["diff"]["after"]["kv_version"] == 1
    assert module.no_log_values == set()


def test_a_healthy_intermediate_is_kept_with_reads_only():
    setup = Setup()
    answers = setup.answers()
    answers.update({
        ("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {"max_lease_ttl": 8760 * HOUR}},
                                      istioca={"type": "pki", "config": {"max_lease_ttl": 720 * HOUR}},
                                      secret={"type": "kv", "options": {"version": "2"}}),
        ("GET", "istioca/config/issuers"): {"data": {"default": "int-iss"}},
        ("GET", "istioca/issuer/int-iss"): issuer_body(setup.cert, "int-iss", "int-key", chain=[setup.root]),
        ("GET", "secret/data/istioca"): {"data": {"data": {"ca-key.pem": key_pem(setup.key), "key_id": "int-key"},
                                                  "metadata": {"version": 3}}},
    })
    vault = FakeVault(answers, strict_writes=True)
    module = ModuleStub(params(), vault)
    result = manage_intermediate(module)
    assert vault.writes() == []
    assert vault.paths() == ["sys/mounts", "pki/issuer/default", "istioca/issuer/default", "secret/data/istioca"]
    assert result["changed"] is False and result["action"] == "none" and result["kv"]["version"] == 3
    assert key_pem(setup.key) in module.no_log_values  # the stored key read from KV is masked too


def test_vault_warnings_reach_module_warn():
    setup = Setup()
    answers = setup.answers()
    answers[("POST", "pki/root/sign-intermediate")]["warnings"] = ["a warning from Vault"]
    vault = FakeVault(answers)
    module = ModuleStub(params(), vault)
    manage_intermediate(module)
    assert module.warnings == ["a warning from Vault"]


def test_no_root_fails_before_any_write():
    vault = FakeVault({("GET", "sys/mounts"): mounts()}, strict_writes=True)
    with pytest.raises(MeshPkiError) as err:
        manage_intermediate(ModuleStub(params(), vault))
    assert "The root mount 'pki' does not exist" in str(err.value) and vault.writes() == []


@pytest.mark.parametrize("overrides, message", [
    (dict(root_mount="istioca"), "mount and root_mount are both 'istioca'"),
    (dict(key_type="ec", key_bits=2048), "key_bits 2048 is not valid with key_type ec"),
    (dict(kv_field="csr"), "kv_field 'csr' is reserved"),
])
def test_invalid_options_fail_before_any_login_or_request(overrides, message):
    vault = FakeVault()
    module = ModuleStub(params(**overrides), vault)
    with pytest.raises(MeshPkiError) as err:
        manage_intermediate(module)
    assert message in str(err.value) and vault.requests == [] and module.logins == 0
