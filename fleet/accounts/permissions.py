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


VIEWER, OPERATOR, ADMIN = Role.VIEWER, Role.OPERATOR, Role.ADMIN


def _crud(resource: str, read: Role, write: Role) -> dict[str, Role]:
    return {f"{resource}_{op}": read for op in ("list", "retrieve")} | {
        f"{resource}_{op}": write for op in ("create", "update", "partial_update", "destroy")}


# The role each API operation needs (its operationId), the one table of who may call what.
OPERATION_ROLES: dict[str, Role] = {
    "audit_list": VIEWER, "audit_retrieve": VIEWER, "audit_export_list": VIEWER, "audit_verify_retrieve": VIEWER,
    "audit_bundle_retrieve": VIEWER, "audit_checkpoints_retrieve": VIEWER, "reports_retrieve": VIEWER,
    **_crud("channels", VIEWER, OPERATOR), **_crud("releases", VIEWER, OPERATOR),
    **_crud("clusters", VIEWER, OPERATOR),
    "gitops_status_retrieve": VIEWER, "gitops_params_retrieve": VIEWER, "gitops_rendered_retrieve": VIEWER,
    "gitops_history_list": VIEWER, "gitops_params_update": OPERATOR, "gitops_commits_create": OPERATOR,
    **_crud("repository_credentials", VIEWER, ADMIN),
    "policy_evaluate_create": VIEWER, "policy_decisions_list": VIEWER, "policy_decisions_retrieve": VIEWER,
    **_crud("policy_sets", VIEWER, ADMIN), **_crud("policy_waivers", VIEWER, ADMIN),
    "rollouts_list": VIEWER, "rollouts_retrieve": VIEWER, "rollouts_create": OPERATOR,
    "rollouts_preview_create": OPERATOR,
    "rollouts_start_create": OPERATOR, "rollouts_pause_create": OPERATOR, "rollouts_resume_create": OPERATOR,
    "rollouts_abort_create": OPERATOR, "rollouts_rollback_create": OPERATOR, "rollouts_approve_create": ADMIN,
    **_crud("strategy_templates", VIEWER, ADMIN),
    "drift_retrieve": VIEWER, "drift_scan_create": OPERATOR,
    "drift_clusters_list": VIEWER, "drift_clusters_retrieve": VIEWER, "drift_clusters_partial_update": OPERATOR,
    "drift_clusters_scan_create": OPERATOR, "drift_clusters_heal_create": OPERATOR,
    "drift_clusters_acknowledge_create": OPERATOR,
    **_crud("drift_ignore_rules", VIEWER, ADMIN), **_crud("drift_mode_rules", VIEWER, ADMIN),
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
