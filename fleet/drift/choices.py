"""The vocabularies of drift: a cluster's state, a resource's, a cluster's mode."""

from __future__ import annotations

from django.db import models


class DriftState(models.TextChoices):
    """A cluster's drift, worst last (the order :data:`SEVERITY` ranks groups by, as
    Rancher Fleet ranks its bundle states: the worst member names the group)."""

    IN_SYNC = "in_sync"
    UNKNOWN = "unknown"  # not scanned yet, or the cluster did not answer
    DRIFTED = "drifted"
    ERROR = "error"  # the desired state could not be built (render failed, tag gone)


SEVERITY = {DriftState.IN_SYNC: 0, DriftState.UNKNOWN: 1, DriftState.DRIFTED: 2, DriftState.ERROR: 3}


class ResourceState(models.TextChoices):
    MISSING = "missing"  # desired, deleted live
    MODIFIED = "modified"  # live fields differ from desired
    PENDING_PRUNE = "pending_prune"  # still live, no longer desired


class Mode(models.TextChoices):
    REPORT = "report"  # detect only
    HEAL = "heal"  # re-apply drifted objects from the deployed commit
    FREEZE = "freeze"  # detect; deploy rollouts skip the drifted cluster until someone decides


class Trigger(models.TextChoices):
    PERIODIC = "periodic"
    MANUAL = "manual"
    DEPLOYMENT = "deployment"
    SELECTOR = "selector"
    WATCH = "watch"  # an event on a watched object (``watch.ClusterWatcher``)
