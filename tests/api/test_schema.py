import io

import pytest
import yaml
from django.core.management import call_command

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_openapi_schema_generates_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--fail-on-warn", "--format", "openapi", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    assert schema["openapi"].startswith("3.")
    for path in ("/api/v1/clusters/", "/api/v1/channels/", "/api/v1/releases/", "/api/v1/audit/",
                 "/api/v1/audit/export/", "/api/v1/audit/verify/"):
        assert path in schema["paths"], path


def test_schema_and_docs_are_served_to_authenticated_users(viewer, anonymous):
    assert anonymous.get("/api/v1/schema/").status_code == 401
    assert viewer.get("/api/v1/schema/").status_code == 200
    docs = viewer.get("/api/v1/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
