"""A URL with the wrong scheme for the listener (issue 15, point 5): the error points at the URL scheme, in
both directions, and mentions a CA only when the certificate is the problem. Real OpenBao with a TLS listener
beside its plain one; the modules run through ansible-playbook (a token module and a login)."""

import uuid

import pytest

from harness.playbook import module_play

POLICY = 'path "pki/cert/ca" { capabilities = ["read"] }'
CA_WORDS = ("ca_cert", "VAULT_CACERT", "CA file", "trust store", "validate_certs")


def _host_port(url):
    return url.split("://", 1)[1]


def _fail_msg(playbook, module, args):
    run = playbook(module_play(module, dict(args, retries=0)))
    assert run.rc != 0, run
    return run.task("task")["result"]["msg"]


def _policy_args(url, token):
    return {"url": url, "token": token, "name": "scheme-" + uuid.uuid4().hex[:8], "policy": POLICY}


def _login_args(url):
    return {"url": url, "auth_method": "approle", "role_id": "role-" + uuid.uuid4().hex,
            "secret_id": "secret-" + uuid.uuid4().hex}


@pytest.mark.parametrize("module", ["vault_policy", "vault_login"])
def test_http_url_to_the_tls_listener_points_at_the_scheme(bao_tls, playbook, module):
    http_url = "http://" + _host_port(bao_tls.tls_url)
    args = _policy_args(http_url, bao_tls.token) if module == "vault_policy" else _login_args(http_url)
    msg = _fail_msg(playbook, module, args)
    assert "%s serves TLS; use an https:// URL" % bao_tls.tls_url in msg, msg
    assert "The URL scheme is wrong: url (or VAULT_ADDR) is %s - change http:// to https://" % http_url in msg, msg
    assert not [word for word in CA_WORDS if word in msg], msg


@pytest.mark.parametrize("module", ["vault_policy", "vault_login"])
def test_https_url_to_the_plain_listener_points_at_the_scheme_not_the_ca(bao_tls, playbook, module):
    https_url = "https://" + _host_port(bao_tls.http_url)
    for extra in ({}, {"ca_cert": bao_tls.ca_file}):  # with or without a CA: the CA is not the problem
        args = _policy_args(https_url, bao_tls.token) if module == "vault_policy" else _login_args(https_url)
        msg = _fail_msg(playbook, module, dict(args, **extra))
        assert "%s does not speak TLS: the server answered the TLS handshake in plain HTTP" % https_url in msg, msg
        assert ("The URL scheme is wrong, not the CA: use an http:// URL (%s) in url (or VAULT_ADDR)"
                % bao_tls.http_url) in msg, msg
        assert "TLS verification" not in msg and not [word for word in CA_WORDS if word in msg], msg

    if module == "vault_policy":  # the TLS listener with no CA given is a certificate problem, and says so
        msg = _fail_msg(playbook, module, _policy_args(bao_tls.tls_url, bao_tls.token))
        assert "TLS verification of %s failed using the system trust store" % bao_tls.tls_url in msg, msg
        assert "does not speak TLS" not in msg and "URL scheme" not in msg, msg
