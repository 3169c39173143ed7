"""`inventory sync` against the real database: diff, all-or-nothing, prune, secrets by reference."""

import io
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.audit.models import AuditEvent
from fleet.inventory.models import Cluster
from tests.certs import self_signed
from tests.factories import ChannelFactory, ClusterFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
EXAMPLE = Path(__file__).resolve().parents[2] / "clusters" / "examples" / "prod-eu-1.yaml"


def cluster_yaml(name: str, *, labels: str = "{env: dev}", extra: str = "") -> str:
    return f"""apiVersion: fleet/v1
kind: Cluster
metadata:
  name: {name}
  labels: {labels}
spec:
  apiServer: https://10.0.0.1:6443
  channel: stable
  internalRepo:
    url: https://git.example.com/clusters/{name}.git
{extra}"""


def sync(directory: Path, *args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("inventory", "sync", "--dir", str(directory), *args, stdout=out, stderr=err)
    except CommandError as exc:
        raise CommandError(f"{exc}\n{err.getvalue()}") from None
    return out.getvalue()


@pytest.fixture
def stable(db):
    return ChannelFactory(name="stable")


def test_create_update_and_unchanged(tmp_path, stable):
    (tmp_path / "a.yaml").write_text(cluster_yaml("a"))
    (tmp_path / "b.yml").write_text(cluster_yaml("b"))
    out = sync(tmp_path)
    assert "+ create a (a.yaml)" in out and "applied: 2 created, 0 updated, 0 deleted" in out
    assert Cluster.objects.get(name="a").origin == "file"
    (tmp_path / "a.yaml").write_text(cluster_yaml("a", labels="{env: prod}"))
    out = sync(tmp_path)
    assert "~ update a: labels: {'env': 'dev'} -> {'env': 'prod'}" in out
    assert "= 1 unchanged" in out
    assert Cluster.objects.get(name="a").labels == {"env": "prod"}
    event = AuditEvent.objects.filter(action="cluster.update").get()
    assert event.source == "cli" and event.actor.startswith("cli:")


def test_dry_run_changes_nothing(tmp_path, stable):
    (tmp_path / "a.yaml").write_text(cluster_yaml("a"))
    out = sync(tmp_path, "--dry-run")
    assert "+ create a" in out and "dry run: nothing changed" in out
    assert not Cluster.objects.exists() and not AuditEvent.objects.exists()


def test_one_bad_file_rejects_all_with_file_line_and_reason(tmp_path, stable):
    (tmp_path / "good.yaml").write_text(cluster_yaml("good"))
    (tmp_path / "labels.yaml").write_text(cluster_yaml("bad-labels", labels="{'Bad Key': x}"))
    (tmp_path / "typo.yaml").write_text(cluster_yaml("typo", extra="  pasued: true\n"))
    (tmp_path / "syntax.yaml").write_text("apiVersion: fleet/v1\nkind: [Cluster\n")
    (tmp_path / "url.yaml").write_text(cluster_yaml("url").replace("https://10.0.0.1:6443", "ftp://x"))
    with pytest.raises(CommandError) as info:
        sync(tmp_path)
    message = str(info.value)
    assert "4 problem(s)" in message and "the inventory is unchanged" in message
    assert "labels.yaml:5: metadata.labels: label key 'Bad Key'" in message
    assert "typo.yaml:11: spec.pasued: unknown field" in message
    assert "syntax.yaml:3: invalid YAML" in message
    assert "url.yaml:7: spec.apiServer: API server URL must use http or https" in message
    assert not Cluster.objects.exists() and not AuditEvent.objects.exists()


def test_duplicate_names_and_missing_channel_are_errors(tmp_path, stable):
    (tmp_path / "one.yaml").write_text(cluster_yaml("same"))
    (tmp_path / "two.yaml").write_text(cluster_yaml("same"))
    (tmp_path / "three.yaml").write_text(cluster_yaml("other").replace("channel: stable", "channel: nope"))
    with pytest.raises(CommandError) as info:
        sync(tmp_path)
    assert "two.yaml:4: metadata.name: cluster 'same' is also defined in one.yaml" in str(info.value)
    assert "three.yaml:8: spec.channel: Object with name=nope does not exist." in str(info.value)


def test_secrets_are_references_never_inline(tmp_path, stable, monkeypatch):
    inline = "  credentials:\n    token: hunter2-inline\n"
    (tmp_path / "a.yaml").write_text(cluster_yaml("a", extra=inline))
    with pytest.raises(CommandError) as info:
        sync(tmp_path)
    assert "a.yaml:12: spec.credentials.token: secrets must be referenced" in str(info.value)
    assert "hunter2" not in str(info.value)
    monkeypatch.setenv("A_TOKEN", "tok-from-env")
    (tmp_path / "a.yaml").write_text(cluster_yaml("a", extra="  credentials:\n    token: {env: A_TOKEN}\n"))
    sync(tmp_path)
    assert Cluster.objects.get(name="a").get_credentials().token == "tok-from-env"
    monkeypatch.setenv("A_TOKEN", "rotated")
    assert "~ update a: credentials: changed" in sync(tmp_path)


def test_prune_only_removes_clusters_that_came_from_files(tmp_path, stable):
    (tmp_path / "a.yaml").write_text(cluster_yaml("a"))
    (tmp_path / "b.yaml").write_text(cluster_yaml("b"))
    sync(tmp_path)
    ClusterFactory(name="from-api", channel=stable)
    (tmp_path / "b.yaml").unlink()
    out = sync(tmp_path)
    assert "! b came from a file that is gone; --prune would delete it" in out
    assert Cluster.objects.filter(name="b").exists()
    out = sync(tmp_path, "--prune")
    assert "- delete b" in out
    assert sorted(Cluster.objects.values_list("name", flat=True)) == ["a", "from-api"]


def test_the_shipped_example_is_valid(tmp_path, stable, monkeypatch):
    shutil.copy(EXAMPLE, tmp_path / "prod-eu-1.yaml")
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "prod-eu-1.pem").write_text(self_signed()[0])
    monkeypatch.setenv("PROD_EU_1_TOKEN", "t0ken")
    sync(tmp_path)
    cluster = Cluster.objects.get(name="prod-eu-1")
    assert cluster.protected and cluster.labels == {"env": "prod", "region": "eu"}
    assert cluster.get_credentials().kind == "token"


def test_a_file_does_not_take_over_a_cluster_created_through_the_api_unless_adopted(tmp_path, stable):
    ClusterFactory(name="taken", channel=stable)  # origin "api", as the API and admin create them
    (tmp_path / "taken.yaml").write_text(cluster_yaml("taken"))
    with pytest.raises(CommandError) as refused:
        sync(tmp_path)
    assert "taken.yaml:4: metadata.name: cluster 'taken' was created through the API or admin" in str(refused.value)
    assert "--adopt" in str(refused.value) and Cluster.objects.get(name="taken").origin == "api"
    assert "~ update taken" in sync(tmp_path, "--adopt")
    assert Cluster.objects.get(name="taken").origin == "file"
    assert "= 1 unchanged" in sync(tmp_path)  # adopted once, managed by its file from then on
