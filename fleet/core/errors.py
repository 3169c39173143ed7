"""The one base of Fleet's own errors.

Every domain raises a subclass of :class:`FleetError` with a stable ``code`` that says
which case it is (``busy``, ``timeout``, ``no-kustomization``…) within its ``domain``
(``gitops``, ``kube``, ``render``…); ``key`` (``gitops.busy``) names the case across the
product. Callers branch on codes, never on messages. ``message`` says what went wrong
and ``str()`` puts it after where (the cluster, file or object concerned, from
:meth:`where`); both are safe to show and never carry a secret. ``field`` points at the
input that was wrong, where one was (``waves[1].max_parallel``); ``detail`` holds
structured, equally safe facts for records and API bodies.

Domain errors know nothing of HTTP: the API's exception handler
(``fleet.api.exceptions``) owns the one table from keys to statuses, as pulpcore's
``PulpException`` carries a code and its API layer maps it once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class FleetError(Exception):
    """A failure Fleet expected and can explain; subclasses set ``domain`` and ``code``."""

    domain: ClassVar[str] = "fleet"
    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None, field: str = "",
                 detail: Mapping[str, Any] | None = None):
        if code is not None:
            self.code = code
        self.message = message
        self.field = field
        self.detail: dict[str, Any] = dict(detail or {})
        super().__init__(message)

    def where(self) -> str:
        """Where it went wrong (``cluster prod-1``, ``policies/a.rego:3``); subclasses say."""
        return ""

    def __str__(self) -> str:
        where = self.where()
        return f"{where}: {self.message}" if where else self.message

    @property
    def key(self) -> str:
        """The case across the product: ``<domain>.<code>``, what the API table maps."""
        return f"{self.domain}.{self.code}"

    def as_dict(self) -> dict[str, Any]:
        """What records and API bodies show of the error."""
        body: dict[str, Any] = {"code": self.key, "message": str(self)}
        if self.field:
            body["field"] = self.field
        return {**body, **self.detail}
