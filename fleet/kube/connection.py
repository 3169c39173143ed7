"""From stored credentials (or a kubeconfig file) to what a client connects with.

Nothing here runs a command or reads a file it was not allowed to: kubeconfig users
with an ``exec`` plugin or an ``auth-provider`` are refused (they would run programs
on the control plane), and a kubeconfig's file references (``certificate-authority``,
``client-key``, ``tokenFile``…) are read only from a kubeconfig file itself inside a
directory listed in ``FLEET_KUBECONFIG_DIRS``. We parse kubeconfigs ourselves instead
of handing them to ``kubernetes.config``, which would honour those mechanisms.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from django.conf import settings

from fleet.inventory.credentials import ClusterCredentials
from fleet.kube.errors import ConfigRefused

# kubeconfig key -> (inline key, field of ConnectionSpec)
_CLUSTER_FILES = {"certificate-authority": ("certificate-authority-data", "ca_pem")}
_USER_FILES = {"client-certificate": ("client-certificate-data", "client_cert_pem"),
               "client-key": ("client-key-data", "client_key_pem")}


@dataclass(frozen=True, repr=False)
class ConnectionSpec:
    """Everything needed to reach one API server. Never shows its secrets in repr."""

    name: str
    server: str
    token: str = ""
    ca_pem: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    tls_server_name: str = ""

    def __repr__(self) -> str:
        return f"ConnectionSpec(name={self.name!r}, server={self.server!r})"

    def fingerprint(self) -> str:
        """Identifies the credentials (for the client cache) without revealing them."""
        return hashlib.sha256("\0".join(astuple(self)).encode()).hexdigest()


def spec_for_cluster(cluster: Any) -> ConnectionSpec:
    """The connection of an inventory :class:`~fleet.inventory.models.Cluster`.

    The inventory's ``api_server_url`` is authoritative, also over a stored
    kubeconfig's ``server``: the URL is what operators see and audit.
    """
    credentials: ClusterCredentials | None = cluster.get_credentials()
    if credentials is None:
        raise ConfigRefused("the cluster has no credentials", cluster=cluster.name)
    if credentials.kubeconfig:
        return spec_from_kubeconfig(credentials.kubeconfig, name=cluster.name,
                                    server=cluster.api_server_url)
    return ConnectionSpec(name=cluster.name, server=cluster.api_server_url,
                          token=credentials.token, ca_pem=credentials.ca_pem,
                          client_cert_pem=credentials.client_cert_pem,
                          client_key_pem=credentials.client_key_pem)


def spec_from_kubeconfig_file(path: str | Path, *, name: str = "") -> ConnectionSpec:
    """Read a kubeconfig file from an allowed directory; its relative file references
    resolve against its own directory, as kubectl resolves them."""
    resolved = Path(path).resolve()
    name = name or resolved.stem
    _check_allowed(resolved, name=name, what="kubeconfig")
    try:
        text = resolved.read_text()
    except OSError as exc:
        raise ConfigRefused(f"cannot read kubeconfig {resolved}: {exc.strerror}", cluster=name) from None
    return spec_from_kubeconfig(text, name=name, base_dir=resolved.parent)


def spec_from_kubeconfig(text: str, *, name: str, server: str = "",
                         base_dir: Path | None = None) -> ConnectionSpec:
    """Parse a kubeconfig's current context. File references need ``base_dir`` (the
    kubeconfig came from an allowed file); stored kubeconfigs must be self-contained."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigRefused("kubeconfig is not valid YAML", cluster=name) from None
    if not isinstance(config, dict):
        raise ConfigRefused("kubeconfig is not a mapping", cluster=name)
    context = _named(config, "contexts", "context", _current_context(config, name), name)
    cluster = _named(config, "clusters", "cluster", context.get("cluster"), name)
    user = _named(config, "users", "user", context.get("user"), name)
    for refused, why in (("exec", "an exec plugin, which would run a command on the control plane"),
                         ("auth-provider", "an auth-provider, which is not supported"),
                         ("username", "basic authentication, which Kubernetes removed")):
        if refused in user:
            raise ConfigRefused(f"kubeconfig user {context.get('user')!r} uses {why}", cluster=name)
    for refused in ("insecure-skip-tls-verify", "proxy-url"):
        if cluster.get(refused):
            raise ConfigRefused(f"kubeconfig cluster sets {refused}, which Fleet refuses",
                                cluster=name)
    values: dict[str, str] = {}
    for section, files in ((cluster, _CLUSTER_FILES), (user, _USER_FILES)):
        for file_key, (data_key, field) in files.items():
            if section.get(data_key):
                values[field] = _b64(section[data_key], data_key, name)
            elif section.get(file_key):
                values[field] = _read_ref(section[file_key], base_dir, file_key, name)
    token = user.get("token") or ""
    if not token and user.get("tokenFile"):
        token = _read_ref(user["tokenFile"], base_dir, "tokenFile", name).strip()
    server = server or cluster.get("server") or ""
    if not server:
        raise ConfigRefused("kubeconfig cluster has no server", cluster=name)
    return ConnectionSpec(name=name, server=server, token=token,
                          ca_pem=values.get("ca_pem", ""),
                          client_cert_pem=values.get("client_cert_pem", ""),
                          client_key_pem=values.get("client_key_pem", ""),
                          tls_server_name=cluster.get("tls-server-name") or "")


def _current_context(config: Mapping[str, Any], name: str) -> str:
    current = config.get("current-context")
    if current:
        return current
    contexts = config.get("contexts") or []
    if len(contexts) == 1 and isinstance(contexts[0], dict):
        return contexts[0].get("name", "")
    raise ConfigRefused("kubeconfig has no current-context", cluster=name)


def _named(config: Mapping[str, Any], section: str, inner: str, wanted: Any,
           name: str) -> dict[str, Any]:
    for entry in config.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == wanted:
            body = entry.get(inner) or {}
            if isinstance(body, dict):
                return body
    raise ConfigRefused(f"kubeconfig has no {inner} named {wanted!r}", cluster=name)


def _b64(value: str, key: str, name: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ConfigRefused(f"kubeconfig {key} is not base64 PEM", cluster=name) from None


def _read_ref(ref: str, base_dir: Path | None, key: str, name: str) -> str:
    if base_dir is None:
        raise ConfigRefused(f"kubeconfig refers to a local file ({key}); a stored kubeconfig "
                            f"must embed it as {key}-data", cluster=name)
    path = (base_dir / ref).resolve()
    _check_allowed(path, name=name, what=key)
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigRefused(f"cannot read {key} file {path}: {exc.strerror}", cluster=name) from None


def allowed_dirs() -> list[Path]:
    return [Path(d).expanduser().resolve() for d in settings.FLEET_KUBECONFIG_DIRS]


def _check_allowed(path: Path, *, name: str, what: str) -> None:
    """``path`` is already resolved, so symlinks and ``..`` cannot leave a directory."""
    dirs = allowed_dirs()
    if not any(path.is_relative_to(d) for d in dirs):
        listed = ", ".join(str(d) for d in dirs) or "none configured"
        raise ConfigRefused(f"{what} file {path} is outside the allowed directories "
                            f"(FLEET_KUBECONFIG_DIRS: {listed})", cluster=name)
