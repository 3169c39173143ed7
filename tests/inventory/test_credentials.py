import pytest
import yaml

from fleet.core import crypto
from fleet.inventory.credentials import (
    ClusterCredentials,
    CredentialError,
    parse_credentials,
)
from tests.certs import self_signed

pytestmark = pytest.mark.embedded


def kubeconfig(user: dict) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": user}],
    })


def test_token_and_certificate_credentials_validate():
    cert, key = self_signed()
    assert parse_credentials({"token": "abc", "ca_pem": cert}).kind == "token"
    assert parse_credentials({"client_cert_pem": cert, "client_key_pem": key}).kind == "client-certificate"
    assert parse_credentials({"kubeconfig": kubeconfig({"token": "t"})}).kind == "kubeconfig"


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({}, "credentials", "need a token"),
        ({"token": "a b"}, "token", "whitespace"),
        ({"token": "t", "ca_pem": "not a cert"}, "ca_pem", "not a PEM certificate"),
        ({"client_cert_pem": "x"}, "client_key_pem", "go together"),
        ({"password": "x"}, "password", "unknown credential field"),
        ({"token": "t", "kubeconfig": "x"}, "kubeconfig", "not both"),
        ({"kubeconfig": kubeconfig({"exec": {"command": "aws"}})}, "kubeconfig", "exec plugin"),
        ({"kubeconfig": kubeconfig({"auth-provider": {"name": "gcp"}})}, "kubeconfig", "auth-provider"),
        ({"kubeconfig": kubeconfig({"client-key": "/etc/shadow"})}, "kubeconfig", "refers to a local file"),
        ({"kubeconfig": "a: [b"}, "kubeconfig", "invalid YAML"),
        ({"token": "x" * (65 * 1024)}, "token", "larger than"),
    ],
)
def test_bad_credentials_name_the_field_not_the_value(data, field, fragment):
    with pytest.raises(CredentialError) as info:
        parse_credentials(data)
    assert info.value.field == field
    assert fragment in str(info.value)
    for value in data.values():
        if len(value) > 8:
            assert value not in str(info.value)


def test_credentials_never_show_in_repr_and_round_trip_encrypted():
    creds = ClusterCredentials(token="super-secret-token")
    assert "super-secret-token" not in repr(creds) and "super-secret-token" not in str(creds)
    ciphertext = creds.encrypt()
    assert "super-secret-token" not in ciphertext
    assert ClusterCredentials.decrypt(ciphertext) == creds


def test_decrypting_with_another_key_fails_clearly(settings):
    ciphertext = ClusterCredentials(token="t").encrypt()
    settings.FLEET_CREDENTIALS_KEYS = ["0" * 43 + "="]
    with pytest.raises(crypto.DecryptionError, match="FLEET_CREDENTIALS_KEYS"):
        ClusterCredentials.decrypt(ciphertext)


def test_key_rotation_keeps_old_secrets_readable(settings):
    from cryptography.fernet import Fernet

    old = settings.FLEET_CREDENTIALS_KEYS[0]
    ciphertext = ClusterCredentials(token="t").encrypt()
    settings.FLEET_CREDENTIALS_KEYS = [Fernet.generate_key().decode(), old]
    assert ClusterCredentials.decrypt(ciphertext).token == "t"
