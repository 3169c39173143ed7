"""The pipeline's steps, each a thin call into the service that owns the work.

prepare (gitops) -> render (gitops/render) -> gate (policy) -> dry_run, apply, verify
(kube) -> tag (gitops) -> record (inventory). Steps hand each other what they learn
through the run's :class:`Context`, and keep what a later run needs on the deployment
row, so any step can run again after a crash, on any worker.

A step's failure is an exception: :class:`StepFailed` for its own verdict on the
cluster (denied by policy, a rebase conflict, not healthy), any other
:class:`~fleet.core.errors.FleetError` from the services it calls; the pipeline
records both, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from fleet.audit import services as audit
from fleet.core.errors import FleetError
from fleet.core.objects import Key, Manifest, ObjectRef
from fleet.gitops import services as gitops
from fleet.inventory.models import Cluster, Release
from fleet.kube import services as kube
from fleet.kube.apply import Observed
from fleet.kube.diff import DiffReport
from fleet.kube.errors import KubeError, Timeout, Unreachable
from fleet.kube.objects import ref_of
from fleet.policy import services as policy
from fleet.policy.choices import DecisionSource
from fleet.render.services import RenderResult
from fleet.rollouts.deployed import release_of_tag
from fleet.rollouts.models import ClusterDeployment, Rollout
from fleet.rollouts.states import DeploymentState as D

RECHECK_TIMEOUT = 5.0

# What the rendered set goes through before any step uses it: rules of packages above
# the pipeline about what Fleet may apply, installed at start-up (drift's ignore rules,
# so a field hidden from the diff is not applied either and nobody fights over it).
ObjectFilter = Callable[[Cluster, list[dict[str, Any]]], list[dict[str, Any]]]
OBJECT_FILTERS: list[ObjectFilter] = []
# Told the whole rendered set (before any filter) of the commit a deployment prepared
# (``local_sha``), installed at start-up: drift keeps it as that commit's desired set, so
# its scan right after the deployment renders nothing and runs no git.
RENDERED_HOOKS: list[Callable[[ClusterDeployment, RenderResult], None]] = []


class StepFailed(FleetError):
    """A step's own verdict on the cluster; the deployment ends in ``state`` (its code)."""

    domain = "rollout"

    def __init__(self, message: str, *, state: str = D.FAILED, detail: dict[str, Any] | None = None):
        super().__init__(message, code=state, detail=detail)
        self.state = state


@dataclass
class Context:
    """One run of a deployment's pipeline: the held workspace, and what its steps learnt.

    Each field is this run's knowledge only. A resumed run, perhaps on another worker,
    starts with the defaults and re-derives what it needs (checks the workspace out
    again, renders again); what must outlive a run is on the deployment row
    (``local_sha``, ``applied_refs``, ``policy``, ``tag``).
    """

    deployment: ClusterDeployment
    workspace: gitops.Session
    checked_out: bool = False  # the workspace holds the commit this deployment prepared
    objects: list[dict[str, Any]] | None = None  # the rendered manifests, once rendered
    # The live state of ``objects`` as this run's diff read it (the gate's, else the
    # dry-run's): while the run holds the workspace nobody else writes the applyset, so
    # the apply need not read it again.
    observed: Observed | None = None
    dry_run_passed: bool = False  # the API server accepted ``objects`` in this run's dry-run
    applied: dict[Key, Manifest] | None = None  # the apply's answers: each object right after its write


def _save(deployment: ClusterDeployment, **fields: Any) -> None:
    ClusterDeployment.objects.filter(pk=deployment.pk).update(**fields)
    for name, value in fields.items():
        setattr(deployment, name, value)


def _checkout(context: Context) -> dict[str, Any]:
    """Put the workspace where this deployment wants it: the release, or a rollback's tag."""
    deployment, workspace = context.deployment, context.workspace
    if deployment.target_tag:
        record = workspace.rollback_tree(deployment.target_tag)
        detail = {"rollback_to": record.tag, "local_sha": record.local_sha}
    else:
        result = workspace.prepare(deployment.rollout.release)
        if not result.ok:
            state = D.CONFLICT if result.reason == "conflict" else D.FAILED
            raise StepFailed(result.error or result.reason, state=state, detail=result.as_dict())
        detail = result.as_dict()
    context.checked_out = True
    return detail


def prepare(context: Context) -> dict[str, Any]:
    deployment, workspace = context.deployment, context.workspace
    detail = _checkout(context)  # fetches internal, tags included: history needs no fetch of its own
    history = workspace.history(refresh=False)
    head = workspace.head()
    _save(deployment, local_sha=head, previous_tag=history[0].tag if history else "")
    return {**detail, "head": head}


def _ensure_checkout(context: Context) -> None:
    """After a resume on another worker the workspace may not hold the prepared commit."""
    if not context.checked_out and context.workspace.head() != context.deployment.local_sha:
        _checkout(context)
    context.checked_out = True


def _objects(context: Context) -> list[dict[str, Any]]:
    if context.objects is None:
        _ensure_checkout(context)
        context.objects = _to_apply(context.deployment, context.workspace.render().objects)
    return context.objects


def _to_apply(deployment: ClusterDeployment, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rendered set as this deployment applies it: a heal only its drifted objects,
    then every installed :data:`OBJECT_FILTERS` rule."""
    if deployment.heal_refs:
        wanted = {ObjectRef(**ref).key for ref in deployment.heal_refs}
        objects = [obj for obj in objects if ref_of(obj).key in wanted]
    for keep in OBJECT_FILTERS:
        objects = keep(deployment.cluster, objects)
    return objects


def _is_heal(deployment: ClusterDeployment) -> bool:
    return deployment.rollout.kind == Rollout.Kind.HEAL


def render(context: Context) -> dict[str, Any]:
    _ensure_checkout(context)
    result = context.workspace.render()
    for hook in RENDERED_HOOKS:
        hook(context.deployment, result)
    context.objects = _to_apply(context.deployment, result.objects)
    return {"objects": len(context.objects), "content_hash": result.content_hash, "cached": result.cached}


def deployed_objects(report: DiffReport, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What runs now, for the policy's change input, from a diff against the live cluster."""
    present = {diff.ref.key for diff in report.objects if diff.state in ("changed", "unchanged")}
    deployed = [obj for obj in objects if ref_of(obj).key in present]
    deployed += [_stub(diff.ref) for diff in report.objects if diff.state == "removed"]
    return deployed


def live_objects(report: DiffReport) -> dict[Key, Manifest]:
    """The live objects a diff read (desired ones on the cluster, and what a prune deletes),
    by key, as a list of them would give them: with their apiVersion and kind."""
    return {diff.ref.key: {**diff.live, "apiVersion": diff.ref.api_version, "kind": diff.ref.kind}
            for diff in report.objects if diff.live is not None}


def _stub(ref: ObjectRef) -> dict[str, Any]:
    metadata = {"name": ref.name, **({"namespace": ref.namespace} if ref.namespace else {})}
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def _previous_release(cluster: Cluster, release: Release) -> Release | None:
    last = (ClusterDeployment.objects.filter(cluster=cluster, state=D.SUCCEEDED)
            .exclude(rollout__release=release).select_related("rollout__release__channel")
            .order_by("-finished_at").first())
    return last.rollout.release if last else None


def gate(context: Context) -> dict[str, Any]:
    deployment = context.deployment
    cluster, release = deployment.cluster, deployment.rollout.release
    objects = _objects(context)
    sets = policy.applicable_sets(cluster.labels)
    # The change input needs the live state: only when a policy runs. The diff's reading
    # (the release's objects and what the apply prunes) is also what the reviews see as
    # live, so the gate lists none of those kinds across the cluster.
    deployed, known = [], None
    if sets:
        report = kube.diff(cluster, objects)
        deployed = deployed_objects(report, objects)
        known = live_objects(report)
        context.observed = report.observed
    verdict, decision = policy.evaluate(objects, cluster=cluster, release=release,
                                        release_from=_previous_release(cluster, release), deployed=deployed,
                                        policy_sets=sets, source=DecisionSource.PIPELINE, live=True, known=known)
    summary = {"allowed": verdict.allowed, "decision": decision.pk if decision else None,
               "bundle_hash": verdict.bundle_hash, "counts": verdict.counts(),
               "violations": verdict.as_dict()["violations"][:50]}
    _save(deployment, policy=summary)
    if not verdict.allowed:
        raise StepFailed(f"denied by policy: {_first_denial(summary)}", state=D.BLOCKED, detail=summary)
    return summary


def _first_denial(summary: dict[str, Any]) -> str:
    for violation in summary["violations"]:
        if violation.get("enforcement") == "deny":  # a waived finding's enforcement is "waived"
            return f"{violation.get('rule')}: {violation.get('message')} ({violation.get('object')})"
    return "the gate failed closed"


def dry_run(context: Context) -> dict[str, Any]:
    """Dry-run what the apply will change. The live set is read first where the gate did
    not (no policy ran): one list per kind and namespace, which the apply then need not
    repeat, and which tells the objects live as desired already (this server admitted
    them as they are: they are not dry-run again)."""
    deployment, objects = context.deployment, _objects(context)
    if context.observed is None:
        context.observed = kube.diff(deployment.cluster, objects).observed
    result = kube.apply(deployment.cluster, objects, dry_run=True, prune=False, force=_is_heal(deployment),
                        observed=context.observed)
    context.dry_run_passed = True
    detail = {"objects": len(result.applied) + len(result.deferred) + len(result.unchanged),
              "unchanged": len(result.unchanged)}
    if context.observed is not None and not deployment.heal_refs:  # a heal of some objects prunes nothing
        detail["would_prune"] = len(context.observed.prunable)
    return detail


def apply(context: Context) -> dict[str, Any]:
    # Right after this run's own dry-run of the same objects, apply does not repeat it;
    # resumed on another worker (which did not see it pass), it does, and reads the live
    # set again itself.
    # A heal takes its fields back from whoever changed them (forced ownership) and, when
    # it re-applies only some objects, prunes nothing: the rest of the set is as deployed.
    deployment = context.deployment
    heal = _is_heal(deployment)
    try:
        result = kube.apply(deployment.cluster, _objects(context), validated=context.dry_run_passed,
                            force=heal, prune=not deployment.heal_refs, observed=context.observed)
    except KubeError as exc:
        partial = exc.detail.get("partial")
        if not partial or not partial["written"]:
            raise
        # Some objects reached the cluster: the record must say so, not only why it stopped.
        # The applyset's parent already lists every kind, so a retry or rollback prunes them.
        raise StepFailed(f"{exc}; partially applied: {partial['written']} of {partial['total']} objects "
                         "written before the failure, the others unconfirmed", detail=exc.as_dict()) from exc
    _save(deployment, applied_refs=[asdict(ref) for ref in result.applied])
    context.applied = result.live
    return {"applied": len(result.applied), "pruned": [str(ref) for ref in result.pruned]}


def _applied_refs(deployment: ClusterDeployment) -> list[ObjectRef]:
    return [ObjectRef(**ref) for ref in deployment.applied_refs]


def verify(context: Context) -> dict[str, Any]:
    """Health of what was applied: in the same run as the apply, its answers are assessed
    first, and only what is not healthy yet is watched; resumed, every object is read."""
    deployment = context.deployment
    report = kube.health(deployment.cluster, _applied_refs(deployment),
                         timeout=deployment.rollout.health_timeout_seconds, live=context.applied)
    detail = {"elapsed": round(report.elapsed, 2), "unhealthy": [h.as_dict() for h in report.unhealthy[:20]]}
    if not report.ok:
        first = report.unhealthy[0]
        raise StepFailed(f"not healthy after {report.elapsed:.0f}s: {first.ref}: {first.reason}", detail=detail)
    return detail


def tag(context: Context) -> dict[str, Any]:
    deployment = context.deployment
    _ensure_checkout(context)
    rollout = deployment.rollout
    # A heal re-deploys the tag HEAD already has: the tag is reused and nothing is pushed,
    # so commits made on the branch since that deployment stay on internal untouched.
    name = context.workspace.tag_deployment({
        "rollout": rollout.pk, "kind": rollout.kind, "deployment": deployment.pk,
        "release": f"{rollout.release.channel.name} {rollout.release.version}",
        "author": rollout.author.get_username()}, push=not _is_heal(deployment))
    _save(deployment, tag=name)
    return {"tag": name}


def record(context: Context) -> dict[str, Any]:
    """The cluster now follows the channel of the release it runs (an upgrade may cross
    channels). A rollback carries the release it rolls back, and a heal re-deploys a tag,
    but each runs the release of the tag it (re)deployed: the cluster follows that one's channel."""
    deployment = context.deployment
    release = deployment.rollout.release
    if deployment.rollout.kind != Rollout.Kind.DEPLOY:
        release = release_of_tag(deployment.cluster, deployment.tag or deployment.target_tag)
        if release is None:  # the tag's first deployment is gone (retention): keep the channel as it is
            return {"channel": deployment.cluster.channel.name}
    cluster, channel = deployment.cluster, release.channel
    if cluster.channel_id != channel.pk:
        audit.update(cluster, {"channel": channel})
    return {"channel": channel.name}


PIPELINE = [("prepare", prepare), ("render", render), ("gate", gate), ("dry_run", dry_run),
            ("apply", apply), ("verify", verify), ("tag", tag), ("record", record)]


def recheck_health(deployment: ClusterDeployment) -> str | None:
    """During bake: None while every applied object stays healthy, else the first problem.

    A cluster the network hides (:class:`Unreachable`, or no answer in time) has shown
    no regression of what was applied: that error is raised, for the bake to retry at
    its next recheck (``orchestrator._bake``), not returned as a problem.
    """
    try:
        report = kube.health(deployment.cluster, _applied_refs(deployment), timeout=RECHECK_TIMEOUT)
    except (Unreachable, Timeout):
        raise
    except KubeError as exc:
        return str(exc)
    if report.ok:
        return None
    first = report.unhealthy[0]
    return f"{first.ref}: {first.reason}"
