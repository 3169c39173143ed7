"""Benchmark: drift scans of a fleet against a ``kubectl diff`` loop, on real API servers.

    .venv/bin/python -m tests.benchmarks.drift_bench [--servers 2] [--clusters 100] [--logical 1000]

Brings up ``--servers`` local clusters (tests/dev: real kube-apiservers and etcd) and
registers ``--logical`` inventory clusters on them (each with its own namespace and
ApplySet, 20 objects: a Namespace, ConfigMaps, Secrets, Services, Deployments), applied
by Fleet's adapter and recorded as deployed (a succeeded deployment and its desired set
in the cache, as a real deployment leaves them). Then, in the same run:

1. fleet scan of the first ``--clusters`` clusters end to end (desired from the cache,
   live reads, diff, DB writes) against a sequential ``kubectl diff --server-side``
   loop over the same objects (target >= 10x);
2. the requests of an unchanged cluster's scan (target: one list per kind and
   namespace, no git, no kustomize: both are trapped and counted);
3. a scan of all ``--logical`` clusters (target <= 60 s) and the control plane's CPU
   (kube-apiservers and etcd, from /proc) per cluster scan;
4. time from a ``kubectl`` edit to the drift showing in the API: event-driven (the
   watches of ``drift.watch``), periodic (a beat loop in process with ``--interval``)
   and on demand (``POST …/scan``).

Medians over ``--rounds``. A dedicated database (``<name>_drift_bench``), dropped first.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from tests.benchmarks.support import bench_environment


def bench_app(fleet_app, ns: str, objects: int) -> list[dict[str, Any]]:
    """The kube tests' application, made cheap to hold by the thousand: headless Services
    (a thousand clusters' Services would exhaust the local service IP range) and
    Deployments at zero replicas (no pods: the scan, not the scheduler, is measured)."""
    app = fleet_app(ns, objects)
    for obj in app:
        if obj["kind"] == "Service":
            obj["spec"]["clusterIP"] = "None"
        elif obj["kind"] == "Deployment":
            obj["spec"]["replicas"] = 0
    return app


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (and their finished children), from /proc."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15]) / tick
    return total


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--logical", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kubectl-rounds", type=int, default=1, help="rounds of the (slow) kubectl loop")
    parser.add_argument("--interval", type=int, default=30, help="scan interval for the latency phase (s)")
    parser.add_argument("--latency-samples", type=int, default=3)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    bench_environment("_drift_bench", tmp, FLEET_DEV_TOOLS="true", FLEET_DRIFT_INTERVAL=str(args.interval),
                      FLEET_LOG_LEVEL="warning")
    run(args, tmp)


def run(args: argparse.Namespace, tmp: Path) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.test import APIClient

    from fleet.accounts.models import ApiToken
    from fleet.core import context
    from fleet.dev.localfleet.fleet import LocalFleet
    from fleet.drift import desired as desired_state
    from fleet.drift import scan, services
    from fleet.drift.models import DesiredSet, DriftScan
    from fleet.gitops import git as gitmod
    from fleet.gitops import services as gitops
    from fleet.inventory.credentials import ClusterCredentials
    from fleet.inventory.models import Channel, Cluster, Release
    from fleet.kube import services as kube
    from fleet.kube.client import client_for
    from fleet.render import services as render
    from fleet.rollouts.models import ClusterDeployment, Rollout, Wave
    from fleet.toolchain.build import ensure_binaries
    from tests.kube.manifests import fleet_app as kube_app

    def fleet_app(ns: str, objects: int) -> list[dict[str, Any]]:
        return bench_app(kube_app, ns, objects)

    kubectl = ensure_binaries(["kubectl"])["kubectl"]
    fleet = LocalFleet(tmp / "localfleet")
    trapped = {"git": 0, "render": 0}
    real_git_run, real_render = gitmod.Git.run, render.render_dir

    def count_git(self, *a, **k):
        trapped["git"] += 1
        return real_git_run(self, *a, **k)

    def count_render(*a, **k):
        trapped["render"] += 1
        return real_render(*a, **k)

    gitmod.Git.run, render.render_dir = count_git, count_render
    gitops.render_deployed = lambda *a, **k: sys.exit("a scan rendered: the cache was missed")
    try:
        started = time.perf_counter()
        servers = fleet.up(args.servers, die_with_parent=True, progress=lambda line: None)
        print(f"{args.servers} API servers up in {time.perf_counter() - started:.0f}s", flush=True)
        etcd, states = fleet._load()
        control_pids = [p.pid for p in (etcd.processes if etcd else [])] + [
            p.pid for state in states.values() for p in state.processes if p.name == "kube-apiserver"]
        with context.activate(source="cli", actor="drift-bench"):
            clusters = _register(args, servers, Channel, Release, Cluster, ClusterCredentials)
            user = get_user_model().objects.create_user("bench")
            _apply(clusters, args.objects, fleet_app, kube, client_for)
            _record_deployed(clusters, args.objects, user, fleet_app, timezone, Rollout, Wave, ClusterDeployment,
                             DesiredSet, desired_state)
            report = _phases(args, clusters, servers, kubectl, tmp, fleet_app, scan, services, desired_state,
                             DriftScan, trapped, control_pids, user, ApiToken, APIClient)
        print("\n".join(report), flush=True)
    finally:
        gitmod.Git.run, render.render_dir = real_git_run, real_render
        fleet.down(purge=True)


def _register(args, servers, Channel, Release, Cluster, ClusterCredentials) -> list:
    channel = Channel.objects.create(name="bench", repo_url="https://git.example.com/vendor.git",
                                     branch="release-1.0")
    Release.objects.create(channel=channel, version="1.0.0", upstream_sha="a" * 40)
    clusters = []
    for i in range(args.logical):
        server = servers[i % len(servers)]
        cluster = Cluster(name=f"bench-{i:04d}", api_server_url=server.server, channel=channel,
                          internal_repo_url=f"https://git.example.com/clusters/bench-{i:04d}.git",
                          labels={"bench": "drift", "shard": str(i % 10)})
        cluster.set_credentials(ClusterCredentials(token=server.token, ca_pem=server.ca_pem))
        clusters.append(cluster)
    Cluster.objects.bulk_create(clusters, batch_size=500)
    return list(Cluster.objects.select_related("channel").order_by("name"))


def _apply(clusters, objects, fleet_app, kube, client_for) -> None:
    started = time.perf_counter()
    results = kube.for_each(clusters, lambda c: kube.apply(c, fleet_app(c.name, objects)), max_parallel=16)
    failed = [(c.name, r) for c, r in results if isinstance(r, Exception)]
    if failed:
        sys.exit(f"apply failed on {failed[0][0]}: {failed[0][1]}")
    print(f"{len(clusters)} logical clusters x {objects} objects applied in {time.perf_counter() - started:.0f}s",
          flush=True)


def _record_deployed(clusters, objects, user, fleet_app, timezone, Rollout, Wave, ClusterDeployment, DesiredSet,
                     desired_state) -> None:
    """As a deployment leaves it: a succeeded deployment with tag and commit, and the
    desired set cached under its content key."""
    from fleet.inventory.models import Release

    release = Release.objects.get()
    rollout = Rollout.objects.create(release=release, strategy=[], author=user, state="succeeded")
    wave = Wave.objects.create(rollout=rollout, index=0, name="all", max_parallel=16, max_failures="0",
                               state="succeeded")
    now, inputs = timezone.now(), desired_state.render_inputs()
    rows, sets = [], []
    for i, cluster in enumerate(clusters):
        commit = f"{i:040x}"
        rows.append(ClusterDeployment(rollout=rollout, wave=wave, cluster=cluster, state="succeeded",
                                      tag="deploy/2026-12-02/release-1.0", local_sha=commit, finished_at=now))
        sets.append(DesiredSet(key=desired_state.content_key(commit, inputs), commit=commit,
                               manifests_encrypted=DesiredSet.seal(fleet_app(cluster.name, objects)), used_at=now))
    ClusterDeployment.objects.bulk_create(rows, batch_size=500)
    DesiredSet.objects.bulk_create(sets, batch_size=200)


def _kubectl_loop(kubectl, clusters, servers, tmp, fleet_app, objects) -> float:
    by_server = {s.server: s for s in servers}
    files = []
    for cluster in clusters:
        path = tmp / f"{cluster.name}.yaml"
        if not path.exists():
            path.write_text(yaml.safe_dump_all(fleet_app(cluster.name, objects)))
        files.append((by_server[cluster.api_server_url].kubeconfig_path, path))
    started = time.perf_counter()
    for kubeconfig, path in files:
        result = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "diff", "--server-side",
                                 "--field-manager=fleet", "--force-conflicts", "-f", str(path)],
                                capture_output=True, text=True)
        if result.returncode not in (0, 1):
            sys.exit(f"kubectl diff failed: {result.stderr[:500]}")
    return time.perf_counter() - started


def _phases(args, clusters, servers, kubectl, tmp, fleet_app, scan, services, desired_state, DriftScan, trapped,
            control_pids, user, ApiToken, APIClient) -> list[str]:
    out = ["", f"=== drift benchmark: {args.servers} API servers, {os.cpu_count()} CPUs ==="]
    first = clusters[:args.clusters]
    scan.scan_clusters(first)  # warm: connections, discovery, the process cache
    trapped.update(git=0, render=0)
    if os.environ.get("DRIFT_BENCH_PROFILE"):
        import cProfile
        import pstats

        current = scan.deployed(c.pk for c in first)
        rules = scan.compiled_rules()
        profile = cProfile.Profile()
        profile.enable()
        for cluster in first[:50]:  # one thread: where a scan's own CPU goes
            scan.observe(cluster, current.get(cluster.pk), rules)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    fleet_times, kubectl_times = [], []
    for round_ in range(args.rounds):
        desired_state.MEMORY.clear()  # from the database cache each round: what another worker sees
        t = time.perf_counter()
        drifts = scan.scan_clusters(first)
        fleet_times.append(time.perf_counter() - t)
        bad = [d for d in drifts if d.state != "in_sync"]
        if bad:
            sys.exit(f"unexpected {bad[0].state} on {bad[0].cluster.name}: {bad[0].reason}")
        if round_ < args.kubectl_rounds:
            kubectl_times.append(_kubectl_loop(kubectl, first, servers, tmp, fleet_app, args.objects))
        print(f"round {round_ + 1}: fleet {fleet_times[-1]:.2f}s" +
              (f"  kubectl loop {kubectl_times[-1]:.1f}s" if round_ < args.kubectl_rounds else ""), flush=True)
    ours, theirs = median(fleet_times), median(kubectl_times)
    out.append(f"1. {len(first)} clusters x {args.objects} objects: fleet scan {ours:.2f}s (median of "
               f"{args.rounds}), sequential kubectl diff --server-side loop {theirs:.1f}s (median of "
               f"{args.kubectl_rounds}): {theirs / ours:.1f}x "
               f"(target >= 10x: {'met' if theirs / ours >= 10 else 'MISSED'})")
    requests = list(DriftScan.objects.filter(cluster__in=first).order_by("-started_at")
                    .values_list("requests", flat=True)[:len(first)])
    kinds = {(o["apiVersion"], o["kind"]) for o in fleet_app("x", args.objects)}
    namespaced = len(kinds - {("v1", "Namespace")})
    target = 1 + (len(kinds) - namespaced) + 2 * namespaced
    out.append(f"2. unchanged cluster's scan: median {median(requests):.0f} requests (max {max(requests)}); the "
               f"target, one list per kind and namespace of the set, is {target}: the ApplySet parent's GET, the "
               f"Namespaces, {namespaced} namespaced kinds x 2 namespaces (the app's and the parent's own, "
               f"fleet-system); git commands run {trapped['git']}, renders {trapped['render']} over "
               f"{args.rounds * len(first)} scans")
    desired_state.MEMORY.clear()
    cpu_before, own_before = cpu_seconds(control_pids), sum(os.times()[:2])
    t = time.perf_counter()
    drifts = scan.scan_clusters(clusters)
    elapsed = time.perf_counter() - t
    control = cpu_seconds(control_pids) - cpu_before
    own = sum(os.times()[:2]) - own_before
    states = {str(d.state) for d in drifts}
    reasons = {d.reason for d in drifts if d.reason}
    if reasons:
        print(f"   not in sync: {sorted(reasons)[:3]}", flush=True)
    out.append(f"3. {len(clusters)} logical clusters scanned in {elapsed:.1f}s (target <= 60s: "
               f"{'met' if elapsed <= 60 else 'MISSED'}; states {sorted(states)}); control plane CPU "
               f"{control * 1000 / len(clusters):.1f} ms per cluster scan ({control:.1f}s in all), "
               f"Fleet's own process {own * 1000 / len(clusters):.1f} ms per scan")
    out += _latency(args, clusters[0], servers, kubectl, services, scan, user, ApiToken, APIClient)
    return out


def _latency(args, cluster, servers, kubectl, services, scan, user, ApiToken, APIClient) -> list[str]:
    """Edit with kubectl, then poll the API until it shows the drift."""
    from datetime import timedelta

    from django.contrib.auth.models import Group
    from django.utils import timezone

    from fleet.accounts.roles import Role
    from fleet.drift.models import ClusterDrift

    user.groups.add(Group.objects.get_or_create(name=Role.OPERATOR.group_name)[0])
    token, secret = ApiToken.issue(user, "bench")
    token.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    kubeconfig = next(s.kubeconfig_path for s in servers if s.server == cluster.api_server_url)
    services.install(services.Scheduler(scan_cluster=lambda pk, trigger: services.scan_by_id(pk, trigger=trigger),
                                        scan_selector=lambda sel, trigger: None))
    # Only this cluster is due in this phase: the others' next scans are pushed out.
    ClusterDrift.objects.exclude(cluster=cluster).update(next_scan_at=timezone.now() + timedelta(days=1))

    def edit(value: str) -> None:
        subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", cluster.name, "patch", "configmap",
                        "config-0", "--type=merge", "-p", f'{{"data":{{"setting":"{value}"}}}}'], check=True,
                       capture_output=True)

    def wait(state: str, started: float) -> float:
        while True:
            body = api.get(f"/api/v1/drift/clusters/{cluster.name}/").json()
            if body["state"] == state:
                return time.perf_counter() - started
            time.sleep(0.1)

    stop = threading.Event()

    def beat() -> None:  # beat's tick and a worker, in process: due clusters scanned each second
        from django.db import connection

        while not stop.wait(1.0):
            for pk in services.due_for_scan(limit=100):
                services.scan_by_id(pk, trigger="periodic")
        connection.close()

    periodic, on_demand = [], []
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        for i in range(args.latency_samples):
            scan.scan_cluster(cluster)  # in sync, next scan in interval ± jitter
            time.sleep(random.uniform(0, args.interval))  # an edit comes at any time between scans
            edit(f"edited-{i}")
            periodic.append(wait("drifted", time.perf_counter()))
            edit("0")
            scan.scan_cluster(cluster)
    finally:
        stop.set()
        thread.join()
    for i in range(args.latency_samples):
        edit(f"again-{i}")
        started = time.perf_counter()
        assert api.post(f"/api/v1/drift/clusters/{cluster.name}/scan/").status_code == 202
        on_demand.append(wait("drifted", started))
        edit("0")
        scan.scan_cluster(cluster)
    from fleet.drift.watch import ClusterWatcher

    watched = []
    watcher = ClusterWatcher(cluster, lambda c: services.scan_by_id(c.pk, trigger="watch")).start()
    try:
        for i in range(args.latency_samples):
            started = time.perf_counter()
            edit(f"watched-{i}")
            watched.append(wait("drifted", started))
            edit("0")
            wait("in_sync", time.perf_counter())
    finally:
        watcher.stop()
    return [f"4. kubectl edit -> drift in the API: event-driven (watches, no periodic scan) median "
            f"{median(watched):.2f}s over {len(watched)} edits (target <= 10s: "
            f"{'met' if median(watched) <= 10 else 'MISSED'}); periodic (interval {args.interval}s, jitter "
            f"±{int(100 * float(os.environ.get('FLEET_DRIFT_JITTER_PERCENT', 20)) / 100)}%) median "
            f"{median(periodic):.1f}s over {len(periodic)} edits at random times (expected about interval/2; "
            f"with the default 180s interval, about 90s); on demand (POST scan) median {median(on_demand):.2f}s"]


if __name__ == "__main__":
    main()
