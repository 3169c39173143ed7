"""Benchmark: render once per distinct input. N clusters sharing K overlays, one release.

    eval "$(scripts/services.sh up)"
    .venv/bin/python -m tests.benchmarks.render_bench [--clusters 300] [--overlays 3]

Each cluster gets its own internal repo and workspace (``gitops_bench``'s set-up), its
overlay one of K parameter sets (as a fleet's clusters share a handful: one per
environment). Then, in one run, every cluster's workspace is rendered the way a
deployment's render step does it (``gitops.render_tree``) three times:

* *uncached*, what Fleet did before the render cache (and a ``kustomize build`` per
  cluster does): both cache layers emptied before each cluster;
* *cold*: the caches empty at the start only, so the first cluster of each overlay
  builds and the rest read its result;
* *warm, from the database*: the process's layer emptied first, as another worker
  finds it.

Reported per pass: wall time per cluster (median), CPU (this process and its
kustomize children) per cluster, and kustomize builds.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from tests.benchmarks.gitops_bench import configure
from tests.benchmarks.support import bench_environment

RESULTS = Path(__file__).parent / "results" / "render_bench.json"


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _setup(root: Path, count: int, overlays: int):
    from fleet.dev.testrepo import create_internal_repo, create_primary_repo
    from fleet.gitops import commits
    from fleet.gitops.overlay import ClusterParams
    from fleet.gitops.workspace import RepoSpec, Workspace
    from fleet.render.limits import RenderLimits

    primary = create_primary_repo(root / "vendor" / "platform.git")
    limits, author = RenderLimits.from_settings(), commits.Author("Bench", "bench@example.com")
    workspaces = []
    for i in range(count):
        name, kind = f"bench-{i:04d}", i % overlays
        internal = create_internal_repo(root / "internal" / f"{name}.git", primary=primary,
                                        at=primary.head("release-1.1"))
        ws = Workspace(RepoSpec(name, primary.url, "release-1.1", str(internal), "main"))
        params = ClusterParams(images={"registry.example.com/platform/web": f"1.1.1-env{kind}"},
                               replicas={"web": 1 + kind}, hostnames={"platform": f"env{kind}.example.net"},
                               components=("ingress", "monitoring") if kind % 2 else ("ingress",))
        configure(ws, params, limits, author)
        workspaces.append(ws)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{count} clusters set up", flush=True)
    return workspaces


def _pass(workspaces, *, before_each=None) -> dict:
    from fleet.gitops.services import render_tree
    from fleet.render import kustomize

    builds = {"n": 0}
    real = kustomize.build

    def counting(*args, **kwargs):
        builds["n"] += 1
        return real(*args, **kwargs)

    kustomize.build = counting
    walls, hashes, cpu0 = [], set(), _cpu()
    try:
        for ws in workspaces:
            if before_each:
                before_each()
            started = time.perf_counter()
            hashes.add(render_tree(ws.path).content_hash)
            walls.append(time.perf_counter() - started)
    finally:
        kustomize.build = real
    count = len(workspaces)
    return {"median_ms": round(1000 * statistics.median(walls), 2), "total_s": round(sum(walls), 2),
            "cpu_ms_per_cluster": round(1000 * (_cpu() - cpu0) / count, 2), "kustomize_builds": builds["n"],
            "distinct_sets": len(hashes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--overlays", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleet-render-bench-") as scratch:
        root = Path(scratch)
        bench_environment("_render_bench", root)
        from fleet.render import cache
        from fleet.render.models import RenderedSet
        from fleet.toolchain.build import ensure_binaries

        ensure_binaries(["kustomize"])  # built if missing, outside the timings
        print(f"setting up {args.clusters} clusters over {args.overlays} overlays…", flush=True)
        workspaces = _setup(root, args.clusters, args.overlays)

        def empty() -> None:
            cache.MEMORY.clear()
            RenderedSet.objects.all().delete()

        empty()
        passes = {"uncached": _pass(workspaces, before_each=empty)}
        empty()
        passes["cold"] = _pass(workspaces)
        cache.MEMORY.clear()
        passes["warm_from_database"] = _pass(workspaces)
    report = {"clusters": args.clusters, "overlays": args.overlays, "passes": passes,
              "speedup_cold_vs_uncached": round(passes["uncached"]["total_s"] / passes["cold"]["total_s"], 2),
              "cpu_ratio_cold_vs_uncached": round(passes["uncached"]["cpu_ms_per_cluster"]
                                                  / passes["cold"]["cpu_ms_per_cluster"], 2)}
    print(f"\n{args.clusters} clusters, {args.overlays} overlays, one release")
    for name, p in passes.items():
        print(f"  {name:<20} median {p['median_ms']:7.2f} ms  total {p['total_s']:7.2f} s  CPU "
              f"{p['cpu_ms_per_cluster']:7.2f} ms/cluster  kustomize builds {p['kustomize_builds']:4d}  "
              f"distinct sets {p['distinct_sets']}")
    print(f"  cold cache vs uncached: {report['speedup_cold_vs_uncached']}x wall, "
          f"{report['cpu_ratio_cold_vs_uncached']}x less CPU")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
