"""Credentials to connections: kubeconfigs that would run commands or read files
outside the allowed directories are refused, naming the cluster."""

import base64

import pytest
import yaml

from fleet.inventory.credentials import ClusterCredentials
from fleet.kube.connection import spec_for_cluster, spec_from_kubeconfig, spec_from_kubeconfig_file
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
    assert info.value.outcome == "config"


def test_insecure_kubeconfigs_are_refused():
    with pytest.raises(ConfigRefused, match="insecure-skip-tls-verify"):
        spec_from_kubeconfig(kubeconfig({"token": "t"}, {"server": "https://x",
                                                         "insecure-skip-tls-verify": True}), name="e")


def test_stored_kubeconfigs_may_not_refer_to_files():
    with pytest.raises(ConfigRefused, match="refers to a local file \\(tokenFile\\)"):
        spec_from_kubeconfig(kubeconfig({"tokenFile": "/etc/passwd"}), name="e")


def test_kubeconfig_files_only_from_allowed_dirs(tmp_path, settings):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir(), outside.mkdir()
    (allowed / "token").write_text("tok\n")
    (outside / "token").write_text("stolen\n")
    settings.FLEET_KUBECONFIG_DIRS = [str(allowed)]
    (allowed / "good.yaml").write_text(kubeconfig({"tokenFile": "token"}))
    assert spec_from_kubeconfig_file(allowed / "good.yaml").token == "tok"
    (allowed / "escape.yaml").write_text(kubeconfig({"tokenFile": "../outside/token"}))
    with pytest.raises(ConfigRefused, match="tokenFile file .*outside/token is outside the allowed"):
        spec_from_kubeconfig_file(allowed / "escape.yaml", name="edge-2")
    (outside / "k.yaml").write_text(kubeconfig({"token": "t"}))
    with pytest.raises(ConfigRefused, match="cluster edge-3: kubeconfig file .* is outside"):
        spec_from_kubeconfig_file(outside / "k.yaml", name="edge-3")
    (allowed / "link").symlink_to(outside / "token")
    (allowed / "symlink.yaml").write_text(kubeconfig({"tokenFile": "link"}))
    with pytest.raises(ConfigRefused, match="outside the allowed"):
        spec_from_kubeconfig_file(allowed / "symlink.yaml")


def test_inventory_url_wins_over_a_stored_kubeconfigs_server():
    class Cluster:
        name = "edge-1"
        api_server_url = "https://10.0.0.1:6443"

        def get_credentials(self):
            return ClusterCredentials(kubeconfig=kubeconfig({"token": "t"}))

    assert spec_for_cluster(Cluster()).server == "https://10.0.0.1:6443"
