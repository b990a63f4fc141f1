# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""istio/manifest.py beyond hostile input (test_manifest.py) and the merge (test_controlplane.py): how documents
and values are named in errors, what a re-serialised mapping looks like at the edges (no final newline, a block
scalar last, a file rewritten as a whole), the notes of a multi-region edit, edit_manifest's options, and
write_file's temporary file, SELinux context, new-file mode and errors (the mutation survivors of issue #16
point 6)."""

import datetime
import os
import stat

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
from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.manifest import (
    Manifest,
    dump_yaml,
    render_regions,
    type_name,
    write_file,
)
from harness.module_stub import ModuleStub

CP, IOP, HELM = TARGETS["tsb_controlplane"], TARGETS["istio_operator"], TARGETS["helm_values"]


def params(**overrides):
    values = dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret",
                  kv_path="istioca", kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
                  annotation_prefix="vault.hashicorp.com", agent_init_first=None, agent_pre_populate_only=None,
                  extra_env=None, extra_annotations=None, istio_multiroot=False)
    values.update(overrides)
    return values


GUIDE = desired_state(params())
MULTIROOT = desired_state(params(istio_multiroot=True))


def render(text, target, desired=GUIDE, path="m.yaml"):
    manifest = Manifest(path, text)
    index = manifest.find(target)
    new, _info = apply_present(manifest.docs[index], target, desired)
    out, notes = manifest.render(index, new, target.container)
    return new, out, notes


# ---------------------------------------------------------------------------------------------------------
# names in messages
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, name", [
    ({}, "a mapping"), ([], "a list"), ("x", "a string"), (True, "a boolean"), (1, "a number"), (1.5, "a number"),
    (datetime.date(2026, 1, 1), "date"), (None, "NoneType")])
def test_type_name_says_what_a_yaml_value_is(value, name):
    assert type_name(value) == name


def test_documents_found_are_described_empty_kind_or_missing_fields():
    manifest = Manifest("m.yaml", "--- null\n---\n- a\n---\nkind: ControlPlane\n")
    with pytest.raises(MeshPkiError) as err:
        manifest.find(CP)
    assert "Documents found: #1: empty; #2: a list; #3: ControlPlane (no apiVersion) (no name). Check" in str(
        err.value)


# ---------------------------------------------------------------------------------------------------------
# rendering at the edges
# ---------------------------------------------------------------------------------------------------------

def test_dump_yaml_keeps_a_long_value_on_one_line():
    value = " ".join(["word"] * 40)
    assert dump_yaml({"a": value}) == "a: %s\n" % value


def test_a_new_mapping_is_appended_to_a_file_without_a_final_newline():
    text = ("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata:\n  name: iop\nspec:\n"
            "  components:\n    pilot:\n      enabled: true   # kept")
    new, out, notes = render(text, IOP)
    assert out.startswith(text + "\n      k8s:\n        env:\n") and notes == []
    assert yaml.safe_load(out) == new


def test_a_mapping_ending_in_a_block_scalar_is_rewritten_alone():
    text = ("apiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp\nspec:\n"
            "  components:\n    istio:\n      kubeSpec:\n        deployment:\n          podAnnotations:\n"
            "            note: |\n              two\n              lines\n"
            "      traceSamplingRate: 100   # sampled\n")
    new, out, notes = render(text, CP)
    assert out.endswith("\n      traceSamplingRate: 100   # sampled\n") and notes == []
    assert yaml.safe_load(out) == new


FLOW_CP = "{apiVersion: install.tetrate.io/v1alpha1, kind: ControlPlane, metadata: {name: cp}, spec: {}}\n"


def test_a_document_in_flow_style_rewrites_the_file_as_a_whole():
    text = "# the namespace\napiVersion: v1\nkind: Namespace\nmetadata: {name: tsb}\n--- null\n---\n" + FLOW_CP
    manifest = Manifest("m.yaml", text)
    new, out, notes = render(text, CP)
    assert out == "---\n" + dump_yaml(manifest.docs[0]) + "---\n---\n" + dump_yaml(new)
    assert notes == ["'m.yaml' was rewritten as a whole: its comments and formatting were not kept"]
    crlf = Manifest("m.yaml", FLOW_CP.replace("\n", "\r\n"))
    assert crlf.render(0, new, CP.container)[0] == dump_yaml(new).replace("\n", "\r\n")


def test_each_region_of_a_multi_region_edit_names_the_file_in_its_note():
    text = ("pilot:\n  autoscaleEnabled: false   # pinned\nmeshConfig:\n  defaultConfig:\n    proxyMetadata:\n"
            "      FOO: \"1\"   # the user's\n  accessLogFile: /dev/stdout   # kept\n")
    manifest = Manifest("values.yaml", text)
    before = manifest.docs[0]
    after, _info = apply_present(before, HELM, MULTIROOT)
    out, notes = render_regions(manifest, 0, before, after, HELM.regions)
    assert yaml.safe_load(out) == after and "  accessLogFile: /dev/stdout   # kept\n" in out
    assert notes == ["comments inside %s of 'values.yaml' are not kept: that mapping is rewritten (the rest of the "
                     "file keeps its text)" % label for label in ("pilot", "meshConfig.defaultConfig.proxyMetadata")]


def test_a_document_nested_too_deeply_is_refused_naming_the_file():
    with pytest.raises(MeshPkiError) as err:
        Manifest("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "'deep.yaml'" in str(err.value) and "nested too deeply" in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# edit_manifest through the task
# ---------------------------------------------------------------------------------------------------------

class TaskModule(ModuleStub):
    def selinux_enabled(self):
        return False


def task_params(**overrides):
    values = params(target="tsb_controlplane", name=None, namespace=None, path=None, max_manifest_size=4194304,
                    backup=False, kubernetes_auth_mount="kubernetes", vault_namespace=None)
    values.update(overrides)
    return values


def two_namespaces(tmp_path):
    path = tmp_path / "cp.yaml"
    path.write_text("".join("---\napiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata:\n"
                            "  name: cp\n  namespace: %s\nspec: {hub: x}\n" % ns for ns in ("east", "west")))
    return str(path)


def test_namespace_picks_the_document_among_objects_of_one_name(tmp_path):
    path = two_namespaces(tmp_path)
    result = manage_annotations(TaskModule(task_params(path=path, name="cp", namespace="west")))
    assert result["changed"] is True and (result["name"], result["namespace"]) == ("cp", "west")
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    assert docs[0]["spec"] == {"hub": "x"} and "components" in docs[1]["spec"]


def test_a_max_manifest_size_of_one_byte_is_a_limit_like_any_other(tmp_path):
    path = two_namespaces(tmp_path)
    with pytest.raises(MeshPkiError) as err:
        manage_annotations(TaskModule(task_params(path=path, name="cp", max_manifest_size=1)))
    assert str(err.value).startswith("Refused to read the manifest '%s': it is " % path)
    assert "over the limit of 1 bytes" in str(err.value)


def test_a_manifest_that_vanishes_between_the_checks_and_the_stat_is_an_error(tmp_path, monkeypatch):
    path = two_namespaces(tmp_path)
    monkeypatch.setattr(os.path, "exists", lambda p: True)
    monkeypatch.setattr(os.path, "isdir", lambda p: False)
    monkeypatch.setattr(os.path, "islink", lambda p: False)
    real_stat = os.stat

    def stat_(p, *args, **kwargs):
        if str(p) == path:
            raise FileNotFoundError(2, "No such file or directory")
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat_)
    with pytest.raises(MeshPkiError) as err:
        Manifest.load(path)
    monkeypatch.undo()
    assert str(err.value) == "Cannot read the manifest '%s': No such file or directory" % path


# ---------------------------------------------------------------------------------------------------------
# write_file
# ---------------------------------------------------------------------------------------------------------

class SELinuxModule(object):
    """What write_file uses of AnsibleModule, with SELinux on: the context calls are recorded."""

    def __init__(self):
        self.calls = []

    def selinux_enabled(self):
        return True

    def selinux_context(self, path):
        self.calls.append(("selinux_context", path))
        return ["system_u", "object_r", "etc_t", "s0"]

    def selinux_default_context(self, path):
        self.calls.append(("selinux_default_context", path))
        return ["system_u", "object_r", "admin_home_t", "s0"]

    def set_context_if_different(self, path, context, changed, diff=None):
        self.calls.append(("set_context_if_different", path, context, changed))
        assert os.path.exists(path)
        return changed


def test_a_new_file_gets_the_default_context_and_the_umask_mode(tmp_path):
    path = str(tmp_path / "values.yaml")
    module = SELinuxModule()
    old = os.umask(0o027)
    try:
        assert write_file(module, path, "a: 1\n", backup=True) is None
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    (_name, default_for), (name, tmp, context, changed) = module.calls
    assert (_name, default_for) == ("selinux_default_context", path)
    assert (name, context, changed) == ("set_context_if_different", ["system_u", "object_r", "admin_home_t", "s0"],
                                        False)
    # the temporary file: next to the file, hidden, named after it, .tmp (what GitOps watchers ignore)
    assert os.path.dirname(tmp) == str(tmp_path) and os.path.basename(tmp).startswith(".values.yaml.")
    assert tmp.endswith(".tmp") and os.listdir(str(tmp_path)) == ["values.yaml"]


def test_an_existing_file_keeps_its_context(tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text("a: 1\n")
    module = SELinuxModule()
    write_file(module, str(path), "a: 2\n", backup=False)
    assert module.calls[0] == ("selinux_context", str(path))
    assert module.calls[1][2] == ["system_u", "object_r", "etc_t", "s0"] and path.read_text() == "a: 2\n"


def test_write_errors_name_the_path_given_and_leave_no_temporary_file(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("a: 1\n")
    with pytest.raises(MeshPkiError) as err:
        write_file(TaskModule({}), str(plain / "x.yaml"), "a: 2\n", backup=False)
    assert str(err.value) == "Cannot write the manifest '%s/x.yaml': Not a directory" % plain
    directory = tmp_path / "manifests"
    directory.mkdir()
    with pytest.raises(MeshPkiError) as err:
        write_file(TaskModule({}), str(directory), "a: 2\n", backup=False)
    assert str(err.value) == "Cannot write the manifest '%s': Is a directory; it was left as it was." % directory
    assert sorted(os.listdir(str(tmp_path))) == ["manifests", "plain.yaml"] and os.listdir(str(directory)) == []


def test_a_region_removed_as_a_whole_rewrites_only_its_parent():
    # state=absent with istio_multiroot: proxyMetadata held only our key and goes; defaultConfig stays
    text = ("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata:\n  name: iop\nspec:\n"
            "  hub: x   # the mirror\n  components:\n    pilot:\n      k8s:\n        replicaCount: 2   # HA\n"
            "  meshConfig:\n    accessLogFile: /dev/stdout   # the log\n    defaultConfig:\n"
            "      holdApplicationUntilProxyStarts: true\n")
    manifest = Manifest("iop.yaml", text)
    present, _info = apply_present(manifest.docs[0], IOP, MULTIROOT)
    out, _notes = render_regions(manifest, 0, manifest.docs[0], present, IOP.regions)
    manifest = Manifest("iop.yaml", out)
    absent, _info = apply_absent(manifest.docs[0], IOP, desired_state(params(state="absent", istio_multiroot=True)))
    out, notes = render_regions(manifest, 0, manifest.docs[0], absent, IOP.regions)
    assert yaml.safe_load(out) == absent and absent["spec"]["meshConfig"] == {
        "accessLogFile": "/dev/stdout", "defaultConfig": {"holdApplicationUntilProxyStarts": True}}
    assert "  hub: x   # the mirror\n" in out and "    accessLogFile: /dev/stdout   # the log\n" in out
    assert not [note for note in notes if "of 'iop.yaml'" not in note or "inside spec of" in note]


# ---------------------------------------------------------------------------------------------------------
# more edges (a second sample of mutants, seed 2)
# ---------------------------------------------------------------------------------------------------------

def test_a_flow_mapping_closed_on_its_own_line_ends_the_rewritten_mapping():
    text = ("apiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp\nspec:\n"
            "  components:\n    istio:\n      kubeSpec:\n        deployment:\n          resources: {\n"
            "            cpu: 1\n            }\n      traceSamplingRate: 100   # sampled\n")
    new, out, notes = render(text, CP)
    assert yaml.safe_load(out) == new and notes == []
    assert out.endswith("\n      traceSamplingRate: 100   # sampled\n")


def test_a_comment_line_at_the_margin_inside_the_rewritten_mapping_is_reported():
    text = ("apiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp\nspec:\n"
            "  components:\n    istio:\n      kubeSpec:\n        deployment:\n          replicaCount: 2\n"
            "# two replicas for HA\n          hub: x\n")
    _new, _out, notes = render(text, CP)
    assert notes == ["comments inside spec.components.istio.kubeSpec.deployment of 'm.yaml' are not kept: that "
                     "mapping is rewritten (the rest of the file keeps its text)"]


def test_a_file_of_two_documents_rewritten_as_a_whole_keeps_both():
    text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: tsb}\n---\n" + FLOW_CP
    manifest = Manifest("m.yaml", text)
    new, out, notes = render(text, CP)
    assert out == "---\n" + dump_yaml(manifest.docs[0]) + "---\n" + dump_yaml(new) and len(notes) == 1


def test_the_diff_before_is_the_document_as_it_was(tmp_path):
    path = tmp_path / "cp.yaml"
    path.write_text("apiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata:\n  name: cp\n"
                    "spec:\n  components:\n    istio:\n      kubeSpec:\n        deployment:\n"
                    "          replicaCount: 2\n")
    result = manage_annotations(TaskModule(task_params(path=str(path))))
    assert result["changed"] is True and "podAnnotations" in result["diff"]["after"]
    assert yaml.safe_load(result["diff"]["before"])["spec"] == {
        "components": {"istio": {"kubeSpec": {"deployment": {"replicaCount": 2}}}}}


def test_name_picks_the_document_among_objects_of_one_namespace(tmp_path):
    path = tmp_path / "cp.yaml"
    path.write_text("".join("---\napiVersion: install.tetrate.io/v1alpha1\nkind: ControlPlane\nmetadata:\n"
                            "  name: %s\n  namespace: tsb\nspec: {hub: x}\n" % name for name in ("east", "west")))
    result = manage_annotations(TaskModule(task_params(path=str(path), name="west")))
    assert (result["name"], result["namespace"]) == ("west", "tsb")
    with open(str(path)) as f:
        docs = list(yaml.safe_load_all(f))
    assert docs[0]["spec"] == {"hub": "x"} and "components" in docs[1]["spec"]


def test_without_pyyaml_the_error_carries_the_import_error(monkeypatch):
    from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio import manifest as manifest_mod

    monkeypatch.setattr(manifest_mod, "HAS_YAML", False)
    monkeypatch.setattr(manifest_mod, "YAML_IMPORT_ERROR", "Traceback: No module named 'yaml'")
    with pytest.raises(MeshPkiError) as err:
        dump_yaml({"a": 1})
    assert "pip install PyYAML" in str(err.value)
    assert err.value.details == {"exception": "Traceback: No module named 'yaml'"}


def test_a_long_duplicate_key_is_shortened_in_the_message():
    key = "k" * 100
    with pytest.raises(MeshPkiError) as err:
        Manifest("m.yaml", "%s: 1\n%s: 2\n" % (key, key))
    assert "the key '%s...' appears twice" % key[:80] in str(err.value)


def test_sizes_are_shown_in_bytes_and_mebibytes_rounded(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 1520437 + b"\n")
    with pytest.raises(MeshPkiError) as err:
        Manifest.load(str(path), max_size=1520436)
    assert "it is 1520438 bytes (1.5 MiB), over the limit of 1520436 bytes (1.5 MiB)" in str(err.value)


def _fake_small_stat(monkeypatch, path, size):
    real_stat = os.stat

    def stat_(p, *args, **kwargs):
        result = real_stat(p, *args, **kwargs)
        if str(p) != path:
            return result
        fields = list(result[:10])
        fields[6] = size  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat_)


def test_a_file_that_grows_after_its_size_was_checked_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "cp.yaml"
    path.write_text("a: 1\n" * 100)
    _fake_small_stat(monkeypatch, str(path), 10)
    with pytest.raises(MeshPkiError) as err:
        Manifest.load(str(path), max_size=50)
    monkeypatch.undo()
    assert "it is at least 51 bytes (0.0 MiB), over the limit of 50 bytes" in str(err.value)


def test_a_manifest_that_cannot_be_opened_is_an_error_naming_it(tmp_path, monkeypatch):
    import builtins

    path = tmp_path / "cp.yaml"
    path.write_text("a: 1\n")
    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    with pytest.raises(MeshPkiError) as err:
        Manifest.load(str(path))
    monkeypatch.undo()
    assert str(err.value) == "Cannot read the manifest '%s': Permission denied" % path
