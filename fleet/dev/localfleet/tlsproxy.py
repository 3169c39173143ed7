"""A TLS front for a Fleet that serves plain HTTP on this machine (``make run``, a test's live
server), so local API servers can send it their audit events.

kube-apiserver's audit webhook is a client-go client built from a kubeconfig, and client-go
uses a kubeconfig user's credentials only when the server is ``https``: over plain HTTP the
ingest credential is never sent and every batch is refused. Production serves Fleet over
TLS anyway; the local fleet puts this in front: TLS with a certificate of the fleet's own CA,
every connection piped to the plain port as bytes. Standard library only, no Django.

    python -m fleet.dev.localfleet.tlsproxy --port 8443 --to 127.0.0.1:8000 --cert C --key K
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import ssl
import threading
from pathlib import Path


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class TLSProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, target: tuple[str, int], cert: Path, key: Path) -> None:
        self.target = target
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        super().__init__(("127.0.0.1", port), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]


class _Handler(socketserver.BaseRequestHandler):
    server: TLSProxy

    def handle(self) -> None:
        try:
            client = self.server.context.wrap_socket(self.request, server_side=True)
            upstream = socket.create_connection(self.server.target, timeout=30)
        except OSError:
            return
        with client, upstream:
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join(timeout=30)


def start(target: tuple[str, int], cert: Path, key: Path, port: int = 0) -> TLSProxy:
    """A proxy serving in a daemon thread (tests); ``shutdown()`` it when done."""
    proxy = TLSProxy(port, target, cert, key)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return proxy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--to", required=True, help="host:port of the plain-HTTP server")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args()
    host, _, port = args.to.rpartition(":")
    TLSProxy(args.port, (host, int(port)), args.cert, args.key).serve_forever()


if __name__ == "__main__":
    main()
