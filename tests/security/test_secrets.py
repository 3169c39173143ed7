"""Secrets: a marker credential in every secret field, through every way it comes in, and
it appears in no response, no audit entry, no log line and no exception text.

The fields: a cluster's token, client key and certificate, kubeconfig; a repository
credential's token and SSH key; an API token; a password. Each also comes in wrong once
(refused input must not echo it either).
"""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from fleet.accounts import services as accounts
from fleet.accounts.roles import Role
from fleet.audit.models import AuditEvent
from fleet.core import context
from tests.certs import self_signed
from tests.factories import ChannelFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def marker(kind: str) -> str:
    return f"mk{kind}Zq7R4x9SECRET"


def kubeconfig(token: str) -> str:
    return ("apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "clusters: [{name: c, cluster: {server: 'https://10.0.0.1:6443'}}]\n"
            f"users: [{{name: u, user: {{token: {token}}}}}]\n"
            "contexts: [{name: c, context: {cluster: c, user: u}}]\n")


class Seen:
    """Everything a secret could leak into, gathered as text."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def response(self, response) -> None:
        self.texts.append(f"{response.status_code} {response.headers} {response.content.decode(errors='replace')}")

    def error(self, exc: BaseException) -> None:
        self.texts.append(f"{type(exc).__name__}: {exc!s} {exc!r}")

    def leaks(self, secrets: list[str], caplog) -> list[str]:
        audit = json.dumps(list(AuditEvent.objects.values()), default=str)
        logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
        places = {"responses": "\n".join(self.texts), "audit": audit, "logs": logs}
        return [f"{secret} in {where}" for secret in secrets for where, text in places.items() if secret in text]


def test_no_secret_appears_in_responses_audit_logs_or_errors(operator, admin_client_api, caplog):
    caplog.set_level(logging.DEBUG)
    seen = Seen()
    ChannelFactory(name="stable")
    cert, key = self_signed()
    key_body = key.splitlines()[2]  # a line of the key's base64: unique to it
    cert_body = cert.splitlines()[2]
    secrets = [marker("token"), marker("kube"), key_body, marker("repo"), marker("ssh"), marker("pw"),
               marker("bad1"), marker("bad2"), marker("bad3"), marker("pwbad")]
    base = {"api_server_url": "https://10.0.0.1:6443", "channel": "stable"}

    # Clusters: a token, a client certificate and key, a kubeconfig; each read back and listed.
    for name, credentials in (("c-token", {"token": marker("token")}),
                              ("c-cert", {"client_cert_pem": cert, "client_key_pem": key}),
                              ("c-kube", {"kubeconfig": kubeconfig(marker("kube"))})):
        response = operator.post("/api/v1/clusters/", {
            **base, "name": name, "internal_repo_url": f"https://git.example.com/c/{name}.git",
            "credentials": credentials}, format="json")
        assert response.status_code == 201, response.content
        seen.response(response)
        seen.response(operator.get(f"/api/v1/clusters/{response.json()['id']}/"))
        seen.response(operator.patch(f"/api/v1/clusters/{response.json()['id']}/",
                                     {"credentials": {"token": marker("token") + "2"}}, format="json"))
    seen.response(operator.get("/api/v1/clusters/"))
    # ...and wrong: whitespace in a token, a kubeconfig with an exec plugin, a non-PEM key.
    for credentials in ({"token": f"{marker('bad1')} x"},
                        {"kubeconfig": kubeconfig(marker("bad2")).replace("{token:", "{exec: {command: x}, token:")},
                        {"client_cert_pem": cert, "client_key_pem": marker("bad3")}):
        response = operator.post("/api/v1/clusters/", {**base, "name": "c-bad", "credentials": credentials,
                                                       "internal_repo_url": "https://git.example.com/c/b.git"},
                                 format="json")
        assert response.status_code == 400
        seen.response(response)

    # A password inline in a repository URL (user:PW@host:path), refused without an echo.
    seen.response(operator.post("/api/v1/clusters/", {
        **base, "name": "c-inline", "internal_repo_url": f"user:{marker('bad3')}@git.example.com:org/r.git"},
        format="json"))

    # Repository credentials: an https token and an ssh key, read back, listed, replaced.
    for name, prefix, kind, secret in (("https", "https://git.example.com/", "https-token", marker("repo")),
                                       ("ssh", "git@git.example.com:", "ssh-key", marker("ssh"))):
        response = admin_client_api.post("/api/v1/repository-credentials/", {
            "name": name, "url_prefix": prefix, "kind": kind, "secret": secret}, format="json")
        assert response.status_code == 201, response.content
        seen.response(response)
        seen.response(admin_client_api.patch(f"/api/v1/repository-credentials/{response.json()['id']}/",
                                             {"secret": secret + "2"}, format="json"))
    seen.response(admin_client_api.get("/api/v1/repository-credentials/"))
    seen.response(admin_client_api.post("/api/v1/repository-credentials/", {
        "name": "bad", "url_prefix": f"https://u:{marker('repo')}@git.example.com/", "kind": "https-token",
        "secret": "x"}, format="json"))

    # API tokens: issued (the plaintext is shown once, to the caller), used, and forged.
    with context.activate(source="cli", actor="cli:test"):
        user, password = accounts.create_user("pat", Role.VIEWER, password=marker("pw"))
        _, plaintext = accounts.issue_token(user, "ci")
    token_secret = plaintext.split("_", 2)[2]
    secrets.append(token_secret)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    seen.response(client.get("/api/v1/clusters/"))
    forged = Client(HTTP_AUTHORIZATION=f"Bearer {plaintext.rsplit('_', 1)[0]}_{marker('bad1')}")
    seen.response(forged.get("/api/v1/clusters/"))

    # Passwords: a sign-in that works and one that does not.
    browser = Client()
    seen.response(browser.post("/admin/login/", {"username": "pat", "password": marker("pw")}))
    seen.response(browser.post("/admin/login/", {"username": "pat", "password": marker("pwbad")}))

    # Exception text: what the validators raise for the same wrong input.
    from fleet.inventory.credentials import parse_credentials
    from fleet.inventory.errors import CredentialError

    for bad in ({"token": f"{marker('bad1')} x"}, {"kubeconfig": kubeconfig(marker("bad2")) + "  bad: [\n"}):
        with pytest.raises(CredentialError) as info:
            parse_credentials(bad)
        seen.error(info.value)

    assert password == marker("pw") and cert_body  # the certificate is public: it may show
    assert seen.leaks(secrets, caplog) == []
    assert AuditEvent.objects.filter(action="cluster.update").exists()  # the writes were audited, as "(set)"
