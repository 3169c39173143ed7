"""Nothing on a request path builds a tool or waits without a bound while holding a lock.

A web request once started the kustomize build and waited on its build lock, without
timeout, holding the cluster's lock: the server stopped answering for minutes. Product
code only locates tools (``fleet.toolchain.cache.locate``: a missing one is a 503, see
tests/gitops/test_api.py and tests/render/test_render.py); the one lock without a
timeout is the build's, taken only by install steps. Every other lock has a deadline,
and every git and kustomize run under one has a timeout (tests/security/test_transports.py
shows a stalled remote given up on and the lock freed).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILDERS = ("fleet.toolchain.build",)


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.update({node.module, *(f"{node.module}.{alias.name}" for alias in node.names)})
    return found


def product_modules() -> list[Path]:
    return [path for path in sorted((ROOT / "fleet").rglob("*.py")) if not path.is_relative_to(ROOT / "fleet" / "dev")]


def test_no_product_module_can_build_a_tool():
    offenders = [str(path.relative_to(ROOT)) for path in product_modules()
                 if not path.is_relative_to(ROOT / "fleet" / "toolchain")
                 and any(name.startswith(BUILDERS) for name in imports(path))]
    assert offenders == []


def test_every_flock_outside_the_build_waits_with_a_deadline():
    """``fcntl.flock`` without LOCK_NB blocks forever: in the product, only the toolchain's
    build may (the dev tooling's local fleet is no request path)."""
    blocking = []
    for path in product_modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "flock":
                flags = ast.unparse(node.args[1]) if len(node.args) > 1 else ""
                if "LOCK_EX" in flags and "LOCK_NB" not in flags:
                    blocking.append(str(path.relative_to(ROOT)))
    assert blocking == ["fleet/toolchain/build.py"]
