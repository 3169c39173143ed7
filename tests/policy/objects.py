"""Kubernetes objects for policy tests: compliant by default, broken on request."""

from __future__ import annotations

import copy
from typing import Any

GOOD_CONTAINER = {
    "name": "app", "image": "registry.example.com/shop/app:1.4.2",
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
}


def container(**changes: Any) -> dict[str, Any]:
    result = copy.deepcopy(GOOD_CONTAINER)
    result.update(changes)
    return result


def labels(name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "owner": "shop-team"}


def deployment(name: str = "web", namespace: str = "shop", replicas: int | None = 3,
               containers: list[dict[str, Any]] | None = None, pod_spec: dict[str, Any] | None = None,
               **meta: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"template": {"metadata": {"labels": {"app": name}},
                                         "spec": {"containers": containers or [container()], **(pod_spec or {})}}}
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels(name), **meta}, "spec": spec}


def service(name: str = "web", namespace: str = "shop", type_: str = "ClusterIP") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "labels": labels(name)},
            "spec": {"type": type_, "selector": {"app": name}, "ports": [{"port": 80}]}}


def namespace(name: str = "shop", owner: str | None = "shop-team") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if owner is not None:
        meta["labels"] = {"owner": owner}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def configmap(name: str, namespace: str = "shop") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"key": name}}


def release(size: int, broken_every: int = 0) -> list[dict[str, Any]]:
    """A release of ``size`` objects (namespace, deployments, services, configmaps);
    with ``broken_every`` = n, every n-th deployment breaks a different baseline rule."""
    objects = [namespace("shop")]
    faults = [
        {"containers": [container(image="registry.example.com/shop/app:latest")]},
        {"containers": [container(resources={})]},
        {"containers": [container(securityContext={"privileged": True})]},
        {"pod_spec": {"hostNetwork": True}},
        {"containers": [container(image="docker.io/library/nginx:1.27")]},
        {"replicas": 1},
    ]
    index = broken = 0
    while len(objects) < size:
        kind = index % 3
        name = f"app-{index:05d}"
        if kind == 0:
            fault = {}
            if broken_every and (index // 3) % broken_every == 0:
                fault, broken = faults[broken % len(faults)], broken + 1
            objects.append(deployment(name, **fault))
        elif kind == 1:
            objects.append(service(name))
        else:
            objects.append(configmap(name))
        index += 1
    return objects
