"""Drift records: each cluster's report, its drifted resources, scan history, rules.

``ClusterDrift`` (one per cluster) is the current verdict and what scheduling and
self-heal need; ``DriftedResource`` is one object that differs, kept with its drift
window (first and last seen, resolved) after it is back in sync, so the cluster's own
API-server audit events can be joined on object, field manager and time;
``DriftScan`` is the history, pruned after ``FLEET_DRIFT_HISTORY_DAYS``.

Cluster state machine (written by ``scan.record`` only)::

    unknown ─scan─▶ in_sync ◀──▶ drifted      any ─desired state fails─▶ error
    any ─cluster does not answer─▶ unknown    error|unknown ─next good scan─▶ in_sync|drifted

``contested_at`` is set beside ``drifted`` when drift came back too often after heals;
it stops self-heal until someone acknowledges it.
"""

from __future__ import annotations

import orjson
from django.conf import settings
from django.db import models
from django.db.models import Q

from fleet.core import crypto
from fleet.core.objects import ObjectRef
from fleet.drift.choices import DriftState, Mode, ResourceState, Trigger
from fleet.inventory.models import Cluster


class ClusterDrift(models.Model):
    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="drift")
    state = models.CharField(max_length=16, choices=DriftState.choices, default=DriftState.UNKNOWN, db_index=True)
    reason = models.CharField(max_length=1000, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices, blank=True,
                            help_text="this cluster's mode; blank: from the mode rules (default report)")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True,
                                                   help_text="between periodic scans; blank: FLEET_DRIFT_INTERVAL")
    first_drift_observed_at = models.DateTimeField(null=True, blank=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    last_scan_seconds = models.FloatField(null=True, blank=True)
    next_scan_at = models.DateTimeField(null=True, blank=True, db_index=True)
    deployed_tag = models.CharField(max_length=255, blank=True)
    desired_key = models.CharField(max_length=64, blank=True)
    missing = models.PositiveIntegerField(default=0)
    modified = models.PositiveIntegerField(default=0)
    pending_prune = models.PositiveIntegerField(default=0)
    ignored = models.PositiveIntegerField(default=0, help_text="field changes hidden by ignore rules")
    contested_at = models.DateTimeField(null=True, blank=True)
    contested_by = models.CharField(max_length=255, blank=True, help_text="the competing field manager")
    acknowledged_at = models.DateTimeField(null=True, blank=True,
                                           help_text="someone decided about this drift (freeze lifts, contest ends)")
    acknowledged_by = models.CharField(max_length=150, blank=True)
    heal_failures = models.PositiveIntegerField(default=0)
    heal_retry_at = models.DateTimeField(null=True, blank=True)
    heal_rollout = models.ForeignKey("rollouts.Rollout", null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        ordering = ["cluster__name"]

    def __str__(self) -> str:
        return f"drift of {self.cluster.name}: {self.state}"

    @property
    def audit_cluster_name(self) -> str:
        return self.cluster.name

    @property
    def counts(self) -> dict[str, int]:
        return {"missing": self.missing, "modified": self.modified, "pending_prune": self.pending_prune,
                "ignored": self.ignored}


class DriftedResource(models.Model):
    """One object that differs (or differed: ``resolved_at``) from the desired state.

    ``manager`` and ``changed_at`` say who changed it, from the live ``managedFields``
    (the manager owning the first changed field, else the latest other than Fleet);
    each change in ``changes`` names its own. With the object reference and the window
    (``first_observed_at`` .. ``resolved_at`` or now) this is what a join with the
    cluster's API-server audit events needs.
    """

    drift = models.ForeignKey(ClusterDrift, on_delete=models.CASCADE, related_name="resources")
    group = models.CharField(max_length=253, blank=True)
    version = models.CharField(max_length=63)
    kind = models.CharField(max_length=63)
    namespace = models.CharField(max_length=63, blank=True)
    name = models.CharField(max_length=253)
    state = models.CharField(max_length=16, choices=ResourceState.choices)
    changes = models.JSONField(default=list, blank=True,
                               help_text="[{path, pointer, desired, live, manager, time}]; Secret values hashed")
    manager = models.CharField(max_length=255, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)
    first_observed_at = models.DateTimeField()
    last_observed_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["drift", "kind", "namespace", "name"]
        indexes = [models.Index(fields=["drift", "resolved_at"]), models.Index(fields=["kind", "namespace", "name"])]
        constraints = [models.UniqueConstraint(fields=["drift", "group", "kind", "namespace", "name"],
                                               condition=Q(resolved_at__isnull=True),
                                               name="one_open_drift_per_object")]

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name} ({self.state})"

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(self.group, self.version, self.kind, self.namespace, self.name)


class DriftScan(models.Model):
    """One scan of one cluster: the history (pruned after ``FLEET_DRIFT_HISTORY_DAYS``)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="drift_scans")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    started_at = models.DateTimeField(db_index=True)
    seconds = models.FloatField()
    state = models.CharField(max_length=16, choices=DriftState.choices)
    reason = models.CharField(max_length=1000, blank=True)
    counts = models.JSONField(default=dict)
    requests = models.PositiveIntegerField(default=0, help_text="API requests the scan made")
    desired_cached = models.BooleanField(default=False, help_text="desired state from the cache: no git, no render")
    tag = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["cluster", "-started_at"])]

    def __str__(self) -> str:
        return f"scan of {self.cluster_id} at {self.started_at:%Y-%m-%d %H:%M:%S}: {self.state}"


class DesiredSet(models.Model):
    """A rendered desired set, by content: the commit and the render inputs. Shared by
    every worker, so a cluster not redeployed is scanned with no git and no render.

    The manifests are encrypted at rest (``fleet.core.crypto``, the credentials' keys): a
    release's Secrets are in them, and a database dump must not hand them out."""

    key = models.CharField(max_length=64, unique=True)
    commit = models.CharField(max_length=40)
    manifests_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"desired set {self.key[:12]} ({self.commit[:12]})"

    @staticmethod
    def seal(manifests: list[dict]) -> str:
        return crypto.encrypt(orjson.dumps(manifests).decode())

    @staticmethod
    def unseal(token: str) -> list[dict]:
        return orjson.loads(crypto.decrypt(token))


class IgnoreRule(models.Model):
    """Fields drift does not compare, and Fleet does not apply (so heal and rollouts never
    fight over them). Objects by group/kind/namespace/name (``*`` and ``?`` wildcards),
    clusters by label selector; fields by JSON pointer (``/spec/replicas``; a list item by
    its merge key's value or index, ``*`` for any), or every field the named field
    managers own (``hpa-controller``). ``source`` is ``code`` for rules synced from the
    rules file (``manage.py drift sync-rules``), which that file owns."""

    class Source(models.TextChoices):
        API = "api"
        CODE = "code"

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=500, blank=True)
    group = models.CharField(max_length=253, default="*")
    kind = models.CharField(max_length=63, default="*")
    namespace = models.CharField(max_length=63, default="*")
    object_name = models.CharField(max_length=253, default="*")
    cluster_selector = models.CharField(max_length=1000, blank=True)
    json_pointers = models.JSONField(default=list, blank=True)
    managers = models.JSONField(default=list, blank=True)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ModeRule(models.Model):
    """The mode of the clusters a selector matches (highest ``priority`` first; a
    cluster's own ``ClusterDrift.mode`` wins over every rule), with optional heal
    windows: ``["22:00-06:00"]`` in UTC, when self-heal may run (empty: any time)."""

    name = models.SlugField(max_length=100, unique=True)
    cluster_selector = models.CharField(max_length=1000, blank=True)
    mode = models.CharField(max_length=8, choices=Mode.choices)
    priority = models.IntegerField(default=0)
    heal_windows = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.mode}"


class HealAttempt(models.Model):
    """A heal requested for a cluster: its rollout, and the diff it set out to undo."""

    drift = models.ForeignKey(ClusterDrift, on_delete=models.CASCADE, related_name="heals")
    rollout = models.ForeignKey("rollouts.Rollout", null=True, on_delete=models.SET_NULL, related_name="+")
    requested_at = models.DateTimeField(db_index=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    automatic = models.BooleanField(default=False)
    refs = models.JSONField(default=list, help_text="the drifted objects (ObjectRef fields)")

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"heal of {self.drift.cluster.name} at {self.requested_at:%Y-%m-%d %H:%M:%S}"
