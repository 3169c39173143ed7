"""Fleet: a GitOps control plane for fleets of Kubernetes clusters."""

from fleet.celery import app as celery_app

__all__ = ["celery_app"]
