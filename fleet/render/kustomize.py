"""The kustomize adapter: ``kustomize build`` with plugins, exec, Helm and network off.

The binary is located, never built, in the toolchain's cache (``fleet.toolchain``,
overridable with ``FLEET_KUSTOMIZE_BIN``): start-up builds it, and a render without it
fails at once with ``toolchain.missing`` naming the command that installs it, rather
than starting a build that takes minutes inside a request. The build runs with a
timeout and a file-size resource limit on its output, so a hostile kustomization
cannot hang a worker or fill its memory.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import tempfile
from pathlib import Path

from fleet.render.errors import RenderError
from fleet.render.limits import RenderLimits
from fleet.render.safety import relative
from fleet.toolchain.cache import locate


def build(directory: Path, root: Path, limits: RenderLimits) -> str:
    """Run ``kustomize build`` on ``directory`` (inside repo ``root``); return its YAML output."""
    shown = relative(directory, root)
    command = [str(locate("kustomize")), "build", "--load-restrictor", "LoadRestrictionsRootOnly", str(directory)]
    # Only PATH (for git, if remote bases are allowed): no HOME, so no plugin directory.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0"}
    limit = limits.max_output_bytes

    def cap_output() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            process = subprocess.run(command, stdout=out, stderr=err, env=env, cwd=directory,
                                     timeout=limits.timeout_seconds, preexec_fn=cap_output)
        except subprocess.TimeoutExpired:
            raise RenderError(f"kustomize build took longer than {limits.timeout_seconds}s",
                              code="timeout", path=shown) from None
        if process.returncode != 0 and (process.returncode == -signal.SIGXFSZ
                                        or os.fstat(out.fileno()).st_size >= limit):
            raise RenderError(f"kustomize output exceeds {limit} bytes", code="too-large", path=shown)
        if process.returncode != 0:
            err.seek(0)
            message = err.read(4000).decode(errors="replace").strip()
            raise RenderError(f"kustomize build failed: {_strip_host_paths(message, root)}",
                              code="kustomize", path=shown)
        out.seek(0)
        return out.read().decode("utf-8", errors="strict")


def _strip_host_paths(message: str, root: Path) -> str:
    """kustomize names files by absolute path; show them relative to the repository."""
    return message.replace(str(root.resolve()) + "/", "").replace(str(root.resolve()), ".")
