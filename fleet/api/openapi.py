"""The schema class of every view (``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``).

:class:`FleetAutoSchema` documents what every operation can answer besides success: the
one error body (``fleet.api.exceptions``) for 400, 401, 403, 404 (paths with an id), 409
(writes) and, where git, a cluster or a tool is involved, 502/503/504; and the role it
needs (``x-required-role``, from ``accounts.permissions.OPERATION_ROLES``).
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from fleet.accounts.permissions import OPERATION_ROLES

# Operations that reach git, a cluster or a tool: they may answer that one failed.
_UPSTREAM_PREFIXES = ("gitops_", "policy_evaluate_", "rollouts_preview_")
_ERRORS = {
    "400": "The request is malformed or invalid: `detail`, and a list of messages per field at fault.",
    "401": "No valid credentials (a bearer token or a session).",
    "403": "The caller's role, or a role rule on this object, does not allow it.",
    "404": "No such object (or page).",
    "409": "The object's state does not allow it, or it conflicts with another.",
    "502": "git or a cluster failed or answered badly.",
    "503": "A tool or engine the server needs is not available.",
    "504": "A cluster did not answer in time.",
}


class ErrorSerializer(serializers.Serializer):
    """Every error answers ``{"detail", "code"}``, plus ``{field: [message]}`` for input at fault."""

    detail = serializers.CharField(required=False)
    code = serializers.CharField(required=False, help_text="the error's key, e.g. rollout.state")


class FleetAutoSchema(AutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        codes = ["400", "401", "403"]
        if "{" in path or method == "GET":  # no such object, or (a list) no such page
            codes.append("404")
        if method not in ("GET", "HEAD"):
            codes.append("409")
        if operation["operationId"].startswith(_UPSTREAM_PREFIXES):
            codes += ["502", "503", "504"]
        responses = operation.setdefault("responses", {})
        for code in codes:
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code)
                responses[code] = {**response, "description": _ERRORS[code]}
        role = OPERATION_ROLES.get(operation["operationId"])
        if role is not None:
            operation["x-required-role"] = role.group_name
        return operation
