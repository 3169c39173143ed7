"""Render a directory into a validated, hashed list of objects (a git ref is rendered by
``fleet.gitops.mirror.render_ref``, which exports its tree and calls :func:`render_dir`).

A directory with a kustomization is built by kustomize; any other directory is read
as plain YAML/JSON manifests (recursively, in path order). Either way the input is
checked first (``fleet.render.safety``) and the output validated
(``fleet.render.objects``), so the policy gate, the dry-run and the apply all see
the same objects and the same hash.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleet.render import cache, kustomize, objects, safety
from fleet.render.errors import RenderError
from fleet.render.limits import RenderLimits

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass(frozen=True)
class RenderResult:
    objects: list[dict[str, Any]]
    content_hash: str
    renderer: str  # "kustomize" or "plain"
    kustomize_seconds: float = 0.0
    cached: bool = False  # read from the render cache: no build, no validation ran


def render_dir(path: Path | str, *, root: Path | str | None = None, limits: RenderLimits | None = None,
               shared_cache: bool = True) -> RenderResult:
    """Render ``path``; ``root`` (default: ``path``) is the repository nothing may leave.

    The same content renders once (``fleet.render.cache``): the safety checks run every
    time, the build and its validation only for content not seen before: by this process,
    or (``shared_cache``, which needs the database) by any worker."""
    limits = limits or RenderLimits.from_settings()
    path = Path(path).resolve()
    root = Path(root).resolve() if root is not None else path
    if not path.is_dir():
        raise RenderError("is not a directory", code="missing", path=safety.relative(path, root))
    if path != root and root not in path.parents:
        raise RenderError("lies outside the repository", code="path-escape", path=path.name)
    safety.check_tree(root, limits)
    if safety.find_kustomization(path) is not None:
        reads = safety.check_kustomization_tree(path, root, limits)
        if reads.remote:
            return _kustomize(path, root, limits)
        return _cached(cache.key(path, root, reads.directories, "kustomize", limits), limits, shared_cache,
                       lambda: _kustomize(path, root, limits))
    return _cached(cache.key(path, root, [path], "plain", limits), limits, shared_cache,
                   lambda: _plain(path, root, limits))


def _cached(key: str, limits: RenderLimits, shared: bool, render: Callable[[], RenderResult]) -> RenderResult:
    found = cache.get(key, shared=shared)
    if found is None:
        with cache.single_flight(key, wait=limits.timeout_seconds, shared=shared):
            found = cache.get(key, shared=shared)  # rendered by whoever held the flight before us
            if found is None:
                result = render()
                cache.put(key, cache.Cached(result.renderer, result.content_hash, result.objects), shared=shared)
                return result
    return RenderResult(found.objects, found.content_hash, found.renderer, cached=True)


def _kustomize(path: Path, root: Path, limits: RenderLimits) -> RenderResult:
    started = time.perf_counter()
    text = kustomize.build(path, root, limits)
    seconds = time.perf_counter() - started
    source = safety.relative(path, root)
    documents = [(source, doc) for doc in objects.parse_stream(text, source, limits.max_output_bytes)]
    result = objects.validate(documents, limits.max_objects)
    return RenderResult(result, objects.content_hash(result), "kustomize", seconds)


def _plain(path: Path, root: Path, limits: RenderLimits) -> RenderResult:
    files = sorted(p for p in path.rglob("*") if (p.suffix in MANIFEST_SUFFIXES or p.name in
                   safety.KUSTOMIZATION_FILES) and p.is_file() and ".git" not in p.relative_to(path).parts)
    nested = next((file for file in files if file.name in safety.KUSTOMIZATION_FILES), None)
    if nested is not None:  # read as manifests, it would fail as an object with no name
        raise RenderError(f"has no kustomization of its own, but {safety.relative(nested, root)} is one: "
                          "render a directory that has one (a cluster overlay, or the vendor's entry point)",
                          code="no-kustomization", path=safety.relative(path, root))
    documents = []
    for file in files:
        source = safety.relative(file, root)
        parsed = objects.parse_stream(file.read_text(encoding="utf-8"), source, limits.max_file_bytes)
        documents.extend((source, doc) for doc in parsed)
    result = objects.validate(documents, limits.max_objects)
    return RenderResult(result, objects.content_hash(result), "plain")
