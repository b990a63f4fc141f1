"""The embedded default environment: a local OpenBao dev server and one fake Kubernetes API per
cluster, as background processes that outlive this command (molecule's prepare/destroy, `make demo`).

    python tools/embedded.py start --dir DIR [--clusters east,west]   # writes DIR/env.json and DIR/env.sh
    python tools/embedded.py stop --dir DIR                            # stops everything (idempotent)
    python tools/embedded.py mint --dir DIR [--cluster east] [--namespace NS --name SA]   # prints a SA JWT

Each cluster is its own API server (own CA, own service-account signing key), so a token of one
cluster is refused by another's TokenReview, as between real clusters. Every cluster gets a
ControlPlane ``tsb/controlplane`` and an IstioOperator ``istio-system/installed-state``, each with
fields of its own. env.json holds VAULT_ADDR, VAULT_TOKEN
(the dev server's root token), and per cluster its kubeconfig, API URL and CA file;
K8S_AUTH_KUBECONFIG points at the first cluster's kubeconfig.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests")
sys.path.insert(0, TESTS)

from harness.openbao import OpenBaoServer  # noqa: E402

DEFAULT_CLUSTER = "default"

SAMPLE_CONTROLPLANE = {
    "apiVersion": "install.tetrate.io/v1alpha1",
    "kind": "ControlPlane",
    "metadata": {"name": "controlplane", "namespace": "tsb", "labels": {"team": "mesh"}},
    "spec": {
        "hub": "registry.example.com/tetrate",
        "managementPlane": {"host": "tsb.example.com", "port": 8443, "clusterName": "demo"},
        "components": {"istio": {"kubeSpec": {"deployment": {
            "env": [{"name": "PILOT_TRACE_SAMPLING", "value": "1"}],
            "podAnnotations": {"example.com/owner": "platform-team"},
        }}}},
    },
}


SAMPLE_ISTIOOPERATOR = {
    "apiVersion": "install.istio.io/v1alpha1",
    "kind": "IstioOperator",
    "metadata": {"name": "installed-state", "namespace": "istio-system"},
    "spec": {"profile": "default", "components": {"pilot": {"k8s": {
        "env": [{"name": "PILOT_ENABLE_STATUS", "value": "true"}]}}}},
}


def _python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _cluster_dir(workdir, cluster):
    return os.path.join(workdir, "k8s" if cluster == DEFAULT_CLUSTER else "k8s-" + cluster)


def _start_fake(workdir, cluster):
    state = _cluster_dir(workdir, cluster)
    os.makedirs(state, exist_ok=True)
    ready = os.path.join(state, "ready")
    if os.path.exists(ready):
        os.remove(ready)
    with open(os.path.join(workdir, "k8s-%s.log" % cluster), "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness.fake_k8s", "--state-dir", state], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=_python_env())
    deadline = time.time() + 30
    while not os.path.exists(ready):
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError("the fake Kubernetes API of cluster %s did not start; see %s/k8s-%s.log"
                               % (cluster, workdir, cluster))
        time.sleep(0.05)
    with open(os.path.join(state, "url")) as f:
        url = f.read().strip()
    kubeconfig = os.path.join(state, "kubeconfig")
    seed_controlplane(kubeconfig)
    return proc.pid, {"kubeconfig": kubeconfig, "host": url, "ca_file": os.path.join(state, "ca.crt")}


def seed_controlplane(kubeconfig, namespace="tsb"):
    """A ControlPlane with fields of its own (hub, management plane, an env entry, an annotation),
    so that what the collection adds is seen next to what must be kept."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    existing = [ns.metadata.name for ns in core.list_namespace().items]
    for name in (namespace, "vault", "istio-system"):  # the reviewer and istiod live in the latter two
        if name not in existing:
            core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    custom = client.CustomObjectsApi(api)
    try:
        custom.get_namespaced_custom_object("install.tetrate.io", "v1alpha1", namespace, "controlplanes",
                                            "controlplane")
    except client.ApiException as e:
        if e.status != 404:
            raise
        body = json.loads(json.dumps(SAMPLE_CONTROLPLANE))
        body["metadata"]["namespace"] = namespace
        custom.create_namespaced_custom_object("install.tetrate.io", "v1alpha1", namespace, "controlplanes", body)
        custom.create_namespaced_custom_object("install.istio.io", "v1alpha1", "istio-system", "istiooperators",
                                               SAMPLE_ISTIOOPERATOR)


def _write_private(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def start(workdir, clusters=(DEFAULT_CLUSTER,)):
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    stop(workdir)
    pids = {}
    try:
        bao = OpenBaoServer(os.path.join(workdir, "openbao"), audit=True).start()
        pids["openbao"] = bao.proc.pid
        cluster_env = {}
        for cluster in clusters:
            pids["k8s-" + cluster], cluster_env[cluster] = _start_fake(workdir, cluster)
    finally:
        _write_private(os.path.join(workdir, "pids.json"), json.dumps(pids))
    first = cluster_env[clusters[0]]
    env = {"VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.token, "MESHPKI_AUDIT_LOG": bao.audit.path,
           "K8S_AUTH_KUBECONFIG": first["kubeconfig"], "clusters": cluster_env}
    _write_private(os.path.join(workdir, "env.json"), json.dumps(env, indent=2))
    flat = dict((k, v) for k, v in env.items() if isinstance(v, str))
    _write_private(os.path.join(workdir, "env.sh"),
                   "".join("export %s=%s\n" % (k, json.dumps(v)) for k, v in sorted(flat.items())))
    return env


def stop(workdir):
    path = os.path.join(os.path.abspath(workdir), "pids.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        pids = json.load(f)
    for pid in pids.values():
        _terminate(pid)
    os.remove(path)


def _terminate(pid):
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def mint(workdir, namespace="istio-system", name="istiod-service-account", cluster=DEFAULT_CLUSTER):
    """A JWT for ``namespace/name`` from the running fake API of ``cluster``."""
    out = subprocess.run([sys.executable, "-m", "harness.fake_k8s", "mint", "--state-dir",
                          _cluster_dir(os.path.abspath(workdir), cluster), "--namespace", namespace, "--name", name],
                         capture_output=True, text=True, env=_python_env(), check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["start", "stop", "mint"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--clusters", default=DEFAULT_CLUSTER, help="start: comma-separated cluster names")
    parser.add_argument("--cluster", default=None, help="mint: which cluster (default: the only/first one)")
    parser.add_argument("--namespace", default="istio-system")
    parser.add_argument("--name", default="istiod-service-account")
    args = parser.parse_args(argv)
    if args.action == "start":
        env = start(args.dir, [c for c in args.clusters.split(",") if c])
        print(json.dumps(dict((k, v) for k, v in env.items() if k != "VAULT_TOKEN")))
    elif args.action == "stop":
        stop(args.dir)
    else:
        cluster = args.cluster
        if cluster is None:
            with open(os.path.join(args.dir, "env.json")) as f:
                cluster = next(iter(json.load(f)["clusters"]))
        print(mint(args.dir, args.namespace, args.name, cluster))


if __name__ == "__main__":
    main()
