"""Facts only git has, for reports: when an upstream commit was made (lead time)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable

from fleet.core.errors import FleetError
from fleet.gitops.workspace import RepoSpec, Workspace
from fleet.inventory.models import Cluster


def commit_times(pairs: Iterable[tuple[Cluster, str]]) -> dict[str, datetime.datetime]:
    """The committer time of each SHA, read once per SHA from one cluster's workspace
    that has it; a SHA no workspace can show is left out (its lead time is unknown).

    A report never clones nor waits for a workspace a deployment holds: it reads
    commit objects only (safe beside a running git operation), from clones that exist."""
    by_cluster: dict[Cluster, set[str]] = defaultdict(set)
    seen: set[str] = set()
    for cluster, sha in sorted(pairs, key=lambda pair: pair[0].name):
        if sha not in seen:
            seen.add(sha)
            by_cluster[cluster].add(sha)
    found: dict[str, datetime.datetime] = {}
    for cluster, shas in by_cluster.items():
        workspace = Workspace(RepoSpec.of(cluster))
        if not (workspace.path / ".git").is_dir():
            continue
        try:
            output = workspace.git.run("log", "--no-walk", "--ignore-missing", "--format=%H %ct", *sorted(shas))
        except FleetError:
            continue
        for line in output.splitlines():
            sha, _, stamp = line.partition(" ")
            if stamp.isdigit():
                found[sha] = datetime.datetime.fromtimestamp(int(stamp), datetime.UTC)
    return found
