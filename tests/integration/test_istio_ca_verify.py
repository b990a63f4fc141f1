"""istio_ca_verify through real ansible-playbook runs: every broken bundle is refused with the names of the checks
that fail, the good one passes from a directory, from PEM options and from Vault (read as the agent renders),
the key never shows, and Vault is only read."""

import datetime
import json
import os
import subprocess
import sys
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from test_bao_agent_render import guide_pki, istiod_policy

from harness.playbook import REPO

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
FILES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")


# ---------------------------------------------------------------------------------------------------------
# a real chain, dated around the real clock (the module verifies at the current time)
# ---------------------------------------------------------------------------------------------------------

def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_cert(cn, key, issuer=None, issuer_key=None, not_before=NOW - 10 * DAY, not_after=NOW + 365 * DAY, ca=True,
              eku=None):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer is not None else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=not ca,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                                     encipher_only=False, decipher_only=False), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key if issuer_key is not None else key, hashes.SHA256())


def pem(*certs):
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certs)


def key_pem(key, password=None):
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             encryption).decode()


class Pki(object):
    def __init__(self):
        self.root_key, self.int_key = new_key(), new_key()
        self.root = make_cert("meshpki root", self.root_key)
        self.intermediate = self.sign("meshpki intermediate")

    def sign(self, cn, key=None, **kwargs):
        kwargs.setdefault("not_after", NOW + 180 * DAY)
        return make_cert(cn, key or self.int_key, issuer=self.root, issuer_key=self.root_key, **kwargs)

    def files(self, intermediate=None, key=None, chain=None, roots=None):
        intermediate = intermediate or self.intermediate
        return {"ca-cert.pem": pem(intermediate),
                "ca-key.pem": key if isinstance(key, str) else key_pem(key or self.int_key),
                "cert-chain.pem": pem(*(chain if chain is not None else [intermediate, self.root])),
                "root-cert.pem": pem(*(roots if roots is not None else [self.root]))}


@pytest.fixture(scope="module")
def pki():
    return Pki()


def write_bundle(directory, files, extra=()):
    os.makedirs(directory)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    for name in extra:
        with open(os.path.join(directory, name), "w") as f:
            f.write("x\n")
    return str(directory)


def play(tasks, **kwargs):
    return [dict({"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}, **kwargs)]


def verify_task(name, args):
    return {"name": name, "meshpki.vault_ca.istio_ca_verify": args, "ignore_errors": True}


# ---------------------------------------------------------------------------------------------------------
# broken bundles, one playbook run
# ---------------------------------------------------------------------------------------------------------

def broken_bundles(pki):
    """name -> (files, extra file names, the exact set of failed checks)."""
    leaf = pki.sign("not a ca", ca=False)
    other_root = make_cert("another root", new_key())
    files = pki.files()
    return {
        "swapped key": (pki.files(key=new_key()), (), {"key_matches_cert", "workload_cert_verifies"}),
        "chain without the intermediate": (pki.files(chain=[pki.root]), (),
                                           {"cert_chain_starts_with_ca_cert", "workload_cert_verifies"}),
        "chain in the wrong order": (pki.files(chain=[pki.root, pki.intermediate]), (),
                                     {"cert_chain_starts_with_ca_cert"}),
        "root file holding the intermediate": (pki.files(roots=[pki.root, pki.intermediate]), (),
                                               {"root_cert_excludes_intermediate", "roots_self_signed_ca"}),
        "expired intermediate": (pki.files(intermediate=pki.sign("expired", not_before=NOW - 30 * DAY,
                                                                 not_after=NOW - DAY)), (),
                                 {"certificates_valid_now"}),
        "intermediate outliving the root": (pki.files(intermediate=pki.sign("too long", not_after=NOW + 400 * DAY)),
                                            (), {"intermediate_within_root_lifetime"}),
        "no value in the key": (pki.files(key="<no value>\n"), (),
                                {"no_unrendered_values", "ca_key_parses", "key_matches_cert",
                                 "workload_cert_verifies"}),
        "encrypted key": (pki.files(key=key_pem(pki.int_key, password=b"pw-" + uuid.uuid4().hex.encode())), (),
                          {"ca_key_parses", "key_matches_cert", "workload_cert_verifies"}),
        "non-CA certificate": (pki.files(intermediate=leaf), (),
                               {"ca_cert_is_ca", "ca_cert_key_cert_sign", "workload_cert_verifies"}),
        "tls.crt next to the files": (pki.files(), ("tls.crt",), {"no_tls_crt"}),
        "intermediate of another root": (pki.files(roots=[other_root]), (),
                                         {"chains_to_root", "intermediate_within_root_lifetime",
                                          "workload_cert_verifies"}),
        "client-auth-only intermediate": (pki.files(intermediate=pki.sign(
            "client only", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])), (), {"ext_key_usage"}),
        "private key inside the chain": (dict(files, **{"cert-chain.pem": files["cert-chain.pem"] + files[
            "ca-key.pem"]}), (), {"cert_chain_parses", "cert_chain_starts_with_ca_cert", "workload_cert_verifies"}),
        "ca-cert.pem not PEM": (dict(files, **{"ca-cert.pem": "this is not PEM\n"}), (),
                                {"ca_cert_parses", "key_matches_cert", "ca_cert_is_ca", "ca_cert_key_cert_sign",
                                 "cert_chain_starts_with_ca_cert", "chains_to_root",
                                 "root_cert_excludes_intermediate", "ext_key_usage",
                                 "intermediate_within_root_lifetime", "workload_cert_verifies"}),
        "empty root file": (dict(pki.files(), **{"root-cert.pem": ""}), (),
                            {"files_not_empty", "root_cert_parses", "chains_to_root", "roots_self_signed_ca",
                             "root_cert_excludes_intermediate", "intermediate_within_root_lifetime",
                             "workload_cert_verifies"}),
    }


def test_each_broken_bundle_is_refused_naming_its_checks(pki, playbook, tmp_path):
    cases = broken_bundles(pki)
    tasks = [verify_task("good", {"path": write_bundle(tmp_path / "good", pki.files())})]
    for index, (name, (files, extra, _failed)) in enumerate(cases.items()):
        tasks.append(verify_task(name, {"path": write_bundle(tmp_path / ("case%d" % index), files, extra)}))
    good = pki.files()
    tasks.append(verify_task("pem options", {"ca_cert_pem": good["ca-cert.pem"], "ca_key_pem": good["ca-key.pem"],
                                             "cert_chain_pem": good["cert-chain.pem"],
                                             "root_cert_pem": good["root-cert.pem"]}))
    swapped = cases["swapped key"][0]
    tasks.append(verify_task("pem options, swapped key", {
        "ca_cert_pem": swapped["ca-cert.pem"], "ca_key_pem": swapped["ca-key.pem"],
        "cert_chain_pem": swapped["cert-chain.pem"], "root_cert_pem": swapped["root-cert.pem"]}))
    tasks.append(verify_task("min days left", {"path": str(tmp_path / "good"), "min_days_left": 1000}))
    tasks.append(verify_task("missing directory", {"path": str(tmp_path / "nope")}))
    tasks.append(verify_task("partial pem", {"ca_cert_pem": good["ca-cert.pem"]}))
    tasks.append(verify_task("two sources", {"path": str(tmp_path / "good"), "vault_paths": {}}))

    run = playbook(play(tasks), check=True)  # it only reads: check mode runs it for real
    assert run.rc == 0, run

    for name in ("good", "pem options"):
        task = run.task(name)
        assert task["status"] == "ok", task["result"].get("msg")
        result = task["result"]
        assert result["valid"] is True and result["failed_checks"] == [] and result["changed"] is False
        assert [check["name"] for check in result["checks"]][-1] == "workload_cert_verifies"
        assert result["certificates"]["intermediate"]["subject"] == "CN=meshpki intermediate"
        assert result["certificates"]["intermediate"]["days_left"] in (179, 180) and result["days_left"] in (179, 180)
        assert result["chain_path"] == ["CN=meshpki intermediate", "CN=meshpki root"]
        assert result["key_info"] == {"type": "rsa", "bits": 2048, "format": "pkcs1"}
    assert run.task("good")["result"]["sources"]["ca-key.pem"] == str(tmp_path / "good" / "ca-key.pem")
    assert run.task("pem options")["result"]["source"] == "pem"

    for name, (_files, _extra, failed) in cases.items():
        task = run.task(name)
        result = task["result"]
        assert task["status"] == "failed", name
        assert set(result["failed_checks"]) == failed, (name, [(c["name"], c["detail"]) for c in result["checks"]
                                                               if not c["passed"]])
        assert result["valid"] is False and len(result["checks"]) == 18
        for check in result["checks"]:  # the message names every failed check, with its detail
            if not check["passed"]:
                assert check["name"] in result["msg"], (name, check["name"])
                if not check.get("skipped"):
                    assert check["detail"] in result["msg"]
        assert result["msg"].startswith("The Istio CA bundle from the directory '%s' would break istiod or the mesh - "
                                        % result["sources"]["ca-cert.pem"].rsplit("/", 1)[0])

    assert set(run.task("pem options, swapped key")["result"]["failed_checks"]) == {"key_matches_cert",
                                                                                    "workload_cert_verifies"}
    days = run.task("min days left")["result"]
    assert days["failed_checks"] == ["min_days_left"] and "fewer than min_days_left=1000" in days["msg"]
    assert "Cannot read the CA bundle: cannot list the CA directory" in run.task("missing directory")["result"]["msg"]
    assert "parameters are required together: ca_cert_pem, ca_key_pem" in run.task("partial pem")["result"]["msg"]
    assert "mutually exclusive: path|vault_paths" in run.task("two sources")["result"]["msg"]

    # the key never shows: not in results, not in the output (no_log option masked, files never echoed)
    secret_lines = [line for line in good["ca-key.pem"].splitlines() if "PRIVATE KEY" not in line]
    everything = run.output + json.dumps(run.results)
    assert not [line for line in secret_lines if line in everything]
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in json.dumps(run.task("pem options")["result"]["invocation"])


# ---------------------------------------------------------------------------------------------------------
# from Vault, as the agent renders it
# ---------------------------------------------------------------------------------------------------------

def test_vault_source_reads_like_the_agent_and_only_reads(bao, playbook):
    suffix = uuid.uuid4().hex[:8]
    paths = dict(intermediate_mount="istioca-" + suffix, root_mount="pki-" + suffix, kv_mount="secret",
                 kv_path="istioca-" + suffix)
    pki = guide_pki(bao, paths["root_mount"], paths["intermediate_mount"], paths["kv_mount"], paths["kv_path"])
    istiod_policy(bao, "istioca-" + suffix, **paths)
    istiod_token = bao.api("POST", "auth/token/create", {"policies": ["istioca-" + suffix], "ttl": "10m"})
    istiod_token = istiod_token["auth"]["client_token"]
    other_token = bao.api("POST", "auth/token/create", {"policies": ["default"], "ttl": "10m"})["auth"]["client_token"]
    # a second secret holding another key: what a second generate/exported would leave in KV
    other_kv = "istioca-other-" + suffix
    bao.api("POST", "secret/data/" + other_kv, {"data": {"ca-key.pem": key_pem(new_key())}})

    vault = dict(paths, kv_field="ca-key.pem")
    tasks = [
        verify_task("istiod's token", {"token": istiod_token, "vault_paths": vault}),
        verify_task("wrong field", {"token": istiod_token, "vault_paths": dict(vault, kv_field="key")}),
        verify_task("key of another intermediate", {"vault_paths": dict(vault, kv_path=other_kv)}),
        verify_task("token without the policy", {"token": other_token, "vault_paths": vault}),
        verify_task("bad mount", {"vault_paths": dict(vault, root_mount="pki/*")}),
    ]
    plays = play(tasks, module_defaults={"group/meshpki.vault_ca.vault": {"url": bao.url, "token": bao.token}})
    mark = bao.audit.mark()
    run = playbook(plays)
    assert run.rc == 0, run
    assert bao.audit.writes(since=mark) == []  # reads only
    read = [path for op, path in bao.audit.requests(since=mark) if op == "read"]
    assert {"%s/cert/ca" % paths["intermediate_mount"], "%s/cert/ca_chain" % paths["intermediate_mount"],
            "%s/cert/ca" % paths["root_mount"], "secret/data/%s" % paths["kv_path"]} <= set(read)

    good = run.task("istiod's token")
    assert good["status"] == "ok" and good["result"]["valid"] is True, good["result"].get("msg")
    assert good["result"]["source"] == "vault"
    assert good["result"]["sources"] == {
        "ca-cert.pem": "vault:%s/cert/ca" % paths["intermediate_mount"],
        "ca-key.pem": "vault:secret/data/%s" % paths["kv_path"],
        "cert-chain.pem": "vault:%s/cert/ca_chain" % paths["intermediate_mount"],
        "root-cert.pem": "vault:%s/cert/ca" % paths["root_mount"]}
    assert good["result"]["chain_path"] == ["CN=tetrate.io Intermediate Authority", "CN=tetrate.io"]

    wrong = run.task("wrong field")["result"]
    assert set(wrong["failed_checks"]) == {"no_unrendered_values", "ca_key_parses", "key_matches_cert",
                                           "workload_cert_verifies"}
    assert "<no value>" in wrong["msg"]
    other = run.task("key of another intermediate")["result"]
    assert set(other["failed_checks"]) == {"key_matches_cert", "workload_cert_verifies"}
    denied = run.task("token without the policy")["result"]
    assert denied["msg"].startswith(  # cert/ca and cert/ca_chain are unauthenticated reads; the key is not
        "Failed to read the intermediate's key for ca-key.pem 'secret/data/%s': permission denied - the token needs "
        "'read' on 'secret/data/%s'" % (paths["kv_path"], paths["kv_path"])), denied["msg"]
    assert "Invalid vault_paths: root_mount 'pki/*' contains unsupported characters" in run.task("bad mount")[
        "result"]["msg"]
    assert pki["key"].splitlines()[3] not in run.output + json.dumps(run.results)


def test_read_with_policy_reads_as_istiod_would(bao, playbook):
    """read_with_policy: a fresh token holding only that policy does the four reads and is revoked right after;
    a policy that misses the key path fails naming it, before any token is created; the token is never shown."""
    suffix = uuid.uuid4().hex[:8]
    paths = dict(intermediate_mount="istioca-" + suffix, root_mount="pki-" + suffix, kv_mount="secret",
                 kv_path="istioca-" + suffix)
    guide_pki(bao, paths["root_mount"], paths["intermediate_mount"], paths["kv_mount"], paths["kv_path"])
    istiod_policy(bao, "good-" + suffix, **paths)
    elsewhere = dict(paths)
    elsewhere["kv_path"] = "elsewhere-" + suffix
    istiod_policy(bao, "bad-" + suffix, **elsewhere)
    tasks = [
        verify_task("good policy", {"vault_paths": paths, "read_with_policy": "good-" + suffix}),
        verify_task("policy without the key", {"vault_paths": paths, "read_with_policy": "bad-" + suffix}),
    ]
    plays = play(tasks, module_defaults={"group/meshpki.vault_ca.vault": {"url": bao.url, "token": bao.token}})
    mark = bao.audit.mark()
    run = playbook(plays)
    assert run.rc == 0, run
    assert run.task("good policy")["result"]["valid"] is True
    assert run.task("good policy")["result"]["policy_check"] == "token"
    bad = run.task("policy without the key")["result"]["msg"]
    assert "does not grant 'read' on 1 path(s)" in bad and "'secret/data/%s' (ca-key.pem" % paths["kv_path"] in bad
    created = [r for r in bao.audit.entries()[mark:] if r.get("type") == "response"
               and r["request"].get("path") == "auth/token/create"]
    assert len(created) == 1  # none for the policy that misses a path
    assert sorted(created[0]["response"]["auth"]["policies"]) == ["default", "good-" + suffix]
    assert created[0]["response"]["auth"]["num_uses"] == 5  # the four reads and its own revocation
    # only token creation and revocation are written; the reads themselves are reads
    assert bao.audit.writes(since=mark) == [("update", "auth/token/create"), ("update", "auth/token/revoke-self")]


def test_ansible_doc_renders(tmp_path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "meshpki.vault_ca.istio_ca_verify"], env=env, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["meshpki.vault_ca.istio_ca_verify"]
    assert doc["doc"]["attributes"]["action_group"]["membership"] == ["meshpki.vault_ca.vault"]
    assert doc["doc"]["attributes"]["check_mode"]["support"] == "full"
    assert {"path", "ca_key_pem", "vault_paths", "url", "token", "auth_method"} <= set(doc["doc"]["options"])
    for needle in ("path: /etc/cacerts-vault", "vault_paths:", "ca_key_pem:", "auth_method: kubernetes"):
        assert needle in doc["examples"]
