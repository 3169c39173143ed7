"""Where each tool is: ``${FLEET_BIN_CACHE:-~/.cache/fleet/bin}/<name>-<version>``, or the
file ``FLEET_<NAME>_BIN`` names (e.g. ``FLEET_KUSTOMIZE_BIN``). A present file is
trusted, so finding a tool costs a stat.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleet.toolchain.constants import ARTIFACT_NAMES, BUILDS, GoBuild
from fleet.toolchain.errors import ToolchainError


def cache_dir() -> Path:
    return Path(os.environ.get("FLEET_BIN_CACHE") or Path.home() / ".cache" / "fleet" / "bin")


def override_variable(name: str) -> str:
    """``kube-apiserver`` -> ``FLEET_KUBE_APISERVER_BIN``."""
    return f"FLEET_{name.upper().replace('-', '_')}_BIN"


def build_of(name: str) -> GoBuild:
    for build in BUILDS:
        if name in build.packages or name in build.module_files:
            return build
    raise ToolchainError(f"unknown local-fleet artifact {name!r}; known: {', '.join(ARTIFACT_NAMES)}",
                         code="unknown", detail={"binary": name})


def cached_path(name: str) -> Path:
    return cache_dir() / f"{name}-{build_of(name).version}"


def expected_path(name: str) -> Path:
    """The override when one is set (it must be an executable file), else the cache entry,
    which may not exist yet. Overrides are for binaries only, not module files."""
    value = os.environ.get(override_variable(name))
    if not value or name not in build_of(name).packages:
        return cached_path(name)
    path = Path(value).expanduser()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise ToolchainError(f"{override_variable(name)}={value} is not an executable file",
                             code="bad-override", detail={"binary": name})
    return path


def install_command(name: str) -> str:
    return f"python -m fleet.toolchain {name}"


def locate(name: str) -> Path:
    """The path of an installed tool; never builds one.

    Raises ``ToolchainError(code="missing")`` naming the tool and the command that
    installs it, which the API answers with a 503.
    """
    path = expected_path(name)
    if not path.is_file():
        version = build_of(name).version
        raise ToolchainError(
            f"{name} {version} is not installed: build it with `{install_command(name)}` "
            f"(the start-up scripts do), or point {override_variable(name)} at one",
            code="missing", detail={"binary": name, "install": install_command(name)})
    return path
