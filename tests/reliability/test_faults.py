"""Fault injection at every step boundary of the guide, against OpenBao on raft storage.

For each boundary the role is stopped right there, in one of three ways:

``kill_vault``
    The fault proxy lets the request reach Vault, waits for Vault's answer (the write is committed),
    SIGKILLs the raft server and drops the answer: the module never learns the outcome. Vault is then
    restarted (and unsealed) from its data directory.
``kill_playbook``
    Same moment, but the ``ansible-playbook`` process group (controller and module process) is
    SIGKILLed instead: the AWX node that dies mid-job.
``deny``
    A token whose policy lacks the capability of the *next* write (the Kubernetes user for the
    ControlPlane patch): the module gets a clear 403 right after the boundary.

Then the role runs again with the fault removed, and the state must hold: the run converges; the KV
secret holds exactly one key version (one successful issuance); the default intermediate issuer's
public key is that key's; the intermediate is signed by the root; the root is the one that existed
when the fault struck (and the only one); the ControlPlane holds everything it held before plus the
collection's entries. A killed playbook leaves no file holding the Vault token or the key (the role runs
its modules with pipelining: no AnsiballZ file with the arguments in the remote temp directory).
"""

import os
import threading
import urllib.parse
import uuid

import pytest
from relharness import (
    CONTROLPLANE,
    FaultProxy,
    SecretScanner,
    VaultState,
    all_but,
    contains_all,
    token_with_rules,
)

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import read_secret, write_secret
from harness.playbook import role_play

pytestmark = pytest.mark.reliability_slow

POST = "POST|PUT"

# boundary -> (method, path of the write after which the run stops, next write (policy rule for 'deny'))
# The path rules of 'deny' give the next write's path only the capabilities the module needs before it.
BOUNDARIES = [
    ("after mount enable", POST, r"^sys/mounts/pki$", ('pki/root/generate/internal', [])),
    ("after root generate", POST, r"^pki/root/generate/internal$", ('pki/config/issuers', ["read"])),
    ("after intermediate generate", POST, r"^istioca/intermediate/generate/exported$",
     ('secret/data/istioca', ["read"])),
    ("after the key is stored", POST, r"^secret/data/istioca$", ('pki/root/sign-intermediate', [])),
    ("after sign", POST, r"^pki/root/sign-intermediate$", ('istioca/intermediate/set-signed', [])),
    ("after set-signed", POST, r"^istioca/intermediate/set-signed$", ('istioca/config/issuers', ["read"])),
    ("after default-issuer switch", POST, r"^istioca/config/issuers$", ('sys/policies/acl/istioca', ["read"])),
    ("after policy", POST, r"^sys/policies/acl/istioca$", ('sys/auth/kubernetes', ["read"])),
    ("after auth config", POST, r"^auth/kubernetes/config$", ('auth/kubernetes/role/istiod', ["read"])),
    ("after role", POST, r"^auth/kubernetes/role/istiod$", ('auth/token/create', [])),
    ("during the ControlPlane write", "PATCH", None, None),
]
KINDS = ("kill_vault", "kill_playbook", "deny")
CASES = [(b[0], kind) for b in BOUNDARIES for kind in KINDS
         if not (b[2] is None and kind == "kill_vault")]  # the ControlPlane write does not involve Vault
INJECTOR = "vault.hashicorp.com"


def _role_vars(url, token, cluster):
    return {"istio_vault_ca_vault": {"url": url, "token": token},
            "istio_vault_ca_kubeconfig": cluster.kubeconfig,
            "istio_vault_ca_k8s_token_reviewer": {"create": True}}


def _hook_controlplane_patch(cluster, action):
    """Call ``action`` right after the fake API server applied the (non dry-run) ControlPlane patch, before
    its answer leaves: the write is done, the client never hears of it."""
    api = cluster.api
    original = api.handle
    fired = threading.Event()
    _api_version, plural, name, namespace = CONTROLPLANE

    def handle(method, raw_path, headers, body):
        answer = original(method, raw_path, headers, body)
        url = urllib.parse.urlsplit(raw_path)
        if (method == "PATCH" and url.path.endswith("/namespaces/%s/%s/%s" % (namespace, plural, name))
                and "dryRun" not in url.query and not fired.is_set()):
            fired.set()
            action()
        return answer

    api.handle = handle
    return lambda: setattr(api, "handle", original)


def _deny_controlplane_patch(cluster):
    api = cluster.api
    api.deny("kubernetes-admin", "patch", CONTROLPLANE[0].split("/", 1)[0], CONTROLPLANE[1])

    def undo():
        with api._lock:  # the fake has no 'undeny': drop the rule we added
            api._rules = [rule for rule in api._rules if rule[0] != "deny"]
    return undo


def _annotations_and_env(cp):
    deployment = cp["spec"]["components"]["istio"]["kubeSpec"]["deployment"]
    env = dict((e["name"], e.get("value")) for e in deployment.get("env") or [])
    return deployment.get("podAnnotations") or {}, env


@pytest.mark.parametrize("boundary,kind", CASES, ids=["%s-%s" % (b.replace(" ", "_"), k) for b, k in CASES])
def test_fault_at_boundary_then_converge(boundary, kind, raft_bao, cluster, ansible, report, tmp_path):
    spec = dict((b[0], b) for b in BOUNDARIES)[boundary]
    _name, method, path, next_write = spec
    proxy = FaultProxy([raft_bao.http_url]).start()
    state = VaultState(raft_bao)
    cp_before = cluster.controlplane()
    token = raft_bao.token
    undo = None
    fired = None
    run_holder = {}

    if kind == "deny":
        if path is None:
            undo = _deny_controlplane_patch(cluster)
        else:
            next_path, allowed = next_write
            rules = all_but() + 'path "%s" { capabilities = %s }\n' % (
                next_path, "[%s]" % ", ".join('"%s"' % c for c in allowed) if allowed else '["deny"]')
            token = token_with_rules(raft_bao, rules, ttl="2h")
    else:
        if kind == "kill_vault":
            def action():
                raft_bao.kill()
        else:
            def action():
                run_holder["run"].kill()
        if path is None:
            fired = threading.Event()
            restore = _hook_controlplane_patch(cluster, lambda: (fired.set(), action()))
            undo = restore
        else:
            fired = proxy.arm(method, path, action).fired

    try:
        background = ansible.start(role_play(_role_vars(proxy.url, token, cluster)))
        run_holder["run"] = background
        faulty = background.wait(600)
    finally:
        if undo:
            undo()
        proxy.disarm()

    # the fault struck where it was meant to, and the run stopped there
    if fired is not None:
        assert fired.is_set(), ("the boundary was never reached", faulty)
    assert faulty.rc != 0, faulty
    failure = faulty.failed_msgs()
    if kind == "kill_vault":
        # the answer to a write was lost: the message must say the server is gone and to re-run
        assert failure and "unreachable" in failure[-1] and "re-run" in failure[-1].lower(), faulty
        raft_bao.start()  # restart from the raft data directory and unseal
    elif kind == "deny":  # the clear 403 names what was taken away
        denied = next_write[0] if path is not None else "controlplanes"
        clear = "permission denied" in failure[-1] or "forbidden" in failure[-1].lower() if failure else False
        assert failure and denied in failure[-1] and clear, faulty
    else:
        assert faulty.killed
    left_behind = []
    if kind == "kill_playbook":  # what the killed run left on disk must not hold the token or the key
        scanner = SecretScanner()
        scanner.add_secret("Vault token", token)
        for version_key in state.kv_keys_all_versions():
            scanner.add_key("intermediate key", version_key)
        left_behind = sorted(scanner.scan_tree(faulty.workdir, skip=[os.path.join(faulty.workdir, "play.yml")]))
    after_fault = state.snapshot()
    stored_key = state.kv_key(1) if after_fault["kv_version"] else None

    # re-run with the fault removed
    converge = ansible.run(role_play(_role_vars(proxy.url, raft_bao.token, cluster)))
    final = state.snapshot()
    cp_after = cluster.controlplane()
    annotations, env = _annotations_and_env(cp_after)
    lost = []
    root_before = (after_fault["root_id"], after_fault["root_serial"])
    if after_fault["root_id"] and (final["root_id"], final["root_serial"]) != root_before:
        lost.append("the root changed")
    if stored_key is not None and (final["kv_version"] != after_fault["kv_version"] or state.kv_key() != stored_key
                                   or not final["key_matches"]):
        lost.append("the key stored before the fault was lost, replaced or not installed")
    lost += contains_all(cp_before["spec"], cp_after["spec"])
    converged = (converge.rc == 0 and final["root_issuers"] == 1 and final["kv_version"] == 1
                 and final["key_matches"] and final["int_signed_by_root"]
                 and annotations.get(INJECTOR + "/agent-inject") == "true"
                 and env.get("ROOT_CA_DIR") == "/etc/cacerts-vault")
    report.metric("faults", injected=1, converged=int(converged), lost=len(lost))
    stopped_with = failure[-1][:400] if failure else "killed (no message)"
    report.detail("Faults", boundary=boundary, fault=kind, stopped_with=stopped_with,
                  converged=converged, kv_versions=final["kv_version"], root_issuers=final["root_issuers"],
                  lost=len(lost), secrets_left_on_disk=len(left_behind))

    assert converge.rc == 0, converge
    assert final["root_issuers"] == 1, final
    assert final["kv_version"] == 1, final
    assert final["key_matches"], final
    assert final["int_signed_by_root"], final
    assert not lost, lost
    assert not left_behind, left_behind
    assert annotations.get(INJECTOR + "/agent-inject") == "true" and env.get("ROOT_CA_DIR") == "/etc/cacerts-vault"
    proxy.stop()


UPGRADING = ("Waiting for the primary to upgrade from non-versioned to versioned data. This backend will be "
             "unavailable for a brief period and will resume service when the primary is finished.")


def test_key_write_while_kv2_engine_upgrades_is_repeated(bao_dev, report):
    """Right after a KV v2 mount is enabled the engine refuses requests for a moment (seen once on an HA
    standby: 400 'Waiting for the primary to upgrade ...'). Injected here on the key's read (once) and on its
    check-and-set write (twice): both are repeated, the key stored once, nothing lost. Any other 400 is not
    repeated: it fails at once."""
    proxy = FaultProxy([bao_dev.url]).start()
    answers = []

    def refuse(message):
        def answer():
            answers.append(message)
            return 400, {"errors": [message]}
        return answer

    mount = "kv-" + uuid.uuid4().hex[:6]
    bao_dev.api("POST", "sys/mounts/" + mount, {"type": "kv", "options": {"version": "2"}})
    proxy.arm("GET", r"^%s/data/istioca$" % mount, refuse(UPGRADING), when="answer")
    for _refusal in range(2):
        proxy.arm("POST|PUT", r"^%s/data/istioca$" % mount, refuse(UPGRADING), when="answer")
    conn = VaultConnection.from_params({"url": proxy.url, "retries": 0})
    client = VaultClient(conn.client(bao_dev.token), conn)
    error = None
    try:
        version = write_secret(client, read_secret(client, mount, "istioca"), {"ca-key.pem": "k"})
    except MeshPkiError as e:
        error, version = str(e), None
    stored = VaultState(bao_dev, kv_mount=mount).kv_versions()[0]
    repeated = len(answers)

    # another 400 on the write is Vault's answer, not a transient state: no second attempt, nothing stored
    proxy.arm("POST|PUT", r"^%s/data/istioca$" % mount, refuse("invalid request"), when="answer")
    other_error = None
    try:
        write_secret(client, read_secret(client, mount, "istioca"), {"ca-key.pem": "k2"})
    except MeshPkiError as e:
        other_error = str(e)
    stored_after = VaultState(bao_dev, kv_mount=mount).kv_versions()[0]

    converged = error is None and version == 1 and stored == 1 and repeated == 3
    report.metric("faults", injected=1, converged=int(converged), lost=0 if stored <= 1 else 1)
    report.detail("Faults", boundary="the key read and write, KV v2 engine still upgrading",
                  fault="400 from Vault: once on the read, twice on the write",
                  stopped_with=error or "(repeated, then stored)", converged=converged, kv_versions=stored,
                  root_issuers="-", lost=0, secrets_left_on_disk=0)
    assert error is None, error
    assert repeated == 3 and version == 1 and stored == 1, (answers, version, stored)
    assert other_error is not None and "invalid request" in other_error, other_error
    assert len(answers) == 4 and stored_after == 1, (answers, stored_after)
