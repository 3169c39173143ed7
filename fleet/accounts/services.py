"""Users, roles and tokens: the operations behind the `accounts` command and admin."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from fleet.accounts.models import ApiToken
from fleet.accounts.roles import Role
from fleet.audit import services as audit


def ensure_role_groups() -> None:
    for role in Role:
        Group.objects.get_or_create(name=role.group_name)


def create_user(username: str, role: Role, password: str | None = None) -> tuple[object, str]:
    """Create a user in one role; returns the user and the (given or generated) password."""
    User = get_user_model()
    password = password or secrets.token_urlsafe(12)
    with transaction.atomic():
        if User.objects.filter(username=username).exists():
            raise ValueError(f"user {username!r} already exists")
        user = User(username=username, is_staff=role >= Role.OPERATOR,
                    is_superuser=role is Role.ADMIN)
        user.set_password(password)
        audit.create(user, metadata={"role": role.group_name})
        ensure_role_groups()
        user.groups.add(Group.objects.get(name=role.group_name))
    return user, password


def issue_token(user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Issue an API token; its plaintext is shown once, to the caller, and never stored."""
    token, plaintext = ApiToken.issue(user, name, expires_at)
    audit.create(token)
    return token, plaintext


def revoke_token(token: ApiToken) -> ApiToken:
    return audit.update(token, {"revoked": True})
