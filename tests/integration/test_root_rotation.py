"""Root rotation without downtime (issue 18), end to end: three clusters, the real playbooks
(playbooks/istio_vault_ca.yml, then playbooks/rotate_root.yml) against a real OpenBao, each cluster's templates
taken from its ControlPlane manifest (file mode) and rendered by the real ``bao agent`` with a token holding only
that cluster's istiod policy, at every phase.

A workload certificate signed under A's intermediate and one signed under B's must both verify (``openssl
verify``) against every cluster's rendered root-cert.pem during trust and sign; after retire only B's. Re-runs
inside a phase write nothing (the audit log). A lagging cluster blocks the advance with no write. A run stopped
between two writes (a token that may not make the second one) is completed by the next run. Abort goes back to A.

The clock: workload_cert_ttl and margin are seconds here; the tests sleep past them (no timing assertions).
Measured numbers (runs per rotation, writes and seconds per run) are printed (pytest -s) for the closing note.
"""

import datetime
import os
import subprocess
import sys
import time
import uuid

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from harness import agent
from harness.fake_k8s import FakeKubeApi
from harness.openbao import OpenBaoServer
from harness.playbook import REPO, Playbooks, module_play

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402

CLUSTERS = ("east", "west", "central")
# Seconds: workload_cert_ttl and margin of the rotation (the inventory's). A re-run inside a phase is run with a
# margin of one hour (-e), so that it is inside its phase however slow the machine is.
TTL, MARGIN = 5, 5
INSIDE_THE_PHASE = ("-e", "istio_vault_ca_root_rotation_margin=1h")
MAIN = os.path.join(REPO, "playbooks", "istio_vault_ca.yml")
ROTATE = os.path.join(REPO, "playbooks", "rotate_root.yml")
STATS = []


@pytest.fixture(scope="module")
def rbao(tmp_path_factory):
    with OpenBaoServer(tmp_path_factory.mktemp("bao-rotation"), audit=True) as server:
        yield server


@pytest.fixture
def mesh(rbao, tmp_path):
    """Three clusters (inventory hosts) of one mesh, set up by the main playbook."""
    api = FakeKubeApi().start()
    kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
    embedded.seed_controlplane(kubeconfig)
    suffix = uuid.uuid4().hex[:6]
    hosts = {}
    for name in CLUSTERS:
        manifest = tmp_path / ("%s.yaml" % name)
        manifest.write_text(yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE))
        hosts[name] = {
            "istio_vault_ca_intermediate_mount": "istioca-%s-%s" % (name, suffix),
            "istio_vault_ca_intermediate_common_name": "%s Intermediate Authority" % name,
            "istio_vault_ca_kv_path": "istioca/%s-%s" % (name, suffix),
            "istio_vault_ca_k8s_auth_mount": "kubernetes-%s-%s" % (name, suffix),
            "istio_vault_ca_policy_name": "istioca-%s-%s" % (name, suffix),
            "istio_vault_ca_manifest_path": str(manifest),
            # one fake API server for the three clusters: a reviewer each (they are created at the same time)
            "istio_vault_ca_k8s_token_reviewer": {"create": True, "service_account": "reviewer-%s-%s" % (name, suffix)},
        }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"istio_clusters": {"vars": {
        "ansible_connection": "local",
        "istio_vault_ca_vault": {"url": rbao.url, "token": rbao.token},
        "istio_vault_ca_root_mount": "pki-" + suffix,
        "istio_vault_ca_trust_bundle_path": "roots/pki-" + suffix,
        "istio_vault_ca_multiroot": True,  # the main playbook too: istiod already trusts several roots
        "istio_vault_ca_kubeconfig": kubeconfig,
        "istio_vault_ca_root_rotation_workload_cert_ttl": "%ds" % TTL,
        "istio_vault_ca_root_rotation_margin": "%ds" % MARGIN,
    }, "hosts": hosts}}))
    runner = Playbooks(tmp_path / "runs")
    first = runner.run_file(MAIN, inventory=str(inventory))
    assert first.rc == 0, first
    yield Mesh(rbao, runner, str(inventory), hosts, "pki-" + suffix, tmp_path)
    api.stop()


class Mesh(object):
    def __init__(self, bao, runner, inventory, hosts, root_mount, tmp_path):
        self.bao, self.runner, self.inventory, self.hosts = bao, runner, inventory, hosts
        self.root_mount, self.tmp_path = root_mount, tmp_path
        self.bundle_path = "roots/" + root_mount
        self.renders = 0

    def rotate(self, label, *extra):
        mark = self.bao.audit.mark()
        run = self.runner.run_file(ROTATE, inventory=self.inventory, extra_args=list(extra))
        writes = self.bao.audit.writes(since=mark)
        STATS.append((label, round(run.duration, 1), len(writes)))
        return run, writes

    def record(self):
        return self.bao.api("GET", "secret/data/" + self.bundle_path)["data"]["data"]

    def rotation_result(self, run):
        return run.task("Root rotation, at most one phase - " + "advance")["result"] if any(
            r["task"].endswith("advance") for r in run.results) else \
            [r for r in run.results if "Root rotation, at most one phase" in r["task"]][-1]["result"]

    def render(self, name):
        """The four files of cluster ``name``, rendered by bao agent from its manifest's templates with a token
        holding only its istiod policy."""
        doc = yaml.safe_load(open(self.hosts[name]["istio_vault_ca_manifest_path"]))
        annotations = doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]["podAnnotations"]
        token = self.bao.api("POST", "auth/token/create", {
            "policies": [self.hosts[name]["istio_vault_ca_policy_name"]],
            "ttl": "5m"})["auth"]["client_token"]
        self.renders += 1
        out = self.tmp_path / ("render-%s-%d" % (name, self.renders))
        token_file = self.tmp_path / ("token-%d" % self.renders)
        token_file.write_text(token)
        auth = {"method": "token_file", "token_file": str(token_file)}
        proc = agent.render(self.bao.url, annotations, str(out), auth)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return out

    def workload_cert(self, name):
        """A SPIFFE workload certificate signed with cluster ``name``'s current intermediate key, as istiod would
        sign it; returns (leaf path, cert-chain path) in a directory of their own."""
        host = self.hosts[name]
        key_pem = self.bao.api("GET", "secret/data/" + host["istio_vault_ca_kv_path"])["data"]["data"]["ca-key.pem"]
        chain = self.bao.api("GET", host["istio_vault_ca_intermediate_mount"] + "/cert/ca_chain")["data"]["certificate"]
        ca_cert = x509.load_pem_x509_certificate(chain.encode())
        ca_key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        leaf = (x509.CertificateBuilder()
                .subject_name(x509.Name([]))
                .issuer_name(ca_cert.subject)
                .public_key(leaf_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=1))
                .not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(
                    "spiffe://cluster.local/ns/default/sa/%s" % name)]), critical=True)
                .sign(ca_key, hashes.SHA256()))
        self.renders += 1
        out = self.tmp_path / ("workload-%s-%d" % (name, self.renders))
        out.mkdir()
        (out / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        (out / "chain.pem").write_text(chain)
        return out

    def verifies(self, workload, rendered):
        proc = subprocess.run(["openssl", "verify", "-CAfile", str(rendered / "root-cert.pem"), "-untrusted",
                               str(workload / "chain.pem"), str(workload / "leaf.pem")],
                              capture_output=True, text=True, check=False)
        return proc.returncode == 0


def sleep_until(stamp, slack=1):
    """Sleep until the ISO time ``stamp`` (a phase's earliest time) has passed."""
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    delay = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + slack
    if delay > 0:
        time.sleep(delay)


def roots_in(path):
    return [cert.serial_number for cert in x509.load_pem_x509_certificates((path / "root-cert.pem").read_bytes())]


def serial(pem):
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def issuer_serial(bao, mount, issuer_id):
    return serial(bao.api("GET", "%s/issuer/%s" % (mount, issuer_id))["data"]["certificate"])


def phase_result(run):
    found = [r for r in run.results if r["task"].split(" : ")[-1].startswith("Root rotation, at most one phase")]
    assert found, run
    return found[-1]["result"]


def assert_idle(mesh, label, phase):
    """A re-run inside a phase: changed=0 for every task, no write at all."""
    run, writes = mesh.rotate(label, *INSIDE_THE_PHASE)
    assert run.rc == 0, run
    assert writes == [], writes
    assert run.changed() == [], [r["task"] for r in run.changed()]
    result = phase_result(run)
    assert result["phase"] == phase and not result["advanced"] and result["waiting_for"], result
    return result


def test_three_clusters_rotate_the_root_without_downtime(mesh):
    bao = mesh.bao
    root_a = serial(bao.api("GET", mesh.root_mount + "/cert/ca")["data"]["certificate"])
    # The main playbook wrote the trust bundle (one root) and the templates read it.
    assert mesh.record().get("phase", "") == ""
    for name in CLUSTERS:
        assert roots_in(mesh.render(name)) == [root_a]
    workload_a = mesh.workload_cert("east")  # issued under A's intermediate, before the rotation

    # start -> trust: B is a second issuer of the root mount; every cluster renders A+B; signing still from A
    run, writes = mesh.rotate("start -> trust")
    assert run.rc == 0, run
    result = phase_result(run)
    assert result["phase"] == "trust" and result["advanced"], result
    assert writes == [("update", mesh.root_mount + "/root/rotate/internal"),
                      ("update", "secret/data/" + mesh.bundle_path)], writes
    record = mesh.record()
    root_b = issuer_serial(bao, mesh.root_mount, record["new_issuer_id"])
    assert record["phase"] == "trust" and record["old_issuer_id"] != record["new_issuer_id"]
    assert bao.api("GET", mesh.root_mount + "/config/issuers")["data"]["default"] == record["old_issuer_id"]
    assert [c["roots"] for c in result["clusters"]] == [result["clusters"][0]["roots"]] * 3
    for name in CLUSTERS:
        rendered = mesh.render(name)
        assert roots_in(rendered) == [root_a, root_b], name
        assert mesh.verifies(workload_a, rendered), name
    waiting = assert_idle(mesh, "trust, re-run", "trust")
    assert "margin" in " ".join(waiting["waiting_for"])

    # trust -> sign (after the margin): every intermediate re-issued from B, new key, old key kept in KV
    sleep_until(mesh.record()["next_phase_at"])
    old_versions = dict((name, bao.api("GET", "secret/metadata/" + mesh.hosts[name]["istio_vault_ca_kv_path"])
                         ["data"]["current_version"]) for name in CLUSTERS)
    run, writes = mesh.rotate("trust -> sign")
    assert run.rc == 0, run
    result = phase_result(run)
    assert result["phase"] == "sign" and result["advanced"], result
    assert writes[:2] == [("update", "secret/data/" + mesh.bundle_path),
                          ("update", mesh.root_mount + "/config/issuers")], writes  # record first, then the switch
    assert bao.api("GET", mesh.root_mount + "/config/issuers")["data"]["default"] == mesh.record()["new_issuer_id"]
    workload_b = mesh.workload_cert("west")  # issued under B's intermediate
    for name in CLUSTERS:
        path = mesh.hosts[name]["istio_vault_ca_kv_path"]
        assert bao.api("GET", "secret/metadata/" + path)["data"]["current_version"] == old_versions[name] + 1
        rendered = mesh.render(name)
        assert roots_in(rendered) == [root_a, root_b], name
        chain = x509.load_pem_x509_certificates((rendered / "cert-chain.pem").read_bytes())
        assert chain[-1].serial_number == root_b, name  # the intermediate chains to B now
        assert mesh.verifies(workload_a, rendered) and mesh.verifies(workload_b, rendered), name
    waiting = assert_idle(mesh, "sign, re-run", "sign")
    assert waiting["next_phase_at"] and "workload certificates" in " ".join(waiting["waiting_for"])

    # sign -> retire (after workload_cert_ttl + margin since the last intermediate was issued): B only
    sleep_until(mesh.record()["next_phase_at"], slack=60)
    run, writes = mesh.rotate("sign -> retire")
    assert run.rc == 0, run
    assert phase_result(run)["phase"] == "retire" and writes == [("update", "secret/data/" + mesh.bundle_path)]
    for name in CLUSTERS:
        rendered = mesh.render(name)
        assert roots_in(rendered) == [root_b], name
        assert mesh.verifies(workload_b, rendered) and not mesh.verifies(workload_a, rendered), name
    assert_idle(mesh, "retire, re-run", "retire")
    # A stays in the mount, not trusted, not used
    issuers = bao.api("LIST", mesh.root_mount + "/issuers")["data"]["keys"]
    assert mesh.record()["old_issuer_id"] in issuers

    # the main playbook agrees with the rotated root: nothing to change
    mark = bao.audit.mark()
    again = mesh.runner.run_file(MAIN, inventory=mesh.inventory)
    assert again.rc == 0 and again.changed() == [], [r["task"] for r in again.changed()]
    assert bao.audit.writes(since=mark) == []
    for label, seconds, count in STATS:
        print("rotation run %-18s %6.1f s  %d write(s)" % (label, seconds, count))


def test_a_lagging_cluster_blocks_the_advance_and_nothing_is_written(mesh):
    manifest = mesh.hosts["central"]["istio_vault_ca_manifest_path"]
    good = open(manifest).read()
    with open(manifest, "w") as f:
        f.write("spec: [unclosed\n")  # central cannot be verified
    run, writes = mesh.rotate("lagging cluster")
    assert run.rc != 0
    assert writes == []
    result = phase_result(run)
    assert result["phase"] == "none" and not result["advanced"]
    assert any("cluster central" in reason for reason in result["waiting_for"]), result
    assert [r["host"] for r in run.failed()] == ["central"]
    with open(manifest, "w") as f:
        f.write(good)
    run, writes = mesh.rotate("start after the lag")
    assert run.rc == 0 and phase_result(run)["phase"] == "trust", run


def _module(mesh, token, rotation="advance"):
    clusters = [{"name": name, "intermediate_mount": host["istio_vault_ca_intermediate_mount"], "verified": True}
                for name, host in mesh.hosts.items()]
    return module_play("vault_pki_root_rotation", {
        "url": mesh.bao.url, "token": token, "root_mount": mesh.root_mount, "trust_bundle_path": mesh.bundle_path,
        "rotation": rotation, "clusters": clusters, "workload_cert_ttl": "%ds" % TTL, "margin": "%ds" % MARGIN},
        name="rotation")


def _token_without(bao, path):
    """A token that may do everything but write ``path`` (read stays allowed): a run stops right before it."""
    name = "no-" + uuid.uuid4().hex[:6]
    bao.api("PUT", "sys/policies/acl/" + name, {"policy": 'path "*" { capabilities = ["create", "read", "update", '
                                                          '"delete", "list", "sudo"] }\npath "%s" { capabilities = '
                                                          '["read", "list"] }\n' % path})
    return bao.api("POST", "auth/token/create", {"policies": [name], "ttl": "10m"})["auth"]["client_token"]


def test_a_run_stopped_between_two_writes_is_completed_by_the_next(mesh):
    bao = mesh.bao
    # start: B is generated, the record write is refused -> the next run adopts B (no second root)
    run = mesh.runner.run(_module(mesh, _token_without(bao, "secret/data/" + mesh.bundle_path)))
    assert run.rc != 0
    named = [i for i, info in bao.api("LIST", mesh.root_mount + "/issuers")["data"]["key_info"].items()
             if (info.get("issuer_name") or "").startswith("rotation-")]
    assert len(named) == 1 and mesh.record().get("phase", "") == ""
    mark = bao.audit.mark()
    run = mesh.runner.run(_module(mesh, bao.token))
    assert run.rc == 0, run
    assert run.task("rotation")["result"]["phase"] == "trust"
    assert bao.audit.writes(since=mark) == [("update", "secret/data/" + mesh.bundle_path)]  # no second root
    assert mesh.record()["new_issuer_id"] == named[0]

    # trust -> sign: the record is written, the default issuer switch is refused -> the next run (hold) completes
    sleep_until(mesh.record()["next_phase_at"])
    run = mesh.runner.run(_module(mesh, _token_without(bao, mesh.root_mount + "/config/issuers")))
    assert run.rc != 0
    assert mesh.record()["phase"] == "sign"
    assert bao.api("GET", mesh.root_mount + "/config/issuers")["data"]["default"] != named[0]
    mark = bao.audit.mark()
    run = mesh.runner.run(_module(mesh, bao.token, rotation="hold"))
    assert run.rc == 0, run
    assert bao.audit.writes(since=mark) == [("update", mesh.root_mount + "/config/issuers")]
    assert bao.api("GET", mesh.root_mount + "/config/issuers")["data"]["default"] == named[0]
    mark = bao.audit.mark()
    run = mesh.runner.run(_module(mesh, bao.token, rotation="hold"))
    assert run.rc == 0 and run.task("rotation")["status"] == "ok" and bao.audit.writes(since=mark) == []


def test_abort_goes_back_to_the_old_root(mesh):
    bao = mesh.bao
    root_a = serial(bao.api("GET", mesh.root_mount + "/cert/ca")["data"]["certificate"])
    run, _writes = mesh.rotate("start")
    assert run.rc == 0 and phase_result(run)["phase"] == "trust"
    sleep_until(mesh.record()["next_phase_at"])
    run, _writes = mesh.rotate("sign")
    assert run.rc == 0 and phase_result(run)["phase"] == "sign"
    workload_b = mesh.workload_cert("east")

    run, writes = mesh.rotate("abort from sign", "-e", "istio_vault_ca_root_rotation=abort")
    assert run.rc == 0, run
    result = phase_result(run)
    assert result["phase"] == "aborted", result
    record = mesh.record()
    assert bao.api("GET", mesh.root_mount + "/config/issuers")["data"]["default"] == record["old_issuer_id"]
    workload_a = mesh.workload_cert("east")  # the intermediates are A's again
    for name in CLUSTERS:
        rendered = mesh.render(name)
        chain = x509.load_pem_x509_certificates((rendered / "cert-chain.pem").read_bytes())
        assert chain[-1].serial_number == root_a, name
        # B stays trusted until the certificates it signed have expired
        assert mesh.verifies(workload_a, rendered) and mesh.verifies(workload_b, rendered), name
    assert_idle(mesh, "aborted, re-run", "aborted")
    sleep_until(mesh.record()["next_phase_at"], slack=60)
    run, writes = mesh.rotate("abort: drop B", "-e", "istio_vault_ca_root_rotation=abort")
    assert run.rc == 0 and writes == [("update", "secret/data/" + mesh.bundle_path)], writes
    for name in CLUSTERS:
        rendered = mesh.render(name)
        assert roots_in(rendered) == [root_a], name
        assert mesh.verifies(workload_a, rendered) and not mesh.verifies(workload_b, rendered), name
    run, writes = mesh.rotate("after abort, advance")
    assert run.rc == 0 and writes == [] and "rotation=start" in " ".join(phase_result(run)["waiting_for"])


def test_abort_in_trust_drops_the_new_root_at_once(mesh):
    bao = mesh.bao
    root_a = serial(bao.api("GET", mesh.root_mount + "/cert/ca")["data"]["certificate"])
    run, _writes = mesh.rotate("start")
    assert run.rc == 0 and phase_result(run)["phase"] == "trust"
    run, writes = mesh.rotate("abort from trust", "-e", "istio_vault_ca_root_rotation=abort")
    assert run.rc == 0 and writes == [("update", "secret/data/" + mesh.bundle_path)], writes
    assert phase_result(run)["phase"] == "aborted"
    for name in CLUSTERS:
        assert roots_in(mesh.render(name)) == [root_a], name
    assert_idle(mesh, "aborted in trust, re-run", "aborted")
