"""Tasks on a real Celery worker over the real Redis broker: they run in an audit
context with source ``task`` and act for the user who enqueued them."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from fleet.audit import services
from fleet.audit.models import AuditEvent
from fleet.audit.tasks import verify_chain_task
from fleet.celery import app
from fleet.core import context

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@app.task(name="tests.record_ping")
def record_ping() -> int:
    return services.record("test.ping", target_type="test").sequence


@pytest.fixture(scope="module")
def worker():
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.fail("the integration suite needs CELERY_BROKER_URL=redis://… (scripts/services.sh up)")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10) as w:
        yield w


def test_task_audits_as_task_for_the_enqueuing_actor(worker):
    with context.activate(source="api", actor="alice", request_id="req-42"):
        record_ping.delay()
    deadline = time.monotonic() + 20
    while not AuditEvent.objects.filter(action="test.ping").exists():
        assert time.monotonic() < deadline, "the worker did not run the task within 20 s"
        time.sleep(0.1)
    event = AuditEvent.objects.get(action="test.ping")
    assert (event.source, event.actor, event.request_id) == ("task", "alice", "req-42")


def test_chain_verification_task_reports_the_chain():
    services.record("test.seed")
    result = verify_chain_task.apply().get()
    assert {k: result[k] for k in ("ok", "checked", "first_broken_sequence", "reason")} == {
        "ok": True, "checked": 1, "first_broken_sequence": None, "reason": ""}


@app.task(name="tests.backend_pid")
def backend_pid() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        services.record("test.backend", target_type="test", metadata={"pid": cursor.fetchone()[0]})


def test_a_worker_keeps_its_database_connection_from_task_to_task(worker):
    """Each task opening a PostgreSQL connection of its own cost a backend per deployment step."""
    for _ in range(3):
        backend_pid.delay()
    deadline = time.monotonic() + 20
    while AuditEvent.objects.filter(action="test.backend").count() < 3:
        assert time.monotonic() < deadline, "the worker did not run the tasks within 20 s"
        time.sleep(0.1)
    pids = {event.metadata["pid"] for event in AuditEvent.objects.filter(action="test.backend")}
    assert len(pids) == 1
