"""Role-based permissions: every view declares the role each action needs.

A view that declares nothing is refused to everyone (deny by default), so a new
endpoint cannot be exposed by forgetting a line. :data:`OPERATION_ROLES` says the same
once more, by OpenAPI operation: the schema documents each operation's role from it, and
the role matrix test (``tests/api/test_role_matrix.py``) calls every operation as
anonymous, viewer, operator and admin and holds the views to it, so the two can never
drift apart and a new endpoint without an entry fails. Object-level rules (approvals,
protected clusters) are ``fleet.accounts.rules``'.
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


V, O, A = Role.VIEWER, Role.OPERATOR, Role.ADMIN


def _crud(resource: str, read: Role, write: Role) -> dict[str, Role]:
    return {f"{resource}_{op}": read for op in ("list", "retrieve")} | {
        f"{resource}_{op}": write for op in ("create", "update", "partial_update", "destroy")}


# The role each API operation needs (its operationId), the one table of who may call what.
OPERATION_ROLES: dict[str, Role] = {
    "audit_list": V, "audit_retrieve": V, "audit_export_list": V, "audit_verify_retrieve": V,
    **_crud("channels", V, O), **_crud("releases", V, O), **_crud("clusters", V, O),
    "gitops_status_retrieve": V, "gitops_params_retrieve": V, "gitops_rendered_retrieve": V,
    "gitops_history_list": V, "gitops_params_update": O, "gitops_commits_create": O,
    **_crud("repository_credentials", V, A),
    "policy_evaluate_create": V, "policy_decisions_list": V, "policy_decisions_retrieve": V,
    **_crud("policy_sets", V, A), **_crud("policy_waivers", V, A),
    "rollouts_list": V, "rollouts_retrieve": V, "rollouts_create": O, "rollouts_preview_create": O,
    "rollouts_start_create": O, "rollouts_pause_create": O, "rollouts_resume_create": O,
    "rollouts_abort_create": O, "rollouts_rollback_create": O, "rollouts_approve_create": A,
    **_crud("strategy_templates", V, A),
}


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
