"""Benchmark: Fleet's kube adapter against a kubectl loop, on real local clusters.

    .venv/bin/python -m tests.benchmarks.kube_bench [--clusters N] [--rounds R]

Brings up N local clusters (tests/dev; real kube-apiservers) and, in the same
run and with the same 20 objects per cluster on each side (a Namespace, ConfigMaps,
Secrets, Services and Deployments; each side in its own namespace), measures:

1. apply: Fleet's ``apply_set`` to all N clusters at once (dry-run gate, server-side
   apply, ApplySet bookkeeping and prune included) against a sequential
   ``kubectl apply --server-side`` loop; first apply (creates) and a re-apply
   (nothing changes, the steady state of a rollout).
2. drift: Fleet's normalised ``diff_set`` over the fleet against a sequential
   ``kubectl diff --server-side`` loop (target: at least 5x faster).

The sides alternate which runs first each round; figures are medians over rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


def _timed(call: Callable[[], Any]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _kubectl(kubectl: Path, cluster: Any, *args: str, ok: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run([str(kubectl), "--kubeconfig", str(cluster.kubeconfig_path), *args],
                            capture_output=True, text=True)
    if result.returncode not in ok:
        sys.exit(f"kubectl {' '.join(args)} on {cluster.name} failed: {result.stderr.strip()[:500]}")


@contextmanager
def local_clusters(count: int) -> Iterator[list[Any]]:
    """``count`` fresh clusters of the local fleet, stopped and purged afterwards."""
    from fleet.dev.localfleet.fleet import LocalFleet

    fleet = LocalFleet(tempfile.mkdtemp(prefix="fleet-kube-bench-"))
    try:
        started = time.perf_counter()
        clusters = fleet.up(count, die_with_parent=True, progress=lambda line: None)
        print(f"{count} clusters up in {time.perf_counter() - started:.0f}s", flush=True)
        yield clusters
    finally:
        fleet.down(purge=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", type=int, default=int(os.environ.get("FLEET_BENCH_CLUSTERS", 6)))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--objects", type=int, default=20)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    from fleet.inventory.kubeconfig import ConnectionSpec
    from fleet.kube.apply import apply_set
    from fleet.kube.applyset import ApplySet
    from fleet.kube.client import KubeClient
    from fleet.kube.diff import diff_set
    from fleet.kube.errors import KubeError
    from fleet.kube.services import for_each
    from fleet.toolchain.build import ensure_binaries
    from tests.kube.manifests import fleet_app

    kubectl = ensure_binaries(["kubectl"])["kubectl"]
    run = uuid.uuid4().hex[:6]
    with local_clusters(options.clusters) as clusters, tempfile.TemporaryDirectory() as tmp:
        clients = [KubeClient(ConnectionSpec(name=c.name, server=c.server, token=c.token, ca_pem=c.ca_pem))
                   for c in clusters]
        n = len(clients)

        def fleet(fn: Callable[[KubeClient], Any]) -> list[Any]:
            results = [result for _, result in for_each(clients, fn, max_parallel=n)]
            failures = [result for result in results if isinstance(result, KubeError)]
            if failures:
                sys.exit(f"fleet side failed: {failures[0]}")
            return results

        def drift() -> None:
            # Just applied, so in sync; anything else would mean we timed a broken diff.
            drifted = [r for r in fleet(lambda c: diff_set(c, ours, applyset=applyset)) if not r.in_sync]
            if drifted:
                sys.exit(f"unexpected drift on {drifted[0].cluster}: {drifted[0].as_dict()}")

        def kubectl_loop(*args: str, ok: tuple[int, ...] = (0,)) -> None:
            for cluster in clusters:
                _kubectl(kubectl, cluster, *args, ok=ok)

        # Warm both sides: our discovery cache and connections, kubectl's discovery cache.
        fleet(lambda c: c.get("/version"))
        kubectl_loop("api-resources", "-o", "name")
        samples: dict[str, list[float]] = {key: [] for key in (
            "fleet_apply", "kubectl_apply", "fleet_reapply", "kubectl_reapply", "fleet_diff", "kubectl_diff")}
        namespaces: list[str] = []
        print(f"{n} local clusters, {options.objects} objects each, {options.rounds} rounds\n", flush=True)
        for round_ in range(options.rounds):
            ns_fleet, ns_kubectl = f"bench-{run}-f{round_}", f"bench-{run}-k{round_}"
            namespaces += [ns_fleet, ns_kubectl]
            ours, applyset = fleet_app(ns_fleet, options.objects), ApplySet(f"bench-{run}-{round_}")
            manifest = Path(tmp) / f"{ns_kubectl}.yaml"
            manifest.write_text(yaml.safe_dump_all(fleet_app(ns_kubectl, options.objects)))
            kubectl_apply = ("apply", "--server-side", "--field-manager=kubectl-bench", "-f", str(manifest))
            steps: list[tuple[str, Callable[[], None], str, Callable[[], None]]] = [
                ("fleet_apply", lambda: fleet(lambda c: apply_set(c, ours, applyset=applyset)),
                 "kubectl_apply", lambda: kubectl_loop(*kubectl_apply)),
                ("fleet_reapply", lambda: fleet(lambda c: apply_set(c, ours, applyset=applyset)),
                 "kubectl_reapply", lambda: kubectl_loop(*kubectl_apply)),
                ("fleet_diff", drift,
                 "kubectl_diff", lambda: kubectl_loop("diff", "--server-side", "--field-manager=kubectl-bench",
                                                      "-f", str(manifest))),
            ]
            for ours_key, ours_call, theirs_key, theirs_call in steps:
                pair = [(ours_key, ours_call), (theirs_key, theirs_call)]
                for key, call in pair if round_ % 2 == 0 else reversed(pair):
                    samples[key].append(_timed(call))
            print(f"round {round_ + 1}: " + "  ".join(f"{k} {v[-1] * 1000:.0f}ms" for k, v in samples.items()),
                  flush=True)
        medians = {key: statistics.median(values) * 1000 for key, values in samples.items()}
        print(f"\nmedians over {options.rounds} rounds, {n} clusters x {options.objects} objects:")
        for what in ("apply", "reapply", "diff"):
            ours_ms, theirs_ms = medians[f"fleet_{what}"], medians[f"kubectl_{what}"]
            print(f"  {what:<8} fleet {ours_ms:8.0f} ms   kubectl loop {theirs_ms:8.0f} ms   "
                  f"ratio {theirs_ms / ours_ms:5.1f}x")
        print(f"  drift target >= 5x: {'met' if medians['kubectl_diff'] / medians['fleet_diff'] >= 5 else 'MISSED'}")
        for client in clients:
            for ns in namespaces:
                try:
                    client.request("DELETE", f"/api/v1/namespaces/{ns}")
                except KubeError:
                    pass
            client.close()


if __name__ == "__main__":
    main()
