"""Child processes of the local fleet: started in their own process group, logged to a
file, found again from another process by PID, and stopped without leaving orphans.

Each child leads its own process group (``start_new_session``), so stopping it kills
whatever it may have started too, and a Ctrl-C in our terminal does not reach it
half-way through a test. With ``die_with_parent`` the kernel also kills it when the
thread that started it exits (``PR_SET_PDEATHSIG``): that is what a pytest session
wants, since a crashed or killed session must not leave API servers behind. Note the
kernel tracks the parent *thread*, so spawn from a thread that outlives the fleet (the
main thread), never from a worker pool.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)

# Popen objects of the children this process started, so they are reaped (no zombies)
# and Python does not warn about children still running when a Popen is collected.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    """What the state file remembers of one child, enough to find and stop it later."""

    name: str
    pid: int
    executable: str  # argv[0], compared with /proc/<pid>/cmdline to survive PID reuse
    log: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> ProcessRecord:
        return cls(**data)  # type: ignore[arg-type]


def spawn(name: str, argv: list[str], log_path: Path, *, die_with_parent: bool) -> ProcessRecord:
    """Start ``argv`` with stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    parent_pid = os.getpid()

    def tie_to_parent() -> None:
        if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
            os._exit(127)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(127)

    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=tie_to_parent if die_with_parent else None,
        )
    _children[popen.pid] = popen
    return ProcessRecord(name=name, pid=popen.pid, executable=argv[0], log=str(log_path))


def is_running(record: ProcessRecord) -> bool:
    """True if the recorded process still runs (and is not a reused PID or a zombie)."""
    popen = _children.get(record.pid)
    if popen is not None and popen.args[0] == record.executable:  # type: ignore[index]
        return popen.poll() is None
    try:
        cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
        state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z" and cmdline.split(b"\0", 1)[0].decode(errors="replace") == record.executable


def rss_bytes(record: ProcessRecord) -> int:
    """Resident memory of a running process (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{record.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def stop(records: Iterable[ProcessRecord], timeout: float = 15.0) -> None:
    """SIGTERM each process group, wait, then SIGKILL whatever is left, and wait again."""
    running = [record for record in records if is_running(record)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for record in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(record.pid, sig)
        deadline = time.monotonic() + wait
        while running and time.monotonic() < deadline:
            running = [record for record in running if is_running(record)]
            if running:
                time.sleep(0.05)
        if not running:
            break
    for record in records:
        popen = _children.pop(record.pid, None)
        if popen is not None and popen.poll() is None:
            popen.wait(timeout=1)
    if running:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in running)
        raise RuntimeError(f"could not stop {names} even with SIGKILL")


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "".join(text.splitlines(keepends=True)[-lines:]) or "(log is empty)"
