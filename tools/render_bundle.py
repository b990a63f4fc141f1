"""Render istiod's four plugin-CA files with the real ``bao agent`` from the annotations the
collection wrote - on the live ControlPlane in the fake cluster, or in a manifest file - logging in
as istiod's service account through Vault's Kubernetes auth (the fake answers TokenReview).

    python tools/render_bundle.py --embedded DIR --out OUT [--cluster C] [--manifest FILE] [--target T]

Prints one JSON line: the files written, the annotations' role and auth path, the agent's exit code.
Used by `make demo` and the molecule verify step.
"""

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "tests"), os.path.join(REPO, ".collections")]

from harness import agent  # noqa: E402

PODSPEC_PATHS = {
    "tsb_controlplane": ("spec", "components", "istio", "kubeSpec", "deployment", "podAnnotations"),
    "istio_operator": ("spec", "components", "pilot", "k8s", "podAnnotations"),
    "helm_values": ("pilot", "podAnnotations"),
}
OBJECTS = {
    "tsb_controlplane": ("install.tetrate.io", "v1alpha1", "controlplanes"),
    "istio_operator": ("install.istio.io", "v1alpha1", "istiooperators"),
}


def _dig(obj, keys):
    for key in keys:
        obj = (obj or {}).get(key)
    return obj or {}


def read_annotations(target, kubeconfig=None, namespace="tsb", name="controlplane", manifest=None):
    import yaml

    if manifest:
        with open(manifest) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        found = [_dig(d, PODSPEC_PATHS[target]) for d in docs]
        return next(a for a in found if a)
    from kubernetes import client, config

    group, version, plural = OBJECTS[target]
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig))
    return _dig(api.get_namespaced_custom_object(group, version, namespace, plural, name), PODSPEC_PATHS[target])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--embedded", required=True, help="directory of tools/embedded.py start")
    parser.add_argument("--out", required=True)
    parser.add_argument("--target", default="tsb_controlplane", choices=sorted(PODSPEC_PATHS))
    parser.add_argument("--manifest")
    parser.add_argument("--namespace", default="tsb")
    parser.add_argument("--name", default="controlplane")
    parser.add_argument("--prefix", default="vault.hashicorp.com")
    parser.add_argument("--sa-namespace", default="istio-system")
    parser.add_argument("--sa-name", default="istiod-service-account")
    parser.add_argument("--cluster", help="which cluster of the embedded environment (default: the first)")
    args = parser.parse_args(argv)

    sys.path.insert(0, os.path.join(REPO, "tools"))
    import embedded

    with open(os.path.join(args.embedded, "env.json")) as f:
        env = json.load(f)
    cluster = args.cluster or next(iter(env["clusters"]))
    kubeconfig = env["clusters"][cluster]["kubeconfig"]
    annotations = read_annotations(args.target, kubeconfig, args.namespace, args.name, args.manifest)
    os.makedirs(args.out, exist_ok=True)
    jwt_file = os.path.join(args.out, ".istiod.jwt")  # per output: clusters render in parallel
    with open(jwt_file, "w") as f:
        f.write(embedded.mint(args.embedded, args.sa_namespace, args.sa_name, cluster))
    auth_path = annotations.get(args.prefix + "/auth-path", "auth/kubernetes")
    role = annotations.get(args.prefix + "/role")
    proc = agent.render(env["VAULT_ADDR"], annotations, args.out, prefix=args.prefix,
                        auth={"method": "kubernetes", "mount": auth_path[len("auth/"):], "role": role,
                              "jwt_file": jwt_file})
    os.remove(jwt_file)
    print(json.dumps({"files": agent.bundle_files(args.out), "role": role, "auth_path": auth_path,
                      "agent_rc": proc.returncode}))
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
