"""The repository conventions Fleet relies on, in one place.

Primary repo (remote ``origin``): one branch ``release-X.Y`` per channel; the
vendor's kustomize entry point is a directory (``base/`` unless a cluster's
parameters name another) and optional kustomize Components live under
``components/<name>/``. A release that needs the clusters' own files transformed
ships an executable ``migrations/<X.Y>-<X.Z>`` (e.g. ``migrations/1.1-1.2``) on the
new release branch: Fleet runs it in the workspace root before rebasing, with
``FLEET_CLUSTER_DIR``, ``FLEET_FROM_BRANCH``, ``FLEET_TO_BRANCH`` and ``FLEET_CLUSTER``
set; exit 0 means success, and the files it changed are committed as the cluster's.

Internal repo (remote ``internal``): the cluster's branch (``Cluster.internal_branch``)
holds the release commits plus the cluster's own commits on top, never a merge, and
the annotated deployment tags ``deploy/YYYY-MM-DD/release-X.Y[-N]``.

Cluster files: everything Fleet generates for a cluster lives in the top-level
``cluster/`` directory (``params.yaml``, the generated ``kustomization.yaml``, extra
manifests under ``cluster/resources/``), which no vendor release touches.
"""

from __future__ import annotations

ORIGIN = "origin"
INTERNAL = "internal"
CLUSTER_DIR = "cluster"
PARAMS_FILE = f"{CLUSTER_DIR}/params.yaml"
OVERLAY_FILE = f"{CLUSTER_DIR}/kustomization.yaml"
RESOURCES_DIR = f"{CLUSTER_DIR}/resources"
DEFAULT_BASE = "base"
COMPONENTS_DIR = "components"
MIGRATIONS_DIR = "migrations"
TAG_PREFIX = "deploy"
# In a primary mirror (``fleet.gitops.primary``): written when its first fetch is complete,
# then with a new token before and after each fetch into it. Equal tokens read before two
# uses mean the mirror's branches did not move between them (only a fetch moves them).
MIRROR_GENERATION = "fetched"
