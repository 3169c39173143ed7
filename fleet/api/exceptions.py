"""One error shape for the API, and audit of refused requests.

Django ``ValidationError`` (raised by model validation inside services) becomes a
400 with field messages, like DRF's own; 401 and 403 are recorded in the audit log.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError as DjangoValidationError
from django.db import IntegrityError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from fleet.audit import services as audit


def _audit_refusal(exc: Exception, context: dict) -> None:
    request = context.get("request")
    if request is None:
        return
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        action = "auth.unauthenticated"
    elif isinstance(exc, exceptions.PermissionDenied):
        action = "auth.denied"
    else:
        return
    audit.record(action, target_type="endpoint", target_repr=f"{request.method} {request.path}"[:255],
                 metadata={"method": request.method, "path": request.path[:500],
                           "reason": str(exc.detail)[:500]})


def exception_handler(exc: Exception, context: dict) -> Response | None:
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
