"""Reports over the API and the CLI: formats, roles, an empty period, bad input named by field."""

from __future__ import annotations

import csv
import datetime
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from fleet.audit.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]
URL = "/api/v1/reports/"


def test_an_empty_period_gives_an_empty_report_in_every_format(viewer):
    params = {"since": "2020-01-01", "until": "2020-02-01"}
    body = viewer.get(f"{URL}changes/", params).json()
    assert body["summary"]["deployments"] == 0 and body["tables"]["deployments"]["rows"] == []
    assert body["scope"] == {"since": "2020-01-01T00:00:00+00:00", "until": "2020-02-01T00:00:00+00:00",
                             "selector": "(all clusters)"}
    assert set(body["chain_head"]) == {"sequence", "hash"} and body["generated_by"] == "vera-viewer"
    rows = list(csv.reader(io.StringIO(viewer.get(f"{URL}delivery/", {**params, "format": "csv"}).content.decode())))
    assert rows[0][:3] == ["by", "group", "deployments_per_day"] and len(rows) == 1
    pdf = viewer.get(f"{URL}compliance/", {**params, "format": "pdf"})
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert 'filename="fleet-compliance-20200101-20200201.pdf"' in pdf["Content-Disposition"]


@pytest.mark.parametrize(("params", "field", "fragment"), [
    ({"since": "yesterday"}, "since", "not an ISO 8601 date"),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "until", "empty or reversed"),
    ({"since": "2020-01-01", "until": "2026-01-01"}, "since", "at most"),
    ({"selector": "env in (prod"}, "selector", "expected ')'"),
    ({"format": "xml"}, "format", "unknown format"),
    ({"format": "csv", "table": "nope"}, "table", "no table 'nope'"),
    ({"group_by": "a,b,c,d"}, "group_by", "at most 3"),
])
def test_bad_input_is_a_400_naming_the_field(viewer, params, field, fragment):
    response = viewer.get(f"{URL}delivery/", params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "report.invalid" and fragment in body[field][0]


def test_roles_are_checked_by_the_service(viewer, roleless, anonymous, admin_client_api):
    assert viewer.get(f"{URL}changes/").status_code == 200
    refused = viewer.get(f"{URL}access/")
    assert refused.status_code == 403 and refused.json()["code"] == "report.forbidden"
    assert admin_client_api.get(f"{URL}access/").status_code == 200
    assert roleless.get(f"{URL}changes/").status_code == 403
    assert anonymous.get(f"{URL}changes/").status_code == 401
    unknown = viewer.get(f"{URL}gossip/")
    assert unknown.status_code == 404 and "choose one of changes" in unknown.json()["detail"]
    assert AuditEvent.objects.filter(action="auth.denied", actor="rolf-noroles").exists()


def test_the_command_writes_each_format_and_names_bad_input(tmp_path, viewer):
    out = tmp_path / "access.json"
    since = (datetime.date.today() - datetime.timedelta(days=10)).isoformat()
    call_command("report", "access", "--since", since, "--output", str(out), stderr=io.StringIO())
    report = json.loads(out.read_text())
    assert report["kind"] == "access" and report["generated_by"].startswith("cli:")
    call_command("report", "changes", "--format", "pdf", "--output", str(tmp_path / "c.pdf"), stderr=io.StringIO())
    assert (tmp_path / "c.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(CommandError, match="until: the period is empty or reversed"):
        call_command("report", "changes", "--since", "2026-02-01", "--until", "2026-01-01")
    with pytest.raises(CommandError, match="the access report needs the admin role"):
        call_command("report", "access", "--as-user", "vera-viewer")


def test_non_latin_text_survives_in_the_pdf_escaped(admin_client_api):
    from fleet.audit import services
    from fleet.core import context

    with context.activate(source="api", actor="\u674e\u96f7"):
        services.record("auth.login_failed", target_type="user", target_repr="\u674e\u96f7")
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).isoformat()
    body = admin_client_api.get(f"{URL}access/", {"since": since}).json()
    assert body["tables"]["sign_ins"]["rows"][0]["user"] == "\u674e\u96f7"
    assert admin_client_api.get(f"{URL}access/", {"since": since, "format": "pdf"}).status_code == 200
