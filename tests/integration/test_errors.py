"""Each failure of the shared Vault layer gives a message that names the action, the path and the fix.

Run through real ansible-playbook (vault_policy as the probe) unless the case needs a path that only
another module would reach; those use the shared VaultClient directly against the real server.
"""

import subprocess
import sys
import uuid

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from harness import certs
from harness.openbao import OpenBaoServer, free_port
from harness.playbook import module_play

POLICY = 'path "pki/cert/ca" { capabilities = ["read"] }'


def _fail_msg(playbook, args, **kwargs):
    args = dict(args, name=args.get("name", "err-" + uuid.uuid4().hex[:8]), policy=POLICY, retries=0)
    run = playbook(module_play("vault_policy", args), **kwargs)
    assert run.rc != 0, run
    return run.task("task")["result"]["msg"]


def test_unreachable_names_the_url(playbook):
    url = "http://127.0.0.1:%d" % free_port()
    msg = _fail_msg(playbook, {"url": url, "token": "t-" + uuid.uuid4().hex})
    assert msg.startswith("Failed to read policy 'sys/policies/acl/")
    assert "Vault at %s is unreachable" % url in msg
    assert "Check url (or VAULT_ADDR)" in msg


def test_no_address_at_all(playbook):
    msg = _fail_msg(playbook, {"token": "t-" + uuid.uuid4().hex})
    assert "No Vault address: set the url option, or VAULT_ADDR (BAO_ADDR)" in msg


def test_tls_without_the_ca_says_which_trust_was_used(bao_tls, playbook):
    msg = _fail_msg(playbook, {"url": bao_tls.tls_url, "token": bao_tls.token})
    assert "TLS verification of %s failed using the system trust store" % bao_tls.tls_url in msg
    assert "with ca_cert (or VAULT_CACERT)" in msg


def test_tls_with_the_wrong_ca_names_the_file(bao_tls, playbook, tmp_path):
    wrong = certs.make_ca("not the Vault CA").write(tmp_path, "wrong-ca")[0]
    msg = _fail_msg(playbook, {"url": bao_tls.tls_url, "token": bao_tls.token, "ca_cert": wrong})
    assert "failed using CA file '%s'" % wrong in msg


def test_tls_ca_from_environment_and_skip_verify_warns(bao_tls, playbook):
    args = {"url": bao_tls.tls_url, "token": bao_tls.token, "name": "tls-" + uuid.uuid4().hex[:6], "policy": POLICY}
    run = playbook(module_play("vault_policy", args), env={"VAULT_CACERT": bao_tls.ca_file})
    assert run.rc == 0, run
    run = playbook(module_play("vault_policy", dict(args, validate_certs=False)))
    assert run.rc == 0, run
    assert "TLS certificate verification of %s is disabled" % bao_tls.tls_url in run.output


def test_missing_ca_file(bao_tls, playbook, tmp_path):
    msg = _fail_msg(playbook, {"url": bao_tls.tls_url, "token": bao_tls.token, "ca_cert": str(tmp_path / "nope.pem")})
    assert "The CA certificate file '%s' (ca_cert or VAULT_CACERT) does not exist" % (tmp_path / "nope.pem") in msg


def test_plain_http_to_a_tls_port(bao_tls, playbook):
    http_url = bao_tls.tls_url.replace("https://", "http://")
    msg = _fail_msg(playbook, {"url": http_url, "token": bao_tls.token})
    assert "%s serves TLS; use an https:// URL" % bao_tls.tls_url in msg


def test_permission_denied_names_path_and_capability(bao, playbook):
    read_only = 'path "sys/policies/acl/*" { capabilities = ["read"] }'
    bao.api("PUT", "sys/policies/acl/read-only-policies", {"policy": read_only})
    token = bao.api("POST", "auth/token/create", {"policies": ["read-only-policies"]})["auth"]["client_token"]
    name = "denied-" + uuid.uuid4().hex[:6]
    mark = bao.audit.mark()
    msg = _fail_msg(playbook, {"url": bao.url, "token": token, "name": name})
    assert ("Failed to write policy 'sys/policies/acl/%s': permission denied - the token needs 'create' or "
            "'update' on 'sys/policies/acl/%s'" % (name, name)) in msg
    assert [w for w in bao.audit.writes(since=mark) if w[1].endswith(name)] == [("update", "sys/policies/acl/" + name)]


def test_invalid_token(bao, playbook):
    msg = _fail_msg(playbook, {"url": bao.url, "token": "t-" + uuid.uuid4().hex})
    assert "permission denied - the token needs 'read' on 'sys/policies/acl/" in msg
    assert "or it is invalid or expired" in msg


def test_missing_mount_404(bao):
    conn = VaultConnection.from_params({"url": bao.url, "retries": 0})
    client = VaultClient(conn.client(bao.token), conn)
    with pytest.raises(MeshPkiError) as err:
        client.write("nomount/config/urls", {"issuing_certificates": []}, action="write PKI URLs")
    assert str(err.value).startswith("Failed to write PKI URLs 'nomount/config/urls': not found")
    assert "Is a secrets engine or auth method mounted at 'nomount'?" in str(err.value)
    assert client.read("nomount/config/urls") is None  # reads report absence, not an error


@pytest.fixture(scope="module")
def raft_bao(tmp_path_factory):
    """A non-dev server on raft storage: it can be left uninitialised, and sealed."""
    server = OpenBaoServer(tmp_path_factory.mktemp("raft"), storage="raft")
    yield server
    server.stop()


def test_uninitialised_then_sealed(raft_bao, playbook):
    raft_bao._config()
    raft_bao.log_path = raft_bao.workdir + "/server.log"
    from harness.openbao import _clean_env, bao_binary
    raft_bao.proc = subprocess.Popen([bao_binary(), "server", "-config=" + raft_bao.workdir + "/config.hcl"],
                                     stdout=open(raft_bao.log_path, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True, env=_clean_env())
    raft_bao._wait_listening()
    msg = _fail_msg(playbook, {"url": raft_bao.http_url, "token": "t-" + uuid.uuid4().hex})
    assert "Vault at %s is not initialised. Initialise it" % raft_bao.http_url in msg

    raft_bao._init_and_unseal()
    raft_bao.wait_ready()
    raft_bao.api("PUT", "sys/seal")
    msg = _fail_msg(playbook, {"url": raft_bao.http_url, "token": raft_bao.token})
    assert "Vault at %s is sealed or on standby without forwarding (503" % raft_bao.http_url in msg
    assert "Unseal it" in msg


def test_missing_hvac_library(bao, playbook, tmp_path):
    """A Python without hvac gets Ansible's missing_required_lib message, not a traceback."""
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    msg = _fail_msg(playbook, {"url": bao.url, "token": bao.token},
                    extra_args=["-e", "ansible_python_interpreter=%s" % (venv / "bin" / "python")])
    assert "Failed to import the required Python library (hvac)" in msg
