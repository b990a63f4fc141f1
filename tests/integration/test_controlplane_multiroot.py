"""istio_multiroot of tsb_controlplane_annotations and istio_vault_ca_multiroot of the role (issue #18), through real
ansible-playbook runs: live mode against the stateful fake Kubernetes API (merge patches), file mode on manifests,
and the role in file mode against OpenBao."""

import os
import sys
import uuid

import pytest
import yaml
from conftest import assert_four_step
from kubernetes import client, config

from harness.fake_k8s import FakeKubeApi
from harness.playbook import REPO, role_play

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402

CP = ("install.tetrate.io", "v1alpha1", "controlplanes")
IOP = ("install.istio.io", "v1alpha1", "istiooperators")
PATCH = "spec.meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT"
USER_OVERLAY = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "name": "tsb-istiocontrolplane",
                "patches": [{"path": "spec.meshConfig.defaultConfig.holdApplicationUntilProxyStarts", "value": True}]}


@pytest.fixture
def fake(tmp_path):
    with FakeKubeApi() as api:
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        api.custom = client.CustomObjectsApi(config.new_client_from_config(config_file=api.kubeconfig))
        core = client.CoreV1Api(config.new_client_from_config(config_file=api.kubeconfig))
        for namespace in ("tsb", "istio-system"):
            core.create_namespace({"metadata": {"name": namespace}})
        yield api


def create(fake, kind, namespace, name, spec):
    group, version, plural = kind
    body = {"apiVersion": "%s/%s" % (group, version), "kind": "ControlPlane" if kind == CP else "IstioOperator",
            "metadata": {"name": name, "namespace": namespace, "labels": {"team": "mesh"}}, "spec": spec}
    return fake.custom.create_namespaced_custom_object(group, version, namespace, plural, body)


def stored(fake, kind, namespace, name):
    return fake.get_object("%s/%s" % kind[:2], kind[2], name, namespace)


def play(tasks):
    return [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}]


def task(name, args, **kwargs):
    return dict({"name": name, "meshpki.vault_ca.tsb_controlplane_annotations": args}, **kwargs)


def patches_sent(fake):
    return [r for r in fake.requests if r["method"] == "PATCH"]


def test_live_controlplane_four_steps_keep_the_users_env_and_overlays(fake, playbook):
    spec = {"hub": "docker.io/tetrate", "components": {"istio": {"kubeSpec": {
        "deployment": {"env": [{"name": "PILOT_TRACE_SAMPLING", "value": "1"}]},
        "overlays": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "istiod",
                      "patches": [{"path": "spec.replicas", "value": 3}]}, USER_OVERLAY]}}}}
    create(fake, CP, "tsb", "controlplane", spec)
    args = {"kubeconfig": fake.kubeconfig, "name": "controlplane", "namespace": "tsb", "istio_multiroot": True}
    fake.clear_requests()
    runs = assert_four_step(playbook, play([task("multiroot", args)]))
    assert [("dryRun=All" in (r["query"] or "")) for r in patches_sent(fake)] == [True, False]  # one real write
    kube_spec = stored(fake, CP, "tsb", "controlplane")["spec"]["components"]["istio"]["kubeSpec"]
    assert kube_spec["deployment"]["env"] == [{"name": "PILOT_TRACE_SAMPLING", "value": "1"},
                                              {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"},
                                              {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]
    assert kube_spec["overlays"][0] == spec["components"]["istio"]["kubeSpec"]["overlays"][0]
    assert kube_spec["overlays"][1] == dict(USER_OVERLAY, patches=USER_OVERLAY["patches"] + [
        {"path": PATCH, "value": "true"}])
    applied = runs[1].task("multiroot")["result"]
    assert applied["proxy_metadata"] == {"PROXY_CONFIG_XDS_AGENT": "true"}
    assert PATCH in applied["diff"]["after"] and PATCH not in applied["diff"]["before"]

    # state=absent with istio_multiroot removes exactly these two, the user's overlay stays
    absent = dict(args, state="absent")
    runs = assert_four_step(playbook, play([task("absent", absent)]))
    kube_spec = stored(fake, CP, "tsb", "controlplane")["spec"]["components"]["istio"]["kubeSpec"]
    assert kube_spec == {"deployment": {"env": [{"name": "PILOT_TRACE_SAMPLING", "value": "1"}]},
                         "overlays": spec["components"]["istio"]["kubeSpec"]["overlays"]}
    assert runs[1].task("absent")["result"]["removed"]["proxy_metadata"] == ["PROXY_CONFIG_XDS_AGENT"]


def test_live_istio_operator_four_steps_and_a_users_false_is_refused(fake, playbook):
    create(fake, IOP, "istio-system", "installed-state", {
        "profile": "default", "meshConfig": {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}},
        "components": {"pilot": {"k8s": {"env": [{"name": "PILOT_ENABLE_STATUS", "value": "true"}]}}}})
    create(fake, IOP, "istio-system", "disabled", {"components": {"pilot": {"k8s": {
        "env": [{"name": "ISTIO_MULTIROOT_MESH", "value": "false"}]}}}})
    base = {"kubeconfig": fake.kubeconfig, "namespace": "istio-system", "target": "istio_operator",
            "istio_multiroot": True}
    assert_four_step(playbook, play([task("multiroot", dict(base, name="installed-state"))]))
    spec = stored(fake, IOP, "istio-system", "installed-state")["spec"]
    assert spec["meshConfig"] == {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true",
                                                                      "PROXY_CONFIG_XDS_AGENT": "true"}}}
    assert spec["components"]["pilot"]["k8s"]["env"][-1] == {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}
    assert spec["components"]["pilot"]["k8s"]["env"][0] == {"name": "PILOT_ENABLE_STATUS", "value": "true"}

    before = stored(fake, IOP, "istio-system", "disabled")
    fake.clear_requests()
    run = playbook(play([task("refused", dict(base, name="disabled"), ignore_errors=True)]))
    result = run.task("refused")
    assert result["status"] == "failed"
    assert result["result"]["msg"].startswith("spec.components.pilot.k8s.env already sets ISTIO_MULTIROOT_MESH to "
                                              "'false', and istio_multiroot=true needs it true")
    assert patches_sent(fake) == [] and stored(fake, IOP, "istio-system", "disabled") == before


def test_file_mode_helm_values_four_steps_keep_the_text_around(playbook, tmp_path):
    values = tmp_path / "istiod-values.yaml"
    values.write_text("# istiod chart values\nglobal:\n  hub: docker.io/istio  # our mirror\n"
                      "meshConfig:\n  accessLogFile: /dev/stdout  # keep\n")
    args = {"target": "helm_values", "path": str(values), "istio_multiroot": True}
    assert_four_step(playbook, play([task("values", args)]))
    text = values.read_text()
    assert text.startswith("# istiod chart values\nglobal:\n  hub: docker.io/istio  # our mirror\n"), text
    assert "accessLogFile: /dev/stdout  # keep" in text
    doc = yaml.safe_load(text)
    assert doc["pilot"]["env"] == {"ROOT_CA_DIR": "/etc/cacerts-vault", "ISTIO_MULTIROOT_MESH": "true"}
    assert doc["meshConfig"] == {"accessLogFile": "/dev/stdout",
                                 "defaultConfig": {"proxyMetadata": {"PROXY_CONFIG_XDS_AGENT": "true"}}}


def test_role_passes_istio_vault_ca_multiroot(playbook, bao, fake, tmp_path):
    """The role with istio_vault_ca_multiroot: true (file mode, the demo's ControlPlane): both settings land next
    to the injector annotations, and a second play of the same run changes nothing."""
    suffix = uuid.uuid4().hex[:8]
    manifest = tmp_path / "controlplane.yaml"
    manifest.write_text(yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE))
    values = {"istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
              "istio_vault_ca_root_mount": "pki-" + suffix, "istio_vault_ca_intermediate_mount": "istioca-" + suffix,
              "istio_vault_ca_kv_path": "istioca-" + suffix, "istio_vault_ca_policy_name": "istioca-" + suffix,
              "istio_vault_ca_k8s_auth_mount": "kubernetes-" + suffix,
              "istio_vault_ca_kubeconfig": fake.kubeconfig,
              "istio_vault_ca_manifest_path": str(manifest),
              "istio_vault_ca_multiroot": True}
    run = playbook(role_play(values) + role_play(values))
    assert run.rc == 0, run
    steps = [r for r in run.results if "Ensure the injector annotations" in r["task"]]
    assert [r["status"] for r in steps] == ["changed", "ok"], run
    kube_spec = yaml.safe_load(manifest.read_text())["spec"]["components"]["istio"]["kubeSpec"]
    assert {"name": "ISTIO_MULTIROOT_MESH", "value": "true"} in kube_spec["deployment"]["env"]
    assert kube_spec["deployment"]["env"][0] == {"name": "PILOT_TRACE_SAMPLING", "value": "1"}
    assert kube_spec["overlays"] == [{"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
                                      "name": "tsb-istiocontrolplane", "patches": [{"path": PATCH, "value": "true"}]}]
