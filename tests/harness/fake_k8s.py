"""A stateful fake Kubernetes API server over TLS, for tests, ``make demo`` and molecule.

OpenBao/Vault's Kubernetes auth method, the official ``kubernetes`` Python client and the
collection's modules talk to it as if it were a kube-apiserver reached through a kubeconfig.

Faithful to a real API server (the parts clients depend on):

- TLS with its own CA (SAN 127.0.0.1 and localhost); a real kubeconfig with
  ``certificate-authority-data`` and bearer-token users, several contexts per file.
- Bearer tokens on every request (anonymous auth disabled: no token or a bad one is 401).
  Service-account tokens are RS256 JWTs with the claims of projected tokens (``iss``, ``sub``,
  ``aud``, ``iat``, ``nbf``, ``exp``, ``jti``, ``kubernetes.io``); Secrets of type
  ``kubernetes.io/service-account-token`` get legacy-format JWTs (issuer ``kubernetes/serviceaccount``)
  from a token controller, written by a separate update *after* the create, as on a real cluster.
  A token stays valid only while its ServiceAccount exists with the same uid (and, for legacy
  tokens, while its Secret holds it). The TokenRequest subresource
  (``POST .../serviceaccounts/<name>/token``) mints bound tokens.
- TokenReview with audience intersection, ``status.user.uid`` equal to the ServiceAccount uid in
  the JWT (OpenBao compares them), ``authenticated: false`` answered with 201, and the caller
  authorized like RBAC does: ``system:masters`` or a ClusterRoleBinding to
  ``system:auth-delegator`` (or ``cluster-admin``) created through the API.
- Status bodies, codes, reasons and messages of NotFound (object vs. resource type), AlreadyExists,
  Conflict (stale resourceVersion), Invalid (422), BadRequest (400: name in URL differs from the
  body, apiVersion/kind mismatch), Forbidden, Unauthorized, MethodNotAllowed and
  UnsupportedMediaType.
- A global resourceVersion bumped on every write; no-op updates are not writes (same
  resourceVersion). ``uid``, ``creationTimestamp``; ``generation`` on custom objects, bumped when
  anything outside ``metadata`` changes. PUT of a custom object must carry a resourceVersion.
- JSON merge patch (RFC 7386), JSON patch (RFC 6902: add, remove, replace, test), ``?dryRun=All``
  (validated, answered, not stored). Strategic merge patch on a custom resource is refused with
  415, as the real server does (and as the ``kubernetes`` client's default for dict bodies on
  built-in kinds would trigger).
- Discovery (``/api``, ``/api/v1``, ``/apis``, ``/apis/<g>``, ``/apis/<g>/<v>``, ``/version``)
  complete enough for ``kubernetes.dynamic.DynamicClient``. A resource type whose CRD is not
  installed is a 404 "the server could not find the requested resource"; uninstalling a CRD
  deletes its objects.
- Creating in a missing namespace is a 404; new namespaces get a ``default`` ServiceAccount.

Simplified (documented so nobody relies on it):

- Resources: namespaces, serviceaccounts, secrets, clusterrolebindings, tokenreviews and the
  installed CRDs (by default ControlPlane and IstioOperator). No watch, no label/field selectors,
  no deletecollection, no server-side apply (415), no status subresource.
- Strategic merge patch on built-in kinds is applied as a JSON merge patch (lists are replaced,
  never merged by key).
- RBAC knows two ClusterRoles by name only: ``cluster-admin`` and ``system:auth-delegator``;
  tests add allow/deny rules per token or user instead of Roles.
- Deletion is immediate (no finalizers, no graceful deletion); deleting a namespace deletes its
  objects at once and answers the namespace as it was. Token expiry has no leeway.
- Fault injection, allow/deny rules and the request logs live in memory only; with ``state_dir``
  objects, CRDs, tokens, the CA and the signing key persist across restarts (and the port is
  reused when free, so the kubeconfig stays valid).

In-process::

    with FakeKubeApi() as api:
        kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
        jwt = api.mint_sa_token("istio-system", "istiod-service-account")

As a process (``PYTHONPATH=tests``)::

    python -m harness.fake_k8s --state-dir DIR [--port N] [--no-crds]
    python -m harness.fake_k8s mint --state-dir DIR --namespace NS --name SA [--audience A] [--duration S]

The first writes ``DIR/kubeconfig`` (admin context ``fake``), ``DIR/ca.crt``, ``DIR/url`` and, once
listening, ``DIR/ready`` (the JSON line it also prints: url, kubeconfig, ca_file, pid); it runs until
SIGTERM. ``mint`` asks the running server, through the real API with the admin kubeconfig, to create
the namespace and ServiceAccount if missing and to issue a TokenRequest; it prints the JWT.

The admin endpoint drives a fake running in another process (admin bearer token, JSON bodies):
``POST /_fake/faults`` (the arguments of ``inject``), ``POST /_fake/rules`` (``effect``: allow or
deny, ``subject``, ``verb``, ``group``, ``resource``), ``GET`` / ``DELETE /_fake/requests`` (the
request and TokenReview logs), ``POST /_fake/revoke`` (``token``), ``POST /_fake/crds`` (the
arguments of ``install_crd``) and ``POST /_fake/crds/uninstall`` (``group``, ``plural``).
"""

import argparse
import base64
import copy
import dataclasses
import datetime
import hashlib
import json
import os
import re
import secrets
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .certs import KeyPair, make_ca, make_server_cert

API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"
ISSUER = API_AUDIENCE
LEGACY_ISSUER = "kubernetes/serviceaccount"
ADMIN_USER = "kubernetes-admin"
MASTERS = "system:masters"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
LEGACY_CLAIM = "kubernetes.io/serviceaccount/"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public")
ROLE_RULES = {
    "cluster-admin": (("*", "*", "*"),),
    "system:auth-delegator": (
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("create", "authorization.k8s.io", "subjectaccessreviews"),
    ),
}
VERSION_INFO = {
    "major": "1", "minor": "31", "gitVersion": "v1.31.0-fake", "gitCommit": "0" * 40,
    "gitTreeState": "clean", "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5",
    "compiler": "gc", "platform": "linux/amd64",
}
REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_SUBDOMAIN_HELP = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '" + DNS_SUBDOMAIN.pattern + "')"
)


# --------------------------------------------------------------------------- resource types


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, what it is called and what may be done to it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    custom: bool = False
    verbs: tuple = ("create", "delete", "get", "list", "patch", "update")

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self):
        return f"{self.group}/{self.plural}"

    @property
    def qualified(self):
        """``secrets`` or ``controlplanes.install.tetrate.io``, as in API error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self):
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def discovery(self):
        return {"name": self.plural, "singularName": self.kind.lower(), "namespaced": self.namespaced,
                "kind": self.kind, "verbs": list(self.verbs)}


NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False)
SERVICE_ACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount")
SECRETS = ResourceType("", "v1", "secrets", "Secret")
CLUSTER_ROLE_BINDINGS = ResourceType("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                                     "ClusterRoleBinding", namespaced=False)
TOKEN_REVIEWS = ResourceType("authentication.k8s.io", "v1", "tokenreviews", "TokenReview",
                             namespaced=False, verbs=("create",))
TOKEN_REQUESTS = ResourceType("authentication.k8s.io", "v1", "tokenrequests", "TokenRequest", verbs=())
BUILTIN_TYPES = (NAMESPACES, SERVICE_ACCOUNTS, SECRETS, CLUSTER_ROLE_BINDINGS, TOKEN_REVIEWS)
TOKEN_SUBRESOURCE = {"name": "serviceaccounts/token", "singularName": "", "namespaced": True,
                     "group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest",
                     "verbs": ["create"]}
DEFAULT_CRDS = (
    ("install.tetrate.io", "v1alpha1", "controlplanes", "ControlPlane"),
    ("install.istio.io", "v1alpha1", "istiooperators", "IstioOperator"),
)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as a ``Status`` object, the way kube-apiserver does."""

    def __init__(self, code, message, reason=None, details=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details or {}

    def status(self):
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "details": self.details, "code": self.code}


def _details(rt, name, kind=None, **extra):
    found = {"name": name, "group": rt.group, "kind": kind or rt.plural, **extra}
    return {key: value for key, value in found.items() if value}


def not_found(rt, name):
    return ApiError(404, f'{rt.qualified} "{name}" not found', details=_details(rt, name))


def already_exists(rt, name):
    return ApiError(409, f'{rt.qualified} "{name}" already exists', "AlreadyExists", _details(rt, name))


def conflict(rt, name):
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
                         "modified; please apply your changes to the latest version and try again",
                    details=_details(rt, name))


def invalid(rt, name, field, cause_reason, text):
    cause = {"reason": cause_reason, "message": text, "field": field}
    return ApiError(422, f'{rt.qualified_kind} "{name}" is invalid: {field}: {text}',
                    details=_details(rt, name, kind=rt.kind, causes=[cause]))


def bad_request(message):
    return ApiError(400, message)


def no_such_resource():
    return ApiError(404, "the server could not find the requested resource")


def method_not_allowed():
    return ApiError(405, "the server does not allow this method on the requested resource")


def unauthorized():
    return ApiError(401, "Unauthorized")


def forbidden(user, verb, group, resource, namespace="", name=""):
    rt = ResourceType(group, "", resource.split("/")[0], "")
    what = f'{rt.qualified} "{name}"' if name else rt.qualified
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    message = (f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
               f'in API group "{group}" {scope}')
    return ApiError(403, message, details=_details(rt, name))


def unsupported_media_type(accepted):
    return ApiError(415, "the body of the request was in an unknown format - accepted media types include: "
                         + ", ".join(accepted))


# --------------------------------------------------------------------------- patches


def merge_patch(target, patch):
    """RFC 7386: objects merge recursively, ``null`` deletes a key, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class PatchError(Exception):
    """A JSON patch that cannot be applied to the object."""


def json_patch(document, operations):
    """RFC 6902 ``add``, ``remove``, ``replace`` and ``test``."""
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    document = copy.deepcopy(document)
    for operation in operations:
        document = _apply_operation(document, operation)
    return document


def _pointer(path):
    if path == "":
        return []
    if not isinstance(path, str) or not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _child(container, token):
    try:
        return container[int(token) if isinstance(container, list) else token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"path element {token!r} not found") from None


def _resolve(document, tokens):
    for token in tokens:
        document = _child(document, token)
    return document


def _add(container, token, value):
    if isinstance(container, dict):
        container[token] = value
    elif token == "-":
        container.append(value)
    elif isinstance(container, list) and token.isdigit() and int(token) <= len(container):
        container.insert(int(token), value)
    else:
        raise PatchError(f"cannot add at {token!r}")


def _remove(container, token):
    _child(container, token)
    if isinstance(container, list):
        del container[int(token)]
    else:
        del container[token]


def _apply_operation(document, operation):
    if not isinstance(operation, dict):
        raise PatchError(f"operation {operation!r} is not an object")
    op, tokens = operation.get("op"), _pointer(operation.get("path"))
    if op == "test":
        if _resolve(document, tokens) != operation.get("value"):
            raise PatchError(f"testing value {operation.get('path')} failed")
        return document
    if op not in ("add", "remove", "replace"):
        raise PatchError(f"unsupported operation {op!r}")
    if op != "remove" and "value" not in operation:
        raise PatchError(f"operation {op!r} needs a value")
    if not tokens:
        return copy.deepcopy(operation.get("value"))
    parent = _resolve(document, tokens[:-1])
    if op in ("remove", "replace"):
        _remove(parent, tokens[-1])
    if op in ("add", "replace"):
        _add(parent, tokens[-1], copy.deepcopy(operation["value"]))
    return document


def patch_types(rt):
    """Patch content types the real server accepts for ``rt`` (no strategic merge for custom resources)."""
    return [JSON_PATCH, MERGE_PATCH] + ([] if rt.custom else [STRATEGIC_PATCH])


def apply_patch(current, content_type, body):
    """The patched object, or the ApiError the real server answers for this patch."""
    patch = _parse_json(body)
    if content_type == JSON_PATCH:
        try:
            return json_patch(current, patch)
        except PatchError as error:
            raise ApiError(422, f"the server rejected our request due to an error in our request: {error}")
    if not isinstance(patch, dict):
        raise bad_request("json: cannot unmarshal patch into an object")
    return merge_patch(current, patch)


# --------------------------------------------------------------------------- tokens


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _go_list(items):
    """A []string printed with Go's %q, as in kube-apiserver's audience errors."""
    return "[" + " ".join(json.dumps(item) for item in items) + "]"


class InvalidToken(Exception):
    """A bearer token that does not authenticate; the text is the TokenReview ``status.error``."""


class TokenSigner:
    """RS256 signing and verification with the fake's service-account key."""

    def __init__(self, key):
        self.key = key
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64url(hashlib.sha256(der).digest())

    @property
    def public_pem(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def private_pem(self):
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()

    def sign(self, claims):
        header = {"alg": "RS256", "kid": self.kid}
        signing_input = ".".join(_b64url(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, claims))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)

    def verify(self, token):
        """The claims of a token this key signed; InvalidToken otherwise."""
        try:
            header, payload, signature = token.split(".")
            if json.loads(_b64url_decode(header)).get("alg") != "RS256":
                raise InvalidToken("unexpected signing algorithm")
            self.key.public_key().verify(_b64url_decode(signature), f"{header}.{payload}".encode(),
                                         padding.PKCS1v15(), hashes.SHA256())
            return json.loads(_b64url_decode(payload))
        except (ValueError, InvalidSignature, AttributeError):
            raise InvalidToken("token signature or format is invalid") from None


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who a bearer token authenticates as."""

    username: str
    groups: tuple = ()
    uid: str = ""
    credential_id: str = ""
    token: str = dataclasses.field(default="", repr=False)

    def user_info(self):
        info = {"username": self.username, "uid": self.uid, "groups": list(self.groups)}
        if self.credential_id:
            info["extra"] = {"authentication.kubernetes.io/credential-id": [self.credential_id]}
        return info


def _service_account_identity(namespace, name, uid, credential_id=""):
    groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")
    return Identity(f"system:serviceaccount:{namespace}:{name}", groups, uid, credential_id)


# --------------------------------------------------------------------------- small helpers


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _timestamp(moment=None):
    return (moment or _now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_json(body):
    try:
        return json.loads(body or b"null")
    except ValueError as error:
        raise bad_request(f"couldn't get version/kind; json parse error: {error}") from None


def _without_metadata(obj):
    return {key: value for key, value in obj.items() if key != "metadata"}


def _write_private(path, text):
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _write_atomic(path, text):
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)


@dataclasses.dataclass(frozen=True)
class Target:
    """A resource URL taken apart."""

    group: str
    version: str
    plural: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def parse_resource_path(path):
    """``/api/v1/namespaces/ns/secrets/x`` → Target; None for anything that is not a resource URL."""
    parts = [urllib.parse.unquote(part) for part in path.strip("/").split("/")]
    if parts[0] == "api" and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3 or not all(rest):
        return None
    plural, name, subresource = (rest + ["", ""])[:3]
    return Target(group, version, plural, namespace, name, subresource)


def _verb(method, target):
    if target.name:
        verbs = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete", "POST": "create"}
        allowed = ("POST",) if target.subresource else ("GET", "PUT", "PATCH", "DELETE")
    else:
        verbs = {"GET": "list", "POST": "create"}
        allowed = tuple(verbs)
    if method not in allowed:
        raise method_not_allowed()
    return verbs[method]


def _dry_run(query, body=None):
    options = body if isinstance(body, dict) else {}
    values = query.get("dryRun", []) + list(options.get("dryRun") or [])
    if any(value != "All" for value in values):
        raise ApiError(422, f'dryRun: Unsupported value: {_go_list(values)}: supported values: "All"')
    return bool(values)


# --------------------------------------------------------------------------- HTTP plumbing


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

    def _dispatch(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        code, payload = self.server.api.handle(self.command, self.path, self.headers, body)
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, fmt, *args):
        """Quiet: the fake keeps its own request log."""


class _TLSServer(ThreadingHTTPServer):
    """TLS is negotiated in the connection's own thread, so a silent client blocks nobody."""

    daemon_threads = True

    def __init__(self, address, api, context):
        self.api = api
        self.context = context
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address):
        request.settimeout(_Handler.timeout)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a client that does not trust our CA, or went away
        with connection:
            super().finish_request(connection, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError, TimeoutError)):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- the fake


class FakeKubeApi:
    """The fake API server: state, HTTP/TLS server, helpers for tests. Thread-safe."""

    def __init__(self, state_dir=None, port=None, host="127.0.0.1", install_default_crds=True,
                 api_audiences=(API_AUDIENCE,)):
        self.state_dir = str(state_dir) if state_dir else None
        self.host = host
        self.api_audiences = tuple(api_audiences)
        self.port = None
        self._requested_port = port
        self._saved_port = None
        self.url = None
        self._scratch = None if self.state_dir else tempfile.TemporaryDirectory(prefix="fake-k8s-")
        self._files = self.state_dir or self._scratch.name  # CA, keys, server certificate
        os.makedirs(self._files, exist_ok=True)
        self._lock = threading.RLock()
        self._objects = {}
        self._types = {(rt.group, rt.version, rt.plural): rt for rt in BUILTIN_TYPES}
        self._tokens = {}
        self._revoked = set()
        self._resource_version = 0
        self._rules = []
        self._faults = []
        self._requests = []
        self._token_reviews = []
        self._contexts = {}
        self._server = self._thread = None
        self.ca = self._load_or_make_ca()
        self.signer = self._load_or_make_signer()
        self._load_or_seed_state(install_default_crds)

    # ----------------------------------------------------------------- key material and state

    @property
    def ca_file(self):
        return os.path.join(self._files, "ca.crt")

    @property
    def ca_pem(self):
        return self.ca.cert_pem

    @property
    def sa_public_key_pem(self):
        """The PEM public key of the service-account signer (for Vault's ``pem_keys``)."""
        return self.signer.public_pem

    @property
    def admin_token(self):
        with self._lock:
            return next(token for token, user in self._tokens.items() if user["username"] == ADMIN_USER)

    def _load_or_make_ca(self):
        cert_path, key_path = self.ca_file, os.path.join(self._files, "ca.key")
        if os.path.exists(cert_path) and os.path.exists(key_path):
            with open(cert_path, "rb") as cert, open(key_path, "rb") as key:
                return KeyPair(x509.load_pem_x509_certificate(cert.read()),
                               serialization.load_pem_private_key(key.read(), None))
        ca = make_ca("fake-kube-apiserver CA", days=365)
        ca.write(self._files, "ca")
        return ca

    def _load_or_make_signer(self):
        key_path = os.path.join(self._files, "sa.key")
        if os.path.exists(key_path):
            with open(key_path, "rb") as key:
                return TokenSigner(serialization.load_pem_private_key(key.read(), None))
        signer = TokenSigner(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        _write_private(key_path, signer.private_pem)
        with open(os.path.join(self._files, "sa.pub"), "w") as public:
            public.write(signer.public_pem)
        return signer

    @property
    def _state_file(self):
        return os.path.join(self.state_dir, "state.json") if self.state_dir else None

    def _load_or_seed_state(self, install_default_crds):
        if self._state_file and os.path.exists(self._state_file):
            self._load_state()
        else:
            self.add_token(ADMIN_USER, (MASTERS, "system:authenticated"))
            for namespace in DEFAULT_NAMESPACES:
                self._create(NAMESPACES, "", {"metadata": {"name": namespace}}, dry_run=False)
        for crd in DEFAULT_CRDS if install_default_crds else ():
            self.install_crd(*crd)

    def _load_state(self):
        with open(self._state_file) as handle:
            state = json.load(handle)
        for group, version, plural, kind in state["crds"]:
            self._register_crd(group, version, plural, kind)
        self._resource_version = state["resourceVersion"]
        self._tokens = state["tokens"]
        self._revoked = set(state["revoked"])
        self._saved_port = state.get("port")
        for entry in state["objects"]:
            obj = entry["object"]
            self._objects[(entry["type"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj

    def _save_state(self):
        if not self._state_file:
            return
        crds = [[rt.group, rt.version, rt.plural, rt.kind] for rt in self._types.values() if rt.custom]
        objects = [{"type": key[0], "object": obj} for key, obj in sorted(self._objects.items())]
        state = {"port": self.port or self._saved_port, "resourceVersion": self._resource_version, "crds": crds,
                 "tokens": self._tokens, "revoked": sorted(self._revoked), "objects": objects}
        _write_atomic(self._state_file, json.dumps(state, indent=1, sort_keys=True))

    # ----------------------------------------------------------------- lifecycle

    def start(self):
        """Listen on ``host`` (the saved port when free, else any free port) and serve in a thread."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_cert = make_server_cert(self.ca, hosts=(self.host, "localhost"))
        cert_path, key_path = server_cert.write(self._files, "server")
        context.load_cert_chain(cert_path, key_path)
        self._server = self._bind(context)
        self.port = self._server.server_address[1]
        self.url = f"https://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="fake-k8s", daemon=True)
        self._thread.start()
        with self._lock:
            self._save_state()
        return self

    def _bind(self, context):
        if self._requested_port is not None:
            return _TLSServer((self.host, self._requested_port), self, context)
        try:
            return _TLSServer((self.host, self._saved_port or 0), self, context)
        except OSError:  # the previous port is taken: any port will do, the kubeconfig is rewritten
            return _TLSServer((self.host, 0), self, context)

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    # ----------------------------------------------------------------- kubeconfig

    def add_context(self, name, token=None, server=None, ca_pem=None):
        """Add a context to the kubeconfig files written later.

        Without ``server`` the context points at this fake; with it, at that cluster (another fake,
        or an address nothing listens on), trusted through ``ca_pem`` (default: this fake's CA).
        """
        self._contexts[name] = {"token": token or self.admin_token, "server": server, "ca_pem": ca_pem}

    def write_kubeconfig(self, path, context_name="fake", user_token=None):
        """Write a kubeconfig whose current context ``context_name`` uses ``user_token`` (default admin)."""
        if not self.url:
            raise RuntimeError("start the fake before writing a kubeconfig")
        contexts = {**self._contexts, context_name: {"token": user_token or self.admin_token}}
        clusters = {"fake": {"server": self.url, "certificate-authority-data": _b64(self.ca_pem)}}
        config = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "current-context": context_name,
                  "clusters": [], "users": [], "contexts": []}
        for name, context in contexts.items():
            cluster = name if context.get("server") else "fake"
            if context.get("server"):
                clusters[name] = {"server": context["server"],
                                  "certificate-authority-data": _b64(context["ca_pem"] or self.ca_pem)}
            config["users"].append({"name": name, "user": {"token": context["token"]}})
            config["contexts"].append({"name": name, "context": {"cluster": cluster, "user": name}})
        config["clusters"] = [{"name": name, "cluster": cluster} for name, cluster in clusters.items()]
        _write_private(str(path), yaml.safe_dump(config, sort_keys=False))
        return str(path)

    # ----------------------------------------------------------------- identities and tokens

    def add_token(self, username, groups=(), token=None):
        """A static bearer token (like ``--token-auth-file``) for ``username``; returns the token."""
        token = token or f"{username.replace(':', '-')}-{secrets.token_hex(16)}"
        with self._lock:
            self._tokens[token] = {"username": username, "groups": list(groups)}
            self._save_state()
        return token

    def mint_sa_token(self, namespace, name, audiences=None, ttl=3600):
        """A bound service-account JWT; creates the namespace and ServiceAccount when missing.

        ``ttl`` may be negative to get an already expired token.
        """
        with self._lock:
            self._ensure(NAMESPACES, "", namespace)
            account = self._ensure(SERVICE_ACCOUNTS, namespace, name)
            return self._mint_bound(namespace, name, account["metadata"]["uid"], audiences, ttl)[0]

    def revoke(self, token):
        """Make ``token`` fail authentication from now on (static or JWT)."""
        with self._lock:
            self._tokens.pop(token, None)
            self._revoked.add(_digest(token))
            self._save_state()

    def _ensure(self, rt, namespace, name):
        found = self._objects.get((rt.key, namespace, name))
        if found is None:
            found = self._create(rt, namespace, {"metadata": {"name": name}}, dry_run=False)[1]
        return found

    def _mint_bound(self, namespace, name, uid, audiences, ttl):
        now = int(time.time())
        claims = {
            "aud": list(audiences or self.api_audiences), "exp": now + ttl, "iat": now, "iss": ISSUER,
            "jti": str(uuid.uuid4()), "nbf": now, "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}},
        }
        return self.signer.sign(claims), now + ttl

    def _mint_legacy(self, namespace, secret_name, account):
        name = account["metadata"]["name"]
        return self.signer.sign({
            "iss": LEGACY_ISSUER,
            LEGACY_CLAIM + "namespace": namespace,
            LEGACY_CLAIM + "secret.name": secret_name,
            LEGACY_CLAIM + "service-account.name": name,
            LEGACY_CLAIM + "service-account.uid": account["metadata"]["uid"],
            "sub": f"system:serviceaccount:{namespace}:{name}",
        })

    def review_token(self, token, audiences=None):
        """``(Identity, audiences)`` for a token valid for one of ``audiences``; InvalidToken otherwise."""
        audiences = list(audiences or self.api_audiences)
        with self._lock:
            if _digest(token) in self._revoked:
                raise InvalidToken("token has been invalidated")
            if token in self._tokens:
                user = self._tokens[token]
                identity, token_audiences = Identity(user["username"], tuple(user["groups"])), self.api_audiences
            else:
                identity, token_audiences = self._review_jwt(token)
        matched = [audience for audience in audiences if audience in token_audiences]
        if not matched:
            raise InvalidToken(f"token audiences {_go_list(token_audiences)} is invalid for the target "
                               f"audiences {_go_list(audiences)}")
        return dataclasses.replace(identity, token=token), matched

    def _review_jwt(self, token):
        claims = self.signer.verify(token)
        try:
            issuer = claims.get("iss")
            if issuer == LEGACY_ISSUER:
                return self._review_legacy(claims, token), self.api_audiences
            if issuer == ISSUER:
                return self._review_bound(claims), claims["aud"]
        except (KeyError, TypeError, AttributeError):
            raise InvalidToken("token claims are incomplete") from None
        raise InvalidToken(f"unexpected issuer {issuer!r}")

    def _review_bound(self, claims):
        now = time.time()
        if claims["exp"] <= now:
            raise InvalidToken("service account token has expired")
        if claims["nbf"] > now:
            raise InvalidToken("service account token is not valid yet")
        namespace = claims["kubernetes.io"]["namespace"]
        account = claims["kubernetes.io"]["serviceaccount"]
        self._check_account(namespace, account["name"], account["uid"])
        return _service_account_identity(namespace, account["name"], account["uid"], f"JTI={claims['jti']}")

    def _review_legacy(self, claims, token):
        namespace = claims[LEGACY_CLAIM + "namespace"]
        secret_name = claims[LEGACY_CLAIM + "secret.name"]
        secret = self._objects.get((SECRETS.key, namespace, secret_name))
        if secret is None or (secret.get("data") or {}).get("token") != _b64(token):
            raise InvalidToken(f'secrets "{secret_name}" not found or no longer holds this token')
        name, uid = claims[LEGACY_CLAIM + "service-account.name"], claims[LEGACY_CLAIM + "service-account.uid"]
        self._check_account(namespace, name, uid)
        return _service_account_identity(namespace, name, uid)

    def _check_account(self, namespace, name, uid):
        account = self._objects.get((SERVICE_ACCOUNTS.key, namespace, name))
        if account is None:
            raise InvalidToken(f'serviceaccounts "{name}" not found')
        if account["metadata"]["uid"] != uid:
            raise InvalidToken(f"service account UID ({uid}) does not match claim ({account['metadata']['uid']})")

    def _authenticate(self, headers):
        scheme, _sep, token = (headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized()
        try:
            return self.review_token(token.strip())[0]
        except InvalidToken:
            raise unauthorized() from None

    # ----------------------------------------------------------------- authorization

    def allow(self, subject, verb, group, resource):
        """Let ``subject`` (a token or a username) do ``verb`` on ``group``/``resource`` ("*" matches all)."""
        self._add_rule("allow", subject, verb, group, resource)

    def deny(self, subject, verb, group, resource):
        """Refuse ``verb`` on ``group``/``resource`` to ``subject`` (token or username), even to admins."""
        self._add_rule("deny", subject, verb, group, resource)

    def _add_rule(self, effect, subject, verb, group, resource):
        if effect not in ("allow", "deny"):
            raise ValueError(f"effect must be allow or deny, not {effect!r}")
        with self._lock:
            self._rules.append((effect, subject, (verb, group, resource)))

    def bind_cluster_role(self, namespace, service_account, role="system:auth-delegator"):
        """Create (as the API would) a ClusterRoleBinding of ``role`` to a ServiceAccount."""
        body = {"metadata": {"name": f"{namespace}-{service_account}-{role.replace(':', '-')}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}]}
        with self._lock:
            return self._create(CLUSTER_ROLE_BINDINGS, "", body, dry_run=False)[1]

    def _authorize(self, identity, verb, group, resource, namespace="", name=""):
        request = (verb, group, resource)
        if self._ruled("deny", identity, request):
            raise forbidden(identity.username, verb, group, resource, namespace, name)
        if MASTERS in identity.groups or self._ruled("allow", identity, request):
            return
        if any(_rule_matches(rule, request) for rule in self._bound_rules(identity)):
            return
        raise forbidden(identity.username, verb, group, resource, namespace, name)

    def _ruled(self, effect, identity, request):
        return any(rule_effect == effect and subject in (identity.token, identity.username)
                   and _rule_matches(rule, request) for rule_effect, subject, rule in self._rules)

    def _bound_rules(self, identity):
        for (key, _ns, _name), binding in self._objects.items():
            if key == CLUSTER_ROLE_BINDINGS.key and _binds(binding, identity):
                yield from ROLE_RULES.get((binding.get("roleRef") or {}).get("name"), ())

    # ----------------------------------------------------------------- CRDs, faults, logs

    def install_crd(self, group, version, plural, kind):
        """Serve ``/apis/<group>/<version>/namespaces/<ns>/<plural>`` for objects of ``kind``."""
        with self._lock:
            self._register_crd(group, version, plural, kind)
            self._save_state()

    def _register_crd(self, group, version, plural, kind):
        self._types[(group, version, plural)] = ResourceType(group, version, plural, kind, custom=True)

    def uninstall_crd(self, group, plural):
        """Remove the resource type and, as deleting a CRD does, all its objects."""
        with self._lock:
            for type_key in [key for key, rt in self._types.items() if rt.custom and rt.key == f"{group}/{plural}"]:
                del self._types[type_key]
            for object_key in [key for key in self._objects if key[0] == f"{group}/{plural}"]:
                del self._objects[object_key]
            self._bump()

    def inject(self, method, path_regex, status, count=1, reason=None, message=None):
        """Answer the next ``count`` API requests matching ``method`` ("*" for any) and ``path_regex``
        (searched in the path, without the query) with a Status of code ``status``."""
        fault = {"method": method.upper(), "pattern": re.compile(path_regex), "remaining": count,
                 "error": ApiError(status, message or f"injected fault ({status})", reason)}
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, method, path):
        with self._lock:
            for fault in self._faults:
                if fault["method"] in ("*", method) and fault["pattern"].search(path):
                    fault["remaining"] -= 1
                    self._faults = [kept for kept in self._faults if kept["remaining"] > 0]
                    return fault["error"]
        return None

    @property
    def requests(self):
        """Every API request so far: method, path, query, content_type, caller, status."""
        with self._lock:
            return copy.deepcopy(self._requests)

    @property
    def token_reviews(self):
        """Every TokenReview: caller (the bearer's username), spec and the status answered."""
        with self._lock:
            return copy.deepcopy(self._token_reviews)

    def clear_requests(self):
        """Empty both the request log and the TokenReview log."""
        with self._lock:
            self._requests.clear()
            self._token_reviews.clear()

    def get_object(self, api_version, plural, name, namespace=""):
        """A copy of a stored object, or None."""
        group = api_version.rpartition("/")[0]
        with self._lock:
            return copy.deepcopy(self._objects.get((f"{group}/{plural}", namespace, name)))

    # ----------------------------------------------------------------- request handling

    def handle(self, method, raw_path, headers, body):
        """Answer one HTTP request: ``(status code, JSON-able body)``."""
        url = urllib.parse.urlsplit(raw_path)
        query = urllib.parse.parse_qs(url.query)
        identity = None
        try:
            identity = self._authenticate(headers)
            if url.path.startswith("/_fake/"):
                return self._serve_admin(method, url.path, body, identity)
            fault = self._take_fault(method, url.path)
            if fault:
                raise fault
            code, payload = self._route(method, url.path, query, headers, body, identity)
        except ApiError as error:
            code, payload = error.code, error.status()
        except (KeyError, TypeError, AttributeError, ValueError) as error:  # a field of the wrong JSON type
            code, payload = 400, bad_request(f"the request body could not be decoded: {error!r}").status()
        if not url.path.startswith("/_fake/"):
            self._log(method, url, headers, identity, code)
        return code, payload

    def _log(self, method, url, headers, identity, code):
        entry = {"method": method, "path": url.path, "query": url.query,
                 "content_type": headers.get("Content-Type"),
                 "caller": identity.username if identity else None, "status": code}
        with self._lock:
            self._requests.append(entry)

    def _route(self, method, path, query, headers, body, identity):
        discovery = self._discovery(path.rstrip("/"))  # the kubernetes client asks for "/version/"
        if discovery is not None:
            if method != "GET":
                raise method_not_allowed()
            return 200, discovery
        target = parse_resource_path(path)
        if target is None:
            raise no_such_resource()
        with self._lock:
            return self._serve_resource(method, target, query, headers, body, identity)

    def _serve_resource(self, method, target, query, headers, body, identity):
        rt = self._resource_type(target)
        verb = _verb(method, target)
        resource = f"{rt.plural}/{target.subresource}" if target.subresource else rt.plural
        self._authorize(identity, verb, rt.group, resource, target.namespace, target.name)
        if target.subresource:
            return self._token_request(target.namespace, target.name, _parse_json(body))
        if verb not in rt.verbs or (rt.namespaced and not target.namespace and verb != "list"):
            raise method_not_allowed()
        if rt is TOKEN_REVIEWS:
            return self._token_review(identity, _parse_json(body))
        return self._serve_verb(verb, rt, target, query, headers, body)

    def _serve_verb(self, verb, rt, target, query, headers, body):
        namespace, name = target.namespace, target.name
        if verb == "get":
            return 200, copy.deepcopy(self._fetch(rt, namespace, name))
        if verb == "list":
            return self._list(rt, namespace, query)
        if verb == "create":
            return self._create(rt, namespace, _parse_json(body), _dry_run(query))
        if verb == "update":
            return self._replace(rt, namespace, name, _parse_json(body), _dry_run(query))
        if verb == "patch":
            content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
            return self._patch(rt, namespace, name, content_type, body, _dry_run(query))
        return self._delete(rt, namespace, name, _dry_run(query, _parse_json(body)))

    def _resource_type(self, target):
        rt = self._types.get((target.group, target.version, target.plural))
        if rt is None or bool(target.namespace) != rt.namespaced and (target.namespace or target.name):
            raise no_such_resource()
        if target.subresource and (rt, target.subresource) != (SERVICE_ACCOUNTS, "token"):
            raise no_such_resource()
        return rt

    # ----------------------------------------------------------------- discovery

    def _discovery(self, path):
        if path == "/version":
            return dict(VERSION_INFO)
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self.host}:{self.port}"}]}
        if path == "/apis":
            with self._lock:
                return {"kind": "APIGroupList", "apiVersion": "v1", "groups": self._groups()}
        match = re.fullmatch(r"/api/(v1)|/apis/([^/]+)/([^/]+)", path)
        if match:
            return self._resource_list(match.group(2) or "", match.group(1) or match.group(3))
        match = re.fullmatch(r"/apis/([^/]+)", path)
        if match:
            return self._group(match.group(1))
        return None

    def _groups(self):
        versions = {}
        for rt in self._types.values():
            if rt.group:
                versions.setdefault(rt.group, []).append(rt.version)
        return [_api_group(group, sorted(set(found))) for group, found in sorted(versions.items())]

    def _group(self, group):
        with self._lock:
            found = [g for g in self._groups() if g["name"] == group]
        if not found:
            raise no_such_resource()
        return {"kind": "APIGroup", "apiVersion": "v1", **found[0]}

    def _resource_list(self, group, version):
        with self._lock:
            resources = [rt.discovery() for rt in self._types.values() if (rt.group, rt.version) == (group, version)]
        if not resources:
            raise no_such_resource()
        if (group, version) == ("", "v1"):
            resources.append(dict(TOKEN_SUBRESOURCE))
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    # ----------------------------------------------------------------- storage

    def _bump(self):
        """A write that stores nothing new (a delete): the resourceVersion still moves on."""
        self._resource_version += 1
        self._save_state()

    def _fetch(self, rt, namespace, name):
        found = self._objects.get((rt.key, namespace, name))
        if found is None:
            raise not_found(rt, name)
        return found

    def _store(self, rt, obj):
        obj = copy.deepcopy(obj)
        metadata = obj["metadata"]
        self._resource_version += 1
        metadata["resourceVersion"] = str(self._resource_version)
        self._objects[(rt.key, metadata.get("namespace", ""), metadata["name"])] = obj
        self._save_state()
        return copy.deepcopy(obj)

    def _list(self, rt, namespace, query):
        if query.get("watch", ["false"])[0] in ("true", "1"):
            raise ApiError(405, "watch is not supported by the fake API server")
        items = [copy.deepcopy(obj) for (key, obj_namespace, _name), obj in sorted(self._objects.items())
                 if key == rt.key and namespace in ("", obj_namespace)]
        return 200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                     "metadata": {"resourceVersion": str(self._resource_version)}, "items": items}

    def _decode(self, rt, namespace, body):
        """The body as an object of type ``rt`` in ``namespace``, or the 400 the real server answers."""
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise bad_request(f"the body of the request is not a valid {rt.kind}")
        obj = copy.deepcopy(body)
        for field in ("apiVersion", "kind"):
            if rt.custom and not obj.get(field):
                raise bad_request(f"Object '{field[0].upper() + field[1:]}' is missing in '{json.dumps(body)}'")
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        if obj["apiVersion"] != rt.api_version:
            raise bad_request(f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                              f"API version ({rt.api_version})")
        if obj["kind"] != rt.kind:
            raise bad_request(f'{obj["kind"]} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                              f"the kind in the data does not match the resource")
        metadata = obj.setdefault("metadata", {})
        if rt.namespaced and (metadata.get("namespace") or namespace) != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        metadata.pop("namespace", None)
        if rt.namespaced:
            metadata["namespace"] = namespace
        return obj

    def _validate(self, rt, obj):
        metadata = obj["metadata"]
        name = metadata.get("name") or ""
        if not name:
            raise invalid(rt, name, "metadata.name", "FieldValueRequired",
                          "Required value: name or generateName is required")
        if not DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
            raise invalid(rt, name, "metadata.name", "FieldValueInvalid",
                          f'Invalid value: "{name}": {DNS_SUBDOMAIN_HELP}')
        annotations = metadata.get("annotations") or {}
        if rt is SECRETS and obj.get("type") == SA_TOKEN_TYPE and not annotations.get(SA_NAME_ANNOTATION):
            raise invalid(rt, name, f"metadata.annotations[{SA_NAME_ANNOTATION}]", "FieldValueRequired",
                          "Required value")

    def _create(self, rt, namespace, body, dry_run):
        obj = self._decode(rt, namespace, body)
        metadata = obj["metadata"]
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
        if rt.namespaced:
            self._fetch(NAMESPACES, "", namespace)
        _normalize(rt, obj)
        self._validate(rt, obj)
        if (rt.key, namespace, metadata["name"]) in self._objects:
            raise already_exists(rt, metadata["name"])
        for field in ("resourceVersion", "deletionTimestamp", "generation"):
            metadata.pop(field, None)
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=_timestamp())
        if rt.custom:
            metadata["generation"] = 1
        if dry_run:
            return 201, obj
        stored = self._store(rt, obj)
        self._after_create(rt, stored)
        return 201, stored

    def _after_create(self, rt, obj):
        """What controllers do next: a ``default`` ServiceAccount per namespace, secret tokens."""
        if rt is NAMESPACES:
            self._create(SERVICE_ACCOUNTS, obj["metadata"]["name"], {"metadata": {"name": "default"}}, False)
        if rt is SECRETS and obj.get("type") == SA_TOKEN_TYPE:
            self._fill_token_secret(obj)

    def _fill_token_secret(self, secret):
        metadata = secret["metadata"]
        namespace = metadata["namespace"]
        account = self._objects.get((SERVICE_ACCOUNTS.key, namespace, metadata["annotations"][SA_NAME_ANNOTATION]))
        if account is None:
            return
        filled = copy.deepcopy(secret)
        filled["metadata"]["annotations"][SA_UID_ANNOTATION] = account["metadata"]["uid"]
        token = self._mint_legacy(namespace, metadata["name"], account)
        filled["data"] = {**(filled.get("data") or {}), "token": _b64(token), "ca.crt": _b64(self.ca_pem),
                          "namespace": _b64(namespace)}
        self._store(SECRETS, filled)

    def _replace(self, rt, namespace, name, body, dry_run):
        obj = self._decode(rt, namespace, body)
        _check_url_name(obj, name)
        current = self._fetch(rt, namespace, name)
        if rt.custom and not obj["metadata"].get("resourceVersion"):
            raise invalid(rt, name, "metadata.resourceVersion", "FieldValueInvalid",
                          "Invalid value: 0x0: must be specified for an update")
        return self._update(rt, current, obj, dry_run)

    def _patch(self, rt, namespace, name, content_type, body, dry_run):
        if content_type not in patch_types(rt):
            raise unsupported_media_type(patch_types(rt))
        current = self._fetch(rt, namespace, name)
        obj = self._decode(rt, namespace, apply_patch(current, content_type, body))
        _check_url_name(obj, name)
        return self._update(rt, current, obj, dry_run)

    def _update(self, rt, current, obj, dry_run):
        """Store ``obj`` over ``current``: precondition, validation, system fields; no-ops are not writes."""
        metadata, name = obj["metadata"], current["metadata"]["name"]
        if metadata.get("resourceVersion") and metadata["resourceVersion"] != current["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        _normalize(rt, obj)
        self._validate(rt, obj)
        for field in ("uid", "creationTimestamp", "resourceVersion", "generation"):
            metadata.pop(field, None)
            if field in current["metadata"]:
                metadata[field] = current["metadata"][field]
        if rt.custom and _without_metadata(obj) != _without_metadata(current):
            metadata["generation"] = current["metadata"]["generation"] + 1
        if obj == current or dry_run:
            return 200, obj
        return 200, self._store(rt, obj)

    def _delete(self, rt, namespace, name, dry_run):
        """The deleted object for custom objects and namespaces, a Success Status for the others (as the
        real registry's ``ReturnDeletedObject`` says)."""
        current = copy.deepcopy(self._fetch(rt, namespace, name))
        if not dry_run:
            del self._objects[(rt.key, namespace, name)]
            if rt is NAMESPACES:
                for key in [key for key in self._objects if key[1] == name]:
                    del self._objects[key]
            self._bump()
        if rt.custom or rt is NAMESPACES:
            return 200, current
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": _details(rt, name, uid=current["metadata"]["uid"])}

    # ----------------------------------------------------------------- authentication.k8s.io

    def _token_review(self, identity, body):
        spec = self._decode(TOKEN_REVIEWS, "", body).get("spec") or {}
        if not spec.get("token"):
            raise bad_request("token is required for TokenReview in authentication.k8s.io")
        try:
            user, audiences = self.review_token(spec["token"], spec.get("audiences"))
            status = {"authenticated": True, "user": user.user_info(), "audiences": audiences}
        except InvalidToken as error:
            status = {"authenticated": False, "user": {}, "error": f"[invalid bearer token, {error}]"}
        self._token_reviews.append({"caller": identity.username, "spec": copy.deepcopy(spec),
                                    "status": copy.deepcopy(status)})
        return 201, {"kind": "TokenReview", "apiVersion": TOKEN_REVIEWS.api_version,
                     "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}

    def _token_request(self, namespace, name, body):
        account = self._fetch(SERVICE_ACCOUNTS, namespace, name)
        spec = self._decode(TOKEN_REQUESTS, namespace, body or {}).get("spec") or {}
        ttl = spec.get("expirationSeconds") or 3600
        if ttl < 600:
            raise invalid(TOKEN_REQUESTS, name, "spec.expirationSeconds", "FieldValueInvalid",
                          f"Invalid value: {ttl}: may not specify a duration less than 10 minutes")
        audiences = spec.get("audiences") or list(self.api_audiences)
        token, expires = self._mint_bound(namespace, name, account["metadata"]["uid"], audiences, ttl)
        expiry = datetime.datetime.fromtimestamp(expires, datetime.timezone.utc)
        return 201, {"kind": "TokenRequest", "apiVersion": TOKEN_REQUESTS.api_version,
                     "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
                     "spec": {"audiences": audiences, "expirationSeconds": ttl, "boundObjectRef": None},
                     "status": {"token": token, "expirationTimestamp": _timestamp(expiry)}}

    # ----------------------------------------------------------------- /_fake/ admin endpoint

    def _admin_routes(self):
        """``(method, path) → handler(body)`` for driving a fake that runs in another process."""
        return {
            ("GET", "/_fake/requests"): lambda body: {"requests": self.requests, "tokenReviews": self.token_reviews},
            ("DELETE", "/_fake/requests"): lambda body: self.clear_requests(),
            ("POST", "/_fake/faults"): lambda body: self.inject(**body),
            ("POST", "/_fake/rules"): lambda body: self._add_rule(**body),
            ("POST", "/_fake/revoke"): lambda body: self.revoke(**body),
            ("POST", "/_fake/crds"): lambda body: self.install_crd(**body),
            ("POST", "/_fake/crds/uninstall"): lambda body: self.uninstall_crd(**body),
        }

    def _serve_admin(self, method, path, body, identity):
        if MASTERS not in identity.groups:
            raise ApiError(403, f'forbidden: User "{identity.username}" cannot {method.lower()} path "{path}"')
        handler = self._admin_routes().get((method, path))
        if handler is None:
            raise no_such_resource()
        try:
            result = handler(_parse_json(body) or {})
        except (TypeError, KeyError, ValueError, re.error) as error:
            raise bad_request(f"bad admin request: {error}") from None
        return 200, result if result is not None else {"kind": "Status", "apiVersion": "v1", "status": "Success"}


def _api_group(group, versions):
    entries = [{"groupVersion": f"{group}/{version}", "version": version} for version in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _rule_matches(rule, request):
    return all(allowed in ("*", wanted) for allowed, wanted in zip(rule, request))


def _binds(binding, identity):
    for subject in binding.get("subjects") or ():
        kind, name = subject.get("kind"), subject.get("name")
        if kind == "ServiceAccount":
            name = f"system:serviceaccount:{subject.get('namespace')}:{name}"
        if (kind == "Group" and name in identity.groups) or (kind != "Group" and name == identity.username):
            return True
    return False


def _normalize(rt, obj):
    """Defaults the real registry applies: Secret ``stringData`` folded into ``data``, namespace phase."""
    if rt is SECRETS:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            obj["data"] = {**(obj.get("data") or {}), **{k: _b64(v) for k, v in string_data.items()}}
    if rt is NAMESPACES:
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = {"phase": "Active"}


def _check_url_name(obj, name):
    found = obj["metadata"].get("name")
    if found != name:
        raise bad_request(f"the name of the object ({found}) does not match the name on the URL ({name})")


# --------------------------------------------------------------------------- process mode


def _serve(args):
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ready = os.path.join(args.state_dir, "ready")
    if os.path.exists(ready):
        os.remove(ready)
    with FakeKubeApi(state_dir=args.state_dir, port=args.port, install_default_crds=not args.no_crds) as api:
        info = {"url": api.url, "kubeconfig": api.write_kubeconfig(os.path.join(args.state_dir, "kubeconfig")),
                "ca_file": api.ca_file, "pid": os.getpid()}
        _write_atomic(os.path.join(args.state_dir, "url"), api.url + "\n")
        _write_atomic(ready, json.dumps(info) + "\n")
        print(json.dumps(info), flush=True)
        while not stop.wait(0.5):
            pass
    os.remove(ready)
    return 0


def _call(server, token, context, method, path, body=None):
    """One JSON request to the API server: ``(status, body)``."""
    request = urllib.request.Request(server + path, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _mint(args):
    with open(os.path.join(args.state_dir, "kubeconfig")) as handle:
        config = yaml.safe_load(handle)
    server = next(c["cluster"]["server"] for c in config["clusters"] if c["name"] == "fake")
    token = next(u["user"]["token"] for u in config["users"] if u["name"] == config["current-context"])
    context = ssl.create_default_context(cafile=os.path.join(args.state_dir, "ca.crt"))
    namespace, name = args.namespace, args.name
    steps = [
        ("/api/v1/namespaces", {"metadata": {"name": namespace}}, (201, 409)),
        (f"/api/v1/namespaces/{namespace}/serviceaccounts", {"metadata": {"name": name}}, (201, 409)),
        (f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token",
         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
          "spec": {"audiences": args.audience, "expirationSeconds": args.duration}}, (201,)),
    ]
    for path, body, expected in steps:
        try:
            status, answer = _call(server, token, context, "POST", path, body)
        except urllib.error.URLError as error:
            print(f"cannot reach the fake API server at {server}: {error.reason}", file=sys.stderr)
            return 1
        if status not in expected:
            print(f"POST {path}: {status} {answer.get('message')}", file=sys.stderr)
            return 1
    print(answer["status"]["token"])
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m harness.fake_k8s", description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--state-dir", required=True, help="keys, state.json, kubeconfig, ca.crt, url, ready")
    if argv[:1] == ["mint"]:
        parser.prog += " mint"
        parser.add_argument("--namespace", required=True)
        parser.add_argument("--name", required=True, help="ServiceAccount name (created when missing)")
        parser.add_argument("--audience", action="append", default=None, help="repeatable; default: the API")
        parser.add_argument("--duration", type=int, default=3600, help="seconds, at least 600")
        return _mint(parser.parse_args(argv[1:]))
    parser.add_argument("--port", type=int, default=None, help="default: the previous port if free, else any")
    parser.add_argument("--no-crds", action="store_true", help="do not install the ControlPlane/IstioOperator CRDs")
    args = parser.parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
