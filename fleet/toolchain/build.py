"""Building the pinned tools from their Go modules into the cache (see ``cache``).

Why build instead of download: the machines we run on reach the Go module proxy but not
release download sites, and a go.mod + go.sum of ours pins every dependency.

Only install and start-up steps build (``python -m fleet.toolchain [name ...]``, the
demo, the test fixtures); product code calls :func:`fleet.toolchain.cache.locate`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from fleet.toolchain.cache import cache_dir, cached_path, expected_path
from fleet.toolchain.constants import ARTIFACT_NAMES, BUILD_PARALLELISM, BUILDS, GoBuild
from fleet.toolchain.errors import ToolchainError

GOMOD_DIR = Path(__file__).resolve().parents[2] / "deploy" / "toolchain" / "gomod"

Progress = Callable[[str], None]


def ensure_binaries(names: Iterable[str] | None = None, progress: Progress = print) -> dict[str, Path]:
    """Return a path for each artifact (all by default), building missing ones.

    Artifacts are the binaries plus files taken from a pinned module (kwok-stages).
    Cheap when everything is cached: no Go invocation, only file checks.
    """
    wanted = list(names) if names is not None else list(ARTIFACT_NAMES)
    paths = {name: expected_path(name) for name in wanted}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        with _build_lock():
            # Another process may have built them while we waited for the lock.
            missing = [name for name in missing if not paths[name].is_file()]
            if missing:
                _build_missing(missing, progress)
    return paths


@contextmanager
def _build_lock() -> Iterator[None]:
    """Serialise builds across processes (parallel test runs, CI steps) sharing a cache."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    with open(cache_dir() / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build_missing(missing: list[str], progress: Progress) -> None:
    if shutil.which("go") is None:
        raise ToolchainError("`go` is not on PATH; the tools are built from their Go modules",
                             code="no-go")
    progress(
        f"Building {len(missing)} binaries into {cache_dir()}: {', '.join(missing)}. A first build takes "
        "from under a minute (kustomize alone) to about 15 (all of them, on 2 cores); later runs reuse the cache."
    )
    jobs = [(build, [n for n in (*build.packages, *build.module_files) if n in missing]) for build in BUILDS]
    jobs = [(build, names) for build, names in jobs if names]
    with ThreadPoolExecutor(max_workers=BUILD_PARALLELISM) as pool:
        futures = [pool.submit(_go_build, build, names, progress) for build, names in jobs]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise ToolchainError("\n".join(str(e) for e in errors), code="build")


def check_gomod(build: GoBuild) -> None:
    """Fail early if constants.py and the group's go.mod disagree on the version."""
    gomod = GOMOD_DIR / build.group / "go.mod"
    if not gomod.is_file():
        raise ToolchainError(f"{gomod} is missing; the tools build from the repo's deploy/ tree",
                             code="build")
    pattern = rf"^[ \t]*(?:require[ \t]+)?{re.escape(build.module)}[ \t]+(\S+)"
    found = re.search(pattern, gomod.read_text(), re.MULTILINE)
    if found is None or found.group(1) != build.version:
        got = found.group(1) if found else "nothing"
        raise ToolchainError(f"{gomod} requires {build.module} {got}, constants.py pins {build.version}",
                             code="build")


def _go_env() -> dict[str, str]:
    return {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": f"{os.environ.get('GOFLAGS', '')} -mod=readonly".strip(),
    }


def _go_build(build: GoBuild, names: list[str], progress: Progress) -> None:
    """Build the wanted binaries of one group, then copy its wanted module files."""
    check_gomod(build)
    binaries = [n for n in names if n in build.packages]
    if binaries:
        _compile(build, binaries, progress)
    for name in names:
        if name in build.module_files:
            _copy_module_files(build, name)
            progress(f"  extracted {name} {build.version} -> {cached_path(name)}")


def _compile(build: GoBuild, names: list[str], progress: Progress) -> None:
    log_path = cache_dir() / "logs" / f"{build.group}-{build.version}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir(), prefix=".build-") as out:
        # With one package -o names the file; with several it names a directory and
        # each binary is named after its package's last path element.
        target = str(Path(out) / names[0]) if len(names) == 1 else out + os.sep
        command = [
            "go", "build", "-trimpath", "-ldflags", " ".join(("-s", "-w", *build.ldflags)),
            "-o", target, *(build.packages[n] for n in names),
        ]  # fmt: skip
        started = time.monotonic()
        with open(log_path, "w") as log:
            log.write(f"$ {' '.join(command)}\n")
            log.flush()
            result = subprocess.run(
                command, cwd=GOMOD_DIR / build.group, env=_go_env(), stdout=log, stderr=subprocess.STDOUT
            )
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
            raise ToolchainError(
                f"go build of {build.group} {build.version} failed (exit {result.returncode}); "
                f"see {log_path}:\n{tail}", code="build"
            )
        for name in names:
            built = Path(out) / (names[0] if len(names) == 1 else build.packages[name].rsplit("/", 1)[-1])
            os.replace(built, cached_path(name))
            progress(f"  built {name} {build.version} in {elapsed:.0f}s -> {cached_path(name)}")


def _copy_module_files(build: GoBuild, name: str) -> None:
    """Concatenate files of the pinned module (downloaded, and verified against go.sum)."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", build.module],
        cwd=GOMOD_DIR / build.group, env=_go_env(), capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise ToolchainError(f"go mod download {build.module} failed: {result.stdout}{result.stderr}",
                             code="build")
    module_dir = Path(json.loads(result.stdout)["Dir"])
    documents = [(module_dir / path).read_text().strip() for path in build.module_files[name]]
    staging = cache_dir() / f".{name}.partial"
    staging.write_text("\n---\n".join(documents) + "\n")
    os.replace(staging, cached_path(name))


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or None
    started = time.monotonic()
    try:
        paths = ensure_binaries(names, progress=partial(print, flush=True))
    except ToolchainError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, path in paths.items():
        print(f"{name}: {path}")
    print(f"({len(paths)} binaries ready in {time.monotonic() - started:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
