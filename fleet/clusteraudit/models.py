"""What Fleet keeps of each cluster's API-server audit events, and how a cluster is let in.

:class:`ClusterAuditEvent` is one stage of one request, as kube-apiserver's audit backend
reports it (``audit.k8s.io/v1`` ``Event``), reduced to what an investigation needs. It is
deduplicated by (cluster, auditID, stage, requestReceivedTimestamp): a batch the webhook
sends twice, or a file imported twice, is stored once. The time is the event's own (the
cluster's clock), never the time Fleet received it, so events of clusters whose clocks
disagree are each kept, and ordered, in their own time.

On PostgreSQL the table is partitioned by day on ``request_received_at`` (migration 0001,
``partitions.py``): retention drops whole days, and a query over a period reads only the
days it covers. Its primary key is (id, request_received_at), as PostgreSQL requires of a
partitioned table; Django only ever looks rows up by ``id``, which the sequence keeps unique.
On SQLite it is a plain table with the same indexes.

``outside_gitops`` is decided when the event is stored (``classify.py``): a completed,
successful write by an identity that is neither Fleet's own on that cluster nor a
Kubernetes component. Deciding then keeps the fleet-wide "changes outside GitOps" page an
index range scan at tens of millions of rows, and records who Fleet was at the time.

:class:`AuditSource` is a cluster's ingest credential (only its hash is kept; shown once,
rotatable by an admin, every rotation audited) and the identity Fleet acts as there.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from fleet.inventory.models import Cluster

WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
LEVELS = ("None", "Metadata", "Request", "RequestResponse")


class Actor(models.TextChoices):
    """Who made a request, as far as GitOps is concerned."""

    FLEET = "fleet", "Fleet"
    SYSTEM = "system", "Kubernetes component"
    OTHER = "other", "someone else"


class ClusterAuditEvent(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="audit_events")
    audit_id = models.CharField(max_length=128)
    stage = models.CharField(max_length=24)
    level = models.CharField(max_length=24)
    request_received_at = models.DateTimeField()
    stage_at = models.DateTimeField()
    username = models.CharField(max_length=255, blank=True)
    groups = models.JSONField(default=list, blank=True)
    impersonated_user = models.CharField(max_length=255, blank=True)
    impersonated_groups = models.JSONField(default=list, blank=True)
    verb = models.CharField(max_length=32)
    api_group = models.CharField(max_length=253, blank=True)
    api_version = models.CharField(max_length=64, blank=True)
    resource = models.CharField(max_length=253, blank=True)
    subresource = models.CharField(max_length=64, blank=True)
    namespace = models.CharField(max_length=253, blank=True)
    name = models.CharField(max_length=253, blank=True)
    request_uri = models.CharField(max_length=1024, blank=True)
    response_code = models.IntegerField(null=True, blank=True)
    source_ips = models.JSONField(default=list, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    field_manager = models.CharField(max_length=128, blank=True)
    request_object = models.JSONField(null=True, blank=True)
    actor = models.CharField(max_length=8, choices=Actor.choices)
    outside_gitops = models.BooleanField(default=False)

    class Meta:
        ordering = ["-request_received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["cluster", "audit_id", "stage", "request_received_at"],
                                               name="clusteraudit_event_once")]
        indexes = [
            # One object's history (and drift's join).
            models.Index(fields=["cluster", "resource", "namespace", "name", "request_received_at"],
                         name="clusteraudit_object"),
            # A cluster's events by time (top actors, the cluster's page).
            models.Index(fields=["cluster", "request_received_at"], name="clusteraudit_cluster_time"),
            # Who did it: one user's requests across the fleet.
            models.Index(fields=["username", "request_received_at"], name="clusteraudit_user_time"),
            # Changes outside GitOps, fleet-wide and per cluster: only those rows are indexed.
            models.Index(fields=["request_received_at"], condition=Q(outside_gitops=True),
                         name="clusteraudit_outside_time"),
            models.Index(fields=["cluster", "request_received_at"], condition=Q(outside_gitops=True),
                         name="clusteraudit_outside_cluster"),
        ]

    def __str__(self) -> str:
        what = "/".join(p for p in (self.namespace, self.resource, self.name) if p) or self.request_uri
        return f"{self.cluster_id}: {self.username} {self.verb} {what} at {self.request_received_at:%Y-%m-%d %H:%M:%S}"

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS


class AuditSource(models.Model):
    """How one cluster's audit events reach Fleet: its ingest credential, and who Fleet is there.

    The credential is ``fca_<key>_<secret>``: ``key`` finds the row (so a credential of
    another cluster is recognised as such and refused by name), the secret is kept as a
    SHA-256 hash. After a rotation the previous secret may stay valid for a grace period,
    so an API server is reconfigured without losing a batch.

    ``fleet_username`` is the user Fleet's own credentials authenticate as on the cluster
    (asked of the cluster with a SelfSubjectReview, or set by an admin); with none known,
    Fleet's writes are recognised by its field manager alone.
    """

    SECRET_FIELDS = ("secret_hash", "previous_secret_hash")

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, related_name="audit_source")
    key = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    previous_secret_hash = models.CharField(max_length=64, blank=True, editable=False)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField()
    fleet_username = models.CharField(max_length=255, blank=True)
    fleet_username_source = models.CharField(max_length=32, blank=True)
    last_ingest_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["cluster__name"]

    def __str__(self) -> str:
        return f"audit source of {self.cluster.name}"

    @property
    def audit_cluster_name(self) -> str:
        return self.cluster.name


class IngestRefusal(models.Model):
    """Refused ingest requests counted per claimed cluster, source address and window,
    so an attack is audited once per window (with its count), not once per request."""

    key = models.CharField(max_length=320)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "window_start"], name="clusteraudit_refusal_once")]
