# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Desired istiod env and Vault Agent Injector annotations, computed from Vault paths.

Pure code: no Ansible module object, no network. Bad input raises ``InjectorError`` (a ``ValueError``)
whose message says what is wrong and how to fix it; modules turn it into ``fail_json``.

For the guide's values (mounts ``istioca`` and ``pki``, KV v2 ``secret/istioca`` field ``ca-key.pem``,
role ``istiod``, ``/etc/cacerts-vault``) :func:`build_injection` returns exactly the ``env`` and
``podAnnotations`` of the guide's TSB ControlPlane (golden file in ``tests/unit/plugins/module_utils/golden/``).

Normalisation choices:

* Mounts and paths: surrounding slashes are **stripped** (``vault secrets list`` prints mounts as ``pki/``),
  so ``pki/``, ``/pki`` and ``pki`` are the same mount. Empty segments (``a//b``), ``.``/``..`` segments,
  whitespace, quotes, backslashes and the policy globs ``*`` and ``+`` are **rejected**: the paths go verbatim
  into Go template string literals and into a least-privilege policy.
* The KV field is **escaped** (``\\`` and ``"``) for the Go template string literal; control characters are
  rejected.
* The annotation prefix loses trailing ``/``; the secret volume path is normalised with
  ``posixpath.normpath`` and must not be, contain or sit inside ``/etc/cacerts``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import posixpath
import re

from ansible.module_utils.parsing.convert_bool import boolean

# Annotation prefix of the HashiCorp Vault Agent Injector (vault-k8s).
VAULT_PREFIX = "vault.hashicorp.com"
# Annotation prefix of the OpenBao Agent Injector (openbao-k8s). It is "openbao.openbao.org", NOT
# "openbao.org": the injector's constants read AnnotationAgentInject = "openbao.openbao.org/agent-inject",
# AnnotationOpenbaoRole = "openbao.openbao.org/role", AnnotationOpenbaoSecretVolumePath =
# "openbao.openbao.org/secret-volume-path" (github.com/openbao/openbao-k8s, agent-inject/agent/annotations.go),
# and https://openbao.org/docs/platform/k8s/injector/annotations lists "openbao.openbao.org/agent-inject",
# "openbao.openbao.org/agent-init-first", ...
OPENBAO_PREFIX = "openbao.openbao.org"

# The files istiod reads from ROOT_CA_DIR, in the guide's order.
BUNDLE_FILES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")

# Where the istiod chart mounts the ``cacerts`` secret; the injector's volume must stay apart from it.
CHART_CACERTS_DIR = "/etc/cacerts"

ROOT_CA_DIR_ENV = "ROOT_CA_DIR"

_CERT_TEMPLATE = '{{- with secret "%s" -}}\n{{ .Data.certificate }}\n{{- end }}\n'
_KEY_TEMPLATE = '{{- with secret "%s" -}}\n{{ index .Data.data "%s" }}\n{{- end }}\n'
# ``or`` renders "" instead of "<no value>" when the field is missing (as in the guide).
_ROOT_TEMPLATE = '{{- with secret "%s" -}}\n{{ "" | or ( .Data.certificate ) }}\n{{- end }}\n'
# The trust bundle (one root, or two during a root rotation) kept in a KV v2 secret by the role
# (pki/rotation.py): root-cert.pem renders its field TRUST_BUNDLE_FIELD, so the template never changes while the
# roots do (istiod hot-reloads the file; a template change would be an annotation change and a restart).
TRUST_BUNDLE_FIELD = "root-cert.pem"
_BUNDLE_TEMPLATE = '{{- with secret "%s" -}}\n{{ "" | or ( index .Data.data "%s" ) }}\n{{- end }}\n'

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.@:=~,-]+$")
_PREFIX_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_ANNOTATION_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_SPACE_RE = re.compile(r"\s")


class InjectorError(ValueError):
    """Invalid input for the injector annotations; the message says what is wrong and how to fix it."""


# ---------------------------------------------------------------------------------------------------------
# validation / normalisation helpers
# ---------------------------------------------------------------------------------------------------------

def _require_text(value, what):
    if not isinstance(value, str):
        raise InjectorError(f"{what} must be a non-empty string, got {value!r}")
    if not value.strip():
        raise InjectorError(f"{what} must not be empty")
    return value


def normalize_vault_path(value, what="path"):
    """Return ``value`` without surrounding slashes; raise InjectorError if it is not a safe Vault path."""
    _require_text(value, what)
    path = value.strip("/")
    if not path:
        raise InjectorError(f"{what} must not be empty (got {value!r})")
    for segment in path.split("/"):
        if not segment:
            raise InjectorError(f"{what} {value!r} contains an empty segment ('//')")
        if segment in (".", ".."):
            raise InjectorError(f"{what} {value!r} must not contain '.' or '..' segments")
        if not _SEGMENT_RE.match(segment):
            raise InjectorError(
                f"{what} {value!r} contains unsupported characters: use letters, digits and . _ - @ : = ~ , "
                "separated by '/' (no spaces, quotes, backslashes or the policy globs '*' and '+')"
            )
    return path


def escape_go_string(value):
    """Escape ``value`` for use inside a Go template double-quoted string literal."""
    if _CONTROL_RE.search(value):
        raise InjectorError(f"control characters (newline, tab, ...) are not allowed in {value!r}")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def normalize_prefix(prefix):
    """Validate the annotation prefix (a DNS subdomain such as ``vault.hashicorp.com``); drop trailing ``/``."""
    _require_text(prefix, "prefix")
    result = prefix.rstrip("/")
    if len(result) > 253 or not all(_PREFIX_LABEL_RE.match(label) for label in result.split(".")):
        raise InjectorError(
            f"prefix {prefix!r} is not a valid annotation prefix: use a lower-case DNS subdomain, "
            f"{VAULT_PREFIX!r} for the Vault injector or {OPENBAO_PREFIX!r} for the OpenBao injector"
        )
    return result


def normalize_secret_volume_path(value):
    """Return the normalised absolute secret volume path; reject ``/etc/cacerts``, its parents and children."""
    _require_text(value, "secret_volume_path")
    if _CONTROL_RE.search(value) or _SPACE_RE.search(value) or ":" in value:
        raise InjectorError(f"secret_volume_path {value!r} must not contain whitespace, control characters or ':'")
    if not value.startswith("/"):
        raise InjectorError(f"secret_volume_path {value!r} must be an absolute path (e.g. /etc/cacerts-vault)")
    path = "/" + posixpath.normpath(value).lstrip("/")
    if path in ("/", CHART_CACERTS_DIR) or path.startswith(CHART_CACERTS_DIR + "/") or \
            CHART_CACERTS_DIR.startswith(path + "/"):
        raise InjectorError(
            f"secret_volume_path {value!r} conflicts with {CHART_CACERTS_DIR}: the istiod chart mounts the "
            "'cacerts' Kubernetes secret there, so one mount would hide the other and istiod could silently "
            "start with the wrong CA. Use a separate directory such as /etc/cacerts-vault (ROOT_CA_DIR is set "
            "to the same path)."
        )
    return path


def _normalize_role(role):
    _require_text(role, "role")
    if _CONTROL_RE.search(role) or _SPACE_RE.search(role):
        raise InjectorError(f"role {role!r} must not contain whitespace or control characters")
    return role


def _optional_bool(value, what):
    if value is None:
        return None
    try:
        return boolean(value, strict=True)
    except TypeError:
        raise InjectorError(f"{what} must be a boolean (true/false), got {value!r}") from None


def _string_value(value, what):
    """Kubernetes env and annotation values are strings; render booleans the YAML way ("true"/"false")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise InjectorError(f"{what} must be a string, got {value!r}")


def normalize_env(extra_env):
    """Return ``extra_env`` (list of ``{name, value}`` or a dict) as a list of ``{"name", "value"}`` dicts.

    ``ROOT_CA_DIR`` is refused (it always equals the secret volume path), so are duplicate or invalid names.
    """
    if extra_env is None:
        return []
    if isinstance(extra_env, dict):
        items = list(extra_env.items())
    elif isinstance(extra_env, (list, tuple)):
        items = []
        for entry in extra_env:
            if not isinstance(entry, dict) or "name" not in entry or set(entry) - {"name", "value"}:
                raise InjectorError(f"each extra_env entry must be a dict with 'name' and 'value' only, got {entry!r}")
            items.append((entry["name"], entry.get("value", "")))
    else:
        raise InjectorError(f"extra_env must be a list of {{name, value}} or a dict, got {extra_env!r}")
    result = []
    seen = set()
    for name, value in items:
        if not isinstance(name, str) or not _ENV_NAME_RE.match(name):
            raise InjectorError(f"extra_env name {name!r} is not a valid environment variable name")
        if name == ROOT_CA_DIR_ENV:
            raise InjectorError(
                "extra_env must not set ROOT_CA_DIR: it always equals secret_volume_path (the directory the "
                "injector renders the CA files into); change secret_volume_path instead"
            )
        if name in seen:
            raise InjectorError(f"extra_env sets {name} twice")
        seen.add(name)
        result.append({"name": name, "value": _string_value(value, f"extra_env {name}")})
    return result


def _check_annotation_key(key):
    if not isinstance(key, str) or not key:
        raise InjectorError(f"extra_annotations keys must be non-empty strings, got {key!r}")
    prefix, sep, name = key.rpartition("/")
    if len(name) > 63 or not _ANNOTATION_NAME_RE.match(name):
        raise InjectorError(f"extra_annotations key {key!r} is not a valid Kubernetes annotation key")
    if sep:
        try:
            normalize_prefix(prefix)
        except InjectorError:
            raise InjectorError(f"extra_annotations key {key!r} has an invalid prefix {prefix!r}") from None


# ---------------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------------

def bundle_secret_paths(intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
                        trust_bundle_path=None):
    """Return a dict file name -> Vault path the agent reads for it (normalised and validated).

    ``trust_bundle_path`` (a KV v2 path in ``kv_mount``): root-cert.pem reads ``<kv_mount>/data/<it>`` (the trust
    bundle, field ``root-cert.pem``) instead of ``<root_mount>/cert/ca`` (the root mount's default issuer)."""
    int_mount = normalize_vault_path(intermediate_mount, "intermediate_mount")
    root = normalize_vault_path(root_mount, "root_mount")
    kv = normalize_vault_path(kv_mount, "kv_mount")
    path = normalize_vault_path(kv_path, "kv_path")
    if int_mount == root:
        raise InjectorError(
            f"intermediate_mount and root_mount are both {int_mount!r}: root-cert.pem would then hold the "
            "intermediate. Give the mount of the root CA (the guide's 'pki') and the mount of Istio's "
            "intermediate CA (the guide's 'istioca')"
        )
    if path == "data" or path.startswith("data/") or kv == "data" or kv.endswith("/data"):
        raise InjectorError(
            f"kv_mount {kv_mount!r} / kv_path {kv_path!r}: give the KV v2 mount and the secret path without the "
            "'data/' API segment (e.g. kv_mount=secret, kv_path=istioca); '<mount>/data/<path>' is built for you"
        )
    root_path = f"{root}/cert/ca"
    if trust_bundle_path is not None:
        bundle = normalize_vault_path(trust_bundle_path, "trust_bundle_path")
        if bundle == "data" or bundle.startswith("data/"):
            raise InjectorError(f"trust_bundle_path {trust_bundle_path!r}: give the secret path without the 'data/' "
                                "API segment; '<kv_mount>/data/<path>' is built for you")
        if bundle == path:
            raise InjectorError(f"trust_bundle_path and kv_path are both {bundle!r}: the trust bundle needs a KV "
                                "secret of its own (the key's secret keeps one version per intermediate key)")
        root_path = f"{kv}/data/{bundle}"
    return {
        "ca-cert.pem": f"{int_mount}/cert/ca",
        "ca-key.pem": f"{kv}/data/{path}",
        "cert-chain.pem": f"{int_mount}/cert/ca_chain",
        "root-cert.pem": root_path,
    }


def vault_paths_read(intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
                     trust_bundle_path=None):
    """Exactly the Vault paths the four templates read, for a least-privilege ``read`` policy.

    Order: ``<int>/cert/ca``, ``<int>/cert/ca_chain``, ``<root>/cert/ca`` (or ``<kv>/data/<trust_bundle_path>``),
    ``<kv>/data/<path>``.
    """
    paths = bundle_secret_paths(intermediate_mount, root_mount, kv_mount, kv_path, trust_bundle_path)
    return [paths["ca-cert.pem"], paths["cert-chain.pem"], paths["root-cert.pem"], paths["ca-key.pem"]]


# What each template reads and what it renders when the field is missing (the guide's templates: Go's
# text/template prints "<no value>" for a missing map key; root-cert.pem's `"" | or (...)` renders "").
NO_VALUE = "<no value>"
AGENT_READS = {
    "ca-cert.pem": ("the intermediate certificate", "certificate", NO_VALUE),
    "cert-chain.pem": ("the intermediate's CA chain", "certificate", NO_VALUE),
    "root-cert.pem": ("the root certificate", "certificate", ""),
    "ca-key.pem": ("the intermediate's key", None, NO_VALUE),
}


def render_like_the_agent(name, body, kv_field, trust_bundle=False):
    """The text the injector's template for ``name`` renders from the Vault response ``body`` (None: 404).
    ``trust_bundle``: root-cert.pem reads the trust bundle's KV v2 secret (field ``root-cert.pem``)."""
    if body is None:
        return None
    data = body.get("data") or {}
    if not data:
        return "\n"  # `with secret` skips its body on empty data; the newline after `end` stays
    _what, field, missing = AGENT_READS[name]
    if name == "root-cert.pem" and trust_bundle:
        field, kv_field = None, TRUST_BUNDLE_FIELD
    if field is None:
        data = data.get("data") if isinstance(data.get("data"), dict) else {}
        field = kv_field
    value = data.get(field)
    if value is None or (missing == "" and not value):
        value = missing
    return "%s\n" % value


def render_templates(intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
                     kv_field="ca-key.pem", trust_bundle_path=None):
    """Return a dict file name -> (Vault path, agent template text ending with a newline), in BUNDLE_FILES order."""
    paths = bundle_secret_paths(intermediate_mount, root_mount, kv_mount, kv_path, trust_bundle_path)
    field = escape_go_string(_require_text(kv_field, "kv_field"))
    root = paths["root-cert.pem"]
    root_template = _ROOT_TEMPLATE % root if trust_bundle_path is None else \
        _BUNDLE_TEMPLATE % (root, TRUST_BUNDLE_FIELD)
    return {
        "ca-cert.pem": (paths["ca-cert.pem"], _CERT_TEMPLATE % paths["ca-cert.pem"]),
        "ca-key.pem": (paths["ca-key.pem"], _KEY_TEMPLATE % (paths["ca-key.pem"], field)),
        "cert-chain.pem": (paths["cert-chain.pem"], _CERT_TEMPLATE % paths["cert-chain.pem"]),
        "root-cert.pem": (root, root_template),
    }


def _owned_annotation_names():
    names = ["agent-inject", "role", "auth-path", "namespace", "secret-volume-path", "agent-init-first",
             "agent-pre-populate-only"]
    for file_name in BUNDLE_FILES:
        names.extend((f"agent-inject-secret-{file_name}", f"agent-inject-template-{file_name}"))
    return names


def managed_keys(prefix=VAULT_PREFIX, extra_env=None):
    """The annotation keys and env names this collection owns for ``prefix`` (what ``state: absent`` removes).

    Returns ``{"annotations": [...sorted keys], "env": ["ROOT_CA_DIR", ...]}``. Annotations: ``agent-inject``,
    the secret and template annotation of each of the four files, ``role``, ``secret-volume-path``,
    ``agent-init-first`` and ``agent-pre-populate-only``. Env: ``ROOT_CA_DIR`` plus the names in ``extra_env``
    (same forms as :func:`build_injection` accepts). ``extra_annotations`` are the caller's to track.
    """
    prefix = normalize_prefix(prefix)
    annotations = sorted(f"{prefix}/{name}" for name in _owned_annotation_names())
    env = [ROOT_CA_DIR_ENV] + [entry["name"] for entry in normalize_env(extra_env)]
    return {"annotations": annotations, "env": env}


def build_injection(intermediate_mount="istioca", root_mount="pki", kv_mount="secret", kv_path="istioca",
                    kv_field="ca-key.pem", role="istiod", secret_volume_path="/etc/cacerts-vault",
                    prefix=VAULT_PREFIX, agent_init_first=None, agent_pre_populate_only=None, extra_env=None,
                    extra_annotations=None, auth_mount=None, vault_namespace=None, trust_bundle_path=None):
    """Return ``{"env": [...], "annotations": {...}}`` for istiod's deployment (TSB ``kubeSpec.deployment``).

    ``env`` is ``ROOT_CA_DIR=<secret_volume_path>`` followed by ``extra_env`` in the given order (a list of
    ``{name, value}`` or a dict; booleans become "true"/"false"). ``annotations`` is a dict sorted by key, the
    guide's order. ``agent_init_first`` and ``agent_pre_populate_only`` are emitted as "true"/"false" only when
    not None. ``extra_annotations`` may not set any key of :func:`managed_keys`. ``auth_mount`` is the Kubernetes
    auth mount the agent logs in at: the injector's default is ``auth/kubernetes``, so ``<prefix>/auth-path`` is
    emitted only for another mount (one mount per cluster in a multi-cluster mesh). ``vault_namespace`` (Vault
    Enterprise / OpenBao namespaces) becomes ``<prefix>/namespace``: the agent logs in and reads there.
    ``trust_bundle_path``: root-cert.pem renders the trust bundle kept in ``<kv_mount>/data/<trust_bundle_path>``
    (see :func:`bundle_secret_paths`).
    """
    prefix = normalize_prefix(prefix)
    volume = normalize_secret_volume_path(secret_volume_path)
    role = _normalize_role(role)
    templates = render_templates(intermediate_mount, root_mount, kv_mount, kv_path, kv_field, trust_bundle_path)
    init_first = _optional_bool(agent_init_first, "agent_init_first")
    pre_populate_only = _optional_bool(agent_pre_populate_only, "agent_pre_populate_only")
    env = [{"name": ROOT_CA_DIR_ENV, "value": volume}, *normalize_env(extra_env)]

    annotations = {
        f"{prefix}/agent-inject": "true",
        f"{prefix}/role": role,
        f"{prefix}/secret-volume-path": volume,
    }
    for file_name, (path, template) in templates.items():
        annotations[f"{prefix}/agent-inject-secret-{file_name}"] = path
        annotations[f"{prefix}/agent-inject-template-{file_name}"] = template
    if auth_mount is not None and normalize_vault_path(auth_mount, "auth_mount") != "kubernetes":
        annotations[f"{prefix}/auth-path"] = "auth/" + normalize_vault_path(auth_mount, "auth_mount")
    if vault_namespace is not None and str(vault_namespace).strip("/"):
        annotations[f"{prefix}/namespace"] = normalize_vault_path(vault_namespace, "vault_namespace")
    if init_first is not None:
        annotations[f"{prefix}/agent-init-first"] = "true" if init_first else "false"
    if pre_populate_only is not None:
        annotations[f"{prefix}/agent-pre-populate-only"] = "true" if pre_populate_only else "false"

    if extra_annotations is not None:
        if not isinstance(extra_annotations, dict):
            raise InjectorError(f"extra_annotations must be a dict, got {extra_annotations!r}")
        owned = set(managed_keys(prefix)["annotations"])
        for key, value in extra_annotations.items():
            _check_annotation_key(key)
            if key in owned:
                raise InjectorError(
                    f"extra_annotations must not set {key!r}: this collection manages it (use the dedicated "
                    "option: role, secret_volume_path, agent_init_first, agent_pre_populate_only, the mounts/paths)"
                )
            annotations[key] = _string_value(value, f"extra_annotations {key}")

    return {"env": env, "annotations": dict(sorted(annotations.items()))}


def extract_templates(annotations, prefix=VAULT_PREFIX):
    """Return a dict file name -> (secret path, template text) found in an annotations dict.

    Every ``<prefix>/agent-inject-secret-<file>`` needs its ``<prefix>/agent-inject-template-<file>`` (without
    a template the agent writes a Go map, not PEM), and the reverse: a missing partner raises InjectorError.
    """
    prefix = normalize_prefix(prefix)
    if not isinstance(annotations, dict):
        raise InjectorError(f"annotations must be a dict, got {annotations!r}")
    secret_prefix = f"{prefix}/agent-inject-secret-"
    template_prefix = f"{prefix}/agent-inject-template-"
    result = {}
    for key in sorted(annotations):
        if not key.startswith(secret_prefix):
            continue
        file_name = key[len(secret_prefix):]
        template_key = template_prefix + file_name
        if template_key not in annotations:
            raise InjectorError(f"{key} has no {template_key}: without a template the agent writes a Go map, not PEM")
        result[file_name] = (annotations[key], annotations[template_key])
    orphans = sorted(
        key for key in annotations
        if key.startswith(template_prefix) and secret_prefix + key[len(template_prefix):] not in annotations
    )
    if orphans:
        raise InjectorError(
            f"template annotation(s) without a matching agent-inject-secret annotation: {', '.join(orphans)}"
        )
    return result
