import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.meshpki.vault_ca.plugins.filter.istio_ca import FilterModule, istio_ca_policy_rules


def test_guide_values_give_read_on_exactly_the_four_template_paths():
    assert istio_ca_policy_rules("istioca") == [
        {"path": "istioca/cert/ca", "capabilities": ["read"]},
        {"path": "istioca/cert/ca_chain", "capabilities": ["read"]},
        {"path": "pki/cert/ca", "capabilities": ["read"]},
        {"path": "secret/data/istioca", "capabilities": ["read"]},
    ]


def test_per_cluster_paths():
    rules = istio_ca_policy_rules("istioca-east", root_mount="pki", kv_mount="kv", kv_path="istio/east")
    assert [r["path"] for r in rules] == ["istioca-east/cert/ca", "istioca-east/cert/ca_chain", "pki/cert/ca",
                                          "kv/data/istio/east"]


def test_bad_mount_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="istio_ca_policy_rules"):
        istio_ca_policy_rules("istioca", root_mount="istioca")


def test_registered():
    assert FilterModule().filters()["istio_ca_policy_rules"] is istio_ca_policy_rules
