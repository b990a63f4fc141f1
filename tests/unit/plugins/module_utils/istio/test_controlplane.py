# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/istio/controlplane.py: the merge that keeps everything the user has, the
removal of exactly our keys, the merge patch, the YAML manifest editing that leaves other text alone, and the
live read-patch loop (against a stub API; the real client and the fake API server are in the integration tests).
"""

import copy
import json
import os

import pytest
import yaml
from kubernetes.client.rest import ApiException

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio import controlplane as controlplane_mod
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import (
    TARGETS,
    apply_absent,
    apply_present,
    desired_state,
    manage_annotations,
    merge_patch_diff,
    reconcile_live,
)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import Manifest, dump_yaml
from harness.module_stub import ModuleStub

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
CP, IOP, HELM = TARGETS["tsb_controlplane"], TARGETS["istio_operator"], TARGETS["helm_values"]
VAULT = "vault.hashicorp.com"
OPENBAO = "openbao.openbao.org"


def params(**overrides):
    base = dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret",
                kv_path="istioca", kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
                annotation_prefix=VAULT, agent_init_first=None, agent_pre_populate_only=None, extra_env=None,
                extra_annotations=None)
    base.update(overrides)
    return base


GUIDE = desired_state(params())
RELOAD = desired_state(params(extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": True}]))


def controlplane(deployment=None, **spec):
    doc = {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
           "metadata": {"name": "controlplane", "namespace": "tsb"},
           "spec": {"hub": "docker.io/tetrate", "components": {"istio": {"traceSamplingRate": 100}}}}
    if deployment is not None:
        doc["spec"]["components"]["istio"]["kubeSpec"] = {"deployment": deployment}
    doc["spec"].update(spec)
    return doc


def deployment_of(doc):
    return doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]


def merge(target, patch):
    """RFC 7386, written independently of the code under test."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


# ---------------------------------------------------------------------------------------------------------
# desired state
# ---------------------------------------------------------------------------------------------------------

def test_guide_values_give_the_guide_golden_file():
    with open(os.path.join(GOLDEN, "controlplane_guide.yaml")) as f:
        golden = yaml.safe_load(f)
    new, _info = apply_present(controlplane(), CP, GUIDE)
    deployment = deployment_of(new)
    assert deployment["env"] == golden["env"]
    assert deployment["podAnnotations"] == golden["podAnnotations"]


def test_owned_keys_cover_every_annotation_we_set_and_nothing_else():
    desired = desired_state(params(agent_init_first=True, agent_pre_populate_only=False,
                                   extra_annotations={"example.com/team": "mesh"}))
    assert set(desired.annotations) <= set(desired.owned_annotations)
    assert all(key.startswith(VAULT + "/") or key == "example.com/team" for key in desired.owned_annotations)
    assert desired.owned_env == ["ROOT_CA_DIR"]


@pytest.mark.parametrize("overrides, message", [
    (dict(extra_env=[{"name": "ROOT_CA_DIR", "value": "/x"}]), "must not set ROOT_CA_DIR"),
    (dict(extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": None}]), "has no value"),
    (dict(secret_volume_path="/etc/cacerts"), "conflicts with /etc/cacerts"),
    (dict(annotation_prefix="Vault.HashiCorp.com"), "not a valid annotation prefix"),
    (dict(extra_annotations={VAULT + "/role": "x"}), "must not set"),
    (dict(intermediate_mount="pki"), "both 'pki'"),
])
def test_bad_options_are_refused(overrides, message):
    with pytest.raises(MeshPkiError, match="Invalid injector options|has no value") as e:
        desired_state(params(**overrides))
    assert message in str(e.value)


def test_absent_needs_no_extra_env_values():
    desired = desired_state(params(state="absent", extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": None}]))
    assert desired.owned_env == ["ROOT_CA_DIR", "AUTO_RELOAD_PLUGIN_CERTS"]


# ---------------------------------------------------------------------------------------------------------
# present: merge keeps everything else
# ---------------------------------------------------------------------------------------------------------

def test_merge_keeps_other_env_annotations_fields_and_order():
    original = controlplane(
        deployment={
            "replicaCount": 2,
            "env": [{"name": "PILOT_TRACE_SAMPLING", "value": "1"},
                    {"name": "ROOT_CA_DIR", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "y"}}},
                    {"name": "ZZZ", "value": "last"}],
            "podAnnotations": {"prometheus.io/scrape": "true", VAULT + "/role": "old"},
        },
        telemetryStore={"elastic": {"host": "es"}},
    )
    before = copy.deepcopy(original)
    new, info = apply_present(original, CP, RELOAD)
    assert original == before  # not modified in place
    deployment = deployment_of(new)
    assert deployment["env"] == [
        {"name": "PILOT_TRACE_SAMPLING", "value": "1"},
        {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"},  # replaced in place
        {"name": "ZZZ", "value": "last"},
        {"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"},  # appended, bool as "true"
    ]
    assert deployment["podAnnotations"]["prometheus.io/scrape"] == "true"
    assert deployment["podAnnotations"][VAULT + "/role"] == "istiod"
    assert deployment["replicaCount"] == 2
    without = copy.deepcopy(new)
    del without["spec"]["components"]["istio"]["kubeSpec"]
    del before["spec"]["components"]["istio"]["kubeSpec"]
    assert without == before  # nothing else moved
    assert info["warnings"] == []
    again, _info = apply_present(new, CP, RELOAD)
    assert again == new  # idempotent


def test_every_duplicate_of_our_name_is_replaced():
    doc = controlplane(deployment={"env": [{"name": "ROOT_CA_DIR", "value": "/a"}, {"name": "X", "value": "1"},
                                           {"name": "ROOT_CA_DIR", "value": "/b"}]})
    new, _info = apply_present(doc, CP, GUIDE)
    assert [entry.get("value") for entry in deployment_of(new)["env"]] == ["/etc/cacerts-vault", "1",
                                                                           "/etc/cacerts-vault"]


def test_istio_operator_location():
    doc = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "metadata": {"name": "x"},
           "spec": {"profile": "default", "components": {"pilot": {"enabled": True}}}}
    new, _info = apply_present(doc, IOP, GUIDE)
    k8s = new["spec"]["components"]["pilot"]["k8s"]
    assert k8s["env"] == [{"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"}]
    assert k8s["podAnnotations"][VAULT + "/secret-volume-path"] == "/etc/cacerts-vault"
    assert new["spec"]["components"]["pilot"]["enabled"] is True and new["spec"]["profile"] == "default"


def test_helm_env_is_a_map_and_equal_renderings_are_no_change():
    values = {"global": {"hub": "x"}, "pilot": {"env": {"PILOT_X": "1", "AUTO_RELOAD_PLUGIN_CERTS": True}}}
    new, _info = apply_present(values, HELM, RELOAD)
    assert new["pilot"]["env"] == {"PILOT_X": "1", "AUTO_RELOAD_PLUGIN_CERTS": True,  # the chart renders "true"
                                   "ROOT_CA_DIR": "/etc/cacerts-vault"}
    assert list(new["pilot"]["env"]) == ["PILOT_X", "AUTO_RELOAD_PLUGIN_CERTS", "ROOT_CA_DIR"]
    values["pilot"]["env"]["AUTO_RELOAD_PLUGIN_CERTS"] = False
    new, _info = apply_present(values, HELM, RELOAD)
    assert new["pilot"]["env"]["AUTO_RELOAD_PLUGIN_CERTS"] == "true"
    assert new["global"] == {"hub": "x"}


def test_other_injector_prefix_is_left_alone_with_a_warning():
    doc, _info = apply_present(controlplane(), CP, GUIDE)
    openbao = desired_state(params(annotation_prefix=OPENBAO))
    new, info = apply_present(doc, CP, openbao)
    annotations = deployment_of(new)["podAnnotations"]
    assert VAULT + "/agent-inject" in annotations and OPENBAO + "/agent-inject" in annotations
    assert len(info["warnings"]) == 1 and "annotation_prefix=vault.hashicorp.com" in info["warnings"][0]


@pytest.mark.parametrize("doc, message", [
    (controlplane(deployment=["x"]), "spec.components.istio.kubeSpec.deployment is a list, expected a mapping"),
    (controlplane(deployment={"env": {"A": "b"}}), "deployment.env is a mapping, expected a list"),
    (controlplane(deployment={"podAnnotations": ["a"]}), "deployment.podAnnotations is a list, expected a mapping"),
    (["not", "a", "mapping"], "The document is a list"),
])
def test_wrong_shapes_are_refused(doc, message):
    with pytest.raises(MeshPkiError, match=message):
        apply_present(doc, CP, GUIDE)


def test_null_containers_are_filled():
    doc = controlplane(deployment=None)
    doc["spec"]["components"]["istio"]["kubeSpec"] = None
    new, _info = apply_present(doc, CP, GUIDE)
    assert deployment_of(new)["env"][0]["name"] == "ROOT_CA_DIR"


# ---------------------------------------------------------------------------------------------------------
# absent: exactly ours
# ---------------------------------------------------------------------------------------------------------

def test_present_then_absent_gives_the_original_back():
    for original in (controlplane(), controlplane(deployment={"replicaCount": 3})):
        applied, _info = apply_present(original, CP, RELOAD)
        removed, info = apply_absent(applied, CP, RELOAD)
        assert removed == original
        assert info["removed"]["env"] == ["ROOT_CA_DIR", "AUTO_RELOAD_PLUGIN_CERTS"]
        assert len(info["removed"]["annotations"]) == 11


def test_absent_keeps_what_is_not_ours():
    user = {"prometheus.io/scrape": "true", VAULT + "/agent-inject-secret-other.txt": "kv/data/other",
            VAULT + "/agent-inject-template-other.txt": "{{ . }}"}
    doc = controlplane(deployment={"env": [{"name": "KEEP", "value": "1"}], "podAnnotations": dict(user)})
    applied, _info = apply_present(doc, CP, GUIDE)
    new, info = apply_absent(applied, CP, desired_state(params(state="absent")))
    assert deployment_of(new) == {"env": [{"name": "KEEP", "value": "1"}], "podAnnotations": user}
    assert info["kept_env"] == [] and info["warnings"] == []


def test_absent_keeps_a_root_ca_dir_pointing_elsewhere():
    doc = controlplane(deployment={"env": [{"name": "ROOT_CA_DIR", "value": "/etc/cacerts"}]})
    new, info = apply_absent(doc, CP, GUIDE)
    assert new == doc
    assert info["kept_env"] == ["ROOT_CA_DIR"] and "did not set" in info["warnings"][0]
    doc = controlplane(deployment={"env": [{"name": "ROOT_CA_DIR", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}]})
    new, info = apply_absent(doc, CP, GUIDE)
    assert new == doc and info["kept_env"] == ["ROOT_CA_DIR"]


def test_absent_recognises_our_root_ca_dir_by_the_volume_annotation():
    custom = desired_state(params(secret_volume_path="/var/run/istio-ca"))
    applied, _info = apply_present(controlplane(), CP, custom)
    new, info = apply_absent(applied, CP, GUIDE)  # default secret_volume_path given to absent
    assert new == controlplane()
    assert "ROOT_CA_DIR" in info["removed"]["env"] and info["kept_env"] == []


def test_absent_removes_extra_env_and_annotation_names_whatever_their_value():
    doc = controlplane(deployment={"env": [{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "false"}],
                                   "podAnnotations": {"example.com/x": "1", "example.com/y": "2"}})
    desired = desired_state(params(state="absent", extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": None}],
                                   extra_annotations={"example.com/x": "whatever"}))
    new, info = apply_absent(doc, CP, desired)
    assert deployment_of(new) == {"podAnnotations": {"example.com/y": "2"}}
    assert info["removed"] == {"annotations": ["example.com/x"], "env": ["AUTO_RELOAD_PLUGIN_CERTS"]}


def test_absent_prunes_only_what_it_emptied_and_never_spec():
    doc = {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane", "metadata": {"name": "c"},
           "spec": {"components": {"istio": {"kubeSpec": {"deployment": {"env": [
               {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"}]}}}}}}
    new, _info = apply_absent(doc, CP, GUIDE)
    assert new["spec"] == {}
    untouched = controlplane(deployment={})
    assert apply_absent(untouched, CP, GUIDE)[0] == untouched  # an empty mapping the user wrote stays


def test_absent_helm_values():
    values = {"pilot": {"env": {"ROOT_CA_DIR": "/etc/cacerts-vault", "PILOT_X": "1"}}, "global": {}}
    new, _info = apply_absent(values, HELM, GUIDE)
    assert new == {"pilot": {"env": {"PILOT_X": "1"}}, "global": {}}
    new, _info = apply_absent({"pilot": {"env": {"ROOT_CA_DIR": "/etc/cacerts-vault"}}}, HELM, GUIDE)
    assert new == {}


def test_absent_without_the_container_is_a_no_op():
    doc = controlplane()
    assert apply_absent(doc, CP, GUIDE) == (doc, {"warnings": [], "removed": {"annotations": [], "env": []},
                                                  "kept_env": []})


# ---------------------------------------------------------------------------------------------------------
# merge patch
# ---------------------------------------------------------------------------------------------------------

def test_merge_patch_turns_before_into_after():
    before = controlplane(deployment={"env": [{"name": "A", "value": "1"}], "podAnnotations": {"x": "1"}})
    cases = [apply_present(before, CP, RELOAD)[0]]
    cases.append(apply_absent(cases[0], CP, RELOAD)[0])
    assert cases[1] == before
    patch = merge_patch_diff(before, cases[0])
    assert merge(before, patch) == cases[0]
    assert set(patch) == {"spec"} and set(patch["spec"]) == {"components"}  # only what changed
    patch = merge_patch_diff(cases[0], cases[1])
    assert merge(cases[0], patch) == cases[1]
    deployment = patch["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    assert deployment["env"] == [{"name": "A", "value": "1"}]  # a list goes whole
    assert deployment["podAnnotations"][VAULT + "/role"] is None  # a removed key is null
    assert merge_patch_diff(before, before) == {}


# ---------------------------------------------------------------------------------------------------------
# YAML manifests
# ---------------------------------------------------------------------------------------------------------

MULTI = """\
# cluster bootstrap, rendered by hand
apiVersion: v1
kind: Namespace
metadata:
  name: tsb   # the TSB namespace
---
# the control plane
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: controlplane
  namespace: tsb
spec:
  hub: docker.io/tetrate   # registry mirror
  components:
    istio:
      kubeSpec:
        deployment:
          replicaCount: 2   # HA
          env:
            - name: PILOT_X
              value: "1"
      traceSamplingRate: 100
  telemetryStore:
    elastic: {host: es, port: 443}
# end of the control plane
---
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: other
  namespace: tsb
spec: {}
"""


def render(text, target=CP, desired=GUIDE, name=None, namespace=None, absent=False):
    manifest = Manifest("m.yaml", text)
    index = manifest.find(target, name, namespace)
    before = manifest.docs[index] if index is not None else None
    new, _info = (apply_absent if absent else apply_present)(before, target, desired)
    return manifest, index, new, manifest.render(index, new, target.container)


def test_only_the_deployment_mapping_is_rewritten():
    manifest, index, new, (text, notes) = render(MULTI, name="controlplane")
    assert index == 1
    docs = list(yaml.safe_load_all(text))
    assert docs[0] == manifest.docs[0] and docs[2] == manifest.docs[2] and docs[1] == new
    head, tail = MULTI.split("        deployment:\n")
    assert text.startswith(head + "        deployment:\n")  # every byte before the mapping
    assert text.endswith("      traceSamplingRate: 100\n" + tail.split("      traceSamplingRate: 100\n")[1])
    assert "  hub: docker.io/tetrate   # registry mirror\n" in text and "# end of the control plane\n" in text
    assert notes == ["comments inside spec.components.istio.kubeSpec.deployment of 'm.yaml' are not kept: that "
                     "mapping is rewritten (the rest of the file keeps its text)"]
    # the rewritten mapping is at its indentation and in the guide's layout
    assert "          podAnnotations:\n            vault.hashicorp.com/agent-inject: \"true\"\n" in text
    assert "            vault.hashicorp.com/agent-inject-template-ca-key.pem: |\n" \
           "              {{- with secret \"secret/data/istioca\" -}}\n" in text


def test_deepest_existing_parent_is_rewritten_when_the_container_is_missing():
    text = MULTI.replace("      kubeSpec:\n        deployment:\n          replicaCount: 2   # HA\n"
                         "          env:\n            - name: PILOT_X\n              value: \"1\"\n", "")
    manifest, _index, new, (out, notes) = render(text, name="controlplane")
    assert list(yaml.safe_load_all(out))[1] == new
    assert "    istio:\n      traceSamplingRate: 100\n      kubeSpec:\n        deployment:\n" in out
    assert "# registry mirror" in out and notes == []


def test_flow_style_container_falls_back_to_the_document():
    text = ("# keep me\napiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata: {name: iop}\n"
            "spec: {components: {pilot: {k8s: {replicaCount: 1}}}}\n")
    _manifest, _index, new, (out, notes) = render(text, target=IOP)
    assert out.startswith("# keep me\napiVersion: install.istio.io/v1alpha1\n")
    assert yaml.safe_load(out) == new and "rewritten" not in " ".join(notes)


def test_anchors_are_expanded_and_still_read_back():
    text = ("apiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata: {name: c}\n"
            "x: &anchor {a: 1}\nspec:\n  components:\n    istio:\n      kubeSpec:\n        deployment:\n"
            "          resources: *anchor\n")
    _manifest, _index, new, (out, _notes) = render(text)
    assert yaml.safe_load(out) == new


def test_crlf_files_stay_crlf():
    text = MULTI.replace("\n", "\r\n")
    _manifest, _index, new, (out, _notes) = render(text, name="controlplane")
    assert "\n" not in out.replace("\r\n", "")
    assert list(yaml.safe_load_all(out))[1] == new


def test_helm_values_file_created_extended_and_refused():
    _m, index, new, (out, _notes) = render("", target=HELM)
    assert index is None and yaml.safe_load(out) == new == {"pilot": {
        "env": {"ROOT_CA_DIR": "/etc/cacerts-vault"}, "podAnnotations": GUIDE.annotations}}
    _m, index, new, (out, _notes) = render("# values for istiod\n", target=HELM)
    assert out.startswith("# values for istiod\npilot:\n") and yaml.safe_load(out) == new
    text = "global:\n  hub: x   # mirror\npilot:\n  autoscaleEnabled: false\n"
    _m, index, new, (out, _notes) = render(text, target=HELM)
    assert out.startswith("global:\n  hub: x   # mirror\npilot:\n  autoscaleEnabled: false\n  env:\n")
    with pytest.raises(MeshPkiError, match="has 2 YAML documents; a values file has one"):
        Manifest("v.yaml", "a: 1\n---\nb: 2\n").find(HELM)
    with pytest.raises(MeshPkiError, match="holds a list, expected a mapping"):
        Manifest("v.yaml", "- a\n").find(HELM)


def test_find_errors_name_the_documents():
    manifest = Manifest("m.yaml", MULTI)
    with pytest.raises(MeshPkiError) as e:
        manifest.find(CP)
    assert "2 documents in 'm.yaml' are a ControlPlane (install.tetrate.io/v1alpha1)" in str(e.value)
    assert "set name (and namespace)" in str(e.value)
    with pytest.raises(MeshPkiError) as e:
        manifest.find(IOP)
    assert str(e.value) == (
        "No document in 'm.yaml' is a IstioOperator (install.istio.io/v1alpha1). Documents found: #1: Namespace v1 "
        "tsb; #2: ControlPlane install.tetrate.io/v1alpha1 tsb/controlplane; #3: ControlPlane "
        "install.tetrate.io/v1alpha1 tsb/other. Check target, name and namespace.")
    with pytest.raises(MeshPkiError, match="named 'controlplane' in namespace 'istio-system'"):
        manifest.find(CP, "controlplane", "istio-system")
    assert manifest.find(CP, "other", "tsb") == 2


def test_invalid_yaml_is_reported_with_its_position():
    with pytest.raises(MeshPkiError) as e:
        Manifest("bad.yaml", "spec:\n  a: [1, 2\n  b: 3\n")
    assert str(e.value).startswith("The file 'bad.yaml' is not valid YAML:") and "line" in str(e.value)


def test_load_errors(tmp_path):
    with pytest.raises(MeshPkiError, match="does not exist"):
        Manifest.load(str(tmp_path / "nope.yaml"))
    assert Manifest.load(str(tmp_path / "nope.yaml"), missing_ok=True).docs == []
    with pytest.raises(MeshPkiError, match="is a directory"):
        Manifest.load(str(tmp_path))
    (tmp_path / "latin1.yaml").write_bytes(b"a: \xe9\n")
    with pytest.raises(MeshPkiError, match="is not UTF-8"):
        Manifest.load(str(tmp_path / "latin1.yaml"))


def test_dump_yaml_is_stable_and_quotes_only_what_needs_it():
    text = dump_yaml({"b": "true", "a": "1", "c": "x\ny\n", "d": "plain"})
    assert text == 'b: "true"\na: "1"\nc: |\n  x\n  y\nd: plain\n'


# ---------------------------------------------------------------------------------------------------------
# live loop (stub API; the real client against the fake API server is in tests/integration)
# ---------------------------------------------------------------------------------------------------------

class StubApi(object):
    def __init__(self, obj, conflicts=0):
        self.obj = obj
        self.conflicts = conflicts
        self.calls = []

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        self.calls.append(("get", name))
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        self.calls.append(("patch", kwargs.get("dry_run"), kwargs.get("_content_type"),
                           body["metadata"]["resourceVersion"]))
        if self.conflicts:
            self.conflicts -= 1
            self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)
            raise ApiException(status=409, reason="Conflict")
        result = merge(self.obj, body)
        if kwargs.get("dry_run") != "All":
            self.obj = result
        return result


def live(api, check_mode=False, desired=GUIDE):
    return reconcile_live(api, CP, "tsb", "controlplane", lambda doc: apply_present(doc, CP, desired), check_mode)


def stored():
    doc = controlplane()
    doc["metadata"]["resourceVersion"] = "7"
    doc["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    return doc


def test_live_patch_is_a_merge_patch_guarded_by_resource_version():
    api = StubApi(stored())
    outcome = live(api)
    assert outcome["changed"] is True and outcome["attempts"] == 1
    assert api.calls == [("get", "controlplane"), ("patch", None, "application/merge-patch+json", "7")]
    assert "managedFields" not in outcome["before"]["metadata"]
    assert deployment_of(api.obj)["podAnnotations"] == GUIDE.annotations
    api.calls = []
    assert live(api)["changed"] is False and api.calls == [("get", "controlplane")]  # nothing sent


def test_live_check_mode_sends_a_dry_run_only():
    api = StubApi(stored())
    outcome = live(api, check_mode=True)
    assert outcome["changed"] is True
    assert api.calls[-1][1] == "All" and "kubeSpec" not in api.obj["spec"]["components"]["istio"]


def test_live_conflict_rereads_and_retries_bounded():
    api = StubApi(stored(), conflicts=2)
    outcome = live(api)
    assert outcome["attempts"] == 3
    assert [call[-1] for call in api.calls if call[0] == "patch"] == ["7", "8", "9"]  # fresh resourceVersion
    api = StubApi(stored(), conflicts=100)
    with pytest.raises(MeshPkiError) as e:
        live(api)
    assert "6 conflicting updates (409) in a row" in str(e.value)
    assert len([call for call in api.calls if call[0] == "patch"]) == 6


def test_live_errors_are_translated():
    class Forbidden(StubApi):
        def patch_namespaced_custom_object(self, *args, **kwargs):
            raise ApiException(status=403, reason="Forbidden")

    with pytest.raises(MeshPkiError) as e:
        live(Forbidden(stored()))
    assert str(e.value).startswith("Failed to patch ControlPlane 'tsb/controlplane' (install.tetrate.io/v1alpha1, "
                                   "resource controlplanes.install.tetrate.io): forbidden")
    assert json.dumps(e.value.details) == '{"status": 403}'


# ---------------------------------------------------------------------------------------------------------
# the task of tsb_controlplane_annotations (manage_annotations): file mode and live mode, result and warnings
# ---------------------------------------------------------------------------------------------------------

class TaskModule(ModuleStub):
    """What manage_annotations uses of the module, file helpers included (no SELinux here)."""

    def selinux_enabled(self):
        return False

    def backup_local(self, path):
        backup = path + ".backup"
        with open(path, "rb") as source, open(backup, "wb") as copy_:
            copy_.write(source.read())
        return backup


def task_params(**overrides):
    values = params(target="tsb_controlplane", name=None, namespace=None, path=None, max_manifest_size=4194304,
                    backup=False, kubernetes_auth_mount="kubernetes", vault_namespace=None, kubeconfig=None,
                    context=None)
    values.update(overrides)
    return values


def manifest_file(tmp_path, doc=None):
    path = tmp_path / "controlplane.yaml"
    path.write_text("# the cluster's ControlPlane\n" + dump_yaml(doc if doc is not None else controlplane()))
    return str(path)


def test_task_file_mode_merges_writes_and_returns_what_it_manages(tmp_path):
    path = manifest_file(tmp_path)
    module = TaskModule(task_params(path=path))
    result = manage_annotations(module)
    assert result["changed"] is True and result["applied_to"] == "file" and result["manifest"] == path
    assert (result["target"], result["api_version"], result["kind"]) == (
        "tsb_controlplane", "install.tetrate.io/v1alpha1", "ControlPlane")
    assert (result["name"], result["namespace"]) == ("controlplane", "tsb")
    assert result["env"] == GUIDE.env and result["annotations"] == GUIDE.annotations
    assert result["removed"] == {"annotations": [], "env": []} and result["kept_env"] == []
    assert "backup_file" not in result and module.warnings == []
    assert result["diff"]["before_header"] == "%s (ControlPlane)" % path
    with open(path) as f:
        text = f.read()
    assert text.startswith("# the cluster's ControlPlane\n")  # the rest of the file keeps its text
    assert deployment_of(yaml.safe_load(text))["podAnnotations"] == GUIDE.annotations
    again = manage_annotations(TaskModule(task_params(path=path)))
    assert again["changed"] is False and again["diff"]["before"] == again["diff"]["after"]


def test_task_file_mode_check_mode_writes_nothing(tmp_path):
    path = manifest_file(tmp_path)
    with open(path) as f:
        original = f.read()
    result = manage_annotations(TaskModule(task_params(path=path, backup=True), check_mode=True))
    assert result["changed"] is True and "podAnnotations" in result["diff"]["after"]
    assert "backup_file" not in result
    with open(path) as f:
        assert f.read() == original
    assert os.listdir(str(tmp_path)) == ["controlplane.yaml"]


def test_task_file_mode_backup(tmp_path):
    path = manifest_file(tmp_path)
    result = manage_annotations(TaskModule(task_params(path=path, backup=True)))
    assert result["backup_file"] == path + ".backup" and os.path.exists(result["backup_file"])


def test_task_helm_values_file_is_created(tmp_path):
    path = str(tmp_path / "values.yaml")
    result = manage_annotations(TaskModule(task_params(target="helm_values", path=path)))
    assert result["changed"] is True and result["api_version"] is None and result["kind"] is None
    assert result["name"] is None and result["diff"]["before"] == ""
    with open(path) as f:
        assert yaml.safe_load(f)["pilot"]["env"]["ROOT_CA_DIR"] == "/etc/cacerts-vault"


def test_task_refuses_a_max_manifest_size_below_one(tmp_path):
    with pytest.raises(MeshPkiError) as err:
        manage_annotations(TaskModule(task_params(path=manifest_file(tmp_path), max_manifest_size=0)))
    assert str(err.value) == ("max_manifest_size is 0: give the largest manifest size to read, in bytes (default "
                              "4194304, 4 MiB).")


def test_task_absent_returns_what_it_removed(tmp_path):
    path = manifest_file(tmp_path)
    manage_annotations(TaskModule(task_params(path=path)))
    result = manage_annotations(TaskModule(task_params(path=path, state="absent")))
    assert result["changed"] is True and result["env"] == [] and result["annotations"] == {}
    assert result["removed"]["env"] == ["ROOT_CA_DIR"] and VAULT + "/agent-inject" in result["removed"]["annotations"]
    with open(path) as f:
        assert yaml.safe_load(f) == controlplane()


def test_task_warns_about_the_other_injector_prefix(tmp_path):
    doc = controlplane({"podAnnotations": {OPENBAO + "/agent-inject": "true"}})
    module = TaskModule(task_params(path=manifest_file(tmp_path, doc)))
    manage_annotations(module)
    assert len(module.warnings) == 1 and "another injector prefix (%s/agent-inject)" % OPENBAO in module.warnings[0]


def test_task_kubernetes_auth_mount_sets_the_auth_path(tmp_path):
    # The alias auth_mount is mapped by AnsibleModule: tests/unit/plugins/modules/test_runtime_wiring.py.
    values = task_params(path=manifest_file(tmp_path), kubernetes_auth_mount="/kubernetes-east/")
    result = manage_annotations(TaskModule(values))
    assert result["annotations"][VAULT + "/auth-path"] == "auth/kubernetes-east"


def test_task_an_unusable_kubernetes_auth_mount_is_named_by_its_option(tmp_path):
    with pytest.raises(MeshPkiError) as err:
        manage_annotations(TaskModule(task_params(path=manifest_file(tmp_path), kubernetes_auth_mount="kube*")))
    assert str(err.value).startswith("Invalid injector options: kubernetes_auth_mount 'kube*' contains unsupported")


def test_task_live_mode_needs_name_and_namespace():
    with pytest.raises(MeshPkiError) as err:
        manage_annotations(TaskModule(task_params(name="controlplane")))
    assert str(err.value) == ("Live mode needs namespace: set the namespace of the ControlPlane to edit, or set path "
                              "to edit a manifest file instead.")


def test_task_live_mode_patches_and_returns_the_object(monkeypatch):
    api = StubApi(stored())
    monkeypatch.setattr(controlplane_mod, "custom_objects_api", lambda params, warn: api)
    result = manage_annotations(TaskModule(task_params(name="controlplane", namespace="tsb")))
    assert result["changed"] is True and result["applied_to"] == "live" and result["attempts"] == 1
    assert (result["name"], result["namespace"]) == ("controlplane", "tsb")
    assert deployment_of(result["object"])["podAnnotations"] == GUIDE.annotations
    assert result["resource_version"] == "7" and "manifest" not in result  # the stub keeps the version
    assert result["diff"]["before_header"] == "ControlPlane tsb/controlplane"
    assert [call[0] for call in api.calls] == ["get", "patch"]


def test_task_live_check_mode_reports_the_version_read(monkeypatch):
    api = StubApi(stored())
    monkeypatch.setattr(controlplane_mod, "custom_objects_api", lambda params, warn: api)
    result = manage_annotations(TaskModule(task_params(name="controlplane", namespace="tsb"), check_mode=True))
    assert result["changed"] is True and result["resource_version"] == "7"
    assert api.calls[-1][1] == "All" and "kubeSpec" not in api.obj["spec"]["components"]["istio"]
