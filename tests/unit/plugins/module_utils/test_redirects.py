"""Redirects only within one origin: the rule, the requests Session (Vault) and the urllib3 pools (Kubernetes),
against loopback servers (a redirector and a recorder on other ports)."""

import pytest
import urllib3

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import RedirectRefused, check_redirect, origin
from ansible_collections.meshpki.vault_ca.plugins.module_utils.kubernetes.client import insecure_warning
from ansible_collections.meshpki.vault_ca.plugins.module_utils.redirects import SameOriginSession, guard_pool_manager
from harness.redirects import Recorder, Redirector


@pytest.mark.parametrize("url, location, same", [
    ("https://vault:8200/v1/x", "/v1/y", True),
    ("https://vault:8200/v1/x", "https://VAULT:8200/v1/y", True),
    ("https://vault/v1/x", "https://vault:443/v1/y", True),
    ("https://vault:8200/v1/x", "http://vault:8200/v1/y", False),
    ("https://vault:8200/v1/x", "https://vault:8201/v1/y", False),
    ("https://vault:8200/v1/x", "//evil:8200/v1/y", False),
    ("http://vault:8200/v1/x", "https://vault:8200/v1/y", False),
])
def test_same_origin_rule(url, location, same):
    if same:
        assert origin(check_redirect(url, location, 307, "Vault", "fix")) == origin(url)
    else:
        with pytest.raises(RedirectRefused, match="Location: "):
            check_redirect(url, location, 307, "Vault", "fix")


@pytest.mark.parametrize("status", [302, 307, 308])
def test_session_refuses_another_origin_before_sending(status):
    with Recorder() as recorder, Redirector(status, recorder.url) as redirector:
        session = SameOriginSession()
        with pytest.raises(RedirectRefused) as caught:
            session.post(redirector.url + "/v1/auth/approle/login", json={"secret_id": "s3cret"},
                         headers={"X-Vault-Token": "t0ken"})
        assert recorder.requests == []
        assert "Location: %s/v1/auth/approle/login" % recorder.url in str(caught.value)
        assert "s3cret" not in str(caught.value) and "t0ken" not in str(caught.value)


def test_session_follows_a_same_origin_redirect():
    with Recorder() as recorder:
        session = SameOriginSession()
        with Redirector(307, "") as redirector:
            redirector.target = redirector.url + "/moved"  # same origin, then a loop: max_redirects stops it
            with pytest.raises(Exception, match="Exceeded 3 redirects"):
                session.get(redirector.url + "/v1/x")
            assert redirector.hits == 4  # the first answer and 3 followed hops
        assert session.get(recorder.url + "/v1/x").status_code == 200


@pytest.mark.parametrize("status", [302, 307, 308])
def test_kubernetes_pools_refuse_another_origin(status):
    with Recorder() as recorder, Redirector(status, recorder.url) as redirector:
        pool = guard_pool_manager(urllib3.PoolManager(), "Point the server elsewhere.")
        with pytest.raises(RedirectRefused, match="Point the server elsewhere"):
            pool.request("PATCH", redirector.url + "/apis/x", body=b"{}", headers={"Authorization": "Bearer b"})
        assert recorder.requests == []
        # the Retry survives the pools being rebuilt and the per-hop copies
        with pytest.raises(RedirectRefused):
            pool.request("GET", redirector.url + "/api")
        assert recorder.requests == []


def test_kubernetes_pools_follow_a_same_origin_redirect():
    with Redirector(307, "") as redirector:
        redirector.target = redirector.url + "/moved"  # same origin, then a loop: the redirect budget stops it
        pool = guard_pool_manager(urllib3.PoolManager(), "fix")
        with pytest.raises(urllib3.exceptions.MaxRetryError, match="redirect"):
            pool.request("GET", redirector.url + "/api")
        assert redirector.hits == 4  # the first answer and 3 followed hops


def test_insecure_warning_names_the_cluster_entry_and_the_file():
    entry = dict(insecure=True, server="https://k8s:6443", cluster="prod", context="admin@prod",
                 kubeconfig="/home/me/.kube/config")
    text = insecure_warning(entry)
    assert "cluster entry 'prod'" in text and "'/home/me/.kube/config'" in text and "insecure-skip-tls-verify" in text
    assert insecure_warning(dict(entry, insecure=False)) is None
