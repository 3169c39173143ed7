"""What a page costs does not grow with the fleet: the same number of queries at six
clusters as at a hundred and twenty (and a rollout of all of them), and pages well under
200 KB. The benchmark (tests/benchmarks/console_bench.py) times them at 10,000."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.policy.models import PolicyDecision
from fleet.rollouts import services
from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.states import DeploymentState as D
from tests.console.conftest import TWO_WAVES, make_clusters

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

PAGES = ["/", "/clusters/?selector=env%3Dprod&sort=-contact", "/clusters/edge-001/", "/rollouts/",
         "/rollouts/{rollout}/", "/rollouts/{rollout}/live/?show=problems", "/policies/",
         "/policies/decisions/?allowed=false", "/audit/?action=rollout.", "/releases/"]
BUDGET = 16  # session, user, role, and the page's own handful (the overview's drift card: two)


def deploy(rollout) -> None:
    """As the pipeline leaves them: finished (every other one blocked by policy), tagged,
    with step outcomes and a verdict."""
    steps = {name: {"ok": True, "seconds": 0.5} for name in ("prepare", "render", "gate", "dry_run", "apply")}
    for index, deployment in enumerate(ClusterDeployment.objects.filter(rollout=rollout)):
        state = D.BLOCKED if index % 2 else D.SUCCEEDED
        ClusterDeployment.objects.filter(pk=deployment.pk).update(
            state=state, tag=f"deploy/2026-01-01/release-1.0-{deployment.pk}", steps=steps, finished_at=timezone.now(),
            error="" if state == D.SUCCEEDED else "gate: denied by policy", policy={"allowed": False,
                                                                               "counts": {"deny": 1, "warn": 0}})
        PolicyDecision.objects.create(cluster=deployment.cluster, cluster_name=deployment.cluster.name,
                                      release=rollout.release, allowed=state == D.SUCCEEDED, engine="regopy",
                                      bundle_hash="0" * 64, elapsed_ms=1.0, source="pipeline",
                                      violations=[{"rule": "r", "message": "m", "enforcement": "deny"}])


def costs(client, rollout) -> dict[str, tuple[int, int]]:
    measured = {}
    for page in PAGES:
        url = page.format(rollout=rollout.pk)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200, url
        measured[page] = (len(queries), len(response.content))
    return measured


def test_pages_cost_a_constant_number_of_queries(as_role, fleet, people):
    deploy(fleet.rollout)
    viewer = as_role("viewer")
    small = costs(viewer, fleet.rollout)
    make_clusters(fleet.channel, 114, start=6)
    everyone = services.create_rollout(services.RolloutRequest(release=fleet.release, waves=TWO_WAVES),
                                       people["operator"])
    deploy(everyone)
    large = costs(viewer, everyone)
    for page in PAGES:
        assert large[page][0] == small[page][0], (page, small[page], large[page])
        assert large[page][0] <= BUDGET, (page, large[page])
        assert large[page][1] < 200_000, (page, large[page])
