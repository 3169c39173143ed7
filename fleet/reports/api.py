"""``GET /api/v1/reports/<kind>/?since=&until=&selector=&format=json|csv|pdf``."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from fleet.api.viewsets import READ_ROLES
from fleet.reports import services
from fleet.reports.render import CONTENT_TYPES, FORMATS, render
from fleet.reports.scope import ReportError

_PARAMETERS = [
    OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(services.KINDS)),
    OpenApiParameter("since", OpenApiTypes.STR, description="ISO date or time (default: 30 days before until)"),
    OpenApiParameter("until", OpenApiTypes.STR, description="ISO date or time, excluded (default: now)"),
    OpenApiParameter("selector", OpenApiTypes.STR, description="label selector on clusters"),
    OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), description="default json"),
    OpenApiParameter("table", OpenApiTypes.STR, description="csv: which table (default: the first)"),
    OpenApiParameter("group_by", OpenApiTypes.STR, description="delivery: label keys, comma-separated"),
    OpenApiParameter("expiring_days", OpenApiTypes.INT, description="compliance: waivers expiring within"),
]


class ReportView(APIView):
    """One report, built by ``fleet.reports.services`` (which checks the kind's role)."""

    required_roles = READ_ROLES

    @extend_schema(parameters=_PARAMETERS, responses={
        (200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.STR,
        (200, "application/pdf"): OpenApiTypes.BINARY})
    def get(self, request: Request, kind: str) -> HttpResponse:
        fmt = request.query_params.get("format", "json")
        if fmt not in FORMATS:
            raise ReportError(f"unknown format {fmt!r}: use json, csv or pdf", field="format")
        report = services.build(kind, request.query_params, user=request.user)
        if fmt == "json":
            return Response(report.as_dict())
        response = HttpResponse(render(report, fmt, request.query_params.get("table", "")),
                                content_type=CONTENT_TYPES[fmt])
        response["Content-Disposition"] = (f'attachment; filename="fleet-{kind}-{report.scope.since:%Y%m%d}-'
                                           f'{report.scope.until:%Y%m%d}.{fmt}"')
        return response
