"""Children of the local fleet: stopped as whole process groups, and killed with their
parent when asked to (the guarantee that a dead pytest leaves no API servers behind)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from fleet.dev.localfleet.process import ProcessRecord, is_running, spawn, stop

REPO = Path(__file__).resolve().parents[2]


def group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def wait_until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_stop_kills_the_whole_process_group(tmp_path):
    record = spawn(
        "shell", ["/bin/sh", "-c", "sleep 300 & sleep 300"], tmp_path / "sh.log", die_with_parent=False
    )
    assert wait_until(lambda: len(group_members(record.pid)) == 3)
    stop([record], timeout=5)
    assert not is_running(record)
    assert group_members(record.pid) == []


def test_children_die_with_their_parent(tmp_path):
    script = (
        "import sys; from pathlib import Path; from fleet.dev.localfleet.process import spawn; "
        "r = spawn('sleep', ['/bin/sleep', '300'], Path(sys.argv[1]), die_with_parent=True); print(r.pid)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "sleep.log")],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    orphan = ProcessRecord("sleep", int(result.stdout), "/bin/sleep", "")
    assert wait_until(lambda: not is_running(orphan)), "the child outlived its parent"


def test_a_reused_pid_is_not_mistaken_for_ours(tmp_path):
    record = spawn("sleep", ["/bin/sleep", "300"], tmp_path / "sleep.log", die_with_parent=True)
    try:
        assert is_running(record)
        assert not is_running(ProcessRecord("etcd", record.pid, "/somewhere/etcd", ""))
    finally:
        stop([record])
