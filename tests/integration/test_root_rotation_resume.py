"""Issue 18: "A run killed at any point resumes on the next run" - a SIGKILL after EACH write of a rotation run.

Three clusters, the real playbooks against a real OpenBao (one server for the module, a mesh per case), the real
``bao agent`` rendering each cluster's four files. Every write of the transitions that write more than once is
enumerated (``transition_writes``: the engine's record and default issuer, then per cluster the intermediate's
key generation, KV write, sign-intermediate, set-signed and default issuer, then per cluster the token probe of
the verification, which the run's changed intermediate turns on); the runs that are killed use one fork, so that
the order of the writes is the enumerated one (with more forks the clusters' writes interleave; the proxy still lets
exactly N writes through). The stop is tests/harness/write_stop.py: a proxy in front of OpenBao that SIGKILLs the
``ansible-playbook`` process group right after OpenBao answered the N-th write, before the answer reaches the
module, and lets nothing through after it.

For each boundary k (after write k, before write k+1):

- trust -> sign is killed after write k; one normal re-run must converge to what an uninterrupted run leaves
  (record phase sign, signer B, B the root mount's default issuer, bundle A+B, every cluster's intermediate signed
  by B with exactly one new key version in KV, the rendered files consistent and chaining to B); a further re-run
  writes nothing;
- then abort (from sign) is killed after write k; the same (signer A, every intermediate back on A, B still trusted);
- for k = 1 also start -> trust (B generated, then the record): the re-run adopts B, no second root.

The uninterrupted case (k = 0) checks that the enumeration is every write of those runs, in order. Measured numbers
(runs, writes per run, seconds per run) are printed (pytest -s).
"""

import datetime
import os
import subprocess

import pytest
import test_root_rotation as rotation
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from test_root_rotation import CLUSTERS, INSIDE_THE_PHASE, ROTATE, STATS, phase_result, roots_in, serial, sleep_until

from harness.write_stop import WriteStop

# the fixtures of test_root_rotation.py: one OpenBao for this module, a mesh of three clusters per test
rbao = rotation.rbao
mesh = rotation.mesh

ONE_FORK = ("-f", "1")
ABORT = ("-e", "istio_vault_ca_root_rotation=abort")
PER_CLUSTER = ("key generated", "key stored in KV", "signed by the root", "set-signed", "default issuer")
PROBE = ("probe token created", "probe token revoked")
# the order the hosts run in with one fork: the mesh's inventory is written by yaml.safe_dump, which sorts the keys
ORDER = tuple(sorted(CLUSTERS))
TRANSITION_LABELS = (["record", "root default issuer"]
                     + ["%s: %s" % (name, step) for name in ORDER for step in PER_CLUSTER]
                     + ["%s: %s" % (name, step) for name in ORDER for step in PROBE])
ALL_BOUNDARIES = list(range(1, len(TRANSITION_LABELS)))
# make test (kept under ~30 min) runs two boundaries, about 100 s each: k=1 (the start killed after B was generated,
# then trust -> sign after the record) and k=4 (a cluster's new key stored in KV, not signed: the kill that used to
# block the rotation for good); `make rotation-kills` (MESHPKI_ROTATION_KILLS=all) every boundary, about 28 min.
BOUNDARIES = ALL_BOUNDARIES if os.environ.get("MESHPKI_ROTATION_KILLS") == "all" else [1, 4]


def transition_writes(mesh):
    """The writes of trust -> sign and of abort from sign, in order (one fork): [(label, path)]."""
    paths = ["secret/data/" + mesh.bundle_path, mesh.root_mount + "/config/issuers"]
    for name in ORDER:
        host = mesh.hosts[name]
        mount = host["istio_vault_ca_intermediate_mount"]
        paths += [mount + "/intermediate/generate/exported", "secret/data/" + host["istio_vault_ca_kv_path"],
                  mesh.root_mount + "/root/sign-intermediate", mount + "/intermediate/set-signed",
                  mount + "/config/issuers"]
    for _name in ORDER:
        paths += ["auth/token/create", "auth/token/revoke-self"]
    return list(zip(TRANSITION_LABELS, paths))


def start_writes(mesh):
    return [("root generated", mesh.root_mount + "/root/rotate/internal"),
            ("record", "secret/data/" + mesh.bundle_path)]


def inventory_via(mesh, url):
    """A copy of the mesh's inventory whose Vault url is ``url`` (the proxy)."""
    doc = yaml.safe_load(open(mesh.inventory))
    group = doc["istio_clusters"]["vars"]
    group["istio_vault_ca_vault"] = dict(group["istio_vault_ca_vault"], url=url)
    path = mesh.tmp_path / ("inventory-proxy-%d.yml" % mesh.runner.count)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def rotate_through(mesh, label, after, *extra):
    """A rotation run through the proxy, killed right after its ``after``-th write (None: not killed); returns
    (run, [(method, path)] of the writes that reached Vault)."""
    holder = {}

    def kill_the_run():  # the run is started inside the proxy's block: looked up when the stop fires
        holder["run"].kill()

    with WriteStop(mesh.bao.url, after=after, action=kill_the_run) as proxy:
        mark = mesh.bao.audit.mark()
        holder["run"] = mesh.runner.start_file(ROTATE, extra_args=list(ONE_FORK + extra),
                                               inventory=inventory_via(mesh, proxy.url))
        run = holder["run"].wait()
        writes = mesh.bao.audit.writes(since=mark)
    STATS.append((label, round(run.duration, 1), len(writes)))
    if after is not None:
        assert proxy.fired.is_set() and run.killed, ("the run ended before its write %d" % after, run)
    assert [path for _op, path in writes] == [path for _method, path in proxy.writes], (writes, proxy.writes)
    return run, writes


def resume(mesh, label, *extra):
    """The normal re-run after a kill (the same command, as a schedule repeats it; inside the phase)."""
    run, writes = mesh.rotate(label, *(extra + INSIDE_THE_PHASE))
    assert run.rc == 0, run
    return run, writes


def idle(mesh, label, phase, *extra):
    run, writes = mesh.rotate(label, *(extra + INSIDE_THE_PHASE))
    assert run.rc == 0, run
    assert writes == [], writes
    assert run.changed() == [], [r["task"] for r in run.changed()]
    assert phase_result(run)["phase"] == phase
    return run


def kv_version(mesh, name):
    path = mesh.hosts[name]["istio_vault_ca_kv_path"]
    return mesh.bao.api("GET", "secret/metadata/" + path)["data"]["current_version"]


def rendered_verifies(mesh, name, rendered):
    """The four rendered files are consistent: a workload certificate signed with ca-key.pem under ca-cert.pem
    verifies (openssl) against root-cert.pem through cert-chain.pem. Returns the chain's root serial."""
    ca_cert = x509.load_pem_x509_certificate((rendered / "ca-cert.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((rendered / "ca-key.pem").read_bytes(), password=None)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(ca_cert.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                "spiffe://cluster.local/ns/default/sa/%s" % name)]), critical=True)
            .sign(ca_key, hashes.SHA256()))
    (rendered / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    proc = subprocess.run(["openssl", "verify", "-CAfile", str(rendered / "root-cert.pem"), "-untrusted",
                           str(rendered / "cert-chain.pem"), str(rendered / "leaf.pem")],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, (name, proc.stdout + proc.stderr)
    return x509.load_pem_x509_certificates((rendered / "cert-chain.pem").read_bytes())[-1].serial_number


def assert_state(mesh, phase, signer_key, trusted_keys, versions):
    """What an uninterrupted run leaves: the record's phase and signer, the root mount's default issuer, the
    bundle, every intermediate signed by the signer, exactly one new key version per cluster, the rendered files
    consistent and chaining to the signer."""
    record = mesh.record()
    ids = {"A": record["old_issuer_id"], "B": record["new_issuer_id"]}
    serials = dict((key, serial(mesh.bao.api("GET", "%s/issuer/%s" % (mesh.root_mount, issuer))["data"]
                                ["certificate"])) for key, issuer in ids.items())
    assert record["phase"] == phase and record["signer"] == ids[signer_key], record
    assert record["trusted"] == ",".join(ids[key] for key in trusted_keys), record
    assert mesh.bao.api("GET", mesh.root_mount + "/config/issuers")["data"]["default"] == ids[signer_key]
    issuers = mesh.bao.api("LIST", mesh.root_mount + "/issuers")["data"]["keys"]
    assert sorted(issuers) == sorted(ids.values()), issuers  # no second new root
    for name in CLUSTERS:
        assert kv_version(mesh, name) == versions[name], (name, kv_version(mesh, name), versions[name])
        rendered = mesh.render(name)
        assert roots_in(rendered) == [serials[key] for key in trusted_keys], name
        assert rendered_verifies(mesh, name, rendered) == serials[signer_key], name


def test_the_enumerated_writes_are_every_write_of_the_runs(mesh):
    """k = 0: no kill. The writes of start -> trust, trust -> sign and abort from sign are exactly the enumerated
    ones, in order - so the boundaries below are all of them."""
    first = len(STATS)
    run, writes = rotate_through(mesh, "start (1 fork)", None)
    assert run.rc == 0 and [w[1] for w in writes] == [p for _l, p in start_writes(mesh)], writes
    sleep_until(mesh.record()["next_phase_at"])
    versions = dict((name, kv_version(mesh, name)) for name in CLUSTERS)
    run, writes = rotate_through(mesh, "trust -> sign (1 fork)", None)
    assert run.rc == 0, run
    assert [w[1] for w in writes] == [p for _l, p in transition_writes(mesh)], writes
    assert_state(mesh, "sign", "B", "AB", dict((name, versions[name] + 1) for name in CLUSTERS))
    run, writes = rotate_through(mesh, "abort from sign (1 fork)", None, *ABORT)
    assert run.rc == 0, run
    assert [w[1] for w in writes] == [p for _l, p in transition_writes(mesh)], writes
    assert_state(mesh, "aborted", "A", "AB", dict((name, versions[name] + 2) for name in CLUSTERS))
    for label, seconds, count in STATS[first:]:
        print("rotation run %-34s %6.1f s  %d write(s)" % (label, seconds, count))


def boundary_id(k):
    return "after-%d-%s" % (k, TRANSITION_LABELS[k - 1].replace(": ", "-").replace(" ", "-"))


@pytest.mark.parametrize("k", BOUNDARIES, ids=[boundary_id(k) for k in BOUNDARIES])
def test_a_run_killed_after_any_write_resumes(mesh, k):
    first = len(STATS)
    expected = transition_writes(mesh)
    if k == 1:  # start -> trust killed after B was generated: the re-run adopts B and writes the record
        run, writes = rotate_through(mesh, "start, killed after 1", 1)
        assert [w[1] for w in writes] == [start_writes(mesh)[0][1]]
        run, writes = mesh.rotate("start, re-run")  # the inventory's margin: the phase's wait stays short
        assert run.rc == 0 and [w[1] for w in writes] == [start_writes(mesh)[1][1]], (run, writes)
        assert phase_result(run)["phase"] == "trust"
    else:
        run, _writes = mesh.rotate("start")
        assert run.rc == 0 and phase_result(run)["phase"] == "trust", run
    idle(mesh, "trust, re-run", "trust")
    sleep_until(mesh.record()["next_phase_at"])
    versions = dict((name, kv_version(mesh, name)) for name in CLUSTERS)

    run, writes = rotate_through(mesh, "trust -> sign, killed after %d" % k, k)
    assert [w[1] for w in writes] == [p for _l, p in expected[:k]], writes
    resume(mesh, "sign, re-run after the kill")
    signed = dict((name, versions[name] + 1) for name in CLUSTERS)
    assert_state(mesh, "sign", "B", "AB", signed)
    idle(mesh, "sign, further re-run", "sign")

    run, writes = rotate_through(mesh, "abort, killed after %d" % k, k, *ABORT)
    assert [w[1] for w in writes] == [p for _l, p in expected[:k]], writes
    resume(mesh, "abort, re-run after the kill", *ABORT)
    assert_state(mesh, "aborted", "A", "AB", dict((name, signed[name] + 1) for name in CLUSTERS))
    idle(mesh, "aborted, further re-run", "aborted", *ABORT)
    for label, seconds, count in STATS[first:]:
        print("[k=%d %s] rotation run %-34s %6.1f s  %d write(s)" % (k, expected[k - 1][0], label, seconds, count))
