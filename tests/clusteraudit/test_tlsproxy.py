"""The local fleet's TLS front for a plain-HTTP Fleet: what lets local API servers' webhooks
send their credential (client-go sends it to https servers only)."""

from __future__ import annotations

import http.server
import ssl
import threading
import time
import urllib.request

from fleet.dev.localfleet.fleet import LocalFleet


def test_the_front_runs_as_a_process_down_stops_and_passes_requests_through(tmp_path):
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, self.headers["Authorization"], body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"stored")

        def log_message(self, *args):
            pass

    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    fleet = LocalFleet(tmp_path / "fleet")
    try:
        url, ca_pem = fleet.start_tls_front(plain.server_address[1])
        assert url.startswith("https://127.0.0.1:")
        assert fleet.start_tls_front(plain.server_address[1])[0] == url  # running: reused
        context = ssl.create_default_context(cadata=ca_pem)
        request = urllib.request.Request(f"{url}/api/v1/cluster-audit/ingest/c1", b"{}", method="POST",
                                         headers={"Authorization": "Bearer fca_k_s"})
        for _ in range(50):  # the process may still be starting
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:
                    assert response.read() == b"stored"
                break
            except OSError:
                time.sleep(0.1)
        assert seen == [("/api/v1/cluster-audit/ingest/c1", "Bearer fca_k_s", b"{}")]
    finally:
        fleet.down()
        plain.shutdown()
    assert not (tmp_path / "fleet" / "audit-proxy" / "process.json").exists()
