"""Deployment tags: annotated, unique per day, pushed with the branch, read back as
history; rollback to a previous tag's tree; every step safe to repeat."""

from __future__ import annotations

import datetime

import pytest

from fleet.audit.models import AuditEvent
from fleet.gitops import services, tags
from fleet.gitops.errors import BadInput
from tests.gitops.conftest import AUTHOR, clone_of, internal_ref
from tests.gitops.test_upgrade import release

pytestmark = [pytest.mark.django_db]
TODAY = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def test_tag_records_the_deployment_and_is_pushed_with_the_branch(primary, make_cluster):
    cluster = make_cluster(primary)
    configured = services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR, push=False)
    assert internal_ref(cluster, "main") is None
    tag = services.tag_deployment(cluster, {"rollout": 7, "wave": "canary"})
    assert tag == f"deploy/{TODAY}/release-1.0"
    assert internal_ref(cluster, "main") == configured.sha
    assert internal_ref(cluster, f"refs/tags/{tag}^{{commit}}") == configured.sha
    ws = clone_of(cluster)
    # The push moved the remote-tracking branch, and made what internal has the next lease.
    assert ws.remote_ref("internal", "main") == ws.lease() == configured.sha
    assert ws.git.run("cat-file", "-t", tag).strip() == "tag"  # annotated
    message = ws.git.run("tag", "--list", "--format=%(contents)", tag)
    for line in ("local-branch: release-1.0", "upstream-branch: origin/release-1.0",
                 f"upstream-sha: {primary.head('release-1.0')}", f"local-sha: {configured.sha}",
                 "backup-branch: main", "backup-remote: internal", "cluster: edge-1",
                 'context: {"rollout": 7, "wave": "canary"}'):
        assert line in message
    assert f"date: {TODAY}T" in message
    assert [e.action for e in AuditEvent.objects.order_by("sequence")] == \
        ["gitops.configure", "gitops.tag", "gitops.push"]


def test_tagging_the_same_commit_again_reuses_the_tag(primary, make_cluster):
    cluster = make_cluster(primary)
    first = services.tag_deployment(cluster, {"try": 1})
    assert services.tag_deployment(cluster, {"try": 2}) == first
    assert AuditEvent.objects.filter(action="gitops.tag").count() == 1
    assert AuditEvent.objects.filter(action="gitops.push").count() == 1
    assert services.push(cluster, [first]) is False


def test_several_deployments_a_day_get_unique_tags_and_read_back_as_history(primary, make_cluster):
    cluster = make_cluster(primary)
    first = services.tag_deployment(cluster, {"n": 1})
    services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    second = services.tag_deployment(cluster, {"n": 2})
    services.configure(cluster, {"replicas": {"web": 3}}, AUTHOR)
    third = services.tag_deployment(cluster, {"n": 3})
    assert (second, third) == (f"{first}-2", f"{first}-3")
    records = services.history(cluster)
    assert [r.tag for r in records] == [third, second, first]
    assert [r.context for r in records] == [{"n": 3}, {"n": 2}, {"n": 1}]
    assert records[2].local_sha == records[2].upstream_sha == primary.head("release-1.0")
    assert records[0].tagger.startswith("Fleet")


def test_tag_name_uses_the_utc_day(primary, make_cluster):
    cluster = make_cluster(primary)
    with services.locked(cluster) as ws:
        name, created = tags.create_tag(ws, {}, now=datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC))
    assert (name, created) == ("deploy/2026-01-02/release-1.0", True)


def test_rollback_checks_out_a_previous_tag_and_redeploys_it(primary, make_cluster):
    cluster = make_cluster(primary)
    services.configure(cluster, {"replicas": {"web": 2}}, AUTHOR)
    good = services.tag_deployment(cluster, {"n": 1})
    good_sha = internal_ref(cluster, "main")
    assert services.upgrade(cluster, release(primary, "release-1.1")).ok
    bad = services.tag_deployment(cluster, {"n": 2})
    assert bad == f"deploy/{TODAY}/release-1.1"

    record = services.rollback_tree(cluster, good)
    assert (record.local_sha, record.local_branch) == (good_sha, "release-1.0")
    ws = clone_of(cluster)
    assert (ws.branch(), ws.head()) == ("release-1.0", good_sha)
    assert next(o for o in services.render(cluster).objects if o["kind"] == "Deployment")[
        "spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.0.0")
    again = services.tag_deployment(cluster, {"rollback_of": good})
    assert again not in (good, bad) and internal_ref(cluster, "main") == good_sha
    assert [r.tag for r in services.history(cluster)][:1] == [again]
    assert AuditEvent.objects.filter(action="gitops.rollback").count() == 1


def test_rollback_to_an_unknown_tag_is_refused(primary, make_cluster):
    cluster = make_cluster(primary)
    with pytest.raises(BadInput, match="deployment tag 'deploy/2020-01-01/release-1.0' does not exist"):
        services.rollback_tree(cluster, "deploy/2020-01-01/release-1.0")


def test_a_push_made_meanwhile_is_never_overwritten(primary, make_cluster, tmp_path):
    from fleet.gitops.errors import GitError
    from tests.gitops.conftest import push_to_internal

    cluster = make_cluster(primary)
    services.tag_deployment(cluster, {"n": 1})
    services.reset(cluster)  # a deployment's prepare step starts from internal
    assert services.upgrade(cluster, release(primary, "release-1.1")).ok
    theirs = push_to_internal(cluster, {"cluster/NOTE.md": "pushed by a person\n"}, "Note",
                              tmp_path=tmp_path)
    services.status(cluster)  # a fetch for another reason must not widen the lease
    with pytest.raises(GitError, match="internal branch 'main' moved since this job started"):
        services.tag_deployment(cluster, {"n": 2})
    assert internal_ref(cluster, "main") == theirs
    # Retry from the new internal state: the unpushed tag is gone, its name is free again.
    services.reset(cluster)
    assert services.upgrade(cluster, release(primary, "release-1.1")).ok
    assert services.tag_deployment(cluster, {"n": 3}) == f"deploy/{TODAY}/release-1.1"
    assert [r.context for r in services.history(cluster)] == [{"n": 3}, {"n": 1}]
