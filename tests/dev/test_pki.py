"""The fleet CA and serving certificates pass a real TLS handshake with hostname checks."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from fleet.dev.localfleet import pki


@pytest.fixture
def serving(tmp_path: Path) -> tuple[pki.CertificateAuthority, Path, Path]:
    ca = pki.ensure_ca(tmp_path / "pki")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    pki.issue_serving_cert(ca, "local-1-apiserver", cert, key)
    return ca, cert, key


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_serving_cert_verifies_against_the_fleet_ca(serving, host):
    ca, cert, key = serving
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_one() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve_one)
        thread.start()
        client_context = ssl.create_default_context(cadata=ca.cert_pem)
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.recv(2) == b"ok"
        thread.join()


def test_ca_is_kept_across_runs(tmp_path):
    first = pki.ensure_ca(tmp_path)
    pem = first.cert_pem
    assert pki.ensure_ca(tmp_path).cert_pem == pem


def test_private_keys_are_private(serving, tmp_path):
    ca, _, key = serving
    pki.write_signing_keypair(tmp_path / "sa.key", tmp_path / "sa.pub")
    for path in (ca.key_path, key, tmp_path / "sa.key"):
        assert path.stat().st_mode & 0o777 == 0o600
