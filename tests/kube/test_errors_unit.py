"""Mapping API server statuses to outcomes, without a server."""

import json

import pytest

from fleet.kube.errors import from_response

pytestmark = pytest.mark.embedded


def status(code: int, reason: str, message: str, causes=()) -> bytes:
    return json.dumps({"kind": "Status", "code": code, "reason": reason, "message": message,
                       "details": {"causes": list(causes)}}).encode()


@pytest.mark.parametrize("code, body, outcome", [
    (401, status(401, "Unauthorized", "Unauthorized"), "unauthorized"),
    (403, status(403, "Forbidden", 'configmaps "a" is forbidden'), "forbidden"),
    (409, status(409, "Conflict", "Apply failed with 1 conflict",
                 [{"reason": "FieldManagerConflict", "field": ".data.a"}]), "conflict"),
    (409, status(409, "Conflict", "Precondition failed: UID in precondition"), "error"),
    (422, status(422, "Invalid", 'ConfigMap "A" is invalid'), "invalid"),
    (400, status(400, "BadRequest", 'strict decoding error: unknown field "spec.x"'), "invalid"),
    (404, status(404, "NotFound", 'namespaces "x" not found'), "not_found"),
    (504, status(504, "Timeout", "timed out"), "timeout"),
    (500, b"<html>oops</html>", "error"),
])
def test_statuses_map_to_outcomes(code, body, outcome):
    error = from_response(code, body, cluster="edge-1", obj="ConfigMap web/a")
    assert error.code == outcome
    assert str(error).startswith("cluster edge-1, ConfigMap web/a: ")
    assert error.as_dict()["code"] == f"kube.{outcome}"
