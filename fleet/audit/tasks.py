"""Periodic audit work: verify the chain (so tampering is noticed without anyone
asking), checkpoint the head, and archive what retention moves out."""

from __future__ import annotations

import logging

from celery import shared_task

from fleet.audit import retention
from fleet.audit.checkpoints import checkpoint_head
from fleet.audit.services import verify_and_record

logger = logging.getLogger(__name__)


@shared_task(name="audit.verify_chain")
def verify_chain_task() -> dict:
    report = verify_and_record()
    if report.ok:
        logger.info("audit chain intact: %d events", report.checked)
    else:
        logger.error("audit chain BROKEN: %s", report.reason)
    return report.as_dict()


@shared_task(name="audit.checkpoint")
def checkpoint_task() -> str:
    made = checkpoint_head()
    if made is not None:  # the log line is one more copy of the signed head, outside the database
        logger.info("audit %s: %s", made, made.statement())
    return str(made or "")


@shared_task(name="audit.archive")
def archive_task() -> str:
    return retention.archive().summary()
