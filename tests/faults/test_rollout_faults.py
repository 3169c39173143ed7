"""Faults in the network between Fleet and one cluster, injected through its Toxiproxy
link while a real rollout runs: the real pipeline (git, kustomize, server-side apply,
health) on two real API servers, driven in process as ``tests/reports`` does.

Each test runs one wave of local-1 and local-2 (max_failures 1) and faults local-1 at
one moment: a latency spike past the client's read timeout mid-apply, connection
resets mid-apply, a blackhole during verify, an outage during bake that ends before
the bake does (and one that does not). The faulted cluster fails (or, in bake, is
retried) within the wave's time budget with the reason on its record; the other
cluster is untouched; an apply cut short says how far it got.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from django.utils import timezone

from fleet.accounts.roles import Role
from fleet.core import context
from fleet.dev import testrepo
from fleet.dev.localfleet.register import register
from fleet.dev.localfleet.toxiproxy import Proxy
from fleet.inventory.models import Channel, Release
from fleet.kube import apply as kube_apply
from fleet.kube import constants as kube_constants
from fleet.kube.client import forget_clients
from fleet.rollouts import orchestrator, pipeline, services, steps
from fleet.rollouts.models import ClusterDeployment, Rollout
from fleet.rollouts.states import ROLLOUT_FINISHED
from tests.conftest import make_client
from tests.dev.fixtures import RunningFleet

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

FAULTED = "local-1"
READ_TIMEOUT = 2.0  # the client's read timeout in these tests (30 s in production)


@dataclass
class World:
    network: RunningFleet
    release: Release
    author: object

    def link(self, name: str = FAULTED) -> Proxy:
        return self.network.fleet.proxy(name)

    def rollout(self, *, bake_seconds: int = 0, health_timeout: int = 30) -> Rollout:
        names = [c.name for c in self.network.clusters]
        wave = {"name": "all", "clusters": names, "max_parallel": 2, "max_failures": "1",
                "bake_seconds": bake_seconds}
        with context.activate(source="api", actor="ada-admin"):
            rollout = services.create_rollout(services.RolloutRequest(
                release=self.release, waves=[wave], clusters=names, health_timeout_seconds=health_timeout),
                self.author)
            return services.start(rollout)


@pytest.fixture
def world(network, db, tmp_path, settings) -> Iterator[World]:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    settings.FLEET_ROLLOUT_HEARTBEAT_TIMEOUT = 3600  # no heartbeat thread writes while the test holds the db
    primary = testrepo.create_primary_repo(tmp_path / "vendor" / "platform.git")
    channel = Channel.objects.create(name="platform-1-0", repo_url=primary.url, branch="release-1.0")
    release = Release.objects.create(channel=channel, version="1.0.0", upstream_sha=primary.head("release-1.0"))
    repos = {c.name: testrepo.create_internal_repo(tmp_path / "internal" / f"{c.name}.git", primary=primary,
                                                   at=primary.head("release-1.0")) for c in network.clusters}
    author = make_client(Role.ADMIN, "ada-admin").user
    with context.activate(source="cli", actor="setup"):
        register(network.clusters, channel=channel, repo_url=lambda n: str(repos[n]))
    yield World(network, release, author)
    forget_clients()  # the next test's inventory clusters are new rows: new clients


def drive(rollout: Rollout, capture, on_advance: Callable[[Rollout], None] = lambda r: None,
          timeout: float = 120) -> Rollout:
    """Advance and run deployments in process until the rollout ends; a bake's
    ``advance_later`` is honoured by sleeping (capped at a second) before advancing again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued: list[int] = []
        later: list[float] = []
        scheduler = orchestrator.Scheduler(run_deployment=queued.append, advance=lambda pk: None,
                                           advance_later=lambda pk, delay, later=later: later.append(delay),
                                           recheck_health=steps.recheck_health)
        with capture(execute=True):
            orchestrator.advance(rollout.pk, scheduler)
        for deployment_id in queued:
            with context.activate(source="task", actor="task:rollouts.run_deployment"):
                pipeline.run(deployment_id)
        rollout.refresh_from_db()
        if rollout.state in ROLLOUT_FINISHED:
            return rollout
        on_advance(rollout)
        if later:
            time.sleep(min(min(later), 1.0))
    raise AssertionError(f"rollout #{rollout.pk} did not settle in {timeout:.0f}s: {rollout.state}")


def deployments(rollout: Rollout) -> dict[str, ClusterDeployment]:
    return {d.cluster.name: d for d in rollout.deployments.select_related("cluster")}


@pytest.fixture
def after_first_write(monkeypatch) -> Callable[[Callable[[], None]], None]:
    """Run ``fault`` once, right after the server acknowledges the first real write to
    the faulted cluster: the apply is then under way, with objects left to send."""
    def install(fault: Callable[[], None]) -> None:
        original, fired, lock = kube_apply._patch, threading.Event(), threading.Lock()

        def patch(client, item, *, force, dry_run):
            live = original(client, item, force=force, dry_run=dry_run)
            if not dry_run and client.cluster == FAULTED:
                with lock:
                    if not fired.is_set():
                        fired.set()
                        fault()
            return live

        monkeypatch.setattr(kube_apply, "_patch", patch)
    return install


def assert_cut_short(deployment: ClusterDeployment, budget: float) -> dict:
    """Failed in apply, within ``budget`` seconds, the record saying how far it got."""
    assert deployment.state == "failed", deployment.error
    assert deployment.error.startswith("apply: ")
    record = deployment.steps["apply"]
    assert record["ok"] is False and record["seconds"] < budget, record
    partial = record["detail"]["partial"]
    assert 1 <= partial["written"] < partial["total"], partial
    assert f"partially applied: {partial['written']} of {partial['total']} objects" in deployment.error
    assert "verify" not in deployment.steps and not deployment.tag  # nothing after the failed step
    return record


def assert_untouched(rollout: Rollout, name: str = "local-2") -> None:
    other = deployments(rollout)[name]
    assert other.state == "succeeded", other.error
    assert all(other.steps[step]["ok"] for step, _ in steps.PIPELINE)


def test_latency_spike_past_the_read_timeout_mid_apply(world, monkeypatch, after_first_write,
                                                      django_capture_on_commit_callbacks):
    monkeypatch.setattr(kube_constants, "READ_TIMEOUT", READ_TIMEOUT)
    after_first_write(lambda: world.link().latency(int(READ_TIMEOUT * 1000) + 500))
    rollout = drive(world.rollout(), django_capture_on_commit_callbacks)
    assert rollout.state == "succeeded", rollout.reason  # one failure is within the wave's budget
    faulted = deployments(rollout)[FAULTED]
    # Requests time out together (8 at once), each once: a few read timeouts, not a hang.
    assert_cut_short(faulted, budget=4 * READ_TIMEOUT + 5)
    assert "did not answer in time" in faulted.error
    assert_untouched(rollout)


def test_connection_reset_mid_apply(world, after_first_write, django_capture_on_commit_callbacks):
    after_first_write(lambda: world.link().reset_peer())
    rollout = drive(world.rollout(), django_capture_on_commit_callbacks)
    assert rollout.state == "succeeded", rollout.reason
    faulted = deployments(rollout)[FAULTED]
    assert_cut_short(faulted, budget=10)  # resets are retried (idempotent writes), then given up
    assert f"cannot connect to {world.network.clusters[0].server}" in faulted.error  # the address Fleet uses
    assert_untouched(rollout)


def test_blackholed_during_verify(world, monkeypatch, django_capture_on_commit_callbacks):
    """The client's own read timeout (30 s) is left as it is: the health wait must end
    at its deadline all the same, not when the last hung read gives up."""
    verify = dict(steps.PIPELINE)["verify"]

    def blackholed_verify(context):
        if context.deployment.cluster.name == FAULTED:
            world.link().blackhole()
        return verify(context)

    monkeypatch.setattr(steps, "PIPELINE", [(n, blackholed_verify if n == "verify" else s)
                                            for n, s in steps.PIPELINE])
    health_timeout = 4
    rollout = drive(world.rollout(health_timeout=health_timeout), django_capture_on_commit_callbacks)
    assert rollout.state == "succeeded", rollout.reason
    faulted = deployments(rollout)[FAULTED]
    assert faulted.state == "failed" and faulted.error.startswith("verify: ")
    assert "did not answer in time" in faulted.error
    assert faulted.steps["verify"]["seconds"] < health_timeout + 3, faulted.steps["verify"]
    # Everything was applied before the cluster vanished, and the record says so.
    assert faulted.steps["apply"]["ok"] and len(faulted.applied_refs) == faulted.steps["render"]["detail"]["objects"]
    assert not faulted.tag
    assert_untouched(rollout)


def test_outage_during_bake(world, django_capture_on_commit_callbacks):
    """local-1 vanishes at the bake's first recheck and comes back before the bake ends:
    retried, it passes, the outage and its end on its record. local-2 vanishes for good:
    it fails when the bake ends, within the wave's budget (one failure)."""
    links = {name: world.link(name) for name in ("local-1", "local-2")}
    seen: dict[str, float] = {}

    def during_bake(rollout: Rollout) -> None:
        baking = rollout.waves.filter(state="baking").exists()
        if baking and "start" not in seen:
            seen["start"] = time.monotonic()
            for link in links.values():
                link.blackhole()
        elif "start" in seen and "cleared" not in seen and time.monotonic() - seen["start"] > 1:
            seen["cleared"] = time.monotonic()  # local-1 recovers after the outage's first recheck
            links["local-1"].clear()

    bake = 14  # long enough for an outage's recheck (5 s), a recovery, and a healthy recheck
    rollout = drive(world.rollout(bake_seconds=bake), django_capture_on_commit_callbacks, on_advance=during_bake)
    assert rollout.state == "succeeded", rollout.reason
    found = deployments(rollout)
    recovered, lost = found["local-1"], found["local-2"]
    assert recovered.state == "succeeded", recovered.error
    outage = recovered.steps["bake"]["outages"][0]
    assert "did not answer in time" in outage["error"] and outage["recovered_at"] > outage["since"]
    assert recovered.steps["bake"]["unreachable"] is False
    assert lost.state == "failed"
    assert lost.error.startswith("regressed while baking: unreachable when the bake ended")
    wave = rollout.waves.get()
    assert wave.state == "succeeded" and timezone.now() >= wave.bake_until
    # Within the wave's budget: the bake plus one bounded recheck, not a hang.
    assert (wave.finished_at - wave.started_at).total_seconds() < bake + 30
