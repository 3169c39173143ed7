"""Benchmark: list + label-selector filter over 10,000 clusters through the REST API.

    eval "$(scripts/services.sh up)"; .venv/bin/python -m tests.benchmarks.inventory_bench

Runs against a dedicated PostgreSQL database (``<name>_bench``, loaded once and reused),
through the whole Django stack (middleware, token auth, permissions, filters,
serialisation) with DRF's in-process client. Side by side, in the same run: the
baseline a user without server-side selectors has — pulling every cluster page by
page and filtering on the client — and the bare SQL of the same page (the floor).
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable

from tests.benchmarks.support import bench_database_url, ensure_database

N_CLUSTERS = 10_000
REPEAT = 200
SELECTOR = "env=prod,region in (eu,us),!canary"


def _load() -> None:
    from django.core.management import call_command

    from fleet.inventory.models import Channel, Cluster

    call_command("migrate", verbosity=0)
    if Cluster.objects.count() == N_CLUSTERS:
        return
    print(f"loading {N_CLUSTERS} clusters…", flush=True)
    Cluster.objects.all().delete()
    channels = [Channel.objects.get_or_create(name=f"stable-1-{i}", defaults={
        "repo_url": "https://git.example.com/vendor.git", "branch": f"release-1.{i}"})[0] for i in range(3)]
    rng = random.Random(7)
    Cluster.objects.bulk_create([
        Cluster(name=f"cluster-{i:05d}", channel=channels[i % 3],
                labels={"env": rng.choice(["prod", "staging", "dev"]),
                        "region": rng.choice(["eu", "us", "ap", "sa"]),
                        "tier": rng.choice(["web", "data", "edge"]),
                        **({"canary": ""} if rng.random() < 0.05 else {})},
                api_server_url=f"https://10.{i // 65536}.{i // 256 % 256}.{i % 256}:6443",
                internal_repo_url=f"https://git.example.com/clusters/cluster-{i:05d}.git")
        for i in range(N_CLUSTERS)], batch_size=2000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE inventory_cluster")


def _timings(call: Callable[[], object], repeat: int = REPEAT) -> list[float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def _summary(name: str, samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<58} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   (n={len(samples)})")
    return {"p50": p50, "p99": p99}


def main() -> None:
    url = bench_database_url("_bench")
    ensure_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    import django

    django.setup()
    _load()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection
    from rest_framework.test import APIClient

    from fleet.accounts.models import ApiToken
    from fleet.accounts.roles import Role
    from fleet.accounts.services import ensure_role_groups
    from fleet.core.labels import parse_selector
    from fleet.inventory.models import Cluster

    ensure_role_groups()
    user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    user.groups.add(Group.objects.get(name=Role.VIEWER.group_name))
    token, plaintext = ApiToken.issue(user, "bench")
    token.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")

    def get(query: dict) -> dict:
        response = client.get("/api/v1/clusters/", query)
        assert response.status_code == 200, response.content[:500]
        return response.json()

    matching = Cluster.objects.filter(parse_selector(SELECTOR).to_q()).count()
    print(f"\n{N_CLUSTERS} clusters on PostgreSQL; selector {SELECTOR!r} matches {matching}; 50-row pages\n")
    results = {
        "list": _summary("API list, page 1", _timings(lambda: get({}))),
        "selector": _summary("API list + label selector, page 1", _timings(lambda: get({"selector": SELECTOR}))),
        "selector_deep": _summary("API list + selector + ordering, page 10",
                                  _timings(lambda: get({"selector": SELECTOR, "ordering": "-name", "page": 10}))),
        "channel": _summary("API list + channel + status filter", _timings(
            lambda: get({"channel": "stable-1-1", "status": "unknown"}))),
    }
    sql_q = Cluster.objects.select_related("channel").filter(parse_selector(SELECTOR).to_q()).order_by("name")
    results["sql"] = _summary("bare SQL of the same page (count + 50 rows, the floor)", _timings(
        lambda: (sql_q.count(), list(sql_q[:50]))))

    selector = parse_selector(SELECTOR)

    def client_side() -> list:
        found, page = [], 1
        while True:
            body = get({"page": page, "page_size": 500})
            found.extend(c for c in body["results"] if selector.matches(c["labels"]))
            if not body["next"]:
                return found[:50]
            page += 1

    results["client"] = _summary("baseline: fetch all pages (500/page), filter on client",
                                 _timings(client_side, repeat=10))
    connection.close()
    ratio = results["client"]["p50"] / results["selector"]["p50"]
    overhead = results["selector"]["p50"] / results["sql"]["p50"]
    print(f"\nselector page p99 {results['selector']['p99']:.1f} ms (target <= 100 ms); "
          f"{ratio:.0f}x faster than client-side filtering (p50); API/SQL p50 ratio {overhead:.1f}x")


if __name__ == "__main__":
    main()
