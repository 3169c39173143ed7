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
from fleet.policy.engines.memo import MemoEngine, MemoStore
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.policy.errors import PolicyError

ENGINES = ("embedded", "opa")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()
_shared_memo: MemoStore | None = None


def install_shared_memo(store: MemoStore | None) -> None:
    """The store every engine's memo shares findings through (the policy app installs
    the database's); engines made from now on use it."""
    global _shared_memo
    _shared_memo = store


def get_engine(name: str | None = None, *, shared_memo: bool = True) -> Engine:
    """The process's engine behind its memo. ``shared_memo=False`` (commands that need
    no database: ``policy check``, ``policy verify`` on files) gets the same engine
    behind a memo of this process only."""
    name = name or settings.FLEET_POLICY_ENGINE
    with _lock:
        if name not in _engines:
            shared = _shared_memo if settings.FLEET_POLICY_MEMO_SHARED_OBJECTS > 0 else None
            _engines[name] = MemoEngine(_create(name), settings.FLEET_POLICY_MEMO_OBJECTS, shared)
        engine = _engines[name]
        if shared_memo or not isinstance(engine, MemoEngine) or engine.shared is None:
            return engine
        local = f"{name}/local"
        if local not in _engines:
            _engines[local] = MemoEngine(engine.inner, settings.FLEET_POLICY_MEMO_OBJECTS)
        return _engines[local]


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
        engines = [engine for name, engine in _engines.items() if not name.endswith("/local")]  # same inner
        _engines.clear()
    for engine in engines:
        engine.close()


def _forget_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread of the parent may have held it
    _engines.clear()  # the parent's engines (and its OPA) stay the parent's


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(reset_engines)
