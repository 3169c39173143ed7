"""Sampling profiles of running workers with py-spy, summarised as the functions that
cost the most: inclusive (the function and what it calls) and self (its own code).

py-spy samples from outside the process (``--nonblocking``: without pausing it), so the
profiled run is the benchmark's own run, not a copy; only the thread holding the GIL is
sampled (``--gil``), so the counts are Python's CPU, not threads waiting on a socket,
a lock or a child.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

RATE = 50  # samples per second per process


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise SystemExit("py-spy is not installed: scripts/bootstrap-venv.sh dev")
    return found


@contextmanager
def sampling(pids: Iterable[int], out: Path) -> Iterator[list[Path]]:
    """Sample every process in ``pids`` while the block runs; yields the raw profiles' paths
    (folded stacks, one file per process, complete once the block has ended)."""
    out.mkdir(parents=True, exist_ok=True)
    recorders, paths = [], []
    for pid in pids:
        path = out / f"profile-{pid}.txt"
        paths.append(path)
        recorders.append(subprocess.Popen(
            [_py_spy(), "record", "--pid", str(pid), "--rate", str(RATE), "--nonblocking", "--gil", "--format", "raw",
             "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield paths
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
        for recorder in recorders:
            recorder.wait(timeout=60)


def _frame(text: str) -> str:
    """``function (path/to/module.py:line)`` without the line: a function, wherever in it."""
    name, _, where = text.partition(" (")
    module = where.rsplit(":", 1)[0]
    for marker in ("/site-packages/", "/work/main/", "/lib/python3."):
        if marker in module:
            module = module.split(marker, 1)[1]
    return f"{name} ({module})"


def summarise(paths: Iterable[Path], top: int = 20) -> dict:
    """The ``top`` functions by self samples, and Fleet's own (``fleet/``) by inclusive
    samples (below the task that runs a deployment, which is all of them), as shares of
    all samples."""
    inclusive, own, total = Counter(), Counter(), 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            frames = [_frame(f) for f in stack.split(";")]
            total += samples
            for frame in set(frames):
                if "(fleet/" in frame and "(fleet/rollouts/tasks.py)" not in frame:
                    inclusive[frame] += samples
            if frames:
                own[frames[-1]] += samples
    share = {"samples": total}
    for name, counter in (("inclusive", inclusive), ("self", own)):
        share[name] = [(frame, round(100 * n / total, 1)) for frame, n in counter.most_common(top)] if total else []
    return share


def print_summary(summary: dict) -> None:
    print(f"  profile: {summary['samples']} samples at {RATE}/s per worker")
    for kind, title in (("inclusive", "Fleet's functions, inclusive"), ("self", "all functions, self")):
        print(f"  top {title}:")
        for frame, percent in summary[kind]:
            print(f"    {percent:5.1f} %  {frame}")
