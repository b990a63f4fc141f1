"""Secret leaks: the role run normally, in check mode with --diff, at -vvvv (with a rotation, so a new key is
generated and stored), and through ansible-runner with its artifacts directory.

The secrets: every version of the intermediate private key (any 32-character slice of its base64, across
line breaks and JSON escapes), every Vault token the runs held (the approle logins' tokens, the
verification's read token, a token given as input - known from the server's raw audit log, which lives
outside everything scanned), the approle secret_id, the token-reviewer JWTs (the one the bootstrap made
in the cluster, and one given as input), and the operator's own VAULT_TOKEN, set in the environment of
every run: besides appearing nowhere, it must not be sent with the approle login (the raw audit log
shows every request's token).

The places: stdout, stderr, every task result (what ``register`` would hold), every file the run left in
its directory (its ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TEMP, TMPDIR, ANSIBLE_HOME), ansible-runner's
artifacts, and - copied at every request a module made to Vault or to the Kubernetes API, i.e. while the
module was running - those temporary directories during the run. The play file and the vars file that
hand the secrets to the run are inputs, not leaks, and are not scanned. ansible-runner records the job's
environment in env/envvars and artifacts/<ident>/command: those two must be mode 0600 and hold the VAULT_TOKEN
the job was given (so the scanner is shown to see it there) and no other secret.
"""

import json
import os
import stat
import uuid

import pytest
import yaml
from relharness import FaultProxy, SecretScanner, TempSnapshots, VaultState, new_token

from harness.playbook import BIN, Playbooks, ansible_env, role_play

pytestmark = pytest.mark.reliability_fast

REVIEWER = ("vault", "vault-token-reviewer-token")
# The operator's own token, in the environment of every run: a login with another method must not send it.
AMBIENT = "s.ambient" + uuid.uuid4().hex[:17]
AMBIENT_ENV = {"VAULT_TOKEN": AMBIENT}
AMBIENT_LABEL = "VAULT_TOKEN of the environment"
INPUTS = ("play.yml", "secrets.yml")


def _approle(bao):
    bao.api("PUT", "sys/policies/acl/ansible-ca-admin", {"policy": 'path "*" { capabilities = '
                                                                   '["create", "read", "update", "delete", "list", '
                                                                   '"sudo"] }'})
    bao.api("POST", "sys/auth/approle", {"type": "approle"})
    bao.api("POST", "auth/approle/role/ansible", {"token_policies": ["ansible-ca-admin"], "token_ttl": "20m"})
    role_id = bao.api("GET", "auth/approle/role/ansible/role-id")["data"]["role_id"]
    secret_id = bao.api("POST", "auth/approle/role/ansible/secret-id", {})["data"]["secret_id"]
    return role_id, secret_id


def _issued_tokens(bao):
    """Every client token the server issued (logins, token creations): the raw audit log has them."""
    tokens = set()
    for entry in bao.audit.entries():
        auth = ((entry.get("response") or {}).get("auth") or {})
        if auth.get("client_token"):
            tokens.add(auth["client_token"])
    return tokens


class Probe(object):
    """One run's places, scanned for every secret once all runs are over."""

    def __init__(self, name, run, snapshots=None, extra_dirs=(), inputs=(), recorded_env=()):
        self.name = name
        self.recorded_env = list(recorded_env)  # files where ansible-runner records the job's environment
        self.run = run
        self.snapshots = snapshots
        self.extra_dirs = extra_dirs
        self.inputs = [os.path.join(run.workdir, name) for name in INPUTS] + list(inputs)

    def places(self):
        yield "stdout", self.run.stdout
        yield "stderr", self.run.stderr
        yield "task results", yaml.safe_dump(self.run.results)
        yield "files left in the run's directory", self.run.workdir
        if self.snapshots is not None:
            yield "temporary files while modules ran", self.snapshots.into
        for label, path in self.extra_dirs:
            yield label, path


def _scan(scanner, probes, report):
    leaks = []
    count = 0
    for probe in probes:
        for place, what in probe.places():
            if os.path.isdir(what):
                found = scanner.scan_tree(what, skip=probe.inputs)
                labels = set(label for labels in found.values() for label in labels)
                detail = dict((os.path.relpath(p, what), sorted(v)) for p, v in found.items())
            else:
                labels = scanner.find(what)
                detail = sorted(labels)
            count += scanner.count
            for label in sorted(labels):
                leaks.append((probe.name, place, label, detail))
            report.detail("Secret leaks", run=probe.name, place=place, secrets_looked_for=scanner.count,
                          leaked=sorted(labels))
    return count, leaks


def test_role_leaks_no_secret(raw_bao, cluster, tmp_path, report):
    bao = raw_bao
    role_id, secret_id = _approle(bao)
    proxy = FaultProxy([bao.url]).start()
    ansible = Playbooks(tmp_path / "runs", isolated=True)
    secrets_file = tmp_path / "secrets.yml"
    given_jwt = cluster.api.mint_sa_token("vault", "given-reviewer", ttl=3600)
    given_token = new_token(bao, [], display_name="leak-input-token")
    base = {"istio_vault_ca_kubeconfig": cluster.kubeconfig, "istio_vault_ca_k8s_token_reviewer": {"create": True}}
    approle = {"url": proxy.url, "auth_method": "approle", "role_id": role_id, "secret_id": secret_id}
    secrets_file.write_text(yaml.safe_dump({"istio_vault_ca_vault": approle}))
    probes = []

    def run(name, role_vars, **kwargs):
        """A role run whose temp dirs are copied at every request it makes."""
        rundir = os.path.join(ansible.workdir, "run%02d" % (ansible.count + 1))
        env = ansible_env(rundir, os.path.join(rundir, "results.jsonl"), isolated=True)
        snapshots = TempSnapshots([env["ANSIBLE_LOCAL_TEMP"], env["ANSIBLE_REMOTE_TEMP"], env["TMPDIR"],
                                   env["ANSIBLE_HOME"]], tmp_path / ("snapshots-%s" % name))
        proxy.observers[:] = [snapshots.take]
        cluster_observer[0] = snapshots.take
        result = ansible.run(role_play(role_vars), extra_args=("-e", "@%s" % secrets_file), env=AMBIENT_ENV,
                             **kwargs)
        proxy.observers[:] = []
        cluster_observer[0] = None
        assert result.rc == 0, result
        assert result.workdir == rundir
        probes.append(Probe(name, result, snapshots))
        return result

    cluster_observer = [None]
    cluster.observe(lambda *a: cluster_observer[0] and cluster_observer[0](*a))

    first = run("check mode --diff (empty Vault)", base, check=True, diff=True)
    assert first.changed(), first
    run("normal", base)
    rotated = dict(base, istio_vault_ca_intermediate_common_name="tetrate.io Intermediate Authority 2",
                   istio_vault_ca_k8s_token_reviewer={}, istio_vault_ca_k8s_token_reviewer_jwt=given_jwt)
    rotation = run("-vvvv --diff, rotation", dict(rotated, istio_vault_ca_rotate=True), diff=True, verbosity=4)
    assert [r["status"] for r in rotation.results if r["action"].endswith("vault_pki_intermediate")] == ["changed"]
    with_token = dict(rotated, istio_vault_ca_vault={"url": proxy.url, "token": given_token})
    run("check mode --diff -vvvv, token auth", with_token, check=True, diff=True, verbosity=4)
    probes.append(_runner(tmp_path, proxy, secrets_file, base, cluster))

    # every secret that existed during the runs
    state = VaultState(bao)
    keys = state.kv_keys_all_versions()
    assert len(keys) == 3, "expected three key versions (issue, rotation, rotation back): %d" % len(keys)
    reviewer_jwt = cluster.secret_data(*REVIEWER).get("token")
    assert reviewer_jwt, "the bootstrap made no reviewer token"
    tokens = _issued_tokens(bao)
    assert len(tokens) >= 5, tokens  # approle logins and verification tokens, at least one per run
    scanner = SecretScanner()
    for i, key in enumerate(keys, 1):
        scanner.add_key("intermediate key v%d" % i, key)
    for i, token in enumerate(sorted(tokens), 1):
        scanner.add_secret("Vault token #%d" % i, token)
    scanner.add_secret("Vault token given as input", given_token)
    scanner.add_secret("approle secret_id", secret_id)
    scanner.add_secret(AMBIENT_LABEL, AMBIENT)
    scanner.add_secret("token-reviewer JWT (bootstrap)", reviewer_jwt)
    scanner.add_secret("token-reviewer JWT (given)", given_jwt)
    # the scanner finds them where they are (so a leak would be seen): the raw audit log holds them all
    with open(bao.audit.path) as f:
        witness = scanner.find(f.read())
    assert witness >= {"intermediate key v1", "intermediate key v3", "approle secret_id",
                       "Vault token given as input"}, witness

    count, leaks = _scan(scanner, probes, report)
    snapshots = sum(p.snapshots.count for p in probes if p.snapshots is not None)
    # the user's own token in VAULT_TOKEN (and ~/.vault-token) must not travel with an approle login
    ambient_sent = [e["request"]["path"] for e in bao.audit.entries()
                    if e.get("type") == "request" and e["request"].get("client_token") == AMBIENT]
    count += 1
    if ambient_sent:
        leaks.append(("every run", "requests to Vault", AMBIENT_LABEL, sorted(set(ambient_sent))))
    report.detail("Secret leaks", run="every approle run", place="requests to Vault (raw audit log)",
                  secrets_looked_for="VAULT_TOKEN / ~/.vault-token of the user", leaked=sorted(set(ambient_sent)))
    # ansible-runner's own records of the job's environment (mode 0600, checked in _runner) hold the VAULT_TOKEN
    # the job was given - ansible-runner writes it there, not the collection - and no other secret
    for probe in probes:
        for path in probe.recorded_env:
            with open(path) as f:
                labels = scanner.find(f.read())
            count += scanner.count
            assert AMBIENT_LABEL in labels, "the scanner no longer sees the VAULT_TOKEN in %s" % path
            others = sorted(labels - {AMBIENT_LABEL})
            if others:
                leaks.append((probe.name, path, others, "besides the VAULT_TOKEN given to the job"))
            report.detail("Secret leaks", run=probe.name, place=os.path.relpath(path, probe.run.workdir),
                          secrets_looked_for=scanner.count,
                          leaked="%s (the job's own environment, recorded by ansible-runner, mode 0600)%s"
                                 % (AMBIENT_LABEL, "; also " + ", ".join(others) if others else ""))
    report.metric("leaks", probes=count, leaks=len(leaks), snapshots=snapshots)
    assert snapshots > 20, snapshots
    assert not leaks, "\n".join("%s / %s: %s %s" % leak for leak in leaks)


def _runner(tmp_path, proxy, secrets_file, base, cluster):
    """A rotation back to the default common name through ansible-runner, with its artifacts directory."""
    try:
        import ansible_runner
    except ImportError:
        pytest.fail("ansible-runner is not installed: pip install -r requirements-test.txt (ansible-runner==2.4.3)")
    private = tmp_path / "runner"
    project = private / "project"
    project.mkdir(parents=True)
    rotate_vars = dict(base, istio_vault_ca_k8s_token_reviewer={}, istio_vault_ca_rotate=True)
    (project / "play.yml").write_text(yaml.safe_dump(role_play(rotate_vars)))
    rundir = str(private)
    env = ansible_env(rundir, str(private / "results.jsonl"), isolated=True)
    snapshots = TempSnapshots([env["ANSIBLE_LOCAL_TEMP"], env["ANSIBLE_REMOTE_TEMP"], env["TMPDIR"],
                               env["ANSIBLE_HOME"]], tmp_path / "snapshots-runner")
    proxy.observers[:] = [snapshots.take]
    ident = "leak-" + uuid.uuid4().hex[:6]
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = BIN + os.pathsep + old_path  # runner looks up ansible-playbook on PATH
    try:
        result = ansible_runner.run(private_data_dir=rundir, playbook="play.yml", ident=ident, quiet=True,
                                    envvars=dict(AMBIENT_ENV, **dict((k, v) for k, v in env.items()
                                                                     if k.startswith(("ANSIBLE_", "MESHPKI_",
                                                                                      "TMPDIR")))),
                                    cmdline="-e @%s" % secrets_file)
    finally:
        os.environ["PATH"] = old_path
        proxy.observers[:] = []
    artifacts = private / "artifacts" / ident
    # ansible-runner records the environment it ran the job with - env/envvars (the envvars it was given; not
    # with suppress_env_files) and artifacts/<ident>/command (the whole environment of ansible-playbook). They
    # are inputs, not the collection's output: left out of the directory scans, scanned on their own in the
    # test (nothing but the VAULT_TOKEN given), and they must be readable by their owner only.
    envvars_file, command_file = private / "env" / "envvars", artifacts / "command"
    for path in (envvars_file, command_file):
        assert path.exists(), "ansible-runner wrote no %s" % path
        mode = stat.S_IMODE(os.stat(str(path)).st_mode)
        assert not mode & 0o077, "%s holds the job's VAULT_TOKEN and is mode %04o" % (path, mode)
    assert json.loads(envvars_file.read_text()).get("VAULT_TOKEN") == AMBIENT, "env/envvars lacks VAULT_TOKEN"
    command = json.loads(command_file.read_text())
    assert command["env"].get("VAULT_TOKEN") == AMBIENT, "ansible-runner no longer records the environment"
    runner_inputs = [str(private / "env"), str(command_file), str(project / "play.yml")]
    stdout = (artifacts / "stdout").read_text() if (artifacts / "stdout").exists() else ""
    assert result.rc == 0 and result.status == "successful", stdout[-4000:]
    results = []
    if (private / "results.jsonl").exists():
        results = [json.loads(line) for line in (private / "results.jsonl").read_text().splitlines() if line.strip()]

    class RunnerRun(object):
        pass

    run = RunnerRun()
    run.stdout, run.stderr, run.results, run.workdir = stdout, "", results, rundir
    assert any(r["status"] == "changed" for r in results), "the runner run rotated nothing"
    events = list(result.events)
    assert events, "ansible-runner produced no events"
    return Probe("ansible-runner (artifacts)", run, snapshots,
                 extra_dirs=(("ansible-runner artifacts", str(artifacts)),), inputs=runner_inputs,
                 recorded_env=(str(envvars_file), str(command_file)))
