from django.apps import AppConfig
from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def _signing_key_given(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A key generated beside the database signs checkpoints its owners could forge."""
    if not settings.FLEET_AUDIT_SIGNING_KEY_GENERATED:
        return []
    return [checks.Warning(
        "the audit signing key was generated into the data directory",
        hint="set FLEET_AUDIT_SIGNING_KEY from a secret store the database's owners cannot read "
             "(`manage.py audit keygen` makes one); the anchors in the deploy tags still catch a rewrite",
        id="fleet.audit.W001")]


class AuditConfig(AppConfig):
    name = "fleet.audit"
    label = "audit"
