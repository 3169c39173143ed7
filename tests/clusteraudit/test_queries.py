"""Who changed what, where and when; changes outside GitOps; top actors; drift's join."""

from __future__ import annotations

import datetime

import pytest
from django.core.management import call_command

from fleet.accounts.rules import AccessDenied
from fleet.clusteraudit import queries, services
from fleet.clusteraudit.errors import ClusterAuditError
from fleet.clusteraudit.events import parse_event_list
from fleet.clusteraudit.models import AuditSource
from fleet.core.objects import ObjectRef
from tests.clusteraudit.support import T0, event, event_list
from tests.factories import ClusterFactory

pytestmark = [pytest.mark.django_db]
MIN = datetime.timedelta(minutes=1)


@pytest.fixture
def fleet_events():
    prod = ClusterFactory(name="prod-1", labels={"env": "prod"})
    dev = ClusterFactory(name="dev-1", labels={"env": "dev"})
    for cluster in (prod, dev):
        AuditSource.objects.create(cluster=cluster, key=f"k-{cluster.name}", secret_hash="x", rotated_at=T0,
                                   fleet_username="fleet-sa")
    services.ingest(prod, parse_event_list(event_list(
        event(at=T0, user="alice@corp"),
        event(at=T0 + MIN, user="fleet-sa", field_manager="fleet", verb="patch"),
        event(at=T0 + 2 * MIN, user="bob@corp", verb="delete", resource="configmaps", group="", name="cfg",
              field_manager=""),
        event(at=T0 + 3 * MIN, user="alice@corp", verb="get", field_manager=""),
        event(at=T0 + 4 * MIN, user="alice@corp", field_manager="", user_agent="kubectl/v1.36.3 (linux/amd64)"),
    )))
    services.ingest(dev, parse_event_list(event_list(event(at=T0 + 5 * MIN, user="carol@corp"))))
    return prod, dev


def window(**params):
    return queries.EventFilter.from_params({"since": (T0 - MIN).isoformat(), "until": (T0 + 60 * MIN).isoformat(),
                                            **params})


def test_who_changed_what_filtered_by_selector_user_verb_resource_and_object(fleet_events):
    assert [e.username for e in queries.events(None, window(selector="env=prod", changes="true"))] == [
        "alice@corp", "bob@corp", "fleet-sa", "alice@corp"]
    assert [e.verb for e in queries.events(None, window(user="alice@corp"))] == ["patch", "get", "patch"]
    assert [e.name for e in queries.events(None, window(resource="configmaps"))] == ["cfg"]
    assert [e.cluster.name for e in queries.events(None, window(verb="patch", namespace="prod", name="web",
                                                                cluster="dev-1"))] == ["dev-1"]


def test_outside_gitops_leaves_fleets_writes_and_reads_out(fleet_events):
    fleet_wide = queries.outside_gitops(None, window())
    assert [(e.cluster.name, e.username, e.verb) for e in fleet_wide] == [
        ("dev-1", "carol@corp", "patch"), ("prod-1", "alice@corp", "patch"), ("prod-1", "bob@corp", "delete"),
        ("prod-1", "alice@corp", "patch")]
    assert [e.username for e in queries.outside_gitops(None, window(cluster="dev-1"))] == ["carol@corp"]


def test_top_actors_per_cluster(fleet_events):
    top = [(a.cluster, a.username, a.changes, a.outside_gitops) for a in queries.top_actors(None, window())]
    assert top == [("dev-1", "carol@corp", 1, 1), ("prod-1", "alice@corp", 2, 2), ("prod-1", "bob@corp", 1, 1),
                   ("prod-1", "fleet-sa", 1, 0)]


def test_writes_to_matches_the_field_manager_to_the_user_agent(fleet_events):
    prod, _ = fleet_events
    ref = ObjectRef("apps", "v1", "Deployment", "prod", "web")
    everything = queries.writes_to(prod, ref, T0 - MIN, T0 + 60 * MIN)
    assert [w.event.username for w in everything] == ["alice@corp", "fleet-sa", "alice@corp"]
    edits = queries.writes_to(prod, ref, T0 - MIN, T0 + 60 * MIN, "kubectl-edit")
    assert [(w.event.request_received_at, w.match) for w in edits] == [(T0, "exact"), (T0 + 4 * MIN, "user-agent")]
    assert edits[0].describe() == "alice@corp via kubectl from 10.1.2.3 at 2026-11-30 12:00:00 UTC"
    assert [w.match for w in queries.writes_to(prod, ref, T0 - MIN, T0 + 60 * MIN, "kubectl")] == ["user-agent"]
    assert queries.writes_to(prod, ref, T0 + MIN, T0 + 2 * MIN, "kubectl-edit") == []  # outside the window
    assert [w.event.username for w in queries.writes_to(prod, ref, T0 - MIN, T0 + 60 * MIN, "fleet")] == ["fleet-sa"]
    cfg = ObjectRef("", "v1", "ConfigMap", "prod", "cfg")
    assert [w.event.verb for w in queries.writes_to(prod, cfg, T0 - MIN, T0 + 60 * MIN)] == ["delete"]


def test_the_tool_of_a_user_agent():
    assert queries.tool_of("kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef0") == "kubectl"
    assert queries.tool_of("kubectl-v1.36.3/v1.36.3 (linux/amd64) kubernetes/$Format") == "kubectl"
    assert queries.tool_of("helm/3.16") == "helm" and queries.tool_of("") == ""


def test_resource_of_guesses_as_kubernetes_does():
    assert [queries.resource_of(k) for k in ("Deployment", "Ingress", "NetworkPolicy", "Endpoints")] == [
        "deployments", "ingresses", "networkpolicies", "endpointses"]


def test_bad_filters_are_named():
    for params, field in (({"since": "monday"}, "since"), ({"selector": "env in ("}, "selector"),
                          ({"verb": "pa tch"}, "verb"), ({"since": "2026-01-02", "until": "2026-01-01"}, "until"),
                          ({"changes": "maybe"}, "changes")):
        with pytest.raises(ClusterAuditError) as caught:
            queries.EventFilter.from_params(params)
        assert caught.value.field == field


def test_the_api_pages_by_keyset_and_checks_the_role(fleet_events, viewer, roleless):
    since, until = (T0 - MIN).isoformat(), (T0 + 60 * MIN).isoformat()
    first = viewer.get("/api/v1/cluster-audit/events/", {"since": since, "until": until, "page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = viewer.get(first["next"]).json()
    seen = [e["id"] for e in first["results"] + second["results"]]
    assert len(set(seen)) == 4
    outside = viewer.get("/api/v1/cluster-audit/outside-gitops/", {"since": since, "until": until,
                                                                   "selector": "env=dev"}).json()
    assert [(e["cluster"], e["username"]) for e in outside["results"]] == [("dev-1", "carol@corp")]
    top = viewer.get("/api/v1/cluster-audit/top-actors/", {"since": since, "until": until, "cluster": "dev-1"})
    assert top.json()[0]["username"] == "carol@corp"
    writes = viewer.get("/api/v1/cluster-audit/writes/", {"since": since, "until": until, "cluster": "prod-1",
                                                         "kind": "Deployment", "group": "apps", "namespace": "prod",
                                                         "name": "web", "field_manager": "kubectl-edit"}).json()
    assert [w["match"] for w in writes] == ["exact", "user-agent"]
    assert viewer.get("/api/v1/cluster-audit/events/", {"since": "nope"}).json()["since"]
    assert roleless.get("/api/v1/cluster-audit/events/").status_code == 403
    with pytest.raises(AccessDenied):
        queries.events(roleless.user, window())
    assert queries.events(None, window()).exists()  # the machine (CLI, tasks) holds the database anyway


def test_the_cli_answers_the_same(fleet_events, capsys):
    call_command("cluster-audit", "outside-gitops", "--since", (T0 - MIN).isoformat(), "--until",
                 (T0 + 60 * MIN).isoformat(), "--cluster", "prod-1")
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "bob@corp" in out[1] and "prod/configmaps/cfg" in out[1]
    call_command("cluster-audit", "top-actors", "--since", (T0 - MIN).isoformat(), "--until",
                 (T0 + 60 * MIN).isoformat())
    assert "carol@corp" in capsys.readouterr().out


def test_the_outside_gitops_report(fleet_events, viewer):
    response = viewer.get("/api/v1/reports/outside-gitops/", {"since": "2026-11-30", "until": "2026-12-01",
                                                             "selector": "env=prod"})
    assert response.status_code == 200
    report = response.json()
    assert report["summary"] == {"changes_outside_gitops": 3, "clusters": 1, "identities": 2}
    assert [r["user"] for r in report["tables"]["changes"]["rows"]] == ["alice@corp", "bob@corp", "alice@corp"]
    assert [(r["user"], r["outside_gitops"]) for r in report["tables"]["actors"]["rows"]] == [
        ("alice@corp", 2), ("bob@corp", 1)]
    csv = viewer.get("/api/v1/reports/outside-gitops/", {"since": "2026-11-30", "until": "2026-12-01",
                                                        "format": "csv"})
    assert csv.status_code == 200 and b"carol@corp" in csv.content
