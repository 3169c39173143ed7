"""Periodic verification of the audit chain, so tampering is noticed without anyone asking."""

from __future__ import annotations

import logging

from celery import shared_task

from fleet.audit.services import verify_chain

logger = logging.getLogger(__name__)


@shared_task(name="audit.verify_chain")
def verify_chain_task() -> dict:
    report = verify_chain()
    if report.ok:
        logger.info("audit chain intact: %d events", report.checked)
    else:
        logger.error("audit chain BROKEN: %s", report.reason)
    return report.as_dict()
