"""What pipeline steps share: the run's context and the failure they raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.states import DeploymentState as D


class StepFailed(Exception):
    """A step's expected failure: ``state`` says how the deployment ends."""

    def __init__(self, message: str, *, state: str = D.FAILED, detail: dict[str, Any] | None = None):
        self.state, self.detail = state, detail or {}
        super().__init__(message)


@dataclass
class Context:
    """What steps share within one run; anything needed after a resume is re-derived."""

    deployment: ClusterDeployment
    cache: dict[str, Any] = field(default_factory=dict)
