"""The pipeline's steps, each a thin call into the service that owns the work.

prepare (gitops) -> render (gitops/render) -> gate (policy) -> dry_run, apply, verify
(kube) -> tag (gitops) -> record (inventory). Steps read and write only what the
deployment row and the services keep, so any step can run again after a crash.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from fleet.audit import services as audit
from fleet.gitops import services as gitops
from fleet.gitops.errors import GitOpsError
from fleet.inventory.models import Cluster, Release
from fleet.kube import services as kube
from fleet.kube.diff import DiffReport
from fleet.kube.errors import KubeError
from fleet.core.objects import ObjectRef
from fleet.kube.objects import ref_of
from fleet.policy import services as policy
from fleet.policy.choices import DecisionSource
from fleet.policy.errors import PolicyError
from fleet.render.errors import RenderError
from fleet.rollouts.models import ClusterDeployment
from fleet.rollouts.stepbase import Context, StepFailed
from fleet.rollouts.states import DeploymentState as D

RECHECK_TIMEOUT = 5.0
EXPECTED = (GitOpsError, RenderError, KubeError, PolicyError)


@contextmanager
def workspace_session(deployment: ClusterDeployment) -> Iterator[None]:
    """Hold the cluster's workspace for the whole run: no other job moves it between
    the upgrade and the tag. Taking it clones on first use, which may fail: the
    pipeline records any failure here as a failed prepare."""
    with gitops.locked(deployment.cluster):
        yield


def _save(deployment: ClusterDeployment, **fields: Any) -> None:
    ClusterDeployment.objects.filter(pk=deployment.pk).update(**fields)
    for name, value in fields.items():
        setattr(deployment, name, value)


def expected_failure(exc: Exception) -> StepFailed:
    """A service's own error (one of ``EXPECTED``) as a failed step, with its message."""
    return StepFailed(str(exc), detail=getattr(exc, "as_dict", lambda: {})())


def _expected(step):
    """Turn a service's own error into a failed step with its message."""
    def wrapped(context: Context) -> dict[str, Any]:
        try:
            return step(context)
        except EXPECTED as exc:
            raise expected_failure(exc) from None
    wrapped.__name__ = step.__name__
    return wrapped


def _checkout(deployment: ClusterDeployment) -> dict[str, Any]:
    """Put the workspace where this deployment wants it: the release, or a rollback's tag."""
    cluster, release = deployment.cluster, deployment.rollout.release
    if deployment.target_tag:
        record = gitops.rollback_tree(cluster, deployment.target_tag)
        return {"rollback_to": record.tag, "local_sha": record.local_sha}
    result = gitops.prepare(cluster, release)
    if not result.ok:
        state = D.CONFLICT if result.reason == "conflict" else D.FAILED
        raise StepFailed(result.error or result.reason, state=state, detail=result.as_dict())
    return result.as_dict()


@_expected
def prepare(context: Context) -> dict[str, Any]:
    deployment = context.deployment
    detail = _checkout(deployment)  # fetches internal, tags included: history needs no fetch of its own
    history = gitops.history(deployment.cluster, refresh=False)
    head = gitops.head(deployment.cluster)
    _save(deployment, local_sha=head, previous_tag=history[0].tag if history else "")
    return {**detail, "head": head}


def _ensure_checkout(context: Context) -> None:
    """After a resume on another worker the workspace may not hold the prepared commit."""
    deployment = context.deployment
    if context.cache.get("checked") or gitops.head(deployment.cluster) == deployment.local_sha:
        context.cache["checked"] = True
        return
    _checkout(deployment)
    context.cache["checked"] = True


def _objects(context: Context) -> list[dict[str, Any]]:
    if "objects" not in context.cache:
        _ensure_checkout(context)
        context.cache["objects"] = gitops.render(context.deployment.cluster).objects
    return context.cache["objects"]


@_expected
def render(context: Context) -> dict[str, Any]:
    _ensure_checkout(context)
    result = gitops.render(context.deployment.cluster)
    context.cache["objects"] = result.objects
    return {"objects": len(result.objects), "content_hash": result.content_hash}


def _deployed(report: DiffReport, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What runs now, for the policy's change input, from a diff against the live cluster."""
    present = {diff.ref.key for diff in report.objects if diff.state in ("changed", "unchanged")}
    deployed = [obj for obj in objects if ref_of(obj).key in present]
    deployed += [_stub(diff.ref) for diff in report.objects if diff.state == "removed"]
    return deployed


def _stub(ref: ObjectRef) -> dict[str, Any]:
    metadata = {"name": ref.name, **({"namespace": ref.namespace} if ref.namespace else {})}
    return {"apiVersion": ref.api_version, "kind": ref.kind, "metadata": metadata}


def _previous_release(cluster: Cluster, release: Release) -> Release | None:
    last = (ClusterDeployment.objects.filter(cluster=cluster, state=D.SUCCEEDED)
            .exclude(rollout__release=release).select_related("rollout__release__channel")
            .order_by("-finished_at").first())
    return last.rollout.release if last else None


@_expected
def gate(context: Context) -> dict[str, Any]:
    deployment = context.deployment
    cluster, release = deployment.cluster, deployment.rollout.release
    objects = _objects(context)
    sets = policy.applicable_sets(cluster.labels)
    # The change input needs the live state (one read per object): only when a policy runs.
    deployed = []
    if sets:
        report = kube.diff(cluster, objects)
        deployed = _deployed(report, objects)
        context.cache["would_prune"] = sum(1 for diff in report.objects if diff.state == "removed")
    verdict, decision = policy.evaluate(objects, cluster=cluster, release=release,
                                        release_from=_previous_release(cluster, release), deployed=deployed,
                                        policy_sets=sets, source=DecisionSource.PIPELINE)
    summary = {"allowed": verdict.allowed, "decision": decision.pk if decision else None,
               "bundle_hash": verdict.bundle_hash, "counts": verdict.counts(),
               "violations": verdict.as_dict()["violations"][:50]}
    _save(deployment, policy=summary)
    if not verdict.allowed:
        raise StepFailed(f"denied by policy: {_first_denial(summary)}", state=D.BLOCKED, detail=summary)
    return summary


def _first_denial(summary: dict[str, Any]) -> str:
    for violation in summary["violations"]:
        if violation.get("enforcement") == "deny" and not violation.get("waived"):
            return f"{violation.get('rule')}: {violation.get('message')} ({violation.get('object')})"
    return "the gate failed closed"


@_expected
def dry_run(context: Context) -> dict[str, Any]:
    # What the apply will prune it lists again itself (and the gate's diff counted, when a
    # policy ran): listing every kind of the set here as well cost a dozen reads per cluster.
    result = kube.apply(context.deployment.cluster, _objects(context), dry_run=True, prune=False)
    context.cache["dry_run_passed"] = True
    return {"objects": len(result.applied) + len(result.deferred),
            **({"would_prune": context.cache["would_prune"]} if "would_prune" in context.cache else {})}


@_expected
def apply(context: Context) -> dict[str, Any]:
    # Right after this job's own dry-run of the same objects, apply does not repeat it;
    # resumed on another worker (which did not see it pass), it does.
    result = kube.apply(context.deployment.cluster, _objects(context),
                        validated=context.cache.get("dry_run_passed", False))
    return {"applied": len(result.applied), "pruned": [str(ref) for ref in result.pruned],
            "refs": [_ref_dict(ref) for ref in result.applied]}


def _ref_dict(ref: ObjectRef) -> dict[str, str]:
    return {"group": ref.group, "version": ref.version, "kind": ref.kind,
            "namespace": ref.namespace, "name": ref.name}


def _applied_refs(deployment: ClusterDeployment) -> list[ObjectRef]:
    refs = deployment.steps.get("apply", {}).get("detail", {}).get("refs", [])
    return [ObjectRef(**ref) for ref in refs]


@_expected
def verify(context: Context) -> dict[str, Any]:
    deployment = context.deployment
    report = kube.health(deployment.cluster, _applied_refs(deployment),
                         timeout=deployment.rollout.health_timeout_seconds)
    detail = {"elapsed": round(report.elapsed, 2), "unhealthy": [h.as_dict() for h in report.unhealthy[:20]]}
    if not report.ok:
        first = report.unhealthy[0]
        raise StepFailed(f"not healthy after {report.elapsed:.0f}s: {first.ref}: {first.reason}", detail=detail)
    return detail


@_expected
def tag(context: Context) -> dict[str, Any]:
    deployment = context.deployment
    _ensure_checkout(context)
    rollout = deployment.rollout
    name = gitops.tag_deployment(deployment.cluster, {
        "rollout": rollout.pk, "kind": rollout.kind, "deployment": deployment.pk,
        "release": f"{rollout.release.channel.name} {rollout.release.version}",
        "author": rollout.author.get_username()})
    _save(deployment, tag=name)
    return {"tag": name}


def record(context: Context) -> dict[str, Any]:
    """The cluster now follows the release's channel (an upgrade may cross channels)."""
    deployment = context.deployment
    cluster, channel = deployment.cluster, deployment.rollout.release.channel
    if cluster.channel_id != channel.pk:
        audit.update(cluster, {"channel": channel})
    return {"channel": channel.name}


PIPELINE = [("prepare", prepare), ("render", render), ("gate", gate), ("dry_run", dry_run),
            ("apply", apply), ("verify", verify), ("tag", tag), ("record", record)]


def recheck_health(deployment: ClusterDeployment) -> str | None:
    """During bake: None while every applied object stays healthy, else the first problem."""
    try:
        report = kube.health(deployment.cluster, _applied_refs(deployment), timeout=RECHECK_TIMEOUT)
    except KubeError as exc:
        return str(exc)
    if report.ok:
        return None
    first = report.unhealthy[0]
    return f"{first.ref}: {first.reason}"


def preview_cluster(cluster: Cluster, release: Release) -> dict[str, Any]:
    """What a deployment would do, computed in the workspace and reset afterwards:
    nothing is committed, pushed or applied."""
    outcome: dict[str, Any] = {"cluster": cluster.name}
    try:
        with gitops.locked(cluster):
            try:
                result = gitops.prepare(cluster, release)
                outcome["rebase"] = {"outcome": "clean" if result.ok else result.reason,
                                     "conflicts": list(result.conflicts), "error": result.error}
                if not result.ok:
                    return outcome
                objects = gitops.render(cluster).objects
                report = kube.diff(cluster, objects)
                verdict, _ = policy.evaluate(objects, cluster=cluster, release=release,
                                             deployed=_deployed(report, objects), record=False)
                outcome["policy"] = {"allowed": verdict.allowed, "counts": verdict.counts(),
                                     "violations": verdict.as_dict()["violations"][:50]}
                outcome["diff"] = {state: sum(d.state == state for d in report.objects)
                                   for state in ("added", "changed", "removed", "unchanged")}
                outcome["diff"]["objects"] = [d.as_dict() for d in report.drifted[:100]]
            finally:
                gitops.reset(cluster)
    except EXPECTED as exc:
        outcome["error"] = str(exc)
    return outcome
