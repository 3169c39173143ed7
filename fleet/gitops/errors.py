"""GitOps errors: each names the cluster, branch or file concerned, never a secret."""

from __future__ import annotations

from fleet.core.errors import FleetError


class GitOpsError(FleetError):
    """A git operation could not be done; ``code`` says which case."""

    domain = "gitops"
    code = "gitops"

    def __init__(self, message: str, *, cluster: str = ""):
        self.cluster = cluster
        super().__init__(message, detail={"cluster": cluster} if cluster else None)

    def where(self) -> str:
        return f"cluster {self.cluster}" if self.cluster else ""


class GitError(GitOpsError):
    """git itself failed (network, missing ref, rejected push); the text is scrubbed."""

    code = "git"


class BadInput(GitOpsError):
    """Refused input (a path, a parameter, a branch): nothing was committed or pushed."""

    code = "bad-input"


class WorkspaceBusy(GitOpsError):
    """Another job holds the cluster's workspace."""

    code = "busy"


class WorkspaceDirty(GitOpsError):
    """The workspace has changes or history that must be reset before this operation."""

    code = "dirty"
