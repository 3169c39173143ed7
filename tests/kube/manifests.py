"""Small manifest builders for the kube tests and benchmarks."""

from __future__ import annotations

from typing import Any


def namespace(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def configmap(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns},
            "data": data or {"key": "value"}}


def secret(ns: str, name: str, **values: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "stringData": values}


def deployment(ns: str, name: str, *, replicas: int = 1, image: str = "registry.local/web:1",
               node_selector: dict[str, str] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    pod_spec: dict[str, Any] = {
        "containers": [{"name": "web", "image": image, "ports": [{"containerPort": 8080}],
                        "resources": {"requests": {"cpu": "0.1", "memory": "64Mi"}}}],
        # kwok's fake nodes carry this taint: pods must tolerate it to land there.
        "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
    }
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}}


def service(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(),
                               "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "properties": {
                             "spec": {"type": "object", "properties": {
                                 "size": {"type": "integer"}}}}}}}]}}


def fleet_app(ns: str, count: int = 20) -> list[dict[str, Any]]:
    """``count`` objects of the usual kinds, as one application ships them."""
    objects: list[dict[str, Any]] = [namespace(ns)]
    makers = [lambda i: configmap(ns, f"config-{i}", setting=str(i)),
              lambda i: secret(ns, f"secret-{i}", password=f"pw-{i}"),
              lambda i: service(ns, f"web-{i}"),
              lambda i: deployment(ns, f"web-{i}")]
    i = 0
    while len(objects) < count:
        objects.append(makers[i % len(makers)](i // len(makers)))
        i += 1
    return objects
