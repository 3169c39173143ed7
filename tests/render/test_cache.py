"""The render cache: one build per distinct content, keyed on exactly what kustomize
reads, shared through the database, never stale, never serving a remote base; and the
single flight that makes a wave of renders of the same content run kustomize once."""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path

import pytest

from fleet.core import locks
from fleet.render import cache, kustomize
from fleet.render.errors import RenderError
from fleet.render.models import RenderedSet
from fleet.render.services import render_dir
from tests.render.test_render import LIMITS, obj, write

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

SECRET_VALUE = "aHVudGVyMg=="  # base64 of a password that must not be readable in the database


def repo(root: Path, *, replicas: int = 2, readme: str = "") -> Path:
    """A cluster repository as Fleet lays one out: the vendor's base, the cluster's overlay."""
    return write(root, {
        "base/kustomization.yaml": {"resources": ["app.yaml", "secret.yaml"]},
        "base/app.yaml": [obj("ConfigMap", "settings", "app", data={"mode": "fast"}),
                          obj("Deployment", "web", "app", api="apps/v1", spec={"replicas": 1})],
        "base/secret.yaml": obj("Secret", "db", "app", data={"password": SECRET_VALUE}),
        "cluster/kustomization.yaml": {"resources": ["../base"], "replicas": [{"name": "web", "count": replicas}]},
        "other/kustomization.yaml": {"resources": ["x.yaml"]},  # not reached from cluster/
        "README.md": readme,
    })


@pytest.fixture
def builds(monkeypatch):
    """Counts kustomize builds (the real build still runs)."""
    count = {"n": 0}
    real = kustomize.build

    def counting(*args, **kwargs):
        count["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(kustomize, "build", counting)
    return count


def render(root: Path, limits=LIMITS):
    return render_dir(root / "cluster", root=root, limits=limits)


def test_same_content_in_two_repositories_builds_once(tmp_path, builds):
    first = render(repo(tmp_path / "a", readme="cluster a"))
    second = render(repo(tmp_path / "b", readme="cluster b"))  # a file kustomize does not read differs
    assert builds["n"] == 1
    assert not first.cached and second.cached
    assert second.objects == first.objects and second.content_hash == first.content_hash
    assert second.renderer == "kustomize"
    assert [o["spec"]["replicas"] for o in second.objects if o["kind"] == "Deployment"] == [2]


def test_a_cached_set_is_a_fresh_copy(tmp_path, builds):
    first = render(repo(tmp_path / "a"))
    first.objects[0]["metadata"]["name"] = "changed by a caller"
    assert render(repo(tmp_path / "b")).objects[0]["metadata"]["name"] != "changed by a caller"


@pytest.mark.parametrize("change", ["overlay", "base", "renamed", "limits"])
def test_anything_kustomize_reads_is_in_the_key(tmp_path, builds, change):
    first = render(repo(tmp_path / "a"))
    root, limits = repo(tmp_path / "b"), LIMITS
    if change == "overlay":
        root = repo(tmp_path / "b", replicas=3)
    elif change == "base":
        write(root, {"base/app.yaml": [obj("ConfigMap", "settings", "app", data={"mode": "slow"}),
                                       obj("Deployment", "web", "app", api="apps/v1", spec={"replicas": 1})]})
    elif change == "renamed":  # same bytes under another name: kustomize reads another file
        (root / "base/app.yaml").rename(root / "base/app2.yaml")
        write(root, {"base/kustomization.yaml": {"resources": ["app2.yaml", "secret.yaml"]}})
    else:
        limits = dataclasses.replace(LIMITS, max_objects=99)
    second = render(root, limits)
    assert builds["n"] == 2 and not second.cached
    if change in ("overlay", "base"):
        assert second.content_hash != first.content_hash


def test_a_symlinked_file_is_keyed_by_its_target(tmp_path, builds):
    root = repo(tmp_path / "a")
    write(root, {"cluster/extra/real.yaml": obj("ConfigMap", "extra", "app", data={"v": "1"})})
    os.symlink("extra/real.yaml", root / "cluster/extra.yaml")
    write(root, {"cluster/kustomization.yaml": {"resources": ["../base", "extra.yaml"]}})
    first = render(root)
    write(root, {"cluster/extra/real.yaml": obj("ConfigMap", "extra", "app", data={"v": "2"})})
    second = render(root)
    assert builds["n"] == 2 and not second.cached

    def extra(result):
        return next(o["data"] for o in result.objects if o["metadata"]["name"] == "extra")

    assert extra(first) == {"v": "1"} and extra(second) == {"v": "2"}


def test_the_keys_premise_kustomize_reads_nothing_outside_the_directories(tmp_path, builds):
    """The key covers the kustomization directories only, because kustomize's load
    restrictor refuses a file from elsewhere, even through a symlink."""
    root = repo(tmp_path / "a")
    write(root, {"shared/extra.yaml": obj("ConfigMap", "extra", "app")})
    os.symlink("../shared/extra.yaml", root / "cluster/extra.yaml")
    write(root, {"cluster/kustomization.yaml": {"resources": ["../base", "extra.yaml"]}})
    with pytest.raises(RenderError, match="is not in or below"):
        render(root)


def test_shared_through_the_database_and_encrypted_there(tmp_path, builds):
    first = render(repo(tmp_path / "a"))
    cache.MEMORY.clear()  # another worker: nothing in its process
    second = render(repo(tmp_path / "b"))
    assert builds["n"] == 1 and second.cached and second.objects == first.objects
    stored = RenderedSet.objects.get()
    assert SECRET_VALUE not in stored.objects_encrypted and "password" not in stored.objects_encrypted


def test_plain_directories_are_cached_too(tmp_path):
    write(tmp_path / "a", {"m.yaml": [obj("ConfigMap", "one", "app")]})
    write(tmp_path / "b", {"m.yaml": [obj("ConfigMap", "one", "app")]})
    assert not render_dir(tmp_path / "a", limits=LIMITS).cached
    assert render_dir(tmp_path / "b", limits=LIMITS).cached
    write(tmp_path / "b", {"n.yaml": [obj("ConfigMap", "two", "app")]})
    assert len(render_dir(tmp_path / "b", limits=LIMITS).objects) == 2


def test_safety_checks_run_on_every_render_cached_or_not(tmp_path, builds):
    render(repo(tmp_path / "a"))
    root = repo(tmp_path / "b")
    os.symlink("/etc/passwd", root / "other/leak")  # outside what the build reads, inside the repository
    with pytest.raises(RenderError) as error:
        render(root)
    assert error.value.code == "symlink"


def test_a_failed_render_is_not_cached(tmp_path, builds):
    root = repo(tmp_path / "a")
    write(root, {"base/app.yaml": "kind: [unterminated"})
    for _ in range(2):
        with pytest.raises(RenderError):
            render(root)
    assert builds["n"] == 2 and not RenderedSet.objects.exists()


def test_a_remote_base_is_never_cached(tmp_path, builds):
    root = repo(tmp_path / "a")
    write(root, {"cluster/kustomization.yaml": {"resources": ["../base", "https://example.invalid/app?ref=v1"]}})
    limits = dataclasses.replace(LIMITS, allow_remote_bases=True)
    for _ in range(2):
        with pytest.raises(RenderError):  # no network here: kustomize fails to fetch it, every time
            render(root, limits)
    assert builds["n"] == 2 and not RenderedSet.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_wave_of_renders_of_new_content_builds_once(tmp_path, builds):
    roots = [repo(tmp_path / f"c{i}", readme=str(i)) for i in range(8)]
    results, errors = [], []

    def one(root: Path) -> None:
        from django.db import connection

        try:
            results.append(render(root))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(root,)) for root in roots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 8
    assert builds["n"] == 1 and sum(not r.cached for r in results) == 1
    assert len({r.content_hash for r in results}) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_advisory_lock_keeps_a_second_worker_out_until_commit():
    from django.db import connection, transaction

    held, release, seen = threading.Event(), threading.Event(), []

    def holder() -> None:
        with transaction.atomic():
            seen.append(locks.try_xact_lock("render-cache", 42))
            held.set()
            release.wait(10)
        connection.close()

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    with transaction.atomic():
        seen.append(locks.try_xact_lock("render-cache", 42))
        seen.append(locks.try_xact_lock("render-cache", 43))  # another content: not blocked
    release.set()
    thread.join()
    with transaction.atomic():
        seen.append(locks.try_xact_lock("render-cache", 42))  # free again once the holder committed
    assert seen == [True, False, True, True]


def test_without_the_database_only_the_process_shares(tmp_path, builds):
    """The policy CLI's local check runs with no database: the process's layer alone."""
    first = render_dir(repo(tmp_path / "a") / "cluster", root=tmp_path / "a", limits=LIMITS, shared_cache=False)
    second = render_dir(repo(tmp_path / "b") / "cluster", root=tmp_path / "b", limits=LIMITS, shared_cache=False)
    assert builds["n"] == 1 and second.cached and second.objects == first.objects
    assert not RenderedSet.objects.exists()
