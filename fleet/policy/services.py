"""The policy gate's domain operations, called by the API, the CLI and the pipeline.

``evaluate`` is the gate: it picks the policy sets whose selector matches the
cluster, applies live waivers, runs the configured engine and (unless asked not to)
stores the verdict as an audited ``PolicyDecision``. Bundles are parsed once per
content hash and kept, so a decision never re-reads policy text.

With ``live=True`` (the pipeline and its preview) the gate reads the target cluster
(``cluster.py``) so Gatekeeper templates see what Gatekeeper on that cluster would:
``UPDATE`` reviews with the live ``oldObject``, ``DELETE`` reviews of what the apply
prunes (the ``deployed`` objects not in the release), Namespaces, Fleet's identity and
``data.inventory``. Without it (CI: ``policy check``, the API) nothing is read from any
cluster: the inventory is the release plus ``inventory``, as ``gator test`` has it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.db import transaction
from django.utils import timezone

from fleet.audit import services as audit
from fleet.core.labels import parse_selector
from fleet.core.objects import Key
from fleet.inventory.models import Cluster, Release
from fleet.policy import cluster as cluster_state
from fleet.policy import gate
from fleet.policy.bundle import Bundle, bundle_hash, load_bundle, read_directory
from fleet.policy.choices import DecisionSource, Mode
from fleet.policy.engines import get_engine
from fleet.policy.engines.base import Engine
from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper.templates import GATOR_POINT, WEBHOOK_POINT
from fleet.policy.inputs import Admission, build_input, placed_key, release_admission
from fleet.policy.models import PolicyDecision, PolicySet, Waiver

_BUNDLES: OrderedDict[str, Bundle] = OrderedDict()
_BUNDLES_LOCK = threading.Lock()
_BUNDLE_CACHE_SIZE = 128


def bundle_of(files: Mapping[str, str]) -> Bundle:
    """The checked bundle for these files, parsed once per content hash."""
    digest = bundle_hash(files)
    with _BUNDLES_LOCK:
        if digest in _BUNDLES:
            _BUNDLES.move_to_end(digest)
            return _BUNDLES[digest]
    bundle = load_bundle(files)
    with _BUNDLES_LOCK:
        _BUNDLES[digest] = bundle
        while len(_BUNDLES) > _BUNDLE_CACHE_SIZE:
            _BUNDLES.popitem(last=False)
    return bundle


def check_files(files: Mapping[str, str]) -> Bundle:
    """Load and compile ``files`` with the configured engine, before anyone stores them,
    so a set that cannot run is refused with the file and line instead of failing later."""
    bundle = bundle_of(files)
    get_engine().prepare(bundle)
    return bundle


def spec_of(policy_set: PolicySet) -> gate.PolicySetSpec:
    try:
        bundle, error = bundle_of(policy_set.files), None
    except PolicyError as exc:  # stored before a stricter check, or edited in the database
        bundle, error = None, exc
    return gate.PolicySetSpec(policy_set.name, policy_set.mode, policy_set.fail_open, bundle, error,
                              review_deletes=policy_set.review_deletes)


def applicable_sets(labels: Mapping[str, str]) -> list[PolicySet]:
    return [s for s in PolicySet.objects.order_by("name") if parse_selector(s.selector).matches(labels)]


def live_waivers(now=None) -> list[gate.WaiverSpec]:
    now = now or timezone.now()
    return [gate.WaiverSpec(w.name, w.rule, w.object_pattern, w.cluster_selector, w.expires_at,
                            w.policy_set.name if w.policy_set else "")
            for w in Waiver.objects.filter(expires_at__gt=now).select_related("policy_set")]


def release_document(release: Release | None) -> dict[str, str] | None:
    if release is None:
        return None
    return {"channel": release.channel.name, "version": release.version, "sha": release.upstream_sha}


def cluster_document(cluster: Cluster | None, *, name: str = "",
                     labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    if cluster is not None:
        return {"name": cluster.name, "labels": dict(cluster.labels), "channel": cluster.channel.name}
    return {"name": name, "labels": dict(labels or {}), "channel": ""}


def evaluate(objects: list[dict[str, Any]], *, cluster: Cluster | None = None,
             cluster_name: str = "", labels: Mapping[str, str] | None = None,
             release: Release | None = None, release_from: Release | None = None,
             deployed: Sequence[dict[str, Any]] | None = None,
             policy_sets: Sequence[PolicySet] | None = None, engine: Engine | None = None,
             source: str = DecisionSource.API, record: bool = True, live: bool = False,
             inventory: Sequence[dict[str, Any]] = (), dry_run: bool = False,
             known: Mapping[Key, dict[str, Any]] | None = None,
             ) -> tuple[gate.Verdict, PolicyDecision | None]:
    """Run the gate; raises PolicyError only for bad *input* (not a Kubernetes object
    list, bad engine name) — policy and engine failures are part of the verdict. With
    ``live`` (and a ``cluster``) the cluster is read, and a KubeError reading it
    propagates; ``deployed`` then only says what the apply prunes, and ``known`` may
    give the live objects of both as the caller has just read them
    (``cluster.read_state``: they are not read again)."""
    engine = engine or get_engine()
    now = timezone.now()
    cluster_doc = cluster_document(cluster, name=cluster_name, labels=labels)
    if policy_sets is None:
        policy_sets = applicable_sets(cluster_doc["labels"])
    specs = [spec_of(s) for s in policy_sets]
    if live and cluster is not None and specs:
        deployed, admission, specs = _read_cluster(cluster, objects, list(deployed or []), specs, dry_run, known)
    else:
        admission = release_admission(objects, inventory, dry_run=dry_run)
    data = build_input(objects, cluster=cluster_doc, release_from=release_document(release_from),
                       release_to=release_document(release), deployed=deployed, admission=admission)
    verdict = gate.evaluate(specs, data, engine, waivers=live_waivers(now), now=now,
                            point=WEBHOOK_POINT if source == DecisionSource.PIPELINE else GATOR_POINT)
    decision = record_decision(verdict, data.cluster["name"], cluster, release, release_from,
                               len(objects), source) if record else None
    return verdict, decision


def _read_cluster(cluster: Cluster, objects: list[dict[str, Any]], deployed: list[dict[str, Any]],
                  specs: list[gate.PolicySetSpec], dry_run: bool, known: Mapping[Key, dict[str, Any]] | None,
                  ) -> tuple[list[dict[str, Any]], Admission, list[gate.PolicySetSpec]]:
    """The live state for the reviews: what runs now (the live objects of the release
    and of what the apply prunes), the admission context, and the sets whose synced
    kinds could not be read marked as failed."""
    bundles = [spec.bundle for spec in specs if spec.bundle is not None]
    state = cluster_state.read_state(cluster, objects, deployed, cluster_state.sync_kinds(bundles), known=known)

    release_keys = [placed_key(obj, state.namespaced) for obj in objects]
    pruned = sorted({placed_key(obj, state.namespaced) for obj in deployed} - set(release_keys))
    now_running = [state.live[key] for key in release_keys if key in state.live]
    now_running += [state.live[key] for key in pruned if key in state.live]
    excluded = tuple(ns for bundle in bundles for ns in bundle.sync.excluded_from("sync"))
    admission = cluster_state.admission_of(state, objects, pruned, sync_excluded=excluded, dry_run=dry_run)
    checked = []
    for spec in specs:
        error = state.sync_error(spec.bundle) if spec.bundle is not None else None
        checked.append(replace(spec, load_error=error) if error else spec)
    return now_running, admission, checked


def record_decision(verdict: gate.Verdict, cluster_name: str, cluster: Cluster | None,
                    release: Release | None, release_from: Release | None, object_count: int,
                    source: str) -> PolicyDecision:
    result = verdict.as_dict()
    decision = PolicyDecision(
        cluster=cluster, cluster_name=cluster_name, release=release, release_from=release_from,
        allowed=verdict.allowed, engine=verdict.engine, bundle_hash=verdict.bundle_hash,
        policy_sets=result["sets"], violations=result["violations"], errors=result["errors"],
        object_count=object_count, elapsed_ms=verdict.elapsed_ms, source=source)
    return audit.create(decision, metadata={"allowed": verdict.allowed, "counts": verdict.counts()})


def import_policy_set(name: str, path: Path, *, selector: str = "", mode: str = Mode.ENFORCE,
                      fail_open: bool = False, description: str = "",
                      review_deletes: bool = False) -> tuple[PolicySet, bool]:
    """Create or update the set ``name`` from a directory of policy files (audited);
    refuses files that do not load, naming the file and line."""
    files = read_directory(path)
    check_files(files)
    fields = {"files": files, "bundle_hash": bundle_hash(files), "selector": selector,
              "mode": mode, "fail_open": fail_open, "review_deletes": review_deletes, "description": description,
              "source": str(path)}
    with transaction.atomic():
        existing = PolicySet.objects.select_for_update().filter(name=name).first()
        if existing is None:
            return audit.create(PolicySet(name=name, **fields)), True
        return audit.update(existing, fields), False
