"""An http:// URL pointed at a TLS listener: whichever way the failed request surfaces - the listener's 400 "Client
sent an HTTP request to an HTTPS server", or (for a request with a body, such as a login) the connection reset
before that answer arrives - the message points at the URL scheme. The reset case is timing-dependent against a
real server, so here the exception is built and the listener is a real TLS socket on loopback."""

import socket
import ssl
import threading

import pytest
import requests

from ansible_collections.meshpki.vault_ca.plugins.module_utils.errors import describe_request_error
from ansible_collections.meshpki.vault_ca.plugins.module_utils.vault.connection import VaultConnection
from harness import certs

RESET = ("Connection broken: ConnectionResetError(104, 'Connection reset by peer')",
         ConnectionResetError(104, "Connection reset by peer"))


@pytest.fixture
def listener(tmp_path):
    """A loopback listener; ``tls`` decides whether it completes TLS handshakes. Yields its port."""
    def start(tls):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        context = None
        if tls:
            ca = certs.make_ca("scheme test CA")
            cert, key = certs.make_server_cert(ca).write(str(tmp_path), "server")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)

        def serve():
            while True:
                try:
                    conn, _addr = sock.accept()
                except OSError:
                    return
                try:
                    if context:
                        context.wrap_socket(conn, server_side=True).close()
                    else:
                        conn.close()
                except (OSError, ssl.SSLError):
                    conn.close()
        threading.Thread(target=serve, daemon=True).start()
        opened.append(sock)
        return sock.getsockname()[1]
    opened = []
    yield start
    for sock in opened:
        sock.close()


@pytest.mark.parametrize("exc", [requests.exceptions.ChunkedEncodingError(*RESET),
                                 requests.exceptions.ConnectionError(*RESET)])
def test_a_reset_from_a_tls_listener_points_at_the_scheme(listener, exc):
    port = listener(tls=True)
    conn = VaultConnection("http://127.0.0.1:%d" % port)
    msg = str(describe_request_error(exc, "log in with approle auth", "auth/approle/login", "update", conn))
    assert "https://127.0.0.1:%d serves TLS; use an https:// URL" % port in msg, msg
    assert "change http:// to https://" in msg


def test_a_reset_from_a_plain_listener_stays_unreachable(listener):
    port = listener(tls=False)
    conn = VaultConnection("http://127.0.0.1:%d" % port)
    msg = str(describe_request_error(requests.exceptions.ChunkedEncodingError(*RESET), "read", "sys/mounts",
                                     "read", conn))
    assert "serves TLS" not in msg and "is unreachable" in msg, msg
