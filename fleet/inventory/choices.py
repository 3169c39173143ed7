from django.db import models


class ClusterStatus(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    READY = "ready", "Ready"
    UNREACHABLE = "unreachable", "Unreachable"
    UNAUTHORIZED = "unauthorized", "Unauthorized"
    ERROR = "error", "Error"


class ClusterOrigin(models.TextChoices):
    """Where a cluster's definition lives: `inventory sync --prune` removes only files'."""

    API = "api", "API or admin"
    FILE = "file", "clusters-as-code file"
