"""REST endpoints for rollouts: create, preview, list, detail with progress, and actions."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.accounts.roles import Role
from fleet.api.viewsets import WRITE_ROLES, BaseModelViewSet
from fleet.inventory.models import Release
from fleet.rollouts import preview, services
from fleet.rollouts.errors import StrategyError
from fleet.rollouts.models import ClusterDeployment, Rollout, StrategyTemplate, Wave
from fleet.rollouts.progress import rollout_progress, with_progress
from fleet.rollouts.strategy import parse_waves


class DeploymentSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name")

    class Meta:
        model = ClusterDeployment
        fields = ["id", "cluster", "state", "step", "steps", "upstream_sha", "local_sha",
                  "previous_tag", "tag", "target_tag", "policy", "applied_refs", "error", "attempts",
                  "started_at", "finished_at"]


class WaveSerializer(serializers.ModelSerializer):
    approved_by = serializers.CharField(source="approved_by.username", default=None, allow_null=True)
    deployments = DeploymentSerializer(many=True)

    class Meta:
        model = Wave
        fields = ["index", "name", "selector", "max_parallel", "max_failures", "bake_seconds",
                  "require_approval", "state", "approved_by", "approved_at", "bake_until", "reason",
                  "started_at", "finished_at", "deployments"]


class RolloutSerializer(serializers.ModelSerializer):
    release = serializers.PrimaryKeyRelatedField(read_only=True)
    release_version = serializers.CharField(source="release.version")
    channel = serializers.CharField(source="release.channel.name")
    author = serializers.CharField(source="author.username")
    progress = serializers.SerializerMethodField()

    class Meta:
        model = Rollout
        fields = ["id", "kind", "release", "release_version", "channel", "selector", "strategy_name",
                  "strategy", "state", "reason", "author", "rollback_of", "progress", "created_at",
                  "started_at", "finished_at"]

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_progress(self, rollout: Rollout) -> dict[str, Any]:
        return rollout_progress(rollout)


class RolloutDetailSerializer(RolloutSerializer):
    waves = WaveSerializer(many=True)

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "waves"]


class RolloutCreateSerializer(serializers.Serializer):
    release = serializers.PrimaryKeyRelatedField(queryset=Release.objects.select_related("channel"))
    selector = serializers.CharField(allow_blank=True, default="", max_length=1000)
    waves = serializers.ListField(child=serializers.DictField(), required=False, allow_null=True,
                                  max_length=50)
    template = serializers.CharField(required=False, allow_blank=True, default="")
    health_timeout_seconds = serializers.IntegerField(min_value=10, max_value=3600, default=300)
    start = serializers.BooleanField(default=False, help_text="start at once after creating")

    def to_request(self) -> services.RolloutRequest:
        data = dict(self.validated_data)
        data.pop("start")
        return services.RolloutRequest(**data)


class PreviewSerializer(serializers.Serializer):
    """Schema only: waves, each with clusters and their rebase, policy and diff outcome."""

    strategy_name = serializers.CharField()
    waves = serializers.ListField(child=serializers.DictField())
    summary = serializers.DictField()


class RolloutFilter(django_filters.FilterSet):
    channel = django_filters.CharFilter(field_name="release__channel__name")
    cluster = django_filters.CharFilter(field_name="deployments__cluster__name", distinct=True)

    class Meta:
        model = Rollout
        fields = ["state", "kind", "release", "channel", "cluster"]


def _body(request: Request) -> dict[str, Any]:
    """The request body of an action that takes a few optional fields: an object, or nothing."""
    if request.data in (None, "") or request.data == {}:
        return {}
    if not isinstance(request.data, dict):
        raise serializers.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
    return request.data


def _rollouts():
    """Rollouts as every endpoint shows them: release, author and progress in one query."""
    return with_progress(Rollout.objects.select_related("release__channel", "author"))


class RolloutViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    # Approving is an admin's act (``accounts.rules``; the service checks it too).
    required_roles = {**WRITE_ROLES, "approve": Role.ADMIN}
    filterset_class = RolloutFilter
    ordering_fields = ["created_at", "state"]

    def get_queryset(self):
        queryset = _rollouts().order_by(
            "-created_at", "-id")
        if self.action == "retrieve":
            deployments = ClusterDeployment.objects.select_related("cluster")
            queryset = queryset.prefetch_related(Prefetch(
                "waves", Wave.objects.select_related("approved_by").prefetch_related(
                    Prefetch("deployments", deployments))))
        return queryset

    def get_serializer_class(self):
        if self.action in ("create", "preview"):
            return RolloutCreateSerializer
        return RolloutDetailSerializer if self.action == "retrieve" else RolloutSerializer

    @extend_schema(request=RolloutCreateSerializer, responses={201: RolloutDetailSerializer})
    def create(self, request: Request) -> Response:
        serializer = RolloutCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rollout = services.create_rollout(serializer.to_request(), request.user)
        if serializer.validated_data["start"]:
            services.start(rollout)
        response = RolloutDetailSerializer(self.get_queryset().get(pk=rollout.pk), context={"request": request})
        return Response(response.data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/rollouts/{rollout.pk}/"})

    @extend_schema(request=RolloutCreateSerializer, responses={200: PreviewSerializer})
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """The plan, per-cluster rebase outcome, policy verdict and diff; changes nothing."""
        serializer = RolloutCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(preview.preview(serializer.to_request()))

    def _act(self, request: Request, operation) -> Response:
        rollout = self.get_object()
        operation(rollout)
        rollout = _rollouts().get(pk=rollout.pk)
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str) -> Response:
        return self._act(request, services.start)

    @extend_schema(request=None, responses={202: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._act(request, services.pause)

    @extend_schema(request=None, responses={202: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._act(request, services.resume)

    @extend_schema(request=inline_serializer("AbortRequest", {"reason": serializers.CharField(required=False)}),
                   responses={202: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str) -> Response:
        reason = str(_body(request).get("reason", ""))[:500]
        return self._act(request, lambda rollout: services.abort(rollout, reason))

    @extend_schema(request=None, responses={202: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._act(request, lambda rollout: services.approve(rollout, request.user))

    @extend_schema(request=inline_serializer("RollbackRequest", {
        "scope": serializers.ChoiceField(choices=["failed", "all"], default="failed"),
        "start": serializers.BooleanField(default=True)}), responses={201: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str) -> Response:
        body = _body(request)
        created = services.rollback(self.get_object(), request.user, scope=str(body.get("scope", "failed")))
        if body.get("start", True):
            services.start(created)
        created = _rollouts().get(pk=created.pk)
        return Response(RolloutSerializer(created).data, status=status.HTTP_201_CREATED,
                        headers={"Location": f"/api/v1/rollouts/{created.pk}/"})


class StrategyTemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = StrategyTemplate
        fields = ["id", "name", "description", "waves", "created_at"]

    def validate_waves(self, value):
        try:
            parse_waves(value)
        except StrategyError as exc:
            raise serializers.ValidationError(f"{exc.field}: {exc}") from None
        return value


class StrategyTemplateViewSet(BaseModelViewSet):
    queryset = StrategyTemplate.objects.order_by("name")
    serializer_class = StrategyTemplateSerializer
    required_roles = {"read": Role.VIEWER, "write": Role.ADMIN}
