# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection options (url, TLS, namespace, timeout, retries) and the hvac.Client built from them.

Environment variables are read when the module runs (VaultConnection.from_params), never as
argspec defaults at import time. Each option falls back to VAULT_<X>, then BAO_<X>.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import os

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.meshpki.vault_ca.plugins.module_utils.environ import env  # noqa: F401 (also imported from here)
from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import MeshPkiError
from ansible_collections.meshpki.vault_ca.plugins.module_utils.redirects import SameOriginSession
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.paths import check_path

try:
    import hvac
    import requests
    from urllib3.exceptions import MaxRetryError
    from urllib3.util.retry import Retry
except ImportError:
    Retry = object

CONNECTION_ARGSPEC = dict(
    url=dict(type="str", aliases=["vault_addr"]),
    namespace=dict(type="str"),
    ca_cert=dict(type="path", aliases=["cacert"]),
    validate_certs=dict(type="bool"),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    timeout=dict(type="int", default=30),
    retries=dict(type="int", default=3),
    retry_backoff=dict(type="float", default=0.5),
)

# Statuses that mean "the request was not processed": safe to repeat for any method.
RETRY_ANY_METHOD = frozenset([412, 429, 503])
# Statuses after which a write may or may not have happened: repeat only idempotent methods.
RETRY_IDEMPOTENT_ONLY = frozenset([500, 502, 504])
IDEMPOTENT_METHODS = frozenset(["GET", "HEAD", "LIST", "PUT", "DELETE", "OPTIONS"])
# Paths whose 500 is an answer, not a fault: <mount>/issuer/default of a mount without a default issuer ("no default
# issuer currently configured"). Repeating it would only wait for the same answer (the PKI modules read it once
# per mount instead of config/issuers then issuer/<id>).
NO_RETRY_500_SUFFIXES = ("/issuer/default",)


class VaultRetry(Retry):
    """urllib3 Retry that repeats 500/502/504 only for idempotent methods.

    A POST to ``intermediate/generate/exported`` that failed with a 502 may still have created a
    key: repeating it blindly would create a second one. 412/429/503 mean nothing was done.
    Connection errors before the request is sent are always retried.
    """

    def is_retry(self, method, status_code, has_retry_after=False):
        if self.total is not None and self.total <= 0:
            return False
        if status_code in RETRY_ANY_METHOD:
            return True
        return status_code in RETRY_IDEMPOTENT_ONLY and method.upper() in IDEMPOTENT_METHODS

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if response is not None and response.status == 500 and \
                (url or "").split("?", 1)[0].rstrip("/").endswith(NO_RETRY_500_SUFFIXES):
            # what urllib3 does when the retries are used up: with raise_on_status=False, the response is returned
            raise MaxRetryError(_pool, url, error)
        return super(VaultRetry, self).increment(method, url, response, error, _pool, _stacktrace)


def _index_value(index):
    """(cluster, number) of an X-Vault-Index header (base64 JSON), or None when it is not that shape."""
    try:
        data = json.loads(base64.b64decode(index + "=" * (-len(index) % 4)).decode("utf-8"))
        return data.get("cluster"), int(data.get("value"))
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None


def read_your_writes(session):
    """A response hook: send back the highest X-Vault-Index seen.

    OpenBao's standby nodes (raft, 2.x) answer reads from their own copy, which lags the active node: a mount
    just enabled through the active node is "no handler for route" on a standby a moment later, a token just
    created is unknown there. With the index of our last write sent along, and X-Vault-Inconsistent:
    forward-active-node, a standby that has not applied that write yet forwards the request to the active node
    instead of answering from stale data (without forwarding it would answer 429 Retry-After, which VaultRetry
    repeats). Vault without indexed storage sends no such header: nothing changes."""
    def hook(response, *args, **kwargs):
        index = response.headers.get("X-Vault-Index")
        if index:
            current = session.headers.get("X-Vault-Index")
            new, old = _index_value(index), _index_value(current) if current else None
            if old is None or new is None or new[0] != old[0] or new[1] >= old[1]:
                session.headers["X-Vault-Index"] = index
                session.headers["X-Vault-Inconsistent"] = "forward-active-node"
        return response
    return hook


class VaultConnection(object):
    """Resolved connection settings (module parameters first, then the environment)."""

    def __init__(self, url, namespace=None, ca_cert=None, validate_certs=True, client_cert=None,
                 client_key=None, timeout=30, retries=3, retry_backoff=0.5):
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.ca_cert = ca_cert
        self.validate_certs = validate_certs
        self.client_cert = client_cert
        self.client_key = client_key
        self.timeout = timeout
        self.retries = retries
        self.retry_backoff = retry_backoff

    @classmethod
    def from_params(cls, params):
        url = params.get("url") or env("VAULT_ADDR", "BAO_ADDR")
        if not url:
            raise MeshPkiError("No Vault address: set the url option, or VAULT_ADDR (BAO_ADDR) in the environment.")
        if not url.startswith(("http://", "https://")):
            raise MeshPkiError("Vault address '%s' must start with http:// or https://." % url)
        validate = params.get("validate_certs")
        if validate is None:
            skip = env("VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY")
            validate = not boolean(skip, strict=False) if skip else True
        ca_cert = params.get("ca_cert") or env("VAULT_CACERT", "BAO_CACERT")
        if ca_cert and not os.path.exists(ca_cert):
            raise MeshPkiError("The CA certificate file '%s' (ca_cert or VAULT_CACERT) does not exist." % ca_cert)
        client_cert = params.get("client_cert") or env("VAULT_CLIENT_CERT", "BAO_CLIENT_CERT")
        client_key = params.get("client_key") or env("VAULT_CLIENT_KEY", "BAO_CLIENT_KEY")
        if bool(client_cert) != bool(client_key):
            raise MeshPkiError("client_cert and client_key (VAULT_CLIENT_CERT/VAULT_CLIENT_KEY) go together; "
                               "only one of them is set.")
        namespace = params.get("namespace")
        if namespace:
            namespace = check_path("namespace", namespace, "namespace")
        elif env("VAULT_NAMESPACE", "BAO_NAMESPACE"):
            namespace = check_path("VAULT_NAMESPACE (the namespace from the environment)",
                                   env("VAULT_NAMESPACE", "BAO_NAMESPACE"), "namespace")
        return cls(url, namespace=namespace or None,
                   ca_cert=ca_cert, validate_certs=validate, client_cert=client_cert, client_key=client_key,
                   timeout=params.get("timeout") or 30, retries=max(params.get("retries") or 0, 0),
                   retry_backoff=params.get("retry_backoff") if params.get("retry_backoff") is not None else 0.5)

    def ca_description(self):
        if not self.validate_certs:
            return "no verification (validate_certs is false)"
        if self.ca_cert:
            return "CA file '%s'" % self.ca_cert
        return "the system trust store (no ca_cert or VAULT_CACERT given)"

    def verify(self):
        if not self.validate_certs:
            return False
        return self.ca_cert or True

    def session(self):
        # hvac's adapter calls session.request(allow_redirects=True): this Session follows a redirect only within
        # url's origin, so X-Vault-Token and login bodies (secret_id, password) never go anywhere else.
        session = SameOriginSession()
        # hvac takes verify/cert from a session it is given (a new Session's verify=True would
        # otherwise override the CA file), so they are set here, on the session itself.
        session.verify = self.verify()
        session.cert = self.cert()
        retry = VaultRetry(
            # redirect=0: requests' HTTPAdapter never lets urllib3 follow redirects; the Session does.
            total=self.retries, connect=self.retries, read=0, redirect=0, status=self.retries,
            backoff_factor=self.retry_backoff, allowed_methods=None, raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = requests.adapters.HTTPAdapter(max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.hooks["response"].append(read_your_writes(session))
        return session

    def cert(self):
        return (self.client_cert, self.client_key) if self.client_cert else None

    def client(self, token=None):
        # hvac.Client(token=None) falls back to VAULT_TOKEN and ~/.vault-token by itself, and would send that
        # ambient token along with an approle/userpass/kubernetes/cert login - to whatever server url names.
        # The token auth method reads those sources itself; every other method must start without a token.
        return hvac.Client(url=self.url, token=token if token is not None else "", cert=self.cert(),
                           verify=self.verify(), timeout=self.timeout, namespace=self.namespace,
                           session=self.session())
