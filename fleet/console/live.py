"""A rollout as its live page shows it: each wave's counts, failure budget, bake and
approval, and one page of its clusters with their step timelines.

Read from the rows the orchestrator and the pipeline write (the database is the
rollout's truth), in a fixed handful of queries whatever the rollout's size: the
per-wave counts are one grouped query, and only a page of clusters is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.paginator import Page
from django.db.models import Count, Q
from django.http import QueryDict

from fleet.console.forms import paginate
from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
from fleet.rollouts.states import (
    DEPLOYMENT_FAILURES,
    DEPLOYMENT_FINISHED,
    ROLLOUT_ACTIVE,
)
from fleet.rollouts.states import (
    DeploymentState as D,
)
from fleet.rollouts.states import (
    RolloutState as R,
)
from fleet.rollouts.states import (
    WaveState as W,
)
from fleet.rollouts.steps import PIPELINE

STEP_NAMES = [name for name, _ in PIPELINE]
SHOW = {
    "all": Q(),
    "problems": Q(state__in=DEPLOYMENT_FAILURES),
    "running": Q(state=D.RUNNING),
    "pending": Q(state=D.PENDING),
    "finished": Q(state__in=DEPLOYMENT_FINISHED),
}


@dataclass
class WaveView:
    wave: Wave
    counts: dict[str, int]

    @property
    def size(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        return sum(self.counts.get(state, 0) for state in DEPLOYMENT_FINISHED)

    @property
    def failures(self) -> int:
        return sum(self.counts.get(state, 0) for state in DEPLOYMENT_FAILURES)

    @property
    def budget(self) -> int:
        return self.wave.failure_budget(self.size)

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.size) if self.size else 100

    @property
    def waits_for_approval(self) -> bool:
        wave = self.wave
        return wave.require_approval and not wave.approved_by_id and wave.state not in (
            W.SUCCEEDED, W.HALTED, W.CANCELLED)


@dataclass
class Step:
    name: str
    status: str  # done, failed, running, todo
    seconds: float | None = None
    error: str = ""


@dataclass
class ClusterRow:
    deployment: ClusterDeployment
    steps: list[Step] = field(default_factory=list)


def timeline(deployment: ClusterDeployment) -> list[Step]:
    """The pipeline's steps for one cluster: done (with its time), failed, running, to do."""
    steps = []
    for name in STEP_NAMES:
        outcome: dict[str, Any] = deployment.steps.get(name) or {}
        if outcome:
            status = "done" if outcome.get("ok") else "failed"
        elif deployment.state == D.RUNNING and deployment.step == name:
            status = "running"
        else:
            status = "todo"
        steps.append(Step(name, status, outcome.get("seconds"), str(outcome.get("error", ""))[:500]))
    return steps


@dataclass
class Offer:
    """An action the page offers: its name, its label, and the state the page saw."""

    action: str
    label: str
    wave: WaveView | None = None


def offers(rollout: Rollout, waves: list[WaveView]) -> list[Offer]:
    """The actions the rollout's state allows (those the services accept from it). A
    courtesy to the reader: the services decide, and refuse with their reason whatever
    the page showed."""
    state = rollout.state
    offered = [Offer(action, label) for action, label, states in (
        ("start", "Start", (R.PENDING,)), ("pause", "Pause", (R.RUNNING,)), ("resume", "Resume", (R.PAUSED,)))
        if state in states]
    waiting = next((w for w in waves if w.waits_for_approval), None)
    if waiting is not None and state in (R.PENDING, R.RUNNING, R.PAUSED):
        offered.append(Offer("approve", f"Approve wave {waiting.wave.index + 1} ({waiting.wave.name})", waiting))
    if state in (R.PENDING, R.RUNNING, R.PAUSED):
        offered.append(Offer("abort", "Abort"))
    if state not in ROLLOUT_ACTIVE or state == R.PAUSED:
        offered.append(Offer("rollback", "Roll back"))
    return offered


@dataclass
class LiveView:
    rollout: Rollout
    waves: list[WaveView]
    page: Page
    rows: list[ClusterRow]
    offers: list[Offer]
    filters: dict[str, str]

    @property
    def final(self) -> bool:
        """Nothing will change any more: the page may stop asking."""
        return self.rollout.state not in ROLLOUT_ACTIVE


def live_view(rollout: Rollout, query: QueryDict, per_page: int = 50) -> LiveView:
    waves = list(rollout.waves.select_related("approved_by").order_by("index"))
    counts: dict[int, dict[str, int]] = {}
    for wave_id, state, n in (ClusterDeployment.objects.filter(rollout=rollout).order_by()
                              .values_list("wave_id", "state").annotate(n=Count("pk"))):
        counts.setdefault(wave_id, {})[state] = n
    views = [WaveView(wave, counts.get(wave.pk, {})) for wave in waves]

    show = query.get("show", "all") if query.get("show") in SHOW else "all"
    wave_index = query.get("wave", "")
    deployments = (rollout.deployments.select_related("cluster", "wave").defer("applied_refs", "policy")
                   .filter(SHOW[show]).order_by("wave__index", "cluster__name"))
    if wave_index.isdigit():
        deployments = deployments.filter(wave__index=int(wave_index) - 1)
    if query.get("q"):
        deployments = deployments.filter(cluster__name__icontains=query["q"][:100])
    page = paginate(deployments, query, per_page)
    rows = [ClusterRow(d, timeline(d)) for d in page.object_list]
    return LiveView(rollout, views, page, rows, offers(rollout, views),
                    {"show": show, "wave": wave_index if wave_index.isdigit() else "", "q": query.get("q", "")})
