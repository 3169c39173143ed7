"""REST endpoints for channels, releases and clusters."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from fleet.api.viewsets import BaseModelViewSet
from fleet.core.labels import LabelError, parse_selector
from fleet.inventory import services
from fleet.inventory.choices import ClusterStatus
from fleet.inventory.credentials import parse_credentials
from fleet.inventory.errors import CredentialError
from fleet.inventory.models import Channel, Cluster, Release


class ChannelSerializer(serializers.ModelSerializer):
    cluster_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Channel
        fields = ["id", "name", "repo_url", "branch", "description", "cluster_count",
                  "created_at", "updated_at"]


class ReleaseSerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="name", queryset=Channel.objects.all())

    class Meta:
        model = Release
        fields = ["id", "channel", "version", "upstream_sha", "notes", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            frozen = [f for f in ("channel", "version", "upstream_sha")
                      if f in attrs and attrs[f] != getattr(self.instance, f)]
            if frozen:
                raise serializers.ValidationError(
                    {f: ["a release is immutable; create a new release instead"] for f in frozen})
        return attrs


@extend_schema_field(OpenApiTypes.OBJECT)
class CredentialsField(serializers.Field):
    """Write-only: accepted on input, never rendered. ``null`` removes them."""

    def __init__(self, **kwargs: Any):
        super().__init__(write_only=True, required=False, allow_null=True, **kwargs)

    def to_internal_value(self, data: Any):
        try:
            return parse_credentials(data)
        except CredentialError as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]}) from None


class ClusterSerializer(serializers.ModelSerializer):
    channel = serializers.SlugRelatedField(slug_field="name", queryset=Channel.objects.all())
    credentials = CredentialsField(
        help_text="Write-only: token, ca_pem, client_cert_pem, client_key_pem, or kubeconfig.")
    has_credentials = serializers.BooleanField(read_only=True)

    class Meta:
        model = Cluster
        fields = ["id", "name", "labels", "api_server_url", "credentials", "has_credentials",
                  "internal_repo_url", "internal_branch", "channel", "paused", "pinned",
                  "protected", "status", "status_message", "last_contact_at", "origin",
                  "source_file", "created_at", "updated_at"]
        read_only_fields = ["status", "status_message", "last_contact_at", "origin",
                            "source_file"]


class ClusterFilter(django_filters.FilterSet):
    selector = django_filters.CharFilter(method="filter_selector",
                                         label="Kubernetes label selector, e.g. env=prod,region in (eu,us),!canary")
    channel = django_filters.CharFilter(field_name="channel__name")
    status = django_filters.MultipleChoiceFilter(choices=ClusterStatus.choices)
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Cluster
        fields = ["selector", "channel", "status", "name", "paused", "pinned", "protected"]

    def filter_selector(self, queryset, name: str, value: str):
        try:
            return queryset.filter(parse_selector(value).to_q("labels"))
        except LabelError as exc:
            raise serializers.ValidationError({"selector": [str(exc)]}) from None


class ChannelViewSet(BaseModelViewSet):
    queryset = Channel.objects.annotate(cluster_count=Count("clusters")).order_by("name")
    serializer_class = ChannelSerializer
    filterset_fields = ["name", "branch"]
    ordering_fields = ["name", "branch", "created_at"]


class ReleaseViewSet(BaseModelViewSet):
    queryset = Release.objects.select_related("channel")
    serializer_class = ReleaseSerializer
    filterset_fields = {"channel__name": ["exact"], "version": ["exact"], "upstream_sha": ["exact"]}
    ordering_fields = ["created_at", "version"]


class ClusterViewSet(BaseModelViewSet):
    queryset = Cluster.objects.select_related("channel")
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilter
    ordering_fields = ["name", "status", "last_contact_at", "created_at", "updated_at"]
    ordering = ["name"]

    def create_object(self, data: dict[str, Any]) -> Cluster:
        credentials = data.pop("credentials", None)
        return services.create_cluster(data, credentials)

    def update_object(self, instance: Cluster, data: dict[str, Any]) -> Cluster:
        credentials = data.pop("credentials", services.UNCHANGED)
        return services.update_cluster(instance, data, credentials)

    def perform_destroy(self, instance: Cluster) -> None:
        services.delete_cluster(instance)
