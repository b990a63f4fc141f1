"""Redirects carrying credentials: a server answers 302/307/308 to another origin (another port, or from https
to http) while a module authenticates with a Vault token, an AppRole secret_id or a kubeconfig bearer token.
Each redirect must be refused with the Location and the fix, and the other origin must receive nothing.
One playbook, one block per case (the cases are built by harness.redirects, shared with the integration test)."""

import pytest

from harness.redirects import cases_play, cross_origin_cases

pytestmark = pytest.mark.reliability_fast


def test_redirects_to_another_origin(tmp_path, ansible, report):
    cases = cross_origin_cases(tmp_path)
    try:
        run = ansible.run(cases_play(cases))
    finally:
        for case in cases:
            case.stop()
    assert run.rc == 0, run

    refused = received = 0
    problems = []
    for case in cases:
        ok, msg, requests = case.outcome(run)
        carried = case.recorder.carrying(case.secret)
        refused += int(ok)
        received += len(requests)
        if not ok or requests:
            problems.append("%s: refused=%s, %d request(s) received (%d with the credential): %r"
                            % (case.name, ok, len(requests), len(carried), msg[:300]))
        report.detail("Redirects", case=case.name, refused=ok, received=len(requests),
                      credential_received=len(carried), message=msg[:250])
    report.metric("redirects", redirects=len(cases), refused=refused, received=received)
    assert refused == len(cases) and received == 0, "\n".join(problems)
