"""The fleet-wide questions asked of API servers' audit events: who changed what, where and
when; what changed outside GitOps; who changes each cluster most; and, for drift, which
writes touched one object in a window.

Every query takes the ``user`` asking (``None``: the machine, for the CLI and tasks) and
checks the viewer role here, so the API, the console and the CLI refuse the same people.
Results come newest first; the API pages them by keyset (time, id), so the cost of a page
does not grow with the table or the page number.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from fleet.accounts.roles import Role
from fleet.clusteraudit import access
from fleet.clusteraudit.errors import ClusterAuditError
from fleet.clusteraudit.models import WRITE_VERBS, ClusterAuditEvent
from fleet.core.labels import LabelError, parse_selector
from fleet.core.objects import ObjectRef
from fleet.inventory.models import Cluster

DEFAULT_PERIOD = datetime.timedelta(days=1)
MAX_PERIOD = datetime.timedelta(days=366)
MAX_LIST = 100  # values in one comma-separated filter
_VERSIONED = re.compile(r"-v\d+(\.\d+)*$")


def require_viewer(user) -> None:
    access.require(user, Role.VIEWER, "reading cluster audit events")


def parse_time(text: str, field_name: str) -> datetime.datetime:
    """An ISO 8601 time or date (its midnight); UTC when it names no zone."""
    try:
        value = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ClusterAuditError(f"{text[:40]!r} is not an ISO 8601 date or time", field=field_name) from None
    return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)


def _list(text: str, field_name: str) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    if len(values) > MAX_LIST:
        raise ClusterAuditError(f"at most {MAX_LIST} values", field=field_name)
    return values


@dataclass(frozen=True)
class EventFilter:
    """What to select: the period (default the last day), clusters (by label selector or
    name), who, which verbs, which objects; only changes, only changes outside GitOps."""

    since: datetime.datetime
    until: datetime.datetime
    selector: str = ""
    clusters: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()  # "deployments" or "deployments.apps"
    namespace: str | None = None
    name: str | None = None
    changes_only: bool = False
    outside_gitops: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, str], *, now: datetime.datetime | None = None) -> EventFilter:
        """From API query parameters or CLI options; a bad one is named by its field."""
        now = now or timezone.now()
        for key, value in params.items():
            if isinstance(value, str) and "\x00" in value:
                raise ClusterAuditError("contains a NUL character", field=key)
        until = parse_time(params["until"], "until") if params.get("until") else now
        since = parse_time(params["since"], "since") if params.get("since") else until - DEFAULT_PERIOD
        if since >= until:
            raise ClusterAuditError("the period is empty or reversed: since is not before until", field="until")
        if until - since > MAX_PERIOD:
            raise ClusterAuditError(f"a query covers at most {MAX_PERIOD.days} days", field="since")
        selector = (params.get("selector") or "").strip()
        try:
            parse_selector(selector)
        except LabelError as exc:
            raise ClusterAuditError(str(exc), field="selector") from None
        verbs = _list(params.get("verb") or "", "verb")
        unknown = [v for v in verbs if not v.isalpha()]
        if unknown:
            raise ClusterAuditError(f"{unknown[0][:40]!r} is not a verb", field="verb")
        return cls(since=since, until=until, selector=selector,
                   clusters=tuple(_list(params.get("cluster") or "", "cluster")),
                   users=tuple(_list(params.get("user") or "", "user")), verbs=tuple(verbs),
                   resources=tuple(_list(params.get("resource") or "", "resource")),
                   namespace=params.get("namespace"), name=params.get("name"),
                   changes_only=_flag(params.get("changes"), "changes"))


def _flag(text: str | None, field_name: str) -> bool:
    if text in (None, "", "false", "0", "no"):
        return False
    if text in ("true", "1", "yes"):
        return True
    raise ClusterAuditError("must be true or false", field=field_name)


def _filtered(f: EventFilter) -> QuerySet[ClusterAuditEvent]:
    q = Q(request_received_at__gte=f.since, request_received_at__lt=f.until)
    if f.selector:
        q &= Q(cluster__in=Cluster.objects.filter(parse_selector(f.selector).to_q("labels")).values("pk"))
    if f.clusters:
        q &= Q(cluster__in=Cluster.objects.filter(name__in=f.clusters).values("pk"))
    if f.users:
        q &= Q(username__in=f.users)
    if f.verbs:
        q &= Q(verb__in=f.verbs)
    if f.resources:
        by_resource = Q()
        for text in f.resources:
            resource, _, group = text.partition(".")
            by_resource |= Q(resource=resource, api_group=group) if group else Q(resource=resource)
        q &= by_resource
    if f.namespace is not None:
        q &= Q(namespace=f.namespace)
    if f.name is not None:
        q &= Q(name=f.name)
    if f.outside_gitops:
        q &= Q(outside_gitops=True)
    elif f.changes_only:
        q &= Q(verb__in=WRITE_VERBS, stage="ResponseComplete", response_code__gte=200, response_code__lt=300)
    return ClusterAuditEvent.objects.filter(q).select_related("cluster").order_by("-request_received_at", "-id")


def events(user, f: EventFilter) -> QuerySet[ClusterAuditEvent]:
    """Who did what, where and when: events matching ``f``, newest first."""
    require_viewer(user)
    return _filtered(f)


def outside_gitops(user, f: EventFilter) -> QuerySet[ClusterAuditEvent]:
    """Changes by identities other than Fleet's own and Kubernetes' components
    (``classify.py``), per cluster (``f.clusters``) or fleet-wide, newest first."""
    require_viewer(user)
    return _filtered(replace(f, outside_gitops=True))


@dataclass(frozen=True)
class ActorCount:
    cluster: str
    username: str
    actor: str
    changes: int
    outside_gitops: int
    last_at: datetime.datetime

    def as_dict(self) -> dict[str, object]:
        return {**self.__dict__, "last_at": self.last_at.isoformat()}


def top_actors(user, f: EventFilter, *, limit: int = 10) -> list[ActorCount]:
    """Per cluster, the identities that changed it most in the period (completed,
    successful writes), with how many of their changes were outside GitOps."""
    require_viewer(user)
    rows = (_filtered(replace(f, changes_only=True, outside_gitops=False))
            .order_by().values("cluster__name", "username", "actor")
            .annotate(changes=Count("id"), outside=Count("id", filter=Q(outside_gitops=True)),
                      last_at=Max("request_received_at")))
    by_cluster: dict[str, list[ActorCount]] = {}
    for row in rows:
        by_cluster.setdefault(row["cluster__name"], []).append(ActorCount(
            row["cluster__name"], row["username"], row["actor"], row["changes"], row["outside"], row["last_at"]))
    result = []
    for cluster in sorted(by_cluster):
        result += sorted(by_cluster[cluster], key=lambda a: (-a.changes, a.username))[:limit]
    return result


# -- drift's join ------------------------------------------------------------------------------

def resource_of(kind: str) -> str:
    """The resource (plural) of a kind, as Kubernetes guesses it when discovery is not at
    hand (apimachinery's ``UnsafeGuessKindToResource``): lower case, ``-s`` → ``-ses``,
    ``-y`` → ``-ies``, else ``+s``. Kinds with irregular plurals need ``resource=``."""
    lower = kind.lower()
    if not lower:
        return lower
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


def tool_of(user_agent: str) -> str:
    """The client a user agent names (``kubectl`` of ``kubectl/v1.36.3 (linux/amd64) …``): what
    the API server takes as the field manager of a write that names none. client-go names the
    program by its file, so a binary installed as ``kubectl-v1.36.3`` is kubectl too."""
    return _VERSIONED.sub("", user_agent.split("/", 1)[0].strip())


def manager_match(field_manager: str, event: ClusterAuditEvent) -> str | None:
    """How a drifted field's manager matches a write: ``exact`` (the write named that
    ``fieldManager``), ``user-agent`` (it named none, and its client is the manager or the
    manager's tool: ``kubectl-edit`` and ``kubectl`` are kubectl's), or None."""
    if event.field_manager:
        return "exact" if event.field_manager == field_manager else None
    tool = tool_of(event.user_agent)
    if tool and (field_manager == tool or field_manager.startswith(tool + "-")):
        return "user-agent"
    return None


@dataclass(frozen=True)
class Write:
    """One write to an object, for a drifted resource to link to: who, from where, with what."""

    event: ClusterAuditEvent
    match: str  # "exact", "user-agent" or "" (no field manager asked for)

    def describe(self) -> str:
        """``alice@corp via kubectl from 10.1.2.3 at 12:03:04`` (UTC)."""
        via = tool_of(self.event.user_agent) or self.event.field_manager or "an unknown client"
        where = f" from {', '.join(self.event.source_ips)}" if self.event.source_ips else ""
        return f"{self.event.username} via {via}{where} at {self.event.request_received_at:%Y-%m-%d %H:%M:%S} UTC"

    def as_dict(self) -> dict[str, object]:
        e = self.event
        return {"id": e.pk, "audit_id": e.audit_id, "at": e.request_received_at.isoformat(), "user": e.username,
                "groups": e.groups, "impersonated_user": e.impersonated_user, "verb": e.verb,
                "subresource": e.subresource, "field_manager": e.field_manager, "user_agent": e.user_agent,
                "source_ips": e.source_ips, "response_code": e.response_code, "actor": e.actor,
                "outside_gitops": e.outside_gitops, "match": self.match, "describe": self.describe()}


def writes_to(cluster: Cluster, ref: ObjectRef, since: datetime.datetime, until: datetime.datetime,
              field_manager: str | None = None, *, resource: str | None = None, user=None) -> list[Write]:
    """The completed, successful writes to ``ref`` on ``cluster`` in [since, until), newest
    first: what drift links a drifted resource to.

    ``field_manager`` (the manager that changed the drifted fields, from managedFields)
    keeps only the writes it matches (:func:`manager_match`), exact matches first.
    ``resource`` overrides the plural guessed from ``ref.kind`` (:func:`resource_of`).
    """
    require_viewer(user)
    rows = ClusterAuditEvent.objects.filter(
        cluster=cluster, api_group=ref.group, resource=resource or resource_of(ref.kind),
        namespace=ref.namespace, name=ref.name, request_received_at__gte=since, request_received_at__lt=until,
        verb__in=WRITE_VERBS, stage="ResponseComplete", response_code__gte=200, response_code__lt=300,
    ).order_by("-request_received_at", "-id")[:500]
    if field_manager is None:
        return [Write(e, "") for e in rows]
    matched = [Write(e, how) for e in rows if (how := manager_match(field_manager, e))]
    return sorted(matched, key=lambda w: w.match != "exact")  # stable: newest first within each
