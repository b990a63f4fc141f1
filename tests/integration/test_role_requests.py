"""Requests of a no-change re-run of the role (issue 17): one cluster, the guide's layout, in file mode with the
Kubernetes host, CA and reviewer JWT given (no Kubernetes API is contacted). Counted from OpenBao's audit log:
requests are deterministic, unlike times, so the exact list is asserted.

10 Vault objects: the root mount and issuer, the trust bundle (root-cert.pem, with the root rotation's record),
the intermediate mount and issuer, the KV secret holding the key, the policy, the Kubernetes auth mount, its
config and the role. Issue 17: a re-run reads each issuer with one request (``issuer/default``, not
``config/issuers`` then ``issuer/<id>``), the root once (the trust bundle step takes what the root task returned),
the Kubernetes auth mount through its config (not ``sys/auth`` as well), and the mount table once per module that
creates mounts: 9 reads (12 before, 11 after the trust bundle step came). With ``istio_vault_ca_verify: true`` (the
default) the verification runs only when this run changed a Vault object or the ControlPlane would change (a
check-mode preview of the ControlPlane task, no Vault request): a no-change re-run reads 9 times, as with
verification off (16 before). ``always`` verifies on every run: without its token probe (nothing changed) it
reads what istiod's agent would, 7 more (0 writes, no token). Nothing is written and no token is created either way."""

import uuid

import pytest

from harness import certs
from harness.playbook import role_play

REVIEWER_JWT = ("eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50Iiwic3ViIjoic3lz"
                "dGVtOnNlcnZpY2VhY2NvdW50OnZhdWx0OnJldmlld2VyIn0.cGxhY2Vob2xkZXI")
MANIFEST = """\
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: registry.example.com/tetrate
"""
ROLE = "meshpki.vault_ca.istio_vault_ca : "


def role_vars(bao, tmp_path, **more):
    suffix = uuid.uuid4().hex[:8]
    manifest = tmp_path / ("controlplane-%s.yaml" % suffix)
    manifest.write_text(MANIFEST)
    values = {
        "istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
        "istio_vault_ca_root_mount": "pki-" + suffix,
        "istio_vault_ca_intermediate_mount": "istioca-" + suffix,
        "istio_vault_ca_kv_path": "istioca-" + suffix,
        "istio_vault_ca_policy_name": "istioca-" + suffix,
        "istio_vault_ca_k8s_auth_mount": "kubernetes-" + suffix,
        "istio_vault_ca_k8s_role": "istiod",
        "istio_vault_ca_manifest_path": str(manifest),
        "istio_vault_ca_k8s_host": "https://127.0.0.1:6443",
        "istio_vault_ca_k8s_ca_cert": certs.make_ca("kubernetes-ca").cert_pem,
        "istio_vault_ca_k8s_token_reviewer_jwt": REVIEWER_JWT,
    }
    values.update(more)
    return values, suffix


def expected_requests(suffix, verify_reads):
    """The requests of a no-change re-run, in order (one cluster, token auth: no login)."""
    root, intermediate, kv = "pki-" + suffix, "istioca-" + suffix, "secret/data/istioca-" + suffix
    policy, auth = "sys/policies/acl/istioca-" + suffix, "auth/kubernetes-" + suffix
    requests = [
        ("read", "sys/mounts"),                         # vault_pki_root: the root mount
        ("read", root + "/issuer/default"),             # the root CA
        # vault_pki_root_rotation (rotation: hold) keeps the trust bundle root-cert.pem renders: the record/bundle
        # only (the root as vault_pki_root returned it - root_ca; the record's version proves the KV v2 mount)
        ("read", "secret/data/" + root + "-trust"),
        ("read", "sys/mounts"),                         # vault_pki_intermediate: its mount, the KV mount
        # the root CA that signs it: as vault_pki_root returned it (root_ca), not read again
        ("read", intermediate + "/issuer/default"),     # the intermediate CA
        ("read", kv),                                   # its key
        ("read", policy),                               # vault_policy
        ("read", auth + "/config"),                     # vault_k8s_auth: the config answers for its mount too
        ("read", auth + "/role/istiod"),                # vault_k8s_role
    ]
    if verify_reads:  # istio_ca_verify without the token probe (nothing changed): the policy, the role, the bundle
        requests += [
            ("read", policy),
            ("read", "sys/policies/acl/default"),
            ("read", auth + "/role/istiod"),
            ("read", intermediate + "/cert/ca"),
            ("read", kv),
            ("read", intermediate + "/cert/ca_chain"),
            ("read", "secret/data/" + root + "-trust"),   # root-cert.pem: the trust bundle
        ]
    return requests


@pytest.mark.parametrize("verify, verify_reads", [(True, False), ("always", True), (False, False)],
                         ids=["verify-on", "verify-always", "verify-off"])
def test_no_change_rerun_requests(bao, playbook, tmp_path, verify, verify_reads):
    values, suffix = role_vars(bao, tmp_path, istio_vault_ca_verify=verify)
    first = playbook(role_play(values))
    assert first.rc == 0, first
    if verify is not False:  # the first run changed everything, so it verified
        assert first.task(ROLE + "Verify the CA bundle istiod will read, and what the policy grants - "
                          + values["istio_vault_ca_policy_name"])["status"] == "ok", first
    mark = bao.audit.mark()
    second = playbook(role_play(values))
    assert second.rc == 0, second
    assert second.changed() == [], second
    requests = bao.audit.requests(since=mark)
    assert requests == expected_requests(suffix, verify_reads), "\n".join("%s %s" % r for r in requests)
    assert bao.audit.writes(since=mark, include_logins=True) == [] and bao.audit.created_tokens(since=mark) == []
    if verify is True:  # the summary says why it did not verify
        assert "not needed: nothing changed" in second.output, second


def test_verify_runs_when_only_the_controlplane_would_change(bao, playbook, tmp_path):
    """A run stopped by a failed verification leaves the target untouched; its re-run changes nothing in Vault but
    must still verify before it annotates the target: the ControlPlane's check-mode preview decides."""
    values, suffix = role_vars(bao, tmp_path)
    first = playbook(role_play(values))
    assert first.rc == 0, first
    with open(values["istio_vault_ca_manifest_path"], "w") as f:  # the target as before the role's first run
        f.write(MANIFEST)
    mark = bao.audit.mark()
    second = playbook(role_play(values))
    assert second.rc == 0, second
    # the preview (check mode: "changed" is "would change") and the task itself
    assert [r["task"] for r in second.changed()] == [
        ROLE + "Would the injector annotations change on the tsb_controlplane",
        ROLE + "Ensure the injector annotations on the tsb_controlplane"], second
    verify = second.task(ROLE + "Verify the CA bundle istiod will read, and what the policy grants - istioca-" + suffix)
    assert verify["status"] == "ok" and verify["result"]["valid"], second
    requests = bao.audit.requests(since=mark)
    assert requests == expected_requests(suffix, True), "\n".join("%s %s" % r for r in requests)


def test_verify_value_checked_before_any_request(bao, playbook, tmp_path):
    values, suffix = role_vars(bao, tmp_path, istio_vault_ca_verify="sometimes")
    mark = bao.audit.mark()
    result = playbook(role_play(values))
    assert result.rc != 0, result
    assert any("istio_vault_ca_verify must be true" in (m or "") and "'sometimes'" in (m or "")
               for m in result.failed_msgs()), result.failed_msgs()
    assert bao.audit.requests(since=mark) == []
