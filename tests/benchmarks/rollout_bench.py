"""Benchmark: one release (~20 objects) rolled out to real and logical local clusters.

    eval "$(scripts/services.sh up)"
    .venv/bin/python -m tests.benchmarks.rollout_bench [--real N] [--logical M[,M2,...]]

What runs: the real product end to end. A dedicated PostgreSQL database
(``<name>_rollout_bench``, dropped and migrated each run), Celery workers as real
processes on Redis (a private Redis database number, so no other session's worker
takes our tasks), ``N`` real local clusters (``LocalFleet.up``: kube-apiserver,
controller-manager, scheduler and kwok each, one shared etcd), a vendor primary repo
and one bare internal repo per inventory cluster whose ``main`` adds a
``cluster/`` overlay (``namespace: <cluster>`` plus its Namespace).

Phases, each with fresh inventory clusters, so nothing is a no-op:

* ``real``: one inventory cluster per real API server.
* ``logical-M``: M inventory clusters spread round-robin over the real API servers,
  each in its own namespace.

Each phase is one rollout (a single wave, ``max_failures`` 0) timed from
``services.start`` to the rollout finishing, then checked on the servers (every
cluster's namespace must hold all of its objects), then compared with the
baseline in the same run: the same rendered objects (the same kustomize overlay,
pointed at a fresh ``kb-<cluster>`` namespace) applied by a sequential loop of
``kubectl apply --server-side``, one invocation per cluster. The baseline does no
git, no render, no policy, no dry-run, no prune and no health wait.

Per cluster the pipeline records each step's seconds. API-call steps are
``dry_run``, ``apply``, ``verify``; control-plane overhead is the cluster's wall
time (``finished_at - started_at``) minus those, i.e. prepare (git), render
(kustomize), gate (policy, which also reads the live objects for its diff), tag
(git tag + push), record, and the bookkeeping between steps.

Each inventory cluster has its own ApplySet (named after it), so the logical clusters
on one server never prune each other. Also measured: a CPU meter (``/proc``) per component for each phase,
because on a small machine
the rollout and the loop are both CPU-bound and that is where the time goes
(PostgreSQL and Redis are not metered). From the loop's meter comes the *ceiling*: the
speed-up over the loop that a tool costing nothing itself could reach on this machine,
since its applies cost the cluster side at least what the loop's did and that CPU
shares the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.benchmarks.support import bench_environment

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "benchmarks" / "results" / "rollout_bench.json"
RELEASE_LABEL = "bench.fleet.dev/release"
API_STEPS = ("dry_run", "apply", "verify")
OTHER_STEPS = ("prepare", "render", "gate", "tag", "record")
STEPS = ("prepare", "render", "gate", "dry_run", "apply", "verify", "tag", "record")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Workers:
    def __init__(self, tmp: Path, env: dict[str, str], count: int, concurrency: int):
        self.tmp, self.env, self.count, self.concurrency = tmp, env, count, concurrency
        self.processes: list[subprocess.Popen] = []

    def start(self, tag: str) -> None:
        logs = []
        for i in range(self.count):
            path = self.tmp / f"worker-{tag}-{i}.log"
            logs.append(path)
            self.processes.append(subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "fleet", "worker", "-P", "threads", "-c", str(self.concurrency),
                 "-n", f"bench-{tag}-{i}@%h", "--loglevel=INFO", "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=self.env, stdout=open(path, "w"), stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + 90
        for process, path in zip(self.processes[-self.count:], logs, strict=True):
            while "ready." not in path.read_text():
                if process.poll() is not None:
                    raise RuntimeError(f"worker exited with {process.returncode}; see {path}:\n"
                                       + path.read_text()[-2000:])
                if time.monotonic() > deadline:
                    raise RuntimeError(f"worker not ready in 90s; see {path}")
                time.sleep(0.2)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes = []


def _cpu(pid: int, children: bool = True) -> float:
    """CPU seconds of a process (plus its reaped children: git, kustomize for a worker)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = sum(int(x) for x in fields[11:15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds per component between two snapshots: Fleet's workers (Python, and
    separately the git/kustomize processes they ran), the local clusters' processes,
    and kubectl (the benchmark's own reaped children)."""

    CLIENT_SIDE = frozenset({"fleet workers (python)", "fleet workers' git/kustomize", "kubectl (bench children)"})

    def __init__(self, workers: Workers, fleet_dir: Path):
        self.workers, self.fleet_dir = workers, fleet_dir

    def snapshot(self) -> dict[str, float]:
        import resource

        snap: Counter = Counter()
        for process in self.workers.processes:
            snap["fleet workers (python)"] += _cpu(process.pid, children=False)
            snap["fleet workers' git/kustomize"] += _cpu(process.pid) - _cpu(process.pid, children=False)
        state = json.loads((self.fleet_dir / "fleet.json").read_text())
        for cluster in state.get("clusters", []):
            for record in cluster.get("processes", []):
                snap[record["name"]] += _cpu(record["pid"])
        for record in (state.get("etcd") or {}).get("processes", []):
            snap["etcd"] += _cpu(record["pid"])
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap["kubectl (bench children)"] = usage.ru_utime + usage.ru_stime
        return dict(snap)

    @staticmethod
    def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 2) for k in after
                if round(after.get(k, 0.0) - before.get(k, 0.0), 2) > 0}


def node_flaps(fleet_dir: Path) -> int:
    """How often a cluster's controller-manager saw all its nodes NotReady."""
    return sum(path.read_text(errors="replace").count("all Nodes are not-Ready")
               for path in fleet_dir.glob("clusters/*/logs/kube-controller-manager.log"))


def _git_state() -> dict[str, str]:
    """The commit and any uncommitted changes to the product, so a result names its code."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    import hashlib

    diff = git("diff", "HEAD", "--", "fleet")
    return {"head": git("rev-parse", "HEAD"), "dirty_files": git("diff", "--name-only", "HEAD", "--", "fleet"),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff else ""}


# -- environment ------------------------------------------------------------------------


def _broker_url(db: int) -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis"):
        sys.exit("set CELERY_BROKER_URL to Redis first: eval \"$(scripts/services.sh up)\"")
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


# -- repos ----------------------------------------------------------------------------


def _y(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def base_files() -> dict[str, str]:
    """19 namespaced objects (namespace set by each cluster's overlay)."""
    label = f"{RELEASE_LABEL}: bench"
    docs = []
    for i in range(1, 9):
        docs.append(_y(f"""
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: config-{i}
              labels: {{{label}}}
            data:
              INDEX: "{i}"
              LOG_LEVEL: info
              VERSION: "1.0.0"
            """))
    for name in ("web", "api"):
        docs.append(_y(f"""
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: {name}
              labels: {{{label}}}
            """))
    for name, port in (("web", 80), ("api", 8080), ("metrics", 9090)):
        docs.append(_y(f"""
            apiVersion: v1
            kind: Service
            metadata:
              name: {name}
              labels: {{{label}}}
            spec:
              selector: {{app: {'web' if name == 'metrics' else name}}}
              ports: [{{port: {port}, targetPort: 8080}}]
            """))
    for name, verbs in (("reader", "[get, list, watch]"), ("writer", "[get, list, watch, update, patch]")):
        docs.append(_y(f"""
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata:
              name: {name}
              labels: {{{label}}}
            rules:
            - apiGroups: [""]
              resources: [configmaps]
              verbs: {verbs}
            """))
    for sa, role in (("web", "reader"), ("api", "writer")):
        docs.append(_y(f"""
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata:
              name: {sa}-{role}
              labels: {{{label}}}
            roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {role}}}
            subjects: [{{kind: ServiceAccount, name: {sa}}}]
            """))
    for name in ("web", "api"):
        docs.append(_y(f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: {name}
              labels: {{{label}, app: {name}}}
            spec:
              replicas: 1
              selector:
                matchLabels: {{app: {name}}}
              template:
                metadata:
                  labels: {{app: {name}}}
                spec:
                  serviceAccountName: {name}
                  containers:
                  - name: {name}
                    image: registry.example.com/bench/{name}:1.0.0
                    ports: [{{containerPort: 8080}}]
                    envFrom: [{{configMapRef: {{name: config-1}}}}]
            """))
    assert len(docs) == 19
    return {"README.md": "# Bench platform\n", "base/objects.yaml": "---\n".join(docs),
            "base/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                       "resources:\n- objects.yaml\n"}


def overlay_files(namespace: str, directory: str = "cluster") -> dict[str, str]:
    return {
        f"{directory}/namespace.yaml": _y(f"""
            apiVersion: v1
            kind: Namespace
            metadata:
              name: {namespace}
              labels: {{{RELEASE_LABEL}: bench}}
            """),
        f"{directory}/kustomization.yaml": _y(f"""
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: {namespace}
            resources:
            - ../base
            - namespace.yaml
            """),
    }


def build_repos(tmp: Path, names: list[str]):
    """The vendor primary repo and one internal repo per cluster; returns (primary, {name: path}, {name: objects})
    where objects are the kubectl baseline's rendered objects for namespace kb-<name>."""
    from fleet.dev import testrepo
    from fleet.gitops.git import Git
    from fleet.render.services import render_dir

    scratch = tmp / "scratch-primary"
    scratch.mkdir()
    work = Git(scratch)
    work.run("init", "--quiet", "--initial-branch", "release-1.0")
    primary = testrepo.PrimaryRepo(tmp / "vendor" / "platform.git")
    primary.commits["release-1.0"] = [testrepo._commit(work, base_files(), "Bench platform 1.0.0",
                                                       "2026-01-10T10:00:00Z")]
    primary.path.parent.mkdir(parents=True)
    Git(primary.path.parent).run("clone", "--quiet", "--bare", str(scratch), str(primary.path))
    head = primary.head("release-1.0")
    repos, baseline = {}, {}
    for name in names:
        repo = testrepo.create_internal_repo(tmp / "internal" / f"{name}.git", primary=primary, at=head)
        clone = tmp / "scratch-internal" / name
        Git(tmp).run("clone", "--quiet", str(repo), str(clone))
        git = Git(clone)
        for path, content in overlay_files(name).items():
            (clone / path).parent.mkdir(parents=True, exist_ok=True)
            (clone / path).write_text(content)
        git.run("add", "--all")
        git.run("commit", "--quiet", "--message", f"Overlay for {name}",
                env={"GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                     "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "bench@example.com"})
        git.run("push", "--quiet", "origin", "HEAD:refs/heads/main")
        for path, content in overlay_files(f"kb-{name}", "kubectl").items():
            (clone / path).parent.mkdir(parents=True, exist_ok=True)
            (clone / path).write_text(content)
        baseline[name] = render_dir(clone / "kubectl", root=clone).objects
        repos[name] = repo
    return primary, repos, baseline


# -- measuring ------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def run_rollout(release, selector: str, count: int, max_parallel: int, author, timeout: float) -> dict[str, Any]:
    from fleet.core import context
    from fleet.rollouts import services
    from fleet.rollouts.services import RolloutRequest

    waves = [{"name": "all", "max_parallel": max_parallel, "max_failures": 0}]
    with context.activate(source="cli", actor="bench"):
        rollout = services.create_rollout(RolloutRequest(release=release, selector=selector, waves=waves,
                                                         health_timeout_seconds=120), author)
        assert rollout.deployments.count() == count, (rollout.deployments.count(), count)
        started = time.perf_counter()
        services.start(rollout)
    deadline = started + timeout
    while True:
        rollout.refresh_from_db()
        if rollout.state in ("succeeded", "halted", "aborted"):
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"rollout #{rollout.pk} still {rollout.state} after {timeout:.0f}s: "
                               f"{Counter(rollout.deployments.values_list('state', flat=True))}")
        time.sleep(0.1)
    wall = time.perf_counter() - started
    deployments = list(rollout.deployments.select_related("cluster").order_by("started_at"))
    per = []
    for d in deployments:
        seconds = {name: d.steps.get(name, {}).get("seconds", 0.0) for name in STEPS}
        api = sum(seconds[s] for s in API_STEPS)
        span = (d.finished_at - d.started_at).total_seconds() if d.finished_at and d.started_at else 0.0
        per.append({"cluster": d.cluster.name, "state": d.state, "error": d.error[:300], "steps": seconds,
                    "api": api, "wall": span, "overhead": span - api,
                    "queued": (d.started_at - rollout.started_at).total_seconds() if d.started_at else 0.0,
                    "verify_elapsed": d.steps.get("verify", {}).get("detail", {}).get("elapsed")})
    db_wall = (rollout.finished_at - rollout.started_at).total_seconds()
    return {"rollout": rollout.pk, "state": rollout.state, "reason": rollout.reason, "wall": wall,
            "db_wall": db_wall, "clusters": per}


def check_objects(kubectl: Path, kubeconfigs: list[Path], namespaces: list[str], tmp: Path) -> dict[str, int]:
    """Per namespace: how many of the release's 19 namespaced objects the servers hold."""
    found: Counter = Counter()
    for kubeconfig in kubeconfigs:
        out = subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp / "kubecache"), "get",
             "configmaps,services,serviceaccounts,roles,rolebindings,deployments", "-A", "-l",
             f"{RELEASE_LABEL}=bench", "-o", "custom-columns=NS:.metadata.namespace", "--no-headers"],
            capture_output=True, text=True, timeout=120, check=True).stdout
        found.update(line.strip() for line in out.splitlines() if line.strip())
    return {ns: found.get(ns, 0) for ns in namespaces}


def kubectl_loop(kubectl: Path, targets: list[tuple[str, Path]], baseline: dict[str, list], tmp: Path) -> dict:
    import yaml

    files = {}
    for name, _ in targets:
        path = tmp / "kubectl-manifests" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump_all(baseline[name], sort_keys=False))
        files[name] = path
    per = []
    started = time.perf_counter()
    for name, kubeconfig in targets:
        t = time.perf_counter()
        subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp / "kubecache"),
                        "apply", "--server-side", "--field-manager=bench-kubectl", "-f", str(files[name])],
                       capture_output=True, text=True, timeout=120, check=True)
        per.append(time.perf_counter() - t)
    return {"total": time.perf_counter() - started, "per_cluster_median": median(per),
            "objects_per_cluster": len(next(iter(baseline.values())))}


def summarise(phase: str, result: dict, loop: dict, integrity: dict[str, int]) -> dict:
    per = result["clusters"]
    ok = [c for c in per if c["state"] == "succeeded"]
    api = [c["api"] for c in ok]
    overhead = [c["overhead"] for c in ok]
    apply_only = [c["steps"]["apply"] for c in ok]
    steps = {name: round(median([c["steps"][name] for c in ok]), 3) for name in STEPS}
    missing = {ns: 19 - n for ns, n in integrity.items() if n != 19}
    summary = {
        "phase": phase, "clusters": len(per),
        "rollout_state": result["state"], "rollout_reason": result["reason"],
        "deployment_states": dict(Counter(c["state"] for c in per)),
        "total_seconds": round(result["wall"], 2), "total_seconds_db": round(result["db_wall"], 2),
        "median_cluster_wall": round(median([c["wall"] for c in ok]), 3),
        "median_api_seconds": round(median(api), 3), "median_overhead_seconds": round(median(overhead), 3),
        "median_apply_step_seconds": round(median(apply_only), 3),
        "overhead_over_api_median": round(median(overhead) / median(api), 3) if api else None,
        "overhead_over_api_sum": round(sum(overhead) / sum(api), 3) if api else None,
        "overhead_over_apply_step_median": round(median(overhead) / median(apply_only), 3) if api else None,
        "median_steps": steps,
        "median_queued_seconds": round(median([c["queued"] for c in per]), 3),
        "kubectl_loop_seconds": round(loop["total"], 2),
        "kubectl_per_cluster_median": round(loop["per_cluster_median"], 3),
        "speedup_vs_kubectl": round(loop["total"] / result["wall"], 3),
        "objects_missing_after_rollout": missing,
        "errors": sorted({c["error"] for c in per if c["error"]})[:5],
    }
    return summary


def print_summary(s: dict) -> None:
    print(f"\n=== {s['phase']}: {s['clusters']} clusters ===")
    print(f"  rollout                 {s['rollout_state']} {s['deployment_states']} {s['rollout_reason']}")
    print(f"  total wall (start->done) {s['total_seconds']:8.2f} s   "
          f"(DB started->finished {s['total_seconds_db']:.2f} s)")
    print(f"  per cluster, median:     wall {s['median_cluster_wall']:.2f} s = "
          f"API steps {s['median_api_seconds']:.2f} s"
          f" + overhead {s['median_overhead_seconds']:.2f} s")
    print("  median step seconds:     " + "  ".join(f"{k} {v:.2f}" for k, v in s["median_steps"].items()))
    print(f"  overhead / API time:     median {s['overhead_over_api_median']}   sum {s['overhead_over_api_sum']}"
          f"   (vs apply step alone: {s['overhead_over_apply_step_median']})   target <= 0.10")
    print(f"  kubectl SSA loop:        {s['kubectl_loop_seconds']:8.2f} s  "
          f"({s['kubectl_per_cluster_median']:.2f} s/cluster)")
    print(f"  speed-up vs loop:        {s['speedup_vs_kubectl']:.2f}x   target >= 5x")
    if "ceiling_vs_kubectl" in s:
        print(f"  ceiling on this machine: {s['ceiling_vs_kubectl']:.2f}x   (a tool that cost nothing itself, whose "
              f"applies cost the cluster side what the loop's did, on {os.cpu_count()} CPUs)")
    print(f"  median queued (wait for a slot of max_parallel): {s['median_queued_seconds']:.2f} s")
    print(f"  kwok nodes seen NotReady (all clusters, so far): {s.get('node_not_ready_events_so_far')}")
    for key, label in (("cpu_seconds_rollout", "CPU s during rollout"),
                       ("cpu_seconds_kubectl_loop", "CPU s during loop")):
        if key in s:
            cpu = s[key]
            print(f"  {label:<22} total {sum(cpu.values()):.1f}: "
                  + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])))
    if s["objects_missing_after_rollout"]:
        bad = s["objects_missing_after_rollout"]
        print(f"  !! {len(bad)} namespaces lack objects after the rollout: {dict(list(bad.items())[:6])}")
    for error in s["errors"]:
        print(f"  error: {error}")


def ceiling(loop_seconds: float, loop_cpu: dict[str, float]) -> float:
    """The best speed-up over the loop any tool could reach here: applying the same
    objects costs the cluster side (API server, etcd, controllers, kwok) at least
    the CPU the loop's applies cost it, and on a machine where they share the
    rollout's cores, that CPU spread over every core is a lower bound on the wall time."""
    cluster_side = sum(v for k, v in loop_cpu.items() if k not in CpuMeter.CLIENT_SIDE)
    return round(loop_seconds / (cluster_side / (os.cpu_count() or 1)), 2) if cluster_side else float("inf")


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=int, default=6, help="real local clusters (default 6)")
    parser.add_argument("--logical", default="100", help="logical cluster counts, comma-separated (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker (default 8)")
    parser.add_argument("--max-parallel", type=int, default=16, help="wave max_parallel for logical phases")
    parser.add_argument("--redis-db", type=int, default=11, help="Redis database number for the broker")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    logical = [int(x) for x in args.logical.split(",") if x.strip() and int(x) > 0]

    broker = _broker_url(args.redis_db)
    tmp = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    env = bench_environment("_rollout_bench", tmp, CELERY_BROKER_URL=broker)
    import redis

    redis.Redis.from_url(broker).flushdb()

    from django.contrib.auth import get_user_model

    from fleet.core import context
    from fleet.dev.localfleet.fleet import LocalFleet
    from fleet.inventory import services as inventory
    from fleet.inventory.credentials import ClusterCredentials
    from fleet.inventory.models import Channel, Release
    from fleet.toolchain.build import ensure_binaries

    kubectl = ensure_binaries(["kubectl"])["kubectl"]
    fleet = LocalFleet(tmp / "localfleet")
    workers = Workers(tmp, {**os.environ, **env}, args.workers, args.concurrency)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": {"cpus": os.cpu_count()}, "config": vars(args), "phases": [],
                              "git": _git_state()}
    try:
        t = time.perf_counter()
        log(f"starting {args.real} local clusters in {tmp / 'localfleet'}")
        locals_ = fleet.up(args.real, progress=lambda m: None)
        report["fleet_up_seconds"] = round(time.perf_counter() - t, 1)
        log(f"fleet up in {report['fleet_up_seconds']} s")

        phases = [("real", [(f"real-{i + 1}", locals_[i]) for i in range(args.real)], args.real)]
        for m in logical:
            phases.append((f"logical-{m}", [(f"l{m}-{i:03d}", locals_[i % args.real]) for i in range(m)],
                           min(args.max_parallel, m)))
        names = [name for _, members, _ in phases for name, _ in members]
        t = time.perf_counter()
        primary, repos, baseline = build_repos(tmp, names)
        log(f"{len(repos)} internal repos built in {time.perf_counter() - t:.1f} s")

        author = get_user_model().objects.create(username="bench")
        channel = Channel.objects.create(name="bench-1-0", repo_url=primary.url, branch="release-1.0")
        release = Release.objects.create(channel=channel, version="1.0.0", upstream_sha=primary.head("release-1.0"))
        with context.activate(source="cli", actor="bench"):
            for phase, members, _ in phases:
                for name, local in members:
                    inventory.create_cluster(
                        {"name": name, "api_server_url": local.server, "channel": channel,
                         "internal_repo_url": str(repos[name]), "labels": {"bench-phase": phase}},
                        ClusterCredentials(token=local.token, ca_pem=local.ca_pem))

        # Warm the kubectl discovery cache once per server (it is warm in any real loop too).
        for local in locals_:
            subprocess.run([str(kubectl), "--kubeconfig", str(local.kubeconfig_path), "--cache-dir",
                            str(tmp / "kubecache"), "api-resources"], capture_output=True, check=True, timeout=60)

        log(f"starting {args.workers} workers x {args.concurrency} threads")
        workers.start("bench")
        for phase, members, max_parallel in phases:
            log(f"{phase}: rolling out to {len(members)} clusters (max_parallel {max_parallel})")
            meter = CpuMeter(workers, tmp / "localfleet")
            cpu0 = meter.snapshot()
            result = run_rollout(release, f"bench-phase={phase}", len(members), max_parallel, author,
                                 timeout=300 + 15 * len(members))
            cpu1 = meter.snapshot()
            integrity = check_objects(kubectl, [local.kubeconfig_path for local in locals_],
                                      [name for name, _ in members], tmp)
            log(f"{phase}: kubectl loop over {len(members)} clusters")
            cpu2 = meter.snapshot()
            loop = kubectl_loop(kubectl, [(name, local.kubeconfig_path) for name, local in members], baseline, tmp)
            cpu3 = meter.snapshot()
            summary = summarise(phase, result, loop, integrity)
            summary["node_not_ready_events_so_far"] = node_flaps(tmp / "localfleet")
            summary["cpu_seconds_rollout"] = meter.delta(cpu0, cpu1)
            summary["cpu_seconds_kubectl_loop"] = meter.delta(cpu2, cpu3)
            summary["ceiling_vs_kubectl"] = ceiling(loop["total"], summary["cpu_seconds_kubectl_loop"])
            print_summary(summary)
            summary["per_cluster"] = result["clusters"]
            report["phases"].append(summary)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(report, indent=2, default=str))
    finally:
        workers.stop_all()
        report["node_not_ready_events"] = node_flaps(tmp / "localfleet")
        try:
            fleet.down(purge=True)
        except Exception as exc:  # noqa: BLE001 - teardown must go on
            log(f"fleet down failed: {exc}")
        from django.db import connections

        connections.close_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    RESULTS.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    failed = [p["phase"] for p in report["phases"] if p["rollout_state"] != "succeeded"
              or p["objects_missing_after_rollout"]]
    if failed:
        sys.exit(f"phases not clean: {failed}")


if __name__ == "__main__":
    main()
