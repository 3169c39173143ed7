"""Benchmark: one 1,000-object release against the baseline library, per engine, and
``conftest test`` on the same files and policies, in the same run.

    .venv/bin/python -m tests.benchmarks.policy_bench [--objects 1000] [--runs 50]

No database. Both binaries come from ``ensure_binaries`` (built from their Go
modules). A decision is what the gate does for one apply: build the input (with the
change against the deployed objects), evaluate every policy, classify the findings —
with the policies prepared once beforehand (compiled in regopy, loaded in OPA).
conftest is compared on what it can run: the conftest-style packages
(``policies/baseline`` + ``policies/lib``, context passed with ``--data``); the engines
are timed on that same subset, and on the whole library (with the Gatekeeper part).
Every run checks that conftest and both engines find the same number of denials.

Engines are timed cold (every object evaluated: a release never seen before; OPA
splits it over ``--parallelism`` concurrent requests) and behind the memo of
per-object findings that production uses (``fleet/policy/engines/memo.py``): the same
release gated again (the next cluster of a rollout with the same rendered objects, a
retry, a preview then the apply), and a release where ``--changed`` percent of the
objects differ from the previous decision (a new release of the same application).

Wall time is what a caller waits; CPU time (this process + the OPA server, or the
conftest process) is what the work costs, and stays meaningful on a busy machine. The
OPA server's own share is printed apart: spread over every core, it is the least wall
time a cold decision could take here, whatever the client does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
RESULTS = Path(__file__).resolve().parent / "results" / "policy_bench.json"
CONTEXT = {"cluster": {"name": "eu-prod-1", "labels": {"env": "prod"}, "channel": "stable"},
           "release": {"from": None, "to": None},
           "change": {"added": [], "changed": [], "removed": []}}


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "n": len(ordered)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(run: Callable[[], object], runs: int, cpu: Callable[[], float], warmup: int = 2,
          server_cpu: Callable[[], float] | None = None) -> dict:
    """Wall and CPU milliseconds of ``runs`` calls, after ``warmup`` calls; with
    ``server_cpu``, also the part of the CPU the OPA server spent."""
    for _ in range(warmup):
        run()
    wall, spent, served = [], [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), cpu()
        started_server = server_cpu() if server_cpu else 0.0
        run()
        wall.append((time.perf_counter() - started) * 1000)
        spent.append((cpu() - started_cpu) * 1000)
        served.append(((server_cpu() if server_cpu else 0.0) - started_server) * 1000)
    stats = {**_percentiles(wall), "cpu_p50": statistics.median(spent)}
    return {**stats, "server_cpu_p50": statistics.median(served)} if server_cpu else stats


def _line(name: str, stats: dict[str, float]) -> None:
    server = f" (OPA {stats['server_cpu_p50']:.0f})" if "server_cpu_p50" in stats else ""
    print(f"{name:<44} p50 {stats['p50']:8.1f} ms  p99 {stats['p99']:8.1f} ms  "
          f"cpu p50 {stats['cpu_p50']:8.1f} ms{server}  (n={stats['n']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=50, help="decisions per engine (regopy: a fifth)")
    parser.add_argument("--conftest-runs", type=int, default=5)
    parser.add_argument("--parallelism", type=int, default=2, help="concurrent OPA requests per decision")
    parser.add_argument("--changed", type=float, default=5.0, help="percent of objects new in each memo run")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    import yaml

    from fleet.dev.opa_process import opa_server
    from fleet.policy import gate
    from fleet.policy.bundle import load_bundle, read_directory
    from fleet.policy.engines.memo import MemoEngine
    from fleet.policy.engines.opa_engine import OpaEngine
    from fleet.policy.engines.regopy_engine import RegopyEngine
    from fleet.policy.inputs import build_input
    from fleet.toolchain.build import ensure_binaries
    from tests.policy.objects import release

    binaries = ensure_binaries(["opa", "conftest"], progress=lambda line: print(line, file=sys.stderr))
    objects = release(args.objects, broken_every=5)
    full = load_bundle(read_directory(POLICIES))
    subset = load_bundle({**{f"baseline/{k}": v for k, v in read_directory(POLICIES / "baseline").items()},
                          **{f"lib/{k}": v for k, v in read_directory(POLICIES / "lib").items()}})
    results: dict[str, dict] = {}

    with tempfile.TemporaryDirectory() as tmp:
        manifests, context = Path(tmp) / "release.yaml", Path(tmp) / "context.json"
        manifests.write_text(yaml.safe_dump_all(objects))
        context.write_text(json.dumps({"fleet": CONTEXT}))
        conftest_cmd = [str(binaries["conftest"]), "test", str(manifests), "--policy", str(POLICIES / "baseline"),
                        "--policy", str(POLICIES / "lib"), "--data", str(context), "--all-namespaces",
                        "--output", "json", "--no-color"]

        def conftest() -> int:
            run = subprocess.run(conftest_cmd, capture_output=True, text=True, timeout=600)
            if run.returncode not in (0, 1):
                raise SystemExit(f"conftest failed ({run.returncode}): {run.stderr[:500]}")
            return sum(len(r.get("failures") or []) for r in json.loads(run.stdout))

        conftest_denials = conftest()
        with opa_server(binaries["opa"], Path(tmp) / "opa.log") as server:
            engines = {"opa": OpaEngine(server.url, timeout=60, parallelism=args.parallelism),
                       "regopy": RegopyEngine()}
            cpu = {"opa": lambda: time.process_time() + server.cpu_seconds(), "regopy": time.process_time}
            server_cpu = {"opa": server.cpu_seconds, "regopy": None}
            print(f"\n{len(objects)} objects, {sum(1 for o in objects if o['kind'] == 'Deployment')} deployments; "
                  f"machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")

            def timed(key: str, engine, spec, runs: int, cpu_of, release_of=lambda: objects) -> None:
                def decide() -> gate.Verdict:
                    current = release_of()
                    data = build_input(current, cluster=CONTEXT["cluster"], deployed=current)
                    return gate.evaluate([spec], data, engine, now=datetime.now(timezone.utc))

                verdict = decide()
                assert not verdict.errors, verdict.errors
                results[key] = {**_time(decide, runs, cpu_of, server_cpu=server_cpu[key.split(" ")[0]]),
                                "denials": verdict.counts()["deny"]}
                _line(key, results[key])
                if "subset" in key and verdict.counts()["deny"] != conftest_denials:
                    raise SystemExit(f"{key} found {verdict.counts()['deny']} denials, conftest {conftest_denials}")

            for label, bundle in (("conftest-style subset", subset), ("whole library", full)):
                spec = gate.PolicySetSpec("baseline", "enforce", False, bundle)
                for name, engine in engines.items():
                    engine.prepare(bundle)
                    timed(f"{name} / {label}", engine, spec, args.runs if name == "opa" else max(5, args.runs // 5),
                          cpu[name])
            spec = gate.PolicySetSpec("baseline", "enforce", False, subset)
            changed_count = max(1, round(len(objects) * args.changed / 100))
            for name, engine in engines.items():
                memo = MemoEngine(engine, 100_000)
                timed(f"{name} + memo, same release / conftest-style subset", memo, spec, args.runs, cpu[name])
                generation = iter(range(1, 1_000_000))

                def partly_new() -> list[dict]:
                    # The first objects get a new annotation: new to the memo, same verdicts.
                    mark, current = str(next(generation)), list(objects)
                    for i in range(changed_count):
                        meta = {**current[i]["metadata"]}
                        meta["annotations"] = {**meta.get("annotations", {}), "bench/generation": mark}
                        current[i] = {**current[i], "metadata": meta}
                    return current

                timed(f"{name} + memo, {args.changed:g}% changed / conftest-style subset", memo, spec, args.runs,
                      cpu[name], partly_new)
            for engine in engines.values():
                engine.close()
        results["conftest"] = {**_time(conftest, args.conftest_runs, _children_cpu, warmup=0),
                               "denials": conftest_denials}
        _line("conftest test (same files, same policies)", results["conftest"])

    conftest_stats = results["conftest"]
    print()
    for key, stats in results.items():
        if key == "conftest" or "subset" not in key:
            continue
        print(f"{key.split(' / ')[0]:<30} vs conftest: {conftest_stats['p50'] / stats['p50']:6.1f}x wall, "
              f"{conftest_stats['cpu_p50'] / stats['cpu_p50']:6.1f}x CPU (p50); "
              f"p50 <= 50 ms: {'met' if stats['p50'] <= 50 else 'NOT met'}")
        if stats.get("server_cpu_p50", 0) > 50:  # where OPA alone could explain a miss
            # However the decision is split into requests, OPA's own CPU spread over every
            # core of this machine bounds its wall time from below.
            floor = stats["server_cpu_p50"] / (os.cpu_count() or 1)
            print(f"{'':<30} OPA's own CPU {stats['server_cpu_p50']:.0f} ms per decision: at best "
                  f"{floor:.0f} ms on {os.cpu_count()} CPUs, before this process's share")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"objects": len(objects), "load": os.getloadavg()[0],
                                   "parallelism": args.parallelism, "changed_percent": args.changed,
                                   "cpus": os.cpu_count(), "results": results}, indent=2))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
