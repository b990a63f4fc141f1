import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.policy import (
    PolicyParseError,
    canonical_policy,
    grants,
    merge_policies,
    render_rules,
    same_policy,
)

GUIDE = '''path "secret/data/istioca" {
capabilities = ["read", "list"]
}
path "istioca/cert/*" {
capabilities = ["read", "list"]
}
path "pki/cert/ca" {
capabilities = ["read", "list"]
}
'''


def test_guide_policy_parses():
    assert canonical_policy(GUIDE) == {
        "secret/data/istioca": {"capabilities": ["list", "read"]},
        "istioca/cert/*": {"capabilities": ["list", "read"]},
        "pki/cert/ca": {"capabilities": ["list", "read"]},
    }


def test_order_spacing_comments_and_repeats_do_not_matter():
    other = ('/* block */ path "pki/cert/ca" { capabilities = ["list"] } // tail\n'
             'path "pki/cert/ca" {capabilities=["read","read"]}\n'
             '# hash\npath "istioca/cert/*" { capabilities = ["list", "read"] }\n'
             'path "secret/data/istioca" { capabilities = ["read", "list"], }')
    assert same_policy(GUIDE, other)


def test_meaningful_differences_matter():
    assert not same_policy(GUIDE, GUIDE.replace('"list"]\n}\npath "pki', '"list", "update"]\n}\npath "pki'))
    assert not same_policy(GUIDE, GUIDE.replace("pki/cert/ca", "pki/cert/*"))
    with_params = 'path "a" { capabilities = ["update"]\n allowed_parameters = { "ttl" = ["1h"] } }'
    assert not same_policy(with_params, 'path "a" { capabilities = ["update"] }')
    assert same_policy(with_params,
                       'path "a" {\n capabilities = ["update"]\n allowed_parameters = {\n"ttl" = ["1h"]\n}\n}')


def test_json_policy_equals_hcl():
    assert same_policy('{"path": {"pki/cert/ca": {"capabilities": ["read"]}}}',
                       'path "pki/cert/ca" { capabilities = ["read"] }')


def test_heredoc_strings():
    assert canonical_policy('path <<EOT\npki/cert/ca\nEOT\n { capabilities = ["read"] }') == {
        "pki/cert/ca": {"capabilities": ["read"]}}


def test_unparseable_text_falls_back_to_whitespace_insensitive_compare():
    with pytest.raises(PolicyParseError):
        canonical_policy('path "x" { capabilities = ["read" }')
    assert same_policy('path "x" {capabilities = ["read" }', 'path "x" { capabilities = ["read" }')
    assert not same_policy('path "x" {capabilities = ["read" }', 'path "y" { capabilities = ["read" }')


@pytest.mark.parametrize("text, found", [
    ('name = "x"', "'name'"),
    ('path = "x"', "'path'"),  # an attribute named path, not a block
    ('key "x" { capabilities = ["read"] }', "'key'"),  # a block with one label, not named path
    ('path { capabilities = ["read"] }', "'path'"),  # a path block without its label
    ('path "a" "b" { capabilities = ["read"] }', "'path'"),  # two labels
])
def test_non_path_blocks_are_refused_by_the_parser(text, found):
    """Issue #16's surviving mutant: each of the three conditions alone refuses the item."""
    with pytest.raises(PolicyParseError, match=r"only 'path \"<path>\" \{ ... \}' blocks belong in a policy "
                                               r"\(found %s\)" % found):
        canonical_policy('path "ok" { capabilities = ["read"] }\n' + text)


@pytest.mark.parametrize("setting", ["min_wrapping_ttl", "max_wrapping_ttl"])
def test_a_different_value_of_a_setting_is_a_different_policy(setting):
    """Issue #16's surviving mutant (a value read as None): '1m' and '5m' must not compare equal."""
    one = 'path "a" { capabilities = ["read"]\n %s = "1m" }' % setting
    assert canonical_policy(one) == {"a": {"capabilities": ["read"], setting: "1m"}}
    assert not same_policy(one, one.replace('"1m"', '"5m"'))
    assert same_policy(one, 'path "a" {\n  %s = "1m"\n  capabilities = ["read"]\n}' % setting)


def test_render_rules_is_canonical_and_round_trips():
    text = render_rules([{"path": "pki/cert/ca", "capabilities": ["read"]},
                         {"path": "sys/x", "capabilities": ["update"], "required_parameters": ["a"],
                          "allowed_parameters": {"b": []}, "min_wrapping_ttl": None}])
    assert text == ('path "pki/cert/ca" {\n  capabilities = ["read"]\n}\n\n'
                    'path "sys/x" {\n  capabilities = ["update"]\n  allowed_parameters = {\n    "b" = []\n  }\n'
                    '  required_parameters = ["a"]\n}\n')
    assert canonical_policy(text)["sys/x"] == {"capabilities": ["update"], "allowed_parameters": {"b": []},
                                               "required_parameters": ["a"]}


@pytest.mark.parametrize("rules, message", [
    ([], "at least one path"),
    ([{"capabilities": ["read"]}], "rules[0] needs a non-empty 'path'"),
    ([{"path": "a", "capabilities": ["read"]}, {"path": "b"}], "rules[1] (path 'b') needs 'capabilities'"),
    ([{"path": "a", "capabilities": [""]}], "rules[0] (path 'a') needs 'capabilities'"),
])
def test_render_rules_errors(rules, message):
    with pytest.raises(ValueError) as err:
        render_rules(rules)
    assert message in str(err.value)


# ---------------------------------------------------------------------------------------------------------
# what a policy grants on a path (Vault's ACL: exact rule first, else the one matching glob of highest priority)
# ---------------------------------------------------------------------------------------------------------

def _grants(text, path, capability="read"):
    return grants(canonical_policy(text), path, capability)


def test_guide_policy_grants_the_four_reads():
    for path in ("secret/data/istioca", "istioca/cert/ca", "istioca/cert/ca_chain", "pki/cert/ca"):
        assert _grants(GUIDE, path)[0], path
    assert _grants(GUIDE, "istioca/cert/ca") == (True, "istioca/cert/*", ["list", "read"])
    assert _grants(GUIDE, "secret/data/istioca-east") == (False, None, [])
    assert not _grants(GUIDE, "secret/data/istioca", "update")[0]


@pytest.mark.parametrize("text, path, expected, rule", [
    # exact beats glob, even when the glob grants more
    ('path "secret/*" { capabilities = ["read"] }\npath "secret/data/x" { capabilities = ["list"] }',
     "secret/data/x", False, "secret/data/x"),
    # the longer glob wins and capabilities of matching rules do not add up
    ('path "secret/*" { capabilities = ["read"] }\npath "secret/data/*" { capabilities = ["list"] }',
     "secret/data/x", False, "secret/data/*"),
    # a glob is a prefix of the last segment too
    ('path "secret/data/ist*" { capabilities = ["read"] }', "secret/data/istioca", True, "secret/data/ist*"),
    ('path "secret/data/ist*" { capabilities = ["read"] }', "secret/data/other", False, None),
    # + is exactly one segment
    ('path "secret/+/istioca" { capabilities = ["read"] }', "secret/data/istioca", True, "secret/+/istioca"),
    ('path "secret/+/istioca" { capabilities = ["read"] }', "secret/a/b/istioca", False, None),
    ('path "+/cert/ca" { capabilities = ["read"] }', "istioca/cert/ca_chain", False, None),
    # a later first wildcard wins over an earlier one
    ('path "+/data/istioca" { capabilities = ["deny"] }\npath "secret/+/istioca" { capabilities = ["read"] }',
     "secret/data/istioca", True, "secret/+/istioca"),
    # not ending in * wins over ending in *
    ('path "secret/+/*" { capabilities = ["read"] }\npath "secret/+/istioca" { capabilities = ["deny"] }',
     "secret/data/istioca", False, "secret/+/istioca"),
    # deny in the applying rule refuses, whatever else it lists
    ('path "secret/data/istioca" { capabilities = ["read", "deny"] }', "secret/data/istioca", False,
     "secret/data/istioca"),
])
def test_vault_acl_rule_selection(text, path, expected, rule):
    granted, applied, _caps = _grants(text, path)
    assert (granted, applied) == (expected, rule)


def test_policies_merge_per_path_string_only():
    named = canonical_policy('path "secret/data/istioca" { capabilities = ["read"] }')
    default = canonical_policy('path "secret/data/istioca" { capabilities = ["deny"] }\n'
                               'path "secret/*" { capabilities = ["read"] }')
    merged = merge_policies(named, default)
    assert grants(merged, "secret/data/istioca") == (False, "secret/data/istioca", ["deny", "read"])
    assert grants(merged, "secret/data/other")[0] is True


# ---------------------------------------------------------------------------------------------------------
# the parser: what it accepts, what it refuses and what its errors say
# ---------------------------------------------------------------------------------------------------------

def test_an_unexpected_character_is_reported_with_its_line():
    text = '# header\npath "a" {\n  capabilities = ["read"];\n}\n'
    with pytest.raises(PolicyParseError, match=r"^unexpected character ';' on line 3$"):
        canonical_policy(text)


@pytest.mark.parametrize("text, message", [
    ('path "a" x { capabilities = ["read"] }', r"^expected \{ but found 'x'$"),
    ('path "a" [ capabilities = ["read"] }', r"^expected \{ but found '\['$"),
    ('path "a"', r"^expected \{ but found None$"),
    ('path "a" { capabilities = ["read"] } }', r"^expected a key but found '\}'$"),
])
def test_structural_errors_say_what_was_expected(text, message):
    with pytest.raises(PolicyParseError, match=message):
        canonical_policy(text)


def test_settings_may_use_colons_numbers_bare_words_and_heredocs():
    text = ('path "a" {\n  capabilities: ["read"]\n  max_wrapping_ttl = 3600\n  flag = true\n'
            '  note = <<EOT\nline one\nline two \nEOT\n}\n')
    assert canonical_policy(text) == {"a": {"capabilities": ["read"], "max_wrapping_ttl": "3600", "flag": "true",
                                            "note": "line one\nline two "}}


def test_json_policy_with_a_list_of_settings_per_path():
    text = '{"path": {"a": [{"capabilities": ["read"]}, {"capabilities": ["update"]}]}}'
    assert canonical_policy(text) == {"a": {"capabilities": ["read"]}}  # the first entry is the one read


def test_render_rules_writes_nested_settings_and_booleans_as_hcl():
    text = render_rules([{"path": "a", "capabilities": ["update"],
                          "allowed_parameters": {"ttl": ["1h"], "format": {"pem": True, "der": False}}}])
    assert text == ('path "a" {\n'
                    '  capabilities = ["update"]\n'
                    '  allowed_parameters = {\n'
                    '    "format" = {\n'
                    '      "der" = false\n'
                    '      "pem" = true\n'
                    '    }\n'
                    '    "ttl" = ["1h"]\n'
                    '  }\n'
                    '}\n')


@pytest.mark.parametrize("patterns, path, winner", [
    (["a/+/cc", "a/b/+"], "a/b/cc", "a/b/+"),  # the first wildcard later wins, though shorter
    (["a/+/c/+", "a/b/+/d"], "a/b/c/d", "a/b/+/d"),  # the FIRST '+' counts, not the last
    (["a/*", "a/+/c"], "a/b/c", "a/+/c"),  # same first wildcard: not ending in '*' wins
    (["a/+/+/dddd/+", "a/+/c/+/e"], "a/b/c/dddd/e", "a/+/c/+/e"),  # then fewer '+', though shorter
])
def test_rule_priority_of_wildcards(patterns, path, winner):
    text = "".join('path "%s" { capabilities = ["read"] }\n' % pattern for pattern in patterns)
    assert _grants(text, path) == (True, winner, ["read"])
    reversed_text = "".join('path "%s" { capabilities = ["read"] }\n' % pattern for pattern in reversed(patterns))
    assert _grants(reversed_text, path)[1] == winner


def test_segment_wildcards_and_prefixes_match_whole_segments():
    text = 'path "secret/data/ist*" { capabilities = ["read"] }\npath "a/+" { capabilities = ["read"] }\n'
    assert _grants(text, "secret/data/istioca")[0]
    assert _grants(text, "secret/data/other") == (False, None, [])
    assert _grants(text, "a/b") == (True, "a/+", ["read"])
    assert _grants(text, "a/b/c") == (False, None, [])  # '+' is one segment, not more
    assert _grants('path "a/b/c*" { capabilities = ["read"] }', "a/b") == (False, None, [])


def test_the_requested_path_loses_its_surrounding_slashes_only():
    text = 'path "pki/cert/ca" { capabilities = ["read"] }\npath "a/*" { capabilities = ["list"] }\n'
    assert _grants(text, "/pki/cert/ca/") == (True, "pki/cert/ca", ["read"])
    # a requested path ending in '*' is a path like any other: the rule "a/*" is a prefix rule, never exact
    assert _grants(text + 'path "a/+" { capabilities = ["read"] }\n', "a/*") == (True, "a/+", ["read"])
