"""Drift's errors: bad rules and refused requests (``drift.*`` in the API's table)."""

from __future__ import annotations

from fleet.core.errors import FleetError


class DriftError(FleetError):
    """``invalid``: a rule or request the caller must fix; ``refused``: a state that does
    not allow the request (a rollout holds the cluster, it is paused, contested…);
    ``not-found``: no such cluster or rule."""

    domain = "drift"
    code = "invalid"


class DesiredStateError(FleetError):
    """The desired state could not be built: the deploy tag's commit is gone, or the render
    fails now. Recorded as the cluster's ``error`` state with this reason."""

    domain = "drift"
    code = "desired"
