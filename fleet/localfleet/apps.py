from django.apps import AppConfig


class LocalFleetConfig(AppConfig):
    """Registered only for the ``localfleet`` management command; the package itself
    is plain Python (no models), usable without Django."""

    name = "fleet.localfleet"
    label = "localfleet"
    verbose_name = "Local fleet"
