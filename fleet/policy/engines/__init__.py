"""The policy engines, and the one configured for this deployment.

``FLEET_POLICY_ENGINE`` picks ``embedded`` (the default: an OPA server this process
runs itself, ``managed.py``) or ``opa`` (an OPA server at ``FLEET_OPA_URL``, started
with ``--v0-compatible`` to load Rego v0). Both are OPA, so they answer alike. Engines
hold compiled policies, so one instance per process is shared, behind the memo of
per-object findings (``memo.py``); a forked child (a Celery or gunicorn worker) makes
its own on first use, since it cannot supervise its parent's OPA.
"""

from __future__ import annotations

import atexit
import os
import threading

from django.conf import settings

from fleet.policy.engines.base import Engine
from fleet.policy.engines.managed import ManagedOpaEngine
from fleet.policy.engines.memo import MemoEngine
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.errors import PolicyError

ENGINES = ("embedded", "opa")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(name: str | None = None) -> Engine:
    name = name or settings.FLEET_POLICY_ENGINE
    with _lock:
        if name not in _engines:
            _engines[name] = MemoEngine(_create(name), settings.FLEET_POLICY_MEMO_OBJECTS)
        return _engines[name]


def _create(name: str) -> Engine:
    parallelism = settings.FLEET_OPA_PARALLELISM
    if name == "embedded":
        return ManagedOpaEngine(timeout=float(settings.FLEET_OPA_TIMEOUT), parallelism=parallelism)
    if name == "opa":
        return OpaEngine(settings.FLEET_OPA_URL, timeout=float(settings.FLEET_OPA_TIMEOUT),
                         token=settings.FLEET_OPA_TOKEN or None, parallelism=parallelism)
    raise PolicyError(f"unknown policy engine {name!r}: expected one of {', '.join(ENGINES)}",
                      code="engine")


def reset_engines() -> None:
    """Drop the shared engines (tests, and a changed configuration)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.close()


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it
    _engines.clear()  # the parent's engines (and its OPA) stay the parent's


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(reset_engines)
