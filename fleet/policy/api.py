"""REST endpoints of the policy gate.

``POST /api/v1/policy/evaluate`` is the gate for CI (viewer role: CI tokens should be
able to ask, never to change policies). Policy sets and waivers change what may reach
a cluster, so writing them needs the admin role; decisions are read-only records.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.accounts.roles import Role
from fleet.api.viewsets import BaseModelViewSet, BaseReadOnlyViewSet
from fleet.core import context
from fleet.inventory.models import Cluster, Release
from fleet.policy import services
from fleet.policy.choices import DecisionSource
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import check_objects
from fleet.policy.manifests import parse_manifests, render_git
from fleet.policy.models import PolicyDecision, PolicySet, Waiver

ADMIN_WRITES = {"read": Role.VIEWER, "write": Role.ADMIN}


class PolicySetSerializer(serializers.ModelSerializer):
    files = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                  help_text="relative path -> text: *.rego and Gatekeeper YAML")

    class Meta:
        model = PolicySet
        fields = ["id", "name", "description", "selector", "mode", "fail_open", "review_deletes", "files",
                  "bundle_hash", "source", "created_at", "updated_at"]
        read_only_fields = ["bundle_hash"]

    def validate_files(self, files: dict[str, str]) -> dict[str, str]:
        try:
            services.check_files(files)
        except PolicyError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return files


class WaiverSerializer(serializers.ModelSerializer):
    policy_set = serializers.SlugRelatedField(slug_field="name", queryset=PolicySet.objects.all(),
                                              required=False, allow_null=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Waiver
        fields = ["id", "name", "policy_set", "rule", "object_pattern", "cluster_selector", "reason",
                  "author", "expires_at", "active", "created_at"]
        read_only_fields = ["author"]

    def get_active(self, waiver: Waiver) -> bool:
        return waiver.expires_at > timezone.now()

    def validate_expires_at(self, value):
        if value <= timezone.now():
            raise serializers.ValidationError("must be in the future")
        return value


class PolicyDecisionSerializer(serializers.ModelSerializer):
    cluster = serializers.CharField(source="cluster_name", read_only=True)

    class Meta:
        model = PolicyDecision
        fields = ["id", "cluster", "release", "release_from", "allowed", "engine", "bundle_hash",
                  "policy_sets", "violations", "errors", "object_count", "elapsed_ms", "source",
                  "created_at"]


@extend_schema_field(OpenApiTypes.ANY)
class ManifestsField(serializers.Field):
    """A list of objects, or YAML/JSON text with one or more documents."""

    def to_internal_value(self, data: Any) -> list[dict[str, Any]]:
        try:
            return parse_manifests(data) if isinstance(data, str) else check_objects(data, "manifests")
        except PolicyError as exc:
            raise serializers.ValidationError(str(exc)) from None


class EvaluateSerializer(serializers.Serializer):
    manifests = ManifestsField(required=False, help_text="objects, or YAML text")
    repo = serializers.CharField(required=False, max_length=500, help_text="render this repo (with ref, path)")
    ref = serializers.CharField(required=False, max_length=255)
    path = serializers.CharField(required=False, default="", allow_blank=True, max_length=500)
    cluster = serializers.SlugRelatedField(slug_field="name", queryset=Cluster.objects.select_related("channel"),
                                           required=False, help_text="cluster whose labels select the sets")
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False,
                                   help_text="cluster labels, when no cluster is named")
    release = serializers.PrimaryKeyRelatedField(queryset=Release.objects.select_related("channel"),
                                                 required=False)
    release_from = serializers.PrimaryKeyRelatedField(queryset=Release.objects.select_related("channel"),
                                                      required=False)
    deployed = ManifestsField(required=False, help_text="what runs now, for the change (and oldObject)")
    inventory = ManifestsField(required=False, help_text="more objects for Gatekeeper's data.inventory "
                                                         "(the release is always in it)")
    policy_sets = serializers.SlugRelatedField(slug_field="name", queryset=PolicySet.objects.all(),
                                               many=True, required=False,
                                               help_text="only these sets (default: by selector)")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("manifests" in attrs) == ("repo" in attrs):
            raise serializers.ValidationError("give either manifests, or repo + ref (+ path)")
        if "repo" in attrs and not attrs.get("ref"):
            raise serializers.ValidationError({"ref": ["required with repo"]})
        if "cluster" in attrs and "labels" in attrs:
            raise serializers.ValidationError("give a cluster or labels, not both")
        return attrs


class PolicySetViewSet(BaseModelViewSet):
    queryset = PolicySet.objects.all()
    serializer_class = PolicySetSerializer
    required_roles = ADMIN_WRITES
    filterset_fields = ["name", "mode", "bundle_hash"]
    ordering_fields = ["name", "updated_at"]


class WaiverFilter(django_filters.FilterSet):
    policy_set = django_filters.CharFilter(field_name="policy_set__name")
    active = django_filters.BooleanFilter(method="filter_active")

    class Meta:
        model = Waiver
        fields = ["name", "policy_set", "rule", "active"]

    def filter_active(self, queryset, name: str, value: bool):
        now = timezone.now()
        return queryset.filter(expires_at__gt=now) if value else queryset.filter(expires_at__lte=now)


class WaiverViewSet(BaseModelViewSet):
    queryset = Waiver.objects.select_related("policy_set")
    serializer_class = WaiverSerializer
    required_roles = ADMIN_WRITES
    filterset_class = WaiverFilter
    ordering_fields = ["name", "expires_at", "created_at"]

    def create_object(self, data: dict[str, Any]) -> Waiver:
        return super().create_object({**data, "author": context.current().actor_name()[:150]})


class PolicyDecisionViewSet(BaseReadOnlyViewSet):
    queryset = PolicyDecision.objects.all()
    serializer_class = PolicyDecisionSerializer
    filterset_fields = {"cluster_name": ["exact"], "allowed": ["exact"], "release": ["exact"],
                        "bundle_hash": ["exact"], "source": ["exact"], "created_at": ["gte", "lte"]}
    ordering_fields = ["created_at", "elapsed_ms"]


class EvaluateView(APIView):
    """The gate: manifests (or a git ref to render) and a cluster context in, verdict out."""

    required_roles = {"write": Role.VIEWER}

    @extend_schema(request=EvaluateSerializer, responses={200: OpenApiTypes.OBJECT})
    def post(self, request) -> Response:
        serializer = EvaluateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        attrs = serializer.validated_data
        # A PolicyError here is bad input (a render that failed, not a list of objects):
        # the API's error table answers it.
        objects, content_hash = (attrs["manifests"], "") if "manifests" in attrs else \
            render_git(attrs["repo"], attrs["ref"], attrs["path"])
        verdict, decision = services.evaluate(
            objects, cluster=attrs.get("cluster"), labels=attrs.get("labels"),
            release=attrs.get("release"), release_from=attrs.get("release_from"),
            deployed=attrs.get("deployed"), policy_sets=attrs.get("policy_sets"),
            inventory=attrs.get("inventory") or (), source=DecisionSource.API)
        body = {**verdict.as_dict(), "decision": decision.pk, "object_count": len(objects)}
        if content_hash:
            body["content_hash"] = content_hash
        return Response(body)
