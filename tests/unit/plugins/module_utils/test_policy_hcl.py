import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils._policy_hcl import (
    PolicyParseError,
    canonical_policy,
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


def test_non_path_blocks_are_refused_by_the_parser():
    with pytest.raises(PolicyParseError):
        canonical_policy('name = "x"')


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
