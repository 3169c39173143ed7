"""How many git processes a deployment runs on a cluster's workspace, held to a budget.

At a thousand clusters each git process (5-10 ms of CPU) is a large share of the
control plane's work per cluster, so a change that adds some should be a decision, not
an accident. The calls are those of ``fleet.rollouts.steps`` for a deployment (prepare,
history, head, render, tag), on real repositories.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from fleet.gitops import primary as primaries
from fleet.gitops import services
from fleet.gitops.git import command_counts
from fleet.gitops.workspace import Refs
from tests.gitops.conftest import AUTHOR, clone_of, internal_ref
from tests.gitops.test_upgrade import release

pytestmark = [pytest.mark.django_db]

# Git processes for a cluster's first deployment (it clones), for a new release onto
# the existing workspace (what most deployments are), and for the same release again
# (a re-run rollout: nothing to rebase, tag or push).
FIRST_BUDGET = 24
REPEAT_BUDGET = 21
AGAIN_BUDGET = 10


def _deploy(cluster, to) -> tuple[Counter[str], str]:
    """One deployment's calls on its session, in the pipeline's order; the git processes
    it ran, and its tag."""
    command_counts(reset=True)
    with services.session(cluster) as held:
        assert held.prepare(to).ok
        counts = command_counts(reset=True)
        # The refs as the workspace keeps them (updated after its own commands, not read
        # again) are the refs as they are.
        git = held.workspace.git
        assert held.workspace.refs() == Refs.parse(git.run("for-each-ref", f"--format={Refs.FORMAT}",
                                                           *Refs.PATTERNS))
        command_counts(reset=True)  # the check's own reading is not the deployment's
        held.history(refresh=False)
        head = held.head()
        assert held.render().objects
        tag = held.tag_deployment({"rollout": 1})
    counts += command_counts(reset=True)
    assert internal_ref(cluster, f"refs/tags/{tag}^{{commit}}") == head == internal_ref(cluster, "main")
    return counts, tag


def _shown(counts: Counter[str]) -> str:
    return f"{sum(counts.values())} git processes: " + ", ".join(f"{n} {c}" for c, n in counts.most_common())


def test_a_deployment_runs_few_git_processes(primary, make_cluster, record_property):
    older, newer = primary.commits["release-1.1"]
    cluster = make_cluster(primary, branch="release-1.1", at=older)
    services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    # The fleet's mirror of the vendor already has both releases (the first cluster of a
    # rollout fetches it), and the cluster has no workspace yet: its first deployment clones.
    primaries.ensure_commit(primary.url, newer, "release-1.1")
    shutil.rmtree(clone_of(cluster).home)

    first, _ = _deploy(cluster, release(primary, "release-1.1", older))
    repeat, tag = _deploy(cluster, release(primary, "release-1.1", newer))
    assert clone_of(cluster).git.run("rev-parse", "HEAD~1").strip() == newer  # the cluster's commit replayed
    again, same = _deploy(cluster, release(primary, "release-1.1", newer))
    assert same == tag and not again["push"]  # internal has it all: the tag is reused, nothing pushed

    # Shown with ``pytest -s`` (and on failure), and kept in a JUnit report's properties.
    print(f"first deployment (clone): {_shown(first)}\nrepeat deployment: {_shown(repeat)}\n"
          f"same release again: {_shown(again)}")
    record_property("git_processes_first", dict(first))
    record_property("git_processes_repeat", dict(repeat))
    record_property("git_processes_again", dict(again))
    assert sum(first.values()) <= FIRST_BUDGET, _shown(first)
    assert sum(repeat.values()) <= REPEAT_BUDGET, _shown(repeat)
    assert sum(again.values()) <= AGAIN_BUDGET, _shown(again)
