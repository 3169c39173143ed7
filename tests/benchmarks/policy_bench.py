"""Benchmark: a 1,000-object release judged by each engine, against ``conftest test`` and
``gator test`` on the same files, in the same run; and what loading policy sets costs.

    .venv/bin/python -m tests.benchmarks.policy_bench [--objects 1000] [--runs 30]

No database. The binaries come from ``ensure_binaries`` (built from their Go modules).
A decision is what the gate does for one apply: build the input (with the change and
the reviews), match the constraints, evaluate every policy, classify the findings, with
the policies loaded once beforehand. Two policy sets:

- **baseline**: the shipped library (``policies/``); its conftest-style part is also
  run by ``conftest test`` (context passed with ``--data``);
- **gatekeeper-heavy**: twenty library-style templates (the conformance suites'
  fourteen in ``tests/policy/gatekeeper/`` and six more here), one constraint each,
  also run by ``gator test`` on the same objects.

Engines: **embedded** (the default: an OPA this process runs, ``managed.py``), **opa**
(a separate ``opa run --server``, as production points Fleet at one), and
**in-process** (OPA's Go engine built as a shared library from
``tests/benchmarks/opa_inprocess`` and loaded with ctypes: the alternative to the
embedded default that was measured and not chosen; skipped when it cannot be built).
Each is timed cold (every object new: a release never seen) and, for the embedded one,
behind the memo of per-object findings (same release again; ``--changed`` % new).
Every run checks that the engines agree with each other, with conftest on the denial
count, and with gator on the Gatekeeper findings.

Also printed: each engine's start-up (process ready, or library loaded) and memory
(the OPA process's RSS, or this process's growth for the in-process library) with both
sets loaded, and the time to load a set into OPA when 1, 50 and 100 sets are loaded
(OPA recompiles everything it holds on each PUT), and to replace one set 100 times.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
SUITES = ROOT / "tests" / "policy" / "gatekeeper"
INPROCESS = Path(__file__).resolve().parent / "opa_inprocess"
RESULTS = Path(__file__).resolve().parent / "results" / "policy_bench.json"
CLUSTER = {"name": "eu-prod-1", "labels": {"env": "prod"}, "channel": "stable"}
CONTEXT = {"cluster": CLUSTER, "release": {"from": None, "to": None},
           "change": {"added": [], "changed": [], "removed": []}}
WORKLOADS = '[{apiGroups: [""], kinds: [Pod]}, {apiGroups: [apps], kinds: [Deployment]}]'
# Six more library-style templates (Rego v0), so the heavy set has twenty.
EXTRA = {
    "K8sBenchPrivileged": ('c := input.review.object.spec.template.spec.containers[_]\n  '
                           'c.securityContext.privileged\n  msg := sprintf("privileged container <%v>", [c.name])'),
    "K8sBenchHostNamespace": ('input.review.object.spec.template.spec.hostPID\n  '
                              'msg := "sharing the host PID namespace is not allowed"'),
    "K8sBenchReadOnlyRoot": ('c := input.review.object.spec.template.spec.containers[_]\n  '
                             'not c.securityContext.readOnlyRootFilesystem == true\n  '
                             'msg := sprintf("container <%v> must have a read-only root filesystem", [c.name])'),
    "K8sBenchProbes": ('c := input.review.object.spec.template.spec.containers[_]\n  '
                       'probe := ["readinessProbe", "livenessProbe"][_]\n  not c[probe]\n  '
                       'msg := sprintf("container <%v> has no %v", [c.name, probe])'),
    "K8sBenchLimits": ('c := input.review.object.spec.template.spec.containers[_]\n  not c.resources.limits.memory\n  '
                       'msg := sprintf("container <%v> has no memory limit", [c.name])'),
    "K8sBenchReplicas": ('r := object.get(input.review.object.spec, "replicas", 1)\n  r > 50\n  '
                         'msg := sprintf("%v replicas is more than 50", [r])'),
}
HEAVY_MATCH = {"K8sUniqueIngressHostSuite": '[{apiGroups: [networking.k8s.io], kinds: [Ingress]}]',
               "K8sUniqueServiceSelectorSuite": '[{apiGroups: [""], kinds: [Service]}]',
               "K8sStorageClassSuite": '[{apiGroups: [""], kinds: [PersistentVolumeClaim]}]',
               "K8sHorizontalPodAutoscalerSuite": '[{apiGroups: [autoscaling], kinds: [HorizontalPodAutoscaler]}]',
               "K8sBlockWildcardIngressSuite": '[{apiGroups: [networking.k8s.io], kinds: [Ingress]}]',
               "K8sRequiredLabelsSuite": '[{apiGroups: [""], kinds: [Namespace, Service]}]'}
HEAVY_PARAMETERS = {
    "K8sAllowedRepos": {"repos": ["registry.example.com/"]}, "K8sDisallowedRepos": {"repos": ["docker.io/"]},
    "K8sRequiredLabelsSuite": {"labels": [{"key": "owner"}]}, "K8sDisallowedTagsSuite": {"tags": ["latest"]},
    "K8sCapabilitiesSuite": {"allowedCapabilities": [], "requiredDropCapabilities": []},
    "K8sUsersAndGroupsSuite": {"runAsUser": {"rule": "RunAsAny"}}, "K8sProcMountSuite": {"procMount": "Default"},
    "K8sSeccompSuite": {"allowedProfiles": ["RuntimeDefault"]}, "K8sStorageClassSuite": {},
    "K8sHorizontalPodAutoscalerSuite": {"minimumReplicaSpread": 1},
}


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99, "n": len(ordered)}


def _time(run: Callable[[], object], runs: int, cpu: Callable[[], float], warmup: int = 1) -> dict[str, float]:
    """Wall and CPU milliseconds per run; CPU (this process and the OPA or tool process)
    is what the work costs, and stays meaningful on a busy machine."""
    for _ in range(warmup):
        run()
    wall, spent = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), cpu()
        run()
        wall.append((time.perf_counter() - started) * 1000)
        spent.append((cpu() - started_cpu) * 1000)
    return {**_percentiles(wall), "cpu_p50": statistics.median(spent)}


def _cpu_of(pid: int | None) -> Callable[[], float]:
    """This process's CPU seconds, plus those of process ``pid`` (an OPA server)."""
    def cpu() -> float:
        own = time.process_time()
        if pid is None:
            return own
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return own + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _line(name: str, stats: dict[str, Any], extra: str = "") -> None:
    print(f"{name:<52} p50 {stats['p50']:8.1f} ms  p99 {stats['p99']:8.1f} ms  cpu p50 {stats['cpu_p50']:8.1f} ms"
          f"  (n={stats['n']}){extra}")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def heavy_files() -> dict[str, str]:
    """The gatekeeper-heavy set: twenty templates, a constraint of each."""
    files: dict[str, str] = {}
    for suite in sorted(SUITES.iterdir()):
        if suite.name == "match":
            continue
        text = (suite / "template.yaml").read_text()
        kind = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("kind: K8s"))
        files[f"{suite.name}.yaml"] = text + "---\n" + _constraint(kind)
    for kind, body in EXTRA.items():
        files[f"{kind.lower()}.yaml"] = (
            f"apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata: {{name: {kind.lower()}}}\n"
            f"spec:\n  crd: {{spec: {{names: {{kind: {kind}}}}}}}\n"
            "  targets:\n    - target: admission.k8s.gatekeeper.sh\n"
            f"      rego: |\n        package {kind.lower()}\n\n        violation[{{\"msg\": msg}}] {{\n          "
            + body.replace("\n", "\n        ") + "\n        }\n---\n" + _constraint(kind))
    return files


def _constraint(kind: str) -> str:
    parameters = f"  parameters: {json.dumps(HEAVY_PARAMETERS[kind])}\n" if kind in HEAVY_PARAMETERS else ""
    return (f"apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata: {{name: bench}}\nspec:\n"
            f"  match: {{kinds: {HEAVY_MATCH.get(kind, WORKLOADS)}}}\n" + parameters)


def build_inprocess(progress: Callable[[str], None]) -> Path | None:
    """OPA's Go engine as a shared library (needs cgo and a C compiler); None if not built."""
    target = Path(tempfile.gettempdir()) / "fleet-bench-libfleetopa.so"
    if target.is_file():
        return target
    progress("building OPA's Go engine as a shared library (go build -buildmode=c-shared, minutes)…")
    run = subprocess.run(["go", "build", "-trimpath", "-buildmode=c-shared", "-o", str(target), "."], cwd=INPROCESS,
                         env={**os.environ, "CGO_ENABLED": "1", "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"},
                         capture_output=True, text=True)
    if run.returncode != 0:
        progress(f"in-process engine not built: {run.stderr.strip()[-300:]}")
        return None
    return target


def inprocess_engine_class():
    """An OpaEngine whose queries run in this process, through the shared library."""
    from fleet.policy.engines.opa_engine import OpaEngine, driver_source
    from fleet.policy.errors import PolicyError

    class InProcessEngine(OpaEngine):
        name = "in-process"

        def __init__(self, library: Path, parallelism: int):
            super().__init__("http://127.0.0.1:1", parallelism=parallelism)
            self.lib = ctypes.CDLL(str(library))
            for function in (self.lib.FleetPrepare, self.lib.FleetEval):
                function.restype = ctypes.c_void_p
            self.lib.FleetEval.argtypes = [ctypes.c_longlong, ctypes.c_char_p]
            self._handles: dict[tuple[str, str], int] = {}

        def _call(self, function, *args) -> dict:
            pointer = function(*args)
            try:
                return json.loads(ctypes.string_at(pointer).decode())
            finally:
                self.lib.FleetFree(ctypes.c_void_p(pointer))

        def _load(self, bundle) -> None:
            modules = {m.id: m.source for m in bundle.modules}
            modules["fleet_driver"] = driver_source(bundle)
            for rule in ("hits", "object_hits", "set_hits"):
                answer = self._call(self.lib.FleetPrepare, json.dumps(modules).encode(),
                                    f"data.{bundle.prefix}.fleet_driver.{rule}".encode())
                if "error" in answer:
                    raise PolicyError(answer["error"], code="syntax")
                self._handles[(bundle.hash, rule)] = answer["handle"]
            with self._lock:
                self._loaded[bundle.hash] = {}

        def _query(self, bundle, rule: str, document: dict) -> dict:
            answer = self._call(self.lib.FleetEval, self._handles[(bundle.hash, rule)], json.dumps(document).encode())
            if "error" in answer:
                raise PolicyError(answer["error"], code="runtime")
            return answer

        def _delete(self, policy_ids: list[str]) -> None:
            pass

    return InProcessEngine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=30, help="decisions per engine on the baseline")
    parser.add_argument("--heavy-runs", type=int, default=5, help="decisions per engine on the gatekeeper-heavy set")
    parser.add_argument("--tool-runs", type=int, default=5, help="runs of conftest and gator")
    parser.add_argument("--parallelism", type=int, default=2, help="concurrent OPA requests per decision")
    parser.add_argument("--changed", type=float, default=5.0, help="percent of objects new in each memo run")
    parser.add_argument("--sets", type=int, default=100, help="policy sets loaded for the load-time measure")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()

    from fleet.dev.opa_process import opa_server
    from fleet.policy import gate
    from fleet.policy.bundle import load_bundle, read_directory
    from fleet.policy.engines.managed import ManagedOpaEngine
    from fleet.policy.engines.memo import MemoEngine
    from fleet.policy.engines.opa_engine import OpaEngine
    from fleet.policy.inputs import build_input
    from fleet.toolchain.build import ensure_binaries
    from tests.policy.objects import release

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    binaries = ensure_binaries(["opa", "conftest", "gator"], progress=progress)
    library = build_inprocess(progress)
    objects = release(args.objects, broken_every=5)
    baseline_files = read_directory(POLICIES)
    bundles = {"baseline": load_bundle(baseline_files), "gatekeeper-heavy": load_bundle(heavy_files())}
    subset = load_bundle({**{f"baseline/{k}": v for k, v in read_directory(POLICIES / "baseline").items()},
                          **{f"lib/{k}": v for k, v in read_directory(POLICIES / "lib").items()}})
    results: dict[str, Any] = {"decisions": {}, "engines": {}, "tools": {}, "loading": {}}
    print(f"\n{len(objects)} objects; machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"gatekeeper-heavy: {len(bundles['gatekeeper-heavy'].templates)} templates\n")

    def decide(engine, bundle, current=objects) -> gate.Verdict:
        data = build_input(current, cluster=CLUSTER, deployed=current)
        return gate.evaluate([gate.PolicySetSpec("bench", "enforce", False, bundle)], data, engine,
                             now=datetime.now(UTC))

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        engines: dict[str, Any] = {}
        started = time.perf_counter()
        engines["embedded"] = ManagedOpaEngine(binary=binaries["opa"], parallelism=args.parallelism, timeout=300)
        results["engines"]["embedded"] = {"startup_ms": (time.perf_counter() - started) * 1000}
        with opa_server(binaries["opa"], tmp_path / "opa.log") as server:
            engines["opa"] = OpaEngine(server.url, timeout=300, parallelism=args.parallelism)
            cpus = {"embedded": _cpu_of(engines["embedded"].server.pid), "opa": _cpu_of(server.pid),
                    "in-process": _cpu_of(None)}
            if library is not None:
                rss_before, started = _rss_kb(os.getpid()), time.perf_counter()
                engines["in-process"] = inprocess_engine_class()(library, args.parallelism)
                results["engines"]["in-process"] = {"startup_ms": (time.perf_counter() - started) * 1000}
            findings: dict[str, dict[str, list]] = {}
            for set_name, bundle in bundles.items():
                for name, engine in engines.items():
                    started = time.perf_counter()
                    engine.prepare(bundle)
                    verdict = decide(engine, bundle)
                    assert not verdict.errors, (name, verdict.errors)
                    findings.setdefault(set_name, {})[name] = sorted((v.rule, v.object, v.message)
                                                                     for v in verdict.violations)
                    runs = args.runs if set_name == "baseline" else args.heavy_runs
                    stats = {**_time(lambda: decide(engine, bundle), runs, cpus[name]),
                             "first_ms": (time.perf_counter() - started) * 1000, "denials": verdict.counts()["deny"]}
                    results["decisions"][f"{name} / {set_name}"] = stats
                    _line(f"{name} / {set_name} (cold)", stats, f"  {stats['denials']} denials")
                if len({json.dumps(f) for f in findings[set_name].values()}) != 1:
                    raise SystemExit(f"the engines disagree on {set_name}")
            results["engines"]["embedded"]["rss_mb"] = _rss_kb(engines["embedded"].server.pid) / 1024
            results["engines"]["opa"] = {"rss_mb": _rss_kb(server.pid) / 1024}
            if library is not None:
                results["engines"]["in-process"]["rss_mb"] = (_rss_kb(os.getpid()) - rss_before) / 1024

            memo = MemoEngine(engines["embedded"], 100_000)
            changed_count = max(1, round(len(objects) * args.changed / 100))
            generation = iter(range(1, 1_000_000))

            def partly_new() -> list[dict]:
                mark, current = str(next(generation)), list(objects)
                for i in range(changed_count):  # new to the memo, same verdicts
                    meta = {**current[i]["metadata"], "annotations": {"bench/generation": mark}}
                    current[i] = {**current[i], "metadata": meta}
                return current

            for set_name, bundle in bundles.items():
                for label, release_of in (("same release", lambda: objects),
                                          (f"{args.changed:g}% changed", partly_new)):
                    runs = args.runs if set_name == "baseline" else args.heavy_runs
                    stats = _time(lambda: decide(memo, bundle, release_of()), runs, cpus["embedded"])
                    results["decisions"][f"embedded + memo, {label} / {set_name}"] = stats
                    _line(f"embedded + memo, {label} / {set_name}", stats)

            results["tools"] = run_tools(binaries, objects, subset, bundles["gatekeeper-heavy"], tmp_path, args,
                                         findings["gatekeeper-heavy"]["embedded"], decide, engines["embedded"])
            results["loading"] = measure_loading(OpaEngine(server.url, timeout=300), baseline_files, args.sets)
            for engine in engines.values():
                engine.close()
    print()
    for name, stats in results["engines"].items():
        start = f"start-up {stats['startup_ms']:.0f} ms, " if "startup_ms" in stats else ""
        print(f"{name:<12} {start}memory {stats['rss_mb']:.0f} MB with both sets loaded")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"objects": len(objects), "load": os.getloadavg()[0], "cpus": os.cpu_count(),
                                   "parallelism": args.parallelism, "results": results}, indent=2))
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")


def run_tools(binaries, objects, subset, heavy, tmp_path: Path, args, heavy_findings, decide, engine) -> dict:
    """conftest on the conftest-style subset, gator on the heavy set; each agrees with Fleet."""
    import yaml

    manifests, context = tmp_path / "release.yaml", tmp_path / "context.json"
    manifests.write_text(yaml.safe_dump_all(objects))
    context.write_text(json.dumps({"fleet": CONTEXT}))
    conftest_cmd = [str(binaries["conftest"]), "test", str(manifests), "--policy", str(POLICIES / "baseline"),
                    "--policy", str(POLICIES / "lib"), "--data", str(context), "--all-namespaces", "--output", "json",
                    "--no-color"]
    gator_dir = tmp_path / "gator"
    gator_dir.mkdir()
    for name, text in heavy.files.items():
        (gator_dir / name).write_text(text)
    (gator_dir / "release.yaml").write_text(yaml.safe_dump_all(objects))
    gator_cmd = [str(binaries["gator"]), "test", "-f", str(gator_dir), "-o", "json"]

    def tool(command: list[str]) -> Any:
        run = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if run.returncode not in (0, 1):
            raise SystemExit(f"{command[0]} failed ({run.returncode}): {run.stderr[:500]}")
        return json.loads(run.stdout or "null")

    denials = sum(len(r.get("failures") or []) for r in tool(conftest_cmd))
    fleet_subset = decide(engine, subset)
    if fleet_subset.counts()["deny"] != denials:
        raise SystemExit(f"Fleet found {fleet_subset.counts()['deny']} denials, conftest {denials}")
    gator_findings = sorted((f"{r['constraint']['kind']}/{r['constraint']['metadata']['name']}",
                             _path(r["violatingObject"]), r["msg"]) for r in tool(gator_cmd) or []
                            if r["violatingObject"].get("kind") != "ConstraintTemplate"
                            and "constraints.gatekeeper.sh" not in r["violatingObject"].get("apiVersion", ""))
    if gator_findings != heavy_findings:
        raise SystemExit(f"Fleet and gator disagree: {len(heavy_findings)} vs {len(gator_findings)} findings")
    results = {"conftest / conftest-style subset": _time(lambda: tool(conftest_cmd), args.tool_runs, _children_cpu,
                                                          warmup=0),
               "gator test / gatekeeper-heavy": _time(lambda: tool(gator_cmd), args.tool_runs, _children_cpu,
                                                      warmup=0)}
    for name, stats in results.items():
        _line(name, stats, f"  (same findings as Fleet: {denials if 'conftest' in name else len(gator_findings)})")
    return results


def _path(obj: dict) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
    return f"{obj['kind']}/{where}"


def measure_loading(engine, files: dict[str, str], count: int) -> dict:
    """Load ``count`` distinct sets into one OPA; then replace one set ``count`` times."""
    from fleet.policy.bundle import load_bundle

    times = []
    for n in range(count):
        bundle = load_bundle({**files, "baseline/images.rego": files["baseline/images.rego"] + f"\n# set {n}\n"})
        started = time.perf_counter()
        engine.prepare(bundle, slot=f"set-{n}")
        times.append((time.perf_counter() - started) * 1000)
        if (n + 1) % 10 == 0:
            print(f"  loaded {n + 1} sets: the last in {times[-1]:.0f} ms", flush=True)
    replaced = []
    for n in range(count):
        bundle = load_bundle({**files, "baseline/images.rego": files["baseline/images.rego"] + f"\n# v{n}\n"})
        started = time.perf_counter()
        engine.prepare(bundle, slot="set-0")
        replaced.append((time.perf_counter() - started) * 1000)
    engine.close()
    result = {"first_ms": times[0], "at_half_ms": times[count // 2], "at_last_ms": times[-1],
              "replace_p50_ms": statistics.median(replaced), "replace_last_ms": replaced[-1]}
    print(f"\nloading a set: the 1st {result['first_ms']:.0f} ms, "
          f"the {count // 2 + 1}th {result['at_half_ms']:.0f} ms, "
          f"the {count}th {result['at_last_ms']:.0f} ms; replacing one set {count} times: p50 "
          f"{result['replace_p50_ms']:.0f} ms, last {result['replace_last_ms']:.0f} ms ({count} sets held)")
    return result


if __name__ == "__main__":
    main()
