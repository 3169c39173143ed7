"""A realistic vendor primary repo and bare internal repos, for the tests and the demo.

``release-1.0``: a namespace, a CRD and a custom resource of it, a configmap, a
deployment ``web``, a service and RBAC under ``base/``, plus the Components
``ingress`` and ``monitoring``. ``release-1.1`` (forked from 1.0) changes the
configmap's LOG_LEVEL and the image, then has a second commit (1.1.1), so an
upgrade to a newer SHA of the same branch can be shown. ``release-1.2`` (forked
from 1.1) restructures: ``base/`` becomes ``manifests/`` (CRDs split out) and the
deployment ``web`` is renamed ``frontend``; it ships ``migrations/1.1-1.2``, which
rewrites a cluster's ``params.yaml`` and overlay accordingly. Without it a 1.1
overlay no longer builds (its ``../base`` and ``replicas: web`` match nothing).
"""

from __future__ import annotations

import stat
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from fleet.gitops.git import Git

MIGRATION_1_1_TO_1_2 = """#!/bin/sh
# Platform 1.2 moved the kustomize entry point from base/ to manifests/ and renamed
# the Deployment "web" to "frontend": rewrite the cluster's parameters and overlay.
set -eu
dir="${FLEET_CLUSTER_DIR:-cluster}"
for f in "$dir/params.yaml" "$dir/kustomization.yaml"; do
  [ -f "$f" ] || continue
  sed -i -e 's#^base: base$#base: manifests#' -e 's#^- \\.\\./base$#- ../manifests#' \\
         -e 's#^  web: #  frontend: #' -e 's#^- name: web$#- name: frontend#' "$f"
done
"""

IMAGE = "registry.example.com/platform/web"


def _y(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def _base_files(version: str, log_level: str, deployment: str) -> dict[str, str]:
    return {
        "namespace.yaml": _y("""
            apiVersion: v1
            kind: Namespace
            metadata:
              name: platform
            """),
        "crd.yaml": _y("""
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata:
              name: widgets.platform.example.com
            spec:
              group: platform.example.com
              names: {kind: Widget, listKind: WidgetList, plural: widgets, singular: widget}
              scope: Namespaced
              versions:
              - name: v1
                served: true
                storage: true
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec:
                        type: object
                        properties:
                          size: {type: integer}
            """),
        "widget.yaml": _y("""
            apiVersion: platform.example.com/v1
            kind: Widget
            metadata:
              name: default
              namespace: platform
            spec:
              size: 3
            """),
        "configmap.yaml": _y(f"""
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: app-config
              namespace: platform
            data:
              LOG_LEVEL: {log_level}
              FEATURE_WIDGETS: "on"
              MAX_CONNECTIONS: "100"
              CACHE_SECONDS: "60"
              VERSION: "{version}"
            """),
        "deployment.yaml": _y(f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: {deployment}
              namespace: platform
              labels: {{app: web}}
            spec:
              replicas: 1
              selector:
                matchLabels: {{app: web}}
              template:
                metadata:
                  labels: {{app: web}}
                spec:
                  serviceAccountName: web
                  containers:
                  - name: web
                    image: {IMAGE}:{version}
                    ports: [{{containerPort: 8080}}]
                    envFrom: [{{configMapRef: {{name: app-config}}}}]
            """),
        "service.yaml": _y("""
            apiVersion: v1
            kind: Service
            metadata:
              name: web
              namespace: platform
            spec:
              selector: {app: web}
              ports: [{port: 80, targetPort: 8080}]
            """),
        "rbac.yaml": _y("""
            apiVersion: v1
            kind: ServiceAccount
            metadata:
              name: web
              namespace: platform
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata:
              name: web
              namespace: platform
            rules:
            - apiGroups: [platform.example.com]
              resources: [widgets]
              verbs: [get, list, watch]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata:
              name: web
              namespace: platform
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: web}
            subjects: [{kind: ServiceAccount, name: web, namespace: platform}]
            """),
    }


_COMPONENTS = {
    "components/ingress/kustomization.yaml": _y("""
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        resources: [ingress.yaml]
        """),
    "components/ingress/ingress.yaml": _y("""
        apiVersion: networking.k8s.io/v1
        kind: Ingress
        metadata:
          name: platform
          namespace: platform
        spec:
          rules:
          - host: platform.example.com
            http:
              paths:
              - path: /
                pathType: Prefix
                backend: {service: {name: web, port: {number: 80}}}
        """),
    "components/monitoring/kustomization.yaml": _y("""
        apiVersion: kustomize.config.k8s.io/v1alpha1
        kind: Component
        resources: [metrics-service.yaml]
        """),
    "components/monitoring/metrics-service.yaml": _y("""
        apiVersion: v1
        kind: Service
        metadata:
          name: web-metrics
          namespace: platform
        spec:
          selector: {app: web}
          ports: [{name: metrics, port: 9090}]
        """),
}

_ORDER = ["namespace.yaml", "crd.yaml", "rbac.yaml", "configmap.yaml", "deployment.yaml",
          "service.yaml", "widget.yaml"]


def _kustomization(resources: list[str]) -> str:
    return ("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
            + "".join(f"- {r}\n" for r in resources))


def release_tree(version: str, *, log_level: str, restructured: bool) -> dict[str, str]:
    """Every file of one vendor release, path -> content."""
    files = {"README.md": f"# Platform {version}\n\nVendor manifests; one branch per release.\n",
             **_COMPONENTS}
    base = _base_files(version, log_level, "frontend" if restructured else "web")
    if not restructured:
        files.update({f"base/{name}": content for name, content in base.items()})
        files["base/kustomization.yaml"] = _kustomization(_ORDER)
        return files
    files["manifests/crds/widgets.yaml"] = base.pop("crd.yaml")
    files.update({f"manifests/core/{name}": content for name, content in base.items()})
    files["manifests/kustomization.yaml"] = _kustomization(
        ["crds/widgets.yaml", *(f"core/{n}" for n in _ORDER if n != "crd.yaml")])
    return files


@dataclass
class PrimaryRepo:
    """The generated vendor repo: a bare repo and each branch's commits, oldest first."""

    path: Path
    commits: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return str(self.path)

    def head(self, branch: str) -> str:
        return self.commits[branch][-1]


def _commit(work: Git, files: dict[str, str], message: str, date: str,
            executable: tuple[str, ...] = ()) -> str:
    """Make the work tree exactly ``files`` and commit it."""
    root = work.path
    for old in work.run("ls-files").splitlines():
        if old not in files:
            (root / old).unlink()
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        if name in executable:
            target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    work.run("add", "--all")
    env = {"GIT_AUTHOR_NAME": "Vendor", "GIT_AUTHOR_EMAIL": "releases@vendor.example.com",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    work.run("commit", "--quiet", "--message", message, env=env)
    return work.run("rev-parse", "HEAD").strip()


def create_primary_repo(path: Path, *, migration: str | None = MIGRATION_1_1_TO_1_2) -> PrimaryRepo:
    """Create the vendor repo as a bare repository at ``path``.

    ``migration`` is the content of ``migrations/1.1-1.2`` on release-1.2 (``None``
    ships no migration), so tests can use a failing one.
    """
    with tempfile.TemporaryDirectory(prefix="fleet-primary-") as scratch:
        work = Git(Path(scratch))
        work.run("init", "--quiet", "--initial-branch", "release-1.0")
        repo = _build_releases(work, PrimaryRepo(path), migration)
        path.parent.mkdir(parents=True, exist_ok=True)
        Git(path.parent).run("clone", "--quiet", "--bare", scratch, str(path))
    return repo


def _build_releases(work: Git, repo: PrimaryRepo, migration: str | None) -> PrimaryRepo:

    def commit(branch: str, files: dict[str, str], message: str, date: str,
               executable: tuple[str, ...] = ()) -> None:
        repo.commits.setdefault(branch, []).append(_commit(work, files, message, date, executable))

    commit("release-1.0", release_tree("1.0.0", log_level="info", restructured=False),
           "Platform 1.0.0", "2026-01-10T10:00:00Z")
    work.run("checkout", "--quiet", "-b", "release-1.1")
    commit("release-1.1", release_tree("1.1.0", log_level="warning", restructured=False),
           "Platform 1.1.0: quieter default logging", "2026-03-10T10:00:00Z")
    commit("release-1.1", release_tree("1.1.1", log_level="warning", restructured=False),
           "Platform 1.1.1: security fix", "2026-04-02T10:00:00Z")
    work.run("checkout", "--quiet", "-b", "release-1.2")
    files = release_tree("1.2.0", log_level="warning", restructured=True)
    if migration is not None:
        files["migrations/1.1-1.2"] = migration
    commit("release-1.2", files, "Platform 1.2.0: manifests/ layout, web renamed frontend",
           "2026-06-15T10:00:00Z", executable=("migrations/1.1-1.2",))
    return repo


def create_internal_repo(path: Path, *, primary: PrimaryRepo | None = None, at: str = "",
                         branch: str = "main") -> Path:
    """Create a bare internal repo; with ``primary``, seed ``branch`` at commit ``at``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Git(path.parent).run("init", "--quiet", "--bare", str(path))
    if primary is not None:
        Git(primary.path).run("push", "--quiet", str(path), f"{at}:refs/heads/{branch}")
    return path
