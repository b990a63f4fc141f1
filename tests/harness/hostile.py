"""Hostile values for path-forming options, the table of every module's path-forming options, and a way to
run a module's real code in this process (no AnsiballZ, no new Python: about a millisecond a case) so a
test can cross every value with every option.

The option table is written by hand from reading each module, NOT from the modules' own ``path_options``
declarations: an option a module forgets to declare is then a failing case, not a silent gap.
"""

import contextlib
import io
import json
import sys

from ansible.module_utils import basic

# Values that must never become part of a Vault or Kubernetes path, whatever the kind of option.
HOSTILE = [
    "..",
    ".",
    "a/../b",
    "../../sys/mounts/victim",
    "a/./b",
    "a//b",
    "a?b",
    "a#b",
    "a%2e%2e",
    "%2e%2e",
    "a b",
    "a\tb",
    "a\nb",
    "a\x00b",
    "a\u202eb",
    "a\u200bb",
    'a"b',
    "a{{b}}",
    "a\\b",
    "",
    "x" * 300,
]
# Kinds that are one segment also refuse any slash.
HOSTILE_SINGLE = HOSTILE + ["a/b", "/abs", "trailing/"]

SINGLE_KINDS = ("name", "field", "k8s_name")

PEM_CERT = None  # filled by callers that need a certificate

# module -> (base args that are valid on their own, {option: kind}); dotted options reach into a dict option.
MODULES = {
    "vault_policy": ({"name": "p", "policy": 'path "x" { capabilities = ["read"] }'},
                     {"name": "name"}),
    "vault_k8s_role": ({"name": "r", "bound_service_account_names": ["a"], "bound_service_account_namespaces": ["b"]},
                       {"name": "name", "kubernetes_auth_mount": "mount"}),
    "vault_k8s_auth": ({"kubernetes_host": "https://127.0.0.1:6443",
                        "token_reviewer": {"create": True, "namespace": "vault", "service_account": "rev",
                                           "secret_name": "rev-token", "cluster_role_binding": "rev-binding"},
                        "kubeconfig": "/nonexistent/kubeconfig"},
                       {"kubernetes_auth_mount": "mount", "token_reviewer.namespace": "k8s_name",
                        "token_reviewer.service_account": "k8s_name", "token_reviewer.secret_name": "k8s_name",
                        "token_reviewer.cluster_role_binding": "name"}),
    "vault_pki_root": ({"common_name": "root.example"},
                       {"mount": "mount", "kv_mount": "mount", "trust_bundle_path": "path"}),
    "vault_pki_intermediate": ({"common_name": "int.example", "ttl": "24h"},
                               {"mount": "mount", "root_mount": "mount", "kv_mount": "mount", "kv_path": "path",
                                "kv_field": "field"}),
    "vault_audit": ({"path": "file", "options": {"file_path": "/tmp/x.log"}}, {"path": "mount"}),
    "vault_login": ({}, {}),
    "istio_ca_verify": ({"vault_paths": {"intermediate_mount": "istioca", "root_mount": "pki", "kv_mount": "secret",
                                         "kv_path": "istioca", "kv_field": "ca-key.pem"},
                         "read_with_policy": "istioca",
                         "auth_role": {"kubernetes_auth_mount": "kubernetes", "name": "istiod"}},
                        {"vault_paths.intermediate_mount": "mount", "vault_paths.root_mount": "mount",
                         "vault_paths.kv_mount": "mount", "vault_paths.kv_path": "path",
                         "vault_paths.kv_field": "field", "vault_paths.trust_bundle_path": "path",
                         "read_with_policy": "name",
                         "auth_role.kubernetes_auth_mount": "mount", "auth_role.name": "name"}),
    "istio_ca_diagnose": ({"istiod_jwt": "not-a-real-jwt"},
                          {"root_mount": "mount", "intermediate_mount": "mount", "kv_mount": "mount",
                           "kv_path": "path", "kv_field": "field", "trust_bundle_path": "path", "policy_name": "name",
                           "kubernetes_auth_mount": "mount", "role": "name",
                           "service_account": "k8s_name", "service_account_namespace": "k8s_name",
                           "target_name": "k8s_name", "target_namespace": "k8s_name"}),
    "tsb_controlplane_annotations": ({"name": "controlplane", "namespace": "tsb",
                                      "kubeconfig": "/nonexistent/kubeconfig"},
                                     {"name": "k8s_name", "namespace": "k8s_name", "intermediate_mount": "mount",
                                      "root_mount": "mount", "kv_mount": "mount", "kv_path": "path",
                                      "kv_field": "field", "role": "name", "kubernetes_auth_mount": "mount",
                                      "vault_namespace": "namespace", "trust_bundle_path": "path"}),
    "vault_pki_root_rotation": ({"trust_bundle_path": "pki-trust", "rotation": "advance", "clusters": [
        {"name": "east", "intermediate_mount": "istioca-east", "verified": True}]},
        {"root_mount": "mount", "kv_mount": "mount", "trust_bundle_path": "path",
         "clusters.intermediate_mount": "mount"}),
}
# Every Vault module also takes the shared connection/auth options that form paths (tsb_controlplane_annotations
# does not talk to Vault; its kubernetes_auth_mount is the one in its table).
SHARED = {"namespace": "namespace", "auth_mount": "mount"}
NOT_VAULT = ("tsb_controlplane_annotations",)


def hostile_for(kind):
    return HOSTILE_SINGLE if kind in SINGLE_KINDS else HOSTILE


def set_option(args, dotted, value):
    """A copy of ``args`` with ``dotted`` set to ``value`` ('vault_paths.kv_path' sets a key of a dict)."""
    args = json.loads(json.dumps(args))
    head, rest = dotted.partition(".")[::2]
    if rest and isinstance(args.get(head), list):  # a list of dicts: the first item's key
        args[head][0][rest] = value
    elif rest:
        args.setdefault(head, {})[rest] = value
    else:
        args[head] = value
    return args


def cases():
    """(module, option, kind, value) for every path-forming option of every module and every hostile value."""
    found = []
    for module in sorted(MODULES):
        _base, options = MODULES[module]
        options = dict(options)
        if module not in NOT_VAULT:
            for option, kind in SHARED.items():
                options.setdefault(option, kind)
        for option in sorted(options):
            for value in hostile_for(options[option]):
                found.append((module, option, options[option], value))
    return found


@contextlib.contextmanager
def _module_args(args):
    try:
        from ansible.module_utils.testing import patch_module_args  # ansible-core >= 2.19
    except ImportError:
        patch_module_args = None
    if patch_module_args is not None:
        with patch_module_args(args):
            yield
        return
    old = basic._ANSIBLE_ARGS
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    try:
        yield
    finally:
        basic._ANSIBLE_ARGS = old


def run_module(name, args):
    """Run ``meshpki.vault_ca.<name>``'s main() here with ``args``; returns its result dict."""
    module = __import__("ansible_collections.meshpki.vault_ca.plugins.modules." + name, fromlist=["main"])
    out = io.StringIO()
    old_stdout = sys.stdout
    sys.stdout = out
    try:
        with _module_args(args):
            try:
                module.main()
            except SystemExit:
                pass
    finally:
        sys.stdout = old_stdout
    text = out.getvalue()
    start = text.find("{")
    return json.loads(text[start:]) if start >= 0 else {"failed": True, "msg": "no JSON: %r" % text}


def try_case(bao, module, option, value):
    """Run one (module, option, hostile value) case against ``bao`` (an OpenBaoServer with an audit log).
    Returns (refused cleanly, the requests Vault received for it, the message)."""
    base, _options = MODULES[module]
    conn = {"url": bao.url, "token": bao.token}
    args = set_option(dict(base, **conn) if module not in NOT_VAULT else dict(base), option, value)
    if option == "auth_mount" and module not in NOT_VAULT:
        args.update(auth_method="approle", role_id="role-id-of-the-case", secret_id="secret-id-of-the-case")
        args.pop("token")
    mark = bao.audit.mark()
    result = run_module(module, args)
    sent = bao.audit.requests(mark)
    msg = result.get("msg") or ""
    refused = bool(result.get("failed")) and option.split(".")[-1] in msg and "is not" in msg \
        and "nothing was sent" in msg and " a a " not in msg
    return refused, sent, msg
