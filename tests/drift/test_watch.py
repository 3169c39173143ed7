"""Event-driven detection on the real local fleet: watches on the applied kinds see a
kubectl edit and have the cluster scanned at once, long before the periodic scan."""

from __future__ import annotations

import time

import pytest

from fleet.drift import scan
from fleet.drift.choices import DriftState as S
from fleet.drift.choices import Trigger
from fleet.drift.models import ClusterDrift
from fleet.drift.watch import ClusterWatcher

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def wait_for_state(world, state: str, timeout: float = 10.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if ClusterDrift.objects.get(cluster=world.cluster).state == state:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise AssertionError(f"not {state} within {timeout}s")


def test_a_kubectl_edit_shows_as_drift_within_seconds_and_status_churn_scans_nothing(drift_world):
    drift_world.deploy()
    assert scan.scan_cluster(drift_world.cluster).state == S.IN_SYNC
    scans: list[str] = []

    def on_drift(cluster):
        scans.append(scan.scan_cluster(cluster, trigger=Trigger.WATCH).state)

    watcher = ClusterWatcher(drift_world.cluster, on_drift).start()
    try:
        time.sleep(1.0)  # controllers update the Deployment's status: no drift, no scan
        assert scans == []
        drift_world.kubectl("edit", "configmap", "app-config", env_editor="sed -i s/info/debug/")
        assert wait_for_state(drift_world, S.DRIFTED) < 10
        drift_world.kubectl("patch", "configmap", "app-config", "--type=merge", "-p",
                            '{"data":{"LOG_LEVEL":"info"}}')
        assert wait_for_state(drift_world, S.IN_SYNC) < 10
        drift_world.kubectl("delete", "service", "web")
        assert wait_for_state(drift_world, S.DRIFTED) < 10
    finally:
        watcher.stop()
    assert scans == [S.DRIFTED, S.IN_SYNC, S.DRIFTED] and watcher.events >= 3
