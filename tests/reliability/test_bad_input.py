"""Bad input: every module and the role, each case with the exact error it must show and proof that
nothing was written.

Each group is ONE real ``ansible-playbook`` run: every case is a block whose rescue records
``ansible_failed_result``, so one run tries them all. Every case that reaches Vault uses a token of its
own (display name ``case-<id>``): the audit log attributes each request to its case. Proof of "nothing
written", per group: no successful write (create/update/delete, logins aside) in the audit log of any
server the group used, and no write request (POST/PUT/PATCH/DELETE, TokenReviews aside) to any fake
Kubernetes API; per case: no successful write with its token. A write that Vault itself refused
(a policy Vault fails to parse) is reported in the table as "refused by Vault": it stored nothing.

A few cases are not errors: ``state: absent`` on something never created must succeed, change nothing,
and write nothing (``expect`` is ``None`` for them).
"""

import json
import time
import uuid

import pytest
from relharness import Cluster, new_token

from harness import certs
from harness.audit import WRITE_OPERATIONS, is_login
from harness.openbao import OpenBaoServer, free_port
from harness.playbook import role_play

pytestmark = pytest.mark.reliability_fast

OK_NOT_CHANGED = None  # expected outcome of the cases that must succeed without a change
GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


class Case(object):
    """One bad input. ``module`` is a module's short name or 'role'; ``expect`` the substring the error
    must contain (None: must succeed, unchanged); ``token`` 'case' (a token of its own), 'none' (the
    args carry their own credentials) or a literal; ``conn`` the connection args (url, ca_cert...); ``check``
    runs the case in check mode (it must fail there too: a failure-to-be, not 'changed')."""

    def __init__(self, cid, module, args, expect, why, env=None, token="case", conn="main", check=False):
        self.check = check
        self.cid = cid
        self.module = module
        self.args = args
        self.expect = expect
        self.why = why
        self.env = env or {}
        self.token = token
        self.conn = conn


class Group(object):
    """Servers, clusters and names one group of cases runs against."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.s = uuid.uuid4().hex[:6]
        self.servers = []
        self.clusters = []
        self.tokens = {}

    def bao(self, **kwargs):
        server = OpenBaoServer(self.tmp / ("bao-%d" % len(self.servers)), audit=True, **kwargs).start()
        self.servers.append(server)
        return server

    def cluster(self, **kwargs):
        fake = Cluster(self.tmp / ("k8s-%d" % len(self.clusters)), **kwargs)
        self.clusters.append(fake)
        return fake

    def stop(self):
        for server in self.servers:
            server.stop()
        for fake in self.clusters:
            fake.stop()

    def marks(self):
        return ([(s, s.audit.mark()) for s in self.servers if s.audit],
                [(c, c.mark()) for c in self.clusters])


def _playbook(cases, connections, group):
    tasks = []
    for case in cases:
        if case.module == "role":
            call = {"name": "case %s" % case.cid,
                    "ansible.builtin.include_role": {"name": "meshpki.vault_ca.istio_vault_ca"},
                    "vars": case.args}
        else:
            args = dict(case.args)
            if case.conn is not None:
                args.update(connections[case.conn])
            if case.token == "case":
                args["token"] = group.tokens[case.cid]
            elif case.token not in (None, "none"):
                args["token"] = case.token
            call = {"name": "case %s" % case.cid, "meshpki.vault_ca." + case.module: args}
        if case.env:
            call["environment"] = case.env
        if case.check:
            call["check_mode"] = True
        tasks.append({"name": "block %s" % case.cid, "block": [call], "rescue": [
            {"name": "failure %s" % case.cid, "ansible.builtin.debug": {"var": "ansible_failed_result"}}]})
    return [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}]


def _case_outcome(run, case):
    """('failed', msg) | ('ok'|'changed', result) for one case."""
    failure = [r for r in run.results if r["task"] == "failure %s" % case.cid]
    if failure:
        result = failure[-1]["result"].get("ansible_failed_result") or {}
        return "failed", result.get("msg") or json.dumps(result)[:500]
    direct = [r for r in run.results if r["task"] == "case %s" % case.cid]
    if direct:
        return direct[-1]["status"], direct[-1]["result"]
    return "missing", None


# istio_ca_verify's read_with_policy (the role's verify step) creates a 60 s token with 4 uses to read as
# istiod would: a credential that expires, not a change to the CA or its configuration. Not counted.
VERIFY_TOKEN = "token-meshpki-istio-ca-verify"


def _audit_by_case(server, since):
    """{display name: [(kind, op, path, error)]} of the requests and responses after ``since``, without the
    verification's short-lived read token (request and response)."""
    found = {}
    entries = server.audit.entries(since)
    verify_ids = set(e["request"].get("id") for e in entries if e.get("type") == "response"
                     and ((e.get("response") or {}).get("auth") or {}).get("display_name") == VERIFY_TOKEN)
    for entry in entries:
        auth = entry.get("auth") or {}
        request = entry.get("request") or {}
        if request.get("id") in verify_ids:
            continue
        name = auth.get("display_name") or ""
        found.setdefault(name, []).append((entry.get("type"), request.get("operation"), request.get("path"),
                                           entry.get("error")))
    return found


def run_group(name, cases, connections, group, ansible, report):
    """Run ``cases`` in one playbook; check each outcome, and that nothing was written."""
    assert len(set(c.cid for c in cases)) == len(cases)
    for case in cases:
        if case.token == "case":
            server = connections[case.conn]["_server"]
            group.tokens[case.cid] = new_token(server, [], display_name="case-%s" % case.cid)
    clean = dict((k, dict((a, b) for a, b in v.items() if not a.startswith("_"))) for k, v in connections.items())
    audit_marks, k8s_marks = group.marks()
    run = ansible.run(_playbook(cases, clean, group))
    assert run.rc == 0, run  # every failure was rescued: a non-zero rc is a crash of the harness

    vault_writes = []
    per_case_attempts = {}
    per_case_writes = {}
    for server, mark in audit_marks:
        by_case = _audit_by_case(server, mark)
        for display, entries in by_case.items():
            cid = display[len("token-case-"):] if display.startswith("token-case-") else None
            for kind, op, path, error in entries:
                if op not in WRITE_OPERATIONS or is_login(path):
                    continue
                if kind == "response" and not error:
                    vault_writes.append((display, op, path))
                    if cid:
                        per_case_writes.setdefault(cid, []).append((op, path))
                if kind == "request" and cid:
                    per_case_attempts.setdefault(cid, []).append((op, path))
    k8s_writes = []
    for fake, mark in k8s_marks:
        k8s_writes += [(w["method"], w["path"]) for w in fake.writes(mark)]

    problems = []
    clear = 0
    for case in cases:
        status, outcome = _case_outcome(run, case)
        attempts = per_case_attempts.get(case.cid, [])
        written = per_case_writes.get(case.cid, [])
        if case.expect is OK_NOT_CHANGED:
            good = status == "ok"
            shown = "ok, changed=false" if good else "%s: %s" % (status, str(outcome)[:200])
        else:
            good = status == "failed" and case.expect in (outcome or "")
            shown = outcome if status == "failed" else "%s (no error)" % status
        clear += int(good)
        if not good or written:
            problems.append("case %s (%s): expected %r, got %s %r; writes %s"
                            % (case.cid, case.why, case.expect, status, outcome, written))
        report.detail("Bad input", case=case.cid, module=case.module, input=case.why,
                      must_show=case.expect if case.expect is not None else "(succeeds, changed=false)",
                      shown=(shown or "")[:300], writes=len(written),
                      refused_by_vault=len(attempts) - len(written), ok=good and not written)
    writes = len(vault_writes) + len(k8s_writes)
    report.metric("bad_input", tried=len(cases), clear=clear, writes=writes)
    assert not problems, "\n".join(problems)
    assert not vault_writes, vault_writes
    assert not k8s_writes, k8s_writes
    return run


# ----------------------------------------------------------------------------------------- groups
@pytest.fixture
def group(tmp_path):
    g = Group(tmp_path)
    yield g
    g.stop()


def _root(bao, mount, ttl="8760h", common_name="tetrate.io"):
    bao.api("POST", "sys/mounts/" + mount, {"type": "pki", "config": {"max_lease_ttl": ttl}})
    bao.api("POST", mount + "/root/generate/internal", {"common_name": common_name, "ttl": ttl})


def test_pki_policy_audit_modules(group, ansible, report):
    """vault_pki_root, vault_pki_intermediate, vault_policy, vault_audit."""
    bao = group.bao()
    s = group.s
    root = "pki-" + s
    _root(bao, root)
    bao.api("POST", "sys/mounts/kv1-" + s, {"type": "kv", "options": {"version": "1"}})
    bao.api("POST", "sys/mounts/kv2-" + s, {"type": "kv", "options": {"version": "2"}})
    existing = "pki-existing-" + s
    _root(bao, existing, common_name="someone else's root")
    ext_key = certs.make_ca("external")
    int_args = {"mount": "istioca-" + s, "root_mount": root, "kv_path": "istioca-" + s,
                "common_name": "tetrate.io Intermediate Authority", "ttl": "4380h"}
    cases = [
        Case("root-duration", "vault_pki_root", {"mount": "pki-new-" + s, "common_name": "x", "ttl": "10 years"},
             "ttl '10 years' is not a duration: use a number of seconds or units such as '8760h'", "invalid duration"),
        Case("root-rsa1024", "vault_pki_root", {"mount": "pki-new-" + s, "common_name": "x", "key_bits": 1024},
             "key_bits 1024 is not valid with key_type rsa: RSA keys for an Istio CA must have 2048, 3072 or 4096 "
             "bits", "RSA 1024, a key size Istio rejects"),
        Case("root-ec521", "vault_pki_root", {"mount": "pki-new-" + s, "common_name": "x", "key_type": "ec",
                                              "key_bits": 521},
             "EC keys for an Istio CA must be P-256 (256) or P-384 (384)", "EC P-521, a curve Istio rejects"),
        Case("root-empty-cn", "vault_pki_root", {"mount": "pki-new-" + s, "common_name": ""},
             "common_name must not be empty: the CA certificate needs a subject", "empty subject"),
        Case("root-bad-pem", "vault_pki_root", {"mount": "pki-new-" + s, "pem_bundle": GARBAGE_PEM},
             "pem_bundle does not parse: CERTIFICATE block #1 does not parse", "malformed PEM bundle"),
        Case("root-differs", "vault_pki_root", {"mount": existing, "common_name": "tetrate.io", "ttl": "8760h"},
             "already has a different root CA", "a different root exists (no force)"),
        Case("root-on-kv", "vault_pki_root", {"mount": "kv2-" + s, "common_name": "tetrate.io"},
             "The mount 'kv2-%s' is a kv v2 secrets engine, but a pki engine is needed there" % s,
             "mount path collision: KV where PKI is expected"),
        Case("int-ttl-above-root", "vault_pki_intermediate", dict(int_args, ttl="9000h"),
             "ttl 9000h (1.0 years) does not fit under the root: the root mount '%s' signs for at most 8760h" % root,
             "TTL above the root's"),
        Case("int-duration", "vault_pki_intermediate", dict(int_args, ttl="forever"),
             "ttl 'forever' is not a duration", "invalid duration"),
        Case("int-rsa1024", "vault_pki_intermediate", dict(int_args, key_bits=1024),
             "RSA keys for an Istio CA must have 2048, 3072 or 4096 bits", "RSA 1024"),
        Case("int-kv-v1", "vault_pki_intermediate", dict(int_args, kv_mount="kv1-" + s),
             "The mount 'kv1-%s' is a kv v1 secrets engine, but a kv v2 engine is needed there" % s,
             "KV v1 mount where KV v2 is expected"),
        Case("int-same-mount", "vault_pki_intermediate", dict(int_args, mount=root),
             "mount and root_mount are both '%s'" % root, "intermediate in the root's mount"),
        Case("int-renew-before", "vault_pki_intermediate", dict(int_args, renew_before="5000h"),
             "renew_before 5000h (208.3 days) must be shorter than ttl 4380h (182.5 days)",
             "renew_before longer than ttl"),
        Case("int-no-root", "vault_pki_intermediate", dict(int_args, root_mount="nothere-" + s),
             "The root mount 'nothere-%s' does not exist: create the root CA first" % s, "root mount missing"),
        Case("int-reserved-field", "vault_pki_intermediate", dict(int_args, kv_field="key_id"),
             "kv_field 'key_id' is reserved", "reserved KV field"),
        Case("int-empty-cn", "vault_pki_intermediate", dict(int_args, common_name=""),
             "common_name must not be empty: the CA certificate needs a subject", "empty subject"),
        Case("int-cert-internal", "vault_pki_intermediate", dict(int_args, certificate=ext_key.cert_pem),
             "certificate and ca_chain are only used with signing: external", "certificate with internal signing"),
        Case("int-bad-pem", "vault_pki_intermediate", dict(int_args, signing="external", certificate=GARBAGE_PEM),
             "certificate does not parse: CERTIFICATE block #1 does not parse", "malformed PEM certificate"),
        Case("policy-hcl", "vault_policy", {"name": "p-" + s, "policy": 'path "secret/*" { capabilities = ['},
             "Vault rejected the request (400): failed to parse policy: At 2:1: unexpected token",
             "policy HCL syntax error (Vault validates it, stores nothing)"),
        Case("policy-capability", "vault_policy",
             {"name": "p-" + s, "rules": [{"path": "secret/x", "capabilities": ["write"]}]},
             'invalid capability "write"', "unknown capability (Vault validates it, stores nothing)"),
        Case("policy-root", "vault_policy", {"name": "root", "policy": 'path "x" { capabilities = ["read"] }'},
             "Refusing to manage the built-in 'root' policy", "the built-in root policy"),
        Case("policy-absent", "vault_policy", {"name": "never-" + s, "state": "absent"},
             OK_NOT_CHANGED, "state: absent on a policy never created"),
        Case("audit-no-path", "vault_audit", {"device_type": "file", "path": "f-" + s, "options": {}},
             "A file audit device needs options.file_path (for example file_path: /vault/vault-audit.log). Nothing "
             "was changed.", "file audit device without file_path"),
        Case("audit-bad-type", "vault_audit", {"device_type": "kafka", "options": {"file_path": "/tmp/x"}},
             "value of device_type must be one of: file, socket, syslog", "unknown audit device type"),
    ]
    run_group("pki", cases, {"main": {"url": bao.url, "_server": bao}}, group, ansible, report)


def test_auth_and_kubernetes_modules(group, ansible, report):
    """vault_login, vault_k8s_auth, vault_k8s_role, tsb_controlplane_annotations, istio_ca_verify."""
    bao = group.bao()
    s = group.s
    fake = group.cluster()
    bare = group.cluster(crds=False)
    bao.api("POST", "sys/auth/approle-" + s, {"type": "approle"})
    bao.api("POST", "auth/approle-%s/role/r" % s, {"token_policies": ["default"]})
    role_id = bao.api("GET", "auth/approle-%s/role/r/role-id" % s)["data"]["role_id"]
    bao.api("POST", "sys/auth/userpass-" + s, {"type": "userpass"})
    bao.api("POST", "auth/userpass-%s/users/u" % s, {"password": "right-" + s})
    bao.api("POST", "sys/auth/k8s-" + s, {"type": "kubernetes"})
    bao.api("POST", "auth/k8s-%s/config" % s, {"kubernetes_host": fake.api.url, "kubernetes_ca_cert": fake.api.ca_pem,
                                               "disable_local_ca_jwt": True})
    k8s = {"mount": "k8s-" + s, "kubeconfig": fake.kubeconfig}
    cp = {"target": "tsb_controlplane", "name": "controlplane", "namespace": "tsb", "kubeconfig": fake.kubeconfig}
    cases = [
        Case("login-bad-secret-id", "vault_login",
             {"auth_method": "approle", "auth_mount": "approle-" + s, "role_id": role_id, "secret_id": "wrong"},
             "Failed to log in with approle auth 'auth/approle-%s/login': Vault rejected the request (400): "
             "invalid role or secret ID" % s, "wrong approle secret_id", token="none"),
        Case("login-no-role-id", "vault_login", {"auth_method": "approle", "auth_mount": "approle-" + s,
                                                 "secret_id": "x"},
             "auth_method 'approle' needs the role_id option or VAULT_ROLE_ID", "approle without role_id",
             token="none"),
        Case("login-userpass", "vault_login", {"auth_method": "userpass", "auth_mount": "userpass-" + s,
                                               "username": "u", "password": "wrong"},
             "Failed to log in with userpass auth 'auth/userpass-%s/login/u': Vault rejected the request (400): "
             "invalid username or password" % s, "wrong password", token="none"),
        Case("login-unknown-method", "vault_login", {"auth_method": "kerberos"},
             "value of auth_method must be one of: approle, cert, kubernetes, token, userpass",
             "unknown auth method (option)", token="none"),
        Case("login-unknown-env", "vault_login", {}, "Unknown auth method 'kerberos' (from VAULT_AUTH_METHOD)",
             "unknown auth method (VAULT_AUTH_METHOD)", env={"VAULT_AUTH_METHOD": "kerberos"}, token="none"),
        Case("k8s-auth-context", "vault_k8s_auth", dict(k8s, context="nope"),
             "Unknown context 'nope' in the kubeconfig '%s' (contexts: fake)" % fake.kubeconfig,
             "wrong kubeconfig context"),
        Case("k8s-auth-kubeconfig", "vault_k8s_auth", dict(k8s, kubeconfig=str(group.tmp / "missing.yaml")),
             "Cannot read the kubeconfig '%s' (No such file or directory)" % (group.tmp / "missing.yaml"),
             "kubeconfig file missing"),
        Case("k8s-auth-bad-ca", "vault_k8s_auth", dict(k8s, kubernetes_host=fake.api.url,
                                                       kubernetes_ca_cert=GARBAGE_PEM),
             "kubernetes_ca_cert holds a CERTIFICATE block that does not parse", "malformed CA PEM"),
        Case("k8s-auth-collision", "vault_k8s_auth", dict(k8s, mount="approle-" + s),
             "The auth mount 'approle-%s' is a approle auth method, but kubernetes is needed there" % s,
             "auth mount collision (approle where kubernetes is expected)"),
        Case("k8s-auth-host", "vault_k8s_auth", dict(k8s, kubernetes_host="not a url"),
             "kubernetes_host 'not a url' is not a URL: Vault posts TokenReviews to", "kubernetes_host is not a URL"),
        Case("k8s-auth-reviewer-jwt", "vault_k8s_auth", dict(k8s, token_reviewer_jwt="eyJ-" + uuid.uuid4().hex,
                                                             token_reviewer={"create": True}),
             "parameters are mutually exclusive: token_reviewer_jwt|token_reviewer",
             "token_reviewer_jwt and token_reviewer together"),
        Case("k8s-role-period", "vault_k8s_role", {"mount": "k8s-" + s, "name": "istiod",
                                                   "bound_service_account_names": ["istiod"],
                                                   "bound_service_account_namespaces": ["istio-system"],
                                                   "token_period": "10 minutes"},
             "token_period '10 minutes' is not a duration", "invalid duration"),
        Case("k8s-role-no-mount", "vault_k8s_role", {"mount": "nomount-" + s, "name": "istiod",
                                                     "bound_service_account_names": ["istiod"],
                                                     "bound_service_account_namespaces": ["istio-system"]},
             "no Kubernetes auth method is enabled at 'auth/nomount-%s' - enable it first" % s,
             "auth mount missing"),
        Case("k8s-role-no-names", "vault_k8s_role", {"mount": "k8s-" + s, "name": "istiod",
                                                     "bound_service_account_names": [],
                                                     "bound_service_account_namespaces": ["istio-system"]},
             "a new role needs bound_service_account_names (nothing was changed)", "no bound service account"),
        Case("k8s-role-token-type", "vault_k8s_role", {"mount": "k8s-" + s, "name": "istiod",
                                                       "bound_service_account_names": ["istiod"],
                                                       "bound_service_account_namespaces": ["istio-system"],
                                                       "token_type": "forever"},
             "value of token_type must be one of", "unknown token_type"),
        Case("k8s-role-absent", "vault_k8s_role", {"mount": "k8s-" + s, "name": "never-" + s, "state": "absent"},
             OK_NOT_CHANGED, "state: absent on a role never created"),
        Case("cp-missing", "tsb_controlplane_annotations", dict(cp, name="nothere"),
             "Failed to read ControlPlane 'tsb/nothere' (install.tetrate.io/v1alpha1, resource "
             "controlplanes.install.tetrate.io): not found",
             "ControlPlane missing", conn=None, token=None),
        Case("cp-no-crd", "tsb_controlplane_annotations", dict(cp, kubeconfig=bare.kubeconfig),
             "the API server does not serve this resource type - is its CRD installed?",
             "ControlPlane CRD not installed", conn=None, token=None),
        Case("cp-context", "tsb_controlplane_annotations", dict(cp, context="nope"),
             "Unknown context 'nope' in the kubeconfig '%s' (contexts: fake)" % fake.kubeconfig,
             "wrong kubeconfig context", conn=None, token=None),
        Case("cp-relative-path", "tsb_controlplane_annotations", dict(cp, secret_volume_path="etc/cacerts"),
             "secret_volume_path 'etc/cacerts' must be an absolute path", "relative secret_volume_path", conn=None,
             token=None),
        Case("cp-no-name", "tsb_controlplane_annotations", {"target": "tsb_controlplane", "kubeconfig":
                                                            fake.kubeconfig},
             "Live mode needs name and namespace",
             "live mode without name and namespace", conn=None, token=None),
        Case("verify-bad-pem", "istio_ca_verify", {"ca_cert_pem": GARBAGE_PEM, "ca_key_pem": GARBAGE_PEM,
                                                   "cert_chain_pem": GARBAGE_PEM, "root_cert_pem": GARBAGE_PEM},
             "ca_cert_parses: ca-cert.pem: CERTIFICATE block #1 does not parse", "malformed PEM", conn=None,
             token=None),
        Case("verify-no-dir", "istio_ca_verify", {"path": str(group.tmp / "nothere")},
             "Cannot read the CA bundle: cannot list the CA directory '%s'" % (group.tmp / "nothere"),
             "bundle directory missing", conn=None, token=None),
        Case("verify-no-mount", "istio_ca_verify", {"vault_paths": {"intermediate_mount": "noint-" + s,
                                                                    "root_mount": "noroot-" + s,
                                                                    "kv_path": "nokey-" + s}},
             "noint-%s/cert/ca" % s, "vault_paths on mounts that do not exist"),
        Case("verify-same-mounts", "istio_ca_verify", {"vault_paths": {"intermediate_mount": "nothere-" + s,
                                                                       "root_mount": "nothere-" + s}},
             "Invalid vault_paths: intermediate_mount and root_mount are both 'nothere-%s'" % s,
             "vault_paths with the same mount for root and intermediate"),
        Case("verify-policy-missing", "istio_ca_verify", {"vault_paths": {"intermediate_mount": "nothere-" + s},
                                                          "read_with_policy": "nopolicy-" + s},
             "read_with_policy: the policy 'nopolicy-%s' does not exist in Vault" % s,
             "read_with_policy names a policy that does not exist"),
    ]
    run_group("auth-k8s", cases, {"main": {"url": bao.url, "_server": bao}}, group, ansible, report)


def test_connection_failures(group, ansible, report, tmp_path):
    """Wrong token, expired token, sealed Vault, unreachable Vault, TLS with the wrong CA, plain HTTP to TLS."""
    bao = group.bao()
    tls = group.bao(tls=True)
    sealed = OpenBaoServer(group.tmp / "sealed", storage="raft", audit=True).start()
    group.servers.append(sealed)
    sealed.api("PUT", "sys/seal")
    expired = new_token(bao, [], ttl="1s", display_name="expired")
    wrong_ca = certs.make_ca("not the Vault CA").write(str(tmp_path), "wrong-ca")[0]
    dead = "http://127.0.0.1:%d" % free_port()
    probe = {"name": "probe-" + group.s, "policy": 'path "x" { capabilities = ["read"] }', "retries": 0}
    cases = [
        Case("wrong-token", "vault_policy", probe, "or it is invalid or expired", "wrong token",
             token="t-" + uuid.uuid4().hex),
        Case("expired-token", "vault_policy", probe, "or it is invalid or expired", "expired token",
             token=expired),
        Case("sealed", "vault_policy", probe, "is sealed or on standby without forwarding (503", "sealed Vault",
             conn="sealed", token=sealed.token),
        Case("unreachable", "vault_policy", probe, "Vault at %s is unreachable" % dead, "unreachable Vault",
             conn="dead", token="t-x"),
        Case("tls-wrong-ca", "vault_policy", probe, "failed using CA file '%s'" % wrong_ca, "TLS with the wrong CA",
             conn="wrong_ca"),
        Case("http-to-tls", "vault_policy", probe, "serves TLS; use an https:// URL", "plain HTTP to a TLS port",
             conn="http_to_tls"),
        Case("no-scheme", "vault_policy", probe, "must start with http:// or https://", "url without a scheme",
             conn="no_scheme"),
        Case("ca-missing", "vault_policy", probe, "does not exist", "ca_cert file missing", conn="ca_missing"),
        Case("no-address", "vault_policy", probe, "No Vault address: set the url option, or VAULT_ADDR",
             "no url and no VAULT_ADDR", conn=None, token="t-x"),
        Case("pki-root-wrong-token", "vault_pki_root", {"mount": "pki-" + group.s, "common_name": "x",
                                                        "retries": 0}, "or it is invalid or expired",
             "wrong token (vault_pki_root)", token="t-" + uuid.uuid4().hex),
        Case("intermediate-sealed", "vault_pki_intermediate", {"mount": "i-" + group.s, "root_mount": "pki",
                                                               "common_name": "x", "ttl": "1h", "retries": 0},
             "is sealed", "sealed Vault (vault_pki_intermediate)", conn="sealed", token=sealed.token),
    ]
    tls_host = tls.tls_url.split("//")[1]
    connections = {
        "main": {"url": bao.url, "_server": bao},
        "sealed": {"url": sealed.http_url, "_server": sealed},
        "dead": {"url": dead},
        "wrong_ca": {"url": tls.tls_url, "ca_cert": wrong_ca, "_server": tls},
        "http_to_tls": {"url": "http://" + tls_host, "_server": tls},
        "no_scheme": {"url": "127.0.0.1:8200", "_server": bao},
        "ca_missing": {"url": tls.tls_url, "ca_cert": str(tmp_path / "nope.pem"), "_server": tls},
    }
    time.sleep(1.5)  # the 1s token has expired
    for name in ("wrong_ca", "http_to_tls", "ca_missing"):
        connections[name]["_server"] = tls
    run_group("connection", cases, connections, group, ansible, report)


def test_role_bad_input(group, ansible, report):
    """The role: argument specs, and typos on a converged setup that must stop before any write."""
    bao = group.bao()
    fake = group.cluster()
    base = {"istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
            "istio_vault_ca_kubeconfig": fake.kubeconfig,
            "istio_vault_ca_k8s_token_reviewer": {"create": True}}
    first = ansible.run(role_play(base))
    assert first.rc == 0, first

    def role_case(cid, overrides, expect, why):
        token = new_token(bao, [], display_name="case-" + cid)
        role_vars = dict(base, istio_vault_ca_vault={"url": bao.url, "token": token})
        role_vars.update(overrides)
        return Case(cid, "role", role_vars, expect, why, token=None)

    cases = [
        role_case("role-key-type", {"istio_vault_ca_key_type": "dsa"},
                  "value of istio_vault_ca_key_type must be one of: rsa, ec", "unknown key type"),
        role_case("role-key-bits-type", {"istio_vault_ca_key_bits": "many"},
                  "argument 'istio_vault_ca_key_bits' is of type str and we were unable to convert to int",
                  "key_bits not an integer"),
        role_case("role-target", {"istio_vault_ca_target": "gateway"},
                  "value of istio_vault_ca_target must be one of: tsb_controlplane, istio_operator, helm_values",
                  "unknown target"),
        role_case("role-ttl-above-root", {"istio_vault_ca_intermediate_ttl": "9000h"},
                  "istio_vault_ca_intermediate_ttl 9000h must be at most istio_vault_ca_root_ttl 8760h (nothing was "
                  "sent)", "intermediate TTL above the root's (on a converged setup): the role's first checks"),
        role_case("role-rsa1024", {"istio_vault_ca_key_bits": 1024},
                  "value of istio_vault_ca_key_bits must be one of: 256, 384, 2048, 3072, 4096, got: 1024", "RSA 1024"),
        role_case("role-ec-2048", {"istio_vault_ca_key_type": "ec"},
                  "istio_vault_ca_key_bits 2048 does not fit istio_vault_ca_key_type ec: use 256 or 384",
                  "EC key type with the RSA default size"),
        # typos: before issue 15 an unknown istio_vault_ca_* variable was silently ignored (a mistyped manifest
        # path switched the role to live mode)
        role_case("role-typo-manifest", {"istio_vault_ca_manifest_pth": "/tmp/controlplane.yaml"},
                  "istio_vault_ca_manifest_pth is not a variable of this role - did you mean "
                  "istio_vault_ca_manifest_path?", "typo of istio_vault_ca_manifest_path"),
        role_case("role-typo-kv-path", {"istio_vault_ca_kvpath": "clusters/east"},
                  "istio_vault_ca_kvpath is not a variable of this role - did you mean istio_vault_ca_kv_path?",
                  "typo of istio_vault_ca_kv_path"),
        role_case("role-typo-vault-key", {"istio_vault_ca_vault": {"url": bao.url, "tokn": "t-x"}},
                  "istio_vault_ca_vault.tokn. Supported parameters include", "typo of a key of istio_vault_ca_vault"),
        role_case("role-manifest-missing", {"istio_vault_ca_manifest_path": "/nonexistent/controlplane.yaml"},
                  "istio_vault_ca_manifest_path: The manifest '/nonexistent/controlplane.yaml' does not exist",
                  "manifest missing"),
        role_case("role-helm-values-live", {"istio_vault_ca_target": "helm_values"},
                  "istio_vault_ca_target helm_values needs istio_vault_ca_manifest_path", "helm_values without a file"),
        role_case("role-extra-env-string", {"istio_vault_ca_extra_env": "AUTO_RELOAD_PLUGIN_CERTS=true"},
                  "istio_vault_ca_extra_env must be a mapping of name to value", "extra_env as a string"),
        role_case("role-root-bundle-no-key", {"istio_vault_ca_root_pem_bundle": GARBAGE_PEM},
                  "istio_vault_ca_root_pem_bundle holds no private key", "imported root without its key"),
        role_case("role-context", {"istio_vault_ca_kube_context": "nope"},
                  "istio_vault_ca_kube_context: Unknown context 'nope' in the kubeconfig '%s' (contexts: fake)"
                  % fake.kubeconfig,
                  "wrong kubeconfig context"),
        role_case("role-controlplane", {"istio_vault_ca_controlplane_name": "nothere"},
                  "Failed to read ControlPlane 'tsb/nothere' (install.tetrate.io/v1alpha1, resource "
                  "controlplanes.install.tetrate.io): not found", "ControlPlane missing"),
        # issue 15: a new common name (or one forgotten) never replaces the intermediate without the switch
        role_case("role-intermediate-cn", {"istio_vault_ca_intermediate_common_name": "renamed Intermediate"},
                  "subject 'CN=tetrate.io Intermediate Authority' \u2192 'CN=renamed Intermediate' "
                  "(istio_vault_ca_intermediate_common_name)", "new intermediate common name, no rotate"),
        role_case("role-intermediate-cn-hint", {"istio_vault_ca_intermediate_common_name": "renamed Intermediate"},
                  "to rotate now, run the playbook once with -e istio_vault_ca_rotate=true",
                  "new intermediate common name: the switch is named"),
        role_case("role-unreachable", {"istio_vault_ca_vault": {"url": "http://127.0.0.1:%d" % free_port(),
                                                                "token": "t-x", "retries": 0}},
                  "is unreachable", "Vault unreachable"),
    ]
    # the module on the intermediate the role made: a new subject, key type or size alone is refused
    int_args = {"mount": "istioca", "root_mount": "pki", "kv_path": "istioca",
                "common_name": "tetrate.io Intermediate Authority", "ttl": "4380h", "renew_before": "720h"}
    switch = ". Replacing the intermediate generates a new key and certificate for istiod, so it is never done " \
             "silently (only a renewal inside renew_before is automatic): set force: true once"
    cases += [
        Case("int-guard-cn", "vault_pki_intermediate", dict(int_args, common_name="other"),
             "subject 'CN=tetrate.io Intermediate Authority' \u2192 'CN=other'" + switch,
             "intermediate: new common name, no force"),
        Case("int-guard-key-type", "vault_pki_intermediate", dict(int_args, key_type="ec"),
             "key RSA 2048 \u2192 EC 256" + switch, "intermediate: new key type, no force"),
        Case("int-guard-key-bits", "vault_pki_intermediate", dict(int_args, key_bits=4096),
             "key RSA 2048 \u2192 RSA 4096" + switch, "intermediate: new key size, no force"),
        Case("int-guard-check", "vault_pki_intermediate", dict(int_args, common_name="other"),
             "subject 'CN=tetrate.io Intermediate Authority' \u2192 'CN=other'" + switch,
             "intermediate: new common name, check mode (fails, not changed)", check=True),
    ]
    run_group("role", cases, {"main": {"url": bao.url, "_server": bao}}, group, ansible, report)
