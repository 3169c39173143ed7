"""Errors of the inventory's input: credentials and clusters-as-code files."""

from __future__ import annotations

from fleet.core.errors import FleetError


class CredentialError(FleetError):
    """Invalid credentials; ``field`` names the offending key, the message never a value."""

    domain = "inventory"
    code = "credentials"

    def __init__(self, field: str, message: str):
        super().__init__(message, field=field)
