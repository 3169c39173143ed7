"""Rollout errors: one class, two cases, for every way a rollout request is refused.

``state`` (the default): the rollout, a wave or a cluster is in a state that does not
allow the request. ``invalid``: the request itself is wrong, usually naming the
``field`` at fault (``waves[1].max_parallel``). A refusal by role (an operator deploying
to a protected cluster, an author approving their own rollout) is the role rules'
``AccessDenied`` (``fleet.accounts.rules``). The API's one table
(``fleet.api.exceptions.HTTP_STATUS``) turns the codes into statuses.
"""

from __future__ import annotations

from fleet.core.errors import FleetError


class RolloutError(FleetError):
    """A request a rollout cannot take; ``code`` says which case (see the module)."""

    domain = "rollout"
    code = "state"


class StrategyError(RolloutError):
    """A strategy or plan problem; ``field`` points at it (``waves[1].max_parallel``)."""

    code = "invalid"
