"""Audit sign-ins, sign-outs and failed sign-ins (by user name only, never the password)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from fleet.audit import services as audit


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs) -> None:
    audit.record("auth.login", target=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        audit.record("auth.logout", target=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    """The user name tried, as target and in the metadata (searchable); Django has already
    masked the password in ``credentials``, and only the user name is read from it."""
    tried = str(credentials.get("username", ""))[:150]
    audit.record("auth.login_failed", target_type="user", target_repr=tried, metadata={"username": tried})
