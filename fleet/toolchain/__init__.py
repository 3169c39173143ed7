"""The Go-built tools Fleet runs (kustomize) and its tests and demo run (kube-apiserver,
etcd, kwok, kubectl, OPA, conftest): pinned versions, built from their Go modules into a
cache outside the repo.

Two ways in, kept apart on purpose. The product only *locates* a tool
(:func:`~fleet.toolchain.cache.locate`): a request must never start a build that takes
minutes. Building (:func:`~fleet.toolchain.build.ensure_binaries`) happens at install
and start-up: ``python -m fleet.toolchain [name ...]``, which ``scripts/run.sh`` and
``scripts/test.sh`` call. Plain Python, no Django.
"""
