"""``manage.py gitops``: a cluster's status, history and render; and the dev tooling's
``manage.py testrepos``, the demo's repositories."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from fleet.dev.management.commands import testrepos
from fleet.gitops import services

pytestmark = [pytest.mark.django_db]


def run(*args: str, command: str | testrepos.Command = "gitops") -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def make_test_repos(*args: str) -> str:
    """The dev tooling's command, called as an instance: it runs whether or not
    FLEET_DEV_TOOLS installs the app."""
    return run(*args, command=testrepos.Command())


def test_test_repos_creates_the_vendor_and_internal_repos(tmp_path):
    output = make_test_repos(str(tmp_path), "--clusters", "edge-1,edge-2")
    assert "release-1.2: " in output
    assert (tmp_path / "platform.git" / "HEAD").is_file()
    assert (tmp_path / "internal" / "edge-2.git" / "HEAD").is_file()
    with pytest.raises(CommandError, match="already exists"):
        make_test_repos(str(tmp_path))


def test_status_history_and_render(primary, make_cluster):
    cluster = make_cluster(primary)
    tag = services.tag_deployment(cluster, {"by": "cli"})
    assert '"clean": true' in run("status", cluster.name)
    assert run("history", cluster.name).startswith(tag)
    assert "Deployment.apps platform/web" in run("render", cluster.name)
    with pytest.raises(CommandError, match="no cluster named 'nope'"):
        run("status", "nope")
