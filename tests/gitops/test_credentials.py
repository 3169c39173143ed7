"""Repository credentials reach git (askpass for tokens, a key file for SSH) and never
land in logs, stored URLs, .git/config or error messages."""

from __future__ import annotations

import base64
import os
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fleet.gitops import services
from fleet.gitops.askpass import credential_env
from fleet.gitops.errors import GitError
from fleet.gitops.models import CredentialKind, RepositoryCredential
from tests.certs import server_certificate
from tests.factories import ChannelFactory, ClusterFactory

pytestmark = [pytest.mark.django_db]
TOKEN = "glpat-Zm9vYmFyc2VjcmV0"


def make_credential(name: str, prefix: str, kind: str, secret: str, username: str = "") -> RepositoryCredential:
    credential = RepositoryCredential(name=name, url_prefix=prefix, kind=kind, username=username)
    credential.set_secret(secret)
    credential.full_clean()
    credential.save()
    return credential


def test_https_token_goes_through_askpass_and_is_cleaned_up():
    make_credential("host", "https://git.example.com/", CredentialKind.HTTPS_TOKEN, "host-wide")
    make_credential("repo", "https://git.example.com/clusters/", CredentialKind.HTTPS_TOKEN, TOKEN, "fleet")
    with credential_env("https://git.example.com/clusters/edge-1.git") as auth:
        script = Path(auth.env["GIT_ASKPASS"])
        assert TOKEN not in script.read_text() and auth.secrets == (TOKEN,)
        env = {**os.environ, **auth.env}

        def ask(prompt: str) -> str:
            return subprocess.run([script, prompt], env=env, capture_output=True, text=True).stdout

        assert ask("Username for 'https://git.example.com': ") == "fleet\n"
        assert ask("Password for 'https://fleet@git.example.com': ") == f"{TOKEN}\n"
    assert not script.parent.exists()
    with credential_env("https://git.example.com/vendor/platform.git") as auth:
        assert auth.secrets == ("host-wide",)


def test_ssh_key_goes_to_a_private_file_that_is_removed():
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"
    make_credential("ssh", "git@git.example.com:", CredentialKind.SSH_KEY, key)
    with credential_env("git@git.example.com:clusters/edge-1.git") as auth:
        command = auth.env["GIT_SSH_COMMAND"]
        key_file = Path(command.split(" -i ", 1)[1].split(" ", 1)[0])
        assert key_file.read_text() == key + "\n" and (key_file.stat().st_mode & 0o777) == 0o600
        assert "BatchMode=yes" in command and key not in command
    assert not key_file.exists()


def test_kind_must_fit_the_url():
    credential = RepositoryCredential(name="x", url_prefix="git@h.example:", kind=CredentialKind.HTTPS_TOKEN)
    credential.set_secret("t")
    with pytest.raises(Exception, match="is for https URLs, and this prefix is ssh"):
        credential.full_clean()


class _AuthServer(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        header = self.headers.get("Authorization")
        if not header:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        type(self).seen.append(base64.b64decode(header.split()[1]).decode())
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def https_server(tmp_path: Path, monkeypatch, handler) -> ThreadingHTTPServer:
    """An https server on loopback whose certificate git trusts (through GIT_SSL_CAINFO)."""
    cert, key = server_certificate()
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(tmp_path / "cert.pem"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_token_reaches_git_but_not_config_or_errors(tmp_path, settings, monkeypatch):
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    server = https_server(tmp_path, monkeypatch, _AuthServer)
    try:
        base = f"https://127.0.0.1:{server.server_port}/"
        make_credential("local", base, CredentialKind.HTTPS_TOKEN, TOKEN, "fleet")
        channel = ChannelFactory(name="remote", repo_url=f"{base}vendor.git", branch="release-1.0")
        cluster = ClusterFactory(name="remote-1", channel=channel, internal_repo_url=f"{base}edge.git")
        with pytest.raises(GitError) as raised:
            services.fetch(cluster)
        assert _AuthServer.seen == [f"fleet:{TOKEN}"]
        assert TOKEN not in str(raised.value) and "vendor.git" in str(raised.value)
        config = (tmp_path / "ws" / "remote-1" / "repo" / ".git" / "config").read_text()
        assert TOKEN not in config and f"{base}vendor.git" in config
        leftovers = [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob("fleet-git-*")]
        assert not leftovers
    finally:
        server.shutdown()


def test_admin_sets_the_secret_without_showing_it(db):
    from django.contrib.auth import get_user_model
    from django.test import Client

    from fleet.audit.models import AuditEvent

    get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.login(username="root", password="pw")
    form = {"name": "vendor", "url_prefix": "https://git.example.com/", "kind": "https-token",
            "username": "fleet"}
    assert client.post("/admin/gitops/repositorycredential/add/", form).status_code == 200  # no secret
    response = client.post("/admin/gitops/repositorycredential/add/", {**form, "new_secret": TOKEN})
    assert response.status_code == 302
    credential = RepositoryCredential.objects.get(name="vendor")
    assert credential.get_secret() == TOKEN
    page = client.get(f"/admin/gitops/repositorycredential/{credential.pk}/change/").content.decode()
    assert TOKEN not in page and credential.secret_encrypted not in page
    client.post(f"/admin/gitops/repositorycredential/{credential.pk}/change/", {**form, "new_secret": "new"})
    credential.refresh_from_db()
    assert credential.get_secret() == "new"
    assert AuditEvent.objects.get(action="repositorycredential.update").metadata["changed"] == ["secret_encrypted"]


@pytest.mark.parametrize(("prefix", "url", "covered"), [
    ("https://git.example.com", "https://git.example.com/org/repo.git", True),
    ("https://git.example.com", "https://git.example.com.attacker.tld/org/repo.git", False),
    ("https://git.example.com/", "https://git.example.com.attacker.tld/", False),
    ("https://git.example.com", "https://git.example.com:8443/org/repo.git", False),
    ("https://git.example.com:443/", "https://git.example.com/org/repo.git", True),
    ("https://git.example.com:8443/", "https://git.example.com/org/repo.git", False),
    ("https://git.example.com/org", "https://git.example.com/organisation/repo.git", False),
    ("https://git.example.com/org", "https://git.example.com/org/repo.git", True),
    ("https://GIT.example.com/org/", "https://git.example.com/org/repo.git", True),
    ("git@git.example.com:", "ssh://git@git.example.com/org/repo.git", True),
    ("git@git.example.com:", "ssh://git@git.example.com:2222/org/repo.git", False),
    ("git@git.example.com:", "git@git.example.com.evil.tld:org/repo.git", False),
    ("git@git.example.com:org", "git@git.example.com:org-other/repo.git", False),
    ("ssh://deploy@git.example.com/", "git@git.example.com:org/repo.git", False),
])
def test_a_credential_covers_urls_by_parsed_host_port_and_whole_path_segments(prefix, url, covered):
    """Tokens once went to ``git.example.com.attacker.tld`` and to another port, because
    prefixes were matched as strings."""
    kind = CredentialKind.HTTPS_TOKEN if prefix.startswith("https") else CredentialKind.SSH_KEY
    make_credential("c", prefix, kind, "secret")
    found = RepositoryCredential.for_url(url)
    assert (found is not None) is covered
    with credential_env(url) as auth:
        assert (auth.secrets == ("secret",)) is covered


def test_the_most_specific_credential_wins():
    make_credential("host", "https://git.example.com/", CredentialKind.HTTPS_TOKEN, "host")
    make_credential("org", "https://git.example.com/org/", CredentialKind.HTTPS_TOKEN, "org")
    assert RepositoryCredential.for_url("https://git.example.com/org/x.git").name == "org"
    assert RepositoryCredential.for_url("https://git.example.com/other/x.git").name == "host"
