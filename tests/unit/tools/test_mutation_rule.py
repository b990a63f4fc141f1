"""tools/mutation.py's rule for message-only mutants (issue 16, point 6): the mutants it leaves out of the mutation
score change nothing but the literal text of an error or warning message; everything else is scored."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(REPO, "tools"))
import mutation  # noqa: E402

ORIG = '''def check(value, what="duration"):
    if value < 0:
        raise ValueError("%s must not be negative (got %r)" % (what, value))
    if value > 10:
        raise ValueError(f"{what} is too long", "code")
    if value == 5:
        self.warnings.append("five is %s" % ", ".join(["odd", "small"]))
    if value == 6:
        module.fail_json(msg="six {0}".format(value), reason="six")
    return {"value": value, "unit": "s"}
'''


def _mutant(old, new):
    assert ORIG.count(old) == 1, old
    return ORIG.replace(old, new)


@pytest.mark.parametrize("old, new", [
    ('"%s must not be negative (got %r)"', '"XX%s must not be negative (got %r)XX"'),
    ('", ".join', '"XX, XX".join'),
    ('"odd"', '"XXoddXX"'),
    ('"five is %s"', '"FIVE IS %s"'),
    ('msg="six {0}"', 'msg="SIX {0}"'),
    ('{what} is too long', '{what} IS TOO LONG'),
])
def test_message_text_only_is_excluded(old, new):
    assert mutation.message_only(ORIG, _mutant(old, new))


@pytest.mark.parametrize("old, new", [
    # the format itself breaks: another exception than the one raised
    ('"%s must not be negative (got %r)"', '"%S MUST NOT BE NEGATIVE (GOT %R)"'),
    ('msg="six {0}"', 'msg="six {0!r}"'),
    # not only a literal: the message says something else, or the behaviour differs
    ('% (what, value))', '% (None, value))'),
    ('raise ValueError("%s must', 'raise ValueError(None) or ("%s must'),
    ('if value < 0', 'if value <= 0'),
    # literals that are not the message text
    ('what="duration"', 'what="XXdurationXX"'),
    ('"code")', '"XXcodeXX")'),
    ('reason="six"', 'reason="XXsixXX"'),
    ('"unit": "s"', '"unit": "XXsXX"'),
])
def test_everything_else_counts(old, new):
    assert not mutation.message_only(ORIG, _mutant(old, new))


def test_no_change_is_not_a_message_only_mutant():
    assert not mutation.message_only(ORIG, ORIG)


def test_the_vault_clients_action_words_only_its_errors():
    orig = ('def f(self):\n'
            '    return self.client.write("pki/root", {}, action="generate a root CA in", capability="update")\n')
    assert mutation.message_only(orig, orig.replace('"generate a root CA in"', '"XXgenerate a root CA inXX"'))
    assert not mutation.message_only(orig, orig.replace('"update"', '"XXupdateXX"'))
    assert not mutation.message_only(orig, orig.replace('"pki/root"', '"XXpki/rootXX"'))
    other = orig.replace("self.client.write", "self.result.update")
    assert not mutation.message_only(other, other.replace('"generate a root CA in"', '"XXgenerate a root CA inXX"'))


def test_the_details_of_the_bundle_checks_are_messages():
    orig = ('def f(report, bad, info):\n'
            '    report.add("chains_to_root", False, f"no chain: {bad or \'no candidate issuer\'}")\n'
            '    report.skip("ca_key_parses", "ca-key.pem is empty")\n'
            '    report.add("serial", True, "serial %s" % info["serial"])\n')
    for old, new in (("'no candidate issuer'", "'XXno candidate issuerXX'"),
                     ('"ca-key.pem is empty"', '"CA-KEY.PEM IS EMPTY"')):
        assert mutation.message_only(orig, orig.replace(old, new)), new
    for old, new in (('"chains_to_root"', '"XXchains_to_rootXX"'), ('["serial"]', '["XXserialXX"]')):
        assert not mutation.message_only(orig, orig.replace(old, new)), new


def test_a_resumed_run_tests_again_only_the_mutants_left_alive(tmp_path, monkeypatch):
    source = tmp_path / "f.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(mutation, "REPO", str(tmp_path))
    previous = {"f.py": {"sha256": mutation.source_hash("f.py"),
                         "mutants": {"m__mutmut_1": "killed", "m__mutmut_2": "survived", "m__mutmut_3": "no tests",
                                     "m__mutmut_4": "timeout"}}}
    assert mutation.resume_names(previous, ["f.py"]) == ["m__mutmut_2", "m__mutmut_3", "m__mutmut_4"]


def test_a_resumed_run_refuses_a_file_changed_since(tmp_path, monkeypatch):
    source = tmp_path / "f.py"
    source.write_text("x = 1\n")
    monkeypatch.setattr(mutation, "REPO", str(tmp_path))
    previous = {"f.py": {"sha256": mutation.source_hash("f.py"), "mutants": {"m__mutmut_1": "survived"}}}
    source.write_text("x = 2\n")
    with pytest.raises(SystemExit, match="changed since"):
        mutation.resume_names(previous, ["f.py"])
    with pytest.raises(SystemExit, match="not mutated"):
        mutation.resume_names(previous, ["g.py"])


def test_the_interval_of_a_sampled_score():
    low, high = mutation.wilson(360, 400)
    assert 86.6 < low < 86.7 and 92.5 < high < 92.6  # 90 % measured on 400: 86.7-92.6 %
    assert mutation.wilson(0, 0) == (0.0, 100.0)


def test_the_messages_of_the_diagnose_findings_are_messages_their_names_are_not():
    orig = ('def f(self, mount, facts):\n'
            '    self.found.warn("root_ca", "%s: plan the rotation." % facts)\n'
            '    self.found.problem("mounts", "no auth method at \'auth/%s/\'" % mount)\n'
            '    self.found.ok("policy", "grants " + ", ".join(["a", "b"]))\n'
            '    self.found.skip("target", "no target given")\n'
            '    self.module.warn("cannot revoke")\n')
    for old, new in (('"%s: plan the rotation."', '"XX%s: plan the rotation.XX"'),
                     ("\"no auth method at 'auth/%s/'\"", "\"XXno auth method at 'auth/%s/'XX\""),
                     ('"a"', '"XXaXX"'), ('"no target given"', '"NO TARGET GIVEN"'),
                     ('"cannot revoke"', '"XXcannot revokeXX"')):
        assert mutation.message_only(orig, orig.replace(old, new)), new
    for old, new in (('"root_ca"', '"XXroot_caXX"'), ('"mounts"', '"XXmountsXX"'), ('"policy"', '"XXpolicyXX"'),
                     ('"target"', '"XXtargetXX"'), ('"%s: plan the rotation."', '"%S: PLAN THE ROTATION."')):
        assert not mutation.message_only(orig, orig.replace(old, new)), new
