"""``manage.py gitops``: the demo's repositories and a cluster's status, history and render."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from fleet.gitops import services

pytestmark = [pytest.mark.django_db]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("gitops", *args, stdout=out)
    return out.getvalue()


def test_test_repos_creates_the_vendor_and_internal_repos(tmp_path):
    output = run("test-repos", str(tmp_path), "--clusters", "edge-1,edge-2")
    assert "release-1.2: " in output
    assert (tmp_path / "platform.git" / "HEAD").is_file()
    assert (tmp_path / "internal" / "edge-2.git" / "HEAD").is_file()
    with pytest.raises(CommandError, match="already exists"):
        run("test-repos", str(tmp_path))


def test_status_history_and_render(primary, make_cluster):
    cluster = make_cluster(primary)
    tag = services.tag_deployment(cluster, {"by": "cli"})
    assert '"clean": true' in run("status", cluster.name)
    assert run("history", cluster.name).startswith(tag)
    assert "Deployment.apps platform/web" in run("render", cluster.name)
    with pytest.raises(CommandError, match="no cluster named 'nope'"):
        run("status", "nope")
