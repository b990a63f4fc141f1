"""Role inputs (issue 15, points 2-4): every input of the role is checked before its first request.

Each bad input runs the real role through ansible-playbook against the session's OpenBao (with its audit log) and a
fake Kubernetes API: the play fails on one of the role's check tasks, the message names the role variable and the
fix, and neither Vault nor the API server saw a single request. Then the variables that did not work
(istio_vault_ca_root_pem_bundle, istio_vault_ca_diagnose_jwt) and the target defaults run for real."""

import os
import sys
import uuid

import pytest
import yaml

from harness.certs import make_ca
from harness.fake_k8s import FakeKubeApi
from harness.playbook import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402

CHECKS = ("Check the role's variables before the first request", "Validating arguments against arg spec")


@pytest.fixture
def api(tmp_path):
    fake = FakeKubeApi().start()
    fake.kubeconfig = fake.write_kubeconfig(str(tmp_path / "kubeconfig"))
    embedded.seed_controlplane(fake.kubeconfig)
    fake.clear_requests()
    yield fake
    fake.stop()


def _names():
    suffix = uuid.uuid4().hex[:8]
    return {"istio_vault_ca_root_mount": "pki-" + suffix, "istio_vault_ca_intermediate_mount": "istioca-" + suffix,
            "istio_vault_ca_kv_path": "istioca-" + suffix, "istio_vault_ca_policy_name": "istioca-" + suffix,
            "istio_vault_ca_k8s_auth_mount": "kubernetes-" + suffix}


def _manifest(tmp_path, *docs, name="manifest.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(list(docs)))
    return str(path)


def role_play(values, tasks_from=None):
    play = {"name": "istio_vault_ca", "hosts": "localhost", "gather_facts": False, "connection": "local",
            "vars": values, "tasks": [{"name": "entry point", "ansible.builtin.import_role": {
                "name": "meshpki.vault_ca.istio_vault_ca", "tasks_from": tasks_from or "main"}}]}
    return play


def _refused(playbook, bao, api, values, tasks_from=None):
    """Run the role on ``values``; the one failed task must be a check task; returns its message, asserting that
    Vault and the fake API server saw no request at all."""
    mark = bao.audit.mark()
    api.clear_requests()
    run = playbook([role_play(values, tasks_from)])
    assert run.rc != 0, run
    failed = [r for r in run.results if r["status"] == "failed"]
    assert len(failed) == 1, run
    assert failed[0]["task"].split(" : ")[-1].startswith(CHECKS), run
    assert bao.audit.requests(mark) == []
    assert api.requests == []
    return failed[0]["result"]["msg"]


def _base(bao, api, tmp_path, **more):
    values = dict(_names(), istio_vault_ca_vault={"url": bao.url, "token": bao.token},
                  istio_vault_ca_manifest_path=_manifest(tmp_path, embedded.SAMPLE_CONTROLPLANE),
                  istio_vault_ca_kubeconfig=api.kubeconfig)
    values.update(more)
    return values


def test_a_typo_names_the_variable_it_meant(playbook, bao, api, tmp_path):
    """istio_vault_ca_manifest_pth: today the role silently runs in live mode; now it stops before any request."""
    values = _base(bao, api, tmp_path)
    values["istio_vault_ca_manifest_pth"] = values.pop("istio_vault_ca_manifest_path")
    values["istio_vault_ca_kubecontext"] = "fake"
    msg = _refused(playbook, bao, api, values)
    assert ("istio_vault_ca_manifest_pth is not a variable of this role - did you mean "
            "istio_vault_ca_manifest_path?") in msg, msg
    assert "istio_vault_ca_kubecontext is not a variable of this role - did you mean istio_vault_ca_kube_context?" \
        in msg, msg
    # the diagnose entry point checks the same way
    msg = _refused(playbook, bao, api, values, tasks_from="diagnose")
    assert "did you mean istio_vault_ca_manifest_path?" in msg, msg


BAD = [
    ("manifest-missing", {"istio_vault_ca_manifest_path": "{tmp}/nothere.yaml"},
     ["istio_vault_ca_manifest_path: The manifest '{tmp}/nothere.yaml' does not exist",
      "leave istio_vault_ca_manifest_path empty"]),
    ("manifest-not-yaml", {"istio_vault_ca_manifest_path": "{tmp}/broken.yaml"},
     ["istio_vault_ca_manifest_path: The file '{tmp}/broken.yaml' is not valid YAML"]),
    ("manifest-no-object", {"istio_vault_ca_manifest_path": "{tmp}/operator.yaml"},
     ["istio_vault_ca_manifest_path: No document in '{tmp}/operator.yaml' is a ControlPlane",
      "Check istio_vault_ca_target, istio_vault_ca_controlplane_name and istio_vault_ca_controlplane_namespace"]),
    ("manifest-two-objects", {"istio_vault_ca_manifest_path": "{tmp}/two.yaml"},
     ["istio_vault_ca_manifest_path: 2 documents in '{tmp}/two.yaml' are a ControlPlane",
      "set istio_vault_ca_controlplane_name (and istio_vault_ca_controlplane_namespace) to pick one"]),
    ("manifest-name-not-there", {"istio_vault_ca_controlplane_name": "other"},
     ["No document in", "named 'other'"]),
    ("context-wrong", {"istio_vault_ca_kube_context": "nope"},
     ["istio_vault_ca_kube_context: Unknown context 'nope' in the kubeconfig", "(contexts: fake)"]),
    ("kubeconfig-missing", {"istio_vault_ca_kubeconfig": "{tmp}/no-kubeconfig"},
     ["istio_vault_ca_kubeconfig: Cannot read the kubeconfig '{tmp}/no-kubeconfig'"]),
    ("extra-env-string", {"istio_vault_ca_extra_env": "AUTO_RELOAD_PLUGIN_CERTS=true"},
     ["istio_vault_ca_extra_env must be a mapping of name to value, for example {AUTO_RELOAD_PLUGIN_CERTS: "
      "\"true\"}; got"]),
    ("extra-env-bool", {"istio_vault_ca_extra_env": {"AUTO_RELOAD_PLUGIN_CERTS": True}},
     ["istio_vault_ca_extra_env values must be strings", "quote AUTO_RELOAD_PLUGIN_CERTS"]),
    ("helm-values-live", {"istio_vault_ca_target": "helm_values", "istio_vault_ca_manifest_path": ""},
     ["istio_vault_ca_target helm_values needs istio_vault_ca_manifest_path"]),
    ("istio-operator-live-no-name", {"istio_vault_ca_target": "istio_operator", "istio_vault_ca_manifest_path": ""},
     ["istio_vault_ca_target istio_operator in live mode (istio_vault_ca_manifest_path empty) needs "
      "istio_vault_ca_controlplane_name"]),
    ("ec-with-rsa-size", {"istio_vault_ca_key_type": "ec"},
     ["istio_vault_ca_key_bits 2048 does not fit istio_vault_ca_key_type ec: use 256 or 384"]),
    ("root-bundle-without-key", {"istio_vault_ca_root_pem_bundle": "ROOTCERT"},
     ["istio_vault_ca_root_pem_bundle holds no private key"]),
    ("vault-unknown-key", {"istio_vault_ca_vault": {"url": "http://127.0.0.1:1", "tokn": "x"}},
     ["istio_vault_ca_vault", "tokn"]),
    # Durations, URLs, the volume path and the annotation prefix, each named as the role variable (these were found
    # only by the modules, after the first writes, in their words: "ttl '1y' is not a duration").
    ("durations", {"istio_vault_ca_root_ttl": "1y", "istio_vault_ca_token_period": "-5h",
                   "istio_vault_ca_renew_before": "4400h"},
     ["istio_vault_ca_root_ttl '1y' is not a duration", "istio_vault_ca_token_period '-5h' is not a duration",
      "istio_vault_ca_renew_before 4400h must be shorter than istio_vault_ca_intermediate_ttl 4380h"]),
    ("intermediate-outlives-root", {"istio_vault_ca_intermediate_ttl": "9000h"},
     ["istio_vault_ca_intermediate_ttl 9000h must be at most istio_vault_ca_root_ttl 8760h"]),
    ("k8s-host-not-a-url", {"istio_vault_ca_k8s_host": "not a url"},
     ["istio_vault_ca_k8s_host 'not a url' is not a URL"]),
    ("volume-path-relative", {"istio_vault_ca_secret_volume_path": "relative/path"},
     ["istio_vault_ca_secret_volume_path 'relative/path' must be an absolute path"]),
    ("annotation-prefix", {"istio_vault_ca_annotation_prefix": "Vault_X"},
     ["istio_vault_ca_annotation_prefix 'Vault_X' is not a valid annotation prefix"]),
]


@pytest.mark.parametrize("cid,overrides,expected", BAD, ids=[c[0] for c in BAD])
def test_bad_role_input_is_refused_before_any_request(playbook, bao, api, tmp_path, cid, overrides, expected):
    tmp = str(tmp_path)
    (tmp_path / "broken.yaml").write_text("kind: ControlPlane\nspec: [unclosed\n")
    _manifest(tmp_path, embedded.SAMPLE_ISTIOOPERATOR, name="operator.yaml")
    other = yaml.safe_load(yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE))
    other["metadata"]["name"] = "second"
    _manifest(tmp_path, embedded.SAMPLE_CONTROLPLANE, other, name="two.yaml")
    root = make_ca("imported root", days=365)
    values = _base(bao, api, tmp_path)
    for key, value in overrides.items():
        if isinstance(value, str):
            value = value.replace("{tmp}", tmp).replace("ROOTCERT", root.cert_pem)
        values[key] = value
    msg = _refused(playbook, bao, api, values)
    for text in expected:
        assert text.replace("{tmp}", tmp) in msg, msg
    assert "PRIVATE KEY" not in msg


def test_diagnose_jwt_and_request_jwt_together_are_refused(playbook, bao, api, tmp_path):
    values = _base(bao, api, tmp_path, istio_vault_ca_diagnose_jwt="a.b.c", istio_vault_ca_diagnose_request_jwt=True)
    msg = _refused(playbook, bao, api, values, tasks_from="diagnose")
    assert "istio_vault_ca_diagnose_jwt and istio_vault_ca_diagnose_request_jwt=true are two ways" in msg, msg


def test_imported_root_istio_operator_defaults_and_diagnose_jwt(playbook, bao, api, tmp_path):
    """istio_vault_ca_root_pem_bundle imports the root; target istio_operator with no name writes into the one
    IstioOperator of the manifest (which also holds a ControlPlane); a second play of the same run, where the role's
    registered results exist, passes the name check and changes nothing; the live IstioOperator is found in
    istio-system by its name alone; diagnose logs in with istio_vault_ca_diagnose_jwt."""
    root = make_ca("meshpki imported root", days=365)
    manifest = _manifest(tmp_path, embedded.SAMPLE_CONTROLPLANE, embedded.SAMPLE_ISTIOOPERATOR)
    values = dict(_names(), istio_vault_ca_vault={"url": bao.url, "token": bao.token},
                  istio_vault_ca_root_pem_bundle=root.cert_pem + root.key_pem,
                  istio_vault_ca_intermediate_ttl="720h", istio_vault_ca_renew_before="72h",
                  istio_vault_ca_target="istio_operator", istio_vault_ca_manifest_path=manifest,
                  istio_vault_ca_kubeconfig=api.kubeconfig,
                  istio_vault_ca_k8s_token_reviewer={"create": True, "service_account": "rev-" + uuid.uuid4().hex[:6]},
                  istio_vault_ca_extra_env={"AUTO_RELOAD_PLUGIN_CERTS": "true"})
    run = playbook([role_play(values), role_play(values)])
    assert run.rc == 0, run
    roots = [r for r in run.results if "Ensure the root CA" in r["task"]]
    assert [r["status"] for r in roots] == ["changed", "ok"], run
    served = bao.api("GET", "%s/cert/ca" % values["istio_vault_ca_root_mount"])["data"]["certificate"]
    assert served.strip() == root.cert_pem.strip()
    docs = list(yaml.safe_load_all(open(manifest)))
    operator = [d for d in docs if d["kind"] == "IstioOperator"][0]["spec"]["components"]["pilot"]["k8s"]
    assert "vault.hashicorp.com/agent-inject" in operator["podAnnotations"]
    assert {"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"} in operator["env"]
    assert [d for d in docs if d["kind"] == "ControlPlane"][0] == embedded.SAMPLE_CONTROLPLANE
    summary = [r for r in run.results if r["task"].endswith(" : Summary")][-1]["result"]["msg"]
    assert any("istio_operator istio-system/installed-state in " + manifest in line for line in summary), summary

    live = dict(values, istio_vault_ca_manifest_path="", istio_vault_ca_controlplane_name="installed-state")
    run = playbook([role_play(live)])
    assert run.rc == 0, run
    obj = api.get_object("install.istio.io/v1alpha1", "istiooperators", "installed-state", "istio-system")
    assert "vault.hashicorp.com/agent-inject" in obj["spec"]["components"]["pilot"]["k8s"]["podAnnotations"]

    jwt = api.mint_sa_token("istio-system", "istiod-service-account")
    run = playbook([role_play(dict(values, istio_vault_ca_diagnose_jwt=jwt), tasks_from="diagnose")])
    assert run.rc == 0, run
    diagnosis = [r for r in run.results if "Look at Vault, the CA" in r["task"]][-1]["result"]
    statuses = dict((check["name"], check["status"]) for check in diagnosis["checks"])
    assert statuses["istiod_login"] == "ok" and statuses["bundle"] == "ok", diagnosis["report"]
    assert diagnosis["healthy"] is True, diagnosis["report"]


def test_every_other_variable_in_one_run(playbook, bao, api, tmp_path):
    """The variables no other scenario sets, each to a value other than its default, in one run of the role (file
    mode), and what each one shapes, read back from Vault and the manifest."""
    suffix = uuid.uuid4().hex[:8]
    manifest = _manifest(tmp_path, embedded.SAMPLE_CONTROLPLANE)
    values = dict(_names(), istio_vault_ca_vault={"url": bao.url, "token": bao.token},
                  istio_vault_ca_manifest_path=manifest, istio_vault_ca_kubeconfig=api.kubeconfig,
                  istio_vault_ca_root_common_name="meshpki root " + suffix,
                  istio_vault_ca_root_ttl="9000h",
                  istio_vault_ca_kv_mount="kv-" + suffix,
                  istio_vault_ca_kv_field="istiod-key.pem",
                  istio_vault_ca_k8s_role="istiod-" + suffix,
                  istio_vault_ca_service_account="istiod-sa-" + suffix,
                  istio_vault_ca_namespace="istio-" + suffix[:4],
                  istio_vault_ca_token_period="900s",
                  istio_vault_ca_k8s_disable_local_ca_jwt=True,
                  istio_vault_ca_secret_volume_path="/etc/cacerts-" + suffix,
                  istio_vault_ca_annotation_prefix="openbao.openbao.org",
                  istio_vault_ca_audit_file_path=bao.audit.path,
                  istio_vault_ca_verify=False,
                  istio_vault_ca_pipelining=False)
    run = playbook([role_play(values)])
    assert run.rc == 0, run
    assert not [r for r in run.results if "Verify the CA bundle" in r["task"] and r["status"] != "skipped"], run
    root = bao.api("GET", "%s/cert/ca" % values["istio_vault_ca_root_mount"])["data"]["certificate"]
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(root.encode())
    assert cert.subject.rfc4514_string() == "CN=meshpki root " + suffix
    assert 8999 * 3600 < (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() <= 9000 * 3600 + 60
    key = bao.api("GET", "kv-%s/data/%s" % (suffix, values["istio_vault_ca_kv_path"]))["data"]["data"]
    assert "istiod-key.pem" in key and "ca-key.pem" not in key
    role = bao.api("GET", "auth/%s/role/istiod-%s" % (values["istio_vault_ca_k8s_auth_mount"], suffix))["data"]
    assert role["bound_service_account_names"] == ["istiod-sa-" + suffix]
    assert role["bound_service_account_namespaces"] == ["istio-" + suffix[:4]]
    assert role["token_period"] == 900
    config = bao.api("GET", "auth/%s/config" % values["istio_vault_ca_k8s_auth_mount"])["data"]
    assert config["disable_local_ca_jwt"] is True
    deployment = yaml.safe_load(open(manifest))["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    annotations = deployment["podAnnotations"]
    assert annotations["openbao.openbao.org/role"] == "istiod-" + suffix
    assert annotations["openbao.openbao.org/secret-volume-path"] == "/etc/cacerts-" + suffix
    assert not [k for k in annotations if k.startswith("vault.hashicorp.com/")]
    assert {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-" + suffix} in deployment["env"]
