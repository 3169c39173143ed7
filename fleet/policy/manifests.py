"""Getting the objects to judge: manifests given inline, a directory, or a git ref.

Rendering belongs to ``fleet.render`` (kustomize or plain YAML, validated and hashed)
so the gate in CI judges exactly what the pipeline would apply. Its errors become
PolicyError(code="input"), naming the file; a missing kustomize stays a ToolchainError,
the deployment's to fix rather than the caller's input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from fleet.core.repourl import RepoUrlError, parse_repo_url
from fleet.gitops.mirror import render_ref
from fleet.inventory.models import Channel, Cluster
from fleet.policy.errors import PolicyError
from fleet.render import objects
from fleet.render.errors import RenderError
from fleet.render.limits import RenderLimits
from fleet.render.services import render_dir
from fleet.toolchain.errors import ToolchainError


def _render_error(exc: Exception) -> PolicyError:
    return PolicyError(str(exc), code="input", file=getattr(exc, "path", "") or "")


def parse_manifests(text: str, source: str = "manifests") -> list[dict[str, Any]]:
    """Objects from YAML/JSON text (several documents allowed)."""
    try:
        max_bytes = RenderLimits.from_settings().max_file_bytes
        documents = [(source, doc) for doc in objects.parse_stream(text, source, max_bytes)]
        return objects.validate(documents, max_objects=len(documents) + 1)
    except RenderError as exc:
        raise _render_error(exc) from None


def render_path(path: Path) -> list[dict[str, Any]]:
    """Render a directory (kustomize or plain YAML), or read one manifest file."""
    path = Path(path)
    if path.is_file():
        return parse_manifests(path.read_text(encoding="utf-8"), path.name)
    try:  # a local check (the CI command) needs no database: this process's cache only
        return render_dir(path, shared_cache=False).objects
    except RenderError as exc:
        raise _render_error(exc) from None


def known_repository(repo_url: str) -> bool:
    """Whether the gate may render ``repo_url``: a known channel's or cluster's repository,
    or one a ``FLEET_POLICY_EVALUATE_REPOS`` prefix covers (compared parsed, never as text).
    Anything else would let a caller make the server fetch any URL or local path."""
    try:
        target = parse_repo_url(repo_url)
    except RepoUrlError:
        return False
    known = [*Channel.objects.values_list("repo_url", flat=True),
             *Cluster.objects.values_list("internal_repo_url", flat=True)]
    for url in known:
        try:
            if parse_repo_url(url) == target:
                return True
        except RepoUrlError:
            continue
    for prefix in settings.FLEET_POLICY_EVALUATE_REPOS:
        try:
            if parse_repo_url(prefix, prefix=True).covers(target):
                return True
        except RepoUrlError:
            continue
    return False


def render_git(repo_url: str, ref: str, path: str) -> tuple[list[dict[str, Any]], str]:
    """Render ``path`` of ``repo_url`` (a :func:`known_repository`) at ``ref``; returns the
    objects and their hash."""
    if not known_repository(repo_url):
        raise PolicyError("the repository is neither a known channel's or cluster's nor in "
                          "FLEET_POLICY_EVALUATE_REPOS; the gate renders only those", code="input")
    try:
        result = render_ref(repo_url, ref, path)
    except RenderError as exc:
        raise _render_error(exc) from None
    except ToolchainError:
        raise
    except Exception as exc:  # git failures come in many types; the caller needs a reason
        raise PolicyError(f"cannot render {repo_url}@{ref}:{path or '.'}: {exc}", code="input") from None
    return result.objects, result.content_hash
