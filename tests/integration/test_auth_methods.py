"""Every auth method logs in against the real OpenBao server, through a real module run."""

import os
import uuid

import pytest

from harness import certs
from harness.playbook import module_play

ADMIN_POLICY = 'path "sys/policies/acl/*" { capabilities = ["create", "read", "update", "delete"] }'


def _apply(playbook, bao, auth, env=None, url=None):
    """Apply a fresh policy with ``auth`` options; return (run, policy name)."""
    name = "auth-" + uuid.uuid4().hex[:8]
    args = dict(auth, name=name, policy='path "pki/cert/ca" { capabilities = ["read"] }')
    if url is not False:
        args["url"] = url or bao.url
    return playbook(module_play("vault_policy", args), env=env), name


def _created(bao, name):
    return "pki/cert/ca" in bao.api("GET", "sys/policies/acl/" + name)["data"]["policy"]


@pytest.fixture(scope="module")
def admin_policy(bao):
    bao.api("PUT", "sys/policies/acl/meshpki-admin", {"policy": ADMIN_POLICY})
    return "meshpki-admin"


def test_token_from_option(bao, playbook):
    run, name = _apply(playbook, bao, {"token": bao.token})
    assert run.rc == 0, run
    assert _created(bao, name)


def test_token_and_address_from_environment(bao, playbook):
    """VAULT_TOKEN and BAO_ADDR are read when the module runs (no url or token option)."""
    run, name = _apply(playbook, bao, {}, env={"BAO_ADDR": bao.url, "VAULT_TOKEN": bao.token}, url=False)
    assert run.rc == 0, run
    assert _created(bao, name)


def test_token_from_vault_token_file(bao, playbook, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".vault-token").write_text(bao.token + "\n")
    run, name = _apply(playbook, bao, {}, env={"HOME": str(home)})
    assert run.rc == 0, run
    assert _created(bao, name)


def test_no_token_anywhere_is_a_clear_error(bao, playbook, tmp_path):
    run, _name = _apply(playbook, bao, {}, env={"HOME": str(tmp_path)})
    assert run.rc != 0
    assert "auth_method 'token' needs a token" in run.task("task")["result"]["msg"]


def test_approle(bao, playbook, admin_policy):
    mount = "approle-" + uuid.uuid4().hex[:6]
    bao.api("POST", "sys/auth/" + mount, {"type": "approle"})
    bao.api("POST", "auth/%s/role/ansible" % mount, {"token_policies": [admin_policy]})
    role_id = bao.api("GET", "auth/%s/role/ansible/role-id" % mount)["data"]["role_id"]
    secret_id = bao.api("POST", "auth/%s/role/ansible/secret-id" % mount)["data"]["secret_id"]
    run, name = _apply(playbook, bao, {"auth_method": "approle", "auth_mount": mount, "role_id": role_id,
                                       "secret_id": secret_id}, env={"ANSIBLE_VERBOSITY": "4"})
    assert run.rc == 0, run
    assert _created(bao, name)
    assert secret_id not in run.output  # no_log, even at -vvvv
    # From the environment, as an AWX credential injects them
    run, name = _apply(playbook, bao, {"auth_mount": mount},
                       env={"VAULT_AUTH_METHOD": "approle", "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id})
    assert run.rc == 0, run
    assert _created(bao, name)
    # A wrong secret_id is refused with Vault's reason and the login path
    run, _name = _apply(playbook, bao, {"auth_method": "approle", "auth_mount": mount, "role_id": role_id,
                                        "secret_id": str(uuid.uuid4())})
    msg = run.task("task")["result"]["msg"]
    assert "Failed to log in with approle auth 'auth/%s/login'" % mount in msg
    assert "invalid" in msg.lower()


def test_userpass(bao, playbook, admin_policy):
    bao.api("POST", "sys/auth/userpass", {"type": "userpass"})
    bao.api("POST", "auth/userpass/users/ops", {"password": "pw-" + "x" * 12, "token_policies": [admin_policy]})
    run, name = _apply(playbook, bao, {"auth_method": "userpass", "username": "ops", "password": "pw-" + "x" * 12})
    assert run.rc == 0, run
    assert _created(bao, name)
    run, _name = _apply(playbook, bao, {"auth_method": "userpass", "username": "ops", "password": "wrong-password"})
    assert run.rc != 0
    assert "Failed to log in with userpass auth 'auth/userpass/login/ops'" in run.task("task")["result"]["msg"]


def test_cert_over_tls_with_a_client_certificate(bao_tls, playbook, tmp_path):
    """Vault verifies the client certificate against the CA registered in the cert role."""
    bao_tls.api("PUT", "sys/policies/acl/meshpki-admin", {"policy": ADMIN_POLICY})
    bao_tls.api("POST", "sys/auth/cert", {"type": "cert"})
    bao_tls.api("POST", "auth/cert/certs/ansible",
                {"certificate": bao_tls.ca.cert_pem, "token_policies": ["meshpki-admin"]})
    client = certs.make_client_cert(bao_tls.ca, "ansible")
    cert_file, key_file = client.write(tmp_path, "client")
    auth = {"auth_method": "cert", "ca_cert": bao_tls.ca_file, "client_cert": cert_file, "client_key": key_file}
    run, name = _apply(playbook, bao_tls, dict(auth, role_id="ansible"))
    assert run.rc == 0, run
    assert _created(bao_tls, name)
    # Without a role name Vault tries every certificate role
    run, name = _apply(playbook, bao_tls, auth)
    assert run.rc == 0, run
    # A certificate from another CA is refused
    other = certs.make_client_cert(certs.make_ca("someone else"), "intruder")
    other_cert, other_key = other.write(tmp_path, "other")
    run, _name = _apply(playbook, bao_tls, dict(auth, client_cert=other_cert, client_key=other_key))
    assert run.rc != 0
    assert "Failed to log in with cert auth 'auth/cert/login'" in run.task("task")["result"]["msg"]


def test_cert_needs_a_client_certificate(bao_tls, playbook):
    run, _name = _apply(playbook, bao_tls, {"auth_method": "cert", "ca_cert": bao_tls.ca_file})
    assert run.rc != 0
    assert "auth_method 'cert' needs client_cert and client_key" in run.task("task")["result"]["msg"]


def test_unknown_auth_method_from_environment(bao, playbook):
    run, _name = _apply(playbook, bao, {}, env={"VAULT_AUTH_METHOD": "ldap"})
    assert run.rc != 0
    assert "Unknown auth method 'ldap'" in run.task("task")["result"]["msg"]


def test_kubernetes_jwt_file_missing(bao, playbook, tmp_path):
    missing = os.path.join(str(tmp_path), "no-token")
    run, _name = _apply(playbook, bao, {"auth_method": "kubernetes", "role_id": "istiod", "jwt_file": missing})
    assert run.rc != 0
    assert "needs a service-account JWT: set jwt, or jwt_file to a readable token file" in \
        run.task("task")["result"]["msg"]


def test_vault_login_once_then_reuse_and_revoke(bao, playbook, admin_policy, tmp_path):
    """vault_login logs in once; later tasks use the token; state=absent revokes it. The token
    never reaches the output even at -vvvv (no_log on the task)."""
    mount = "approle-" + uuid.uuid4().hex[:6]
    bao.api("POST", "sys/auth/" + mount, {"type": "approle"})
    bao.api("POST", "auth/%s/role/ansible" % mount, {"token_policies": [admin_policy]})
    role_id = bao.api("GET", "auth/%s/role/ansible/role-id" % mount)["data"]["role_id"]
    secret_id = bao.api("POST", "auth/%s/role/ansible/secret-id" % mount)["data"]["secret_id"]
    name = "login-" + uuid.uuid4().hex[:6]
    conn = {"url": bao.url}
    login = dict(conn, auth_method="approle", auth_mount=mount, role_id=role_id, secret_id=secret_id)
    policy = dict(conn, token="{{ session.token }}", name=name, policy='path "a" { capabilities = ["read"] }')
    revoke = dict(conn, token="{{ session.token }}", state="absent")
    save = {"content": "{{ session.token }}", "dest": "{{ playbook_dir }}/token.txt"}
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "login", "meshpki.vault_ca.vault_login": login, "register": "session", "no_log": True},
        {"name": "policy", "meshpki.vault_ca.vault_policy": policy},
        {"name": "write token", "ansible.builtin.copy": save, "no_log": True},
        {"name": "revoke", "meshpki.vault_ca.vault_login": revoke},
        {"name": "revoke again", "meshpki.vault_ca.vault_login": revoke},
    ]}]
    mark = bao.audit.mark()
    run = playbook(play, verbosity=4)
    assert run.rc == 0, run
    logins = [r for r in bao.audit.requests(since=mark) if r[1] == "auth/%s/login" % mount]
    assert len(logins) == 1  # one login for the whole play
    assert run.task("policy")["status"] == "changed"
    assert run.task("revoke")["status"] == "changed" and run.task("revoke again")["status"] == "ok"
    token = (tmp_path / "token.txt").read_text()
    assert len(token) > 20 and token not in run.output  # never printed, even at -vvvv
    with pytest.raises(Exception) as denied:
        bao.api("GET", "auth/token/lookup-self", token=token)
    assert "403" in str(denied.value)  # revoked
