"""The audit log over REST: filter, export (CSV or JSON, streamed), signed bundles,
checkpoints and verification."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

import django_filters
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.api.viewsets import BaseReadOnlyViewSet
from fleet.audit import export
from fleet.audit.keys import public_key, signing_key_id
from fleet.audit.models import AuditCheckpoint, AuditEvent
from fleet.audit.services import verify_and_record
from fleet.reports.scope import parse_time
from fleet_audit_verify.signing import public_key_text

EXPORT_FIELDS = ["sequence", "timestamp", "actor", "source", "action", "target_type", "target_id",
                 "target_repr", "cluster", "request_id", "before", "after", "metadata",
                 "prev_hash", "hash"]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", *EXPORT_FIELDS]


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter()
    action = django_filters.CharFilter(method="filter_action",
                                       label="exact action, or a prefix ending in '.' (cluster.)")
    target = django_filters.CharFilter(method="filter_target",
                                       label="TYPE or TYPE:ID, e.g. cluster:12")
    cluster = django_filters.CharFilter()
    source = django_filters.CharFilter()
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "target", "cluster", "source", "request_id", "since", "until"]

    def filter_action(self, queryset, name: str, value: str):
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)

    def filter_target(self, queryset, name: str, value: str):
        target_type, _, target_id = value.partition(":")
        queryset = queryset.filter(target_type=target_type)
        return queryset.filter(target_id=target_id) if target_id else queryset


def _csv_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    class Line:
        def write(self, value: str) -> str:
            return value

    writer = csv.writer(Line())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events:
        row = AuditEventSerializer(event).data
        yield writer.writerow([json.dumps(row[f], sort_keys=True) if isinstance(row[f], (dict, list))
                               else row[f] for f in EXPORT_FIELDS])


def _json_rows(events: Iterator[AuditEvent]) -> Iterator[str]:
    yield "["
    for index, event in enumerate(events):
        yield ("," if index else "") + json.dumps(AuditEventSerializer(event).data)
    yield "]\n"


class AuditEventViewSet(BaseReadOnlyViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ["sequence", "timestamp"]

    @extend_schema(
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=["csv", "json"],
                                     description="export format (default json)")],
        responses={(200, "text/csv"): OpenApiTypes.STR, (200, "application/json"): AuditEventSerializer(many=True)},
    )
    @action(detail=False, methods=["get"], pagination_class=None)
    def export(self, request: Request) -> StreamingHttpResponse:
        """Every event matching the filters, oldest first, streamed (no page limit)."""
        fmt = request.query_params.get("format", "json")
        if fmt not in ("csv", "json"):
            raise serializers.ValidationError({"format": [f"unknown export format {fmt!r}: use csv or json"]})
        events = self.filter_queryset(self.get_queryset()).order_by("sequence").iterator(chunk_size=1000)
        rows, content_type = (_csv_rows, "text/csv") if fmt == "csv" else (_json_rows, "application/json")
        response = StreamingHttpResponse(rows(events), content_type=content_type)
        response["Content-Disposition"] = f'attachment; filename="fleet-audit.{fmt}"'
        return response

    @extend_schema(responses=inline_serializer("ChainReport", {
        "ok": serializers.BooleanField(), "checked": serializers.IntegerField(),
        "first_broken_sequence": serializers.IntegerField(allow_null=True),
        "reason": serializers.CharField()}))
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def verify(self, request: Request) -> Response:
        """Check the whole hash chain and name the first broken event."""
        return Response(verify_and_record().as_dict())

    @extend_schema(
        parameters=[OpenApiParameter("since", OpenApiTypes.STR, description="ISO date or time"),
                    OpenApiParameter("until", OpenApiTypes.STR, description="ISO date or time, excluded")],
        responses={(200, "application/jsonl"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def bundle(self, request: Request) -> StreamingHttpResponse:
        """A signed bundle of the events in [since, until), streamed; check it with ``fleet-audit-verify``."""
        params = request.query_params
        since = parse_time(params["since"], "since") if params.get("since") else None
        until = parse_time(params["until"], "until") if params.get("until") else None
        response = StreamingHttpResponse(export.bundle(since=since, until=until), content_type="application/jsonl")
        response["Content-Disposition"] = 'attachment; filename="fleet-audit-bundle.jsonl"'
        return response

    @extend_schema(responses=inline_serializer("Checkpoints", {
        "key_id": serializers.CharField(), "public_key": serializers.CharField(),
        "checkpoints": serializers.ListField(child=serializers.DictField())}))
    @action(detail=False, methods=["get"], pagination_class=None, filterset_class=None)
    def checkpoints(self, request: Request) -> Response:
        """The public key and the latest signed checkpoints (``?limit=``, at most 1000), to keep elsewhere."""
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 0 < int(raw) <= 1000:
            raise serializers.ValidationError({"limit": ["limit must be a whole number from 1 to 1000"]})
        latest = AuditCheckpoint.objects.order_by("-sequence")[:int(raw)]
        return Response({"key_id": signing_key_id(), "public_key": public_key_text(public_key()),
                         "checkpoints": [c.statement() for c in latest]})
