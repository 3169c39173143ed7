"""What one deployment costs the target API server, counted per verb by the client (the one
place requests go), step by step, on a real kube-apiserver through the real pipeline (git,
kustomize, the policy gate, server-side apply, health).

A 20-object set (a Namespace, ConfigMaps, Secrets, Services, Deployments) is deployed,
then a changed release of it (a ConfigMap and a Deployment's image changed, one object
added, one dropped), with a policy set that applies to the cluster (so the gate reads the
live set) and without one (so the dry-run step does). The bounds are what the pipeline
reaches; a request added back (a second listing, a dry-run of what did not change, health
polling) fails them. ``kubectl apply --server-side`` of the same set sends one PATCH per
object (20), after discovery.
"""

from __future__ import annotations

import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth import get_user_model
from django.utils import timezone

from fleet.core import context
from fleet.dev import testrepo
from fleet.dev.localfleet.register import register
from fleet.gitops.git import Git
from fleet.inventory.models import Channel, Cluster, Release
from fleet.kube import constants
from fleet.kube import services as kube_services
from fleet.kube.client import client_for
from fleet.kube.errors import NotFound
from fleet.policy.services import import_policy_set
from fleet.rollouts import pipeline, services, steps
from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import transition
from tests.kube.manifests import configmap, fleet_app

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

KUBE_STEPS = ("gate", "dry_run", "apply", "verify")
# Upper bounds, per verb, of each step's requests; "diff" is kube.diff's (the gate's where a
# policy runs, else the dry-run step's), and the policy gate's own reads of the cluster come
# on top of it in the gate. Lists by the ApplySet label: Namespaces, and the 4 namespaced
# kinds in the set's namespace and in the parent's.
BOUNDS = {
    "first": {
        # The parent (none yet) and the Namespace (none yet: nothing in it is read).
        "diff": {"discovery": 2, "get": 2, "list": 1 + 4 * 2},
        "dry_run": {"patch dry-run": 1},  # the Namespace: what it will hold is dry-run once it exists
        "apply": {"patch": 20 + 2, "patch dry-run": 19},  # and the parent's namespace and the parent
        "verify": {"watch": 1},  # 4 Deployments pending, in one namespace; the rest healthy as applied
    },
    "changed": {
        "diff": {"get": 2, "list": 1 + 4 * 2},  # the parent, and the one object not applied yet
        "dry_run": {"patch dry-run": 3},  # what changed and what is new; not the 17 unchanged
        "apply": {"patch": 20, "delete": 1},  # the parent keeps its kinds: not written
        "verify": {"watch": 1},  # the Deployment whose image changed
    },
}
# The policy gate's own reads: who Fleet is, and a Namespace the reviews place objects in
# that the diff did not read (the release's, before it exists). Never a list of a kind
# across the cluster: the reviews see the diff's reading as the live state.
POLICY_READS = {"get": 1, "create": 1}
NOTES = 'package counts.notes\n\nimport rego.v1\n\nwarn contains "noted" if input.kind == "Deployment"\n'


def release_one(ns: str) -> list[dict[str, Any]]:
    return fleet_app(ns, 20)


def release_two(ns: str) -> list[dict[str, Any]]:
    """Release one with a ConfigMap's data and a Deployment's image changed, a ConfigMap
    added and a Secret dropped: a routine upgrade."""
    objects = [obj for obj in release_one(ns) if obj["metadata"]["name"] != "secret-4"]
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "config-0":
            obj["data"] = {"setting": "changed"}
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "web-0":
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = "registry.local/web:2"
    return [*objects, configmap(ns, "added")]


def vendor_files(objects: list[dict[str, Any]]) -> dict[str, str]:
    return {"base/app.yaml": yaml.safe_dump_all(objects, sort_keys=False),
            "base/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                       "resources:\n- app.yaml\n"}


def vendor_repo(path: Path, ns: str) -> testrepo.PrimaryRepo:
    """Two commits on release-1.0: release one, then release two."""
    with tempfile.TemporaryDirectory(prefix="counts-vendor-") as scratch:
        work = Git(Path(scratch))
        work.run("init", "--quiet", "--initial-branch", "release-1.0")
        shas = [testrepo._commit(work, vendor_files(release_one(ns)), "App 1.0.0", "2026-01-10T10:00:00Z"),
                testrepo._commit(work, vendor_files(release_two(ns)), "App 1.0.1", "2026-01-11T10:00:00Z")]
        path.parent.mkdir(parents=True, exist_ok=True)
        Git(path.parent).run("clone", "--quiet", "--bare", scratch, str(path))
    return testrepo.PrimaryRepo(path, {"release-1.0": shas})


@dataclass
class Measured:
    """Requests per step of one deployment, by verb; kube.diff's also on its own."""

    steps: dict[str, dict[str, int]]
    diff: dict[str, int]

    @property
    def total(self) -> dict[str, int]:
        return dict(sum((Counter(counts) for counts in self.steps.values()), Counter()))


@dataclass
class CountWorld:
    cluster: Cluster
    releases: list[Release]
    author: Any
    measure: Callable[[Release], Measured]


@pytest.fixture
def count_world(local_fleet, transactional_db, tmp_path, settings, monkeypatch) -> Iterator[CountWorld]:
    settings.FLEET_WORKSPACE_DIR = tmp_path / "workspaces"
    monkeypatch.setattr(pipeline, "FINISHED_HOOKS", [])  # no drift scan after it: only the deployment counts
    suffix = uuid.uuid4().hex[:8]
    ns = name = f"counts-{suffix}"
    primary = vendor_repo(tmp_path / "vendor" / "app.git", ns)
    channel = Channel.objects.create(name=name, repo_url=primary.url, branch="release-1.0")
    releases = [Release.objects.create(channel=channel, version=f"1.0.{i}", upstream_sha=sha)
                for i, sha in enumerate(primary.commits["release-1.0"])]
    internal = testrepo.create_internal_repo(tmp_path / "internal" / f"{name}.git", primary=primary,
                                             at=releases[0].upstream_sha)
    with context.activate(source="cli", actor="counts-test"):
        registered = register([local_fleet.clusters[0]], channel=channel, repo_url=lambda n: str(internal),
                              labels=lambda n: {"counts-test": suffix})[0]
    # Named after the test, so its applied set (named after the cluster) is its own.
    Cluster.objects.filter(pk=registered.pk).update(name=name)
    cluster = Cluster.objects.select_related("channel").get(pk=registered.pk)
    author = get_user_model().objects.create_user("counts-author")
    client = client_for(cluster)  # a new inventory cluster: a new client, discovery not cached yet

    def measure(release: Release) -> Measured:
        per_step: dict[str, dict[str, int]] = {}
        diff: dict[str, int] = {}

        def counted(name: str, step: Callable) -> Callable:
            def run(ctx: steps.Context) -> dict[str, Any]:
                client.counts.reset()
                try:
                    return step(ctx)
                finally:
                    per_step[name] = client.counts.reset()
            return run

        def counted_diff(*args: Any, **kwargs: Any) -> Any:
            before = Counter(client.counts.snapshot())
            try:
                return original_diff(*args, **kwargs)
            finally:
                diff.update(Counter(client.counts.snapshot()) - before)

        original_diff = kube_services.diff
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(steps, "PIPELINE", [(n, counted(n, s) if n in KUBE_STEPS else s)
                                              for n, s in steps.PIPELINE])
            patch.setattr(kube_services, "diff", counted_diff)
            with context.activate(source="cli", actor="counts-test"):
                rollout = services.create_rollout(services.RolloutRequest(
                    release=release, clusters=[cluster.name], waves=[{"name": "all", "clusters": [cluster.name]}]),
                    author)
                deployment = rollout.deployments.get()
                assert transition(deployment, D.RUNNING, started_at=timezone.now())
                pipeline.run(deployment.pk)
        deployment = ClusterDeployment.objects.get(pk=deployment.pk)
        assert deployment.state == D.SUCCEEDED, deployment.error
        return Measured(per_step, diff)

    yield CountWorld(cluster, releases, author, measure)
    for path in (f"/api/v1/namespaces/{ns}", f"/api/v1/namespaces/fleet-system/secrets/applyset-{name}"):
        try:
            client.request("DELETE", path)
        except NotFound:
            pass


def report(label: str, measured: Measured) -> None:
    print(f"\n{label}: total {measured.total}")
    for name, counts in measured.steps.items():
        print(f"  {name}: {counts}")
    print(f"  (kube.diff: {measured.diff})")


def plus(*counts: dict[str, int]) -> dict[str, int]:
    return dict(sum((Counter(c) for c in counts), Counter()))


def assert_within(measured: Measured, bounds: dict[str, dict[str, int]], policy: bool) -> None:
    expected = {**bounds, "gate": plus(bounds["diff"], POLICY_READS) if policy else {},
                "dry_run": bounds["dry_run"] if policy else plus(bounds["diff"], bounds["dry_run"])}
    over = {name: {verb: (n, expected[name].get(verb, 0)) for verb, n in counts.items()
                   if n > expected[name].get(verb, 0)}
            for name, counts in [*measured.steps.items(), ("diff", measured.diff)]}
    assert not any(over.values()), f"more requests than before (sent, bound): {over}"


@pytest.mark.parametrize("policy", [True, False], ids=["with-policy", "no-policy"])
def test_requests_per_deployment(count_world, policy, tmp_path):
    if policy:
        (tmp_path / "notes").mkdir()
        (tmp_path / "notes" / "notes.rego").write_text(NOTES)
        with context.activate(source="cli", actor="counts-test"):
            import_policy_set("notes", tmp_path / "notes", mode="warn",
                              selector=f"counts-test={count_world.cluster.labels['counts-test']}")
    first = count_world.measure(count_world.releases[0])
    report(f"first deployment ({'with' if policy else 'no'} policy)", first)
    assert_within(first, BOUNDS["first"], policy)
    repeat = count_world.measure(count_world.releases[1])
    report(f"changed set ({'with' if policy else 'no'} policy)", repeat)
    assert_within(repeat, BOUNDS["changed"], policy)
    # Both deployments on kept-alive connections: at most one per concurrent request, each
    # a TLS handshake the server pays for once, not once per deployment.
    assert client_for(count_world.cluster).connections_opened <= constants.CONCURRENCY
