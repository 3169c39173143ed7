"""Who is acting, from where, under which request id: set once per request (the
middleware), command (``FleetCommand``) or task (``fleet.celery``), read by every audit
record (and log line) made while it is active, and carried into the tasks it enqueues.

A ground-layer concern: the entry points open it and the records read it, so it
belongs to neither; it imports nothing of Fleet's and nothing of Django's."""

from __future__ import annotations

import getpass
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

SOURCES = ("api", "admin", "web", "cli", "task", "system")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Context:
    source: str
    request_id: str
    actor: str | None = None
    request: Any = None  # the HttpRequest; its user is read late, after DRF authenticates

    def actor_name(self) -> str:
        if self.actor:
            return self.actor
        user = getattr(self.request, "user", None)
        if user is not None and user.is_authenticated:
            return user.get_username()
        return "anonymous"


_current: ContextVar[Context | None] = ContextVar("fleet_context", default=None)


def new_request_id(candidate: str | None = None) -> str:
    """Keep a caller's request id when it is sane (for tracing across systems)."""
    if candidate and _REQUEST_ID_RE.match(candidate):
        return candidate
    return uuid.uuid4().hex


def current() -> Context:
    return _current.get() or Context(source="system", request_id="", actor="system")


@contextmanager
def activate(*, source: str, actor: str | None = None, request: Any = None,
             request_id: str | None = None) -> Iterator[Context]:
    if source not in SOURCES:
        raise ValueError(f"unknown context source {source!r}")
    context = Context(source=source, request_id=new_request_id(request_id), actor=actor,
                           request=request)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def cli_actor(explicit: str | None = None) -> str:
    """The person behind a management command: --actor, else the OS user."""
    try:
        return explicit or f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return "cli:unknown"
