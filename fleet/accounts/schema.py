"""Describes bearer-token authentication in the OpenAPI schema."""

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "fleet.accounts.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "flt_<key>_<secret>"}


class FleetSessionScheme(SessionScheme):
    """Fleet's session authentication (``accounts.authentication``) is DRF's, as the schema says."""

    target_class = "fleet.accounts.authentication.SessionAuthentication"
