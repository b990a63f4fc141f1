"""Shared mount handling against the real server: enable once, tune only when different, never
convert an engine of another type, nothing written in check mode."""

import uuid

import pytest

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.mounts import (
    ensure_auth_method,
    ensure_secrets_engine,
)


def _mount(bao, path, table="sys/mounts"):
    """The server's own entry for ``path`` in its mount table (or sys/auth), None when nothing is mounted there."""
    return bao.api("GET", table)["data"].get(path + "/")


@pytest.fixture
def client(bao):
    conn = VaultConnection.from_params({"url": bao.url})
    return VaultClient(conn.client(bao.token), conn)


def test_pki_engine_enable_then_tune_then_nothing(bao, client):
    path = "pki-" + uuid.uuid4().hex[:6]
    mark = bao.audit.mark()
    check = ensure_secrets_engine(client, path, "pki", check_mode=True, max_lease_ttl="8760h")
    assert check.changed and check.before is None and bao.audit.writes(since=mark) == []
    assert _mount(bao, path) is None
    first = ensure_secrets_engine(client, path, "pki", check_mode=False, max_lease_ttl="8760h")
    assert first.changed and first.after == {"type": "pki", "max_lease_ttl": 31536000}
    assert bao.audit.writes(since=mark) == [("update", "sys/mounts/" + path)]
    mounted = _mount(bao, path)
    assert mounted["type"] == "pki" and mounted["config"]["max_lease_ttl"] == 31536000
    mark = bao.audit.mark()
    again = ensure_secrets_engine(client, path, "pki", check_mode=False, max_lease_ttl="31536000")
    assert not again.changed and bao.audit.writes(since=mark) == []
    tuned = ensure_secrets_engine(client, path, "pki", check_mode=False, max_lease_ttl="87600h")
    assert tuned.before["max_lease_ttl"] == 31536000 and tuned.after["max_lease_ttl"] == 315360000
    assert bao.audit.writes(since=mark) == [("update", "sys/mounts/%s/tune" % path)]
    assert bao.api("GET", "sys/mounts/%s/tune" % path)["data"]["max_lease_ttl"] == 315360000
    assert _mount(bao, path)["type"] == "pki"


def test_kv_v1_where_v2_is_needed_is_refused(bao, client):
    path = "kv1-" + uuid.uuid4().hex[:6]
    bao.api("POST", "sys/mounts/" + path, {"type": "kv", "options": {"version": "1"}})
    mark = bao.audit.mark()
    with pytest.raises(MeshPkiError) as err:
        ensure_secrets_engine(client, path, "kv", check_mode=False)
    assert "The mount '%s' is a kv v1 secrets engine, but a kv v2 engine is needed there" % path in str(err.value)
    with pytest.raises(MeshPkiError, match="is a kv v1 secrets engine, but a pki engine"):
        ensure_secrets_engine(client, path, "pki", check_mode=False)
    assert bao.audit.writes(since=mark) == []
    kept = _mount(bao, path)  # left as it was, never converted
    assert kept["type"] == "kv" and kept["options"]["version"] == "1"


def test_kv_v2_dev_mount_is_accepted(bao, client):
    mark = bao.audit.mark()
    result = ensure_secrets_engine(client, "secret", "kv", check_mode=False)
    assert not result.changed and result.before == result.after and result.after["type"] == "kv"
    assert bao.audit.writes(since=mark) == []
    secret = _mount(bao, "secret")
    assert secret["type"] == "kv" and secret["options"]["version"] == "2"


def test_auth_method(bao, client):
    path = "kubernetes-" + uuid.uuid4().hex[:6]
    mark = bao.audit.mark()
    assert ensure_auth_method(client, path, "kubernetes", check_mode=True).changed
    assert bao.audit.writes(since=mark) == [] and _mount(bao, path, "sys/auth") is None
    assert ensure_auth_method(client, path, "kubernetes", check_mode=False).changed
    assert bao.audit.writes(since=mark) == [("update", "sys/auth/" + path)]
    assert _mount(bao, path, "sys/auth")["type"] == "kubernetes"
    mark = bao.audit.mark()
    assert not ensure_auth_method(client, path, "kubernetes", check_mode=False).changed
    assert bao.audit.writes(since=mark) == []
    with pytest.raises(MeshPkiError, match="is a kubernetes auth method, but approle is needed"):
        ensure_auth_method(client, path, "approle", check_mode=False)
    assert _mount(bao, path, "sys/auth")["type"] == "kubernetes" and bao.audit.writes(since=mark) == []


def test_bad_ttl_is_refused_before_any_request(bao, client):
    mark = bao.audit.mark()
    with pytest.raises(MeshPkiError, match="max_lease_ttl for mount 'pki' 'forever' is not a duration"):
        ensure_secrets_engine(client, "pki", "pki", check_mode=False, max_lease_ttl="forever")
    assert bao.audit.requests(since=mark) == []
