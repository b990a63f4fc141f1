"""The HTTP plumbing of the tests' proxies in front of OpenBao (tests/harness/write_stop.py, the reliability
suite's FaultProxy): a threaded server on 127.0.0.1 that hands every request, whatever its method, to one
callable, and a way to drop a client's connection without an answer (what a dead server or a cut network leaves)."""

import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def serve(port, handle):
    """Listen on 127.0.0.1:``port`` and call ``handle(handler)`` for every request (any method); returns
    (server, thread). ``server.shutdown(); server.server_close()`` stops it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def handle_any(self):
            handle(self)

        do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_PATCH = do_HEAD = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler, bind_and_activate=False)
    server.allow_reuse_address = True
    server.daemon_threads = True
    server.server_bind()
    server.server_activate()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return server, thread


def read_request(handler):
    """(method, Vault path without /v1/, body bytes or None) of the request ``handler`` holds."""
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length) if length else None
    path = urllib.parse.urlsplit(handler.path).path
    return handler.command.upper(), (path[len("/v1/"):] if path.startswith("/v1/") else path), body


def drop(handler):
    """Close the client's connection without an answer."""
    handler.close_connection = True
    try:
        handler.connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Relay(object):
    """A proxy's life cycle: ``port`` (set by the subclass), ``url``, ``start()`` serving ``self.handle(handler)``,
    ``stop()`` (new connections are then refused, as by a dead server)."""

    port = None
    server = None
    thread = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def handle(self, handler):
        raise NotImplementedError

    def start(self):
        self.server, self.thread = serve(self.port, self.handle)
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
