"""A drift world on the session's real local fleet: a vendor repo of our own, one
inventory cluster per test with its own namespace, applied set and internal repo
(several inventory clusters share one API server, each in its own namespace), deployed
through the real rollout pipeline, and the real ``kubectl`` to make drift with.

Celery is replaced by recorders (drift's scheduler and the rollouts'), and what they
record is run in process: the tests drive it, so every step is visible.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.utils import timezone

from fleet.core import context
from fleet.dev import testrepo
from fleet.dev.localfleet.register import register
from fleet.drift import services as drift_services
from fleet.gitops.git import Git
from fleet.inventory.models import Channel, Cluster, Release
from fleet.kube.client import client_for
from fleet.kube.errors import NotFound
from fleet.rollouts import orchestrator, pipeline, steps
from fleet.rollouts import services as rollouts
from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
from fleet.rollouts.states import ROLLOUT_FINISHED
from fleet.rollouts.states import DeploymentState as D
from fleet.toolchain.cache import locate

IMAGE = "registry.local/web"


def app_manifests(ns: str, *, image: str = f"{IMAGE}:1", replicas: int = 2) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-config", "namespace": ns},
         "data": {"LOG_LEVEL": "info"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ns},
         "stringData": {"password": "hunter2"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {
                      "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}]}],
                      "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists",
                                       "effect": "NoSchedule"}]}}}},
    ]


def vendor_files(ns: str, **kwargs: Any) -> dict[str, str]:
    return {"base/app.yaml": yaml.safe_dump_all(app_manifests(ns, **kwargs), sort_keys=False),
            "base/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                       "resources:\n- app.yaml\n"}


@dataclass
class Queued:
    """What was enqueued instead of reaching Celery."""

    scans: list[tuple[int, str]] = field(default_factory=list)
    selectors: list[tuple[str, str]] = field(default_factory=list)
    deployments: list[int] = field(default_factory=list)
    advances: list[int] = field(default_factory=list)


@dataclass
class DriftWorld:
    tmp: Path
    ns: str
    cluster: Cluster
    local: Any  # the LocalCluster behind it
    release: Release
    internal: Path
    queued: Queued
    author: Any

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                env_editor: str | None = None) -> subprocess.CompletedProcess:
        env = {**os.environ, **({"KUBE_EDITOR": env_editor} if env_editor else {})}
        result = subprocess.run([str(locate("kubectl")), "--kubeconfig", str(self.local.kubeconfig_path),
                                 "--namespace", self.ns, *args], capture_output=True, text=True, input=input,
                                timeout=60, env=env)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def deploy(self) -> ClusterDeployment:
        """Deploy the release to the cluster through the real rollout services and pipeline."""
        rollout = rollouts.create_rollout(rollouts.RolloutRequest(
            release=self.release, clusters=[self.cluster.name],
            waves=[{"name": "all", "clusters": [self.cluster.name]}]), self.author)
        return self.run_rollout(rollout)

    def twin(self, name: str, api_server_url: str) -> Cluster:
        """Another inventory cluster at ``api_server_url``, recorded as deployed exactly as
        this one is (same tag and commit, so its desired set comes from the same cache)."""
        twin = Cluster.objects.get(pk=self.cluster.pk)
        twin.pk, twin.name, twin.api_server_url = None, name, api_server_url
        twin.save()
        source = ClusterDeployment.objects.filter(cluster=self.cluster, state=D.SUCCEEDED).select_related(
            "rollout").first()
        rollout = Rollout.objects.create(release=source.rollout.release, strategy=[], author=self.author,
                                         state="succeeded")
        wave = Wave.objects.create(rollout=rollout, index=0, name="all", max_parallel=1, max_failures="0")
        ClusterDeployment.objects.create(rollout=rollout, wave=wave, cluster=twin, state=D.SUCCEEDED,
                                         tag=source.tag, local_sha=source.local_sha, finished_at=timezone.now())
        return twin

    def run_rollout(self, rollout: Rollout) -> ClusterDeployment:
        deployment = rollout.deployments.get()
        if rollout.state == "pending":  # a heal's rollout is started by the heal itself
            rollouts.start(rollout)
        drive(rollout, self.queued)
        deployment.refresh_from_db()
        return deployment


def drive(rollout: Rollout, queued: Queued) -> Rollout:
    """Advance and run the rollout's deployments in process until it ends."""
    for _ in range(30):
        queued.deployments.clear()
        orchestrator.advance(rollout.pk, orchestrator.scheduler())
        for pk in list(queued.deployments):
            with context.activate(source="task", actor="task:rollouts.run_deployment"):
                pipeline.run(pk)
        rollout.refresh_from_db()
        if rollout.state in ROLLOUT_FINISHED:
            return rollout
    raise AssertionError(f"rollout #{rollout.pk} did not finish: {rollout.state}")


@pytest.fixture
def queued() -> Iterator[Queued]:
    record = Queued()
    previous_drift = drift_services.install(drift_services.Scheduler(
        scan_cluster=lambda pk, trigger: record.scans.append((pk, trigger)),
        scan_selector=lambda selector, trigger: record.selectors.append((selector, trigger))))
    previous = orchestrator.install(orchestrator.Scheduler(
        run_deployment=record.deployments.append, advance=record.advances.append,
        advance_later=lambda pk, delay: None, recheck_health=steps.recheck_health))
    yield record
    orchestrator.install(previous)
    drift_services.install(previous_drift)


def _vendor_repo(path: Path, ns: str) -> testrepo.PrimaryRepo:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="drift-vendor-") as scratch:
        work = Git(Path(scratch))
        work.run("init", "--quiet", "--initial-branch", "release-1.0")
        sha = testrepo._commit(work, vendor_files(ns), "App 1.0.0", "2026-01-10T10:00:00Z")
        path.parent.mkdir(parents=True, exist_ok=True)
        Git(path.parent).run("clone", "--quiet", "--bare", scratch, str(path))
    return testrepo.PrimaryRepo(path, {"release-1.0": [sha]})


@pytest.fixture
def drift_world(local_fleet, transactional_db, tmp_path, settings, queued) -> Iterator[DriftWorld]:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    suffix = uuid.uuid4().hex[:8]
    ns, name = f"drift-{suffix}", f"drift-{suffix}"
    primary = _vendor_repo(tmp_path / "vendor" / "app.git", ns)
    channel = Channel.objects.create(name=f"app-{suffix}", repo_url=primary.url, branch="release-1.0")
    release = Release.objects.create(channel=channel, version="1.0.0", upstream_sha=primary.head("release-1.0"))
    internal = testrepo.create_internal_repo(tmp_path / "internal" / f"{name}.git", primary=primary,
                                             at=primary.head("release-1.0"))
    local = local_fleet.clusters[0]
    with context.activate(source="cli", actor="drift-test"):
        registered = register([local], channel=channel, repo_url=lambda n: str(internal),
                              labels=lambda n: {"drift-test": suffix})[0]
        # register() names the inventory cluster after the local one: rename it to ours,
        # so its applied set (named after it) and namespace are this test's alone.
        Cluster.objects.filter(pk=registered.pk).update(name=name)
    cluster = Cluster.objects.select_related("channel").get(pk=registered.pk)
    author = get_user_model().objects.create_user("drift-author")
    world = DriftWorld(tmp_path, ns, cluster, local, release, internal, queued, author)
    with context.activate(source="cli", actor="drift-test"):
        yield world
    client = client_for(cluster)
    for path in (f"/api/v1/namespaces/{ns}", f"/api/v1/namespaces/fleet-system/secrets/applyset-{name}"):
        try:
            client.request("DELETE", path)
        except NotFound:
            pass
