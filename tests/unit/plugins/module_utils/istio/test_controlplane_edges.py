# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""istio/controlplane.py at its edges (the mutation survivors of issue #16 point 6): what the live mode sends to
the Kubernetes API besides the patch (timeouts, field manager, the client built from the options), how a failed
read is worded, a merge patch between values of different shapes that shares nothing with the object, a
ROOT_CA_DIR set with valueFrom, the options that reach the agent templates (agent_pre_populate_only, kv_mount,
trust_bundle_path), ISTIO_MULTIROOT_MESH in extra_env, and the options named in warnings and errors."""

import copy

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio import controlplane as controlplane_mod
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import (
    TARGETS,
    apply_absent,
    apply_present,
    custom_objects_api,
    desired_state,
    merge_patch_diff,
    reconcile_live,
)

CP, IOP = TARGETS["tsb_controlplane"], TARGETS["istio_operator"]
VAULT = "vault.hashicorp.com"
OPENBAO = "openbao.openbao.org"


def params(**overrides):
    values = dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret",
                  kv_path="istioca", kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
                  annotation_prefix=VAULT, agent_init_first=None, agent_pre_populate_only=None, extra_env=None,
                  extra_annotations=None)
    values.update(overrides)
    return values


GUIDE = desired_state(params())


def controlplane(deployment=None):
    doc = {"apiVersion": "install.tetrate.io/v1alpha1", "kind": "ControlPlane",
           "metadata": {"name": "controlplane", "namespace": "tsb", "resourceVersion": "7"},
           "spec": {"components": {"istio": {}}}}
    if deployment is not None:
        doc["spec"]["components"]["istio"]["kubeSpec"] = {"deployment": deployment}
    return doc


class RecordingApi(object):
    """CustomObjectsApi's two calls, recording every keyword argument; ``fail_get``: an exception for the read."""

    def __init__(self, obj, fail_get=None):
        self.obj = obj
        self.fail_get = fail_get
        self.calls = []

    def get_namespaced_custom_object(self, group, version, namespace, plural, name, **kwargs):
        self.calls.append(("get", kwargs))
        if self.fail_get is not None:
            raise self.fail_get
        return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body, **kwargs):
        self.calls.append(("patch", kwargs))
        return copy.deepcopy(self.obj)


def live(api, check_mode=False):
    return reconcile_live(api, CP, "tsb", "controlplane", lambda doc: apply_present(doc, CP, GUIDE), check_mode)


# ---------------------------------------------------------------------------------------------------------
# live mode: what goes to the API
# ---------------------------------------------------------------------------------------------------------

def test_live_requests_carry_a_timeout_and_the_field_manager():
    api = RecordingApi(controlplane())
    live(api)
    (get, get_kwargs), (patch, patch_kwargs) = api.calls
    assert (get, patch) == ("get", "patch")
    assert get_kwargs == {"_request_timeout": 60}
    assert patch_kwargs == {"dry_run": None, "field_manager": "meshpki.vault_ca",
                            "_content_type": "application/merge-patch+json", "_request_timeout": 60}


def test_a_failed_read_says_it_was_reading():
    api = RecordingApi(controlplane(), fail_get=ApiException(status=404, reason="Not Found"))
    with pytest.raises(MeshPkiError) as err:
        live(api)
    assert str(err.value).startswith("Failed to read ControlPlane 'tsb/controlplane' (install.tetrate.io/v1alpha1, "
                                     "resource controlplanes.install.tetrate.io)")


def test_the_api_is_built_on_the_client_of_the_options(monkeypatch):
    kubernetes = pytest.importorskip("kubernetes")
    client = kubernetes.client.ApiClient()
    seen = []

    def api_client(options, warn):
        seen.append((options, warn))
        return client

    monkeypatch.setattr(controlplane_mod, "api_client", api_client)
    options = {"kubeconfig": "/nowhere", "context": "east"}
    api = custom_objects_api(options, print)
    assert isinstance(api, kubernetes.client.CustomObjectsApi) and api.api_client is client
    assert seen == [(options, print)]


# ---------------------------------------------------------------------------------------------------------
# merge patch
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("before, after", [
    ({"a": None}, {"a": {"b": 1}}),        # a mapping where there was null
    ({"a": {"b": 1}}, {"a": [{"b": 1}]}),  # a list where there was a mapping
    ({"a": "x"}, {"a": {"b": 1}}),
])
def test_a_value_of_another_shape_is_replaced_whole(before, after):
    assert merge_patch_diff(before, after) == after


def test_the_merge_patch_shares_nothing_with_the_new_object():
    before = {"spec": {"env": [{"name": "A", "value": "1"}]}}
    after = {"spec": {"env": [{"name": "A", "value": "2"}], "new": {"deep": {"x": 1}}}}
    patch = merge_patch_diff(before, after)
    assert patch == {"spec": {"env": [{"name": "A", "value": "2"}], "new": {"deep": {"x": 1}}}}
    patch["spec"]["env"][0]["value"] = "changed"
    patch["spec"]["new"]["deep"]["x"] = "changed"
    assert after == {"spec": {"env": [{"name": "A", "value": "2"}], "new": {"deep": {"x": 1}}}}


# ---------------------------------------------------------------------------------------------------------
# desired state, warnings and errors
# ---------------------------------------------------------------------------------------------------------

def test_agent_pre_populate_only_is_an_annotation():
    desired = desired_state(params(agent_pre_populate_only=True))
    assert desired.annotations[VAULT + "/agent-pre-populate-only"] == "true"
    assert VAULT + "/agent-pre-populate-only" not in GUIDE.annotations


def test_the_other_prefix_warning_names_the_prefix_to_remove():
    doc = controlplane({"podAnnotations": {OPENBAO + "/agent-inject": "true", OPENBAO + "/role": "istiod"}})
    _new, info = apply_present(doc, CP, GUIDE)
    (warning,) = info["warnings"]
    assert warning.endswith("remove them with state=absent and annotation_prefix=%s." % OPENBAO)


def test_absent_keeps_a_root_ca_dir_set_with_value_from_even_beside_our_value():
    entry = {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault", "valueFrom": {"configMapKeyRef": {"name": "x"}}}
    new, info = apply_absent(controlplane({"env": [entry]}), CP, desired_state(params(state="absent")))
    assert new["spec"]["components"]["istio"]["kubeSpec"]["deployment"]["env"] == [entry]
    assert info["removed"]["env"] == [] and info["kept_env"] == ["ROOT_CA_DIR"]


def test_absent_multiroot_names_what_a_wrong_shape_was_to_hold():
    doc = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "metadata": {"name": "iop"},
           "spec": {"meshConfig": {"defaultConfig": ["not", "a", "mapping"]}}}
    with pytest.raises(MeshPkiError) as err:
        apply_absent(doc, IOP, desired_state(params(state="absent", istio_multiroot=True)))
    assert str(err.value).startswith("spec.meshConfig.defaultConfig is a list, expected a mapping")
    assert str(err.value).endswith("can hold the mesh's default proxy metadata.")


# ---------------------------------------------------------------------------------------------------------
# more edges (a second sample of mutants, seed 2)
# ---------------------------------------------------------------------------------------------------------

def test_a_live_run_that_changes_nothing_returns_the_object_read():
    api = RecordingApi(controlplane())
    first = live(api)
    api.obj = first["after"]
    again = live(api)
    assert again["changed"] is False and again["object"] == again["before"] == first["after"]
    assert [call for call, _kwargs in api.calls] == ["get", "patch", "get"]


def test_without_the_kubernetes_library_live_mode_says_file_mode_does_not_need_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "kubernetes.client", None)
    with pytest.raises(MeshPkiError) as err:
        custom_objects_api({}, print)
    assert "pip install kubernetes" in str(err.value) and "file mode (path) does not need it" in str(err.value)


def test_the_kv_mount_and_the_trust_bundle_path_reach_the_templates():
    desired = desired_state(params(kv_mount="kv", trust_bundle_path="istioca-roots"))
    templates = "\n".join(value for key, value in desired.annotations.items() if "agent-inject-template" in key)
    assert 'secret "kv/data/istioca"' in templates and 'secret "kv/data/istioca-roots"' in templates
    assert "pki/cert/ca" not in templates


def test_an_extra_env_entry_without_value_is_named():
    with pytest.raises(MeshPkiError) as err:
        desired_state(params(extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS"}]))
    assert str(err.value).startswith("extra_env entry 'AUTO_RELOAD_PLUGIN_CERTS' has no value")


@pytest.mark.parametrize("overrides", [
    dict(istio_multiroot=False, extra_env=[{"name": "ISTIO_MULTIROOT_MESH", "value": "false"}]),
    dict(istio_multiroot=True, state="absent", extra_env=[{"name": "ISTIO_MULTIROOT_MESH"}]),
    dict(istio_multiroot=True, extra_env=[{"name": "ISTIO_MULTIROOT_MESH", "value": "true"}]),
])
def test_extra_env_may_set_istio_multiroot_mesh_unless_it_contradicts_istio_multiroot(overrides):
    desired = desired_state(params(**overrides))
    assert "ISTIO_MULTIROOT_MESH" in desired.owned_env
    with pytest.raises(MeshPkiError, match="extra_env sets ISTIO_MULTIROOT_MESH to 'false' while istio_multiroot"):
        desired_state(params(istio_multiroot=True, extra_env=[{"name": "ISTIO_MULTIROOT_MESH", "value": "false"}]))


def test_a_container_of_the_wrong_shape_names_what_it_must_hold():
    doc = controlplane()
    doc["spec"]["components"]["istio"]["kubeSpec"] = {"deployment": ["not", "a", "mapping"]}
    with pytest.raises(MeshPkiError) as err:
        apply_present(doc, CP, GUIDE)
    assert str(err.value).startswith("spec.components.istio.kubeSpec.deployment is a list, expected a mapping")
    assert str(err.value).endswith("can hold env and podAnnotations.")
