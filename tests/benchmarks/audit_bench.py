"""Benchmark: the audit log at 1,000,000 events on PostgreSQL.

    eval "$(scripts/services.sh up)"; .venv/bin/python -m tests.benchmarks.audit_bench [--events N]

Loads (once, into ``<name>_audit_bench``, reused while the count matches) a year of
events with payloads shaped like Fleet's (cluster snapshots, deployment transitions,
policy decisions), a checkpoint signed every 1,000 events, and a year of rollouts over
200 clusters. Then measures, against the targets of issue 16:
- the change report for one month (target <= 2 s);
- a full ``audit verify`` (target <= 10 s), in events per second, beside the same walk
  with the reference ``json.dumps`` encoding (what verification cost before);
- an export of every event to a signed bundle, in a fresh process, with its peak RSS
  against a tenth of the events (constant memory: the two peaks should match), and the
  standalone verifier over that bundle.
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks.support import bench_database_url, ensure_database

START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
N_CLUSTERS, ROLLOUTS_PER_WEEK, CLUSTERS_PER_ROLLOUT = 200, 5, 40


def _payload(rng: random.Random, i: int) -> dict:
    """Event fields shaped like Fleet's own, by action mix."""
    cluster = f"cluster-{i % N_CLUSTERS:03d}"
    kind = rng.random()
    if kind < 0.5:
        return {"action": rng.choice(["deployment.started", "deployment.succeeded", "wave.baking"]),
                "target_type": "clusterdeployment", "target_id": str(i // 7),
                "target_repr": f"{cluster} in rollout #{i // 400}",
                "cluster": cluster, "before": None, "after": None,
                "metadata": {"state": "running", "rollout": i // 400, "error": ""}}
    if kind < 0.85:
        snapshot = {"id": i % N_CLUSTERS, "name": cluster, "labels": {"env": rng.choice(["prod", "dev"]),
                    "region": rng.choice(["eu", "us"])}, "api_server_url": f"https://10.0.0.{i % 250}:6443",
                    "credentials_encrypted": "(set)", "internal_repo_url": f"https://git.example.com/{cluster}.git",
                    "internal_branch": "main", "channel": 1, "paused": False, "pinned": False, "protected": False,
                    "status": "ready", "status_message": "", "last_contact_at": "2026-01-01T00:00:00+00:00"}
        return {"action": "cluster.update", "target_type": "cluster", "target_id": str(i % N_CLUSTERS),
                "target_repr": cluster, "cluster": cluster, "before": snapshot,
                "after": {**snapshot, "status": "degraded", "status_message": "apiserver slow: 2.1s"},
                "metadata": {"changed": ["status", "status_message"]}}
    return {"action": "policydecision.create", "target_type": "policydecision", "target_id": str(i),
            "target_repr": f"{cluster}: allowed", "cluster": cluster, "before": None,
            "after": {"allowed": True, "engine": "opa", "violations": [
                {"rule": "baseline.images.deny", "message": f"image tag latest in web-{n}", "severity": "error",
                 "enforcement": "warn", "object": f"Deployment/platform/web-{n}", "waiver": ""} for n in range(3)],
                "elapsed_ms": 12.5, "object_count": 42},
            "metadata": {"allowed": True, "counts": {"deny": 0, "warn": 3, "waived": 0, "dryrun": 0}}}


def _load_events(n: int) -> None:
    import orjson
    from django.conf import settings
    from django.db import connection

    from fleet.audit.keys import signing_key, signing_key_id
    from fleet.audit.models import AuditEvent
    from fleet_audit_verify.canonical import GENESIS_HASH, event_hash
    from fleet_audit_verify.signing import checkpoint_statement, sign

    if AuditEvent.objects.count() == n:
        return
    print(f"loading {n:,} audit events (once)…", flush=True)
    rng, prev, every = random.Random(16), GENESIS_HASH, settings.FLEET_AUDIT_CHECKPOINT_EVERY
    step = 365 * 86400 / n
    key, key_id = signing_key(), signing_key_id()
    columns = ("sequence", "timestamp", "actor", "source", "action", "target_type", "target_id", "target_repr",
               "cluster", "before", "after", "request_id", "metadata", "prev_hash", "hash")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent, audit_auditcheckpoint")
        raw, signed = cursor.connection, []
        with raw.cursor() as copy_cursor:
            with copy_cursor.copy(f"COPY audit_auditevent ({', '.join(columns)}) FROM STDIN") as copy:
                for i in range(1, n + 1):
                    when = START + datetime.timedelta(seconds=i * step)
                    fields = {"sequence": i, "timestamp": when.isoformat(), "actor": rng.choice(
                        ["ada-admin", "otto-operator", "task:rollouts.run_deployment", "system"]),
                        "source": rng.choice(["api", "task", "cli"]), "request_id": f"{i:032x}",
                        "prev_hash": prev, **_payload(rng, i)}
                    prev = event_hash(fields)
                    copy.write_row([i, when, *(fields[c] for c in columns[2:9]),
                                    *(None if fields[c] is None else orjson.dumps(fields[c]).decode()
                                      for c in ("before", "after")), fields["request_id"],
                                    orjson.dumps(fields["metadata"]).decode(), fields["prev_hash"], prev])
                    if i % every == 0:
                        statement = checkpoint_statement(sequence=i, hash=prev, time=when.isoformat(), every=every,
                                                         key_id=key_id)
                        signed.append([i, prev, when, every, key_id, sign(key, statement)])
            with copy_cursor.copy("COPY audit_auditcheckpoint (sequence, hash, created_at, every, key_id, "
                                  "signature) FROM STDIN") as copy:
                for row in signed:
                    copy.write_row(row)
        cursor.execute("ANALYZE audit_auditevent")


def _load_rollouts() -> None:
    from django.contrib.auth import get_user_model

    from fleet.inventory.models import Channel, Cluster, Release
    from fleet.rollouts.models import ClusterDeployment, Rollout, Wave

    if Rollout.objects.exists():
        return
    print("loading a year of rollouts…", flush=True)
    rng = random.Random(7)
    author, _ = get_user_model().objects.get_or_create(username="ada-admin")
    approver, _ = get_user_model().objects.get_or_create(username="grace-admin")
    channels = [Channel.objects.create(name=f"stable-1-{v}", repo_url="https://git.example.com/vendor.git",
                                       branch=f"release-1.{v}") for v in range(2)]
    clusters = Cluster.objects.bulk_create(
        Cluster(name=f"cluster-{i:03d}", channel=channels[i % 2], labels={"env": rng.choice(["prod", "dev"])},
                api_server_url=f"https://10.0.0.{i}:6443", internal_repo_url=f"https://git.example.com/c{i}.git")
        for i in range(N_CLUSTERS))
    deployments = []
    weeks = 52
    for week in range(weeks):
        for day in range(ROLLOUTS_PER_WEEK):
            started = START + datetime.timedelta(weeks=week, days=day, hours=10)
            channel = channels[(week + day) % 2]
            release = Release.objects.create(channel=channel, version=f"1.{week}.{day}",
                                             upstream_sha=f"{week * 10 + day:040x}")
            strategy = [{"name": "canary", "require_approval": False}, {"name": "rest", "require_approval": True}]
            rollout = Rollout.objects.create(release=release, strategy=strategy, author=author, state="succeeded",
                                             started_at=started, finished_at=started + datetime.timedelta(hours=2))
            canary = Wave.objects.create(rollout=rollout, index=0, name="canary", max_parallel=5, max_failures="0")
            rest = Wave.objects.create(rollout=rollout, index=1, name="rest", max_parallel=10, max_failures="10%",
                                       require_approval=True, approved_by=approver, approved_at=started)
            for n, cluster in enumerate(rng.sample(clusters, CLUSTERS_PER_ROLLOUT)):
                begun = started + datetime.timedelta(minutes=n)
                state = rng.choices(["succeeded", "failed", "blocked"], [0.93, 0.04, 0.03])[0]
                deployments.append(ClusterDeployment(
                    rollout=rollout, wave=canary if n < 4 else rest, cluster=cluster, state=state,
                    upstream_sha=release.upstream_sha, local_sha=f"{n:040x}", tag=f"deploy/x/{rollout.pk}-{n}",
                    previous_tag=f"deploy/x/{rollout.pk - 1}-{n}", started_at=begun,
                    finished_at=begun + datetime.timedelta(seconds=rng.randint(30, 300)),
                    policy={"allowed": state != "blocked", "counts": {"deny": int(state == "blocked"), "warn": 2},
                            "violations": []},
                    steps={"verify": {"ok": state == "succeeded", "seconds": 12.0, "detail": {"elapsed": 11.5}},
                           "apply": {"ok": state != "blocked"}}))
    ClusterDeployment.objects.bulk_create(deployments, batch_size=2000)


def _timed(call, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the verify workers): what
    the walk costs whatever else the machine runs."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _export_child(limit: int, path: str) -> None:
    """Run in a fresh process: peak RSS before and after exporting ``limit`` events."""
    from fleet.audit import export

    def hwm() -> int:
        return int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))

    before, started = hwm(), time.perf_counter()
    with open(path, "wb") as handle:
        for chunk in export.bundle(last=limit):
            handle.write(chunk)
    print(f"{before} {hwm()} {time.perf_counter() - started:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--export-child", nargs=2, metavar=("LIMIT", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    given = os.environ.get("DATABASE_URL", "")
    url = bench_database_url("_audit_bench")
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    if args.export_child:
        _export_child(int(args.export_child[0]), args.export_child[1])
        return
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _load_events(args.events)
    _load_rollouts()
    from fleet.audit import verify
    from fleet.audit.services import verify_chain
    from fleet.reports import services as reports
    from fleet_audit_verify.canonical import event_hash

    print(f"\n{args.events:,} audit events on PostgreSQL; machine load {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores\n")
    month = {"since": "2026-06-01", "until": "2026-07-01"}
    report = reports.build("changes", month)
    samples = _timed(lambda: reports.build("changes", month), 5)
    print(f"change report, one month ({report.summary['deployments']} deployments): median "
          f"{statistics.median(samples):.2f} s, best {min(samples):.2f} s (target <= 2 s)")

    from django.conf import settings

    workers = settings.FLEET_AUDIT_VERIFY_WORKERS
    for count in sorted({1, workers}):
        cpu = _cpu()
        result = verify_chain(workers=count)
        assert result.ok, result.reason
        cpu = _cpu() - cpu
        samples = _timed(lambda: verify_chain(workers=count), 2) + [result.elapsed]
        best = min(samples)
        print(f"audit verify, {count} process(es), every event and {result.checkpoints} checkpoints: median "
              f"{statistics.median(samples):.2f} s, best {best:.2f} s = {args.events / best:,.0f} events/s "
              f"(target <= 10 s); {cpu:.1f} CPU-s in Python = {args.events / cpu:,.0f} events per CPU-second")
    subset = 100_000
    started = time.perf_counter()
    for row in verify.rows(1, subset):
        fields = verify.event_fields(row)
        assert event_hash(fields) == fields.pop("hash")
    reference = subset / (time.perf_counter() - started)
    print(f"  the same walk with the reference json.dumps encoding: {reference:,.0f} events/s "
          f"({args.events / reference:.1f} s for all)")

    with tempfile.TemporaryDirectory() as tmp:
        peaks = {}
        for limit in (args.events // 10, args.events):
            path = Path(tmp) / f"bundle-{limit}.jsonl"
            out = subprocess.run([sys.executable, "-m", "tests.benchmarks.audit_bench", "--export-child",
                                  str(limit), str(path)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "DATABASE_URL": given}).stdout.split()
            before, after, seconds = int(out[0]), int(out[1]), float(out[2])
            peaks[limit] = after
            print(f"export of {limit:,} events: {seconds:.1f} s, {path.stat().st_size / 1e6:,.0f} MB; peak RSS "
                  f"{after / 1024:.0f} MiB (process before export {before / 1024:.0f} MiB)")
        print(f"  peak RSS, all events vs a tenth: {peaks[args.events] / peaks[args.events // 10]:.2f}x "
              "(constant memory: ~1.00x)")
        key = Path(tmp) / "fleet.pub"
        from fleet.audit.keys import public_key
        from fleet_audit_verify.signing import public_key_text

        key.write_text(public_key_text(public_key()))
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fleet_audit_verify", str(path), "--key", str(key)],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - started
        print(f"standalone verifier over the full bundle: {seconds:.1f} s ({args.events / seconds:,.0f} events/s): "
              f"{done.stdout.strip()[:90]}")


if __name__ == "__main__":
    main()
