"""Role-based permissions: every view declares the role each action needs.

A view that declares nothing is refused to everyone (deny by default), so a new
endpoint cannot be exposed by forgetting a line.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from fleet.accounts.roles import Role, role_of


def required_role(request, view) -> Role | None:
    roles: dict[str, Role] | None = getattr(view, "required_roles", None)
    if not roles:
        return None
    action = getattr(view, "action", None)
    if action in roles:
        return roles[action]
    return roles.get("read" if request.method in SAFE_METHODS else "write")


class RolePermission(BasePermission):
    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not hasattr(view, request.method.lower()):
            return True  # not served here at all: let the view answer 405
        needed = required_role(request, view)
        role = role_of(request.user)
        if needed is None or role is None:
            return False
        if role < needed:
            self.message = f"This needs the {needed.group_name} role; you have {role.group_name}."
            return False
        return True
