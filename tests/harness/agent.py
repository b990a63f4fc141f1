"""Render istiod's plugin-CA files with the real ``bao agent`` - the agent the injector runs in the pod.

The templates come from the annotations the collection wrote (``istio.injector.extract_templates``),
so what is proven is exactly what the injector would render. The agent logs in with Kubernetes
auth (a service-account JWT in a token file, Vault calling TokenReview) or with a token file, renders
every template once, and exits.
"""

import json
import os
import subprocess

from ansible_collections.meshpki.vault_ca.plugins.module_utils.istio.injector import extract_templates
from harness.openbao import bao_binary


def agent_config(vault_addr, templates, out_dir, auth, ca_file=None, namespace=None):
    """The agent configuration (HCL as JSON, which bao accepts) for ``templates`` {file: (path, text)}.

    ``auth`` is {"method": "kubernetes", "mount": ..., "role": ..., "jwt_file": ...} or
    {"method": "token_file", "token_file": ...}. ``namespace`` goes where the injector puts its
    ``namespace`` annotation: on the auto-auth method, whose client the templates use as well."""
    if auth["method"] == "kubernetes":
        method = {"type": "kubernetes", "mount_path": "auth/" + auth.get("mount", "kubernetes"),
                  "config": {"role": auth["role"], "token_path": auth["jwt_file"]}, "exit_on_err": True}
    else:
        method = {"type": "token_file", "config": {"token_file_path": auth["token_file"]}}
    if namespace:
        method["namespace"] = namespace
    vault = {"address": vault_addr}
    if ca_file:
        vault["ca_cert"] = ca_file
    return {
        "exit_after_auth": True,
        "pid_file": os.path.join(out_dir, ".agent.pid"),
        "vault": vault,
        "auto_auth": {"method": [method]},
        "template_config": {"exit_on_retry_failure": True},
        "template": [{"contents": text, "destination": os.path.join(out_dir, name), "perms": "0600",
                      "error_on_missing_key": False} for name, (_path, text) in sorted(templates.items())],
    }


def render(vault_addr, annotations, out_dir, auth, prefix="vault.hashicorp.com", ca_file=None, timeout=60):
    """Run ``bao agent`` once on the templates of ``annotations``; return the CompletedProcess. The
    four files land in ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    templates = extract_templates(annotations, prefix=prefix)
    namespace = annotations.get(prefix.rstrip("/") + "/namespace")
    return run_agent(agent_config(vault_addr, templates, out_dir, auth, ca_file, namespace), out_dir, timeout)


def run_agent(config, out_dir, timeout=60):
    """``bao agent`` once with ``config`` (exit_after_auth: render every template, then exit), as the
    injector's init container does. The configuration file is removed afterwards."""
    config_path = os.path.join(out_dir, ".agent.json")
    with open(config_path, "w") as f:
        json.dump(config, f, indent=2)
    env = dict(os.environ)
    for name in list(env):
        if name.startswith(("VAULT_", "BAO_")):
            del env[name]
    proc = subprocess.run([bao_binary(), "agent", "-config=" + config_path], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    os.remove(config_path)
    return proc


def bundle_files(out_dir):
    return sorted(name for name in os.listdir(out_dir) if not name.startswith("."))
