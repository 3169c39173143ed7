"""Property-based API testing against the running server: schemathesis generates requests
for every operation of the OpenAPI schema (a few examples each, derandomised so a run is
repeatable) and wants no 5xx and no response the schema does not describe (status code,
content type, body). Then a stateful run chains operations through the links schemathesis
infers from responses (a created object's id used by the next call).

The outside probe sent ~18,700 such requests; this keeps a bounded share of them in the
suite, a few minutes at most.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fleet.accounts.roles import Role
from tests.conftest import make_client
from tests.factories import ChannelFactory, ClusterFactory, ReleaseFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture
def api_headers(transactional_db, tmp_path, settings) -> dict[str, str]:
    """An admin's token (every operation is open to it), and some objects to find."""
    settings.FLEET_WORKSPACE_DIR = tmp_path / "ws"
    channel = ChannelFactory(name="stable", repo_url=str(tmp_path / "missing.git"))
    ClusterFactory(name="c-1", channel=channel, internal_repo_url=str(tmp_path / "missing-internal.git"))
    ReleaseFactory(channel=channel)
    client = make_client(Role.ADMIN, "sam-schemathesis")
    return {"Authorization": client._credentials["HTTP_AUTHORIZATION"]}


@pytest.fixture
def api(live_server, api_headers):
    return schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/", headers=api_headers)


def test_no_server_errors_and_responses_match_the_schema(api, api_headers):
    """Every operation, its own examples; all failures reported at once, by operation.
    (Run by hand rather than ``schemathesis.pytest.from_fixture``, which this pytest breaks.)"""
    failures: list[str] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) > 50
    for operation in operations:
        @given(case=operation.as_strategy())
        @EXAMPLES
        def check(case) -> None:
            case.call_and_validate(headers=api_headers, checks=CHECKS)

        try:
            check()
        except BaseException as exc:  # noqa: BLE001 - schemathesis raises a group: collect, report together
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)


def test_stateful_sequences_keep_the_same_promises(api, api_headers):
    machine = api.as_state_machine()
    calls: list[str] = []

    class Machine(machine):
        def get_call_kwargs(self, case):
            calls.append(f"{case.method} {case.path}")
            return {"headers": api_headers}

        def validate_response(self, response, case, **kwargs):
            case.validate_response(response, checks=CHECKS)

    Machine.run(settings=settings(max_examples=15, stateful_step_count=6, deadline=None, derandomize=True,
                                  database=None, suppress_health_check=list(HealthCheck)))
    assert len(calls) > 15, calls
    print(f"stateful: {len(calls)} calls, {len(set(calls))} distinct operations")
