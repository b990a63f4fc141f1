"""Five playbook runs of the role at once against a fresh OpenBao (raft storage) and one cluster: the
shape of AWX job templates launched together.

At the end: exactly one root (one issuer in the root mount); one default intermediate, signed by that
root, whose key is the only version of the KV secret; every run either succeeded or failed with a
message that names the conflict; and a further run changes nothing."""

import re

import pytest
from relharness import VaultState, contains_all

from harness.playbook import role_play

pytestmark = pytest.mark.reliability_slow

RUNS = 5
# What a run that lost a race may say instead of succeeding: it must name the conflict.
CONFLICT = re.compile(r"another (run|writer)|conflict|concurrent|check-and-set|409", re.I)


def test_five_concurrent_runs_leave_one_root_one_key(raft_bao, cluster, ansible, report):
    role_vars = {"istio_vault_ca_vault": {"url": raft_bao.url, "token": raft_bao.token},
                 "istio_vault_ca_kubeconfig": cluster.kubeconfig,
                 "istio_vault_ca_k8s_token_reviewer": {"create": True}}
    cp_before = cluster.controlplane()
    mark = raft_bao.audit.mark()
    started = [ansible.start(role_play(role_vars)) for _run in range(RUNS)]
    runs = [b.wait(900) for b in started]

    succeeded = [r for r in runs if r.rc == 0]
    failed = [r for r in runs if r.rc != 0]
    clear = [r for r in failed if r.failed_msgs() and all(CONFLICT.search(m or "") for m in r.failed_msgs())]
    generated = [p for _op, p in raft_bao.audit.writes(since=mark) if p.endswith("/intermediate/generate/exported")]
    roots_generated = [p for _op, p in raft_bao.audit.writes(since=mark) if p.endswith("/root/generate/internal")]
    state = VaultState(raft_bao)
    final = state.snapshot()

    discarded = sum(1 for r in runs for res in r.results if res["action"].endswith("vault_pki_root")
                    and any("this run discarded the root it generated" in w
                            for w in res["result"].get("warnings") or []))
    # What each run's intermediate task did (issue, resume, none...) and said: the story behind the counts.
    intermediate_actions = ["%s%s%s" % (
        res["result"].get("action"),
        " because %s" % "; ".join(res["result"].get("reasons") or []) if res["result"].get("action") == "issue" else "",
        " (%s)" % "; ".join(w[:120] for w in res["result"].get("warnings") or []) if res["result"].get("warnings")
        else "")
        for r in runs for res in r.results if res["action"].endswith("vault_pki_intermediate")]
    rerun = ansible.run(role_play(role_vars))
    rerun_changed = rerun.recap().get("changed") if rerun.rc == 0 else "failed"
    cp_after = cluster.controlplane()
    report.metric("concurrency", runs=RUNS, succeeded=len(succeeded), conflicts=len(clear),
                  roots=final["root_issuers"], intermediates=int(final["int_id"] is not None),
                  kv_versions=final["kv_version"], rerun_changed=rerun_changed)
    report.detail("Concurrency", runs=RUNS, succeeded=len(succeeded),
                  failed_messages=[m[:160] for r in failed for m in r.failed_msgs()],
                  root_generate_calls=len(roots_generated), roots_discarded_by_losers=discarded,
                  intermediate_generate_calls=len(generated),
                  intermediate_actions=intermediate_actions,
                  root_issuers=final["root_issuers"], intermediate_keys_in_mount=final["int_keys"],
                  kv_versions=final["kv_version"], rerun_changed=rerun_changed)

    assert len(succeeded) + len(clear) == RUNS, [r.failed_msgs() for r in failed]
    assert succeeded, runs
    assert final["root_issuers"] == 1, final
    assert discarded == len(roots_generated) - 1, (discarded, len(roots_generated))
    assert final["int_id"] is not None and final["int_signed_by_root"], final
    assert final["kv_version"] == 1, (final["kv_version"], intermediate_actions)
    assert final["key_matches"], final
    assert not contains_all(cp_before["spec"], cp_after["spec"])
    assert rerun.rc == 0, rerun
    assert rerun_changed == 0, rerun
