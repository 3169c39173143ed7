"""REST endpoints for a cluster's repository: status, configuration, file commits,
rendered manifests and deployment history; and the repository credentials.

Each call is a thin wrapper over ``fleet.gitops.services`` (which audits the
writes); their errors (``GitOpsError``, ``RenderError``) answer through the API's one
error table. They run synchronously: each is a local git operation on a reused clone
plus one push, seconds at most; upgrades and deployments belong to rollouts.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.accounts.roles import Role
from fleet.api.viewsets import WRITE_ROLES, BaseModelViewSet
from fleet.audit import services as audit
from fleet.gitops import services
from fleet.gitops.commits import Author
from fleet.gitops.models import RepositoryCredential
from fleet.inventory.models import Cluster


class ParamsSerializer(serializers.Serializer):
    """The shape of the parameters; their rules are ``ClusterParams.parse``'s."""

    base = serializers.CharField(required=False)
    images = serializers.DictField(child=serializers.CharField(), required=False)
    replicas = serializers.DictField(child=serializers.IntegerField(), required=False)
    hostnames = serializers.DictField(child=serializers.CharField(), required=False)
    components = serializers.ListField(child=serializers.CharField(), required=False)


class ConfigureSerializer(ParamsSerializer):
    message = serializers.CharField(required=False, allow_blank=True, max_length=10_000)


class CommitSerializer(serializers.Serializer):
    files = serializers.DictField(child=serializers.CharField(allow_null=True, allow_blank=True,
                                                              trim_whitespace=False),
                                  allow_empty=False, help_text="path -> new content, or null to delete")
    message = serializers.CharField(max_length=10_000)


DeploymentRecordsSerializer = inline_serializer("DeploymentRecord", {
    **{name: serializers.CharField() for name in ("tag", "date", "cluster", "local_branch", "upstream_branch",
                                                    "upstream_sha", "local_sha", "backup_branch", "backup_remote",
                                                    "tagger")},
    "context": serializers.DictField()}, many=True)

CommitResultSerializer = inline_serializer("CommitResult", {
    "sha": serializers.CharField(), "changed": serializers.BooleanField(),
    "files": serializers.ListField(child=serializers.CharField())})


class ClusterRepoViewSet(viewsets.GenericViewSet):
    """``/gitops/{cluster}/…``: the cluster's repository, addressed by cluster name."""

    queryset = Cluster.objects.select_related("channel")
    lookup_field = "name"
    lookup_value_regex = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    required_roles = WRITE_ROLES
    serializer_class = ConfigureSerializer

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def status(self, request: Request, name: str) -> Response:
        return Response(services.status(self.get_object()).as_dict())

    @extend_schema(methods=["GET"], request=None, responses={200: ParamsSerializer})
    @extend_schema(methods=["PUT"], request=ConfigureSerializer, responses={200: CommitResultSerializer})
    @action(detail=True, methods=["get", "put"])
    def params(self, request: Request, name: str) -> Response:
        cluster = self.get_object()
        if request.method == "GET":
            params = services.read_params(cluster)
            return Response(params.as_dict() if params else {})  # never configured: no parameters
        data = request.data if isinstance(request.data, dict) else {}
        message = data.get("message", "")
        params = {k: v for k, v in data.items() if k != "message"}
        result = services.configure(cluster, params, Author.of(request.user), message=str(message))
        return Response(result.as_dict())

    @extend_schema(request=CommitSerializer, responses={201: CommitResultSerializer,
                                                         200: CommitResultSerializer})
    @action(detail=True, methods=["post"])
    def commits(self, request: Request, name: str) -> Response:
        payload = CommitSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        result = services.commit_files(self.get_object(), payload.validated_data["files"],
                                       Author.of(request.user), payload.validated_data["message"])
        code = status.HTTP_201_CREATED if result.changed else status.HTTP_200_OK
        return Response(result.as_dict(), status=code)

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def rendered(self, request: Request, name: str) -> Response:
        result = services.render(self.get_object())
        return Response({"content_hash": result.content_hash, "renderer": result.renderer,
                         "count": len(result.objects), "objects": result.objects})

    @extend_schema(request=None, responses={200: DeploymentRecordsSerializer})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request: Request, name: str) -> Response:
        """The cluster's deployments, newest first, from its deploy tags (a list, not a page)."""
        return Response([record.as_dict() for record in services.history(self.get_object())])


class RepositoryCredentialSerializer(serializers.ModelSerializer):
    secret = serializers.CharField(write_only=True, trim_whitespace=False, max_length=64 * 1024,
                                   help_text="Write-only: the HTTPS token or the SSH private key.")
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = RepositoryCredential
        fields = ["id", "name", "url_prefix", "kind", "username", "secret", "has_secret",
                  "created_at", "updated_at"]

    def get_has_secret(self, credential: RepositoryCredential) -> bool:
        return bool(credential.secret_encrypted)

    def get_fields(self) -> dict[str, Any]:
        fields = super().get_fields()
        if self.instance is not None:  # updates may leave the secret as it is
            fields["secret"].required = False
        return fields


class RepositoryCredentialViewSet(BaseModelViewSet):
    """Credentials for git remotes; only admins change them, and nobody reads a secret."""

    queryset = RepositoryCredential.objects.all()
    serializer_class = RepositoryCredentialSerializer
    required_roles = {"read": Role.VIEWER, "write": Role.ADMIN}
    filterset_fields = ["kind"]
    ordering_fields = ["name", "url_prefix"]

    def create_object(self, data: dict[str, Any]) -> RepositoryCredential:
        secret = data.pop("secret")
        credential = RepositoryCredential(**data)
        credential.set_secret(secret)
        return audit.create(credential)

    def update_object(self, instance: RepositoryCredential, data: dict[str, Any]) -> RepositoryCredential:
        secret = data.pop("secret", None)
        changed: list[str] = []
        if secret is not None and secret != instance.get_secret():
            instance.set_secret(secret)
            changed.append("secret_encrypted")
        return audit.update(instance, data, secrets_changed=changed)
