"""The collection as users get it: the built tarball, installed with ansible-galaxy, documented by
ansible-doc, put into an execution environment by ansible-builder, and run through ansible-runner
(the engine AWX/AAP runs jobs with) with the environment our AWX credential type injects.

Nothing here lists the collection's content by hand: modules, roles, filters and playbooks are
whatever the source tree holds when the test runs.
"""

import base64
import glob
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import urllib.error
import uuid

import jinja2
import jinja2.sandbox
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.bundle import verify_bundle_dir
from harness import agent
from harness.openbao import vault_request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
with open(os.path.join(REPO, "galaxy.yml")) as _galaxy:
    GALAXY = yaml.safe_load(_galaxy)
FQCN = "%s.%s" % (GALAXY["namespace"], GALAXY["name"])
TARBALL_NAME = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])

# Never in a release: test output, virtualenvs, the collection link, the sanity copy, benchmark
# output, the mutation-testing copy, the docs build, caches, execution-environment build contexts, VCS data.
FORBIDDEN_PREFIXES = ("tests/output/", ".venv", "venv/", ".collections", ".sanity", ".mutation", "mutants/",
                      "benchmarks/out/", ".docs-build", ".pytest_cache", ".ruff_cache", ".demo", ".git/", ".ci/",
                      "docs/execution-environment/context/", "docs/execution-environment/collections/")
# ... and, at any depth, virtualenvs and caches (benchmarks/ keeps a peer virtualenv, for example).
FORBIDDEN_PARTS = ("__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".tox", "node_modules")
FORBIDDEN_PART_PREFIXES = (".venv", "venv")
FORBIDDEN_SUFFIXES = (".pyc", ".tar.gz")
# What only a git clone uses (galaxy.yml build_ignore): the tests and molecule scenarios (they need the clone's
# Makefile, tools/ and requirements-test.txt), the benchmarks, the developer tools and the linters' settings.
DEV_ONLY_DIRS = ("tests", "molecule", "benchmarks", "tools")
DEV_ONLY_FILES = ("Makefile", "requirements-test.txt", "requirements-mutation.txt", "pytest.ini", "ruff.toml",
                  ".ansible-lint", ".gitignore", "docs/lint.md")
# Files AWX records in a job's environment are redacted when their name matches this (AWX's
# build_safe_env): a secret may reach ansible-runner's launch record only under such a name.
AWX_REDACTED_ENV = re.compile(r"API|TOKEN|KEY|SECRET|PASS", re.I)


def _tool(name):
    path = os.path.join(BIN, name)
    assert os.path.exists(path), "%s is missing: install the pinned tools with %s -m pip install -r " \
                                 "requirements-test.txt" % (path, sys.executable)
    return path


def _run(args, env=None, cwd=None, timeout=300):
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(args, env=full_env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, "%s failed (rc=%s):\n%s\n%s" % (
        " ".join(args), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def _source_files(pattern):
    """Files of the source tree matching a glob (``**`` for any depth), relative to the repository root."""
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, pattern), recursive=True))


def _plugin_names(kind):
    """Names of the plugins of one type in the source tree (modules: files; filters: what each
    FilterModule file is documented as)."""
    names = []
    for path in _source_files("plugins/%s/*.py" % kind):
        base = os.path.basename(path)[:-3]
        if base != "__init__":
            names.append(base)
    return names


@pytest.fixture(scope="module")
def canaries():
    """Files in git-ignored places that must not reach the tarball, so the exclusion check has
    something to exclude even in a fresh clone. Removed afterwards (only those created here)."""
    created = []
    for rel in ("tests/output/meshpki-packaging-canary.txt", "benchmarks/out/meshpki-packaging-canary.txt"):
        path = os.path.join(REPO, rel)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write("must not be packaged\n")
            created.append(path)
    yield [os.path.relpath(p, REPO) for p in created]
    for path in created:
        if os.path.exists(path):  # a benchmark run may have emptied benchmarks/out meanwhile
            os.remove(path)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory, canaries):
    out = tmp_path_factory.mktemp("build")
    _run([_tool("ansible-galaxy"), "collection", "build", "--output-path", str(out), REPO])
    path = out / TARBALL_NAME
    assert path.exists(), sorted(os.listdir(out))
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """The tarball installed into a clean collections path, as a user would."""
    root = tmp_path_factory.mktemp("installed")
    _run([_tool("ansible-galaxy"), "collection", "install", str(tarball), "-p", str(root)],
         env={"ANSIBLE_COLLECTIONS_PATH": str(root)})
    collection = root / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (collection / "MANIFEST.json").exists()
    assert not os.path.islink(collection), "installed copy must not be the source tree"
    return root


def _members(tarball):
    with tarfile.open(tarball) as tar:
        return [m.name[2:] if m.name.startswith("./") else m.name for m in tar.getmembers()]


def test_tarball_holds_the_collection_and_nothing_from_development(tarball, canaries):
    members = _members(tarball)
    files = set(members)
    bad = [m for m in members
           if m.startswith(FORBIDDEN_PREFIXES) or m.endswith(FORBIDDEN_SUFFIXES)
           or any(part in FORBIDDEN_PARTS or part.startswith(FORBIDDEN_PART_PREFIXES) for part in m.split("/"))]
    assert not bad, "development files in the tarball: %s" % bad[:30]
    for canary in canaries:
        assert canary not in files

    modules = _source_files("plugins/modules/*.py")
    assert modules, "no modules in the source tree"
    required = set(modules)
    required |= set(_source_files("plugins/module_utils/**/*.py") + _source_files("plugins/doc_fragments/*.py")
                    + _source_files("plugins/filter/*.py") + _source_files("roles/*/meta/argument_specs.yml")
                    + _source_files("roles/*/tasks/*.yml") + _source_files("playbooks/*.yml")
                    + _source_files("changelogs/changelog.yaml") + _source_files("docs/docsite/*.yml")
                    + _source_files("docs/docsite/rst/*.rst"))
    required |= {"MANIFEST.json", "FILES.json", "meta/runtime.yml", "meta/execution-environment.yml",
                 "README.md", "requirements.txt", "bindep.txt", "LICENSES/GPL-3.0-or-later.txt"}
    missing = sorted(required - files)
    assert not missing, "missing from the tarball: %s" % missing

    with tarfile.open(tarball) as tar:
        manifest = json.loads(tar.extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["version"] == GALAXY["version"]
    size = os.path.getsize(tarball)
    print("\n%s: %d bytes, %d members (%d modules)" % (TARBALL_NAME, size, len(members), len(modules)))
    # The source is well under 1 MiB compressed; more means something large slipped in.
    assert size < 1024 * 1024, "tarball is %d bytes: %s" % (size, sorted(members)[:50])


def test_tarball_leaves_out_what_only_a_clone_uses_and_keeps_what_a_user_needs(tarball):
    members = [m.rstrip("/") for m in _members(tarball)]
    dev_only = [m for m in members if m.split("/")[0] in DEV_ONLY_DIRS or m in DEV_ONLY_FILES]
    assert not dev_only, "development-only files in the tarball: %s" % dev_only[:30]
    assert os.path.isdir(os.path.join(REPO, "benchmarks")) and os.path.isdir(os.path.join(REPO, "tools"))

    files = set(members)
    needed = set(_source_files("roles/*/defaults/*.yml") + _source_files("roles/*/files/*")
                 + _source_files("roles/*/README.md") + _source_files("playbooks/*.yml")
                 + _source_files("docs/awx/*.yml") + _source_files("docs/execution-environment/*.yml")
                 + _source_files("changelogs/config.yaml") + _source_files("LICENSES/*"))
    needed |= {"CHANGELOG.md", "README.md", "requirements.txt", "bindep.txt", "meta/runtime.yml"}
    missing = sorted(needed - files)
    assert not missing, "missing from the tarball: %s" % missing
    # The whole collection with its docs; the benchmarks' plot alone was 130 kB.
    assert os.path.getsize(tarball) < 400 * 1024, os.path.getsize(tarball)


def test_installed_tarball_documents_every_plugin_and_role(installed):
    """ansible-doc, reading only the installed copy, parses every module, filter and role."""
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_NOCOLOR": "1"}
    prefix = str(installed / "ansible_collections")
    ansible_doc = _tool("ansible-doc")

    modules = _plugin_names("modules")
    listed = json.loads(_run([ansible_doc, "-t", "module", "--list", "--json", FQCN], env=env).stdout)
    assert sorted(listed) == sorted("%s.%s" % (FQCN, m) for m in modules)
    docs = json.loads(_run([ansible_doc, "-t", "module", "--json"]
                           + ["%s.%s" % (FQCN, m) for m in modules], env=env).stdout)
    for module in modules:
        doc = docs["%s.%s" % (FQCN, module)]["doc"]
        assert doc["module"] == module and doc["short_description"], module
        assert doc["filename"].startswith(prefix), doc["filename"]  # the installed copy, not the tree
        assert docs["%s.%s" % (FQCN, module)]["examples"], "%s has no EXAMPLES" % module

    filters = json.loads(_run([ansible_doc, "-t", "filter", "--list", "--json", FQCN], env=env).stdout)
    if _plugin_names("filter"):
        assert filters, "filter plugins in the tree, none listed from the installed copy"
        docs = json.loads(_run([ansible_doc, "-t", "filter", "--json"] + sorted(filters), env=env).stdout)
        for name in filters:
            assert docs[name]["doc"]["short_description"], name

    roles = [os.path.basename(os.path.dirname(os.path.dirname(p)))
             for p in _source_files("roles/*/meta/argument_specs.yml")]
    for role in roles:
        doc = json.loads(_run([ansible_doc, "-t", "role", "--json", "%s.%s" % (FQCN, role)], env=env).stdout)
        entry = doc["%s.%s" % (FQCN, role)]
        assert entry["path"].startswith(prefix), entry["path"]
        assert entry["entry_points"]["main"]["options"], role


def test_execution_environment_context_and_collection_dependencies(tarball, installed, tmp_path):
    """ansible-builder create (no container engine) on the example EE definition, and the
    dependency introspection the build runs, against the installed collection."""
    builder = _tool("ansible-builder")
    ee_src = os.path.join(REPO, "docs", "execution-environment")
    work = tmp_path / "ee"
    shutil.copytree(ee_src, str(work), ignore=shutil.ignore_patterns("context", "collections"))
    requirements = yaml.safe_load((work / "requirements.yml").read_text())
    entries = [c["name"] for c in requirements["collections"] if c.get("type") == "file"]
    assert entries == ["/build/collections/" + TARBALL_NAME], \
        "docs/execution-environment/requirements.yml must name the tarball of version %s" % GALAXY["version"]
    (work / "collections").mkdir()
    shutil.copy(str(tarball), str(work / "collections" / TARBALL_NAME))

    _run([builder, "create", "--file", "execution-environment.yml", "--context", str(work / "context")],
         cwd=str(work))
    context = work / "context"
    containerfiles = [p for p in ("Containerfile", "Dockerfile") if (context / p).exists()]
    assert containerfiles, sorted(os.listdir(context))
    containerfile = (context / containerfiles[0]).read_text()
    assert "ansible-galaxy collection install" in containerfile and "-r requirements.yml" in containerfile
    assert "introspect" in containerfile  # the builder stage collects the collections' dependencies
    built = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert built == requirements
    assert (context / "_build" / "collections" / TARBALL_NAME).exists()

    # What the builder stage runs inside the image, here against the installed tarball.
    pip_out, bindep_out = tmp_path / "pip.txt", tmp_path / "bindep.txt"
    _run([builder, "introspect", "--write-pip", str(pip_out), "--write-bindep", str(bindep_out), str(installed)])
    tag = "# from collection %s" % FQCN

    def wanted(path):
        with open(os.path.join(REPO, path)) as f:
            return [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]

    python_deps = [line.split("#")[0].strip() for line in pip_out.read_text().splitlines() if tag in line]
    system_deps = [line.split("#")[0].strip() for line in bindep_out.read_text().splitlines() if tag in line]
    # ansible-builder leaves out what every EE already has (ansible-core's own PyYAML, test tools).
    from ansible_builder._target_scripts.introspect import EXCLUDE_REQUIREMENTS

    assert python_deps == [r for r in wanted("requirements.txt")
                           if re.split(r"[<>=!~ \[;]", r)[0].lower() not in EXCLUDE_REQUIREMENTS]
    assert system_deps == wanted("bindep.txt")
    for lib in ("hvac", "kubernetes", "cryptography"):
        assert any(d.lower().startswith(lib) for d in python_deps), python_deps


# -- AWX: the credential type's injectors and ansible-runner ----------------------------------------

def awx_inject(credential_type, inputs, private_data_dir):
    """Render a custom credential type's injectors the way AWX does: every field is in the
    namespace (missing ones as their default, '' or False), file templates are written to files
    private to the job and named by ``tower.filename``, env templates are rendered in a sandbox."""
    env_jinja = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    namespace = {}
    for field in credential_type["inputs"]["fields"]:
        default = field.get("default", False if field.get("type") == "boolean" else "")
        namespace[field["id"]] = inputs.get(field["id"], default)
    unknown = set(inputs) - set(namespace)
    assert not unknown, "inputs not declared by the credential type: %s" % unknown
    required = set(credential_type["inputs"].get("required", []))
    assert required <= {k for k, v in namespace.items() if v not in ("", None)}, required

    filenames = {}
    for key, template in sorted(credential_type["injectors"].get("file", {}).items()):
        name = key.split(".", 1)[1] if "." in key else None
        path = os.path.join(private_data_dir, "awx-cred-%s" % (name or "file"))
        with open(path, "w") as f:
            f.write(env_jinja.from_string(template).render(**namespace))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if name:
            filenames[name] = path
        else:
            filenames = path

    class Tower(object):
        filename = filenames

    env = {}
    for var, template in credential_type["injectors"].get("env", {}).items():
        env[var] = env_jinja.from_string(template).render(tower=Tower, **namespace)
    return env


def _load_credential_type(name):
    with open(os.path.join(REPO, "docs", "awx", name)) as f:
        return yaml.safe_load(f)


def test_vault_credential_type_injects_what_the_modules_read(tmp_path):
    """Every variable the Vault credential injects is one the modules read (by the name their
    documentation and module_utils use), and empty inputs inject empty (= unset) variables."""
    cred = _load_credential_type("credential_type.yml")
    env = awx_inject(cred, {"url": "https://vault.example.com:8200", "auth_method": "token", "token": "s.x"},
                     str(tmp_path))
    read_by_modules = set()
    for path in _source_files("plugins/module_utils/**/*.py"):
        with open(os.path.join(REPO, path)) as f:
            read_by_modules |= set(re.findall(r'"(VAULT_[A-Z_]+)"', f.read()))
    assert set(env) <= read_by_modules, set(env) - read_by_modules
    assert env["VAULT_ADDR"] == "https://vault.example.com:8200" and env["VAULT_TOKEN"] == "s.x"
    assert env["VAULT_CACERT"] == "" and env["VAULT_SKIP_VERIFY"] == "" and env["VAULT_SECRET_ID"] == ""
    secret_fields = [f["id"] for f in cred["inputs"]["fields"] if f.get("secret")]
    for var, template in cred["injectors"]["env"].items():
        if any(field in template for field in secret_fields):
            assert AWX_REDACTED_ENV.search(var), "%s carries a secret but AWX would not redact it" % var

    k8s = _load_credential_type("credential_type_kubernetes.yml")
    env = awx_inject(k8s, {"kubeconfig": "apiVersion: v1\nkind: Config\n", "context": "east"}, str(tmp_path))
    with open(os.path.join(REPO, "plugins", "module_utils", "kubernetes", "client.py")) as f:
        kube_client = f.read()
    for var in env:
        assert '"%s"' % var in kube_client, var
    with open(env["K8S_AUTH_KUBECONFIG"]) as f:
        assert f.read().startswith("apiVersion: v1")
    assert stat.S_IMODE(os.stat(env["K8S_AUTH_KUBECONFIG"]).st_mode) == 0o600


def _bao_ns(bao, namespace, method, path, body=None, token=None):
    """A request inside an OpenBao namespace (plain urllib, not the code under test), as root unless
    ``token`` is given ('' for none, as a login)."""
    try:
        return vault_request(bao.http_url, method, path, body, token=bao.token if token is None else token,
                             namespace=namespace)
    except urllib.error.HTTPError as e:
        if e.code == 404 and method == "GET":
            return None
        raise AssertionError("%s %s: %s %s" % (method, path, e.code, e.read()[:300]))


def _load_job_template():
    with open(os.path.join(REPO, "docs", "awx", "job_template.yml")) as f:
        return yaml.safe_load(f)


def _survey_extra_vars(template, **answers):
    """The extra vars AWX passes for a launch of ``template``: every survey question's answer (its
    default unless answered), each checked against the question as AWX validates it."""
    questions = {q["variable"]: q for q in template["survey_spec"]["spec"]}
    assert template["survey_enabled"] and set(answers) <= set(questions), set(answers) - set(questions)
    extra_vars = {}
    for variable, question in questions.items():
        value = answers.get(variable, question.get("default"))
        assert value not in (None, "") or not question.get("required"), variable
        if question["type"] == "multiplechoice":
            assert value in question["choices"], (variable, value)
        elif question["type"] == "text":
            assert question.get("min", 0) <= len(value) <= question.get("max", 1024), (variable, value)
        extra_vars[variable] = value
    return extra_vars


def _job_cmdline(template, job_type):
    """The ansible-playbook options AWX derives from the job template (RunJob.build_args)."""
    assert job_type == template["job_type"] or template.get("ask_job_type_on_launch"), job_type
    args = ["--check"] if job_type == "check" else []
    if template.get("diff_mode"):
        args.append("--diff")
    if template.get("forks"):
        args.append("--forks=%d" % template["forks"])
    if template.get("verbosity"):
        args.append("-" + "v" * template["verbosity"])
    return " ".join(args)


def _runner_project(private_data_dir, playbook_file, playbook_fqcn, inventory):
    """An AWX-style project (a playbook that imports the collection's playbook by name, as
    docs/awx/job_template.yml describes it) and the job's inventory."""
    project = os.path.join(private_data_dir, "project")
    os.makedirs(project)
    with open(os.path.join(project, playbook_file), "w") as f:
        yaml.safe_dump([{"name": "The collection's playbook, as an AWX project imports it",
                         "ansible.builtin.import_playbook": playbook_fqcn}], f, sort_keys=False)
    os.makedirs(os.path.join(private_data_dir, "inventory"))
    with open(os.path.join(private_data_dir, "inventory", "hosts.yml"), "w") as f:
        yaml.safe_dump(inventory, f, sort_keys=False)


def _runner_run(tmp_path, label, installed, credential_env, inventory, template, job_type, extravars):
    """One AWX job of ``template``: ansible-runner with a private data dir, the project importing the
    collection's main playbook by name, the collection from ``installed``, ``credential_env`` as the
    credentials' injected environment (in memory, not written to env/: suppress_env_files)."""
    try:
        import ansible_runner
    except ImportError:
        pytest.fail("ansible-runner is missing: %s -m pip install -r requirements-test.txt" % sys.executable)
    private_data_dir = str(tmp_path / label)
    _runner_project(private_data_dir, template["playbook"], "%s.istio_vault_ca" % FQCN, inventory)
    env = dict(credential_env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(installed),  # the installed tarball, not the source tree
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-local"),
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    result = ansible_runner.run(private_data_dir=private_data_dir, playbook=template["playbook"], envvars=env,
                                cmdline=_job_cmdline(template, job_type), extravars=extravars,
                                suppress_env_files=True, quiet=True, ident=label)
    stdout = result.stdout.read() if result.stdout else ""
    return result, private_data_dir, stdout


def _artifact_texts(private_data_dir):
    for root, _dirs, files in os.walk(os.path.join(private_data_dir, "artifacts")):
        for name in files:
            path = os.path.join(root, name)
            with open(path, errors="replace") as f:
                yield path, f.read()


def _assert_secrets_not_in_artifacts(private_data_dir, secrets):
    """No secret in any artifact AWX keeps (stdout, job events, status...). ansible-runner's own
    launch record (artifacts/<ident>/command, mode 0600) holds the job's environment: there a secret
    may appear only as the value of a variable AWX redacts by name."""
    assert all(len(secret) >= 16 for secret in secrets), "a short 'secret' would match by chance"
    checked = 0
    for path, text in _artifact_texts(private_data_dir):
        checked += 1
        if os.path.basename(path) == "command":
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            launch_env = json.loads(text)["env"]
            for var, value in launch_env.items():
                if any(secret in value for secret in secrets):
                    assert AWX_REDACTED_ENV.search(var), "secret in %s, which AWX would not redact" % var
            rest = json.dumps(dict(json.loads(text), env=None))
            assert not any(secret in rest for secret in secrets), path
            continue
        for secret in secrets:
            assert secret not in text, "secret found in artifact %s" % path
    assert checked >= 3, "no artifacts written"
    assert not os.path.exists(os.path.join(private_data_dir, "env", "envvars")), "env written to disk"


def _private_key_slices(pem):
    """32-character pieces of a PEM private key's body from its second half (private exponent and
    primes: never in a certificate), each inside one line, so they match in raw and in JSON text."""
    lines = [line.strip() for line in pem.strip().splitlines() if not line.startswith("-----")]
    full = [line for line in lines if len(line) == 64]
    assert len(full) >= 8, pem[:80]
    return [line[16:48] for line in full[len(full) // 2:]]


def _load_embedded():
    """tools/embedded.py (the sample ControlPlane every environment of the project starts with)."""
    spec = importlib.util.spec_from_file_location("meshpki_embedded", os.path.join(REPO, "tools", "embedded.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def awx_cluster(tmp_path):
    """The fake Kubernetes API with the sample ControlPlane, behind a kubeconfig whose current context
    ("decoy") points at nothing: the job reaches the cluster only through the context the Kubernetes
    credential names ("east")."""
    from harness.fake_k8s import FakeKubeApi

    with FakeKubeApi() as fake:
        kubeconfig = tmp_path / "kubeconfig"
        fake.write_kubeconfig(kubeconfig, context_name="east")
        _load_embedded().seed_controlplane(str(kubeconfig))
        fake.add_context("decoy", server="https://127.0.0.1:9")
        fake.write_kubeconfig(kubeconfig, context_name="east")
        config = yaml.safe_load(kubeconfig.read_text())
        config["current-context"] = "decoy"
        yield fake, yaml.safe_dump(config, sort_keys=False)


CONTROLPLANE = ("install.tetrate.io/v1alpha1", "controlplanes", "controlplane", "tsb")
KUBE_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _kube_writes(fake, since):
    """Writes the job sent to the cluster (dry runs and Vault's TokenReviews are not writes)."""
    return [(r["method"], r["path"]) for r in fake.requests[since:]
            if r["method"] in KUBE_WRITES and "dryRun" not in (r["query"] or "")
            and not r["path"].endswith("/tokenreviews")]


def _vault_writes(bao, since, namespace):
    """Writes in ``namespace`` after audit position ``since`` (logins left out)."""
    writes = []
    for entry in bao.audit.entries()[since:]:
        request = entry.get("request") or {}
        ns = (request.get("namespace") or {}).get("path", "").strip("/")
        if entry.get("type") == "request" and ns == namespace and request.get("operation") in (
                "create", "update", "delete") and "/login" not in request.get("path", ""):
            writes.append(request["path"])
    return writes


def _assert_issued_by(cert_pem, issuer_pem):
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    issuer = x509.load_pem_x509_certificate(issuer_pem.encode())
    assert cert.issuer == issuer.subject
    issuer.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                               cert.signature_hash_algorithm)
    return cert


def test_main_playbook_from_installed_tarball_as_an_awx_job(bao_tls, installed, awx_cluster, tmp_path):
    """The collection's main playbook as AWX runs it: ansible-runner with a private data dir, a project
    importing meshpki.vault_ca.istio_vault_ca from the installed tarball, docs/awx/job_template.yml's
    survey answers as extra vars and its job options (diff, forks, job type), and the environment both
    credential types inject (Vault over TLS with its CA file and a namespace; the kubeconfig and its
    context). Run -> a working CA chain, Kubernetes auth and ControlPlane; Run again -> changed=0;
    Check with an AppRole that may only read -> changed=0, nothing written. No secret in any artifact."""
    fake, kubeconfig_text = awx_cluster
    template = _load_job_template()
    namespace = "awx-" + uuid.uuid4().hex[:8]
    bao_tls.api("POST", "sys/namespaces/" + namespace, {})
    vault_type, kube_type = _load_credential_type("credential_type.yml"), _load_credential_type(
        "credential_type_kubernetes.yml")
    with open(bao_tls.ca_file) as f:
        ca_pem = f.read()
    kube_env = awx_inject(kube_type, {"kubeconfig": kubeconfig_text, "context": "east"}, str(tmp_path))
    token_env = dict(kube_env, **awx_inject(vault_type, {
        "url": bao_tls.tls_url, "auth_method": "token", "token": bao_tls.token, "namespace": namespace,
        "ca_cert": ca_pem}, str(tmp_path)))
    # The AWX inventory: one host per cluster in the group the survey's default answer names.
    inventory = {"all": {"children": {"istio_clusters": {
        "hosts": {"east": {}},
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "istio_vault_ca_k8s_token_reviewer": {"create": True},
                 "istio_vault_ca_extra_env": {"AUTO_RELOAD_PLUGIN_CERTS": "true"}}}}}}
    defaults = _survey_extra_vars(template)
    assert defaults["istio_vault_ca_clusters"] == "istio_clusters"

    # 1. Job type Run, the survey's default answers: everything is created.
    kube_mark, vault_mark = len(fake.requests), bao_tls.audit.mark()
    first, pdd1, out1 = _runner_run(tmp_path, "run-1", installed, token_env, inventory, template, "run", defaults)
    assert first.status == "successful" and first.rc == 0, out1[-4000:]
    assert first.stats["changed"].get("east", 0) >= 5, first.stats
    assert "istiod would accept the bundle" in out1, out1[-3000:]
    # What the write checks of the later runs look for is seen here (they cannot pass for want of data).
    assert "secret/data/istioca" in _vault_writes(bao_tls, vault_mark, namespace)
    assert ("PATCH", "/apis/install.tetrate.io/v1alpha1/namespaces/tsb/controlplanes/controlplane") in \
        _kube_writes(fake, kube_mark), _kube_writes(fake, kube_mark)
    with open(os.path.join(pdd1, "artifacts", "run-1", "command")) as f:
        assert json.load(f)["env"]["VAULT_TOKEN"] == bao_tls.token  # ansible-runner's launch record (docs/awx)

    root_pem = _bao_ns(bao_tls, namespace, "GET", "pki/cert/ca")["data"]["certificate"]
    int_pem = _bao_ns(bao_tls, namespace, "GET", "istioca/cert/ca")["data"]["certificate"]
    intermediate = _assert_issued_by(int_pem, root_pem)
    # istiod's login, as its Vault Agent does it: Vault asks the cluster (TokenReview, with the reviewer
    # JWT the job put there) whether the service-account JWT is valid, then grants the job's policy.
    jwt = fake.mint_sa_token("istio-system", "istiod-service-account")
    login = _bao_ns(bao_tls, namespace, "POST", "auth/kubernetes/login", {"role": "istiod", "jwt": jwt}, token="")
    assert "istioca" in login["auth"]["policies"], login["auth"]["policies"]
    key_pem = _bao_ns(bao_tls, namespace, "GET", "secret/data/istioca",
                      token=login["auth"]["client_token"])["data"]["data"]["ca-key.pem"]
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert key.public_key().public_numbers() == intermediate.public_key().public_numbers()
    deployment = fake.get_object(*CONTROLPLANE)["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    annotations = deployment["podAnnotations"]
    assert annotations["vault.hashicorp.com/agent-inject"] == "true"
    assert annotations["vault.hashicorp.com/role"] == "istiod"
    assert annotations["example.com/owner"] == "platform-team"  # the ControlPlane's own, kept
    # The CA lives in a namespace, so istiod's agent must log in and read there: the real bao agent, configured
    # from these annotations as the injector does, renders four files istiod accepts.
    assert annotations["vault.hashicorp.com/namespace"] == namespace
    jwt_file = tmp_path / "istiod.jwt"
    jwt_file.write_text(fake.mint_sa_token("istio-system", "istiod-service-account"))
    bundle = str(tmp_path / "rendered")
    rendered = agent.render(bao_tls.tls_url, annotations, bundle, ca_file=bao_tls.ca_file,
                            auth={"method": "kubernetes", "role": "istiod", "jwt_file": str(jwt_file)})
    assert rendered.returncode == 0, rendered.stderr[-3000:]
    report = verify_bundle_dir(bundle)
    assert [c["name"] for c in report["checks"] if not c["passed"]] == [], report["checks"]
    # Without that annotation the agent logs in at the root namespace, where istiod has no role.
    root_only = dict((k, v) for k, v in annotations.items() if k != "vault.hashicorp.com/namespace")
    jwt_file.write_text(fake.mint_sa_token("istio-system", "istiod-service-account"))
    lost = agent.render(bao_tls.tls_url, root_only, str(tmp_path / "root-ns"), ca_file=bao_tls.ca_file,
                        auth={"method": "kubernetes", "role": "istiod", "jwt_file": str(jwt_file)}, timeout=120)
    assert lost.returncode != 0 and not os.path.exists(str(tmp_path / "root-ns" / "ca-key.pem")), lost.stderr[-2000:]
    env = {e["name"]: e.get("value") for e in deployment["env"]}
    assert env["ROOT_CA_DIR"] == "/etc/cacerts-vault" and env["AUTO_RELOAD_PLUGIN_CERTS"] == "true"
    assert env["PILOT_TRACE_SAMPLING"] == "1"
    controlplane = fake.get_object(*CONTROLPLANE)

    # 2. Run again: nothing to do, nothing written - verification included (it mints no token when nothing changed).
    kube_mark, vault_mark = len(fake.requests), bao_tls.audit.mark()
    second, pdd2, out2 = _runner_run(tmp_path, "run-2", installed, token_env, inventory, template, "run", defaults)
    assert second.status == "successful" and second.rc == 0, out2[-4000:]
    assert second.stats["changed"].get("east", 0) == 0 and second.stats["ok"].get("east", 0) >= 5, second.stats
    assert re.search(r"east\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out2), out2[-2000:]
    assert _kube_writes(fake, kube_mark) == []
    assert _vault_writes(bao_tls, vault_mark, namespace) == []

    # 3. Job type Check with an AppRole whose policy may only read (and create the verify step's token):
    # a Check job that tried to write would fail here, not just report changed.
    _bao_ns(bao_tls, namespace, "POST", "sys/auth/approle-awx", {"type": "approle"})
    _bao_ns(bao_tls, namespace, "PUT", "sys/policies/acl/awx-check", {"policy": (
        'path "*" { capabilities = ["read", "list"] }\n'
        'path "auth/token/create" { capabilities = ["update", "sudo"] }\n')})
    _bao_ns(bao_tls, namespace, "POST", "auth/approle-awx/role/awx",
            {"token_policies": ["awx-check"], "token_ttl": "10m"})
    role_id = _bao_ns(bao_tls, namespace, "GET", "auth/approle-awx/role/awx/role-id")["data"]["role_id"]
    secret_id = _bao_ns(bao_tls, namespace, "POST", "auth/approle-awx/role/awx/secret-id", {})["data"]["secret_id"]
    approle_env = dict(kube_env, **awx_inject(vault_type, {
        "url": bao_tls.tls_url, "auth_method": "approle", "role_id": role_id, "secret_id": secret_id,
        "auth_mount": "approle-awx", "namespace": namespace, "ca_cert": ca_pem}, str(tmp_path)))
    assert approle_env["VAULT_TOKEN"] == ""
    kube_mark, vault_mark = len(fake.requests), bao_tls.audit.mark()
    check, pdd3, out3 = _runner_run(tmp_path, "check-approle", installed, approle_env, inventory, template, "check",
                                    _survey_extra_vars(template, istio_vault_ca_clusters="east"))
    assert check.status == "successful" and check.rc == 0, out3[-4000:]
    assert check.stats["changed"].get("east", 0) == 0 and check.stats["ok"].get("east", 0) >= 5, check.stats
    assert re.search(r"east\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", out3), out3[-2000:]
    assert _kube_writes(fake, kube_mark) == []
    # A check job mints no verification token, and revokes the token its AppRole login created.
    assert set(_vault_writes(bao_tls, vault_mark, namespace)) == {"auth/token/revoke-self"}
    assert fake.get_object(*CONTROLPLANE) == controlplane

    # 4. No secret in what AWX keeps of the three jobs: the root token, the AppRole secret ID, the
    # cluster admin token of the kubeconfig, the reviewer JWT the job created, the intermediate's key.
    reviewer = fake.get_object("v1", "secrets", "vault-token-reviewer-token", "vault")
    reviewer_jwt = base64.b64decode(reviewer["data"]["token"]).decode()
    secrets = [bao_tls.token, secret_id, fake.admin_token, reviewer_jwt, key_pem.strip()] + _private_key_slices(key_pem)
    for pdd in (pdd1, pdd2, pdd3):
        _assert_secrets_not_in_artifacts(pdd, secrets)

    # 5. Every task ran from the installed copy: task paths point into the installed collection (its
    # playbook for the role's argument check, its role for the rest), none into the source tree.
    collection = str(installed / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]) + os.sep
    for pdd in (pdd1, pdd3):
        events = [json.loads(text) for path, text in _artifact_texts(pdd) if "/job_events/" in path]
        task_paths = {e["event_data"].get("task_path", "").rsplit(":", 1)[0] for e in events
                      if e.get("event") in ("runner_on_ok", "runner_on_skipped")}
        assert all(p.startswith(collection) for p in task_paths), sorted(task_paths)
        relative = {os.path.relpath(p, collection) for p in task_paths}
        assert "playbooks/istio_vault_ca.yml" in relative, sorted(relative)
        role_files = {p for p in relative if p.startswith("roles/istio_vault_ca/tasks/")}
        assert len(role_files) >= 7, sorted(relative)
