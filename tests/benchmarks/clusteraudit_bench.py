"""Benchmark: API servers' audit events in PostgreSQL, ingested and queried.

    eval "$(scripts/services.sh up)"; .venv/bin/python -m tests.benchmarks.clusteraudit_bench [--events N]

Into ``<name>_clusteraudit_bench`` (reused while the count matches):
- ingestion throughput (target >= 5,000 events/s, batched as the webhook sends them, 400
  per batch): through the service (parse + store) and through the real HTTP endpoint
  (gunicorn, 2 workers x 4 threads, as ``make run`` serves it; 4 API servers posting at once), each beside what a
  Django developer would write otherwise (``bulk_create(ignore_conflicts=True)``, and one
  ORM ``save()`` per event); CPU of this process, the server's workers and PostgreSQL;
- with N events (default 10 million, 100 clusters, 30 days, generated in SQL with
  ``generate_series``): one object's history over 30 days, and the fleet-wide "changes
  outside GitOps" first page of a day, through the API's views (target p95 <= 200 ms each);
  beside, the baselines: the same history query without its index, and the outside-GitOps
  page with offset pagination and a count (DRF's default), both measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.benchmarks.support import bench_database_url, ensure_database

N_CLUSTERS, DAYS, BATCH = 100, 30, 400
CLIENTS = 4  # API servers posting at once
TODAY = datetime.datetime.now(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START = TODAY - datetime.timedelta(days=DAYS + 1)
RESOURCES = [("apps", "deployments"), ("", "configmaps"), ("", "services"), ("apps", "statefulsets"),
             ("", "pods")]


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds of other processes (the server's workers, PostgreSQL backends), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _postgres_pids() -> list[int]:
    """Every PostgreSQL backend of the benchmark database (they do the inserts)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


def _webhook_event(cluster: str, rng: random.Random, at: datetime.datetime) -> dict:
    group, plural = rng.choice(RESOURCES)
    verb = rng.choice(["get", "list", "watch", "get", "patch", "update", "create"])
    user = rng.choice(["system:kube-controller-manager", "fleet-admin", f"user{rng.randrange(50)}@corp"])
    ns, name = f"ns-{rng.randrange(5)}", f"obj-{rng.randrange(200)}"
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": str(uuid.uuid4()),
            "stage": "ResponseComplete", "verb": verb,
            "requestURI": f"/apis/{group or 'core'}/v1/namespaces/{ns}/{plural}/{name}?fieldManager=kubectl-edit",
            "user": {"username": user, "groups": ["system:authenticated"]}, "sourceIPs": ["10.1.2.3"],
            "userAgent": "kubectl/v1.36.3 (linux/amd64) kubernetes/abcdef0",
            "objectRef": {"resource": plural, "namespace": ns, "name": name, "apiGroup": group, "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200}, "requestReceivedTimestamp": stamp,
            "stageTimestamp": stamp}
    if verb in ("patch", "update", "create"):
        body["level"] = "RequestResponse"
        body["requestObject"] = {"spec": {"replicas": rng.randrange(1, 5)}, "metadata": {"labels": {"app": name}}}
    return body


def _batches(cluster: str, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    now = datetime.datetime.now(datetime.UTC)
    events = [_webhook_event(cluster, rng, now - datetime.timedelta(microseconds=i)) for i in range(count)]
    return [{"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events[i:i + BATCH]}
            for i in range(0, count, BATCH)]


def _report(label: str, events: int, wall: float, cpu: dict[str, float]) -> None:
    parts = ", ".join(f"{name} {seconds:.1f} CPU-s" for name, seconds in cpu.items())
    print(f"  {label}: {events:,} events in {wall:.2f} s = {events / wall:,.0f} events/s ({parts})")


def bench_service(target, count: int) -> None:
    from fleet.clusteraudit import services
    from fleet.clusteraudit.classify import classify
    from fleet.clusteraudit.events import parse_event_list
    from fleet.clusteraudit.models import ClusterAuditEvent

    print(f"ingestion through the service, one stream of {BATCH}-event batches (JSON decode + parse + classify + "
          "store; the baselines on a quarter and a tenth of the events):")
    batches = [json.dumps(b) for b in _batches(target.name, count, 1)]  # as the request body arrives
    for label, store in (("COPY + INSERT ... ON CONFLICT DO NOTHING (Fleet)", None),
                         ("bulk_create(ignore_conflicts=True)", "bulk"), ("one save() per event", "save")):
        n = count if store is None else count // (4 if store == "bulk" else 10)
        todo = batches[: n // BATCH]
        cpu, pg, started = _cpu_self(), _cpu_of(_postgres_pids()), time.perf_counter()
        for batch in todo:
            parsed = parse_event_list(json.loads(batch))
            if store is None:
                services.ingest(target, parsed)
                continue
            rows = []
            for event in parsed:
                fields = dict(event.fields)
                fields["actor"], fields["outside_gitops"] = classify(event.fields, services.identity_of(target))
                rows.append(ClusterAuditEvent(cluster=target, **fields))
            if store == "bulk":
                ClusterAuditEvent.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
            else:
                for row in rows:
                    row.save()
        wall = time.perf_counter() - started
        _report(label, len(todo) * BATCH, wall, {"Python": _cpu_self() - cpu,
                                                 "PostgreSQL": _cpu_of(_postgres_pids()) - pg})
        ClusterAuditEvent.objects.filter(cluster=target).delete()


def bench_http(cluster, count: int, url: str) -> None:
    from fleet.clusteraudit import credentials
    from fleet.clusteraudit.models import ClusterAuditEvent

    print(f"ingestion through the real HTTP endpoint (gunicorn as `make run` serves: 2 workers x 4 threads; "
          f"{CLIENTS} clients, {BATCH} per batch):")
    _, token = credentials.issue(cluster)
    bodies = [json.dumps(b).encode() for b in _batches(cluster.name, count, 2)]
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "FLEET_LOG_LEVEL": "warning"}
    server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "fleet.wsgi", "--bind",
                               f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--log-level", "warning"],
                              env=env, start_new_session=True)
    try:
        _wait_port(port)
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True,
                                                  text=True).stdout.split()]
        errors: list[str] = []

        def send(chunk: list[bytes]) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for body in chunk:
                conn.request("POST", f"/api/v1/cluster-audit/ingest/{cluster.name}/", body,
                             {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200:
                    errors.append(f"{response.status} {payload[:200]!r}")
            conn.close()

        send(bodies[:2])  # warm both workers' imports and connections
        ClusterAuditEvent.objects.filter(cluster=cluster).delete()
        cpu, pg, server_cpu = _cpu_self(), _cpu_of(_postgres_pids()), _cpu_of(workers)
        started = time.perf_counter()
        threads = [threading.Thread(target=send, args=(bodies[i::CLIENTS],)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        assert not errors, errors[:3]
        stored = ClusterAuditEvent.objects.filter(cluster=cluster).count()
        _report(f"POST /api/v1/cluster-audit/ingest/ ({stored:,} stored)", len(bodies) * BATCH, wall,
                {"server workers": _cpu_of(workers) - server_cpu, "PostgreSQL": _cpu_of(_postgres_pids()) - pg,
                 "clients": _cpu_self() - cpu})
        ClusterAuditEvent.objects.filter(cluster=cluster).delete()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit("gunicorn did not start")


def load(n: int, cluster_ids: list[int]) -> None:
    """N events over DAYS days, day by day in SQL: 100 clusters, 5 resources x 5 namespaces x
    200 names per cluster; 60 % reads; writers: components, Fleet, and 50 people (whose
    successful writes, ~4 %, are the changes outside GitOps)."""
    from django.db import connection

    from fleet.clusteraudit import partitions

    partitions.ensure(TODAY.date(), ahead=1, behind=DAYS + 2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM clusteraudit_clusterauditevent WHERE request_received_at >= %s "
                       "AND request_received_at < %s", [START, START + datetime.timedelta(days=DAYS)])
        if cursor.fetchone()[0] == n:
            print(f"reusing {n:,} generated events")
            return
        cursor.execute("TRUNCATE clusteraudit_clusterauditevent")
    per_day = n // DAYS
    first, count = min(cluster_ids), len(cluster_ids)
    started = time.perf_counter()
    for day in range(DAYS):
        start = START + datetime.timedelta(days=day)
        rows = per_day if day < DAYS - 1 else n - per_day * (DAYS - 1)
        with connection.cursor() as cursor:
            cursor.execute(f"""
                INSERT INTO clusteraudit_clusterauditevent (cluster_id, audit_id, stage, level, request_received_at,
                    stage_at, username, groups, impersonated_user, impersonated_groups, verb, api_group, api_version,
                    resource, subresource, namespace, name, request_uri, response_code, source_ips, user_agent,
                    field_manager, request_object, actor, outside_gitops)
                SELECT {first} + (g %% {count}), md5(g::text || '{day}'), 'ResponseComplete', 'Metadata', t, t,
                    u.username, '["system:authenticated"]'::jsonb, '', '[]'::jsonb, v.verb,
                    r.grp, 'v1', r.res, '', 'ns-' || (g / 7 %% 5), 'obj-' || (g / 13 %% 200), '/apis/...', c.code,
                    '["10.1.2.3"]'::jsonb, 'kubectl/v1.36.3 (linux/amd64)', '', NULL, u.actor,
                    u.actor = 'other' AND v.verb IN ('patch', 'update', 'create', 'delete') AND c.code = 200
                FROM generate_series(1, %s) g
                CROSS JOIN LATERAL (SELECT %s::timestamptz + (g * 86400.0 / %s) * interval '1 second' AS t) tt
                CROSS JOIN LATERAL (SELECT (ARRAY['get','list','watch','get','list','get','patch','update',
                    'create','delete'])[1 + (g / 3 %% 10)] AS verb) v
                CROSS JOIN LATERAL (SELECT CASE WHEN g %% 10 < 6 THEN 'system:kube-controller-manager'
                    WHEN g %% 10 < 9 THEN 'fleet-admin' ELSE 'user' || (g / 11 %% 50) || '@corp' END AS username,
                    CASE WHEN g %% 10 < 6 THEN 'system' WHEN g %% 10 < 9 THEN 'fleet' ELSE 'other' END AS actor) u
                CROSS JOIN LATERAL (SELECT (ARRAY['apps','','','apps',''])[1 + g / 17 %% 5] AS grp,
                    (ARRAY['deployments','configmaps','services','statefulsets','pods'])[1 + g / 17 %% 5] AS res) r
                CROSS JOIN LATERAL (SELECT CASE WHEN g %% 50 = 0 THEN 403 ELSE 200 END AS code) c
            """, [rows, start, rows])
        done = (day + 1) / DAYS
        elapsed = time.perf_counter() - started
        sys.stderr.write(f"\rgenerating events [{'#' * int(done * 30):<30}] {done:4.0%} {elapsed:,.0f}s")
    sys.stderr.write("\n")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE clusteraudit_clusterauditevent")


def _timed(call, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def _p(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(samples):.1f} ms, p95 {p95:.1f} ms, max {max(samples):.1f} ms"


def bench_queries(clusters, viewer) -> None:
    from django.db import connection, transaction
    from rest_framework.pagination import PageNumberPagination

    from fleet.clusteraudit import queries
    from fleet.clusteraudit.api import OutsideGitOpsView

    rng = random.Random(3)
    until = START + datetime.timedelta(days=DAYS)
    names = {c.pk: c.name for c in clusters}
    with connection.cursor() as cursor:  # objects that have a history (most name combinations have none)
        cursor.execute("SELECT DISTINCT cluster_id, api_group, resource, namespace, name FROM "
                       "clusteraudit_clusterauditevent TABLESAMPLE SYSTEM (0.05) LIMIT 200")
        objects = cursor.fetchall()
    print(f"queries over the {DAYS} days, through the API's views (server time; 60 runs each):")

    def history():
        cluster_id, group, plural, namespace, name = rng.choice(objects)
        params = {"since": START.isoformat(), "until": until.isoformat(), "cluster": names[cluster_id],
                  "resource": f"{plural}.{group}" if group else plural, "namespace": namespace,
                  "name": name, "page_size": "100"}
        response = viewer.get("/api/v1/cluster-audit/events/", params)
        assert response.status_code == 200, response.content[:300]
        return len(response.json()["results"])

    history()
    sizes = []
    samples = _timed(lambda: sizes.append(history()), 60)
    print(f"  one object's history over {DAYS} days (first page of 100; {statistics.median(sizes):.0f} events): "
          f"{_p(samples)} (target p95 <= 200 ms)")

    def day_page(path: str = "/api/v1/cluster-audit/outside-gitops/") -> int:
        day = START + datetime.timedelta(days=rng.randrange(DAYS))
        response = viewer.get(path, {"since": day.isoformat(), "until": (day + datetime.timedelta(days=1)).isoformat()})
        assert response.status_code == 200, response.content[:300]
        return len(response.json()["results"])

    day_page()
    samples = _timed(day_page, 60)
    outside_day = queries.outside_gitops(None, queries.EventFilter(since=START, until=START + datetime.timedelta(
        days=1))).count()
    print(f"  fleet-wide changes outside GitOps, first page of a day ({outside_day:,} that day): {_p(samples)} "
          "(target p95 <= 200 ms)")

    # Baselines, same run: DRF's default offset pages (a count per page), and the history without its index.
    class Offset(PageNumberPagination):
        page_size = 50

    original = OutsideGitOpsView.pagination_class
    OutsideGitOpsView.pagination_class = Offset
    try:
        samples = _timed(day_page, 15)
    finally:
        OutsideGitOpsView.pagination_class = original
    print(f"  baseline: the same page with offset pagination and its count(*): {_p(samples)}")

    def history_without_index():
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
            history()

    samples = _timed(history_without_index, 3)
    print(f"  baseline: the object's history without the object index (a scan of its period): {_p(samples)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--ingest", type=int, default=40_000, help="events per ingestion measurement")
    parser.add_argument("--only", choices=("queries", "ingest"), help="one half of the benchmark")
    args = parser.parse_args()
    url = bench_database_url("_clusteraudit_bench")
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    os.environ.setdefault("FLEET_CLUSTER_AUDIT_KEEP_DAYS", "0")
    import django

    django.setup()
    from django.core.management import call_command

    from fleet.accounts.roles import Role
    from tests.conftest import make_client
    from tests.factories import ChannelFactory, ClusterFactory

    call_command("migrate", verbosity=0)
    from fleet.inventory.models import Cluster

    channel = ChannelFactory(name="bench")
    clusters = list(Cluster.objects.filter(name__startswith="bench-").order_by("pk")[:N_CLUSTERS])
    while len(clusters) < N_CLUSTERS:
        clusters.append(ClusterFactory(name=f"bench-{len(clusters):03d}", channel=channel,
                                       labels={"env": "prod" if len(clusters) % 2 else "dev"}))
    print(f"\ncluster audit on PostgreSQL; machine load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    load(args.events, [c.pk for c in clusters])
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(username="bench-viewer").delete()
    viewer = make_client(Role.VIEWER, "bench-viewer")
    if args.only != "ingest":
        bench_queries(clusters, viewer)
    if args.only != "queries":  # into clusters of their own: the generated events stay as they are
        service_target, http_target = (ClusterFactory(name=name, channel=channel) if not Cluster.objects.filter(
            name=name).exists() else Cluster.objects.get(name=name) for name in ("ingest-service", "ingest-http"))
        bench_service(service_target, args.ingest)
        bench_http(http_target, args.ingest, url)


if __name__ == "__main__":
    main()
