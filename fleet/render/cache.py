"""Render once per distinct input: rendered sets cached by the content a render reads.

Many clusters share a release's tree and a handful of overlays. A render's output
depends only on the files it can read, the renderer (kustomize, at its version), the
limits it runs under and where its entry point is, so those, hashed, are its key
(:func:`key`): every file of every kustomization directory the build reaches (kustomize's
load restrictor keeps each one's reads inside its own directory, and the safety walk
has listed them), by path relative to the repository and content. Nothing about the
cluster is in it, and a file outside those directories (another cluster's overlay, a
README) changes nothing. A build that reaches a remote base is never cached: no local
content describes it.

Two layers: the process's LRU, then (unless a caller works without one, as the policy
CLI's local check does) the database (:class:`~fleet.render.models.RenderedSet`,
shared by every worker, encrypted at rest). A miss renders under a single flight (a
thread lock per key stripe, and a PostgreSQL advisory lock on the key), so a wave of
100 clusters reaching the same content at once runs kustomize once and the rest read
its result. An entry never goes stale: different content is a different key. Safety
checks run on every render, cached or not; only the build and its validation are skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from fleet.core import locks
from fleet.core.lru import LRU
from fleet.render.limits import RenderLimits
from fleet.render.models import RenderedSet
from fleet.render.safety import relative
from fleet.toolchain.constants import KUSTOMIZE_VERSION

LAYOUT = 1  # bump when what a cached entry holds, or how the key is made, changes
MEMORY: LRU[bytes] = LRU(512)  # serialized sets (a 20-object set is ~20 KB): fresh objects on every read
TOUCH_EVERY = timedelta(hours=1)  # how stale RenderedSet.used_at may get before it is written
_STRIPES = [threading.Lock() for _ in range(64)]
_WAIT_STEP = (0.02, 0.2)  # polling the advisory lock: first and longest pause, seconds


@dataclass(frozen=True)
class Cached:
    renderer: str
    content_hash: str
    objects: list[dict[str, Any]]


def key(entry: Path, root: Path, directories: Iterable[Path], renderer: str, limits: RenderLimits) -> str:
    """The content key of rendering ``entry`` (inside repository ``root``) when it reads
    nothing outside ``directories`` (absolute, resolved, inside ``root``)."""
    digest = hashlib.sha256(json.dumps({
        "layout": LAYOUT, "renderer": renderer, "limits": asdict(limits), "entry": relative(entry, root),
        "kustomize": KUSTOMIZE_VERSION if renderer == "kustomize" else ""}, sort_keys=True).encode())
    for (shown, kind), data in sorted(_files(root, directories).items()):
        digest.update(b"\0%s\0%s\0%d\0" % (shown.encode(), kind, len(data)))
        digest.update(data)
    return digest.hexdigest()


def _files(root: Path, directories: Iterable[Path]) -> dict[tuple[str, bytes], bytes]:
    """Every file under ``directories`` once, by (repo-relative path, kind): its bytes, and
    a symlink's target as well (the safety walk has kept every link inside ``root``). A
    linked directory is walked at its real place, as kustomize would read it."""
    found: dict[tuple[str, bytes], bytes] = {}
    pending, walked = list(directories), set()
    while pending:
        top = pending.pop()
        if top in walked:
            continue
        walked.add(top)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d != ".git")
            here = Path(dirpath)
            for name in dirnames:
                if (here / name).is_symlink():
                    found[(relative(here / name, root), b"link")] = os.readlink(here / name).encode()
                    pending.append(Path(os.path.realpath(here / name)))
            for name in filenames:
                path = here / name
                if path.is_symlink():
                    found[(relative(path, root), b"link")] = os.readlink(path).encode()
                if path.is_file():
                    found[(relative(path, root), b"file")] = path.read_bytes()
    return found


def get(content_key: str, *, shared: bool = True) -> Cached | None:
    """The cached set of ``content_key``, from the process or (``shared``) the database;
    None on a miss."""
    serialized = MEMORY.get(content_key)
    if serialized is None and not shared:
        return None
    if serialized is None:
        row = RenderedSet.objects.filter(key=content_key).only("objects_encrypted", "used_at").first()
        if row is None:
            return None
        if timezone.now() - row.used_at > TOUCH_EVERY:
            RenderedSet.objects.filter(pk=row.pk).update(used_at=timezone.now())
        serialized = RenderedSet.unseal(row.objects_encrypted)
        MEMORY.put(content_key, serialized)
    return Cached(**orjson.loads(serialized))


def put(content_key: str, entry: Cached, *, shared: bool = True) -> None:
    serialized = orjson.dumps(asdict(entry))
    MEMORY.put(content_key, serialized)
    if not shared:
        return
    try:
        with transaction.atomic():
            RenderedSet.objects.create(key=content_key, renderer=entry.renderer, content_hash=entry.content_hash,
                                       objects_encrypted=RenderedSet.seal(serialized), used_at=timezone.now())
    except IntegrityError:
        pass  # another worker stored the same content first: the same objects


@contextmanager
def single_flight(content_key: str, wait: float, *, shared: bool = True) -> Iterator[None]:
    """Be the only render of ``content_key``: in this process, and (``shared``, on
    PostgreSQL) across workers, for at most ``wait`` seconds; past that, render anyway
    (the same result, only work done twice). The advisory lock is held until the stored
    entry commits, so a waiter that gets it next finds the entry."""
    shared = shared and connection.vendor == "postgresql"  # SQLite: a write transaction would block the rest
    with _STRIPES[int(content_key[:8], 16) % len(_STRIPES)], transaction.atomic() if shared else nullcontext():
        deadline, pause = time.monotonic() + wait, _WAIT_STEP[0]
        subkey = int(content_key[:8], 16) - 2**31
        while shared and not locks.try_xact_lock("render-cache", subkey) and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, _WAIT_STEP[1])
        yield


def forget_older_than(days: int) -> int:
    """Drop cached sets no render used for ``days``; returns how many."""
    return RenderedSet.objects.filter(used_at__lt=timezone.now() - timedelta(days=days)).delete()[0]
