"""What every console page knows about the person looking at it: their role and the
actions they may take (computed on first use, so pages that never ask pay nothing)."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from fleet.accounts.roles import role_of
from fleet.console.access import allowed_actions


def console(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    return {"can": SimpleLazyObject(lambda: allowed_actions(user)),
            "role": SimpleLazyObject(lambda: role_of(user))}
