"""The embedded default environment: a local OpenBao dev server and the fake Kubernetes API, as
background processes that outlive this command (for molecule's prepare/destroy and `make demo`).

    python tools/embedded.py start --dir DIR   # starts both, writes DIR/env.json and DIR/env.sh
    python tools/embedded.py stop --dir DIR    # stops both (idempotent)
    python tools/embedded.py mint --dir DIR --namespace NS --name SA   # prints a service-account JWT

env.json holds VAULT_ADDR, VAULT_TOKEN (root of the dev server), K8S_AUTH_KUBECONFIG and the
Kubernetes API URL and CA, so playbooks reach both through the usual environment variables.
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


def _python_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS + os.pathsep + env.get("PYTHONPATH", "")
    return env


def start(workdir):
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    if os.path.exists(os.path.join(workdir, "env.json")):
        stop(workdir)
    bao = OpenBaoServer(os.path.join(workdir, "openbao"), audit=True).start()
    k8s_dir = os.path.join(workdir, "k8s")
    os.makedirs(k8s_dir, exist_ok=True)
    ready = os.path.join(k8s_dir, "ready")
    if os.path.exists(ready):
        os.remove(ready)
    log = open(os.path.join(workdir, "k8s.log"), "ab")
    k8s = subprocess.Popen([sys.executable, "-m", "harness.fake_k8s", "--state-dir", k8s_dir], stdout=log,
                           stderr=subprocess.STDOUT, start_new_session=True, env=_python_env())
    log.close()
    deadline = time.time() + 30
    while not os.path.exists(ready):
        if k8s.poll() is not None or time.time() > deadline:
            bao.stop()
            raise SystemExit("the fake Kubernetes API did not start; see %s/k8s.log" % workdir)
        time.sleep(0.05)
    with open(os.path.join(k8s_dir, "url")) as f:
        k8s_url = f.read().strip()
    seed_controlplane(os.path.join(k8s_dir, "kubeconfig"))
    env = {
        "VAULT_ADDR": bao.url, "VAULT_TOKEN": bao.token,
        "K8S_AUTH_KUBECONFIG": os.path.join(k8s_dir, "kubeconfig"),
        "MESHPKI_K8S_HOST": k8s_url, "MESHPKI_K8S_CA_FILE": os.path.join(k8s_dir, "ca.crt"),
        "MESHPKI_AUDIT_LOG": bao.audit.path,
    }
    pids = {"openbao": bao.proc.pid, "k8s": k8s.pid}
    with open(os.path.join(workdir, "pids.json"), "w") as f:
        json.dump(pids, f)
    with open(os.path.join(workdir, "env.json"), "w") as f:
        json.dump(env, f, indent=2)
    with open(os.path.join(workdir, "env.sh"), "w") as f:
        f.write("".join("export %s=%s\n" % (k, json.dumps(v)) for k, v in sorted(env.items())))
    os.chmod(os.path.join(workdir, "env.json"), 0o600)
    os.chmod(os.path.join(workdir, "env.sh"), 0o600)
    return env


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


def seed_controlplane(kubeconfig):
    """A ControlPlane with fields of its own (hub, management plane, an env entry, an annotation)
    in namespace tsb, so that what the collection adds is seen next to what must be kept."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=kubeconfig)
    core = client.CoreV1Api(api)
    if "tsb" not in [ns.metadata.name for ns in core.list_namespace().items]:
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tsb"}})
    custom = client.CustomObjectsApi(api)
    try:
        custom.get_namespaced_custom_object("install.tetrate.io", "v1alpha1", "tsb", "controlplanes", "controlplane")
    except client.ApiException as e:
        if e.status != 404:
            raise
        custom.create_namespaced_custom_object("install.tetrate.io", "v1alpha1", "tsb", "controlplanes",
                                               SAMPLE_CONTROLPLANE)


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
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def mint(workdir, namespace, name):
    out = subprocess.run([sys.executable, "-m", "harness.fake_k8s", "mint", "--state-dir",
                          os.path.join(os.path.abspath(workdir), "k8s"), "--namespace", namespace, "--name", name],
                         capture_output=True, text=True, env=_python_env(), check=False)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return out.stdout.strip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("action", choices=["start", "stop", "mint"])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--namespace", default="istio-system")
    parser.add_argument("--name", default="istiod-service-account")
    args = parser.parse_args(argv)
    if args.action == "start":
        env = start(args.dir)
        print(json.dumps({k: v for k, v in env.items() if k != "VAULT_TOKEN"}))
    elif args.action == "stop":
        stop(args.dir)
    else:
        print(mint(args.dir, args.namespace, args.name))


if __name__ == "__main__":
    main()
