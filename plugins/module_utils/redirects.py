# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Redirects are followed only within one origin (scheme, host and port).

Every request the collection makes carries a credential: X-Vault-Token, a login body (AppRole secret_id,
password, JWT), the kubeconfig's bearer token or client certificate. A redirect to another origin would
re-send it there (requests strips only the Authorization header when the host changes, never X-Vault-Token,
and a 307/308 repeats the body; https to http would send it in clear). So a redirect to another origin is
refused before anything is sent to it, with RedirectRefused naming the Location.

Who follows redirects:
- Vault/OpenBao: hvac's adapter calls ``requests.Session.request(..., allow_redirects=True)``, so the
  requests Session follows them (urllib3 never does: requests' HTTPAdapter asks urllib3 for no
  redirects). SameOriginSession checks every hop before requests sends it.
- Kubernetes: the ``kubernetes`` client calls ``urllib3.PoolManager.request``, which follows redirects
  for every method; it asks the Retry object of the connection pool before each hop. SameOriginRetry
  (installed by guard_pool_manager) checks the hop there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import (
    DEFAULT_PORTS,
    RedirectRefused,
    check_redirect,
    origin,
)

try:
    import requests
    from urllib3.util.retry import Retry
except ImportError:  # reported by the module through missing_required_lib
    requests = None
    Retry = object

MAX_REDIRECTS = 3

VAULT_FIX = ("Point url at the active node or at the load balancer in front of the cluster: Vault and OpenBao "
             "standbys forward requests to the active node by default, and redirect only when forwarding is "
             "disabled or while no node is active (then re-run once the cluster has an active node).")


if requests is not None:
    class SameOriginSession(requests.Session):
        """A requests Session that follows redirects (at most MAX_REDIRECTS) only within one origin."""

        service = "Vault"
        fix = VAULT_FIX

        def __init__(self):
            super(SameOriginSession, self).__init__()
            self.max_redirects = MAX_REDIRECTS

        def _check(self, response):
            location = self.get_redirect_target(response)
            if location:
                check_redirect(response.url, location, response.status_code, self.service, self.fix)

        def resolve_redirects(self, resp, req, *args, **kwargs):
            # requests sends hop n+1 only when the generator is resumed after yielding hop n: each response is
            # checked before that. yield_requests (allow_redirects=False) only builds the next request.
            check = not kwargs.get("yield_requests")
            if check:
                self._check(resp)
            for item in super(SameOriginSession, self).resolve_redirects(resp, req, *args, **kwargs):
                if check:
                    self._check(item)
                yield item
else:
    SameOriginSession = None


class SameOriginRetry(Retry):
    """urllib3 Retry whose redirect step refuses another origin (PoolManager asks it before each hop)."""

    service = "The Kubernetes API"
    fix = "Point the server of the kubeconfig's cluster entry at the API server itself."

    def new(self, **kw):
        retry = super(SameOriginRetry, self).new(**kw)
        retry.service, retry.fix = self.service, self.fix
        return retry

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        location = response.get_redirect_location() if response is not None and error is None else None
        if location:
            if _pool is not None and not origin(url):  # a path: the pool knows the origin
                url = "%s://%s:%s%s" % (_pool.scheme, _pool.host, _pool.port or DEFAULT_PORTS.get(_pool.scheme),
                                        url or "/")
            try:
                check_redirect(url, location, response.status, self.service, self.fix)
            except RedirectRefused:
                response.drain_conn()
                raise
        return super(SameOriginRetry, self).increment(method, url, response, error, _pool, _stacktrace)


def guard_pool_manager(pool_manager, fix):
    """Make a urllib3 PoolManager (the kubernetes client's) follow redirects only within one origin.

    PoolManager follows a redirect after asking ``retries.increment``, and its pools take their Retry from
    connection_pool_kw: a SameOriginRetry there (keeping the configured number of retries) checks each hop."""
    configured = pool_manager.connection_pool_kw.get("retries")
    total = configured if isinstance(configured, int) and not isinstance(configured, bool) else 3
    retry = SameOriginRetry(total=total, redirect=MAX_REDIRECTS)
    retry.fix = fix
    pool_manager.connection_pool_kw["retries"] = retry
    pool_manager.clear()  # pools already made keep their old Retry
    return pool_manager
