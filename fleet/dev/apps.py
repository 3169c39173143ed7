from django.apps import AppConfig


class DevToolsConfig(AppConfig):
    """Installed only with ``FLEET_DEV_TOOLS``, for its management commands; it has no
    models, so leaving it out changes no schema."""

    name = "fleet.dev"
    label = "dev"
    verbose_name = "Dev tooling"
