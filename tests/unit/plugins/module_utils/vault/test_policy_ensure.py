# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vault/policy.py ensure_policy (the vault_policy module's logic) against a strict FakeVault: what is read, what is
written (the request bodies), check mode, absent, and inputs refused before the login."""

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.policy import ensure_policy
from ansible_collections.meshpki.vault_ca.plugins.modules.vault_policy import ARGUMENT_SPEC
from harness.fake_vault import FakeVault
from harness.module_stub import ModuleStub

PATH = "sys/policies/acl/istioca"
STORED = '''path "istioca/cert/ca" {
  capabilities = ["read"]
}

path "secret/data/istioca" {
  capabilities = ["read"]
  min_wrapping_ttl = "1m"
}
'''
RULES = [{"path": "istioca/cert/ca", "capabilities": ["read"]},
         {"path": "secret/data/istioca", "capabilities": ["read"], "min_wrapping_ttl": "1m"}]


def stored(text=STORED):
    return {("GET", PATH): {"data": {"name": "istioca", "policy": text}}}


def run(vault, check_mode=False, **params):
    module = ModuleStub(dict({"name": "istioca"}, **params), client=vault, check_mode=check_mode,
                        argument_spec=ARGUMENT_SPEC)
    return module, ensure_policy(module)


def test_a_new_policy_is_written_with_its_canonical_text():
    vault = FakeVault()
    _module, result = run(vault, rules=RULES)
    assert result["changed"] and vault.writes() == [("PUT", PATH)]
    assert vault.body("PUT", PATH) == {"policy": result["policy"]}
    assert 'path "secret/data/istioca" {\n  capabilities = ["read"]\n  min_wrapping_ttl = "1m"\n}\n' in result["policy"]
    assert result["diff"] == {"before": "", "after": result["policy"], "before_header": PATH, "after_header": PATH}


def test_the_same_meaning_in_other_words_is_no_change():
    vault = FakeVault(stored())
    reordered = ('# the same rules\npath "secret/data/istioca" { min_wrapping_ttl = "1m"\n capabilities = ["read", '
                 '"read"] }\npath "istioca/cert/ca" { capabilities = ["read"] }')
    _module, result = run(vault, policy=reordered)
    assert not result["changed"] and vault.writes() == []
    assert result["policy"] == STORED  # what Vault keeps, not the task's text


def test_a_change_only_to_min_wrapping_ttl_is_written():
    """Issue #16's surviving mutant: a rule setting that is not a capability must count as a change."""
    vault = FakeVault(stored())
    rules = [dict(RULES[0]), dict(RULES[1], min_wrapping_ttl="5m")]
    _module, result = run(vault, rules=rules)
    assert result["changed"] and vault.writes() == [("PUT", PATH)]
    assert 'min_wrapping_ttl = "5m"' in vault.body("PUT", PATH)["policy"]
    assert result["diff"]["before"] == STORED and 'min_wrapping_ttl = "5m"' in result["diff"]["after"]


def test_check_mode_reports_the_change_and_writes_nothing():
    vault = FakeVault(stored())
    _module, result = run(vault, check_mode=True, rules=[dict(RULES[0], capabilities=["read", "list"])])
    assert result["changed"] and 'capabilities = ["read", "list"]' in result["policy"]
    assert vault.writes() == [] and vault.paths() == [PATH]


def test_absent_deletes_an_existing_policy_and_nothing_else():
    vault = FakeVault(stored())
    _module, result = run(vault, state="absent")
    assert result["changed"] and vault.writes() == [("DELETE", PATH)]
    assert result["policy"] == "" and result["diff"]["before"] == STORED and result["diff"]["after"] == ""


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_of_a_missing_policy_is_no_change(check_mode):
    vault = FakeVault()
    _module, result = run(vault, check_mode=check_mode, state="absent")
    assert not result["changed"] and vault.writes() == []


def test_check_mode_absent_deletes_nothing():
    vault = FakeVault(stored())
    _module, result = run(vault, check_mode=True, state="absent")
    assert result["changed"] and vault.writes() == []


@pytest.mark.parametrize("params,message", [
    ({"name": "root", "policy": 'path "x" { capabilities = ["read"] }'}, "Refusing to manage the built-in 'root'"),
    ({"name": "default", "state": "absent"}, "Refusing to manage the built-in 'default'"),
    ({"policy": "  \n"}, "Policy 'istioca': policy text is empty"),
    ({"rules": [{"path": "x", "capabilities": []}]}, "Invalid rules for policy 'istioca': rules[0] (path 'x') needs"),
    ({"rules": []}, "Invalid rules for policy 'istioca': rules must list at least one path"),
])
def test_bad_input_fails_before_the_login(params, message):
    vault = FakeVault()
    module = ModuleStub(dict({"name": "istioca"}, **params), client=vault, argument_spec=ARGUMENT_SPEC)
    with pytest.raises(MeshPkiError) as caught:
        ensure_policy(module)
    assert message in str(caught.value)
    assert module.logins == 0 and vault.requests == []


def test_policy_text_gets_a_final_newline():
    vault = FakeVault()
    _module, result = run(vault, policy='path "x" { capabilities = ["read"] }')
    assert vault.body("PUT", PATH) == {"policy": 'path "x" { capabilities = ["read"] }\n'}


@pytest.mark.parametrize("answers, params, message", [
    ({("GET", PATH): 403}, {"rules": RULES},
     "Failed to read policy '%s': permission denied - the token needs 'read' on" % PATH),
    ({**stored(), ("PUT", PATH): 403}, {"rules": RULES[:1]},
     "Failed to write policy '%s': permission denied - the token needs 'create' or 'update' on" % PATH),
    ({**stored(), ("DELETE", PATH): 403}, {"state": "absent"},
     "Failed to delete policy '%s': permission denied - the token needs 'delete' on" % PATH),
])
def test_a_refused_request_says_what_was_tried_and_the_capability_it_needs(answers, params, message):
    with pytest.raises(MeshPkiError, match=message):
        run(FakeVault(answers), **params)


@pytest.mark.parametrize("params", [{"rules": RULES}, {"rules": RULES[:1]}, {"state": "absent"}])
def test_the_result_names_the_policy(params):
    _module, result = run(FakeVault(stored()), **params)
    assert result["name"] == "istioca"
    assert result["diff"]["before_header"] == result["diff"]["after_header"] == PATH


@pytest.mark.parametrize("text", ['path "a" { capabilities = ["read"] }\n', 'path "a" { capabilities = ["read"] }'])
def test_policy_text_gets_exactly_one_final_newline(text):
    vault = FakeVault()
    _module, result = run(vault, policy=text)
    assert vault.body("PUT", PATH) == {"policy": 'path "a" { capabilities = ["read"] }\n'}
    assert result["policy"] == 'path "a" { capabilities = ["read"] }\n'
