"""Rollout errors: one class, three cases, for every way a rollout request is refused.

``state`` (the default): the rollout, a wave or a cluster is in a state that does not
allow the request. ``invalid``: the request itself is wrong, usually naming the
``field`` at fault (``waves[1].max_parallel``). ``forbidden``: the requester's role,
or the rule that an author never approves their own rollout, refuses it. The API's
one table (``fleet.api.exceptions.HTTP_STATUS``) turns the codes into statuses.
"""

from __future__ import annotations

from fleet.core.errors import FleetError
from fleet.gitops.errors import GitOpsError
from fleet.kube.errors import KubeError
from fleet.policy.errors import PolicyError
from fleet.render.errors import RenderError


class RolloutError(FleetError):
    """A request a rollout cannot take; ``code`` says which case (see the module)."""

    domain = "rollout"
    code = "state"


class StrategyError(RolloutError):
    """A strategy or plan problem; ``field`` points at it (``waves[1].max_parallel``)."""

    code = "invalid"


# What a pipeline step (or a preview) reports as a failure rather than a crash: Fleet's
# own errors. The engine's errors are named as well until they subclass FleetError
# (the change that moves gitops, render, kube and policy onto the one base); once
# they do, this is FleetError alone.
EXPECTED: tuple[type[Exception], ...] = (FleetError, GitOpsError, RenderError, KubeError, PolicyError)
