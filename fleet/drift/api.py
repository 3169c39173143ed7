"""REST endpoints for drift: the fleet summary, clusters' drift (JSON and unified diff),
scan and heal requests (202 with the URL to follow), and the ignore and mode rules.

Views are thin: ``fleet.drift.services`` does the work and checks roles again."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.accounts.roles import Role
from fleet.api.viewsets import READ_ROLES, WRITE_ROLES, BaseModelViewSet
from fleet.drift import services
from fleet.drift.choices import Mode
from fleet.drift.models import ClusterDrift, IgnoreRule, ModeRule
from fleet.inventory.models import Cluster

ADMIN_WRITES = {"read": Role.VIEWER, "write": Role.ADMIN}
CLUSTER_NAME = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"


def _url(request: Request, path: str) -> str:
    return request.build_absolute_uri(path)


class SummaryView(APIView):
    """The fleet's drift at a glance (``services.summary``)."""

    required_roles = READ_ROLES

    @extend_schema(operation_id="drift_retrieve", parameters=[
        OpenApiParameter("selector", str, description="clusters by label selector"),
        OpenApiParameter("label", str, description="also group by this label's values"),
        OpenApiParameter("limit", int, description="clusters listed in detail (the totals count all)")],
        responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            limit = max(0, min(int(params.get("limit", services.SUMMARY_CLUSTERS)), 1000))
        except ValueError:
            raise serializers.ValidationError({"limit": ["must be a whole number"]}) from None
        return Response(services.summary(selector=params.get("selector", ""), label=params.get("label", "")[:317],
                                         user=request.user,
                                         limit=limit))


class ClusterDriftSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    channel = serializers.CharField(source="cluster.channel.name", read_only=True)
    contested = serializers.SerializerMethodField()

    class Meta:
        model = ClusterDrift
        fields = ["cluster", "channel", "state", "reason", "mode", "interval_seconds", "first_drift_observed_at",
                  "last_scan_at", "next_scan_at", "deployed_tag", "missing", "modified", "pending_prune", "ignored",
                  "contested", "acknowledged_at"]
        read_only_fields = [f for f in fields if f not in ("mode", "interval_seconds")]

    def get_contested(self, drift: ClusterDrift) -> str | None:
        return drift.contested_by or None if drift.contested_at else None


class ClusterDriftUpdateSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Mode.choices, allow_blank=True, required=False)
    interval_seconds = serializers.IntegerField(min_value=10, max_value=86400, required=False)


class ClusterDriftViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """``/drift/clusters/{name}/``: one cluster's drift, addressed by cluster name."""

    serializer_class = ClusterDriftSerializer
    lookup_field = "name"
    lookup_value_regex = CLUSTER_NAME
    required_roles = {**WRITE_ROLES, "acknowledge": Role.OPERATOR}

    def get_queryset(self):
        params = self.request.query_params
        return services.drift_rows(selector=params.get("selector", ""), state=params.get("state", ""),
                                   channel=params.get("channel", ""))

    def _cluster(self, name: str) -> Cluster:
        cluster = Cluster.objects.filter(name=name).select_related("channel").first()
        if cluster is None:
            from rest_framework.exceptions import NotFound

            raise NotFound(f"no cluster {name!r}")
        return cluster

    @extend_schema(parameters=[OpenApiParameter("selector", str), OpenApiParameter("state", str),
                               OpenApiParameter("channel", str)])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(responses={200: OpenApiTypes.OBJECT, (200, "text/x-diff"): OpenApiTypes.STR},
                   parameters=[OpenApiParameter("format", str, enum=["json", "diff"],
                                                description="diff: the unified diff alone, as text")])
    def retrieve(self, request: Request, name: str) -> Response:
        """The per-resource diff as JSON (``resources``) and as a unified diff (``unified_diff``)."""
        cluster = self._cluster(name)
        text = services.unified_diff(cluster, user=request.user)
        if request.query_params.get("format") == "diff":
            from django.http import HttpResponse

            return HttpResponse(text, content_type="text/x-diff; charset=utf-8")
        return Response({**services.cluster_detail(cluster, user=request.user), "unified_diff": text})

    @extend_schema(request=ClusterDriftUpdateSerializer, responses={200: ClusterDriftSerializer})
    def partial_update(self, request: Request, name: str) -> Response:
        """Set the cluster's own mode ("" follows the mode rules) or scan interval."""
        body = ClusterDriftUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        drift = services.set_cluster_mode(self._cluster(name), user=request.user, **body.validated_data)
        return Response(ClusterDriftSerializer(drift).data)

    @extend_schema(request=None, responses={202: inline_serializer("ScanAccepted", {
        "cluster": serializers.CharField(), "url": serializers.URLField()})})
    @action(detail=True, methods=["post"])
    def scan(self, request: Request, name: str) -> Response:
        """Scan the cluster soon; follow ``url`` for its result."""
        drift = services.request_scan(self._cluster(name), user=request.user)
        url = _url(request, f"/api/v1/drift/clusters/{drift.cluster.name}/")
        return Response({"cluster": drift.cluster.name, "url": url}, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": url})

    @extend_schema(request=None, responses={202: inline_serializer("HealAccepted", {
        "cluster": serializers.CharField(), "rollout": serializers.IntegerField(), "url": serializers.URLField()})})
    @action(detail=True, methods=["post"])
    def heal(self, request: Request, name: str) -> Response:
        """Heal the cluster now: a heal rollout of its deployed tag; follow ``url``."""
        attempt = services.request_heal(self._cluster(name), user=request.user)
        url = _url(request, f"/api/v1/rollouts/{attempt.rollout_id}/")
        return Response({"cluster": name, "rollout": attempt.rollout_id, "url": url},
                        status=status.HTTP_202_ACCEPTED, headers={"Location": url})

    @extend_schema(request=None, responses={200: ClusterDriftSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, name: str) -> Response:
        """Someone decided: a contested cluster may be healed again, a frozen one deployed."""
        return Response(ClusterDriftSerializer(services.acknowledge(self._cluster(name), user=request.user)).data)


class SelectorScanView(APIView):
    required_roles = {"write": Role.OPERATOR}

    @extend_schema(operation_id="drift_scan_create",
                   request=inline_serializer("SelectorScan", {"selector": serializers.CharField(allow_blank=True)}),
                   responses={202: inline_serializer("SelectorScanAccepted", {
                       "clusters": serializers.IntegerField(), "url": serializers.URLField()})})
    def post(self, request: Request) -> Response:
        """Scan every cluster the selector matches (all of them for an empty one)."""
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["the body must be a JSON object"]})
        selector = request.data.get("selector", "")
        if not isinstance(selector, str) or len(selector) > 1000:
            raise serializers.ValidationError({"selector": ["a label selector of at most 1000 characters"]})
        count = services.request_selector_scan(selector, user=request.user)
        url = _url(request, "/api/v1/drift/clusters/") + (f"?selector={selector}" if selector else "")
        return Response({"clusters": count, "url": url}, status=status.HTTP_202_ACCEPTED)


class IgnoreRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = IgnoreRule
        fields = ["id", "name", "description", "group", "kind", "namespace", "object_name", "cluster_selector",
                  "json_pointers", "managers", "source", "created_at", "updated_at"]
        read_only_fields = ["source", "created_at", "updated_at"]


class IgnoreRuleViewSet(BaseModelViewSet):
    queryset = IgnoreRule.objects.order_by("name")
    serializer_class = IgnoreRuleSerializer
    required_roles = ADMIN_WRITES

    def create_object(self, data: dict[str, Any]):
        return services.create_ignore_rule(data, user=self.request.user)

    def update_object(self, instance, data: dict[str, Any]):
        return services.update_ignore_rule(instance, data, user=self.request.user)

    def perform_destroy(self, instance) -> None:
        services.delete_ignore_rule(instance, user=self.request.user)


class ModeRuleSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModeRule
        fields = ["id", "name", "cluster_selector", "mode", "priority", "heal_windows", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class ModeRuleViewSet(BaseModelViewSet):
    queryset = ModeRule.objects.all()
    serializer_class = ModeRuleSerializer
    required_roles = ADMIN_WRITES

    def create_object(self, data: dict[str, Any]):
        return services.create_mode_rule(data, user=self.request.user)

    def update_object(self, instance, data: dict[str, Any]):
        return services.update_mode_rule(instance, data, user=self.request.user)

    def perform_destroy(self, instance) -> None:
        services.delete_mode_rule(instance, user=self.request.user)
