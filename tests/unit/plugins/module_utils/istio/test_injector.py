# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/istio/injector.py.

The golden files hold the TSB ``ControlPlane`` ``spec.components.istio.kubeSpec.deployment`` fragment
(``env`` + ``podAnnotations``) serialised by :func:`dump_deployment`. ``controlplane_guide.yaml`` was checked
line by line against the guide's "Configure TSB ControlPlane CRD" block (same 27 lines once indentation is
ignored; the published guide lost its indentation). Any byte difference fails. To regenerate after an
intended change, run with ``MESHPKI_UPDATE_GOLDEN=1`` and review the diff by hand.
"""

import os

import pytest
import yaml

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import (
    BUNDLE_FILES,
    OPENBAO_PREFIX,
    VAULT_PREFIX,
    InjectorError,
    build_injection,
    bundle_secret_paths,
    escape_go_string,
    extract_templates,
    managed_keys,
    normalize_env,
    render_like_the_agent,
    render_templates,
    vault_paths_read,
)

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")

# The guide's ControlPlane fragment, indentation restored by hand (the text is otherwise verbatim).
GUIDE_DEPLOYMENT = r'''
env:
- name: ROOT_CA_DIR
  value: /etc/cacerts-vault
podAnnotations:
  vault.hashicorp.com/agent-inject: "true"
  vault.hashicorp.com/agent-inject-secret-ca-cert.pem: istioca/cert/ca
  vault.hashicorp.com/agent-inject-secret-ca-key.pem: secret/data/istioca
  vault.hashicorp.com/agent-inject-secret-cert-chain.pem: istioca/cert/ca_chain
  vault.hashicorp.com/agent-inject-secret-root-cert.pem: pki/cert/ca
  vault.hashicorp.com/agent-inject-template-ca-cert.pem: |
    {{- with secret "istioca/cert/ca" -}}
    {{ .Data.certificate }}
    {{- end }}
  vault.hashicorp.com/agent-inject-template-ca-key.pem: |
    {{- with secret "secret/data/istioca" -}}
    {{ index .Data.data "ca-key.pem" }}
    {{- end }}
  vault.hashicorp.com/agent-inject-template-cert-chain.pem: |
    {{- with secret "istioca/cert/ca_chain" -}}
    {{ .Data.certificate }}
    {{- end }}
  vault.hashicorp.com/agent-inject-template-root-cert.pem: |
    {{- with secret "pki/cert/ca" -}}
    {{ "" | or ( .Data.certificate ) }}
    {{- end }}
  vault.hashicorp.com/role: istiod
  vault.hashicorp.com/secret-volume-path: /etc/cacerts-vault
'''


class _Dumper(yaml.SafeDumper):
    """Block scalars for multi-line text, double quotes only where YAML would read another type ("true")."""


def _represent_str(dumper, value):
    tag = "tag:yaml.org,2002:str"
    if "\n" in value:
        return dumper.represent_scalar(tag, value, style="|")
    if dumper.resolve(yaml.ScalarNode, value, (True, False)) != tag:
        return dumper.represent_scalar(tag, value, style='"')
    return dumper.represent_scalar(tag, value)


_Dumper.add_representer(str, _represent_str)


def dump_deployment(injection):
    """Serialise build_injection()'s result as the ControlPlane ``kubeSpec.deployment`` fragment."""
    fragment = {"env": injection["env"], "podAnnotations": dict(injection["annotations"])}
    return yaml.dump(fragment, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10000)


def assert_golden(name, text):
    path = os.path.join(GOLDEN, name)
    if os.environ.get("MESHPKI_UPDATE_GOLDEN"):
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        pytest.skip(f"golden file {name} rewritten; review the diff")
    with open(path, "rb") as handle:
        expected = handle.read()
    assert text.encode("utf-8") == expected, f"output differs from golden/{name}"


# ---------------------------------------------------------------------------------------------------------
# golden files
# ---------------------------------------------------------------------------------------------------------

def test_guide_values_match_golden_file_byte_for_byte():
    assert_golden("controlplane_guide.yaml", dump_deployment(build_injection()))


def test_guide_values_equal_the_guides_controlplane_block():
    injection = build_injection(
        intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
        kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
    )
    assert yaml.safe_load(GUIDE_DEPLOYMENT) == {"env": injection["env"], "podAnnotations": injection["annotations"]}
    # Same text as the guide once its (restored) indentation is ignored: the golden file is the guide.
    assert dump_deployment(injection).strip().splitlines() == GUIDE_DEPLOYMENT.strip().splitlines()


def test_golden_file_parses_back_to_the_output():
    with open(os.path.join(GOLDEN, "controlplane_guide.yaml"), encoding="utf-8") as handle:
        loaded = yaml.safe_load(handle)
    injection = build_injection()
    assert loaded == {"env": injection["env"], "podAnnotations": injection["annotations"]}


def test_openbao_with_options_matches_golden_file():
    injection = build_injection(
        intermediate_mount="mesh/istioca", root_mount="mesh/root", kv_mount="kv", kv_path="istio/ca",
        kv_field="key", role="istiod-east", secret_volume_path="/var/run/istio-ca", prefix=OPENBAO_PREFIX,
        agent_init_first=True, agent_pre_populate_only=False,
        extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": True},
                   {"name": "ISTIO_MULTIROOT_MESH", "value": "true"}],
        extra_annotations={"openbao.openbao.org/agent-limits-mem": "64Mi", "example.com/team": "mesh"},
    )
    assert_golden("controlplane_openbao_options.yaml", dump_deployment(injection))


# ---------------------------------------------------------------------------------------------------------
# shape of the output
# ---------------------------------------------------------------------------------------------------------

def test_templates_end_with_newline_and_read_the_annotated_path():
    annotations = build_injection()["annotations"]
    for file_name in BUNDLE_FILES:
        path = annotations[f"{VAULT_PREFIX}/agent-inject-secret-{file_name}"]
        template = annotations[f"{VAULT_PREFIX}/agent-inject-template-{file_name}"]
        assert template.endswith("}}\n") and not template.endswith("\n\n")
        assert template.startswith(f'{{{{- with secret "{path}" -}}}}\n')


def test_annotations_are_sorted_and_values_are_strings():
    annotations = build_injection(agent_init_first=False, agent_pre_populate_only=True)["annotations"]
    assert list(annotations) == sorted(annotations)
    assert all(isinstance(value, str) for value in annotations.values())


def test_env_root_ca_dir_always_equals_secret_volume_path():
    injection = build_injection(secret_volume_path="/var/run/vault-ca/")
    assert injection["env"] == [{"name": "ROOT_CA_DIR", "value": "/var/run/vault-ca"}]
    assert injection["annotations"][f"{VAULT_PREFIX}/secret-volume-path"] == "/var/run/vault-ca"


def test_defaults_are_the_guides_values():
    assert build_injection() == build_injection(
        intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca", kv_field="ca-key.pem",
        role="istiod", secret_volume_path="/etc/cacerts-vault", prefix="vault.hashicorp.com",
    )


# ---------------------------------------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------------------------------------

def test_openbao_prefix_replaces_every_key():
    annotations = build_injection(prefix=OPENBAO_PREFIX)["annotations"]
    assert OPENBAO_PREFIX == "openbao.openbao.org"
    assert all(key.startswith("openbao.openbao.org/") for key in annotations)
    vault = build_injection()["annotations"]
    assert sorted(key.split("/", 1)[1] for key in annotations) == sorted(key.split("/", 1)[1] for key in vault)


def test_prefix_trailing_slash_is_dropped():
    assert build_injection(prefix="vault.hashicorp.com/") == build_injection()


@pytest.mark.parametrize(("value", "expected"), [(True, "true"), (False, "false"), ("yes", "true"), ("no", "false")])
def test_agent_init_first_and_pre_populate_only(value, expected):
    annotations = build_injection(agent_init_first=value, agent_pre_populate_only=value)["annotations"]
    assert annotations[f"{VAULT_PREFIX}/agent-init-first"] == expected
    assert annotations[f"{VAULT_PREFIX}/agent-pre-populate-only"] == expected


def test_agent_flags_absent_when_none():
    annotations = build_injection()["annotations"]
    assert f"{VAULT_PREFIX}/agent-init-first" not in annotations
    assert f"{VAULT_PREFIX}/agent-pre-populate-only" not in annotations
    assert len(annotations) == 11


@pytest.mark.parametrize("option", ["agent_init_first", "agent_pre_populate_only"])
def test_agent_flags_reject_non_booleans(option):
    with pytest.raises(InjectorError, match=f"{option} must be a boolean"):
        build_injection(**{option: "maybe"})


def test_extra_env_list_keeps_order_after_root_ca_dir():
    env = build_injection(extra_env=[{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"},
                                     {"name": "ISTIO_MULTIROOT_MESH", "value": True}])["env"]
    assert env == [
        {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"},
        {"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"},
        {"name": "ISTIO_MULTIROOT_MESH", "value": "true"},
    ]


def test_extra_env_dict_and_value_conversion():
    env = build_injection(extra_env={"AUTO_RELOAD_PLUGIN_CERTS": True, "PILOT_X": 3, "EMPTY": ""})["env"]
    assert env[1:] == [
        {"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"},
        {"name": "PILOT_X", "value": "3"},
        {"name": "EMPTY", "value": ""},
    ]


@pytest.mark.parametrize("extra_env", [
    {"AUTO_RELOAD_PLUGIN_CERTS": False, "PILOT_RATIO": 0.5},
    [{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": False}, {"name": "PILOT_RATIO", "value": 0.5}],
])
def test_extra_env_false_is_rendered_false_not_true(extra_env):
    """Issue #16's surviving mutant: a False value must reach istiod as "false" (YAML's spelling), not "true"."""
    env = build_injection(extra_env=extra_env)["env"]
    assert env[1:] == [{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "false"},
                       {"name": "PILOT_RATIO", "value": "0.5"}]


def test_extra_annotations_false_is_rendered_false():
    annotations = build_injection(extra_annotations={"example.com/off": False, "example.com/on": True})["annotations"]
    assert (annotations["example.com/off"], annotations["example.com/on"]) == ("false", "true")


@pytest.mark.parametrize("extra_env", [
    [{"name": "ROOT_CA_DIR", "value": "/elsewhere"}],
    {"ROOT_CA_DIR": "/elsewhere"},
])
def test_extra_env_may_not_override_root_ca_dir(extra_env):
    with pytest.raises(InjectorError, match="must not set ROOT_CA_DIR"):
        build_injection(extra_env=extra_env)


@pytest.mark.parametrize(("extra_env", "message"), [
    ([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], "sets A twice"),
    ([{"name": "1BAD", "value": "x"}], "not a valid environment variable name"),
    ([{"name": "A", "value": "x", "valueFrom": {}}], "'name' and 'value' only"),
    ([{"value": "x"}], "'name' and 'value' only"),
    ([{"name": "A", "valueFrom": {}}], "'name' and 'value' only"),
    (["AUTO_RELOAD_PLUGIN_CERTS=true"], "'name' and 'value' only"),
    ({"A": ["x"]}, "must be a string"),
    ("A=1", "list of"),
])
def test_extra_env_validation(extra_env, message):
    with pytest.raises(InjectorError, match=message):
        build_injection(extra_env=extra_env)


def test_extra_annotations_are_added_and_sorted():
    annotations = build_injection(extra_annotations={"zz.example.com/x": "1", "a-plain-key": True})["annotations"]
    assert annotations["zz.example.com/x"] == "1"
    assert annotations["a-plain-key"] == "true"
    assert list(annotations) == sorted(annotations)


def test_extra_annotations_of_the_agent_not_managed_by_us_are_allowed():
    annotations = build_injection(extra_annotations={f"{VAULT_PREFIX}/agent-limits-cpu": "100m"})["annotations"]
    assert annotations[f"{VAULT_PREFIX}/agent-limits-cpu"] == "100m"


@pytest.mark.parametrize("key", [
    "vault.hashicorp.com/role",
    "vault.hashicorp.com/agent-inject",
    "vault.hashicorp.com/secret-volume-path",
    "vault.hashicorp.com/agent-inject-secret-ca-key.pem",
    "vault.hashicorp.com/agent-inject-template-root-cert.pem",
    "vault.hashicorp.com/agent-init-first",
    "vault.hashicorp.com/agent-pre-populate-only",
])
def test_extra_annotations_may_not_collide_with_ours(key):
    with pytest.raises(InjectorError, match="this collection manages it"):
        build_injection(extra_annotations={key: "x"})


def test_extra_annotations_collision_is_per_prefix():
    annotations = build_injection(prefix=OPENBAO_PREFIX, extra_annotations={"vault.hashicorp.com/role": "x"})
    assert annotations["annotations"]["vault.hashicorp.com/role"] == "x"
    with pytest.raises(InjectorError, match="this collection manages it"):
        build_injection(prefix=OPENBAO_PREFIX, extra_annotations={"openbao.openbao.org/role": "x"})


@pytest.mark.parametrize(("extra", "message"), [
    (["not", "a", "dict"], "must be a dict"),
    ({"": "x"}, "non-empty strings"),
    ({"Bad Prefix/x": "x"}, "invalid prefix"),
    ({"example.com/-bad-": "x"}, "not a valid Kubernetes annotation key"),
    ({"example.com/ok": None}, "must be a string"),
])
def test_extra_annotations_validation(extra, message):
    with pytest.raises(InjectorError, match=message):
        build_injection(extra_annotations=extra)


# ---------------------------------------------------------------------------------------------------------
# paths and validation
# ---------------------------------------------------------------------------------------------------------

def test_surrounding_slashes_are_stripped():
    assert build_injection(intermediate_mount="/istioca/", root_mount="pki/", kv_mount="/secret",
                           kv_path="istioca/") == build_injection()


def test_nested_mounts_and_paths():
    paths = bundle_secret_paths("mesh/int", "mesh/root", "kv/v2", "teams/mesh/istioca")
    assert paths == {
        "ca-cert.pem": "mesh/int/cert/ca",
        "ca-key.pem": "kv/v2/data/teams/mesh/istioca",
        "cert-chain.pem": "mesh/int/cert/ca_chain",
        "root-cert.pem": "mesh/root/cert/ca",
    }


@pytest.mark.parametrize("option", ["intermediate_mount", "root_mount", "kv_mount", "kv_path"])
@pytest.mark.parametrize(("value", "message"), [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("/", "must not be empty"),
    (None, "non-empty string"),
    ("a//b", "empty segment"),
    ("a/../b", r"'\.' or '\.\.' segments"),
    ("a b", "unsupported characters"),
    ('a"b', "unsupported characters"),
    ("a\\b", "unsupported characters"),
    ("pki*", "unsupported characters"),
    ("a+b", "unsupported characters"),
    ("a\nb", "unsupported characters"),
])
def test_path_validation(option, value, message):
    with pytest.raises(InjectorError, match=message) as info:
        build_injection(**{option: value})
    assert option in str(info.value)


def test_intermediate_and_root_mount_must_differ():
    with pytest.raises(InjectorError, match="root-cert.pem would then hold the intermediate"):
        build_injection(intermediate_mount="pki", root_mount="/pki/")


@pytest.mark.parametrize(("kv_mount", "kv_path"), [("secret", "data/istioca"), ("secret/data", "istioca")])
def test_kv_data_segment_is_built_not_given(kv_mount, kv_path):
    with pytest.raises(InjectorError, match="without the 'data/' API segment"):
        build_injection(kv_mount=kv_mount, kv_path=kv_path)


def test_kv_field_is_escaped_for_the_go_string_literal():
    template = render_templates(kv_field='we"ird\\key')["ca-key.pem"][1]
    assert template == (
        '{{- with secret "secret/data/istioca" -}}\n{{ index .Data.data "we\\"ird\\\\key" }}\n{{- end }}\n'
    )
    assert escape_go_string("ca-key.pem") == "ca-key.pem"


@pytest.mark.parametrize(("value", "message"), [
    ("a\nb", "control characters"),
    ("tab\there", "control characters"),
    ("", "must not be empty"),
    (None, "non-empty string"),
])
def test_kv_field_validation(value, message):
    with pytest.raises(InjectorError, match=message):
        build_injection(kv_field=value)


@pytest.mark.parametrize("path", [
    "/etc/cacerts", "/etc/cacerts/", "/etc//cacerts", "//etc/cacerts", "/etc/cacerts/vault", "/etc/x/../cacerts",
    "/etc", "/",
])
def test_secret_volume_path_must_stay_apart_from_the_charts_cacerts_mount(path):
    with pytest.raises(InjectorError, match="the istiod chart mounts the 'cacerts' Kubernetes secret there"):
        build_injection(secret_volume_path=path)


@pytest.mark.parametrize(("path", "message"), [
    ("etc/cacerts-vault", "must be an absolute path"),
    ("", "must not be empty"),
    ("/etc/ca certs", "whitespace"),
    ("/etc/ca:certs", "':'"),
    (None, "non-empty string"),
])
def test_secret_volume_path_validation(path, message):
    with pytest.raises(InjectorError, match=message):
        build_injection(secret_volume_path=path)


@pytest.mark.parametrize("path", ["/etc/cacerts-vault", "/etc/cacertsvault", "/var/run/secrets/istio-ca"])
def test_secret_volume_path_accepts_neighbours_of_etc_cacerts(path):
    assert build_injection(secret_volume_path=path)["env"][0]["value"] == path


@pytest.mark.parametrize(("role", "message"), [("", "must not be empty"), ("ist iod", "whitespace"), (3, "string")])
def test_role_validation(role, message):
    with pytest.raises(InjectorError, match=message):
        build_injection(role=role)


@pytest.mark.parametrize("prefix", ["Vault.HashiCorp.com", "vault_hashicorp.com", "-vault.com", "a/b", "", "x" * 254])
def test_prefix_validation(prefix):
    with pytest.raises(InjectorError):
        build_injection(prefix=prefix)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        build_injection(secret_volume_path="/etc/cacerts")


# ---------------------------------------------------------------------------------------------------------
# policy paths, owned keys, template extraction
# ---------------------------------------------------------------------------------------------------------

def test_vault_paths_read_for_the_guide():
    assert vault_paths_read() == ["istioca/cert/ca", "istioca/cert/ca_chain", "pki/cert/ca", "secret/data/istioca"]


def test_vault_paths_read_are_exactly_the_annotated_paths():
    kwargs = {"intermediate_mount": "int/", "root_mount": "/root-ca", "kv_mount": "kv", "kv_path": "a/b"}
    annotations = build_injection(**kwargs)["annotations"]
    annotated = {value for key, value in annotations.items() if "/agent-inject-secret-" in key}
    assert set(vault_paths_read(**kwargs)) == annotated
    assert vault_paths_read(**kwargs) == ["int/cert/ca", "int/cert/ca_chain", "root-ca/cert/ca", "kv/data/a/b"]


def test_vault_paths_read_validates():
    with pytest.raises(InjectorError):
        vault_paths_read(kv_path="a/*")


@pytest.mark.parametrize("prefix", [VAULT_PREFIX, OPENBAO_PREFIX])
def test_managed_keys_cover_everything_we_emit(prefix):
    injection = build_injection(prefix=prefix, agent_init_first=True, agent_pre_populate_only=True,
                                extra_env={"AUTO_RELOAD_PLUGIN_CERTS": "true"}, auth_mount="kubernetes-east",
                                vault_namespace="team-a")
    owned = managed_keys(prefix, extra_env={"AUTO_RELOAD_PLUGIN_CERTS": "true"})
    assert owned["annotations"] == sorted(injection["annotations"])
    assert owned["env"] == [entry["name"] for entry in injection["env"]]


def test_managed_keys_default():
    owned = managed_keys()
    assert owned["env"] == ["ROOT_CA_DIR"]
    assert len(owned["annotations"]) == 15
    assert all(key.startswith("vault.hashicorp.com/") for key in owned["annotations"])
    assert "vault.hashicorp.com/agent-inject-template-cert-chain.pem" in owned["annotations"]


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("/", None), ("team-a", "team-a"),
                                             ("/team-a/istio/", "team-a/istio")])
def test_vault_namespace_annotation(value, expected):
    annotations = build_injection(vault_namespace=value)["annotations"]
    assert annotations.get("vault.hashicorp.com/namespace") == expected
    # The templates read the same paths: a namespace is a header, not a path prefix.
    assert annotations["vault.hashicorp.com/agent-inject-secret-ca-key.pem"] == "secret/data/istioca"


def test_vault_namespace_validation():
    with pytest.raises(InjectorError, match="vault_namespace 'team a' contains unsupported characters"):
        build_injection(vault_namespace="team a")


def test_managed_keys_excludes_extra_annotations():
    injection = build_injection(extra_annotations={"example.com/team": "mesh"})
    assert "example.com/team" not in managed_keys()["annotations"]
    assert set(injection["annotations"]) - set(managed_keys()["annotations"]) == {"example.com/team"}


def test_normalize_env_list_form():
    assert normalize_env(None) == []
    assert normalize_env([{"name": "A"}]) == [{"name": "A", "value": ""}]


def test_extract_templates_round_trip():
    annotations = build_injection(kv_field="key", extra_annotations={"example.com/x": "y"})["annotations"]
    templates = extract_templates(annotations)
    assert list(templates) == sorted(BUNDLE_FILES)
    assert templates == dict(render_templates(kv_field="key"))
    assert templates["root-cert.pem"] == (
        "pki/cert/ca", '{{- with secret "pki/cert/ca" -}}\n{{ "" | or ( .Data.certificate ) }}\n{{- end }}\n'
    )


def test_extract_templates_by_prefix():
    annotations = build_injection(prefix=OPENBAO_PREFIX)["annotations"]
    assert extract_templates(annotations) == {}
    assert set(extract_templates(annotations, prefix=OPENBAO_PREFIX)) == set(BUNDLE_FILES)


def test_extract_templates_requires_a_template_per_secret():
    annotations = dict(build_injection()["annotations"])
    del annotations[f"{VAULT_PREFIX}/agent-inject-template-ca-key.pem"]
    with pytest.raises(InjectorError, match="writes a Go map, not PEM"):
        extract_templates(annotations)


def test_extract_templates_rejects_orphan_templates():
    annotations = dict(build_injection()["annotations"])
    del annotations[f"{VAULT_PREFIX}/agent-inject-secret-root-cert.pem"]
    with pytest.raises(InjectorError, match="without a matching agent-inject-secret"):
        extract_templates(annotations)


def test_extract_templates_rejects_non_dict():
    with pytest.raises(InjectorError, match="must be a dict"):
        extract_templates([("a", "b")])


def test_auth_path_only_for_a_mount_other_than_the_injector_default():
    assert not any(k.endswith("/auth-path") for k in build_injection(auth_mount="kubernetes")["annotations"])
    assert not any(k.endswith("/auth-path") for k in build_injection()["annotations"])
    east = build_injection(auth_mount="/kubernetes-east/")["annotations"]
    assert east["vault.hashicorp.com/auth-path"] == "auth/kubernetes-east"
    assert "vault.hashicorp.com/auth-path" in managed_keys()["annotations"]
    with pytest.raises(InjectorError):
        build_injection(auth_mount="kubernetes east")


@pytest.mark.parametrize("option, value", [
    ("prefix", 3), ("secret_volume_path", None), ("role", None), ("kv_field", None), ("auth_mount", 3),
])
def test_each_error_names_its_option(option, value):
    with pytest.raises(InjectorError, match=r"^%s must be a non-empty string, got %r$" % (option, value)):
        build_injection(**{option: value})


@pytest.mark.parametrize("kwargs, message", [
    ({"extra_env": {"A": ["x"]}}, r"^extra_env A must be a string, got \['x'\]$"),
    ({"extra_annotations": {"example.com/ok": None}}, r"^extra_annotations example.com/ok must be a string, got None$"),
])
def test_value_errors_name_the_entry(kwargs, message):
    with pytest.raises(InjectorError, match=message):
        build_injection(**kwargs)


def test_length_limits_of_prefix_and_annotation_name_are_inclusive():
    prefix = ".".join(["a" * 63] * 3 + ["a" * 61])
    assert len(prefix) == 253 and build_injection(prefix=prefix)["annotations"][prefix + "/role"] == "istiod"
    annotations = build_injection(extra_annotations={"example.com/" + "n" * 63: "x"})["annotations"]
    assert annotations["example.com/" + "n" * 63] == "x"
    with pytest.raises(InjectorError, match="not a valid Kubernetes annotation key"):
        build_injection(extra_annotations={"example.com/" + "n" * 64: "x"})


def test_bundle_secret_paths_defaults_are_the_guides():
    assert bundle_secret_paths() == {"ca-cert.pem": "istioca/cert/ca", "ca-key.pem": "secret/data/istioca",
                                     "cert-chain.pem": "istioca/cert/ca_chain", "root-cert.pem": "pki/cert/ca"}
    assert render_templates()["ca-key.pem"][1] == _KEY_TEMPLATE_GUIDE


_KEY_TEMPLATE_GUIDE = '{{- with secret "secret/data/istioca" -}}\n{{ index .Data.data "ca-key.pem" }}\n{{- end }}\n'


@pytest.mark.parametrize(("kv_mount", "kv_path"), [("secret", "data"), ("data", "istioca")])
def test_a_bare_data_segment_is_refused_too(kv_mount, kv_path):
    with pytest.raises(InjectorError, match="without the 'data/' API segment"):
        bundle_secret_paths(kv_mount=kv_mount, kv_path=kv_path)


@pytest.mark.parametrize(("name", "body", "text"), [
    ("ca-cert.pem", None, None),  # 404
    ("ca-cert.pem", {"data": {}}, "\n"),  # `with secret` skips its body
    ("ca-cert.pem", {"data": {"certificate": "PEM"}}, "PEM\n"),
    ("ca-cert.pem", {"data": {"certificate": ""}}, "\n"),  # an empty value is printed as it is
    ("cert-chain.pem", {"data": {"other": 1}}, "<no value>\n"),
    ("root-cert.pem", {"data": {"certificate": ""}}, "\n"),  # `"" | or (...)`
    ("root-cert.pem", {"data": {"other": 1}}, "\n"),
    ("ca-key.pem", {"data": {"data": {"ca-key.pem": "KEY"}}}, "KEY\n"),
    ("ca-key.pem", {"data": {"data": "not a map", "ca-key.pem": "KEY"}}, "<no value>\n"),
    ("ca-key.pem", {"data": {"data": {"other": "KEY"}}}, "<no value>\n"),
])
def test_render_like_the_agent(name, body, text):
    assert render_like_the_agent(name, body, "ca-key.pem") == text


# --------------------------------------------------------------------------------- the trust bundle (issue 18)
def test_trust_bundle_path_makes_root_cert_read_the_kv_bundle():
    """root-cert.pem reads the field root-cert.pem of the KV v2 trust bundle, the other three files are unchanged,
    and the policy paths follow (exactly the four paths the templates read)."""
    plain = render_templates()
    bundled = render_templates(trust_bundle_path="/pki-trust/")
    assert bundled["root-cert.pem"] == (
        "secret/data/pki-trust",
        '{{- with secret "secret/data/pki-trust" -}}\n{{ "" | or ( index .Data.data "root-cert.pem" ) }}\n'
        '{{- end }}\n')
    assert dict((k, v) for k, v in bundled.items() if k != "root-cert.pem") == \
        dict((k, v) for k, v in plain.items() if k != "root-cert.pem")
    assert vault_paths_read(trust_bundle_path="pki-trust") == [
        "istioca/cert/ca", "istioca/cert/ca_chain", "secret/data/pki-trust", "secret/data/istioca"]
    annotations = build_injection(trust_bundle_path="pki-trust")["annotations"]
    assert annotations["vault.hashicorp.com/agent-inject-secret-root-cert.pem"] == "secret/data/pki-trust"


@pytest.mark.parametrize("path, message", [
    ("data/pki-trust", "without the 'data/' API segment"),
    ("istioca", "needs a KV secret of its own"),
    ("a//b", "empty segment"),
])
def test_trust_bundle_path_is_checked(path, message):
    with pytest.raises(InjectorError, match=message):
        render_templates(trust_bundle_path=path)


def test_the_agent_rendering_of_the_bundle():
    body = {"data": {"data": {"root-cert.pem": "A\nB", "phase": "trust"}, "metadata": {"version": 3}}}
    assert render_like_the_agent("root-cert.pem", body, "ca-key.pem", trust_bundle=True) == "A\nB\n"
    assert render_like_the_agent("root-cert.pem", {"data": {"data": {}}}, "ca-key.pem", trust_bundle=True) == "\n"
