"""``Authorization: Bearer flt_…`` authentication for the API, and DRF's session
authentication naming who a CSRF refusal refused."""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from fleet.accounts.models import TOKEN_PREFIX, ApiToken, digest

_LAST_USED_GRANULARITY = timedelta(minutes=1)


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode(errors="replace").lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <token>'.")
        raw = header[1].decode(errors="replace")
        parts = raw.split("_", 2)
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            raise exceptions.AuthenticationFailed("Malformed API token.")
        token = ApiToken.objects.select_related("user").filter(key=parts[1]).first()
        if token is None or not hmac.compare_digest(token.secret_hash, digest(parts[2])):
            raise exceptions.AuthenticationFailed("Invalid API token.")
        if not token.is_usable():
            raise exceptions.AuthenticationFailed("API token is revoked or expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User is inactive.")
        now = timezone.now()
        # One write a minute at most, not one per request.
        if token.last_used_at is None or now - token.last_used_at > _LAST_USED_GRANULARITY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="fleet"'


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication. A request with a session but no valid CSRF token is
    refused before DRF records its user, so the refusal names the session's user itself
    (``actor``), which the audit of refusals reads: it is that user's browser, not anonymous."""

    def enforce_csrf(self, request) -> None:
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as exc:
            exc.actor = request._request.user.get_username()
            raise
