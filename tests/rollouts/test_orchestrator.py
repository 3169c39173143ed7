"""``orchestrator.advance`` on the real database, driven with a fake Scheduler.

No pipeline runs here: the Scheduler is the orchestrator's one seam to the world
(Celery in production), so a fake stands in for it and records what ``advance`` and
the services ask for (deployments to run, advances now and later), and answers the
bake's health recheck as each test says. A test finishes a deployment by setting its
state, as a worker's pipeline does. The e2e suite drives the same code with real
workers on real clusters.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from fleet.accounts.rules import AccessDenied
from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster, Release
from fleet.rollouts import orchestrator, services
from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
from fleet.rollouts.states import DeploymentState as D
from fleet.rollouts.states import RolloutState as R
from fleet.rollouts.states import WaveState as W
from fleet.rollouts.states import transition
from tests.factories import ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@dataclass
class FakeScheduler:
    """Records every request; ``problems`` (cluster name -> reason) is what the recheck finds."""

    ran: list[int] = field(default_factory=list)
    advanced: list[int] = field(default_factory=list)
    later: list[tuple[int, float]] = field(default_factory=list)
    rechecked: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)

    def recheck(self, deployment: ClusterDeployment) -> str | None:
        self.rechecked.append(deployment.cluster.name)  # called from the recheck's threads: no queries
        return self.problems.get(deployment.cluster.name)

    @property
    def scheduler(self) -> orchestrator.Scheduler:
        return orchestrator.Scheduler(run_deployment=self.ran.append, advance=self.advanced.append,
                                      advance_later=lambda pk, delay: self.later.append((pk, delay)),
                                      recheck_health=self.recheck)

    def ran_on(self) -> list[str]:
        """The clusters whose deployments were sent to run, in order."""
        names = dict(ClusterDeployment.objects.filter(pk__in=self.ran).values_list("pk", "cluster__name"))
        return [names[pk] for pk in self.ran]


class Driver:
    """Advances rollouts as the tasks do, running the on-commit callbacks (what reaches
    the scheduler) that the test's own transaction would otherwise hold back."""

    def __init__(self, fake: FakeScheduler, release: Release, author, capture):
        self.fake, self.release, self.author, self.capture = fake, release, author, capture

    def create(self, waves: list[dict], selector: str = "", **options) -> Rollout:
        request = services.RolloutRequest(release=self.release, selector=selector, waves=waves,
                                          clusters=options.pop("clusters", None))
        return services.create_rollout(request, self.author, **options)

    def call(self, operation, *args):
        with self.capture(execute=True):
            return operation(*args)

    def start(self, rollout: Rollout) -> Rollout:
        self.call(services.start, rollout)
        self.advance(rollout)
        return rollout

    def advance(self, rollout: Rollout) -> None:
        self.call(orchestrator.advance, rollout.pk, self.fake.scheduler)
        rollout.refresh_from_db()

    def finish(self, rollout: Rollout, *names: str, state: str = D.SUCCEEDED) -> None:
        """As a worker's pipeline ends a deployment (then it asks for an advance)."""
        for deployment in rollout.deployments.filter(cluster__name__in=names):
            assert transition(deployment, state, finished_at=timezone.now()), deployment


def deployments(rollout: Rollout) -> dict[str, str]:
    return dict(rollout.deployments.values_list("cluster__name", "state"))


def waves(rollout: Rollout) -> list[str]:
    return list(rollout.waves.order_by("index").values_list("state", flat=True))


def snapshot(rollout: Rollout) -> tuple:
    """Everything advance could change: states, times, errors, and the audit chain's length."""
    rollout.refresh_from_db()
    return (rollout.state, rollout.reason,
            list(rollout.waves.order_by("index").values_list("state", "bake_until", "reason")),
            list(rollout.deployments.order_by("pk").values_list("state", "error", "started_at")),
            AuditEvent.objects.count())


@pytest.fixture
def fake() -> Iterator[FakeScheduler]:
    fake = FakeScheduler()
    previous = orchestrator.install(fake.scheduler)
    assert previous is not None  # the rollouts app installed Celery's at start-up
    yield fake
    orchestrator.install(previous)


@pytest.fixture
def release() -> Release:
    return ReleaseFactory()


@pytest.fixture
def driver(fake, release, operator, django_capture_on_commit_callbacks) -> Driver:
    return Driver(fake, release, operator.user, django_capture_on_commit_callbacks)


@pytest.fixture
def clusters(release):
    """``clusters("a", "b", ring="main")`` makes clusters on the release's channel."""
    def make(*names: str, **labels: str) -> None:
        for name in names:
            ClusterFactory(name=name, labels={"env": "prod", **labels}, channel=release.channel)
    return make


def test_waves_run_in_order_each_within_its_max_parallel(driver, fake, clusters):
    clusters("canary-1", ring="canary")
    clusters("main-1", "main-2", "main-3", "main-4", ring="main")
    rollout = driver.create([{"name": "canary", "selector": "ring=canary"},
                             {"name": "main", "selector": "ring=main", "max_parallel": 2}], "env=prod")
    driver.start(rollout)
    assert fake.advanced == [rollout.pk]  # start asked for an advance, through the installed scheduler
    assert fake.ran_on() == ["canary-1"] and waves(rollout) == ["running", "pending"]

    driver.finish(rollout, "canary-1")
    driver.advance(rollout)
    assert waves(rollout) == ["succeeded", "running"]
    assert fake.ran_on() == ["canary-1", "main-1", "main-2"]  # two at once, in name order

    driver.finish(rollout, "main-1")
    driver.advance(rollout)
    assert fake.ran_on() == ["canary-1", "main-1", "main-2", "main-3"]  # main-2 still holds a place
    driver.finish(rollout, "main-2", "main-3")
    driver.advance(rollout)
    assert fake.ran_on()[-1] == "main-4"
    driver.finish(rollout, "main-4")
    driver.advance(rollout)
    assert rollout.state == R.SUCCEEDED and rollout.finished_at is not None
    assert waves(rollout) == ["succeeded", "succeeded"] and set(deployments(rollout).values()) == {D.SUCCEEDED}
    assert not fake.later  # no bake asked for: no delayed advance


def test_a_failure_budget_as_a_count_halts_the_wave_and_the_rollout(driver, fake, clusters):
    clusters("a-1", "a-2", "a-3", "a-4", ring="main")
    clusters("b-1", ring="last")
    rollout = driver.start(driver.create([
        {"name": "main", "selector": "ring=main", "max_parallel": 4, "max_failures": "1"},
        {"name": "last", "selector": "ring=last"}], "env=prod"))
    assert len(fake.ran) == 4

    driver.finish(rollout, "a-1", state=D.FAILED)
    driver.advance(rollout)
    assert rollout.state == R.RUNNING  # one failure is within the budget

    driver.finish(rollout, "a-2", state=D.BLOCKED)
    driver.advance(rollout)
    assert rollout.state == R.HALTED and rollout.reason == "main: 2 of 4 clusters failed; the budget is 1"
    assert waves(rollout) == ["halted", "cancelled"]
    # Clusters in flight finish on their own; nothing not yet started ever starts.
    assert deployments(rollout) == {"a-1": D.FAILED, "a-2": D.BLOCKED, "a-3": D.RUNNING, "a-4": D.RUNNING,
                                    "b-1": D.CANCELLED}
    assert rollout.deployments.get(cluster__name="b-1").error.startswith("rollout halted: main: 2 of 4")
    driver.finish(rollout, "a-3", "a-4")
    driver.advance(rollout)
    assert len(fake.ran) == 4 and rollout.state == R.HALTED


def test_a_failure_budget_as_a_percent_counts_the_wave_size(driver, fake, clusters):
    clusters("c-1", "c-2", "c-3", "c-4")
    rollout = driver.start(driver.create([{"name": "all", "max_parallel": 2, "max_failures": "50%"}], "env=prod"))
    driver.finish(rollout, "c-1", state=D.FAILED)
    driver.finish(rollout, "c-2", state=D.CONFLICT)
    driver.advance(rollout)
    assert rollout.state == R.RUNNING  # 2 of 4: 50% is allowed
    assert fake.ran_on() == ["c-1", "c-2", "c-3", "c-4"]

    driver.finish(rollout, "c-3", state=D.FAILED)
    driver.advance(rollout)
    assert rollout.state == R.HALTED and rollout.reason == "all: 3 of 4 clusters failed; the budget is 50%"
    assert waves(rollout) == ["halted"]


def test_a_wave_needing_approval_waits_for_someone_other_than_the_author(driver, fake, clusters, admin_client_api):
    clusters("p-1", "p-2")
    rollout = driver.start(driver.create([{"name": "prod", "require_approval": True, "max_parallel": 2}],
                                         "env=prod"))
    assert waves(rollout) == ["awaiting_approval"] and not fake.ran
    driver.advance(rollout)
    assert waves(rollout) == ["awaiting_approval"] and not fake.ran

    with pytest.raises(AccessDenied, match="someone other than its author") as refused:
        driver.call(services.approve, rollout, driver.author)
    assert refused.value.key == "access.forbidden"
    assert waves(rollout) == ["awaiting_approval"] and fake.advanced == [rollout.pk]

    driver.call(services.approve, rollout, admin_client_api.user)
    assert waves(rollout) == ["running"] and fake.advanced == [rollout.pk, rollout.pk]
    driver.advance(rollout)
    assert fake.ran_on() == ["p-1", "p-2"]


def test_a_wave_approved_ahead_runs_as_soon_as_it_is_reached(driver, fake, clusters, admin_client_api):
    clusters("canary-1", ring="canary")
    clusters("prod-1", ring="main")
    rollout = driver.start(driver.create([{"name": "canary", "selector": "ring=canary"},
                                          {"name": "main", "selector": "ring=main", "require_approval": True}],
                                         "env=prod"))
    driver.call(services.approve, rollout, admin_client_api.user)  # while the canary runs
    assert waves(rollout) == ["running", "pending"]
    driver.finish(rollout, "canary-1")
    driver.advance(rollout)
    assert waves(rollout) == ["succeeded", "running"] and fake.ran_on() == ["canary-1", "prod-1"]


def test_a_bake_waits_then_lets_the_next_wave_start(driver, fake, clusters):
    clusters("canary-1", ring="canary")
    clusters("main-1", ring="main")
    rollout = driver.start(driver.create([{"name": "canary", "selector": "ring=canary", "bake_seconds": 600},
                                          {"name": "main", "selector": "ring=main"}], "env=prod"))
    driver.finish(rollout, "canary-1")
    driver.advance(rollout)
    canary = rollout.waves.get(index=0)
    assert canary.state == W.BAKING
    assert timedelta(seconds=590) < canary.bake_until - timezone.now() <= timedelta(seconds=600)
    assert fake.later == [(rollout.pk, orchestrator.BAKE_RECHECK_SECONDS)]  # rechecks while it bakes
    assert fake.ran_on() == ["canary-1"]

    driver.advance(rollout)  # the delayed advance: rechecks health, the bake goes on
    assert fake.rechecked == ["canary-1"] and waves(rollout) == ["baking", "pending"]
    assert len(fake.later) == 2

    Wave.objects.filter(pk=canary.pk).update(bake_until=timezone.now() - timedelta(seconds=1))
    driver.advance(rollout)
    assert waves(rollout) == ["succeeded", "running"] and fake.ran_on() == ["canary-1", "main-1"]


@pytest.mark.parametrize(("budget", "halts"), [("0", True), ("1", False)])
def test_a_regression_while_baking_fails_the_deployment_and_may_halt(driver, fake, clusters, budget, halts):
    clusters("canary-1", "canary-2", ring="canary")
    clusters("main-1", ring="main")
    rollout = driver.start(driver.create([
        {"name": "canary", "selector": "ring=canary", "max_parallel": 2, "bake_seconds": 600,
         "max_failures": budget},
        {"name": "main", "selector": "ring=main"}], "env=prod"))
    driver.finish(rollout, "canary-1", "canary-2")
    driver.advance(rollout)
    fake.problems["canary-2"] = "ConfigMap platform/app-config: not found"
    driver.advance(rollout)

    assert sorted(fake.rechecked) == ["canary-1", "canary-2"]
    regressed = rollout.deployments.get(cluster__name="canary-2")
    assert regressed.state == D.FAILED
    assert regressed.error == "regressed while baking: ConfigMap platform/app-config: not found"
    if halts:
        assert rollout.state == R.HALTED
        assert rollout.reason == "canary: 1 of 2 clusters failed (regressions while baking); the budget is 0"
        assert waves(rollout) == ["halted", "cancelled"] and deployments(rollout)["main-1"] == D.CANCELLED
    else:
        assert rollout.state == R.RUNNING and waves(rollout) == ["baking", "pending"]
        assert deployments(rollout)["canary-1"] == D.SUCCEEDED


def test_pause_holds_new_starts_and_resume_goes_on(driver, fake, clusters):
    clusters("a-1", "a-2")
    rollout = driver.start(driver.create([{"name": "all"}], "env=prod"))
    driver.call(services.pause, rollout)
    assert rollout.state == R.PAUSED and fake.advanced == [rollout.pk]  # pausing enqueues nothing

    driver.finish(rollout, "a-1")  # the cluster in flight finishes
    driver.advance(rollout)
    assert fake.ran_on() == ["a-1"] and deployments(rollout)["a-2"] == D.PENDING

    driver.call(services.resume, rollout)
    assert rollout.state == R.RUNNING and fake.advanced == [rollout.pk, rollout.pk]
    driver.advance(rollout)
    assert fake.ran_on() == ["a-1", "a-2"]


def test_abort_waits_for_the_running_cluster_and_cancels_the_rest(driver, fake, clusters):
    clusters("a-1", "a-2", ring="first")
    clusters("b-1", ring="second")
    rollout = driver.start(driver.create([{"name": "first", "selector": "ring=first"},
                                          {"name": "second", "selector": "ring=second"}], "env=prod"))
    driver.call(services.abort, rollout, "change freeze")
    assert rollout.state == R.ABORTING and fake.advanced == [rollout.pk, rollout.pk]

    driver.advance(rollout)
    assert rollout.state == R.ABORTING  # a-1 is still in flight
    assert deployments(rollout) == {"a-1": D.RUNNING, "a-2": D.CANCELLED, "b-1": D.CANCELLED}
    assert waves(rollout) == ["running", "cancelled"]

    driver.finish(rollout, "a-1")
    driver.advance(rollout)
    assert rollout.state == R.ABORTED and rollout.reason == "change freeze"
    assert waves(rollout) == ["cancelled", "cancelled"] and fake.ran_on() == ["a-1"]


def test_aborting_a_pending_rollout_cancels_everything_at_once(driver, fake, clusters):
    clusters("a-1", "a-2")
    rollout = driver.create([{"name": "all"}], "env=prod")
    driver.call(services.abort, rollout)
    rollout.refresh_from_db()
    assert rollout.state == R.ABORTED and rollout.reason == "aborted by request"
    assert set(rollout.deployments.values_list("state", "error")) == {(D.CANCELLED, "aborted by request")}
    assert waves(rollout) == ["cancelled"]
    assert not fake.advanced  # nothing left to advance
    before = snapshot(rollout)
    driver.advance(rollout)
    assert snapshot(rollout) == before and not fake.ran


def test_paused_clusters_are_skipped_and_pinned_ones_too_except_by_a_rollback(driver, fake, clusters):
    clusters("paused-1", "pinned-1", "plain-1")
    Cluster.objects.filter(name="paused-1").update(paused=True)
    Cluster.objects.filter(name="pinned-1").update(pinned=True)
    rollout = driver.start(driver.create([{"name": "all", "max_parallel": 3}], "env=prod"))
    assert deployments(rollout) == {"paused-1": D.SKIPPED, "pinned-1": D.SKIPPED, "plain-1": D.RUNNING}
    assert rollout.deployments.get(cluster__name="paused-1").error == "cluster is paused"
    assert rollout.deployments.get(cluster__name="pinned-1").error == "cluster is pinned"
    assert fake.ran_on() == ["plain-1"]
    driver.finish(rollout, "plain-1")
    driver.advance(rollout)
    assert rollout.state == R.SUCCEEDED

    rollback = driver.start(driver.create([{"name": "back", "max_parallel": 2}], clusters=["paused-1", "pinned-1"],
                                          kind=Rollout.Kind.ROLLBACK, rollback_of=rollout))
    assert deployments(rollback) == {"paused-1": D.SKIPPED, "pinned-1": D.RUNNING}
    assert fake.ran_on() == ["plain-1", "pinned-1"]


def test_a_cluster_running_in_another_rollout_is_not_claimed(driver, fake, clusters):
    clusters("shared-1", ring="one")
    clusters("own-1", ring="two")
    first = driver.start(driver.create([{"name": "one"}], "ring=one"))
    second = driver.create([{"name": "two", "max_parallel": 2}], "ring=two")
    # As two creations racing past create_rollout's busy check would leave it: shared-1
    # pending in the second rollout while it runs in the first. The database decides.
    ClusterDeployment.objects.create(rollout=second, wave=second.waves.get(), upstream_sha=second.release.upstream_sha,
                                     cluster=first.deployments.get().cluster)
    driver.start(second)
    assert deployments(second) == {"shared-1": D.PENDING, "own-1": D.RUNNING}
    assert fake.ran_on() == ["shared-1", "own-1"]  # shared-1 for the first rollout only

    driver.finish(first, "shared-1")
    driver.advance(second)
    assert deployments(second)["shared-1"] == D.RUNNING
    assert fake.ran[-1] == second.deployments.get(cluster__name="shared-1").pk


def test_advance_is_idempotent(driver, fake, clusters):
    clusters("a-1", "a-2", "a-3")
    rollout = driver.start(driver.create([{"name": "all", "max_parallel": 2}], "env=prod"))
    for change in (lambda: None, lambda: driver.finish(rollout, "a-1")):
        change()
        driver.advance(rollout)
        before, asked = snapshot(rollout), (list(fake.ran), list(fake.advanced), list(fake.later))
        driver.advance(rollout)
        assert snapshot(rollout) == before
        assert (fake.ran, fake.advanced, fake.later) == asked
    assert fake.ran_on() == ["a-1", "a-2", "a-3"]


def test_the_sweeper_finds_running_deployments_whose_heartbeat_stopped(driver, clusters):
    clusters("beating-1", "silent-1", "never-1", "waiting-1")
    rollout = driver.create([{"name": "all", "max_parallel": 4}], "env=prod")
    now = timezone.now()
    for deployment in rollout.deployments.exclude(cluster__name="waiting-1").select_related("cluster"):
        heartbeat = {"beating-1": now, "silent-1": now - timedelta(minutes=10), "never-1": None}
        assert transition(deployment, D.RUNNING, heartbeat_at=heartbeat[deployment.cluster.name])
    stuck = orchestrator.stuck_deployments(timedelta(minutes=1))
    assert sorted(rollout.deployments.filter(pk__in=stuck).values_list("cluster__name", flat=True)) == [
        "never-1", "silent-1"]
    assert orchestrator.active_rollouts() == []  # pending: the sweeper has nothing to advance
    driver.call(services.start, rollout)
    assert orchestrator.active_rollouts() == [rollout.pk]


def test_a_cluster_that_became_protected_fails_its_claim_when_the_author_is_no_admin(driver, fake, clusters):
    """Unprotect, create, re-protect, start: the rule holds when each deployment is claimed."""
    clusters("p-1", "p-2")
    rollout = driver.start(driver.create([{"name": "all", "max_parallel": 1, "max_failures": "1"}], "env=prod"))
    assert fake.ran_on() == ["p-1"]
    Cluster.objects.filter(name="p-2").update(protected=True)
    driver.finish(rollout, "p-1")
    driver.advance(rollout)
    refused = rollout.deployments.get(cluster__name="p-2")
    assert refused.state == D.FAILED and fake.ran_on() == ["p-1"]
    assert refused.error == "cluster p-2 is protected and the rollout's author, otto-operator, is not an admin"
    assert AuditEvent.objects.filter(action="deployment.refused", cluster="p-2").exists()


def test_starting_rechecks_protection_against_the_author(driver, fake, clusters):
    clusters("p-1")
    rollout = driver.create([{"name": "all"}], "env=prod")
    Cluster.objects.filter(name="p-1").update(protected=True)
    with pytest.raises(AccessDenied, match=r"deploying to a protected cluster \(p-1\) needs the admin role"):
        driver.call(services.start, rollout)
    rollout.refresh_from_db()
    assert rollout.state == R.PENDING and not fake.ran
