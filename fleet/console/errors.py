"""The services' refusals as the console shows them: a message, the field at fault,
and the HTTP status the API answers with for the same error (its one table)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from fleet.api.exceptions import http_status
from fleet.core.errors import FleetError

# What a service raises for a request it refuses: its own errors, and model
# validation run by the audited writes.
SERVICE_ERRORS: tuple[type[Exception], ...] = (FleetError, ValidationError)


def status_of(error: Exception) -> int:
    return http_status(error) if isinstance(error, FleetError) else 400


def forbidden(error: Exception) -> bool:
    """A refusal of who is asking (the API's 403), answered with the audited 403 page.
    Any other refusal is shown on the page it came from, which answers 200 as a form
    shown again with its errors does (a browser logs every 4xx page as an error)."""
    return status_of(error) == 403


def field_of(error: Exception) -> str:
    return getattr(error, "field", "") or ""


def message_of(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error)
