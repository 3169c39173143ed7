"""The cluster audit over HTTP: the webhook ingest endpoint kube-apiserver posts to, and
the queries and ingest credentials of the REST API.

``POST /api/v1/cluster-audit/ingest/<cluster>/`` speaks kube-apiserver's audit webhook
protocol (an ``audit.k8s.io/v1`` ``EventList`` per batch), not the Fleet API's: it is
authenticated by the cluster's ingest credential alone, never a user's token or session,
so it is a plain Django view outside the OpenAPI schema of user operations (and so outside
the role matrix, which is generated from that schema; its own tests hold it to its rules).

Threat model of the endpoint: anyone reaching Fleet can post. The credential is checked
before the body is read; Content-Length is required and bounded
(``FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES``) and the read is bounded by it too; the JSON has a
depth limit; every event is checked before any is stored. Refusals are audited at most
once per address and window (``credentials.note_refusal``).
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.accounts.roles import Role
from fleet.api.exceptions import http_status
from fleet.api.openapi import ErrorSerializer
from fleet.api.viewsets import READ_ROLES
from fleet.clusteraudit import credentials, queries, services
from fleet.clusteraudit.errors import BatchTooLarge, ClusterAuditError
from fleet.clusteraudit.events import parse_event_list
from fleet.clusteraudit.models import AuditSource, ClusterAuditEvent
from fleet.core import jsonload
from fleet.core.errors import FleetError
from fleet.core.objects import ObjectRef

# -- ingest ------------------------------------------------------------------------------------


def _error(exc: FleetError) -> JsonResponse:
    body: dict[str, object] = {"detail": str(exc), "code": exc.key}
    if exc.field:
        body["field"] = exc.field
    response = JsonResponse(body, status=http_status(exc))
    if response.status_code == 401:
        response["WWW-Authenticate"] = 'Bearer realm="fleet-cluster-audit"'
    return response


@method_decorator(csrf_exempt, name="dispatch")
class IngestView(View):
    """One webhook batch of one cluster: 200 with what was stored, or the error."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, cluster: str) -> JsonResponse:
        try:
            sender = credentials.authenticate(cluster, request.META.get("HTTP_AUTHORIZATION", ""))
        except ClusterAuditError as exc:
            credentials.note_refusal(cluster[:63], request.META.get("REMOTE_ADDR", ""), str(exc))
            return _error(exc)
        try:
            body = self._body(request)
            events = parse_event_list(jsonload.loads(body, source="body"))
            return JsonResponse(services.ingest(sender, events).as_dict())
        except FleetError as exc:
            return _error(exc)

    @staticmethod
    def _body(request: HttpRequest) -> bytes:
        limit = settings.FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES
        length = request.META.get("CONTENT_LENGTH") or ""
        if not length.isdigit():
            raise ClusterAuditError("Content-Length is required", code="length-required")
        if int(length) > limit:
            raise BatchTooLarge(f"a batch of {int(length)} bytes is over the limit of {limit} bytes "
                                "(FLEET_CLUSTER_AUDIT_MAX_BATCH_BYTES; lower --audit-webhook-batch-max-size)")
        body = request.read(limit + 1)  # Django's stream stops at Content-Length anyway
        if len(body) > limit:
            raise BatchTooLarge(f"the batch is over the limit of {limit} bytes")
        return body


# -- queries -----------------------------------------------------------------------------------


class EventSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = ClusterAuditEvent
        fields = ["id", "cluster", "audit_id", "stage", "level", "request_received_at", "stage_at", "username",
                  "groups", "impersonated_user", "impersonated_groups", "verb", "api_group", "api_version",
                  "resource", "subresource", "namespace", "name", "request_uri", "response_code", "source_ips",
                  "user_agent", "field_manager", "actor", "outside_gitops", "request_object"]
        read_only_fields = fields


class EventPagination(CursorPagination):
    """Keyset pages (time, id): no count, no offset, the same cost on page 1 and 10,000."""

    ordering = ("-request_received_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


_FILTERS = [
    OpenApiParameter("since", OpenApiTypes.STR, description="ISO date or time (default: a day before until)"),
    OpenApiParameter("until", OpenApiTypes.STR, description="ISO date or time, excluded (default: now)"),
    OpenApiParameter("selector", OpenApiTypes.STR, description="label selector on clusters"),
    OpenApiParameter("cluster", OpenApiTypes.STR, description="cluster names, comma-separated"),
    OpenApiParameter("user", OpenApiTypes.STR, description="usernames, comma-separated"),
    OpenApiParameter("verb", OpenApiTypes.STR, description="verbs, comma-separated (patch,update)"),
    OpenApiParameter("resource", OpenApiTypes.STR, description="resources, comma-separated (deployments.apps)"),
    OpenApiParameter("namespace", OpenApiTypes.STR),
    OpenApiParameter("name", OpenApiTypes.STR),
    OpenApiParameter("changes", OpenApiTypes.BOOL, description="only completed, successful writes"),
]


class EventListView(ListAPIView):
    """Who changed what, where and when, across the fleet; newest first."""

    required_roles = READ_ROLES
    serializer_class = EventSerializer
    pagination_class = EventPagination
    filter_backends: list = []

    def get_queryset(self):
        return queries.events(self.request.user, queries.EventFilter.from_params(self.request.query_params))

    @extend_schema(parameters=_FILTERS)
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)


class OutsideGitOpsView(EventListView):
    """Changes outside GitOps: completed writes by identities other than Fleet's own and
    Kubernetes' components, per cluster (``cluster=``) or fleet-wide."""

    def get_queryset(self):
        return queries.outside_gitops(self.request.user, queries.EventFilter.from_params(self.request.query_params))


class ActorSerializer(serializers.Serializer):
    cluster = serializers.CharField()
    username = serializers.CharField()
    actor = serializers.CharField()
    changes = serializers.IntegerField()
    outside_gitops = serializers.IntegerField()
    last_at = serializers.DateTimeField()


class TopActorsView(APIView):
    """Per cluster, who changed it most in the period."""

    required_roles = READ_ROLES

    @extend_schema(parameters=[*_FILTERS[:4], OpenApiParameter("limit", OpenApiTypes.INT, description="per cluster")],
                   responses={200: ActorSerializer(many=True)})
    def get(self, request: Request) -> Response:
        limit = request.query_params.get("limit") or "10"
        if not limit.isdigit() or not 1 <= int(limit) <= 100:
            raise ClusterAuditError("limit must be a whole number from 1 to 100", field="limit")
        found = queries.top_actors(request.user, queries.EventFilter.from_params(request.query_params),
                                   limit=int(limit))
        return Response([a.as_dict() for a in found])


class WritesView(APIView):
    """The writes to one object in a window, optionally matching a field manager: what a
    drifted resource links to."""

    required_roles = READ_ROLES

    @extend_schema(parameters=[
        OpenApiParameter("cluster", OpenApiTypes.STR, required=True), OpenApiParameter("kind", OpenApiTypes.STR,
                                                                                        required=True),
        OpenApiParameter("group", OpenApiTypes.STR), OpenApiParameter("namespace", OpenApiTypes.STR),
        OpenApiParameter("name", OpenApiTypes.STR, required=True),
        OpenApiParameter("resource", OpenApiTypes.STR, description="the plural, when it is irregular"),
        OpenApiParameter("field_manager", OpenApiTypes.STR), *_FILTERS[:2]],
        responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request) -> Response:
        params = request.query_params
        for required in ("cluster", "kind", "name"):
            if not params.get(required):
                raise ClusterAuditError(f"{required} is required", field=required)
        f = queries.EventFilter.from_params(params)
        cluster = services.cluster_named(params["cluster"])
        ref = ObjectRef(params.get("group", ""), "", params["kind"], params.get("namespace", ""), params["name"])
        writes = queries.writes_to(cluster, ref, f.since, f.until, params.get("field_manager") or None,
                                   resource=params.get("resource") or None, user=request.user)
        return Response([w.as_dict() for w in writes])


# -- sources and credentials -------------------------------------------------------------------


class SourceSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = AuditSource
        fields = ["cluster", "key", "rotated_at", "previous_valid_until", "fleet_username", "fleet_username_source",
                  "last_ingest_at"]
        read_only_fields = fields


_ISSUED = inline_serializer("IssuedCredential", {
    "cluster": serializers.CharField(), "credential": serializers.CharField(help_text="shown once"),
    "ingest_url": serializers.CharField(), "webhook_kubeconfig": serializers.CharField(),
    "previous_valid_until": serializers.DateTimeField(allow_null=True)})


class AuditSourceViewSet(viewsets.ReadOnlyModelViewSet):
    """Each cluster's audit source: its ingest credential (never shown after it is issued)
    and the identity Fleet acts as there."""

    queryset = AuditSource.objects.select_related("cluster")
    serializer_class = SourceSerializer
    lookup_field = "cluster__name"
    lookup_url_kwarg = "name"
    lookup_value_regex = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    required_roles = {"read": Role.VIEWER, "rotate": Role.ADMIN, "identity": Role.ADMIN}

    @extend_schema(request=inline_serializer("RotateCredential", {
        "grace_seconds": serializers.IntegerField(required=False, help_text="previous secret stays valid")}),
        responses={200: _ISSUED})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, name: str) -> Response:
        """Issue the cluster's ingest credential, or rotate it (audited)."""
        cluster = services.cluster_named(name)
        grace = request.data.get("grace_seconds", 0) if isinstance(request.data, dict) else 0
        if not isinstance(grace, int) or isinstance(grace, bool):
            raise ClusterAuditError("grace_seconds must be a whole number", field="grace_seconds")
        source, secret = credentials.issue(cluster, grace=datetime.timedelta(seconds=max(grace, 0)),
                                           user=request.user)
        url = request.build_absolute_uri(f"/api/v1/cluster-audit/ingest/{cluster.name}/")
        return Response({"cluster": cluster.name, "credential": secret, "ingest_url": url,
                         "webhook_kubeconfig": credentials.webhook_kubeconfig(url, secret),
                         "previous_valid_until": source.previous_valid_until})

    @extend_schema(request=inline_serializer("SetIdentity", {
        "username": serializers.CharField(required=False),
        "resolve": serializers.BooleanField(required=False, help_text="ask the cluster (SelfSubjectReview)")}),
        responses={200: SourceSerializer, 502: ErrorSerializer, 504: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def identity(self, request: Request, name: str) -> Response:
        """Say who Fleet is on the cluster, or ask the cluster (audited)."""
        cluster = services.cluster_named(name)
        data = request.data if isinstance(request.data, dict) else {}
        if data.get("resolve") is True:
            services.resolve_identity(cluster, user=request.user)
        elif isinstance(data.get("username"), str) and data["username"].strip():
            services.set_identity(cluster, data["username"].strip(), user=request.user)
        else:
            raise ClusterAuditError("give a username, or resolve: true", field="username")
        return Response(SourceSerializer(AuditSource.objects.select_related("cluster").get(cluster=cluster)).data)

