"""Benchmark: render and hash the test release for 100 clusters from warm workspaces.

    eval "$(scripts/services.sh up)"
    .venv/bin/python -m tests.benchmarks.gitops_bench [clusters]

Each cluster gets its own bare internal repo, seeded with release-1.1 and a
configuration commit of its own (replicas, image tag, hostname, components), and
its own workspace. A first pass clones every workspace (cold); the measured pass
then does, per cluster, what a deployment's prepare + render steps do: take the
workspace lock, fetch origin and internal, reset to internal's branch, render the
overlay with kustomize, validate the objects and hash them. Time is split into
git (lock, fetch, reset), kustomize (the subprocess) and Fleet's own Python
(input checks, YAML parsing, validation, hashing). Every cluster's configuration
differs, so the render cache (``render_bench`` measures it) never hits: this is the
uncached path. The measured layer is the one ``fleet.gitops.services`` wraps.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.support import bench_environment

RESULTS = Path(__file__).parent / "results" / "gitops_bench.json"


def _setup(root: Path, count: int):
    from fleet.dev.testrepo import create_internal_repo, create_primary_repo
    from fleet.gitops import commits
    from fleet.gitops.overlay import ClusterParams
    from fleet.gitops.workspace import RepoSpec, Workspace
    from fleet.render.limits import RenderLimits

    primary = create_primary_repo(root / "vendor" / "platform.git")
    limits = RenderLimits.from_settings()
    author = commits.Author("Bench", "bench@example.com")
    workspaces = []
    started = time.perf_counter()
    for i in range(count):
        name = f"bench-{i:03d}"
        internal = create_internal_repo(root / "internal" / f"{name}.git", primary=primary,
                                        at=primary.head("release-1.1"))
        ws = Workspace(RepoSpec(name, primary.url, "release-1.1", str(internal), "main"))
        params = ClusterParams(images={"registry.example.com/platform/web": f"1.1.1-site{i}"},
                               replicas={"web": 1 + i % 5}, hostnames={"platform": f"{name}.example.net"},
                               components=("ingress", "monitoring") if i % 2 else ("ingress",))
        configure(ws, params, limits, author)
        workspaces.append(ws)
    return workspaces, time.perf_counter() - started


def configure(ws, params, limits, author) -> None:
    """Clone the workspace, commit the cluster's overlay for ``params`` and push it."""
    from fleet.gitops import commits, overlay, tags

    with ws.lock():
        ws.ensure()
        paths = commits.write_files(ws, overlay.overlay_files(ws.path, params), limits)
        commits.check_and_commit(ws, paths, author, f"Configure {ws.spec.cluster}", limits)
        tags.push(ws, [])


def _measure(workspaces) -> list[dict[str, float]]:
    from fleet.render.services import render_dir

    samples = []
    hashes = set()
    for ws in workspaces:
        started = time.perf_counter()
        with ws.lock():
            ws.ensure()
            ws.fetch()
            ws.reset()
            git_done = time.perf_counter()
            result = render_dir(ws.path / "cluster", root=ws.path)
        total = time.perf_counter() - started
        git = git_done - started
        samples.append({"total": total, "git": git, "kustomize": result.kustomize_seconds,
                        "python": total - git - result.kustomize_seconds, "objects": len(result.objects)})
        hashes.add(result.content_hash)
    assert len(hashes) == len(workspaces), "every cluster's configuration renders differently"
    return samples


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory(prefix="fleet-gitops-bench-") as scratch:
        root = Path(scratch)
        bench_environment("_gitops_bench", root)  # the render cache's shared layer is in the database
        from fleet.toolchain.build import ensure_binaries

        ensure_binaries(["kustomize"])  # built if missing, outside the timings
        print(f"setting up {count} clusters (internal repo, clone, configure, push)…", flush=True)
        workspaces, setup_seconds = _setup(root, count)
        samples = _measure(workspaces)
    totals = [s["total"] for s in samples]
    parts = {key: sum(s[key] for s in samples) for key in ("git", "kustomize", "python")}
    whole = sum(totals)
    report = {
        "clusters": count, "cpus": os.cpu_count(), "load": os.getloadavg()[0],
        "setup_seconds": setup_seconds, "objects_per_cluster": samples[0]["objects"],
        "per_cluster_ms": {"mean": 1000 * whole / count, "p50": 1000 * statistics.median(totals),
                           "p99": 1000 * sorted(totals)[min(count - 1, int(count * 0.99))]},
        "share": {key: value / whole for key, value in parts.items()},
        "per_cluster_ms_by_part": {key: 1000 * value / count for key, value in parts.items()},
        "total_seconds": whole,
    }
    print(f"\n{count} clusters, warm workspaces, {report['objects_per_cluster']} objects each "
          f"({report['cpus']} CPUs, load {report['load']:.1f})")
    print(f"per cluster: mean {report['per_cluster_ms']['mean']:.1f} ms, p50 "
          f"{report['per_cluster_ms']['p50']:.1f} ms, p99 {report['per_cluster_ms']['p99']:.1f} ms; "
          f"all {count}: {whole:.1f} s")
    for key, label in (("git", "git (lock, fetch, reset)"), ("kustomize", "kustomize build"),
                       ("python", "checks, parse, validate, hash")):
        print(f"  {label:<32} {report['per_cluster_ms_by_part'][key]:7.1f} ms  {100 * report['share'][key]:5.1f} %")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
