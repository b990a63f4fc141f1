"""The role's variables (issue 15): the argument specs are the one list of names, every name is exercised by a
test scenario, and the lists the role's checks rely on agree with the files they describe."""

import glob
import os
import re

import pytest
import yaml

from ansible_collections.meshpki.vault_ca.plugins.filter.unknown_role_vars import known_names, unknown_role_vars

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLE = os.path.join(REPO, "roles", "istio_vault_ca")


def _yaml(*parts):
    with open(os.path.join(ROLE, *parts)) as f:
        return yaml.safe_load(f)


SPEC = _yaml("meta", "argument_specs.yml")
NAMES = sorted(known_names(SPEC))


def _own_results():
    for task in _yaml("tasks", "validate.yml"):
        if task.get("name") == "Check the role's variables before the first request":
            return task["vars"]["istio_vault_ca__own_results"]
    raise AssertionError("validate.yml has no name check")


def _text(path):
    with open(path) as f:
        return f.read()


# ------------------------------------------------------------------------------------------- coverage
# A variable is exercised when a test scenario sets it: in a Python test under tests/integration or
# tests/reliability as a dict key ("name": ...), a keyword (name=...) or a YAML key (name: ...) of a playbook text;
# in a molecule YAML file as a key. A name in a comment, an assertion or a docstring does not count.
SCENARIOS = sorted(glob.glob(os.path.join(REPO, "tests", "integration", "*.py"))
                   + glob.glob(os.path.join(REPO, "tests", "reliability", "*.py")))
MOLECULE = sorted(glob.glob(os.path.join(REPO, "molecule", "**", "*.yml"), recursive=True))


def _without_comments(text, marker):
    return "\n".join(line.split(marker, 1)[0] if line.lstrip().startswith(marker) else line
                     for line in text.splitlines())


def exercised_by(name):
    python = re.compile(r"""["']%s["']\s*:|\b%s\s*=(?!=)|^[ \t-]*%s\s*:""" % (name, name, name), re.M)
    key = re.compile(r"^[ \t-]*%s\s*:" % name, re.M)
    found = [p for p in SCENARIOS if python.search(_without_comments(_text(p), "#"))]
    found += [p for p in MOLECULE if key.search(_without_comments(_text(p), "#"))]
    return [os.path.relpath(p, REPO) for p in found]


def test_every_role_variable_is_exercised_by_a_scenario():
    """A documented variable no scenario sets may not work at all (istio_vault_ca_root_pem_bundle and
    istio_vault_ca_diagnose_jwt always failed, and no test noticed)."""
    unexercised = [name for name in NAMES if not exercised_by(name)]
    assert not unexercised, "set by no test scenario: %s" % ", ".join(unexercised)


def test_the_exercise_check_sees_a_comment_as_no_use(tmp_path):
    assert exercised_by("istio_vault_ca_root_pem_bundle")
    assert not re.search(r"^[ \t-]*istio_vault_ca_x\s*:", _without_comments("# istio_vault_ca_x: 1", "#"), re.M)


# ------------------------------------------------------------------------------------------- the known names
def test_own_results_are_exactly_what_the_tasks_register():
    """The name check lets through the results the role registers (a later play of the same run sees them): that
    list must be what the tasks register (besides the private istio_vault_ca__*), plus the playbooks' host
    pattern."""
    registered = set()
    for path in glob.glob(os.path.join(ROLE, "tasks", "*.yml")):
        registered.update(re.findall(r"^\s*register:\s*(istio_vault_ca_\w+)", _text(path), re.M))
        assert not re.search(r"set_fact:\s*\n\s*istio_vault_ca_(?!_)", _text(path)), path
    registered = set(n for n in registered if not n.startswith("istio_vault_ca__"))
    playbooks = set()
    for path in glob.glob(os.path.join(REPO, "playbooks", "*.yml")):
        playbooks.update(re.findall(r"\b(istio_vault_ca_\w+)\s*\|\s*default", _text(path)))
    assert set(_own_results()) == registered | (playbooks - set(NAMES))
    assert not set(_own_results()) & set(NAMES)


def test_defaults_and_argument_specs_agree():
    defaults = _yaml("defaults", "main.yml")
    main = SPEC["argument_specs"]["main"]["options"]
    for ep in SPEC["argument_specs"].values():
        for name, option in ep["options"].items():
            assert name in defaults, name
            assert option.get("default") == defaults[name], name
            assert option is main.get(name, option), "%s differs between entry points" % name
    assert set(defaults) == set(NAMES)


def test_vault_options_are_the_modules_shared_options():
    from ansible_collections.meshpki.vault_ca.plugins.doc_fragments import auth, connection
    shared = {}
    for fragment in (connection, auth):
        shared.update(yaml.safe_load(fragment.ModuleDocFragment.DOCUMENTATION)["options"])
    spec = SPEC["argument_specs"]["main"]["options"]["istio_vault_ca_vault"]["options"]
    # the role's argument spec has no aliases (ansible-lint's schema): a module alias is an option of its own
    aliases = dict((alias, name) for name, option in shared.items() for alias in option.get("aliases") or [])
    assert set(spec) == set(shared) | set(aliases)
    for name, option in list(shared.items()) + [(alias, shared[name]) for alias, name in aliases.items()]:
        assert spec[name]["type"] == option["type"], name
        assert spec[name].get("choices") == option.get("choices"), name


def test_token_reviewer_options_are_the_modules():
    from ansible_collections.meshpki.vault_ca.plugins.modules.vault_k8s_auth import ARGUMENT_SPEC
    reviewer = ARGUMENT_SPEC["token_reviewer"]["options"]
    spec = SPEC["argument_specs"]["main"]["options"]["istio_vault_ca_k8s_token_reviewer"]["options"]
    assert set(spec) == set(reviewer)
    for name, option in reviewer.items():
        assert spec[name]["type"] == option["type"] and spec[name].get("default") == option.get("default"), name


# ------------------------------------------------------------------------------------------- the filter
@pytest.mark.parametrize("typo,meant", [
    ("istio_vault_ca_manifest_pth", "istio_vault_ca_manifest_path"),
    ("istio_vault_ca_kubecontext", "istio_vault_ca_kube_context"),
    ("istio_vault_ca_keybits", "istio_vault_ca_key_bits"),
    ("istio_vault_ca_diagnose_jwt_file", "istio_vault_ca_diagnose_jwt"),
])
def test_a_typo_gets_the_nearest_name(typo, meant):
    assert unknown_role_vars([typo, "istio_vault_ca_kv_path"], SPEC) == [
        "%s is not a variable of this role - did you mean %s? Rename or remove it (nothing was sent)." % (typo, meant)]


def test_private_own_and_other_names_pass():
    names = ["istio_vault_ca__vault", "istio_vault_ca_root", "other_var", "istio_vault_ca_kv_path"]
    assert unknown_role_vars(names, SPEC, internal=_own_results()) == []
    assert unknown_role_vars(["istio_vault_ca_zzz"], SPEC) == [
        "istio_vault_ca_zzz is not a variable of this role - see the role's argument specs for the names. Rename or "
        "remove it (nothing was sent)."]


def test_every_option_has_only_argument_spec_keys():
    """A comma in an unquoted flow-mapping description once made a key of its own: only the keys of an argument
    spec are allowed, at every depth."""
    allowed = {"type", "description", "default", "choices", "no_log", "options", "elements", "required",
               "version_added"}

    def walk(options, where):
        for name, option in options.items():
            assert set(option) <= allowed, (where + [name], set(option) - allowed)
            assert isinstance(option.get("description"), (str, list)), where + [name]
            walk(option.get("options") or {}, where + [name])

    for entry_point, spec in SPEC["argument_specs"].items():
        walk(spec["options"], [entry_point])
