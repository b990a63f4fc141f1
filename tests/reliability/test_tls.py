"""TLS against OpenBao's TLS listener (its own CA): ca_cert (option or VAULT_CACERT) succeeds; a wrong CA
fails naming the CA file; no CA names the system trust store; validate_certs: false (or VAULT_SKIP_VERIFY)
works with a warning; plain HTTP to the TLS port says to use https, https to the plain port says to use http
(both name the URL scheme, neither the CA). One playbook, one block per check.
(The whole role over TLS with ca_cert is run by the least-privilege test.)"""

import uuid

import pytest

from harness import certs
from harness.openbao import OpenBaoServer

pytestmark = pytest.mark.reliability_fast

POLICY = 'path "pki/cert/ca" { capabilities = ["read"] }'


def test_tls_checks(tmp_path, ansible, report):
    bao = OpenBaoServer(tmp_path / "bao-tls", tls=True, audit=True).start()
    try:
        _checks(bao, tmp_path, ansible, report)
    finally:
        bao.stop()


def _checks(bao, tmp_path, ansible, report):
    wrong_ca = certs.make_ca("not the Vault CA").write(str(tmp_path), "wrong-ca")[0]
    http_url = "http://" + bao.tls_url.split("//", 1)[1]
    base = {"url": bao.tls_url, "token": bao.token, "retries": 0, "policy": POLICY}
    # name -> (args, env, expected: "ok" / "ok+warning" / error substring)
    checks = [
        ("ca_cert option", dict(base, ca_cert=bao.ca_file), {}, "ok"),
        ("VAULT_CACERT", base, {"VAULT_CACERT": bao.ca_file}, "ok"),
        ("wrong CA", dict(base, ca_cert=wrong_ca), {},
         "TLS verification of %s failed using CA file '%s'" % (bao.tls_url, wrong_ca)),
        ("wrong CA in VAULT_CACERT", base, {"VAULT_CACERT": wrong_ca},
         "failed using CA file '%s'" % wrong_ca),
        ("no CA (system trust store)", base, {},
         "TLS verification of %s failed using the system trust store" % bao.tls_url),
        ("validate_certs: false", dict(base, validate_certs=False), {}, "ok+warning"),
        ("VAULT_SKIP_VERIFY", base, {"VAULT_SKIP_VERIFY": "true"}, "ok+warning"),
        ("plain HTTP to the TLS port", dict(base, url=http_url), {},
         "%s serves TLS; use an https:// URL. The URL scheme is wrong" % bao.tls_url),
        ("https to the plain HTTP port", dict(base, url="https://" + bao.http_url.split("//", 1)[1]), {},
         "does not speak TLS: the server answered the TLS handshake in plain HTTP (OpenSSL: wrong version number). "
         "The URL scheme is wrong, not the CA: use an http:// URL (%s)" % bao.http_url),
        ("ca_cert file missing", dict(base, ca_cert=str(tmp_path / "nope.pem")), {},
         "The CA certificate file '%s' (ca_cert or VAULT_CACERT) does not exist" % (tmp_path / "nope.pem")),
    ]
    tasks = []
    for i, (_name, args, env, _expected) in enumerate(checks):
        task = {"name": "check %d" % i, "meshpki.vault_ca.vault_policy": dict(args, name="tls-%d-%s" % (
            i, uuid.uuid4().hex[:6]))}
        if env:
            task["environment"] = env
        tasks.append({"name": "block %d" % i, "block": [task], "rescue": [
            {"name": "failure %d" % i, "ansible.builtin.debug": {"var": "ansible_failed_result"}}]})
    run = ansible.run([{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}])
    assert run.rc == 0, run

    problems = []
    held = 0
    for i, (name, _args, _env, expected) in enumerate(checks):
        failure = [r for r in run.results if r["task"] == "failure %d" % i]
        direct = [r for r in run.results if r["task"] == "check %d" % i]
        if expected.startswith("ok"):
            result = direct[-1]["result"] if direct else {}
            good = bool(direct) and direct[-1]["status"] in ("ok", "changed")
            warned = any("certificate verification of %s is disabled" % bao.tls_url in w
                         for w in result.get("warnings") or [])
            if expected == "ok+warning":
                good = good and warned
            shown = "%s%s" % (direct[-1]["status"] if direct else "missing", ", warned" if warned else "")
        else:
            msg = (failure[-1]["result"].get("ansible_failed_result") or {}).get("msg", "") if failure else ""
            good = expected in msg
            shown = msg or "(no error)"
        held += int(good)
        if not good:
            problems.append("%s: expected %r, got %r" % (name, expected, shown))
        report.detail("TLS", check=name, must=expected, shown=shown[:250], held=good)
    report.metric("tls", checks=len(checks), held=held)
    assert not problems, "\n".join(problems)
