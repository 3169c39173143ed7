"""Enumerations of the policy gate."""

from django.db import models


class Mode(models.TextChoices):
    """How a policy set's findings count: ``enforce`` blocks on deny, ``warn`` only
    records, ``dry-run`` is evaluated and stored but left out of the verdict."""

    ENFORCE = "enforce", "enforce"
    WARN = "warn", "warn"
    DRY_RUN = "dry-run", "dry-run"


class Enforcement(models.TextChoices):
    """What one violation does to the verdict, after the set's mode and any waiver."""

    DENY = "deny", "deny"
    WARN = "warn", "warn"
    DRY_RUN = "dryrun", "dry-run"
    WAIVED = "waived", "waived"


class Severity(models.TextChoices):
    ERROR = "error", "error"
    WARNING = "warning", "warning"


class DecisionSource(models.TextChoices):
    API = "api", "API"
    CLI = "cli", "CLI"
    PIPELINE = "pipeline", "pipeline"
