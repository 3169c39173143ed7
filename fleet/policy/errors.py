"""The one error type of the policy gate: what went wrong, and where in which file.

Every failure the gate can meet (bad Rego, a template without Rego, a constraint naming
a missing template, a policy failing at run time, an unreachable OPA) becomes a
:class:`PolicyError`, so callers handle one type and the verdict can carry the reason.
Its ``code`` is one of :data:`CODES`.
"""

from __future__ import annotations

from fleet.core.errors import FleetError

CODES = ("syntax", "template", "constraint", "runtime", "engine", "input")


class PolicyError(FleetError):
    domain = "policy"

    def __init__(self, message: str, *, code: str = "syntax", file: str = "", line: int | None = None):
        if code not in CODES:
            raise ValueError(f"unknown policy error code {code!r}")
        self.file, self.line = file, line
        super().__init__(message, code=code, detail={"file": file, "line": line})

    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.file and self.line else self.file
