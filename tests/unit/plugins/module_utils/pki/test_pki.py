"""Unit tests of the shared PKI helpers (_pki), KV v2 check-and-set (_kv2) and the root backend's decisions
(pki/root), with certificates made here and a fake Vault client that records every request."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import certs as pki_certs
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import issuers as pki_issuers
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import request as pki_request
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki import x509 as x509_mod
from ansible_collections.meshpki.vault_ca.plugins.module_utils.pki.root import RootCA, RootRequest
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault import kv2 as _kv2
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault import mounts as _mounts
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import (
    CasConflict,
    KvSecret,
    read_secret,
    write_secret,
)

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC)
_KEYS = {}


# ---------------------------------------------------------------------------------------------------------
# helpers shared with test_pki_intermediate.py
# ---------------------------------------------------------------------------------------------------------

def make_key(key_type="rsa", bits=2048, fresh=False):
    """A private key; RSA keys are cached per size (generating them is slow) unless ``fresh``."""
    if key_type == "ec":
        return ec.generate_private_key({256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()}[bits])
    if fresh or bits not in _KEYS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if fresh:
            return key
        _KEYS[bits] = key
    return _KEYS[bits]


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def name(pairs):
    oids = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
            "C": NameOID.COUNTRY_NAME}
    return x509.Name([x509.NameAttribute(oids[label], value) for label, value in pairs])


def make_cert(subject="CN=int", key=None, issuer=None, issuer_key=None, days=30, start=None, ca=True,
              path_length=None, lifetime=None):
    """A certificate for ``key``; self-signed unless ``issuer``/``issuer_key`` (a cert and its key) are given."""
    key = key or make_key()
    pairs = [tuple(part.split("=", 1)) for part in subject.split(",")] if isinstance(subject, str) else subject
    start = start or NOW - datetime.timedelta(seconds=30)
    end = start + (lifetime or datetime.timedelta(days=days))
    subject_name = name(pairs)
    builder = (x509.CertificateBuilder().subject_name(subject_name)
               .issuer_name(issuer.subject if issuer is not None else subject_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end))
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
                                        critical=True)
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


class FakeClient(object):
    """Answers requests from ``responses`` ({(method, path): body, or an exception to raise, or a list of
    those served in turn}) and records them in ``log``; unknown GET/LIST paths are 404 (None);
    ``<mount>/issuer/default`` from ``config/issuers`` and ``issuer/<id>``, as FakeVault does."""

    def __init__(self, responses=None):
        self.responses = dict(responses or {})
        self.log = []

    def _answer(self, method, path, json=None):
        self.log.append((method, path, json))
        if method == "GET" and path.endswith("/issuer/default") and (method, path) not in self.responses:
            # as Vault: the issuer named by config/issuers (see harness/fake_vault.py)
            mount = path[:-len("/issuer/default")]
            default = ((self._serve("GET", mount + "/config/issuers") or {}).get("data") or {}).get("default")
            if not default:
                raise MeshPkiError("Failed to read the default issuer '%s': no default issuer currently configured"
                                   % path)
            return self._serve("GET", "%s/issuer/%s" % (mount, default))
        return self._serve(method, path)

    def _serve(self, method, path):
        answer = self.responses.get((method, path))
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def request(self, method, path, action, capability, json=None, params=None, missing_ok=False):
        return self._answer(method, path, json)

    def read(self, path, action="read"):
        return self._answer("GET", path)

    def write(self, path, data=None, action="write", capability="update", method="POST"):
        return self._answer(method, path, data)

    def delete(self, path, action="delete"):
        return self._answer("DELETE", path)

    def paths(self, method=None):
        return [path for m, path, _body in self.log if method is None or m == method]


def mounts(**entries):
    """A sys/mounts body: mounts(pki={"type": "pki", "config": {"max_lease_ttl": 3600}})."""
    return {"data": dict(("%s/" % path.replace("__", "-"), entry) for path, entry in entries.items())}


def issuer_body(cert, issuer_id="iss-1", key_id="key-1", chain=()):
    pem = cert_pem(cert)
    return {"data": {"issuer_id": issuer_id, "certificate": pem, "key_id": key_id,
                     "ca_chain": [pem] + [cert_pem(c) for c in chain]}}


# ---------------------------------------------------------------------------------------------------------
# pki: keys, subjects, text
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key_type, bits, expected", [
    ("rsa", None, ("rsa", 2048)), ("rsa", 3072, ("rsa", 3072)), ("rsa", 4096, ("rsa", 4096)),
    ("ec", None, ("ec", 256)), ("ec", 384, ("ec", 384)),
])
def test_key_spec_accepts_what_istio_accepts(key_type, bits, expected):
    assert pki_request.key_spec(key_type, bits) == expected


@pytest.mark.parametrize("key_type, bits, message", [
    ("rsa", 1024, "key_bits 1024 is not valid with key_type rsa: RSA keys for an Istio CA must have 2048, 3072 or"),
    ("rsa", 256, "key_bits 256 is not valid with key_type rsa"),
    ("rsa", 8192, "must have 2048, 3072 or 4096 bits"),
    ("ec", 521, "EC keys for an Istio CA must be P-256 (256) or P-384 (384)"),
    ("ec", 2048, "key_bits 2048 is not valid with key_type ec"),
    ("ed25519", None, "key_type 'ed25519' is not supported: use rsa or ec"),
])
def test_key_spec_rejects(key_type, bits, message):
    with pytest.raises(MeshPkiError) as err:
        pki_request.key_spec(key_type, bits)
    assert message in str(err.value) and "Nothing was changed" in str(err.value)


def test_subject_compares_attributes_not_their_order():
    subject = pki_request.Subject("tetrate.io", organization=["Org B", "Org A"], ou=["Mesh"], country=["US"])
    assert subject.pairs() == sorted([("CN", "tetrate.io"), ("O", "Org A"), ("O", "Org B"), ("OU", "Mesh"),
                                      ("C", "US")])
    assert subject.text == "CN=tetrate.io, O=Org A, O=Org B, OU=Mesh, C=US"
    assert subject.payload() == {"common_name": "tetrate.io", "organization": ["Org B", "Org A"], "ou": ["Mesh"],
                                 "country": ["US"]}
    same = make_cert([("C", "US"), ("O", "Org A"), ("O", "Org B"), ("OU", "Mesh"), ("CN", "tetrate.io")])
    assert subject.difference(same) is None
    other = make_cert([("CN", "tetrate.io"), ("O", "Org A")])
    assert subject.difference(other) == ("subject is 'CN=tetrate.io, O=Org A', requested "
                                         "'CN=tetrate.io, O=Org A, O=Org B, OU=Mesh, C=US'")


def test_subject_needs_a_common_name_and_ignores_empty_values():
    with pytest.raises(MeshPkiError, match="common_name must not be empty"):
        pki_request.Subject.from_params({"common_name": "  "})
    subject = pki_request.Subject.from_params({"common_name": " x ", "organization": ["", " "], "ou": None})
    assert subject.pairs() == [("CN", "x")] and subject.payload() == {"common_name": "x"}


def test_subject_from_params_keeps_every_attribute():
    """Issue #16's surviving mutant: from_params could drop O/OU/L/ST/C and only the common name reached Vault."""
    params = {"common_name": "tetrate.io Intermediate", "organization": ["Tetrate"], "ou": ["Mesh", "CA"],
              "locality": ["Sunnyvale"], "province": ["California"], "country": ["US"]}
    subject = pki_request.Subject.from_params(params)
    assert subject.payload() == params
    assert subject.text == ("CN=tetrate.io Intermediate, O=Tetrate, OU=CA, OU=Mesh, L=Sunnyvale, ST=California, "
                            "C=US")


@pytest.mark.parametrize("option", ["organization", "ou", "locality", "province", "country"])
def test_subject_from_params_checks_every_list(option):
    with pytest.raises(MeshPkiError, match=r"%s\[1\]" % option):
        pki_request.Subject.from_params({"common_name": "x", option: ["fine", "bad\nline"]})


@pytest.mark.parametrize("secs, text", [
    (157680000, "43800h (5.0 years)"), (31535998, "8760h (365.0 days)"), (31535940, "8759h59m (365.0 days)"),
    (7200, "2h"), (90000, "25h (1.0 days)"), (90, "90s"),
])
def test_human(secs, text):
    assert pki_request.human(secs) == text


def test_seconds_error_says_nothing_was_changed():
    with pytest.raises(MeshPkiError, match="ttl 'soon' is not a duration.*Nothing was changed"):
        pki_request.seconds("soon", "ttl")


def test_lifetime_note_tolerates_backdating_not_a_real_difference():
    cert = make_cert(lifetime=datetime.timedelta(hours=8760, seconds=30))
    assert pki_certs.lifetime_note(cert, 8760 * 3600) is None
    note = pki_certs.lifetime_note(cert, 43800 * 3600)
    assert note.startswith("ttl: the certificate lives 8760h") and "ttl asks for 43800h" in note


def test_split_pem_bundle_and_csr_matches():
    key = make_key("ec", 256)
    cert = make_cert(key=key)
    certs, keys = pki_certs.split_pem_bundle(cert_pem(cert) + "junk\n" + key_pem(key))
    assert len(certs) == 1 and len(keys) == 1 and "EC PRIVATE KEY" in keys[0]
    csr = (x509.CertificateSigningRequestBuilder().subject_name(name([("CN", "x")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
    assert pki_certs.csr_matches(csr, key) and not pki_certs.csr_matches(csr, make_key("ec", 256))
    assert not pki_certs.csr_matches("", key) and not pki_certs.csr_matches("not a csr", key)


def test_vault_warnings_drop_the_aia_reminder_only():
    response = {"warnings": ["This mount hasn't configured any authority information access (AIA) fields; ...",
                             'TTL "43800h0m0s" is longer than permitted maxTTL "8760h0m0s", so maxTTL is being used']}
    assert pki_issuers.vault_warnings(response) == [response["warnings"][1]]
    assert pki_issuers.vault_warnings(None) == []


def test_path_length_and_is_ca():
    assert pki_certs.path_length(make_cert(path_length=0)) == 0 and pki_certs.path_length(make_cert()) == -1
    assert pki_certs.is_ca(make_cert())
    assert not pki_certs.is_ca(make_cert(ca=False)) and not pki_certs.is_ca(make_cert(ca=None))


# ---------------------------------------------------------------------------------------------------------
# pki: Vault helpers
# ---------------------------------------------------------------------------------------------------------

def test_mount_table_is_read_once_per_run():
    client = pki_issuers.MountTableCache(FakeClient({("GET", "sys/mounts"): mounts(pki={"type": "pki"})}))
    for _attempt in range(3):
        assert "pki/" in client.read("sys/mounts")["data"]
    client.read("pki/config/issuers")
    assert client.paths() == ["sys/mounts", "pki/config/issuers"]


def test_ensure_mount_survives_a_concurrent_enable():
    fake = FakeClient({
        ("GET", "sys/mounts"): [mounts(), mounts(istioca={"type": "pki", "config": {"max_lease_ttl": 3600}})],
        ("POST", "sys/mounts/istioca"): MeshPkiError("Failed to enable pki secrets engine 'sys/mounts/istioca': "
                                                     "Vault rejected the request (400): path is already in use at "
                                                     "istioca/", status=400),
    })
    client = pki_issuers.MountTableCache(fake)
    result = _mounts.ensure_secrets_engine(client, "istioca", "pki", False, max_lease_ttl="1h")
    assert not result.changed  # the other run enabled it as wanted: nothing for this one to do
    assert fake.paths() == ["sys/mounts", "sys/mounts/istioca", "sys/mounts"]


def test_ensure_mount_reraises_other_errors():
    fake = FakeClient({("GET", "sys/mounts"): mounts(),
                       ("POST", "sys/mounts/x"): MeshPkiError("permission denied", status=403)})
    with pytest.raises(MeshPkiError, match="permission denied"):
        _mounts.ensure_secrets_engine(pki_issuers.MountTableCache(fake), "x", "pki", False)


def test_max_lease_ttl_reads_the_tuning_only_when_the_mount_has_none():
    fake = FakeClient({("GET", "sys/mounts/pki/tune"): {"data": {"max_lease_ttl": 2764800}}})
    assert pki_issuers.max_lease_ttl_of(fake, "pki", {"config": {"max_lease_ttl": 31536000}}) == 31536000
    assert fake.log == []
    assert pki_issuers.max_lease_ttl_of(fake, "pki", {"config": {"max_lease_ttl": 0}}) == 2764800


@pytest.mark.parametrize("info", [None, {}, {"config": None}, {"config": {}}, {"config": {"max_lease_ttl": None}}])
@pytest.mark.parametrize("tune, expected", [
    ({"data": {"max_lease_ttl": 2764800}}, 2764800),
    ({"max_lease_ttl": 86400}, 86400),  # a client that answers the data without its wrapper
    ({"data": {}}, 0), (None, 0),
])
def test_max_lease_ttl_of_an_untuned_mount_is_the_tuning(info, tune, expected):
    fake = FakeClient({("GET", "sys/mounts/istioca/tune"): tune})
    assert pki_issuers.max_lease_ttl_of(fake, "istioca", info) == expected
    assert fake.paths() == ["sys/mounts/istioca/tune"]


def test_max_lease_ttl_of_a_tuned_mount_as_text():
    fake = FakeClient()
    assert pki_issuers.max_lease_ttl_of(fake, "pki", {"config": {"max_lease_ttl": "3600"}}) == 3600
    assert fake.log == []


def test_issuer_chain_certs_skip_itself_and_what_does_not_parse():
    """Issue #16's surviving mutant: the chain above an issuer is ca_chain minus the issuer's own certificate
    (Vault lists it first) and minus entries that are not certificates, in Vault's order."""
    root = make_cert("CN=root")
    middle = make_cert("CN=middle")
    cert = make_cert("CN=int")
    body = issuer_body(cert, chain=[middle, root])
    body["data"]["ca_chain"].insert(1, "not a certificate")
    issuer = pki_issuers.Issuer.from_response("istioca", body)
    assert issuer.chain_certs() == [middle, root]
    assert issuer.ca_chain[1] == "not a certificate\n" and issuer.certificate == cert_pem(cert)
    alone = pki_issuers.Issuer.from_response("pki", {"data": {"issuer_id": "r", "certificate": cert_pem(root)}})
    assert alone.chain_certs() == [] and alone.key_id == "" and alone.ca_chain == []


def test_read_default_issuer():
    cert = make_cert()
    none = FakeClient({("GET", "m/config/issuers"): {"data": {"default": ""}}})
    assert pki_issuers.read_default_issuer(none, "m") is None and none.paths() == ["m/issuer/default"]
    assert pki_issuers.read_default_issuer(FakeClient(), "gone") is None  # no mount: 404
    failing = FakeClient({("GET", "m/issuer/default"): MeshPkiError("Failed to read 'm/issuer/default': permission "
                                                                    "denied")})
    with pytest.raises(MeshPkiError, match="permission denied"):
        pki_issuers.read_default_issuer(failing, "m")
    root = make_cert("CN=root")
    fake = FakeClient({("GET", "m/config/issuers"): {"data": {"default": "iss-1"}},
                       ("GET", "m/issuer/iss-1"): issuer_body(cert, chain=[root])})
    issuer = pki_issuers.read_default_issuer(fake, "m")
    assert fake.paths() == ["m/issuer/default"]  # one read (issue 17), not config/issuers then issuer/<id>
    assert issuer.issuer_id == "iss-1" and issuer.key_id == "key-1" and issuer.cert == cert
    assert issuer.chain_certs() == [root]


def test_find_issuer_by_key_then_single_then_serial():
    cert = make_cert()
    both = {"data": {"imported_issuers": ["int", "root"], "mapping": {"int": "key-9", "root": ""}}}
    assert pki_issuers.find_issuer(FakeClient(), "m", both, cert, key_id="key-9") == "int"
    one = {"data": {"existing_issuers": ["only"], "mapping": {"only": ""}}}
    assert pki_issuers.find_issuer(FakeClient(), "m", one, cert) == "only"
    serial = x509_mod.cert_info(cert)["serial"]
    listing = FakeClient({("LIST", "m/issuers"): {"data": {"key_info": {"a": {"serial_number": "00:01"},
                                                                        "b": {"serial_number": serial}}}}})
    assert pki_issuers.find_issuer(listing, "m", both, cert) == "b"
    with pytest.raises(MeshPkiError, match="cannot find the issuer"):
        pki_issuers.find_issuer(FakeClient(), "m", both, cert)


# ---------------------------------------------------------------------------------------------------------
# _kv2
# ---------------------------------------------------------------------------------------------------------

def test_read_secret_latest_version():
    fake = FakeClient({("GET", "secret/data/istioca"): {"data": {"data": {"ca-key.pem": "k"},
                                                                 "metadata": {"version": 3}}}})
    secret = read_secret(fake, "secret/", "/istioca")
    assert (secret.data, secret.version, secret.current_version) == ({"ca-key.pem": "k"}, 3, 3)
    assert secret.display == "secret/istioca" and secret.api_path == "secret/data/istioca"


def test_read_secret_deleted_latest_version_keeps_the_version_for_cas():
    fake = FakeClient({("GET", "secret/metadata/istioca"): {"data": {"current_version": 4}}})
    secret = read_secret(fake, "secret", "istioca")
    assert (secret.data, secret.version, secret.current_version) == ({}, 0, 4)
    assert fake.paths() == ["secret/data/istioca", "secret/metadata/istioca"]


def test_read_secret_deleted_or_destroyed_latest_version_is_not_waited_for():
    for entry in ({"deletion_time": "2026-11-28T00:00:00Z", "destroyed": False},
                  {"deletion_time": "", "destroyed": True}):
        fake = FakeClient({("GET", "secret/metadata/istioca"): {"data": {"current_version": 2,
                                                                         "versions": {"2": entry}}}})
        assert read_secret(fake, "secret", "istioca").current_version == 2
        assert len(fake.paths()) == 2


def test_read_secret_while_a_write_lands_reads_the_new_version():
    """Data 404 but metadata already at a live version 1: a concurrent write was landing. Reporting
    'no key, version 1' made a concurrent run write version 2 with another key (found by the reliability
    suite's five concurrent runs); the data is read again instead."""
    live = {"data": {"current_version": 1, "versions": {"1": {"deletion_time": "", "destroyed": False}}}}
    fake = FakeClient({("GET", "secret/data/istioca"): [None, {"data": {"data": {"ca-key.pem": "k"},
                                                                        "metadata": {"version": 1}}}],
                       ("GET", "secret/metadata/istioca"): live})
    secret = read_secret(fake, "secret", "istioca")
    assert (secret.data, secret.version, secret.current_version) == ({"ca-key.pem": "k"}, 1, 1)
    assert fake.paths() == ["secret/data/istioca", "secret/metadata/istioca", "secret/data/istioca"]


def test_read_secret_gives_up_clearly_when_a_live_version_never_reads(monkeypatch):
    monkeypatch.setattr(_kv2, "LIVE_WAIT", 0.3)
    live = {"data": {"current_version": 3, "versions": {"3": {"deletion_time": "", "destroyed": False}}}}
    fake = FakeClient({("GET", "secret/metadata/istioca"): live})
    with pytest.raises(MeshPkiError, match="reads as missing, but its metadata says version 3 exists"):
        read_secret(fake, "secret", "istioca")
    assert "POST" not in [m for m, _p, _b in fake.log]


def test_auth_method_enabled_by_a_concurrent_run_is_taken_as_found():
    in_use = MeshPkiError("Failed to enable kubernetes auth method 'sys/auth/kubernetes': Vault rejected the request "
                          "(400): path is already in use at kubernetes/", status=400)
    fake = FakeClient({("GET", "sys/auth"): [{"data": {}}, {"data": {"kubernetes/": {"type": "kubernetes"}}}],
                       ("POST", "sys/auth/kubernetes"): in_use})
    result = _mounts.ensure_auth_method(fake, "kubernetes", "kubernetes", check_mode=False)
    assert not result.changed and fake.paths() == ["sys/auth", "sys/auth/kubernetes", "sys/auth"]
    # ... but not when the concurrent run put another type there.
    fake = FakeClient({("GET", "sys/auth"): [{"data": {}}, {"data": {"kubernetes/": {"type": "jwt"}}}],
                       ("POST", "sys/auth/kubernetes"): in_use})
    with pytest.raises(MeshPkiError, match="is a jwt auth method, but kubernetes is needed"):
        _mounts.ensure_auth_method(fake, "kubernetes", "kubernetes", check_mode=False)


def test_read_secret_without_metadata_permission_assumes_none():
    fake = FakeClient({("GET", "secret/metadata/x"): MeshPkiError("permission denied", status=403)})
    assert read_secret(fake, "secret", "x").current_version == 0
    fake = FakeClient({("GET", "secret/metadata/x"): MeshPkiError("sealed", status=503)})
    with pytest.raises(MeshPkiError, match="sealed"):
        read_secret(fake, "secret", "x")


def test_write_secret_with_check_and_set():
    fake = FakeClient({("POST", "secret/data/istioca"): {"data": {"version": 2}}})
    assert write_secret(fake, KvSecret("secret", "istioca", {}, 1, 1), {"ca-key.pem": "k"}) == 2
    assert fake.log[0][2] == {"options": {"cas": 1}, "data": {"ca-key.pem": "k"}}


def test_write_secret_lost_race_is_a_cas_conflict():
    error = MeshPkiError("Failed to write the KV v2 secret 'secret/data/istioca': Vault rejected the request (400): "
                         "check-and-set parameter did not match the current version", status=400)
    fake = FakeClient({("POST", "secret/data/istioca"): error})
    with pytest.raises(CasConflict) as err:
        write_secret(fake, KvSecret("secret", "istioca"), {"ca-key.pem": "k"})
    assert "Another writer changed 'secret/istioca'" in str(err.value) and "version 0" in str(err.value)
    other = FakeClient({("POST", "secret/data/istioca"): MeshPkiError("bad", status=400)})
    with pytest.raises(MeshPkiError) as err:
        write_secret(other, KvSecret("secret", "istioca"), {})
    assert not isinstance(err.value, CasConflict)


# ---------------------------------------------------------------------------------------------------------
# pki/root
# ---------------------------------------------------------------------------------------------------------

def root_params(**overrides):
    params = dict(mount="pki", max_lease_ttl=None, common_name="tetrate.io", organization=None, ou=None,
                  country=None, locality=None, province=None, key_type="rsa", key_bits=None, ttl="8760h",
                  max_path_length=-1, force=False, pem_bundle=None, certificate=None)
    params.update(overrides)
    return params


def root_client(cert=None, key_id="key-1", max_ttl=31536000):
    responses = {("GET", "sys/mounts"): mounts(pki={"type": "pki", "config": {"max_lease_ttl": max_ttl}})}
    if cert is not None:
        responses[("GET", "pki/config/issuers")] = {"data": {"default": "iss-1"}}
        responses[("GET", "pki/issuer/iss-1")] = issuer_body(cert, key_id=key_id)
    else:
        responses[("GET", "pki/config/issuers")] = {"data": {"default": ""}}
    return FakeClient(responses)


def run_root(params, fake, check_mode=False):
    backend = RootCA(RootRequest(params), fake, check_mode)
    return backend.run(), backend


def test_root_same_subject_and_key_is_kept_with_two_reads():
    cert = make_cert("CN=tetrate.io", lifetime=datetime.timedelta(hours=8760, seconds=30))
    fake = root_client(cert)
    result, _backend = run_root(root_params(), fake)
    assert not result["changed"] and result["action"] == "none" and result["pending_changes"] == []
    assert fake.paths() == ["sys/mounts", "pki/issuer/default"]
    assert result["serial"] == x509_mod.cert_info(cert)["serial"] and "BEGIN CERTIFICATE" in result["certificate"]


def test_root_ttl_only_change_is_pending_not_applied():
    cert = make_cert("CN=tetrate.io", lifetime=datetime.timedelta(hours=8760, seconds=30))
    result, _b = run_root(root_params(ttl="4380h", max_lease_ttl="8760h"), root_client(cert))
    assert not result["changed"] and result["pending_changes"][0].startswith("ttl: the certificate lives 8760h")


@pytest.mark.parametrize("cert_args, params, expected", [
    ({"subject": "CN=old"}, {}, "subject is 'CN=old', requested 'CN=tetrate.io'"),
    ({"subject": "CN=tetrate.io", "key": "ec"}, {}, "key is EC 256, requested RSA 2048"),
    ({"subject": "CN=tetrate.io"}, {"key_bits": 4096}, "key is RSA 2048, requested RSA 4096"),
    ({"subject": "CN=tetrate.io", "key_id": ""}, {}, "its key is not in Vault"),
])
def test_root_differing_is_refused_without_force(cert_args, params, expected):
    key = make_key("ec", 256) if cert_args.get("key") == "ec" else make_key()
    cert = make_cert(cert_args["subject"], key=key)
    fake = root_client(cert, key_id=cert_args.get("key_id", "key-1"))
    with pytest.raises(MeshPkiError) as err:
        run_root(root_params(**params), fake)
    message = str(err.value)
    assert "The mount 'pki' already has a different root CA (default issuer iss-1" in message
    assert expected in message and "set force: true" in message and "Nothing was changed" in message
    assert fake.paths("POST") == []


def test_root_force_replaces_and_sets_the_default_explicitly():
    old = make_cert("CN=old")
    new = make_cert("CN=tetrate.io")
    fake = root_client(old)
    fake.responses[("POST", "pki/root/generate/internal")] = {"data": {"issuer_id": "iss-2", "key_id": "key-2",
                                                                       "certificate": cert_pem(new)}}
    result, _b = run_root(root_params(force=True), fake, check_mode=True)
    assert result["changed"] and result["action"] == "replace" and fake.paths("POST") == []
    assert result["diff"]["after"]["serial"] == "(new)" and result["serial"] == x509_mod.cert_info(old)["serial"]
    result, _b = run_root(root_params(force=True), fake)
    assert result["replaced"] and result["previous_serial"] == x509_mod.cert_info(old)["serial"]
    assert result["issuer_id"] == "iss-2" and result["serial"] == x509_mod.cert_info(new)["serial"]
    assert fake.paths("POST") == ["pki/root/generate/internal", "pki/config/issuers"]
    generate = [body for m, p, body in fake.log if p == "pki/root/generate/internal"][0]
    assert generate == {"common_name": "tetrate.io", "key_type": "rsa", "key_bits": 2048, "ttl": "31536000s",
                        "max_path_length": -1}


def test_root_created_on_a_new_mount():
    fake = FakeClient({("GET", "sys/mounts"): mounts()})
    cert = make_cert("CN=tetrate.io")
    fake.responses[("POST", "pki/root/generate/internal")] = {"data": {"issuer_id": "i", "key_id": "k",
                                                                       "certificate": cert_pem(cert)}}
    result, _b = run_root(root_params(), fake)
    assert result["action"] == "create" and not result["replaced"]
    assert fake.paths("POST") == ["sys/mounts/pki", "pki/root/generate/internal", "pki/config/issuers"]
    assert fake.log[1][2]["config"] == {"max_lease_ttl": "31536000s"}  # max_lease_ttl defaults to ttl
    assert result["diff"]["before"] == {} and result["diff"]["after"]["mount_type"] == "pki"


def test_root_import_same_certificate_is_no_change_but_adds_a_missing_key():
    key = make_key("ec", 256)
    cert = make_cert("CN=Own", key=key, days=400)
    bundle = cert_pem(cert) + key_pem(key)
    result, _b = run_root(root_params(common_name=None, pem_bundle=bundle), root_client(cert))
    assert result["action"] == "none"
    fake = root_client(cert, key_id="")
    fake.responses[("POST", "pki/issuers/import/bundle")] = {"data": {"existing_issuers": ["iss-1"],
                                                                      "imported_keys": ["key-7"],
                                                                      "mapping": {"iss-1": "key-7"}}}
    result, _b = run_root(root_params(common_name=None, pem_bundle=bundle), fake)
    assert result["action"] == "import" and result["key_id"] == "key-7" and not result["replaced"]
    assert fake.paths("POST") == ["pki/issuers/import/bundle", "pki/config/issuers"]


def test_root_import_of_another_certificate_needs_force():
    mine = make_cert("CN=Own", days=400)
    with pytest.raises(MeshPkiError, match="it is the certificate .* the one given is"):
        run_root(root_params(common_name=None, certificate=cert_pem(mine)), root_client(make_cert("CN=Own")))


@pytest.mark.parametrize("params, message", [
    ({"ttl": "87600h", "max_lease_ttl": "8760h"}, "ttl 87600h is longer than max_lease_ttl 8760h"),
    ({"ttl": "0"}, "ttl must be longer than 0 seconds"),
    ({"max_path_length": -2}, "max_path_length must be -1 (no limit) or more"),
    ({"mount": "/"}, "mount must not be empty"),
    ({"common_name": None, "certificate": "nothing"}, "certificate holds no PEM 'CERTIFICATE' block"),
])
def test_root_request_validation(params, message):
    with pytest.raises(MeshPkiError) as err:
        RootRequest(root_params(**params))
    assert message in str(err.value)


def test_root_request_refuses_unusable_imports():
    key = make_key("ec", 256)
    leaf = make_cert("CN=leaf", key=key, ca=False, days=400)
    with pytest.raises(MeshPkiError, match="is not a CA certificate"):
        RootRequest(root_params(common_name=None, pem_bundle=cert_pem(leaf) + key_pem(key)))
    expired = make_cert("CN=old", key=key, start=NOW - datetime.timedelta(days=10), days=1)
    with pytest.raises(MeshPkiError, match="expired on"):
        RootRequest(root_params(common_name=None, certificate=cert_pem(expired)))
    small = make_key("rsa", 1024, fresh=True)
    weak = make_cert("CN=weak", key=small)
    with pytest.raises(MeshPkiError, match="RSA 1024 key; Istio needs at least 2048 bits"):
        RootRequest(root_params(common_name=None, pem_bundle=cert_pem(weak) + key_pem(small)))
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"pw")).decode()
    with pytest.raises(MeshPkiError, match="exactly one unencrypted private key|cannot be used"):
        RootRequest(root_params(common_name=None, pem_bundle=cert_pem(make_cert(key=key)) + encrypted))


def test_certificate_summary_diff_view_and_key_difference():
    key = make_key("ec", 256)
    cert = make_cert("O=Tetrate,CN=int", key=key, lifetime=datetime.timedelta(hours=1))
    info = x509_mod.cert_info(cert)
    assert pki_certs.summary(cert) == {"subject": "CN=int, O=Tetrate", "serial": info["serial"],
                                       "not_before": info["not_before"], "not_after": info["not_after"],
                                       "key_type": "ec", "key_bits": 256}
    assert pki_certs.diff_view(cert) == {"subject": "CN=int, O=Tetrate", "serial": info["serial"],
                                         "not_after": info["not_after"], "key": "EC 256"}
    assert pki_certs.summary(None) == {} and pki_certs.diff_view(None) == {}
    assert pki_certs.key_difference(cert, "ec", 256) is None
    assert pki_certs.key_difference(cert, "rsa", 2048) == "key is EC 256, requested RSA 2048"
    assert pki_certs.same_cert(cert, cert) and not pki_certs.same_cert(cert, make_cert(key=key))
    assert not pki_certs.same_cert(None, cert) and not pki_certs.same_cert(cert, None)
    assert pki_request.subject_text([]) == "(empty)"


def test_cert_subject_pairs_label_every_attribute():
    key = make_key("ec", 256)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "int"),
                         x509.NameAttribute(NameOID.LOCALITY_NAME, "Sunnyvale"),
                         x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "California"),
                         x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ca@example.com")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pairs = pki_request.cert_subject_pairs(cert)
    assert pairs == sorted([("CN", "int"), ("L", "Sunnyvale"), ("ST", "California"),
                            ("emailAddress", "ca@example.com")])  # no label of ours: cryptography's name
    assert pki_request.subject_text(pairs).startswith("CN=int, L=Sunnyvale, ST=California, ")
    subject_params = {"common_name": "int", "locality": ["Sunnyvale"], "province": ["California"]}
    assert pki_request.Subject.from_params(subject_params).difference(cert).startswith(
        "subject is 'CN=int, L=Sunnyvale, ST=California, ")


@pytest.mark.parametrize("key_type, bits, message", [
    ("rsa", 1024, "key_bits 1024 is not valid with key_type rsa: RSA keys for an Istio CA must have 2048, 3072 or "
                  "4096 bits"),
    ("ec", 521, "key_bits 521 is not valid with key_type ec: EC keys for an Istio CA must be P-256 .256. or "
                "P-384 .384."),
    ("ed25519", None, "key_type 'ed25519' is not supported: use rsa or ec"),
])
def test_key_spec_errors_say_what_istio_accepts(key_type, bits, message):
    with pytest.raises(MeshPkiError, match=message):
        pki_request.key_spec(key_type, bits)
