# -*- coding: utf-8 -*-
# Copyright (c) meshpki.vault_ca contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's one exception, and the translation of hvac/requests errors into messages
that name the action, the path and the fix. Every module catches MeshPkiError once, in main()."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys
from urllib.parse import urljoin, urlsplit


def _loaded(name):
    """The module ``name`` if something imported it, else None: an exception can only be an instance of a class of a
    library that is loaded, so hvac and requests are not imported here (the role's input filters use this file, once
    per host, and never need them)."""
    return sys.modules.get(name)


class MeshPkiError(Exception):
    """A failure the user can act on; str(e) is the whole message for fail_json."""

    def __init__(self, msg, **details):
        super(MeshPkiError, self).__init__(msg)
        self.details = details


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url):
    """(scheme, host, port) of an absolute URL, with the default port filled in; None when it has no host."""
    try:
        parts = urlsplit(url or "")
        scheme = parts.scheme.lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port


def origin_text(url):
    found = origin(url)
    if found is None:
        return url
    scheme, host, port = found
    return "%s://%s:%s" % (scheme, "[%s]" % host if ":" in host else host, port)


class RedirectRefused(MeshPkiError):
    """A redirect to another origin, refused before any request was sent there."""

    def __init__(self, url, location, status, service, fix):
        self.url = url
        self.location = location
        self.status = status
        downgrade = " (https to http is never followed)" if (
            url.lower().startswith("https:") and location.lower().startswith("http:")) else ""
        super(RedirectRefused, self).__init__(
            "%s at %s redirected the request to another origin (HTTP %s, Location: %s)%s. Redirects are followed "
            "only within the same scheme, host and port, so credentials are never sent elsewhere; nothing was "
            "sent to %s. %s" % (service, origin_text(url), status, location, downgrade, origin_text(location), fix),
            status=status, location=location)


def check_redirect(url, location, status, service, fix):
    """The absolute target of ``location`` (relative to ``url``); RedirectRefused when its origin is not url's."""
    target = urljoin(url, location)
    if origin(target) is None or origin(target) != origin(url):
        raise RedirectRefused(url, target, status, service, fix)
    return target


def _vault_errors(exc):
    errors = getattr(exc, "errors", None)
    if isinstance(errors, (list, tuple)):
        errors = "; ".join(str(e) for e in errors if e)
    return errors or str(exc) or exc.__class__.__name__


def _capabilities(capability):
    """'read'; a tuple is alternatives ('create' or 'update'); a frozenset is all of them ('delete' and 'sudo')."""
    if isinstance(capability, frozenset):
        return " and ".join("'%s'" % c for c in sorted(capability))
    if isinstance(capability, (list, tuple)):
        return " or ".join("'%s'" % c for c in capability)
    return "'%s'" % capability


# What OpenSSL says when the server's first bytes are not a TLS record - a plain-HTTP server answering the
# ClientHello with "HTTP/1.1 400 ...": "wrong version number" (OpenSSL 1.1/3.0), "record layer failure" or
# "packet length too long" (OpenSSL 3.2+).
_PLAIN_HTTP_MARKERS = ("wrong version number", "wrong_version_number", "record layer failure",
                       "record_layer_failure", "packet length too long")


def _plain_http_answer(exc):
    text = str(exc).lower()
    return "certificate" not in text and any(marker in text for marker in _PLAIN_HTTP_MARKERS)


def _ssl_reason(exc):
    """OpenSSL's words in an SSLError ('wrong version number'), else the class name."""
    text = str(exc)
    start = text.find("[SSL")
    start = text.find("]", start) if start >= 0 else -1
    if start < 0:
        return exc.__class__.__name__
    end = text.find(" (_ssl.c", start)
    return "OpenSSL: " + text[start + 1:end if end > start else None].strip("'\" )")


def _with_scheme(url, scheme):
    """``url`` with its scheme replaced by ``scheme``."""
    rest = url.split("://", 1)[1] if "://" in url else url
    return "%s://%s" % (scheme, rest)


def _speaks_tls(url, timeout=3):
    """True when the server at ``url``'s host and port completes a TLS handshake (certificate not checked: the
    question is only which protocol it speaks; nothing is sent after the handshake)."""
    import socket
    import ssl
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 80
    except ValueError:
        return False
    if not host:
        return False
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host):
                return True
    except (OSError, ValueError):
        return False


def describe_request_error(exc, action, path, capability, conn, seal_status=None):
    """Return a MeshPkiError for an exception raised by a request to Vault.

    ``action`` is a verb phrase ("read", "write", "log in with approle"), ``path`` the API path
    without /v1/, ``capability`` the policy capability the call needs (a tuple: any of them; a
    frozenset: all of them), ``conn`` the VaultConnection (for the URL and the CA in use),
    ``seal_status`` the body of sys/seal-status when the caller could read it after a 503 (it tells
    sealed from not initialised).
    """
    target = "Failed to %s '%s'" % (action, path)
    url = conn.url if conn is not None else "?"
    req_exc, hvac_exc = _loaded("requests.exceptions"), _loaded("hvac.exceptions")
    if isinstance(exc, RedirectRefused):  # a standby's 307 to the active node, or anything else elsewhere
        return MeshPkiError("%s: %s" % (target, exc), **exc.details)
    if req_exc is not None and isinstance(exc, req_exc.SSLError) and _plain_http_answer(exc):
        return MeshPkiError(
            "%s: %s does not speak TLS: the server answered the TLS handshake in plain HTTP (%s). The URL scheme "
            "is wrong, not the CA: use an http:// URL (%s) in url (or VAULT_ADDR), or point it at the server's "
            "TLS listener." % (target, url, _ssl_reason(exc), _with_scheme(url, "http")))
    if req_exc is not None and isinstance(exc, req_exc.SSLError):
        ca = conn.ca_description() if conn is not None else "the system trust store"
        return MeshPkiError(
            "%s: TLS verification of %s failed using %s (%s). Pass the CA that signed Vault's certificate "
            "with ca_cert (or VAULT_CACERT), or set validate_certs: false for a test server only."
            % (target, url, ca, exc))
    if req_exc is not None and isinstance(exc, (req_exc.ConnectionError, req_exc.ChunkedEncodingError)) \
            and url.startswith("http://") and _speaks_tls(url):
        # A TLS listener answers a plain-HTTP request with a 400 and closes; a request with a body (a login) may
        # see the connection reset before that answer. A TLS handshake (no request, no credential) tells.
        return MeshPkiError("%s: %s serves TLS; use an https:// URL. The URL scheme is wrong: url (or VAULT_ADDR) "
                            "is %s - change http:// to https://." % (target, _with_scheme(url, "https"), url),
                            status=400)
    if req_exc is not None and isinstance(exc, (req_exc.ConnectionError, req_exc.Timeout,
                                                req_exc.ChunkedEncodingError)):
        hint = ""
        if "Connection aborted" in str(exc) or "RemoteDisconnected" in str(exc) or "BadStatusLine" in str(exc):
            hint = (" The connection was closed without an answer: if the server speaks TLS, use an https:// URL; if "
                    "it stopped while answering, the request may or may not have been applied - re-run once it is "
                    "back (every module reads the state before changing it).")
        return MeshPkiError(
            "%s: Vault at %s is unreachable (%s). Check url (or VAULT_ADDR) and that the server is listening.%s"
            % (target, url, exc.__class__.__name__ + ": " + str(exc), hint))
    if hvac_exc is None or not isinstance(exc, hvac_exc.VaultError):
        return MeshPkiError("%s: %s: %s" % (target, exc.__class__.__name__, exc))
    vault_says = _vault_errors(exc)
    if isinstance(exc, hvac_exc.Forbidden):
        return MeshPkiError(
            "%s: permission denied - the token needs %s on '%s', or it is invalid or expired (Vault said: %s)"
            % (target, _capabilities(capability), path, vault_says), status=403)
    if isinstance(exc, hvac_exc.Unauthorized):
        return MeshPkiError("%s: not authenticated (Vault said: %s). Check the credentials of the auth method."
                            % (target, vault_says), status=401)
    if isinstance(exc, hvac_exc.InvalidPath):
        mount = path.split("/", 1)[0]
        return MeshPkiError(
            "%s: not found (Vault said: %s). Is a secrets engine or auth method mounted at '%s'?"
            % (target, vault_says, mount), status=404)
    if isinstance(exc, hvac_exc.VaultDown) and seal_status and not seal_status.get("initialized", True):
        exc = hvac_exc.VaultNotInitialized()
    if isinstance(exc, hvac_exc.VaultDown):
        return MeshPkiError(
            "%s: Vault at %s is sealed or on standby without forwarding (503: %s). Unseal it or point url at "
            "the active node." % (target, url, vault_says), status=503)
    if isinstance(exc, hvac_exc.VaultNotInitialized):
        return MeshPkiError("%s: Vault at %s is not initialised. Initialise it ('bao operator init' or "
                            "'vault operator init') and unseal it first."
                            % (target, url), status=501)
    if isinstance(exc, hvac_exc.InvalidRequest) and "HTTP request to an HTTPS server" in vault_says:
        return MeshPkiError("%s: %s serves TLS; use an https:// URL. The URL scheme is wrong: url (or VAULT_ADDR) "
                            "is %s - change http:// to https://." % (target, _with_scheme(url, "https"), url),
                            status=400)
    if isinstance(exc, hvac_exc.InvalidRequest):
        return MeshPkiError("%s: Vault rejected the request (400): %s" % (target, vault_says), status=400)
    if isinstance(exc, hvac_exc.PreconditionFailed):
        return MeshPkiError("%s: precondition failed (412: %s); retry later or raise retries."
                            % (target, vault_says), status=412)
    if isinstance(exc, hvac_exc.RateLimitExceeded):
        return MeshPkiError("%s: rate limited (429: %s); raise retries or slow down." % (target, vault_says),
                            status=429)
    return MeshPkiError("%s: %s (%s)" % (target, vault_says, exc.__class__.__name__))
