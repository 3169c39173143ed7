"""The toolchain's one error; the API answers every ``toolchain.*`` with a 503, since a
tool that is not installed is the deployment's to fix, not the caller's."""

from __future__ import annotations

from fleet.core.errors import FleetError


class ToolchainError(FleetError):
    """A tool is unknown, not installed, cannot be built, or an override points at
    nothing usable.

    Codes: ``missing`` (not in the cache: the message names the command that builds
    it), ``unknown``, ``bad-override``, ``no-go``, ``build``.
    """

    domain = "toolchain"
