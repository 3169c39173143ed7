"""Refusing dangerous input before any renderer reads it.

Each rule answers a published GitOps CVE class: paths that leave the repository
(``../`` or absolute, directly or through a symlink) would read the control plane's
own files; kustomize plugins, exec/container functions and Helm run programs; remote
bases fetch code from elsewhere at render time; huge files exhaust memory. kustomize
already restricts loads to the kustomization root by default, but it lets resources
reach sibling directories and follows symlinks, so the repository root is enforced
here, for every file a kustomization can name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.core import yaml
from fleet.render.errors import RenderError
from fleet.render.limits import RenderLimits

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
# Fields whose entries may be a kustomization directory, hence possibly remote.
_BASE_FIELDS = ("resources", "bases", "components")
# Fields whose entries are plain local file paths.
_FILE_FIELDS = ("crds", "configurations", "patchesStrategicMerge")
# Fields whose entries are plugin configurations (a path or an inline object).
_PLUGIN_FIELDS = ("generators", "transformers", "validators")
_REFUSED_FIELDS = {
    "helmCharts": "Helm charts run the helm binary and fetch charts",
    "helmChartInflationGenerator": "Helm charts run the helm binary and fetch charts",
    "helmGlobals": "Helm charts run the helm binary and fetch charts",
}
_FUNCTION_ANNOTATIONS = ("config.kubernetes.io/function", "config.k8s.io/function")
_REMOTE_RE = re.compile(r"^(\w+://|git@|[\w.-]+\.[a-z]{2,}/)|\?(ref|version)=|//")


def find_kustomization(directory: Path) -> Path | None:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return directory / name
    return None


def relative(path: Path, root: Path) -> str:
    """A path as shown in errors: relative to the repo, never the host's layout."""
    try:
        return str(path.relative_to(root)) or "."
    except ValueError:
        return path.name


def check_tree(root: Path, limits: RenderLimits) -> None:
    """Refuse symlinks leaving ``root``, oversize files, and too much content in total."""
    root = root.resolve()
    total = count = 0
    for path in _walk(root):
        shown = relative(path, root)
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not _inside(target, root):
                raise RenderError(f"symlink points outside the repository (to {os.readlink(path)!r})",
                                  code="symlink", path=shown)
            if target.is_dir():
                continue  # its content is walked through its real location
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise RenderError(f"file is {size} bytes; the limit is {limits.max_file_bytes}",
                              code="too-large", path=shown)
        total, count = total + size, count + 1
        if total > limits.max_total_bytes or count > limits.max_files:
            raise RenderError(f"the repository holds more than {limits.max_total_bytes} bytes or "
                              f"{limits.max_files} files", code="too-large")


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        here = Path(dirpath)
        for name in dirnames:
            if (here / name).is_symlink():
                yield here / name
        for name in filenames:
            yield here / name


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


@dataclass(frozen=True)
class KustomizationReads:
    """Where a build may read: the kustomization directories it reaches (each one's whole
    subtree: kustomize's load restrictor keeps every file a kustomization names inside its
    own directory), and whether it also reaches a remote base, which no local content
    describes."""

    directories: frozenset[Path]
    remote: bool


def check_kustomization_tree(entry: Path, root: Path, limits: RenderLimits) -> KustomizationReads:
    """Check the kustomization at ``entry`` and every local one it reaches; say where it reads."""
    root = root.resolve()
    seen: set[Path] = set()
    remote = False
    pending = [entry.resolve()]
    while pending:
        directory = pending.pop()
        if directory in seen:
            continue
        seen.add(directory)
        file = find_kustomization(directory)
        if file is not None:
            directories, reaches_remote = _check_kustomization(file, root, limits)
            pending.extend(directories)
            remote = remote or reaches_remote
    return KustomizationReads(frozenset(seen), remote)


def _check_kustomization(file: Path, root: Path, limits: RenderLimits) -> tuple[list[Path], bool]:
    """Check one kustomization file; return the local directories it builds on, and
    whether it names an (allowed) remote base."""
    shown = relative(file, root)
    data = _load_yaml(file, shown, limits)
    if not isinstance(data, dict):
        raise RenderError("a kustomization must be a mapping", code="parse", path=shown)
    for field, reason in _REFUSED_FIELDS.items():
        if field in data:
            raise RenderError(f"{field} is not allowed: {reason}", code="plugin", path=shown)
    directories: list[Path] = []
    remote = False
    here = file.parent
    for field in _BASE_FIELDS:
        for entry in _strings(data, field, shown):
            path = _local(here, entry, root, f"{shown}: {field}", may_be_remote=True, limits=limits)
            remote = remote or path is None
            if path is not None and path.is_dir():
                directories.append(path)
    for field in _FILE_FIELDS:
        for entry in _strings(data, field, shown):
            if "\n" not in entry:  # patchesStrategicMerge also takes inline patches
                _local(here, entry, root, f"{shown}: {field}")
    for item in _list(data, "patches", shown) + _list(data, "patchesJson6902", shown) \
            + _list(data, "replacements", shown):
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            _local(here, item["path"], root, f"{shown}: patch")
    if isinstance(data.get("openapi"), dict) and isinstance(data["openapi"].get("path"), str):
        _local(here, data["openapi"]["path"], root, f"{shown}: openapi")
    for field in ("configMapGenerator", "secretGenerator"):
        for generator in _list(data, field, shown):
            if not isinstance(generator, dict):
                continue
            for entry in list(generator.get("files") or []) + list(generator.get("envs") or []) \
                    + ([generator["env"]] if generator.get("env") else []):
                _local(here, str(entry).split("=", 1)[-1], root, f"{shown}: {field}")
    for field in _PLUGIN_FIELDS:
        for item in _list(data, field, shown):
            if isinstance(item, str):
                path = _local(here, item, root, f"{shown}: {field}")
                if path is None or not path.is_file():
                    raise RenderError(f"{field} entry {item!r} must be a file of builtin "
                                      "plugin configurations", code="plugin", path=shown)
                configs = _load_all_yaml(path, relative(path, root), limits)
            else:
                configs = [item]
            for config in configs:
                _check_plugin_config(config, f"{shown}: {field}")
    return directories, remote


def _check_plugin_config(config: Any, where: str) -> None:
    """Only kustomize's builtin transformers/generators; never exec, container or Go plugins."""
    if not isinstance(config, dict):
        return
    annotations = (config.get("metadata") or {}).get("annotations") or {}
    if any(key in annotations for key in _FUNCTION_ANNOTATIONS):
        raise RenderError("KRM functions (exec or container) are not allowed", code="plugin", path=where)
    if config.get("apiVersion") != "builtin":
        raise RenderError(f"plugin {config.get('apiVersion')}/{config.get('kind')} is not a kustomize "
                          "builtin; external plugins are not allowed", code="plugin", path=where)


def _local(here: Path, entry: str, root: Path, where: str, *, may_be_remote: bool = False,
           limits: RenderLimits | None = None) -> Path | None:
    """Resolve a referenced path inside the repo; ``None`` for an allowed remote base."""
    if os.path.isabs(entry):
        raise RenderError(f"absolute path {entry!r} is not allowed", code="path-escape", path=where)
    target = Path(os.path.realpath(here / entry))
    if not _inside(target, root):
        raise RenderError(f"{entry!r} points outside the repository", code="path-escape", path=where)
    if target.exists():
        return target
    if may_be_remote and _REMOTE_RE.search(entry):
        if limits is not None and limits.allow_remote_bases:
            return None
        raise RenderError(f"remote base {entry!r} is not allowed (FLEET_RENDER_ALLOW_REMOTE_BASES "
                          "is off)", code="remote-base", path=where)
    raise RenderError(f"{entry!r} does not exist", code="missing", path=where)


def _strings(data: dict[str, Any], field: str, shown: str) -> list[str]:
    items = _list(data, field, shown)
    if not all(isinstance(item, str) for item in items):
        raise RenderError(f"{field} must be a list of strings", code="parse", path=shown)
    return items


def _list(data: dict[str, Any], field: str, shown: str) -> list[Any]:
    value = data.get(field) or []
    if not isinstance(value, list):
        raise RenderError(f"{field} must be a list", code="parse", path=shown)
    return value


def _load_yaml(file: Path, shown: str, limits: RenderLimits) -> Any:
    documents = _load_all_yaml(file, shown, limits)
    return documents[0] if documents else {}


def _load_all_yaml(file: Path, shown: str, limits: RenderLimits) -> list[Any]:
    try:
        return yaml.load_all(file.read_text(encoding="utf-8"), yaml.YamlLimits(max_bytes=limits.max_file_bytes))
    except UnicodeDecodeError:
        raise RenderError("is not UTF-8 text", code="parse", path=shown) from None
    except yaml.YamlError as exc:
        raise RenderError(str(exc), code="parse", path=shown) from None
