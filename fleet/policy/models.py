"""Policy sets, waivers and the decisions the gate took.

A policy set stores its policy files in the row (``files``: relative path → text), so
the database alone holds what was enforced; ``bundle_hash`` names that content and
keys every compiled form of it. Decisions keep the verdict as it was, with the hash of
the policies that produced it, so a past decision can be explained after the policies
changed.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from fleet.core.labels import LabelError, parse_selector
from fleet.inventory.validators import validate_dns_label
from fleet.policy.bundle import bundle_hash, load_bundle
from fleet.policy.choices import DecisionSource, Mode
from fleet.policy.errors import PolicyError


def validate_selector(value: str) -> None:
    try:
        parse_selector(value)
    except LabelError as exc:
        raise ValidationError(str(exc)) from None


def validate_files(value: object) -> None:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError("files must map a relative path to the file's text")
    if not value:
        raise ValidationError("a policy set needs at least one policy file")
    try:
        load_bundle(value)
    except PolicyError as exc:
        raise ValidationError(str(exc)) from None


class PolicySet(models.Model):
    """Policies applied to the clusters its label selector matches (empty: all)."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    description = models.CharField(max_length=500, blank=True)
    selector = models.CharField(max_length=500, blank=True, validators=[validate_selector],
                                help_text="Kubernetes label selector on cluster labels; empty matches all")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.ENFORCE)
    fail_open = models.BooleanField(default=False, help_text=(
        "In enforce mode, let an apply through when the set cannot be evaluated"))
    review_deletes = models.BooleanField(default=False, help_text=(
        "Send what an apply prunes to the set's Gatekeeper constraints as DELETE reviews "
        "(as a Gatekeeper whose webhook lists DELETE; Gatekeeper's default does not)"))
    files = models.JSONField(default=dict, validators=[validate_files])
    bundle_hash = models.CharField(max_length=64, editable=False, db_index=True)
    source = models.CharField(max_length=500, blank=True, help_text="where the files came from")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        self.bundle_hash = bundle_hash(self.files)
        super().save(*args, **kwargs)


class Waiver(models.Model):
    """A named, expiring exception: findings of ``rule`` on objects matching
    ``object_pattern`` in clusters matching ``cluster_selector`` do not block."""

    name = models.CharField(max_length=63, unique=True, validators=[validate_dns_label])
    policy_set = models.ForeignKey(PolicySet, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="waivers", help_text="empty: any set")
    rule = models.CharField(max_length=255, help_text="glob on the rule, e.g. baseline.images.deny "
                                                      "or K8sRequiredLabels/must-have-team")
    object_pattern = models.CharField(max_length=500, default="*",
                                      help_text="glob on Kind/namespace/name (Kind/name if cluster-scoped)")
    cluster_selector = models.CharField(max_length=500, blank=True, validators=[validate_selector])
    reason = models.TextField(max_length=2000)
    author = models.CharField(max_length=150)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PolicyDecision(models.Model):
    """One verdict of the gate, as it was given."""

    cluster = models.ForeignKey("inventory.Cluster", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="policy_decisions")
    cluster_name = models.CharField(max_length=63, blank=True, db_index=True)
    release = models.ForeignKey("inventory.Release", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="policy_decisions")
    release_from = models.ForeignKey("inventory.Release", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+")
    allowed = models.BooleanField(db_index=True)
    engine = models.CharField(max_length=16)
    bundle_hash = models.CharField(max_length=64)
    policy_sets = models.JSONField(default=list, blank=True,
                                   help_text="per set: name, mode, bundle hash, timing, error")
    violations = models.JSONField(default=list, blank=True)
    errors = models.JSONField(default=list, blank=True)
    object_count = models.PositiveIntegerField(default=0)
    elapsed_ms = models.FloatField()
    source = models.CharField(max_length=8, choices=DecisionSource.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "denied"
        return f"{self.cluster_name or 'no cluster'}: {verdict} ({self.created_at:%Y-%m-%d %H:%M:%S})" \
            if self.created_at else f"{self.cluster_name or 'no cluster'}: {verdict}"

    @property
    def audit_cluster_name(self) -> str:
        return self.cluster_name


class MemoEntry(models.Model):
    """Findings of one subject (or one release's set rules) under one bundle and the
    context it reads, shared by every worker (``fleet.policy.memo_store``). The key is
    a digest of all of that (``engines.memo``): a changed bundle or context is another key."""

    key = models.CharField(max_length=32, primary_key=True)
    hits = models.JSONField()  # [[source, value], ...]
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "memo entries"
