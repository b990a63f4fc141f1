# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""istio_multiroot of tsb_controlplane_annotations (issue #18): ISTIO_MULTIROOT_MESH=true in istiod's env and
PROXY_CONFIG_XDS_AGENT=true in the mesh's default proxy metadata, for each target, merged into what the user has;
a user's false is refused; state=absent removes exactly these; file mode four steps and comments kept."""

import copy

import pytest
import yaml

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import (
    TARGETS,
    apply_absent,
    apply_present,
    desired_state,
    manage_annotations,
)
from harness.module_stub import ModuleStub

CP, IOP, HELM = TARGETS["tsb_controlplane"], TARGETS["istio_operator"], TARGETS["helm_values"]
PATCH = "spec.meshConfig.defaultConfig.proxyMetadata.PROXY_CONFIG_XDS_AGENT"
IOP_NAME = ("install.istio.io/v1alpha1", "IstioOperator", "tsb-istiocontrolplane")


def params(**overrides):
    base = dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret",
                kv_path="istioca", kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
                annotation_prefix="vault.hashicorp.com", agent_init_first=None, agent_pre_populate_only=None,
                extra_env=None, extra_annotations=None, istio_multiroot=True)
    base.update(overrides)
    return base


MULTI = desired_state(params())
MULTI_ABSENT = desired_state(params(state="absent"))
PLAIN = desired_state(params(istio_multiroot=False))
PLAIN_ABSENT = desired_state(params(state="absent", istio_multiroot=False))


def user_controlplane():
    """A ControlPlane with the user's env, proxy metadata patch and another overlay."""
    return {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
            "metadata": {"name": "controlplane", "namespace": "tsb"},
            "spec": {"hub": "docker.io/tetrate", "components": {"istio": {"traceSamplingRate": 100, "kubeSpec": {
                "deployment": {"replicaCount": 2, "env": [{"name": "PILOT_TRACE_SAMPLING", "value": "1"}]},
                "overlays": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "istiod",
                     "patches": [{"path": "spec.replicas", "value": 3}]},
                    {"apiVersion": IOP_NAME[0], "kind": IOP_NAME[1], "name": IOP_NAME[2],
                     "patches": [{"path": "spec.meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE",
                                  "value": "true"}]}]}}}}}


def user_operator():
    return {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
            "metadata": {"name": "installed-state", "namespace": "istio-system"},
            "spec": {"profile": "default",
                     "meshConfig": {"accessLogFile": "/dev/stdout",
                                    "defaultConfig": {"holdApplicationUntilProxyStarts": True,
                                                      "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}},
                     "components": {"pilot": {"k8s": {"env": [{"name": "PILOT_X", "value": "1"}]}}}}}


def user_values():
    return {"global": {"hub": "docker.io/istio"},
            "meshConfig": {"defaultConfig": {"proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true"}}},
            "pilot": {"env": {"PILOT_X": "1"}, "replicaCount": 2}}


def kube_spec(doc):
    return doc["spec"]["components"]["istio"]["kubeSpec"]


def iop_patches(doc):
    return [overlay for overlay in kube_spec(doc)["overlays"]
            if (overlay.get("apiVersion"), overlay.get("kind"), overlay.get("name")) == IOP_NAME]


# ---------------------------------------------------------------------------------------------------------
# present, per target: ours added, the user's kept, idempotent
# ---------------------------------------------------------------------------------------------------------

def test_tsb_controlplane_env_and_overlay_patch_merge_into_the_users():
    before = user_controlplane()
    new, _info = apply_present(before, CP, MULTI)
    assert before == user_controlplane()  # the input is not modified
    deployment = kube_spec(new)["deployment"]
    assert deployment["env"] == [{"name": "PILOT_TRACE_SAMPLING", "value": "1"},
                                 {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"},
                                 {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]
    overlays = kube_spec(new)["overlays"]
    assert overlays[0] == user_controlplane()["spec"]["components"]["istio"]["kubeSpec"]["overlays"][0]
    assert len(overlays) == 2  # our patch joins the user's overlay of the same IstioOperator
    assert overlays[1]["patches"] == [
        {"path": "spec.meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE", "value": "true"},
        {"path": PATCH, "value": "true"}]
    assert apply_present(new, CP, MULTI)[0] == new


def test_tsb_controlplane_without_overlays_gets_one_overlay_of_the_generated_operator():
    new, _info = apply_present({"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
                                "metadata": {"name": "controlplane"}, "spec": {"hub": "x"}}, CP, MULTI)
    assert kube_spec(new)["overlays"] == [{"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator",
                                           "name": "tsb-istiocontrolplane",
                                           "patches": [{"path": PATCH, "value": "true"}]}]


def test_istio_operator_env_and_mesh_config_merge_into_the_users():
    new, _info = apply_present(user_operator(), IOP, MULTI)
    assert new["spec"]["components"]["pilot"]["k8s"]["env"] == [
        {"name": "PILOT_X", "value": "1"}, {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"},
        {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]
    assert new["spec"]["meshConfig"] == {
        "accessLogFile": "/dev/stdout",
        "defaultConfig": {"holdApplicationUntilProxyStarts": True,
                          "proxyMetadata": {"ISTIO_META_DNS_CAPTURE": "true", "PROXY_CONFIG_XDS_AGENT": "true"}}}
    assert new["spec"]["profile"] == "default"
    assert apply_present(new, IOP, MULTI)[0] == new


def test_helm_values_env_map_and_mesh_config_merge_into_the_users():
    new, _info = apply_present(user_values(), HELM, MULTI)
    assert new["pilot"]["env"] == {"PILOT_X": "1", "ROOT_CA_DIR": "/etc/cacerts-vault",
                                   "ISTIO_MULTIROOT_MESH": "true"}
    assert new["pilot"]["replicaCount"] == 2 and new["global"] == {"hub": "docker.io/istio"}
    assert new["meshConfig"] == {"defaultConfig": {"proxyMetadata": {
        "ISTIO_META_DNS_CAPTURE": "true", "PROXY_CONFIG_XDS_AGENT": "true"}}}
    assert apply_present(new, HELM, MULTI)[0] == new


@pytest.mark.parametrize("target, doc", [(CP, user_controlplane), (IOP, user_operator), (HELM, user_values)])
def test_without_istio_multiroot_nothing_of_it_is_written(target, doc):
    assert (PLAIN.multiroot, MULTI.multiroot) == (False, True)  # the option is read
    new, info = apply_present(doc(), target, PLAIN)
    text = yaml.safe_dump(new)
    assert "ISTIO_MULTIROOT_MESH" not in text and "PROXY_CONFIG_XDS_AGENT" not in text
    assert "proxy_metadata" not in info["removed"]


@pytest.mark.parametrize("value", ["1", "True", "TRUE", "t", True])
def test_a_value_istiod_reads_as_true_is_kept_as_written(value):
    doc = user_operator()
    doc["spec"]["components"]["pilot"]["k8s"]["env"].append({"name": "ISTIO_MULTIROOT_MESH", "value": value})
    new, _info = apply_present(doc, IOP, MULTI)
    assert [e for e in new["spec"]["components"]["pilot"]["k8s"]["env"] if e["name"] == "ISTIO_MULTIROOT_MESH"] == [
        {"name": "ISTIO_MULTIROOT_MESH", "value": value}]
    assert new["spec"]["meshConfig"]["defaultConfig"]["proxyMetadata"]["PROXY_CONFIG_XDS_AGENT"] == "true"

    doc = user_operator()
    doc["spec"]["meshConfig"]["defaultConfig"]["proxyMetadata"]["PROXY_CONFIG_XDS_AGENT"] = value
    new, _info = apply_present(doc, IOP, MULTI)
    assert new["spec"]["meshConfig"]["defaultConfig"]["proxyMetadata"]["PROXY_CONFIG_XDS_AGENT"] == value
    assert {"name": "ISTIO_MULTIROOT_MESH", "value": "true"} in new["spec"]["components"]["pilot"]["k8s"]["env"]


# ---------------------------------------------------------------------------------------------------------
# a user's false is refused, naming where
# ---------------------------------------------------------------------------------------------------------

def _env_false(target):
    if target is HELM:
        doc = user_values()
        doc["pilot"]["env"]["ISTIO_MULTIROOT_MESH"] = False
        return doc, "pilot.env already sets ISTIO_MULTIROOT_MESH to False"
    doc = user_controlplane() if target is CP else user_operator()
    container = kube_spec(doc)["deployment"] if target is CP else doc["spec"]["components"]["pilot"]["k8s"]
    container["env"].append({"name": "ISTIO_MULTIROOT_MESH", "value": "false"})
    return doc, "%s.env already sets ISTIO_MULTIROOT_MESH to 'false'" % ".".join(target.container)


@pytest.mark.parametrize("target", [CP, IOP, HELM], ids=lambda t: t.name)
def test_a_users_false_multiroot_env_is_refused_naming_it(target):
    doc, where = _env_false(target)
    with pytest.raises(MeshPkiError) as err:
        apply_present(doc, target, MULTI)
    message = str(err.value)
    assert message.startswith(where), message
    assert "Nothing was changed" in message and "istio_multiroot=false" in message


def test_a_multiroot_env_from_value_from_is_refused():
    doc = user_operator()
    doc["spec"]["components"]["pilot"]["k8s"]["env"].append(
        {"name": "ISTIO_MULTIROOT_MESH", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}})
    with pytest.raises(MeshPkiError, match="ISTIO_MULTIROOT_MESH to set with valueFrom"):
        apply_present(doc, IOP, MULTI)


@pytest.mark.parametrize("target, doc, where", [
    (IOP, user_operator, "spec.meshConfig.defaultConfig.proxyMetadata"),
    (HELM, user_values, "meshConfig.defaultConfig.proxyMetadata"),
], ids=["istio_operator", "helm_values"])
def test_a_users_false_xds_agent_metadata_is_refused(target, doc, where):
    doc = doc()
    mesh = doc["spec"]["meshConfig"] if target is IOP else doc["meshConfig"]
    mesh["defaultConfig"]["proxyMetadata"]["PROXY_CONFIG_XDS_AGENT"] = "false"
    with pytest.raises(MeshPkiError) as err:
        apply_present(doc, target, MULTI)
    assert str(err.value).startswith("%s already sets PROXY_CONFIG_XDS_AGENT to 'false'" % where)


@pytest.mark.parametrize("patch", [
    {"path": PATCH, "value": "false"},
    {"path": "spec.meshConfig.defaultConfig.proxyMetadata", "value": {"PROXY_CONFIG_XDS_AGENT": "0"}},
    {"path": "spec.meshConfig", "value": {"defaultConfig": {"proxyMetadata": {"PROXY_CONFIG_XDS_AGENT": "no"}}}},
])
def test_tsb_a_users_overlay_patch_that_sets_it_false_is_refused(patch):
    doc = user_controlplane()
    iop_patches(doc)[0]["patches"].append(patch)
    with pytest.raises(MeshPkiError) as err:
        apply_present(doc, CP, MULTI)
    assert str(err.value).startswith("spec.components.istio.kubeSpec.overlays[1].patches[1] (path %s) already sets "
                                     "PROXY_CONFIG_XDS_AGENT" % patch["path"])


def test_extra_env_false_conflicts_with_istio_multiroot():
    with pytest.raises(MeshPkiError, match="extra_env sets ISTIO_MULTIROOT_MESH to 'false' while istio_multiroot"):
        desired_state(params(extra_env=[{"name": "ISTIO_MULTIROOT_MESH", "value": "false"}]))


# ---------------------------------------------------------------------------------------------------------
# TSB overlays: our patch must decide
# ---------------------------------------------------------------------------------------------------------

def test_tsb_a_user_patch_that_already_sets_it_true_as_part_of_a_parent_is_enough():
    doc = user_controlplane()
    iop_patches(doc)[0]["patches"] = [{"path": "spec.meshConfig.defaultConfig.proxyMetadata",
                                       "value": {"PROXY_CONFIG_XDS_AGENT": "true", "A": "b"}}]
    new, _info = apply_present(doc, CP, MULTI)
    assert iop_patches(new)[0]["patches"] == iop_patches(doc)[0]["patches"]
    assert kube_spec(new)["deployment"]["env"][-1] == {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}


def test_tsb_our_patch_moves_after_a_user_patch_that_replaces_proxy_metadata_as_a_whole():
    first, _info = apply_present(user_controlplane(), CP, MULTI)
    replaced = {"path": "spec.meshConfig.defaultConfig.proxyMetadata", "value": {"A": "b"}}
    iop_patches(first)[0]["patches"].append(replaced)
    new, _info = apply_present(first, CP, MULTI)
    assert iop_patches(new)[0]["patches"] == [
        {"path": "spec.meshConfig.defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE", "value": "true"},
        replaced, {"path": PATCH, "value": "true"}]
    assert apply_present(new, CP, MULTI)[0] == new


def test_tsb_an_overlay_of_the_operator_without_patches_gets_ours():
    doc = user_controlplane()
    iop_patches(doc)[0]["patches"] = None
    new, _info = apply_present(doc, CP, MULTI)
    assert iop_patches(new)[0]["patches"] == [{"path": PATCH, "value": "true"}]
    iop_patches(doc)[0]["patches"] = {"path": PATCH}
    with pytest.raises(MeshPkiError, match=r"overlays\[1\] \(IstioOperator tsb-istiocontrolplane\) has patches that "
                                           "are a mapping, expected a list"):
        apply_present(doc, CP, MULTI)


def test_tsb_refuses_overlays_that_are_not_a_list():
    doc = user_controlplane()
    kube_spec(doc)["overlays"] = {"a": 1}
    with pytest.raises(MeshPkiError, match="kubeSpec.overlays is a mapping, expected a list"):
        apply_present(doc, CP, MULTI)


# ---------------------------------------------------------------------------------------------------------
# absent
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, doc", [(CP, user_controlplane), (IOP, user_operator), (HELM, user_values)],
                         ids=["tsb_controlplane", "istio_operator", "helm_values"])
def test_absent_removes_exactly_what_present_added(target, doc):
    added, _info = apply_present(doc(), target, MULTI)
    removed, info = apply_absent(added, target, MULTI_ABSENT)
    assert removed == doc()
    assert info["removed"]["env"] == ["ROOT_CA_DIR", "ISTIO_MULTIROOT_MESH"]
    assert info["removed"]["proxy_metadata"] == ["PROXY_CONFIG_XDS_AGENT"]


def test_absent_drops_our_overlay_and_the_mappings_it_leaves_empty():
    bare = {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane", "metadata": {"name": "cp"},
            "spec": {"hub": "x"}}
    added, _info = apply_present(bare, CP, MULTI)
    assert len(kube_spec(added)["overlays"]) == 1
    assert apply_absent(added, CP, MULTI_ABSENT)[0] == bare
    values, _info = apply_present({}, HELM, MULTI)
    assert values["meshConfig"] == {"defaultConfig": {"proxyMetadata": {"PROXY_CONFIG_XDS_AGENT": "true"}}}
    assert apply_absent(values, HELM, MULTI_ABSENT)[0] == {}


@pytest.mark.parametrize("target, doc", [(CP, user_controlplane), (IOP, user_operator), (HELM, user_values)],
                         ids=["tsb_controlplane", "istio_operator", "helm_values"])
def test_absent_without_istio_multiroot_keeps_the_settings(target, doc):
    added, _info = apply_present(doc(), target, MULTI)
    removed, info = apply_absent(added, target, PLAIN_ABSENT)
    text = yaml.safe_dump(removed)
    assert "ISTIO_MULTIROOT_MESH" in text and "PROXY_CONFIG_XDS_AGENT" in text
    assert "proxy_metadata" not in info["removed"]


# ---------------------------------------------------------------------------------------------------------
# the task in file mode: four steps, the text around the two mappings kept
# ---------------------------------------------------------------------------------------------------------

class TaskModule(ModuleStub):
    def selinux_enabled(self):
        return False


def task_params(**overrides):
    values = params(target="istio_operator", name=None, namespace=None, path=None, max_manifest_size=4194304,
                    backup=False, kubernetes_auth_mount="kubernetes", vault_namespace=None, kubeconfig=None,
                    context=None)
    values.update(overrides)
    return values


OPERATOR_TEXT = """\
# the cluster's IstioOperator
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: installed-state
  namespace: istio-system
spec:
  profile: default  # keep this comment
  meshConfig:
    accessLogFile: /dev/stdout  # the access log
  components:
    pilot:
      k8s:
        env:
          - name: PILOT_X
            value: "1"
  # a comment between the two mappings
  values:
    global:
      hub: docker.io/istio  # and this one
"""

CONTROLPLANE_TEXT = """\
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: docker.io/tetrate  # keep
  components:
    istio:
      traceSamplingRate: 100
  telemetryStore:  # keep too
    elastic: {host: es, port: 443}
"""

VALUES_TEXT = """\
# values of the istiod chart
global:
  hub: docker.io/istio  # keep
pilot:
  replicaCount: 2
"""


def run(path, check_mode=False, **overrides):
    module = TaskModule(task_params(path=path, **overrides), check_mode=check_mode)
    return manage_annotations(module), module


@pytest.mark.parametrize("target, text, kept", [
    ("istio_operator", OPERATOR_TEXT, ["# keep this comment", "# a comment between the two mappings",
                                       "# and this one", "# the cluster's IstioOperator",
                                       "accessLogFile: /dev/stdout  # the access log"]),
    ("tsb_controlplane", CONTROLPLANE_TEXT, ["# keep", "# keep too"]),
    ("helm_values", VALUES_TEXT, ["# values of the istiod chart", "# keep"]),
])
def test_task_file_mode_four_steps(tmp_path, target, text, kept):
    path = tmp_path / "manifest.yaml"
    path.write_text(text)
    original = yaml.safe_load(text)
    check, _m = run(str(path), check_mode=True, target=target)
    assert check["changed"] is True and path.read_text() == text
    assert "PROXY_CONFIG_XDS_AGENT" in check["diff"]["after"]
    assert "PROXY_CONFIG_XDS_AGENT" not in check["diff"]["before"]
    applied, module = run(str(path), target=target)
    assert applied["changed"] is True and module.warnings == []
    assert applied["proxy_metadata"] == {"PROXY_CONFIG_XDS_AGENT": "true"}
    assert applied["env"][-1] == {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}
    written = path.read_text()
    for comment in kept:
        assert comment in written, written
    doc = yaml.safe_load(written)
    assert doc == apply_present(copy.deepcopy(original), TARGETS[target], MULTI)[0]
    second_check, _m = run(str(path), check_mode=True, target=target)
    assert second_check["changed"] is False
    second, _m = run(str(path), target=target)
    assert second["changed"] is False and path.read_text() == written


def test_task_file_mode_refusal_writes_nothing(tmp_path):
    path = tmp_path / "manifest.yaml"
    text = OPERATOR_TEXT.replace('value: "1"', 'value: "1"\n          - name: ISTIO_MULTIROOT_MESH\n'
                                               '            value: "false"')
    path.write_text(text)
    with pytest.raises(MeshPkiError, match="already sets ISTIO_MULTIROOT_MESH to 'false'"):
        run(str(path))
    assert path.read_text() == text
