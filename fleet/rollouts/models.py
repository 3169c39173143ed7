"""Rollouts: a release taken to a set of clusters in ordered waves.

The state machines and their transitions live in ``states.py``; the database is the
source of truth for where a rollout is, never a task's memory.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from fleet.inventory.models import Cluster, Release
from fleet.rollouts.states import DeploymentState, RolloutState, WaveState


class StrategyTemplate(models.Model):
    """A named, reusable list of wave specs (see ``strategy.WaveSpec``)."""

    name = models.SlugField(max_length=63, unique=True)
    description = models.CharField(max_length=500, blank=True)
    waves = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Rollout(models.Model):
    STATES = RolloutState

    class Kind(models.TextChoices):
        DEPLOY = "deploy"
        ROLLBACK = "rollback"
        # Drift's self-heal: the cluster's deployed tag again, only its drifted objects,
        # with forced ownership (``ClusterDeployment.heal_refs``).
        HEAL = "heal"

    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="rollouts")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.DEPLOY)
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                    related_name="rollbacks")
    selector = models.CharField(max_length=1000, blank=True)
    strategy_name = models.CharField(max_length=63, blank=True)
    strategy = models.JSONField(help_text="the resolved wave specs, frozen at creation")
    health_timeout_seconds = models.PositiveIntegerField(default=300)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=16, choices=RolloutState.choices, default=RolloutState.PENDING,
                             db_index=True)
    reason = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"rollout #{self.pk} ({self.kind} {self.release})"


class Wave(models.Model):
    STATES = WaveState

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="waves")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=63)
    selector = models.CharField(max_length=1000, blank=True)
    max_parallel = models.PositiveIntegerField()
    max_failures = models.CharField(max_length=8, help_text="a count (2) or a percentage (10%)")
    bake_seconds = models.PositiveIntegerField(default=0)
    require_approval = models.BooleanField(default=False)
    state = models.CharField(max_length=20, choices=WaveState.choices, default=WaveState.PENDING)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    approved_at = models.DateTimeField(null=True, blank=True)
    bake_until = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=1000, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["rollout", "index"]
        constraints = [models.UniqueConstraint(fields=["rollout", "index"], name="wave_unique_index")]

    def __str__(self) -> str:
        return f"wave {self.index + 1} ({self.name}) of rollout #{self.rollout_id}"

    def failure_budget(self, size: int) -> int:
        """How many clusters may fail before the wave halts."""
        if self.max_failures.endswith("%"):
            return int(size * int(self.max_failures[:-1]) / 100)
        return int(self.max_failures)


class ClusterDeployment(models.Model):
    """One cluster's pass through the pipeline within a rollout.

    ``steps`` records each finished step's outcome, so a resumed deployment skips
    what is done; ``heartbeat_at`` lets the sweeper find work whose worker died.
    ``applied_refs`` is what the apply put on the cluster (``ObjectRef`` fields), the
    set the health check waits for, then the bake rechecks, on whichever worker.
    """

    STATES = DeploymentState

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="deployments")
    wave = models.ForeignKey(Wave, on_delete=models.CASCADE, related_name="deployments")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="deployments")
    state = models.CharField(max_length=16, choices=DeploymentState.choices,
                             default=DeploymentState.PENDING, db_index=True)
    step = models.CharField(max_length=16, blank=True)
    steps = models.JSONField(default=dict, blank=True)
    upstream_sha = models.CharField(max_length=40, blank=True)
    local_sha = models.CharField(max_length=40, blank=True)
    previous_tag = models.CharField(max_length=255, blank=True)
    tag = models.CharField(max_length=255, blank=True)
    target_tag = models.CharField(max_length=255, blank=True, help_text="rollbacks: the tag to re-deploy")
    policy = models.JSONField(null=True, blank=True, help_text="the gate's verdict summary")
    applied_refs = models.JSONField(default=list, blank=True, help_text="the objects the apply step applied")
    heal_refs = models.JSONField(default=list, blank=True,
                                 help_text="heals: the drifted objects to re-apply (empty: the whole set)")
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["wave__index", "cluster__name"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "cluster"], name="deployment_unique_cluster"),
            # The database, not a Python flag, keeps two rollouts off one cluster.
            models.UniqueConstraint(fields=["cluster"], condition=Q(state=DeploymentState.RUNNING),
                                    name="one_running_deployment_per_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster} in rollout #{self.rollout_id}"

    @property
    def audit_cluster_name(self) -> str:
        return self.cluster.name
