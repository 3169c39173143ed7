"""Benchmark: one release (~20 objects) to many logical clusters behind a real network.

    eval "$(scripts/services.sh up)"
    .venv/bin/python -m tests.benchmarks.scale_bench [--real 4] [--logical 100[,1000]] [--rtt-ms 50]

Like ``rollout_bench`` (whose parts it reuses: workers as real Celery processes on
Redis, a dedicated PostgreSQL database, one internal repo per cluster with a
``cluster/`` overlay putting the release in a namespace named after the cluster), but
every API server sits behind its own Toxiproxy link (``LocalFleet.up(network=True)``)
with ``--rtt-ms`` round trips (half each way) and ``--jitter-ms`` jitter, and the
logical clusters are spread over three environments (``env`` = prod, staging, dev)
under the baseline policies (``policies/``, mode ``warn``: evaluated and recorded,
never blocking, so every cluster runs the whole pipeline).

Each phase, with fresh inventory clusters, runs in one go:

* Fleet: one rollout, one wave, ``max_parallel`` ``--max-parallel`` (100), from
  ``services.start`` to the rollout finishing, then checked on the servers;
* a sequential loop of ``kubectl apply --server-side`` (one invocation per cluster,
  through the same proxies), and ``xargs -P 16`` of the same invocations, each to a
  fresh ``kb-<cluster>``/``kx-<cluster>`` namespace, so neither is a no-op.

Reported per phase: the wall times and ratios; CPU per component (Fleet's Python, its
git/kustomize children, its embedded OPA, the API servers, etcd, the controllers,
kwok, Toxiproxy, kubectl) and the control plane's CPU per cluster (everything that is
Fleet's: Python, git, kustomize, OPA); the policy memo's cold decisions (decisions
that sent objects to OPA, counted from the workers' logs) and the objects they sent;
and the *floor*: the larger of the cluster side's CPU for the cheaper baseline's
applies spread over the cores, and the round trips a cluster's apply needs on the
critical path (``clusters / max_parallel`` batches of the loop's median per-cluster
time, which is mostly round trips behind the proxy). Past ``--loop-max`` clusters the
sequential loop is timed on 20 and extrapolated (printed as such). Medians over
clusters; one run per phase.

Every cluster's overlay differs (its namespace: logical clusters share real servers), so
neither the render cache nor the policy memo can share anything across clusters in the
first rollout. ``--repeat`` then deploys the same release to the same clusters again: a
release whose render is cached and whose decisions are memoised, every other step as in
any rollout. ``--profile`` samples the workers with py-spy (``profiling``) and prints
the functions that cost the most.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.benchmarks import profiling, rollout_bench
from tests.benchmarks.rollout_bench import (
    CpuMeter,
    Workers,
    _broker_url,
    _cpu,
    _git_state,
    build_repos,
    check_objects,
    kubectl_loop,
    log,
    median,
    run_rollout,
)
from tests.benchmarks.support import bench_environment

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "tests" / "benchmarks" / "results" / "scale_bench.json"
ENVS = ("prod", "staging", "dev")
_RELEASE_FILES = rollout_bench.base_files
LOOP_SAMPLE = 20  # clusters the sequential loop is timed on past --loop-max (then extrapolated, and said so)
COLD = re.compile(r"policy memo: cold decision, evaluated (\d+) of (\d+) subjects")


class NetworkCpuMeter(CpuMeter):
    """``CpuMeter`` plus Toxiproxy and the workers' embedded OPA servers (live children,
    metered apart from the reaped git/kustomize ones)."""

    CLIENT_SIDE = CpuMeter.CLIENT_SIDE | {"fleet workers' opa", "toxiproxy"}

    def snapshot(self) -> dict[str, float]:
        snap = Counter(super().snapshot())
        state = json.loads((self.fleet_dir / "fleet.json").read_text())
        for record in (state.get("network") or {}).get("processes", []):
            snap["toxiproxy"] += _cpu(record["pid"])
        for process in self.workers.processes:
            for child in _children(process.pid):
                if "opa" in _cmdline(child):
                    snap["fleet workers' opa"] += _cpu(child)
        return dict(snap)


def _children(pid: int) -> list[int]:
    """Every live descendant of ``pid``."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                kids = [int(x) for x in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            pending.extend(kids)
    return found


def _status_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (``VmHWM``: peak RSS; ``VmRSS``: now), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def control_plane_memory(workers) -> dict[str, float]:
    """The workers' peak RSS since they started (the benchmark's only control-plane
    processes: no web server takes part in a rollout) and their OPA servers' RSS now, MiB."""
    peaks = [_status_kib(p.pid, "VmHWM") for p in workers.processes]
    opa = [_status_kib(child, "VmRSS") for p in workers.processes for child in _children(p.pid)
           if "opa" in _cmdline(child)]
    return {"workers_peak_rss_mib": round(sum(peaks) / 1024, 1),
            "worker_peak_rss_mib_max": round(max(peaks, default=0) / 1024, 1),
            "opa_rss_mib": round(sum(opa) / 1024, 1)}


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return ""


def cold_decisions(tmp: Path, since: dict[Path, int]) -> dict[str, int]:
    """Cold decisions (and the subjects they evaluated) logged by the workers after
    ``since`` (byte offsets of each log)."""
    decisions = subjects = 0
    for path, offset in since.items():
        with open(path, "rb") as log_file:
            log_file.seek(offset)
            for match in COLD.finditer(log_file.read().decode(errors="replace")):
                decisions += 1
                subjects += int(match.group(1))
    return {"cold_decisions": decisions, "objects_evaluated": subjects}


def render_builds(rollout: int) -> dict[str, int]:
    """How many of the rollout's deployments rendered, and how many of those ran a build
    (the rest read the render cache)."""
    from fleet.rollouts.models import ClusterDeployment

    steps = ClusterDeployment.objects.filter(rollout_id=rollout).values_list("steps", flat=True)
    renders = [step["render"].get("detail", {}) for step in steps if "render" in step]
    return {"renders": len(renders), "render_builds": sum(1 for detail in renders if not detail.get("cached"))}


def log_offsets(tmp: Path) -> dict[Path, int]:
    return {path: path.stat().st_size for path in tmp.glob("worker-*.log")}


def xargs_apply(kubectl: Path, targets: list[tuple[str, Path]], baseline: dict[str, list], tmp: Path,
                parallel: int) -> dict:
    """``xargs -P N kubectl apply --server-side``: the same per-cluster invocations, N at once."""
    import yaml

    lines = []
    for name, kubeconfig in targets:
        path = tmp / "xargs-manifests" / f"{name}.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump_all(baseline[name], sort_keys=False))
        lines.append(f"{kubeconfig} {path}")
    script = (f'"{kubectl}" --kubeconfig "$0" --cache-dir "{tmp / "kubecache"}" apply --server-side '
              '--field-manager=bench-xargs -f "$1" >/dev/null')
    started = time.perf_counter()
    subprocess.run(["xargs", "-P", str(parallel), "-n", "2", "sh", "-c", script], input="\n".join(lines),
                   text=True, check=True, timeout=1800)
    return {"total": time.perf_counter() - started}


def headless_base_files() -> dict[str, str]:
    """``rollout_bench``'s release with headless Services: a local cluster's service range
    is a /24, so 250 logical clusters' three Services each (and the baselines') would
    not fit on four servers; a headless Service allocates no address."""
    files = _RELEASE_FILES()
    objects = files["base/objects.yaml"]
    files["base/objects.yaml"] = objects.replace("spec:\n  selector:", "spec:\n  clusterIP: None\n  selector:")
    assert files["base/objects.yaml"].count("clusterIP: None") == 3
    return files


def proxied_kubeconfigs(locals_, tmp: Path) -> dict[str, Path]:
    """An admin kubeconfig per real server that goes through its proxy, as Fleet does."""
    from fleet.dev.localfleet.cluster import ADMIN_USER, write_kubeconfig

    paths = {}
    for local in locals_:
        path = tmp / "kubeconfigs" / f"{local.name}.yaml"
        path.parent.mkdir(exist_ok=True)
        write_kubeconfig(path, local.name, local.server, local.ca_pem, ADMIN_USER, local.token)
        paths[local.name] = path
    return paths


def fleet_cpu(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if k.startswith("fleet workers"))


def cluster_side(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if k not in NetworkCpuMeter.CLIENT_SIDE)


def summarise(phase: str, count: int, max_parallel: int, result: dict, loop: dict, xargs: dict,
              integrity: dict[str, int], cpu: dict[str, dict[str, float]], policy: dict[str, int]) -> dict:
    per = result["clusters"]
    ok = [c for c in per if c["state"] == "succeeded"]
    cores = os.cpu_count() or 1
    loop_side = cluster_side(cpu["loop"])
    floor_cpu = min(loop_side, cluster_side(cpu["xargs"])) / cores  # the cheaper baseline's cluster side
    floor_rtt = -(-count // max_parallel) * loop["per_cluster_median"]
    floor = max(floor_cpu, floor_rtt)
    return {
        "phase": phase, "clusters": count, "max_parallel": max_parallel,
        "rollout_state": result["state"], "rollout_reason": result["reason"],
        "deployment_states": dict(Counter(c["state"] for c in per)),
        "fleet_seconds": round(result["wall"], 2),
        "kubectl_loop_seconds": round(loop["total"], 2),
        "kubectl_loop_extrapolated_from": loop.get("extrapolated_from"),
        "kubectl_per_cluster_median": round(loop["per_cluster_median"], 3),
        "xargs_p16_seconds": round(xargs["total"], 2),
        "floor_seconds": round(floor, 2),
        "floor_from": "cluster-side CPU / cores" if floor_cpu >= floor_rtt else "round trips on the critical path",
        "floor_cpu_seconds": round(floor_cpu, 2), "floor_rtt_seconds": round(floor_rtt, 2),
        "fleet_over_floor": round(result["wall"] / floor, 2) if floor else None,
        "speedup_vs_loop": round(loop["total"] / result["wall"], 2),
        "speedup_vs_xargs": round(xargs["total"] / result["wall"], 2),
        "median_cluster_wall": round(median([c["wall"] for c in ok]), 3),
        "median_steps": {name: round(median([c["steps"][name] for c in ok]), 3) for name in ok[0]["steps"]}
        if ok else {},
        "control_plane_cpu_per_cluster": round(fleet_cpu(cpu["rollout"]) / count, 3),
        "cluster_side_cpu_per_cluster": {"fleet": round(cluster_side(cpu["rollout"]) / count, 3),
                                         "kubectl_loop": round(loop_side / count, 3),
                                         "xargs": round(cluster_side(cpu["xargs"]) / count, 3)},
        "opa_cpu_seconds": cpu["rollout"].get("fleet workers' opa", 0.0),
        **policy,
        "cpu_seconds": cpu,
        "objects_missing_after_rollout": {ns: 19 - n for ns, n in integrity.items() if n != 19},
        "errors": sorted({c["error"] for c in per if c["error"]})[:5],
    }


def repeat_rollout(release, phase: str, count: int, max_parallel: int, author, meter: NetworkCpuMeter,
                   tmp: Path) -> dict:
    """The same release to the same clusters again: a release whose render is cached and
    whose policy decisions are memoised, every other step as in any rollout."""
    log(f"{phase}: the same release again (render cached)")
    offsets, before = log_offsets(tmp), meter.snapshot()
    result = run_rollout(release, f"bench-phase={phase}", count, max_parallel, author, timeout=600 + 10 * count)
    cpu = meter.delta(before, meter.snapshot())
    return {"fleet_seconds": round(result["wall"], 2), "state": result["state"],
            "control_plane_cpu_per_cluster": round(fleet_cpu(cpu) / count, 3),
            "cluster_side_cpu_per_cluster": round(cluster_side(cpu) / count, 3),
            **cold_decisions(tmp, offsets), **render_builds(result["rollout"]), "cpu_seconds": cpu}


def print_summary(s: dict) -> None:
    print(f"\n=== {s['phase']}: {s['clusters']} logical clusters, max_parallel {s['max_parallel']} ===")
    print(f"  rollout            {s['rollout_state']} {s['deployment_states']} {s['rollout_reason']}")
    print(f"  Fleet              {s['fleet_seconds']:8.2f} s   ({s['fleet_over_floor']}x the floor)")
    print(f"  floor              {s['floor_seconds']:8.2f} s   ({s['floor_from']}; CPU {s['floor_cpu_seconds']} s,"
          f" round trips {s['floor_rtt_seconds']} s)")
    extrapolated = (f", extrapolated from {s['kubectl_loop_extrapolated_from']} clusters"
                    if s["kubectl_loop_extrapolated_from"] else "")
    print(f"  kubectl SSA loop   {s['kubectl_loop_seconds']:8.2f} s   ({s['kubectl_per_cluster_median']:.2f} s/cluster;"
          f" Fleet {s['speedup_vs_loop']}x faster{extrapolated})")
    print(f"  xargs -P 16        {s['xargs_p16_seconds']:8.2f} s   (Fleet {s['speedup_vs_xargs']}x faster)")
    print("  median step s      " + "  ".join(f"{k} {v:.2f}" for k, v in s["median_steps"].items()))
    print(f"  control plane CPU  {s['control_plane_cpu_per_cluster']:.3f} s per cluster (Python, git, kustomize, OPA)")
    print(f"  cluster side CPU   per cluster: {s['cluster_side_cpu_per_cluster']}")
    print(f"  policy             {s['cold_decisions']} cold decisions, {s['objects_evaluated']} objects sent to OPA; "
          f"OPA CPU {s['opa_cpu_seconds']:.2f} s")
    print(f"  render             {s['renders']} renders, {s['render_builds']} kustomize builds (the rest cached)")
    memory = s["memory"]
    print(f"  memory             workers' peak RSS {memory['workers_peak_rss_mib']} MiB in all (largest "
          f"{memory['worker_peak_rss_mib_max']}), their OPA servers {memory['opa_rss_mib']} MiB")
    for key, cpu in s["cpu_seconds"].items():
        print(f"  CPU s {key:<12} total {sum(cpu.values()):.1f}: "
              + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])))
    if "repeat" in s:
        r = s["repeat"]
        print(f"  same release again {r['fleet_seconds']:8.2f} s   ({r['state']}; control plane CPU "
              f"{r['control_plane_cpu_per_cluster']:.3f} s per cluster, cluster side "
              f"{r['cluster_side_cpu_per_cluster']:.3f}; {r['render_builds']} kustomize builds, "
              f"{r['cold_decisions']} cold decisions)")
    if s["objects_missing_after_rollout"]:
        print(f"  !! namespaces lacking objects: {dict(list(s['objects_missing_after_rollout'].items())[:6])}")
    for error in s["errors"]:
        print(f"  error: {error}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=int, default=4, help="real local clusters (default 4)")
    parser.add_argument("--logical", default="100", help="logical cluster counts, comma-separated")
    parser.add_argument("--rtt-ms", type=int, default=50, help="round trip through each proxy (default 50)")
    parser.add_argument("--jitter-ms", type=int, default=10, help="jitter per direction (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker (default 16)")
    parser.add_argument("--max-parallel", type=int, default=100, help="wave max_parallel (default 100)")
    parser.add_argument("--xargs-parallel", type=int, default=16)
    parser.add_argument("--loop-max", type=int, default=200,
                        help=f"past this many clusters, time the sequential loop on {LOOP_SAMPLE} and extrapolate")
    parser.add_argument("--redis-db", type=int, default=12, help="Redis database number for the broker")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--profile", action="store_true", help="sample the workers with py-spy during the rollouts")
    parser.add_argument("--repeat", action="store_true",
                        help="after each phase, deploy the same release again (a release whose render is cached)")
    args = parser.parse_args()
    logical = [int(x) for x in args.logical.split(",") if x.strip() and int(x) > 0]

    broker = _broker_url(args.redis_db)
    tmp = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    env = bench_environment("_scale_bench", tmp, CELERY_BROKER_URL=broker)
    import redis
    from django.contrib.auth import get_user_model

    from fleet.core import context
    from fleet.dev.localfleet.fleet import LocalFleet
    from fleet.inventory import services as inventory
    from fleet.inventory.credentials import ClusterCredentials
    from fleet.inventory.models import Channel, Release
    from fleet.policy.choices import Mode
    from fleet.policy.services import import_policy_set
    from fleet.toolchain.build import ensure_binaries

    redis.Redis.from_url(broker).flushdb()
    kubectl = ensure_binaries(["kubectl"])["kubectl"]
    fleet = LocalFleet(tmp / "localfleet")
    workers = Workers(tmp, {**os.environ, **env}, args.workers, args.concurrency)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": {"cpus": os.cpu_count()}, "config": vars(args), "phases": [],
                              "git": _git_state()}
    try:
        log(f"starting {args.real} local clusters behind toxiproxy ({args.rtt_ms} ms round trips)")
        locals_ = fleet.up(args.real, network=True, progress=lambda m: None)
        for local in locals_:
            fleet.proxy(local.name).latency(args.rtt_ms // 2, jitter_ms=args.jitter_ms)
        kubeconfigs = proxied_kubeconfigs(locals_, tmp)

        phases = [(f"logical-{m}", [(f"s{m}-{i:04d}", locals_[i % args.real], ENVS[i % len(ENVS)])
                                    for i in range(m)]) for m in logical]
        names = [name for _, members in phases for name, _, _ in members]
        t = time.perf_counter()
        rollout_bench.base_files = headless_base_files  # build_repos commits these
        primary, repos, baseline = build_repos(tmp, names)
        log(f"{len(repos)} internal repos built in {time.perf_counter() - t:.1f} s")
        xargs_objects = {}
        for name in names:  # the same objects in namespace kx-<name> for the xargs baseline
            xargs_objects[name] = [_renamespace(obj, f"kb-{name}", f"kx-{name}") for obj in baseline[name]]

        author = get_user_model().objects.create(username="bench", is_superuser=True, is_staff=True)
        channel = Channel.objects.create(name="bench-1-0", repo_url=primary.url, branch="release-1.0")
        release = Release.objects.create(channel=channel, version="1.0.0", upstream_sha=primary.head("release-1.0"))
        with context.activate(source="cli", actor="bench"):
            import_policy_set("baseline", ROOT / "policies", selector="bench-phase", mode=Mode.WARN)
            for phase, members in phases:
                for name, local, env_name in members:
                    inventory.create_cluster(
                        {"name": name, "api_server_url": local.server, "channel": channel,
                         "internal_repo_url": str(repos[name]), "labels": {"bench-phase": phase, "env": env_name}},
                        ClusterCredentials(token=local.token, ca_pem=local.ca_pem))
        for local in locals_:  # kubectl's discovery cache is warm in any real loop too
            subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfigs[local.name]), "--cache-dir",
                            str(tmp / "kubecache"), "api-resources"], capture_output=True, check=True, timeout=60)

        log(f"starting {args.workers} workers x {args.concurrency} threads")
        workers.start("bench")
        for phase, members in phases:
            max_parallel = min(args.max_parallel, len(members))
            meter = NetworkCpuMeter(workers, tmp / "localfleet")
            log(f"{phase}: Fleet rollout to {len(members)} clusters (max_parallel {max_parallel})")
            offsets = log_offsets(tmp)
            cpu0 = meter.snapshot()
            with ExitStack() as profiled:
                if args.profile:
                    profiles = profiled.enter_context(profiling.sampling(
                        [p.pid for p in workers.processes], tmp / "profiles" / phase))
                result = run_rollout(release, f"bench-phase={phase}", len(members), max_parallel, author,
                                     timeout=600 + 10 * len(members))
            cpu1 = meter.snapshot()
            policy = {**cold_decisions(tmp, offsets), **render_builds(result["rollout"])}
            log(f"{phase}: Fleet {result['state']} in {result['wall']:.1f} s "
                f"{dict(Counter(c['state'] for c in result['clusters']))}, {policy}, "
                f"control plane CPU {fleet_cpu(meter.delta(cpu0, cpu1)) / len(members):.3f} s/cluster")
            integrity = check_objects(kubectl, [local.kubeconfig_path for local in locals_],
                                      [name for name, _, _ in members], tmp)
            targets = [(name, kubeconfigs[local.name]) for name, local, _ in members]
            sample = targets if len(targets) <= args.loop_max else targets[:LOOP_SAMPLE]
            log(f"{phase}: sequential kubectl loop over {len(sample)} clusters")
            cpu2 = meter.snapshot()
            loop = kubectl_loop(kubectl, sample, baseline, tmp)
            cpu3 = meter.snapshot()
            loop["measured_clusters"] = len(sample)
            if len(sample) < len(targets):  # too long to run whole: the sample's rate, said so
                loop["total"] *= len(targets) / len(sample)
                loop["extrapolated_from"] = len(sample)
            log(f"{phase}: xargs -P {args.xargs_parallel} kubectl")
            xargs = xargs_apply(kubectl, targets, xargs_objects, tmp, args.xargs_parallel)
            cpu4 = meter.snapshot()
            loop_cpu = meter.delta(cpu2, cpu3)
            scale = len(targets) / len(sample)
            cpu = {"rollout": meter.delta(cpu0, cpu1), "loop": {k: round(v * scale, 2) for k, v in loop_cpu.items()},
                   "xargs": meter.delta(cpu3, cpu4)}
            summary = summarise(phase, len(members), max_parallel, result, loop, xargs, integrity, cpu, policy)
            summary["memory"] = control_plane_memory(workers)
            if args.repeat:
                summary["repeat"] = repeat_rollout(release, phase, len(members), max_parallel, author, meter, tmp)
            print_summary(summary)
            if args.profile:
                summary["profile"] = profiling.summarise(profiles)
                profiling.print_summary(summary["profile"])
            summary["per_cluster"] = result["clusters"]
            report["phases"].append(summary)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(json.dumps(report, indent=2, default=str))
    finally:
        workers.stop_all()
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


def _renamespace(obj: dict, old: str, new: str) -> dict:
    text = json.dumps(obj).replace(f'"{old}"', f'"{new}"')
    return json.loads(text)


if __name__ == "__main__":
    main()
