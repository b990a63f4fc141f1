"""Throw-away X.509 material for the test harness (TLS for OpenBao and the fake Kubernetes API).

Everything is generated in memory with ``cryptography``; callers decide where PEM goes.
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


class KeyPair(object):
    """A certificate and its private key, both as objects and as PEM text."""

    def __init__(self, cert, key):
        self.cert = cert
        self.key = key

    @property
    def cert_pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self):
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def write(self, directory, stem):
        """Write ``<stem>.crt`` and ``<stem>.key`` into ``directory``; return both paths."""
        import os

        cert_path = os.path.join(str(directory), stem + ".crt")
        key_path = os.path.join(str(directory), stem + ".key")
        with open(cert_path, "w") as f:
            f.write(self.cert_pem)
        with open(key_path, "w") as f:
            f.write(self.key_pem)
        os.chmod(key_path, 0o600)
        return cert_path, key_path


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _builder(subject_cn, issuer_name, public_key, days):
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
)


def make_ca(common_name="meshpki test CA", days=30):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(common_name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def _leaf(ca, common_name, usages, sans, days):
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(common_name, ca.cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def make_server_cert(ca, hosts=("127.0.0.1", "localhost"), days=30):
    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return _leaf(ca, hosts[0], [ExtendedKeyUsageOID.SERVER_AUTH], sans, days)


def make_client_cert(ca, common_name="meshpki-client", days=30):
    return _leaf(ca, common_name, [ExtendedKeyUsageOID.CLIENT_AUTH], [], days)


def make_intermediate(ca, common_name="meshpki test intermediate", days=30):
    """An intermediate CA signed by ``ca`` (path length 0, as istiod's plugin CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, ca.cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def make_self_signed_leaf(common_name="meshpki self-signed leaf", days=30):
    """A self-signed certificate that is not a CA (basic constraints CA:FALSE) - not a root."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(common_name, name, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(cert, key)


def make_workload_cert(intermediate, spiffe_uri="spiffe://cluster.local/ns/default/sa/default", days=1):
    """A workload (leaf) certificate as istiod issues it under ``intermediate``: SPIFFE URI SAN, server and client
    auth, the authority key id of the intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder("workload", intermediate.cert.subject, key.public_key(), days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_uri)]), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(intermediate.key.public_key()),
                       critical=False)
    )
    return KeyPair(builder.sign(intermediate.key, hashes.SHA256()), key)


def plugin_ca_files(root_days=365, intermediate_days=200):
    """The four files istiod reads from ROOT_CA_DIR for a fresh root and intermediate: {file name: PEM text}."""
    root = make_ca("meshpki test root", days=root_days)
    intermediate = make_intermediate(root, days=intermediate_days)
    return {"ca-cert.pem": intermediate.cert_pem, "ca-key.pem": intermediate.key_pem,
            "cert-chain.pem": intermediate.cert_pem + root.cert_pem, "root-cert.pem": root.cert_pem}
