"""One error shape for the API, the one table from error codes to HTTP statuses, and
audit of refused requests.

Domain errors (:class:`~fleet.core.errors.FleetError`) carry a code and know nothing
of HTTP; :data:`HTTP_STATUS` maps their keys (``<domain>.<code>``, or a domain's
``<domain>.*`` default) to a status here, once. The body is always
``{"detail": message, "code": key}``, plus ``{field: [message]}`` when the error names
the input at fault, as DRF's own validation errors do. Django ``ValidationError``
(raised by model validation inside services) becomes a 400 with field messages; 401
and 403 are recorded in the audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from fleet.audit import services as audit
from fleet.core import context as acting
from fleet.core.errors import FleetError

# Error key -> HTTP status. A key the table does not name takes its domain's ``*``
# entry; an error of a domain without one is a 500 (and a bug to fix here).
HTTP_STATUS: dict[str, int] = {
    # Rendering refused or failed: the repository's content is at fault.
    "render.*": 400,
    # Git operations on a cluster's repository.
    "gitops.bad-input": 400,
    "gitops.busy": 409,
    "gitops.dirty": 409,
    "gitops.git": 502,
    # The policy gate: bad policies or input are the caller's to fix; an engine that
    # cannot answer is ours.
    "policy.*": 400,
    "policy.engine": 503,
    # Rollouts: most refusals are a state that does not allow the request.
    "rollout.*": 409,
    "rollout.invalid": 400,
    # The role rules (fleet.accounts.rules): the actor's role does not allow the act.
    "access.*": 403,
    # A cluster that answered badly, or not at all.
    "kube.*": 502,
    "kube.timeout": 504,
    # Malformed input in the ground pieces: labels and selectors, YAML files, credentials.
    "labels.*": 400,
    "yaml.*": 400,
    "json.*": 400,
    "inventory.*": 400,
    # A tool the product needs is not installed.
    "toolchain.*": 503,
    # Reports: a bad period, selector or format is the caller's to fix.
    "report.*": 400,
    "report.forbidden": 403,
    "report.unknown": 404,
    # API servers' audit events: bad events, filters and files are the sender's; the ingest
    # credential answers 401 (none or wrong) or 403 (another cluster's).
    "clusteraudit.*": 400,
    "clusteraudit.unknown-cluster": 404,
    "clusteraudit.unauthenticated": 401,
    "clusteraudit.wrong-cluster": 403,
    "clusteraudit.too-large": 413,
    "clusteraudit.length-required": 411,
    "clusteraudit.identity": 502,
}


def http_status(error: FleetError) -> int:
    """The status an error answers with, from :data:`HTTP_STATUS`."""
    return HTTP_STATUS.get(error.key) or HTTP_STATUS.get(f"{error.domain}.*", status.HTTP_500_INTERNAL_SERVER_ERROR)


def error_response(error: FleetError) -> Response:
    body: dict[str, object] = {"detail": str(error), "code": error.key}
    if error.field:
        body[error.field] = [str(error)]
    return Response(body, status=http_status(error))


def _audit_refusal(exc: Exception, context: dict) -> None:
    """Record a 401 or 403: the view's role check, or a role rule a service applied."""
    request = context.get("request")
    if request is None:
        return
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        action = "auth.unauthenticated"
    elif isinstance(exc, exceptions.PermissionDenied) or (isinstance(exc, FleetError) and http_status(exc) == 403):
        action = "auth.denied"
    else:
        return
    reason = str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc)
    current = acting.current()
    actor = getattr(exc, "actor", None)  # a refusal that knows better than the request (CSRF)
    with acting.activate(source=current.source, actor=actor, request=current.request,
                          request_id=current.request_id):
        audit.record(action, target_type="endpoint", target_repr=f"{request.method} {request.path}"[:255],
                     metadata={"method": request.method, "path": request.path[:500], "reason": reason[:500]})


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, FleetError):
        _audit_refusal(exc, context)
        return error_response(exc)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    elif isinstance(exc, RequestDataTooBig):
        size = context["request"].META.get("CONTENT_LENGTH", "?")
        return Response({"detail": f"request body of {size} bytes exceeds the limit of "
                                   f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"},
                        status=status.HTTP_400_BAD_REQUEST)
    elif isinstance(exc, IntegrityError):
        # A uniqueness race lost to a concurrent writer: a conflict, not a server error.
        return Response({"detail": "conflicts with an existing object"}, status=status.HTTP_409_CONFLICT)
    _audit_refusal(exc, context)
    return drf_exception_handler(exc, context)
