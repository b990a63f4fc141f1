"""Vault HA: a real 3-node OpenBao raft cluster on 127.0.0.1; the active node is SIGKILLed in the middle of
a converge, right after the intermediate key was stored.

What OpenBao 2.7 does (measured here): standbys serve reads from their own, slightly lagging copy and
forward writes to the active node; the connection layer sends back the last X-Vault-Index it saw with
``X-Vault-Inconsistent: forward-active-node``, so a standby that lags forwards instead of answering
stale (checked first: a mount enabled and used at once, through a load balancer, never fails). While
no node is active (the election after the kill) a standby answers a write with a 307 to the dead node's
api_addr; following it fails to connect. ``url`` is one address; the collection does not fail over
between addresses by itself.

Two ways a client reaches the cluster:

``load balancer``
    ``url`` is a load balancer over the three nodes (as a Kubernetes Service over every unsealed pod):
    each request goes to the next node that accepts the connection.
``active node``
    ``url`` is the active node itself; after the kill the operator points the next run at the new one.

Either the run completes (retries reached the new active node), or it fails with a message that says
what happened, and the next run converges. The test accepts both, asserts the state afterwards (one
root, the key stored once and installed, the intermediate signed by the root) and reports which.
"""

import time

import pytest
from relharness import ClusterView, FaultProxy, RaftCluster, VaultState, wait_for

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.kv2 import KvSecret, write_secret
from harness.playbook import role_play

pytestmark = pytest.mark.reliability_slow

KEY_STORED = r"^secret/data/%s$"


def _vars(url, token, cluster, suffix="", manifest=None):
    role_vars = {"istio_vault_ca_vault": {"url": url, "token": token},
                 "istio_vault_ca_kubeconfig": cluster.kubeconfig,
                 "istio_vault_ca_k8s_token_reviewer": {"create": True}}
    if suffix:
        role_vars.update(istio_vault_ca_intermediate_mount="istioca" + suffix,
                         istio_vault_ca_kv_path="istioca" + suffix,
                         istio_vault_ca_k8s_auth_mount="kubernetes" + suffix,
                         istio_vault_ca_policy_name="istioca" + suffix, istio_vault_ca_target="helm_values",
                         istio_vault_ca_manifest_path=str(manifest))
    return role_vars


def _outcome(run, clear_words):
    """('completed' | 'failed clearly' | 'failed unclearly', message)."""
    if run.rc == 0:
        return "completed", ""
    msgs = run.failed_msgs()
    msg = msgs[-1] if msgs else run.output[-500:]
    clear = any(word in msg for word in clear_words) and "re-run" in msg.lower()
    return ("failed clearly" if clear else "failed unclearly"), msg


def _converged(state):
    snap = state.snapshot()
    return (snap["root_issuers"] == 1 and snap["kv_version"] == 1 and snap["key_matches"]
            and snap["int_signed_by_root"]), snap


@pytest.fixture
def ha(tmp_path):
    cluster = RaftCluster(tmp_path / "ha").start()
    yield cluster
    cluster.stop()


def _client(url, token, consistent=True):
    conn = VaultConnection.from_params({"url": url, "retries": 3})
    client = VaultClient(conn.client(token), conn)
    if not consistent:  # what the connection did before read-your-writes: no index sent back
        client.hvac.session.hooks["response"] = []
    return client


def _mount_then_write(url, token, suffix, consistent):
    """Enable a KV (v1: no storage upgrade) mount and write in it at once, through ``url``: the error, or None."""
    client = _client(url, token, consistent)
    try:
        client.write("sys/mounts/ryw-" + suffix, {"type": "kv", "options": {"version": "1"}},
                     action="enable kv secrets engine")
        client.write("ryw-%s/x" % suffix, {"a": "b"}, action="write the secret")
        return None
    except MeshPkiError as e:
        return str(e)


def _kv2_then_store(url, token, suffix):
    """What vault_pki_intermediate does on a first run: enable KV v2, then store the key with check-and-set."""
    client = _client(url, token)
    try:
        client.write("sys/mounts/kv2-" + suffix, {"type": "kv", "options": {"version": "2"}},
                     action="enable kv secrets engine")
        write_secret(client, KvSecret("kv2-" + suffix, "istioca"), {"ca-key.pem": "x"})
        return None
    except MeshPkiError as e:
        return str(e)


def test_active_node_killed_mid_converge(ha, cluster, ansible, report, tmp_path):
    view = ClusterView(ha)
    outcomes = []

    # 0. read-your-writes through a load balancer over the nodes: a mount enabled through the active node is
    #    used at once through a standby (the next request goes to the next node)
    lb = FaultProxy([node["url"] for node in ha.nodes]).start()
    tries = 12
    with_index = [_mount_then_write(lb.url, ha.token, "i%d" % i, True) for i in range(tries)]
    without = [_mount_then_write(lb.url, ha.token, "n%d" % i, False) for i in range(tries)]
    kv2 = [_kv2_then_store(lb.url, ha.token, "s%d" % i) for i in range(tries)]
    report.detail("Vault HA", client_reaches="load balancer, no failure",
                  outcome="enable a mount then write in it at once, %d times: %d failed with read-your-writes "
                          "(X-Vault-Index), %d failed without; enable KV v2 then store a key at once: %d failed"
                          % (tries, sum(1 for e in with_index if e), sum(1 for e in without if e),
                             sum(1 for e in kv2 if e)),
                  message=next((e for e in without if e), "")[:300])
    assert not [e for e in with_index if e], with_index
    assert not [e for e in kv2 if e], kv2

    # 1. through the load balancer over the three nodes
    killed = {}

    def kill_active():
        killed["node"] = ha.active()
        killed["at"] = time.time()
        ha.kill(killed["node"])

    lb.arm("POST|PUT", KEY_STORED % "istioca", kill_active, drop=False)
    run = ansible.run(role_play(_vars(lb.url, ha.token, cluster)))
    assert killed, ("the active node was never killed", run)
    new_active = wait_for(ha.active, 90, interval=0.2, what="a new active node")
    election = time.time() - killed["at"]
    how, msg = _outcome(run, ("redirected the request to", "is unreachable", "sealed or on standby"))
    again = ansible.run(role_play(_vars(lb.url, ha.token, cluster))) if run.rc != 0 else None
    ok, snap = _converged(VaultState(view))
    outcomes.append(("load balancer", how, msg, again, ok, snap, election))
    assert new_active is not killed["node"]

    # the killed node comes back and rejoins as a standby
    ha.start_node(killed["node"])
    ha.unseal(killed["node"])
    wait_for(ha._all_voters, 90, interval=0.5, what="three voters again")

    # 2. url is the active node itself; the next run is pointed at the new active node
    active = ha.active()
    # a pass-through to that one node, only to fire the kill at the boundary: it closes every connection after
    # one answer and stops listening with the node, so the client meets a refused connection, as with the node
    direct = FaultProxy([active["url"]], keepalive=False).start()
    killed.clear()
    direct.arm("POST|PUT", KEY_STORED % "istioca-east", lambda: (kill_active(), direct.stop()), drop=False)
    manifest = tmp_path / "east-values.yaml"
    run = ansible.run(role_play(_vars(direct.url, ha.token, cluster, "-east", manifest)))
    assert killed, ("the active node was never killed", run)
    new_active = wait_for(ha.active, 90, interval=0.2, what="a new active node")
    election = time.time() - killed["at"]
    how, msg = _outcome(run, ("is unreachable",))
    again = ansible.run(role_play(_vars(new_active["url"], ha.token, cluster, "-east", manifest))) \
        if run.rc != 0 else None
    ok, snap = _converged(VaultState(view, int_mount="istioca-east", kv_path="istioca-east"))
    outcomes.append(("url = the active node", how, msg, again, ok, snap, election))

    for mode, how, msg, again, ok, snap, election in outcomes:
        if how == "completed":
            text = "%s: completed (retries reached the new active node)" % mode
        else:
            next_ok = again is not None and again.rc == 0 and ok
            text = "%s: %s, next run %s" % (mode, how, "converged" if next_ok else "did NOT converge")
        report.metric("ha", outcome=text)
        report.detail("Vault HA", client_reaches=mode, outcome=how, message=msg[:400],
                      next_run=("rc=%s changed=%s" % (again.rc, again.recap().get("changed")) if again else "-"),
                      new_active_after_s=round(election, 1), root_issuers=snap["root_issuers"],
                      kv_versions=snap["kv_version"], key_matches_default_issuer=snap["key_matches"])

    for mode, how, msg, again, ok, snap, _election in outcomes:
        assert how in ("completed", "failed clearly"), (mode, msg)
        if again is not None:
            assert again.rc == 0, (mode, again)
        assert ok, (mode, snap)
