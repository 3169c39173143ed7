"""Credentials to connections: kubeconfigs that would run commands, read files or skip
TLS verification are refused, naming the cluster and the entry."""

import base64

import pytest
import yaml

from fleet.inventory.credentials import ClusterCredentials
from fleet.kube.connection import spec_for_cluster, spec_from_kubeconfig
from fleet.kube.errors import ConfigRefused

pytestmark = pytest.mark.embedded
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def kubeconfig(user: dict, cluster: dict | None = None) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        "clusters": [{"name": "k", "cluster": cluster or {
            "server": "https://127.0.0.1:6443",
            "certificate-authority-data": base64.b64encode(CA.encode()).decode()}}],
        "users": [{"name": "u", "user": user}]})


def test_token_kubeconfig_parses():
    spec = spec_from_kubeconfig(kubeconfig({"token": "s3cret"}), name="edge-1")
    assert (spec.server, spec.token, spec.ca_pem) == ("https://127.0.0.1:6443", "s3cret", CA)
    assert "s3cret" not in repr(spec)


@pytest.mark.parametrize("user, message", [
    ({"exec": {"command": "aws", "apiVersion": "client.authentication.k8s.io/v1"}}, "exec plugin"),
    ({"auth-provider": {"name": "gcp"}}, "auth-provider"),
])
def test_command_running_users_are_refused(user, message):
    with pytest.raises(ConfigRefused, match=f"cluster edge-1: .*{message}") as info:
        spec_from_kubeconfig(kubeconfig(user), name="edge-1")
    assert info.value.code == "config"


def test_insecure_kubeconfigs_are_refused():
    with pytest.raises(ConfigRefused, match="insecure-skip-tls-verify"):
        spec_from_kubeconfig(kubeconfig({"token": "t"}, {"server": "https://x",
                                                         "insecure-skip-tls-verify": True}), name="e")


def test_stored_kubeconfigs_may_not_refer_to_files():
    with pytest.raises(ConfigRefused, match="refers to a local file \\(tokenFile\\)"):
        spec_from_kubeconfig(kubeconfig({"tokenFile": "/etc/passwd"}), name="e")


@pytest.mark.parametrize("users, message", [
    ("not a list", "users must be a list"),
    ([["u"]], r"users\[0\] must be a mapping with a name and a user mapping"),
    ([{"name": "u", "user": "token"}], r"users\[0\] must be a mapping"),
])
def test_malformed_kubeconfigs_are_refused_with_the_entry(users, message):
    config = yaml.safe_load(kubeconfig({"token": "t"}))
    config["users"] = users
    with pytest.raises(ConfigRefused, match=f"cluster e: kubeconfig {message}"):
        spec_from_kubeconfig(yaml.safe_dump(config), name="e")


def test_inventory_url_wins_over_a_stored_kubeconfigs_server():
    class Cluster:
        name = "edge-1"
        api_server_url = "https://10.0.0.1:6443"

        def get_credentials(self):
            return ClusterCredentials(kubeconfig=kubeconfig({"token": "t"}))

    assert spec_for_cluster(Cluster()).server == "https://10.0.0.1:6443"
