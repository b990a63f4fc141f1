# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A strict fake Vault for unit tests: the collection's real VaultClient over a fake hvac adapter.

Everything VaultClient does (missing_ok, path checks and percent-encoding, turning hvac errors into MeshPkiError
with the action, path and capability) runs for real; only the HTTP exchange is replaced:

- ``answers``: ``{(method, path): body}``; a body may be an exception (raised), an int status (404, 403, 400, 503:
  the matching hvac exception), or a list served in turn (the last one repeats).
- A GET or LIST of a path without an answer is 404 (``InvalidPath``): ``read``/``list`` give None/[] and any
  other request fails, as with a real server. A write (POST/PUT/PATCH/DELETE) without an answer succeeds with no
  body (204) unless ``strict_writes`` is set, then it is an ``AssertionError`` naming the request.
- ``GET <mount>/issuer/default`` without an answer of its own is answered as Vault does, from the answers for
  ``<mount>/config/issuers`` (the default issuer's id) and ``<mount>/issuer/<id>``: 500 "no default issuer currently
  configured" when the id is empty, 404 when the mount has no ``config/issuers`` answer. Only the request made is
  recorded.
- Every request is recorded with its JSON body: ``requests`` (list of Request), ``writes()``, ``paths()``,
  ``body(method, path)``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import collections
import urllib.parse

import hvac.exceptions as hvac_exc

from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.client import VaultClient
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection

Request = collections.namedtuple("Request", "method path json params")
READS = ("GET", "LIST")
DEFAULT_ISSUER = "/issuer/default"
STATUS = {400: hvac_exc.InvalidRequest, 403: hvac_exc.Forbidden, 404: hvac_exc.InvalidPath,
          500: hvac_exc.InternalServerError, 503: hvac_exc.VaultDown, 412: hvac_exc.PreconditionFailed}


class FakeAdapter(object):
    def __init__(self, vault):
        self.vault = vault

    def request(self, method, url, json=None, params=None, **kwargs):
        assert url.startswith("/v1/"), url
        path = urllib.parse.unquote(url[len("/v1/"):])
        return self.vault.answer(method, path, json, params)

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):  # what the auth methods' login sends
        return self.request("POST", url, **kwargs)


class FakeHvac(object):
    def __init__(self, vault):
        self.adapter = FakeAdapter(vault)


class FakeVault(VaultClient):
    def __init__(self, answers=None, strict_writes=False, url="https://vault.test:8200"):
        conn = VaultConnection.from_params({"url": url, "validate_certs": True})
        super(FakeVault, self).__init__(FakeHvac(self), conn)
        self.answers = dict(answers or {})
        self.strict_writes = strict_writes
        self.requests = []

    def answer(self, method, path, json=None, params=None):
        self.requests.append(Request(method, path, json, params))
        if method == "GET" and path.endswith(DEFAULT_ISSUER) and (method, path) not in self.answers:
            return self._default_issuer(path[:-len(DEFAULT_ISSUER)])
        return self._serve(method, path, json)

    def _default_issuer(self, mount):
        config = self._serve("GET", mount + "/config/issuers") or {}
        default = (config.get("data") or {}).get("default")
        if not default:
            raise hvac_exc.InternalServerError("no default issuer currently configured",
                                               errors=["1 error occurred:\n\t* no default issuer currently configured"],
                                               method="GET", url=mount + DEFAULT_ISSUER)
        return self._serve("GET", "%s/issuer/%s" % (mount, default))

    def _serve(self, method, path, json=None):
        key = (method, path)
        if key not in self.answers:
            if method in READS:
                raise hvac_exc.InvalidPath("no handler for %s %s" % key, method=method, url=path)
            if self.strict_writes:
                raise AssertionError("unexpected request %s %s %r" % (method, path, json))
            return None
        answer = self.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, int) and not isinstance(answer, bool):
            raise STATUS[answer]("status %d" % answer, errors=["status %d" % answer], method=method, url=path)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def writes(self):
        return [(r.method, r.path) for r in self.requests if r.method not in READS]

    def paths(self, method=None):
        return [r.path for r in self.requests if method is None or r.method == method]

    def body(self, method, path):
        """The JSON body of the last such request (AssertionError when there was none)."""
        for request in reversed(self.requests):
            if (request.method, request.path) == (method, path):
                return request.json
        raise AssertionError("no %s %s among %r" % (method, path, [(r.method, r.path) for r in self.requests]))


def login_answer(token="hvs.from-login", **auth):
    """The body of a successful login (``auth/<mount>/login``): a client token and any other ``auth`` fields."""
    return {"auth": dict({"client_token": token}, **auth)}
