"""The end-to-end world: the real local fleet registered in the inventory, a vendor
primary repo with releases, an internal repo per cluster, a policy set, and real
Celery workers in their own processes (so one can be killed with SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from fleet.core import context
from fleet.dev import testrepo
from fleet.dev.localfleet.register import register
from fleet.inventory.models import Channel, Cluster, Release
from fleet.policy.services import import_policy_set

ROOT = Path(__file__).resolve().parents[2]
DENY_CONFIGMAPS = """package e2e.frozen

import rego.v1

deny contains msg if {
  input.kind == "ConfigMap"
  msg := concat("", ["ConfigMaps are frozen on this cluster: ", input.metadata.name])
}
"""


@dataclass
class World:
    tmp: Path
    primary: testrepo.PrimaryRepo
    releases: dict[str, Release]
    clusters: dict[str, Cluster]
    repos: dict[str, Path]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


class Workers:
    """Celery workers as real processes, sharing the test database and workspaces."""

    def __init__(self, tmp: Path):
        self.tmp, self.processes = tmp, []
        self.env = {**os.environ, "DATABASE_URL": _database_url(),
                    "FLEET_DATA_DIR": str(settings.DATA_DIR),
                    "FLEET_WORKSPACE_DIR": str(settings.FLEET_WORKSPACE_DIR),
                    "FLEET_CREDENTIALS_KEYS": ",".join(settings.FLEET_CREDENTIALS_KEYS),
                    "FLEET_ROLLOUT_HEARTBEAT_TIMEOUT": "6", "FLEET_ROLLOUT_SWEEP_SECONDS": "2"}

    def start(self, name: str) -> subprocess.Popen:
        log = open(self.tmp / f"worker-{name}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fleet", "worker", "--beat", "-P", "threads", "-c", "4",
             "-n", f"{name}@%h", "--loglevel=INFO", "-s", str(self.tmp / f"beat-{name}")],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)


@pytest.fixture
def workers(tmp_path) -> Iterator[Workers]:
    pool = Workers(tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def world(local_fleet, transactional_db, tmp_path, settings) -> World:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    primary = testrepo.create_primary_repo(tmp_path / "vendor" / "platform.git")
    channels = {v: Channel.objects.create(name=f"platform-{v.replace('.', '-')}", repo_url=primary.url,
                                          branch=f"release-{v}") for v in ("1.0", "1.1")}
    releases = {"1.0": Release.objects.create(channel=channels["1.0"], version="1.0.0",
                                              upstream_sha=primary.head("release-1.0")),
                "1.1": Release.objects.create(channel=channels["1.1"], version="1.1.1",
                                              upstream_sha=primary.head("release-1.1"))}
    repos = {c.name: testrepo.create_internal_repo(tmp_path / "internal" / f"{c.name}.git", primary=primary,
                                                   at=primary.head("release-1.0"))
             for c in local_fleet.clusters}
    labels = {"local-1": {"ring": "canary"}, "local-2": {"ring": "main"},
              "local-3": {"ring": "main", "policy-test": "deny"}}
    with context.activate(source="cli", actor="e2e"):
        clusters = register(local_fleet.clusters, channel=channels["1.0"], repo_url=lambda n: str(repos[n]),
                            labels=lambda n: labels[n])
        policy_dir = tmp_path / "policy"
        policy_dir.mkdir()
        (policy_dir / "frozen.rego").write_text(DENY_CONFIGMAPS)
        import_policy_set("frozen-configmaps", policy_dir, selector="policy-test=deny")
    return World(tmp_path, primary, releases, {c.name: c for c in clusters}, repos)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
