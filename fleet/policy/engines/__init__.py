"""The policy engines, and the one configured for this deployment.

``FLEET_POLICY_ENGINE`` picks ``regopy`` (in process, the embedded default) or ``opa``
(an OPA server at ``FLEET_OPA_URL``). Engines hold compiled policies, so one instance
per process is shared, behind the memo of per-object findings (``memo.py``).
"""

from __future__ import annotations

import atexit
import threading

from django.conf import settings

from fleet.policy.engines.base import Engine
from fleet.policy.engines.memo import MemoEngine
from fleet.policy.errors import PolicyError

ENGINES = ("regopy", "opa")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def get_engine(name: str | None = None) -> Engine:
    name = name or settings.FLEET_POLICY_ENGINE
    with _lock:
        if name not in _engines:
            _engines[name] = MemoEngine(_create(name), settings.FLEET_POLICY_MEMO_OBJECTS)
        return _engines[name]


def _create(name: str) -> Engine:
    if name == "regopy":
        from fleet.policy.engines.regopy_engine import RegopyEngine

        return RegopyEngine()
    if name == "opa":
        from fleet.policy.engines.opa_engine import OpaEngine

        return OpaEngine(settings.FLEET_OPA_URL,
                         timeout=float(settings.FLEET_OPA_TIMEOUT),
                         token=settings.FLEET_OPA_TOKEN or None,
                         parallelism=settings.FLEET_OPA_PARALLELISM)
    raise PolicyError(f"unknown policy engine {name!r}: expected one of {', '.join(ENGINES)}",
                      code="engine")


def reset_engines() -> None:
    """Drop the shared engines (tests, and a changed configuration)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.close()


# Free compiled policies while the interpreter still can: regopy's finalizers fail
# noisily when they run during interpreter shutdown.
atexit.register(reset_engines)
