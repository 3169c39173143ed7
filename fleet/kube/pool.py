"""Concurrency within one cluster: a small thread pool and all-or-report fan-out."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fleet.kube import constants
from fleet.kube.errors import KubeError

T = TypeVar("T")
R = TypeVar("R")


def worker_pool(cluster: str) -> ThreadPoolExecutor:
    """As many workers as the client keeps connections: none waits for a socket."""
    return ThreadPoolExecutor(constants.CONCURRENCY, thread_name_prefix=f"kube-{cluster}")


def run_all(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``fn`` over ``items`` concurrently; every item runs, then the first failure (in
    item order) is raised carrying all of them in ``failures``."""
    futures = [pool.submit(fn, item) for item in items]
    results, failures = [], []
    for future in futures:
        try:
            results.append(future.result())
        except KubeError as exc:
            failures.append(exc)
    if failures:
        failures[0].failures = failures
        raise failures[0]
    return results
