"""No path escapes its mount: every hostile value x every path-forming option of every module is refused
before the first request, with an error that names the option and the value, and the real OpenBao's audit
log shows zero requests for the case. The cases run the modules' real code in this process
(harness/hostile.py) against a real server; the role's variables are checked through a real playbook.
"""

import pytest

from harness.hostile import MODULES, NOT_VAULT, SHARED, cases, run_module, set_option, try_case

CASES = cases()
OPTIONS = sorted(set((module, option) for module, option, _kind, _value in CASES))


@pytest.fixture(scope="module")
def conn(bao):
    return {"url": bao.url, "token": bao.token}


@pytest.mark.parametrize("module,option", OPTIONS, ids=["%s-%s" % o for o in OPTIONS])
def test_hostile_values_are_refused_before_any_request(bao, conn, module, option):
    """Each hostile value of harness/hostile.py for this option: the module fails naming the option, and the
    audit log shows no request at all for the case."""
    wrong = []
    values = [value for m, o, _kind, value in CASES if (m, o) == (module, option)]
    for value in values:
        refused, sent, msg = try_case(bao, module, option, value)
        if not refused or sent:
            wrong.append("%r: sent=%s msg=%s" % (value, sent, msg[:200]))
    assert len(values) >= 21
    assert not wrong, "%d of %d values not refused cleanly:\n%s" % (len(wrong), len(values), "\n".join(wrong))


def test_the_table_covers_every_declared_path_option(monkeypatch):
    """The hand-written table names at least every option a module declares as path-forming (a module that
    declares one the table lacks would go untested). The declaration is read from the module's own main(): its
    MeshPkiModule is replaced by a recorder of the path_options it is given (CA layout ones included)."""
    import importlib

    class Declared(Exception):
        pass

    class Recorder(object):
        def __init__(self, argument_spec, vault=True, path_options=None, **kwargs):
            raise Declared(dict(path_options or {}), vault)

    for module, (_base, options) in MODULES.items():
        code = importlib.import_module("ansible_collections.meshpki.vault_ca.plugins.modules." + module)
        monkeypatch.setattr(code, "MeshPkiModule", Recorder)
        with pytest.raises(Declared) as caught:
            code.main()
        declared, vault = caught.value.args
        table = set(options) | (set(SHARED) if vault else set())
        assert set(declared) <= table, (module, set(declared) - table)
        assert (module in NOT_VAULT) == (not vault), module


@pytest.mark.parametrize("module,option,value,message", [
    # The three: a policy removal that deletes a secrets engine, a role that does the same, and the
    # role's kv_path that wrote the intermediate key outside the KV mount.
    ("vault_policy", "name", "../../mounts/victim", "name '../../mounts/victim' is not a single Vault name"),
    ("vault_k8s_role", "name", "../../../sys/mounts/x", "name '../../../sys/mounts/x' is not a single Vault name"),
    ("vault_pki_intermediate", "kv_path", "../../cubbyhole/stolen",
     "kv_path '../../cubbyhole/stolen' is not a KV secret path inside its mount: the segment '..'"),
])
def test_the_reported_traversals_are_refused_and_the_victim_survives(bao, conn, module, option, value, message):
    if "victim/" not in bao.api("GET", "sys/mounts")["data"]:
        bao.api("POST", "sys/mounts/victim", {"type": "kv", "options": {"version": "2"}})
    base, _options = MODULES[module]
    args = set_option(dict(base, **conn), option, value)
    if module == "vault_policy":
        args["state"] = "absent"
    mark = bao.audit.mark()
    result = run_module(module, args)
    assert result.get("failed") and message in result["msg"], result
    assert bao.audit.requests(mark) == []
    assert "victim/" in bao.api("GET", "sys/mounts")["data"], "the victim mount is gone"


def test_values_that_pass_are_percent_encoded_not_trusted(bao, conn):
    """A name that passes validation but holds characters a URL reads as syntax elsewhere (':' '@' '+') reaches
    exactly its own path: the audit log shows the request at sys/policies/acl/<name>, nothing else."""
    name = "team:a+b@c"
    mark = bao.audit.mark()
    result = run_module("vault_policy", dict(conn, name=name, policy='path "x" { capabilities = ["read"] }'))
    assert not result.get("failed"), result
    assert bao.audit.requests(mark) == [("read", "sys/policies/acl/" + name), ("update", "sys/policies/acl/" + name)]


def test_role_variables_are_checked_first_and_named(playbook, bao, tmp_path):
    """Through the role: a hostile variable fails the play on the first task, naming the role variable, and
    Vault sees no request at all (the url points at the real server)."""
    mark = bao.audit.mark()
    run = playbook([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "roles": [{"role": "meshpki.vault_ca.istio_vault_ca", "vars": {
            "istio_vault_ca_vault": {"url": bao.url, "token": bao.token},
            "istio_vault_ca_kv_path": "../../cubbyhole/stolen",
            "istio_vault_ca_policy_name": "a/b",
            "istio_vault_ca_intermediate_common_name": "Intermediate\u202e CA",
            "istio_vault_ca_manifest_path": str(tmp_path / "missing.yaml"),
        }}],
    }])
    assert run.rc != 0
    failed = [r for r in run.results if r["status"] == "failed"]
    assert len(failed) == 1, run
    msg = failed[0]["result"]["msg"]
    assert "istio_vault_ca_kv_path '../../cubbyhole/stolen' is not a KV secret path" in msg, msg
    assert "istio_vault_ca_policy_name 'a/b' is not a single Vault name" in msg, msg
    assert "istio_vault_ca_intermediate_common_name" in msg and "U+202E" in msg, msg
    assert bao.audit.requests(mark) == []
