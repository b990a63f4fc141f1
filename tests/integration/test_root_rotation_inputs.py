"""Root rotation (issue 18) with the roots operators actually have: an imported root A, and a new root B whose subject
and key come from role variables (an algorithm change, RSA -> EC). The real playbooks against a real OpenBao (audit
log), one cluster in file mode.

What must hold: a rotation never creates B inside Vault for an operator who imported A unless asked (it stops before
any write and names the fix: istio_vault_ca_root_rotation_pem_bundle); the main playbook, re-run at every phase with
the variables that still describe A, changes nothing and writes nothing - no refusal, no re-import of A, no undoing
of the rotation; after retire the variables can be set to B. The new root's variables are checked before any request.

The clock: workload_cert_ttl and margin are seconds here; the tests sleep past them (no timing assertions)."""

import datetime
import os
import sys
import time
import uuid

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec

from harness.certs import make_ca
from harness.fake_k8s import FakeKubeApi
from harness.playbook import REPO, Playbooks

sys.path.insert(0, os.path.join(REPO, "tools"))
import embedded  # noqa: E402

TTL, MARGIN = 3, 3
MAIN = os.path.join(REPO, "playbooks", "istio_vault_ca.yml")
ROTATE = os.path.join(REPO, "playbooks", "rotate_root.yml")
PHASE_TASK = "Root rotation, at most one phase"


class Mesh(object):
    """One cluster (inventory host east) set up by the main playbook, with its own mounts and names."""

    def __init__(self, bao, tmp_path, **inventory_vars):
        self.bao, self.tmp_path = bao, tmp_path
        self.api = FakeKubeApi().start()
        kubeconfig = self.api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        embedded.seed_controlplane(kubeconfig)
        suffix = uuid.uuid4().hex[:6]
        manifest = tmp_path / "east.yaml"
        manifest.write_text(yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE))
        self.root_mount = "pki-" + suffix
        self.bundle_path = "roots/" + self.root_mount
        group_vars = {
            "ansible_connection": "local",
            "istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
            "istio_vault_ca_root_mount": self.root_mount,
            "istio_vault_ca_trust_bundle_path": self.bundle_path,
            "istio_vault_ca_multiroot": True,
            "istio_vault_ca_kubeconfig": kubeconfig,
            "istio_vault_ca_root_rotation_workload_cert_ttl": "%ds" % TTL,
            "istio_vault_ca_root_rotation_margin": "%ds" % MARGIN,
        }
        group_vars.update(inventory_vars)
        host = {
            "istio_vault_ca_intermediate_mount": "istioca-east-" + suffix,
            "istio_vault_ca_kv_path": "istioca/east-" + suffix,
            "istio_vault_ca_k8s_auth_mount": "kubernetes-east-" + suffix,
            "istio_vault_ca_policy_name": "istioca-east-" + suffix,
            "istio_vault_ca_manifest_path": str(manifest),
            "istio_vault_ca_k8s_token_reviewer": {"create": True, "service_account": "reviewer-" + suffix},
        }
        self.inventory = str(tmp_path / "inventory.yml")
        with open(self.inventory, "w") as f:
            yaml.safe_dump({"istio_clusters": {"vars": group_vars, "hosts": {"east": host}}}, f)
        self.runner = Playbooks(tmp_path / "runs")
        first = self.runner.run_file(MAIN, inventory=self.inventory)
        assert first.rc == 0, first

    def stop(self):
        self.api.stop()

    def vars_file(self, name, values):
        """An extra-vars file (-e @file): PEM text and several variables at once."""
        path = self.tmp_path / name
        path.write_text(yaml.safe_dump(values))
        return ["-e", "@" + str(path)]

    def run(self, path, *extra):
        mark = self.bao.audit.mark()
        run = self.runner.run_file(path, inventory=self.inventory, extra_args=list(extra))
        return run, self.bao.audit.writes(since=mark)

    def rotate(self, *extra):
        run, writes = self.run(ROTATE, *extra)
        assert run.rc == 0, run
        found = [r for r in run.results if r["task"].split(" : ")[-1].startswith(PHASE_TASK)]
        assert found, run
        return found[-1]["result"], writes

    def assert_main_keeps_everything(self, when, *extra):
        """The main playbook, variables unchanged (still describing A): ok, changed=0, not a single write."""
        run, writes = self.run(MAIN, *extra)
        assert run.rc == 0, (when, run.failed_msgs(), run)
        assert run.changed() == [], (when, [r["task"] for r in run.changed()])
        assert writes == [], (when, writes)
        return run

    def record(self):
        return self.bao.api("GET", "secret/data/" + self.bundle_path)["data"]["data"]

    def default_issuer(self):
        return self.bao.api("GET", self.root_mount + "/config/issuers")["data"]["default"]

    def issuer_cert(self, issuer_id):
        pem = self.bao.api("GET", "%s/issuer/%s" % (self.root_mount, issuer_id))["data"]["certificate"]
        return x509.load_pem_x509_certificate(pem.encode())

    def trusted_serials(self):
        return [c.serial_number for c in x509.load_pem_x509_certificates(self.record()["root-cert.pem"].encode())]

    def intermediate_signed_by(self, root):
        mount = yaml.safe_load(open(self.inventory))["istio_clusters"]["hosts"]["east"][
            "istio_vault_ca_intermediate_mount"]
        pem = self.bao.api("GET", mount + "/cert/ca")["data"]["certificate"]
        cert = x509.load_pem_x509_certificate(pem.encode())
        try:
            cert.verify_directly_issued_by(root)
            return True
        except (ValueError, TypeError, InvalidSignature):
            return False


def sleep_until(stamp, slack=1):
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    delay = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds() + slack
    if delay > 0:
        time.sleep(delay)


@pytest.fixture(scope="module")
def rbao(tmp_path_factory):
    from harness.openbao import OpenBaoServer
    with OpenBaoServer(tmp_path_factory.mktemp("bao-rotation-inputs"), audit=True) as server:
        yield server


@pytest.fixture
def imported(rbao, tmp_path):
    """A mesh whose root A was imported (istio_vault_ca_root_pem_bundle)."""
    root_a = make_ca("corporate mesh root A", days=365)
    mesh = Mesh(rbao, tmp_path, istio_vault_ca_root_pem_bundle=root_a.cert_pem + root_a.key_pem)
    mesh.root_a = root_a
    yield mesh
    mesh.stop()


def test_an_imported_root_gets_no_successor_generated_in_vault_unasked(imported):
    """Today the rotation generates B inside Vault (root/rotate/internal) for an operator who keeps his roots
    outside it. It must stop before any write and say how to bring B."""
    run, writes = imported.run(ROTATE)
    assert run.rc != 0, run
    assert writes == [], writes
    msg = " ".join(run.failed_msgs())
    assert "istio_vault_ca_root_rotation_pem_bundle" in msg and "was imported" in msg, msg
    assert imported.record().get("phase", "") == ""
    assert len(imported.bao.api("LIST", imported.root_mount + "/issuers")["data"]["keys"]) == 1


def test_an_imported_root_rotates_to_an_imported_root_and_the_main_playbook_keeps_it(imported):
    mesh = imported
    root_a, root_b = mesh.root_a, make_ca("corporate mesh root B", days=730)
    new_root = mesh.vars_file("root-b.yml", {"istio_vault_ca_root_rotation_pem_bundle":
                                             root_b.cert_pem + root_b.key_pem})
    id_a = mesh.default_issuer()

    # start -> trust: B imported as the second issuer of the root mount (named, so a killed run finds it)
    result, writes = mesh.rotate(*new_root)
    assert result["phase"] == "trust" and result["advanced"], result
    assert ("update", mesh.root_mount + "/issuers/import/bundle") in writes, writes
    assert ("update", mesh.root_mount + "/root/rotate/internal") not in writes, writes
    record = mesh.record()
    id_b = record["new_issuer_id"]
    assert mesh.issuer_cert(id_b) == root_b.cert and record["old_issuer_id"] == id_a
    assert mesh.trusted_serials() == [root_a.cert.serial_number, root_b.cert.serial_number]
    mesh.assert_main_keeps_everything("trust")

    # trust -> sign: B is the default issuer; the main playbook, whose pem_bundle is still A, keeps B
    sleep_until(record["next_phase_at"])
    result, _writes = mesh.rotate()
    assert result["phase"] == "sign", result
    assert mesh.default_issuer() == id_b and mesh.intermediate_signed_by(root_b.cert)
    run = mesh.assert_main_keeps_everything("sign")
    root_task = [r for r in run.results if r["task"].endswith("Ensure the root CA in " + mesh.root_mount)][-1]
    assert root_task["result"]["issuer_id"] == id_b and root_task["status"] == "ok", root_task
    assert any("root rotation recorded" in note for note in root_task["result"]["pending_changes"]), root_task
    assert mesh.default_issuer() == id_b and mesh.intermediate_signed_by(root_b.cert)

    # sign -> retire: B only; the main playbook still keeps B, A stays in the mount (not re-imported as default)
    sleep_until(mesh.record()["next_phase_at"], slack=5)
    result, _writes = mesh.rotate()
    assert result["phase"] == "retire", result
    mesh.assert_main_keeps_everything("retire")
    assert mesh.default_issuer() == id_b and mesh.trusted_serials() == [root_b.cert.serial_number]

    # after retire the operator sets the variables to B: nothing to change either
    mesh.assert_main_keeps_everything("variables set to B", *mesh.vars_file("root-vars-b.yml", {
        "istio_vault_ca_root_pem_bundle": root_b.cert_pem + root_b.key_pem}))


def test_a_generated_root_rotates_to_an_ec_root_from_role_variables(rbao, tmp_path):
    """RSA root A (istio_vault_ca_root_common_name, istio_vault_ca_key_type rsa) -> EC P-384 root B with another
    common name (istio_vault_ca_root_rotation_*); the main playbook, variables describing A, is changed=0 at every
    phase."""
    mesh = Mesh(rbao, tmp_path)
    try:
        # JSON: a key=value extra var ends at the first space
        new_root = ("-e", '{"istio_vault_ca_root_rotation_common_name": "mesh root 2027"}',
                    "-e", "istio_vault_ca_root_rotation_key_type=ec", "-e", "istio_vault_ca_root_rotation_key_bits=384")
        result, writes = mesh.rotate(*new_root)
        assert result["phase"] == "trust", result
        assert ("update", mesh.root_mount + "/root/rotate/internal") in writes, writes
        root_b = mesh.issuer_cert(mesh.record()["new_issuer_id"])
        assert isinstance(root_b.public_key(), ec.EllipticCurvePublicKey) and root_b.public_key().key_size == 384
        assert root_b.subject.rfc4514_string() == "CN=mesh root 2027"
        mesh.assert_main_keeps_everything("trust")

        sleep_until(mesh.record()["next_phase_at"])
        result, _writes = mesh.rotate()
        assert result["phase"] == "sign" and mesh.intermediate_signed_by(root_b), result
        mesh.assert_main_keeps_everything("sign")

        sleep_until(mesh.record()["next_phase_at"], slack=5)
        result, _writes = mesh.rotate()
        assert result["phase"] == "retire", result
        mesh.assert_main_keeps_everything("retire")
        assert mesh.intermediate_signed_by(root_b)

        # the variables set to B (its common name and key; the key type also shapes the intermediates: one run with
        # istio_vault_ca_rotate=true re-keys them under the same root B), then nothing to change
        to_b = mesh.vars_file("root-vars-b.yml", {"istio_vault_ca_root_common_name": "mesh root 2027",
                                                  "istio_vault_ca_key_type": "ec", "istio_vault_ca_key_bits": 384})
        run, _writes = mesh.run(MAIN, *(to_b + ["-e", "istio_vault_ca_rotate=true"]))
        assert run.rc == 0, run
        assert mesh.intermediate_signed_by(root_b)
        mesh.assert_main_keeps_everything("variables set to B", *to_b)
    finally:
        mesh.stop()


# -- the new root's variables, checked before the first request ---------------------------------------------------

def _refused(bao, tmp_path, values):
    from test_role_inputs import role_play  # the same role play as the other input checks
    api = FakeKubeApi().start()
    try:
        kubeconfig = api.write_kubeconfig(str(tmp_path / "kubeconfig"))
        embedded.seed_controlplane(kubeconfig)
        api.clear_requests()
        manifest = tmp_path / "manifest.yaml"
        manifest.write_text(yaml.safe_dump(embedded.SAMPLE_CONTROLPLANE))
        play_vars = {"istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
                     "istio_vault_ca_manifest_path": str(manifest), "istio_vault_ca_kubeconfig": kubeconfig}
        play_vars.update(values)
        mark = bao.audit.mark()
        run = Playbooks(tmp_path / "runs").run([role_play(play_vars, "rotate_root")])
        assert run.rc != 0, run
        failed = [r for r in run.results if r["status"] == "failed"]
        assert len(failed) == 1 and "Check the" in failed[0]["task"], run
        assert bao.audit.requests(mark) == [] and api.requests == []
        return failed[0]["result"]["msg"]
    finally:
        api.stop()


B_ROOT = make_ca("root B", days=365)
BAD = [
    ("bits-without-type", {"istio_vault_ca_root_rotation_key_bits": 384},
     "istio_vault_ca_root_rotation_key_bits 384 needs istio_vault_ca_root_rotation_key_type"),
    ("ec-with-rsa-bits", {"istio_vault_ca_root_rotation_key_type": "ec", "istio_vault_ca_root_rotation_key_bits": 2048},
     "istio_vault_ca_root_rotation_key_bits 2048 does not fit istio_vault_ca_root_rotation_key_type ec"),
    ("rsa-with-ec-bits", {"istio_vault_ca_root_rotation_key_type": "rsa", "istio_vault_ca_root_rotation_key_bits": 256},
     "istio_vault_ca_root_rotation_key_bits 256 does not fit istio_vault_ca_root_rotation_key_type rsa"),
    ("unknown-type", {"istio_vault_ca_root_rotation_key_type": "ed25519"},
     "istio_vault_ca_root_rotation_key_type must be rsa or ec"),
    ("bundle-and-subject", {"istio_vault_ca_root_rotation_pem_bundle": B_ROOT.cert_pem + B_ROOT.key_pem,
                            "istio_vault_ca_root_rotation_common_name": "x"},
     "istio_vault_ca_root_rotation_pem_bundle and istio_vault_ca_root_rotation_common_name are two ways"),
    ("bundle-without-key", {"istio_vault_ca_root_rotation_pem_bundle": B_ROOT.cert_pem},
     "istio_vault_ca_root_rotation_pem_bundle must hold the new root's PEM certificate and its unencrypted"),
    ("bidi-common-name", {"istio_vault_ca_root_rotation_common_name": "mesh root \u202e7202"},
     "holds the invisible or format character U+202E"),
]


@pytest.mark.parametrize("cid,values,expected", BAD, ids=[c[0] for c in BAD])
def test_the_new_roots_variables_are_refused_before_any_request(rbao, tmp_path, cid, values, expected):
    msg = _refused(rbao, tmp_path, values)
    assert expected in msg and sorted(values)[0] in msg, msg
    assert "PRIVATE KEY" not in msg
