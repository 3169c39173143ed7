"""Field validators shared by the models, the API and clusters-as-code files."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from fleet.core.labels import LabelError, validate_labels
from fleet.core.repourl import RepoUrlError, parse_repo_url

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RELEASE_BRANCH_RE = re.compile(r"^release-\d+\.\d+$")
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# git check-ref-format, in short: no "..", no control chars, no " ~^:?*[\", no "@{",
# no leading "-" or "/", no trailing "/", ".lock" or ".".
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]")
_BAD_REF_RE = re.compile(r"(\.\.|[\x00-\x20~^:?*\[\\]|@\{|^[-/]|/$|\.lock$|\.$|//|/\.)")


def validate_dns_label(value: str) -> None:
    if not DNS_LABEL_RE.match(value or ""):
        raise ValidationError(
            f"{value!r} is not a valid name: use at most 63 lowercase letters, digits and "
            "'-', starting and ending with a letter or digit", code="invalid")


def validate_label_map(value: object) -> None:
    try:
        validate_labels(value)
    except LabelError as exc:
        raise ValidationError(str(exc), code="invalid") from None


def validate_api_server_url(value: str) -> None:
    if _CONTROL_RE.search(value or ""):
        raise ValidationError("API server URL contains whitespace or a control character", code="invalid")
    parts = urlsplit(value or "")
    if parts.scheme not in ("http", "https"):
        raise ValidationError(f"API server URL must use http or https, not {parts.scheme or 'no scheme'!r}",
                              code="invalid")
    if not parts.hostname:
        raise ValidationError("API server URL has no host", code="invalid")
    if parts.username or parts.password:
        raise ValidationError("API server URL must not carry credentials; set them as the "
                              "cluster's credentials", code="credentials_inline")
    if parts.query or parts.fragment:
        raise ValidationError("API server URL must not have a query or fragment", code="invalid")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValidationError("API server URL has an invalid port", code="invalid") from None


def validate_repo_url(value: str) -> None:
    """A git remote of a transport Fleet supports (``fleet.core.repourl``): https, ssh, or a
    local path inside FLEET_GIT_LOCAL_ROOTS; never with credentials inline. The message
    never repeats the value, which may hold a secret."""
    try:
        parse_repo_url(value)
    except RepoUrlError as exc:
        raise ValidationError(exc.message, code=exc.code) from None


def validate_git_ref_name(value: str) -> None:
    if not value or _BAD_REF_RE.search(value):
        raise ValidationError(f"{value!r} is not a valid git branch name", code="invalid")


def validate_release_branch(value: str) -> None:
    if not RELEASE_BRANCH_RE.match(value or ""):
        raise ValidationError(f"{value!r} is not a release channel branch: expected release-X.Y",
                              code="invalid")


def validate_sha(value: str) -> None:
    if not SHA_RE.match(value or ""):
        raise ValidationError(f"{value!r} is not a full git commit SHA (40 lowercase hex digits)",
                              code="invalid")
