"""The one error type of the policy gate: what went wrong, and where in which file.

Every failure the gate can meet (bad Rego, a template without Rego, a constraint
naming a missing template, a policy failing at run time, an unreachable OPA) becomes a
:class:`PolicyError`, so callers handle one type and the verdict can carry the reason.
"""

from __future__ import annotations

from typing import Any

KINDS = ("syntax", "template", "constraint", "runtime", "engine", "input")


class PolicyError(Exception):
    def __init__(self, message: str, *, kind: str = "syntax", file: str = "",
                 line: int | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown policy error kind {kind!r}")
        self.message, self.kind, self.file, self.line = message, kind, file, line
        super().__init__(str(self))

    @property
    def where(self) -> str:
        if not self.file:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, "file": self.file, "line": self.line}
