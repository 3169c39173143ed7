"""The GitOps engine: per-cluster workspaces, configuration commits, rebase upgrades,
migrations, deployment tags and rollback, over the primary (`origin`) and internal
(`internal`) repositories. The public API is ``fleet.gitops.services``; the repository
layout it relies on is described in ``fleet.gitops.constants``."""
