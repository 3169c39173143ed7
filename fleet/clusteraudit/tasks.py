"""Hourly upkeep of the cluster audit: partitions ahead, retention behind."""

from __future__ import annotations

import logging

from celery import shared_task

from fleet.clusteraudit import services

logger = logging.getLogger(__name__)


@shared_task(name="clusteraudit.maintain")
def maintain_task() -> str:
    result = services.maintain()
    logger.info("cluster audit upkeep: %s", result.summary())
    return result.summary()
