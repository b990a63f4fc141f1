"""tsb_controlplane_annotations through real ansible-playbook runs: live mode against the stateful fake Kubernetes
API (TLS, kubeconfig, the official client) and file mode on multi-document manifests."""

import copy
import glob
import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import assert_four_step
from kubernetes import client, config

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.controlplane import (
    TARGETS,
    apply_present,
    custom_objects_api,
    desired_state,
    reconcile_live,
)
from harness.fake_k8s import FakeKubeApi
from harness.fixtures import controlplane_text
from harness.playbook import REPO

CP = ("install.tetrate.io", "v1alpha1", "controlplanes")
IOP = ("install.istio.io", "v1alpha1", "istiooperators")
VAULT = "vault.hashicorp.com"
OPENBAO = "openbao.openbao.org"
GOLDEN = os.path.join(REPO, "tests", "unit", "plugins", "module_utils", "istio", "golden", "controlplane_guide.yaml")
with open(GOLDEN) as _f:
    GUIDE = yaml.safe_load(_f)
ADMIN = "kubernetes-admin"


@pytest.fixture
def fake(tmp_path):
    with FakeKubeApi() as api:
        api.add_context("alt")
        api.kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        api.custom = client.CustomObjectsApi(config.new_client_from_config(config_file=api.kubeconfig))
        core = client.CoreV1Api(config.new_client_from_config(config_file=api.kubeconfig))
        for namespace in ("tsb", "istio-system"):
            core.create_namespace({"metadata": {"name": namespace}})
        yield api


def create(fake, kind, namespace, name, spec):
    group, version, plural = kind
    body = {"apiVersion": "%s/%s" % (group, version), "kind": "ControlPlane" if kind == CP else "IstioOperator",
            "metadata": {"name": name, "namespace": namespace, "labels": {"team": "mesh"}}, "spec": spec}
    return fake.custom.create_namespaced_custom_object(group, version, namespace, plural, body)


def stored(fake, kind, namespace, name):
    return fake.get_object("%s/%s" % kind[:2], kind[2], name, namespace)


def user_spec():
    """A ControlPlane spec with the user's own env, annotations and fields."""
    return {"hub": "docker.io/tetrate", "telemetryStore": {"elastic": {"host": "es", "port": 443}},
            "components": {"istio": {"traceSamplingRate": 100, "kubeSpec": {"deployment": {
                "replicaCount": 2,
                "env": [{"name": "PILOT_TRACE_SAMPLING", "value": "1"},
                        {"name": "ROOT_CA_DIR", "value": "/somewhere/else"},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                "podAnnotations": {"prometheus.io/scrape": "true", "sidecar.istio.io/inject": "false"}}}}}}


def guide_params(**overrides):
    return dict(dict(state="present", intermediate_mount="istioca", root_mount="pki", kv_mount="secret",
                     kv_path="istioca", kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
                     annotation_prefix=VAULT), **overrides)


def play(tasks, **kwargs):
    return [dict({"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks}, **kwargs)]


def task(name, args, **kwargs):
    return dict({"name": name, "meshpki.vault_ca.tsb_controlplane_annotations": args}, **kwargs)


def calls(fake):
    """(method, dryRun?, status) of the requests to ControlPlanes/IstioOperators."""
    return [(r["method"], "dryRun=All" in (r["query"] or ""), r["status"]) for r in fake.requests
            if "/controlplanes/" in r["path"] or "/istiooperators/" in r["path"]]


def warnings_of(run, name):
    result = run.task(name)["result"]
    return result.get("warnings") or []


# ---------------------------------------------------------------------------------------------------------
# live mode
# ---------------------------------------------------------------------------------------------------------

def test_live_four_steps_keep_everything_the_user_has(fake, playbook):
    created = create(fake, CP, "tsb", "controlplane", user_spec())
    args = {"kubeconfig": fake.kubeconfig, "name": "controlplane", "namespace": "tsb",
            "extra_env": [{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": True}]}
    fake.clear_requests()
    runs = assert_four_step(playbook, play([task("annotate", args)]))
    # check: GET + PATCH dryRun=All; apply: GET + PATCH; then a single GET each, nothing else sent
    assert calls(fake) == [("GET", False, 200), ("PATCH", True, 200), ("GET", False, 200), ("PATCH", False, 200),
                           ("GET", False, 200), ("GET", False, 200)]
    patches = [r for r in fake.requests if r["method"] == "PATCH"]
    assert {r["content_type"] for r in patches} == {"application/merge-patch+json"}
    assert all("fieldManager=meshpki.vault_ca" in r["query"] for r in patches)

    check = runs[0].task("annotate")["result"]
    assert check["resource_version"] == created["metadata"]["resourceVersion"]  # the dry run stored nothing
    assert "vault.hashicorp.com/role: istiod" in check["diff"]["after"] and "role" not in check["diff"]["before"]
    assert check["diff"]["before_header"] == "ControlPlane tsb/controlplane"

    obj = stored(fake, CP, "tsb", "controlplane")
    deployment = obj["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    assert deployment["env"] == [
        {"name": "PILOT_TRACE_SAMPLING", "value": "1"},
        {"name": "ROOT_CA_DIR", "value": "/etc/cacerts-vault"},  # replaced in place
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"},
    ]
    assert deployment["podAnnotations"] == dict(GUIDE["podAnnotations"], **{
        "prometheus.io/scrape": "true", "sidecar.istio.io/inject": "false"})
    assert deployment["replicaCount"] == 2
    expected = user_spec()
    expected_deployment = expected["components"]["istio"]["kubeSpec"]["deployment"]
    expected_deployment.update(env=deployment["env"], podAnnotations=deployment["podAnnotations"])
    assert obj["spec"] == expected and obj["metadata"]["labels"] == {"team": "mesh"}
    assert obj["metadata"]["generation"] == 2  # one real write
    applied = runs[1].task("annotate")["result"]
    assert applied["resource_version"] == obj["metadata"]["resourceVersion"] and applied["attempts"] == 1
    assert applied["object"]["spec"] == obj["spec"] and applied["env"][0] == GUIDE["env"][0]
    assert runs[3].task("annotate")["result"]["resource_version"] == obj["metadata"]["resourceVersion"]


def test_live_absent_removes_exactly_ours(fake, playbook):
    # what state=present (agent_init_first, an extra annotation) wrote earlier, next to the user's own settings
    desired = desired_state(guide_params(agent_init_first=True, extra_annotations={"example.com/owner": "mesh"}))
    create(fake, CP, "tsb", "controlplane", apply_present({"spec": user_spec()}, TARGETS["tsb_controlplane"],
                                                          desired)[0]["spec"])
    elsewhere = user_spec()  # ROOT_CA_DIR=/somewhere/else: not ours
    create(fake, CP, "tsb", "other", elsewhere)
    kubeconfig = {"kubeconfig": fake.kubeconfig, "namespace": "tsb"}
    absent = play([
        task("absent", dict(kubeconfig, name="controlplane", state="absent",
                            extra_annotations={"example.com/owner": "mesh"})),
        task("not ours", dict(kubeconfig, name="other", state="absent")),
    ])
    runs = assert_four_step(playbook, absent)
    obj = stored(fake, CP, "tsb", "controlplane")
    expected = user_spec()
    expected["components"]["istio"]["kubeSpec"]["deployment"]["env"].pop(1)  # our ROOT_CA_DIR went, nothing else
    assert obj["spec"] == expected
    removed = runs[1].task("absent")["result"]["removed"]
    assert removed["env"] == ["ROOT_CA_DIR"] and len(removed["annotations"]) == 13  # 11 + init-first + extra
    assert VAULT + "/agent-init-first" in removed["annotations"] and "example.com/owner" in removed["annotations"]
    assert runs[0].task("absent")["result"]["removed"] == removed  # check mode reports the same

    other = runs[1].task("not ours")
    assert other["status"] == "ok" and other["result"]["kept_env"] == ["ROOT_CA_DIR"]
    assert stored(fake, CP, "tsb", "other")["spec"] == elsewhere
    assert [w for w in warnings_of(runs[1], "not ours") if "sets ROOT_CA_DIR to a value this collection did not "
            "set (ours: /etc/cacerts-vault); it was kept" in w]


def test_live_errors_name_the_object_and_the_fix(fake, playbook, tmp_path):
    create(fake, CP, "tsb", "forbidden", {"components": {}})
    fake.uninstall_crd("install.istio.io", "istiooperators")
    fake.deny(ADMIN, "patch", "install.tetrate.io", "controlplanes")
    manifest = tmp_path / "ns.yaml"
    manifest.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tsb\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("spec:\n  components: [1, 2\n")
    base = {"kubeconfig": fake.kubeconfig, "namespace": "tsb"}
    tasks = [
        task("object not found", dict(base, name="missing")),
        task("crd not installed", dict(base, name="x", target="istio_operator")),
        task("forbidden", dict(base, name="forbidden")),
        task("forbidden in check mode", dict(base, name="forbidden"), check_mode=True),
        task("unknown context", dict(base, name="x", context="nope")),
        task("no namespace", {"kubeconfig": fake.kubeconfig, "name": "x"}),
        task("no matching document", {"path": str(manifest)}),
        task("invalid yaml", {"path": str(broken)}),
        task("helm without path", {"target": "helm_values"}),
        task("root ca dir in extra env", dict(base, name="forbidden",
                                              extra_env=[{"name": "ROOT_CA_DIR", "value": "/x"}])),
    ]
    fake.clear_requests()
    run = playbook(play([dict(t, ignore_errors=True) for t in tasks]))
    assert run.rc == 0, run
    msg = dict((t["name"], run.task(t["name"])["result"]["msg"]) for t in tasks)
    assert all(run.task(t["name"])["status"] == "failed" for t in tasks)
    assert msg["object not found"].startswith(
        "Failed to read ControlPlane 'tsb/missing' (install.tetrate.io/v1alpha1, resource "
        "controlplanes.install.tetrate.io): not found")
    assert "is its CRD installed?" in msg["crd not installed"] and "IstioOperator 'tsb/x'" in msg["crd not installed"]
    for name in ("forbidden", "forbidden in check mode"):
        assert 'User "kubernetes-admin" cannot patch resource "controlplanes" in API group "install.tetrate.io"' \
            in msg[name]
        assert "Grant that verb on that resource" in msg[name]
    assert msg["forbidden in check mode"].startswith("Failed to patch (dry run) ControlPlane 'tsb/forbidden'")
    assert "Unknown context 'nope'" in msg["unknown context"] and "alt, fake" in msg["unknown context"]
    assert msg["no namespace"].startswith("Live mode needs namespace")
    assert msg["no matching document"].startswith(
        "No document in '%s' is a ControlPlane (install.tetrate.io/v1alpha1). Documents found: #1: Namespace v1 tsb"
        % manifest)
    assert msg["invalid yaml"].startswith("The file '%s' is not valid YAML" % broken)
    assert "line 2" in msg["invalid yaml"]
    assert "target is helm_values but all of the following are missing: path" in msg["helm without path"]
    assert "must not set ROOT_CA_DIR" in msg["root ca dir in extra env"]
    assert stored(fake, CP, "tsb", "forbidden")["spec"] == {"components": {}}
    assert [r for r in fake.requests if r["method"] == "PATCH" and r["status"] < 400] == []
    # the bad input was refused before anything was sent
    assert len([r for r in fake.requests if r["path"].endswith("/forbidden")]) == 4  # 2 GET + 2 refused PATCH


def test_live_conflicts_are_retried_then_given_up(fake, playbook):
    create(fake, CP, "tsb", "busy", {"components": {}})
    create(fake, CP, "tsb", "hot", {"components": {}})
    fake.inject("PATCH", r"/controlplanes/busy$", 409, count=2, reason="Conflict")
    fake.inject("PATCH", r"/controlplanes/hot$", 409, count=50, reason="Conflict")
    base = {"kubeconfig": fake.kubeconfig, "namespace": "tsb"}
    fake.clear_requests()
    run = playbook(play([task("busy", dict(base, name="busy")),
                         task("hot", dict(base, name="hot"), ignore_errors=True)]))
    assert run.rc == 0, run
    busy = run.task("busy")
    assert busy["status"] == "changed" and busy["result"]["attempts"] == 3
    assert [c for c in calls(fake) if c[0] in ("GET", "PATCH")][:6] == [
        ("GET", False, 200), ("PATCH", False, 409), ("GET", False, 200), ("PATCH", False, 409),
        ("GET", False, 200), ("PATCH", False, 200)]
    assert stored(fake, CP, "tsb", "busy")["spec"]["components"]["istio"]["kubeSpec"]["deployment"][
        "podAnnotations"] == GUIDE["podAnnotations"]
    hot = run.task("hot")
    assert hot["status"] == "failed" and hot["result"]["status"] == 409 and hot["result"]["attempts"] == 6
    assert "6 conflicting updates (409) in a row" in hot["result"]["msg"]
    assert stored(fake, CP, "tsb", "hot")["spec"] == {"components": {}}


def test_a_real_concurrent_edit_is_not_overwritten(fake):
    """Not an injected 409: another writer adds an env entry between our read and our patch. A merge patch replaces
    the whole env list, so without the resourceVersion guard their entry would be lost; with it the fake refuses the
    stale patch, we read again and keep both."""
    create(fake, CP, "tsb", "controlplane", user_spec())
    target = TARGETS["tsb_controlplane"]
    desired = desired_state(guide_params())
    seen = []

    def transform(doc):
        seen.append(doc["metadata"]["resourceVersion"])
        if len(seen) == 1:  # someone else edits right after our read
            env = copy.deepcopy(doc["spec"]["components"]["istio"]["kubeSpec"]["deployment"]["env"])
            env.append({"name": "THEIRS", "value": "1"})
            fake.custom.patch_namespaced_custom_object(*CP[:2], "tsb", CP[2], "controlplane", {
                "spec": {"hub": "mirror.example.com", "components": {"istio": {"kubeSpec": {"deployment": {
                    "env": env}}}}}})
        return apply_present(doc, target, desired)

    api = custom_objects_api({"kubeconfig": fake.kubeconfig, "context": None}, warn=pytest.fail)
    outcome = reconcile_live(api, target, "tsb", "controlplane", transform, check_mode=False)
    assert outcome["attempts"] == 2 and seen[0] != seen[1]
    obj = stored(fake, CP, "tsb", "controlplane")
    deployment = obj["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    assert obj["spec"]["hub"] == "mirror.example.com"  # their changes survived
    assert [entry["name"] for entry in deployment["env"]] == ["PILOT_TRACE_SAMPLING", "ROOT_CA_DIR", "POD_IP",
                                                              "THEIRS"]
    assert deployment["env"][1]["value"] == "/etc/cacerts-vault" and deployment["podAnnotations"][
        VAULT + "/role"] == "istiod"
    assert [r["status"] for r in fake.requests if r["method"] == "PATCH"][-3:] == [200, 409, 200]


def test_istio_operator_with_group_defaults_and_environment(fake, playbook):
    create(fake, IOP, "istio-system", "installed-state", {"profile": "default",
                                                          "components": {"pilot": {"enabled": True}}})
    args = {"target": "istio_operator", "name": "installed-state", "namespace": "istio-system",
            "annotation_prefix": OPENBAO}
    plays = [
        dict(play([task("from the environment", args)])[0]),
        dict(play([task("from module_defaults", dict(args, agent_pre_populate_only=False))])[0],
             module_defaults={"group/meshpki.vault_ca.istio": {"kubeconfig": fake.kubeconfig, "context": "fake"}}),
    ]
    run = playbook(plays, env={"K8S_AUTH_KUBECONFIG": fake.kubeconfig, "K8S_AUTH_CONTEXT": "alt"})
    assert run.rc == 0, run
    assert run.task("from the environment")["status"] == "changed"
    assert run.task("from module_defaults")["status"] == "changed"
    pilot = stored(fake, IOP, "istio-system", "installed-state")["spec"]["components"]["pilot"]
    assert pilot["enabled"] is True and pilot["k8s"]["env"] == GUIDE["env"]
    annotations = pilot["k8s"]["podAnnotations"]
    assert annotations[OPENBAO + "/agent-pre-populate-only"] == "false"
    assert annotations[OPENBAO + "/agent-inject-secret-ca-key.pem"] == "secret/data/istioca"
    assert not [key for key in annotations if key.startswith(VAULT)]
    assert {r["caller"] for r in fake.requests if "/istiooperators/" in r["path"]} == {ADMIN}


# ---------------------------------------------------------------------------------------------------------
# file mode
# ---------------------------------------------------------------------------------------------------------

# A GitOps manifest: a Namespace, the golden ControlPlane (tests/harness/fixtures/controlplane.yaml, lines 7-19)
# continued with more of the user's own fields, and a second ControlPlane.
CONTROLPLANE_FILE = """\
# GitOps repository - cluster eu-1
apiVersion: v1
kind: Namespace
metadata:
  name: tsb   # TSB lives here
---
""" + controlplane_text() + """\
          env:
            - name: PILOT_TRACE_SAMPLING
              value: "1"
      traceSamplingRate: 100
  telemetryStore:
    elastic: {host: es, port: 443}
---
apiVersion: install.tetrate.io/v1alpha1
kind: ControlPlane
metadata:
  name: staging
  namespace: tsb
spec: {hub: docker.io/tetrate}
"""

OPERATOR_FILE = """\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata:
  name: installed-state
  namespace: istio-system
spec:
  profile: default   # upstream profile
  components:
    pilot:
      k8s:
        podAnnotations:
          cluster-autoscaler.kubernetes.io/safe-to-evict: "true"
"""


def snapshot(paths):
    result = {}
    for path in paths:
        if os.path.exists(path):
            st = os.stat(path)
            with open(path) as f:
                result[path] = (st.st_ino, st.st_mtime_ns, f.read())
        else:
            result[path] = None
    return result


def test_file_mode_four_steps_backup_and_no_rewrite(playbook, tmp_path):
    cp, iop, helm = str(tmp_path / "controlplane.yaml"), str(tmp_path / "operator.yaml"), str(tmp_path / "values.yaml")
    with open(cp, "w") as f:
        f.write(CONTROLPLANE_FILE)
    with open(iop, "w") as f:
        f.write(OPERATOR_FILE)
    os.chmod(cp, 0o640)
    reload_env = [{"name": "AUTO_RELOAD_PLUGIN_CERTS", "value": "true"}]
    present = play([
        task("controlplane", {"path": cp, "name": "controlplane", "backup": True}),
        task("operator", {"target": "istio_operator", "path": iop, "backup": True}),
        task("helm", {"target": "helm_values", "path": helm, "extra_env": reload_env}),
    ])
    snapshots = []

    def recording(plays, **kwargs):
        run = playbook(plays, **kwargs)
        snapshots.append(snapshot([cp, iop, helm]))
        return run

    runs = assert_four_step(recording, present)
    original = {cp: CONTROLPLANE_FILE, iop: OPERATOR_FILE}
    assert [value[2] if value else None for value in snapshots[0].values()] == [CONTROLPLANE_FILE, OPERATOR_FILE,
                                                                                None]  # check mode wrote nothing
    assert snapshots[1] == snapshots[2] == snapshots[3]  # no rewrite at all when nothing changes (inode, mtime)

    text = snapshots[1][cp][2]
    docs = list(yaml.safe_load_all(text))
    deployment = docs[1]["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    assert deployment["env"] == [{"name": "PILOT_TRACE_SAMPLING", "value": "1"}] + GUIDE["env"]
    assert deployment["podAnnotations"] == GUIDE["podAnnotations"] and deployment["replicaCount"] == 2
    before_docs = list(yaml.safe_load_all(CONTROLPLANE_FILE))
    assert docs[0] == before_docs[0] and docs[2] == before_docs[2]
    assert text.startswith(CONTROLPLANE_FILE.split("          replicaCount: 2\n", maxsplit=1)[0])  # every byte before
    assert text.endswith("      traceSamplingRate: 100\n  telemetryStore:\n    elastic: {host: es, port: 443}\n---\n"
                         + CONTROLPLANE_FILE.split("---\n")[2])  # every byte after
    assert oct(os.stat(cp).st_mode & 0o777) == "0o640"  # atomic write kept the mode

    operator = yaml.safe_load(snapshots[1][iop][2])
    assert operator["spec"]["components"]["pilot"]["k8s"]["podAnnotations"] == dict(
        GUIDE["podAnnotations"], **{"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"})
    assert "  profile: default   # upstream profile\n" in snapshots[1][iop][2]
    values = yaml.safe_load(snapshots[1][helm][2])
    assert values == {"pilot": {"env": {"ROOT_CA_DIR": "/etc/cacerts-vault", "AUTO_RELOAD_PLUGIN_CERTS": "true"},
                                "podAnnotations": GUIDE["podAnnotations"]}}

    applied = runs[1]
    for name, path in (("controlplane", cp), ("operator", iop)):
        result = applied.task(name)["result"]
        assert result["applied_to"] == "file" and result["manifest"] == path
        with open(result["backup_file"]) as f:
            assert f.read() == original[path]
    assert "backup_file" not in applied.task("helm")["result"]  # nothing to back up: the file was new
    assert sorted(glob.glob(str(tmp_path / "*~"))) == sorted(applied.task(n)["result"]["backup_file"]
                                                             for n in ("controlplane", "operator"))
    assert applied.task("controlplane")["result"]["name"] == "controlplane"
    diff = runs[0].task("controlplane")["result"]["diff"]
    assert "PILOT_TRACE_SAMPLING" in diff["before"] and "podAnnotations" not in diff["before"]
    assert "vault.hashicorp.com/agent-inject: \"true\"" in diff["after"]
    assert "vault.hashicorp.com/role: istiod" in runs[0].stdout  # --diff shows it

    absent = play([
        task("controlplane", {"path": cp, "name": "controlplane", "state": "absent"}),
        task("operator", {"target": "istio_operator", "path": iop, "state": "absent"}),
        task("helm", {"target": "helm_values", "path": helm, "state": "absent", "extra_env": [
            {"name": "AUTO_RELOAD_PLUGIN_CERTS"}]}),
    ])
    for expected in ("changed", "ok"):  # the four steps of absent are proven in live mode
        run = playbook(absent)
        assert run.rc == 0 and {run.task(n)["status"] for n in ("controlplane", "operator", "helm")} == {expected}, run
    assert list(yaml.safe_load_all(open(cp).read())) == before_docs
    assert yaml.safe_load(open(iop).read()) == yaml.safe_load(OPERATOR_FILE)
    assert yaml.safe_load(open(helm).read()) == {}
    assert len(glob.glob(str(tmp_path / "*~"))) == 2  # backup only where asked (and only when changed)


def test_ansible_doc_shows_every_target_and_both_modes():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-doc"), "--json",
                          "meshpki.vault_ca.tsb_controlplane_annotations"], env=env, capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)["meshpki.vault_ca.tsb_controlplane_annotations"]
    assert doc["doc"]["attributes"]["action_group"]["membership"] == ["meshpki.vault_ca.istio"]
    assert doc["doc"]["options"]["target"]["choices"] == ["tsb_controlplane", "istio_operator", "helm_values"]
    examples = yaml.safe_load(doc["examples"])
    module = "meshpki.vault_ca.tsb_controlplane_annotations"
    flat = copy.deepcopy(examples) + [t for e in examples for t in e.get("block", [])]
    used = [(e[module].get("target", "tsb_controlplane"), "path" in e[module]) for e in flat if module in e]
    for target in ("tsb_controlplane", "istio_operator"):
        assert (target, True) in used and (target, False) in used, used  # file mode and live mode
    assert ("helm_values", True) in used


def test_file_mode_writes_through_a_symlink_and_refuses_duplicate_keys(playbook, tmp_path):
    """Issue 14: a GitOps checkout links the cluster's manifest to a shared file; the shared file is edited (mode,
    owner and group kept), the link stays a link. A duplicate key is an error naming the file and both lines, and
    that file is not touched."""
    shared, cluster = tmp_path / "shared", tmp_path / "clusters" / "eu"
    shared.mkdir()
    cluster.mkdir(parents=True)
    real, link = str(shared / "controlplane.yaml"), str(cluster / "controlplane.yaml")
    with open(real, "w") as f:
        f.write(CONTROLPLANE_FILE)
    os.chmod(real, 0o640)
    if os.geteuid() == 0:
        os.chown(real, 1234, 2345)  # someone else's file, as in a shared checkout
    os.symlink("../../shared/controlplane.yaml", link)
    owner = (os.stat(real).st_uid, os.stat(real).st_gid)
    duplicate = str(tmp_path / "duplicate.yaml")
    with open(duplicate, "w") as f:
        f.write(CONTROLPLANE_FILE.replace("          replicaCount: 2\n", "          replicaCount: 2\n"
                                          "          replicaCount: 3\n"))
    untouched = snapshot([duplicate])

    run = playbook(play([
        task("through the link", {"path": link, "name": "controlplane", "backup": True}),
        task("duplicate key", {"path": duplicate, "name": "controlplane"}, ignore_errors=True),
    ]))
    assert run.rc == 0, run
    assert run.task("through the link")["status"] == "changed", run
    assert os.path.islink(link) and os.readlink(link) == "../../shared/controlplane.yaml"
    with open(real) as f:
        docs = list(yaml.safe_load_all(f.read()))
    assert docs[1]["spec"]["components"]["istio"]["kubeSpec"]["deployment"]["podAnnotations"] == GUIDE["podAnnotations"]
    st = os.stat(real)
    assert oct(st.st_mode & 0o777) == "0o640" and (st.st_uid, st.st_gid) == owner
    assert os.listdir(str(shared)) == ["controlplane.yaml"]  # no temporary file left next to the real file
    with open(run.task("through the link")["result"]["backup_file"]) as f:
        assert f.read() == CONTROLPLANE_FILE

    failed = run.task("duplicate key")
    assert failed["status"] == "failed"
    assert failed["result"]["msg"] == (
        "Refused to read the manifest '%s': the key 'replicaCount' appears twice in one mapping, at line 19 and line "
        "20. A YAML loader keeps only the last one and silently drops the other. Remove or merge one of the two."
        % duplicate)
    assert snapshot([duplicate]) == untouched  # same inode, mtime and text
    assert not glob.glob(str(tmp_path / "duplicate.yaml.*"))  # no backup, no temporary file
