"""The Celery application. Tasks stay thin: they call services, and all state they
advance lives in the database, so a task may be lost or run twice without harm.

Every task runs in a context (``fleet.core.context``) with source ``task``; the actor
who enqueued it travels in the message headers, so the audit log says who a task acted for.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun

from fleet.core import context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")

ACTOR_HEADER, REQUEST_ID_HEADER = "fleet_actor", "fleet_request_id"


class AuditedTask(Task):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        actor = getattr(self.request, ACTOR_HEADER, None) or f"task:{self.name}"
        request_id = getattr(self.request, REQUEST_ID_HEADER, None)
        with context.activate(source="task", actor=actor, request_id=request_id):
            return super().__call__(*args, **kwargs)


@before_task_publish.connect
def _carry_actor(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None:
        return
    current = context.current()
    headers.setdefault(ACTOR_HEADER, current.actor_name())
    headers.setdefault(REQUEST_ID_HEADER, current.request_id)


@task_prerun.connect
@task_postrun.connect
def _recycle_connections(task: Task | None = None, **kwargs: Any) -> None:
    """Around each task, what Django does around each request: close the thread's database
    connection only when it is broken or older than ``CONN_MAX_AGE``, and check its health
    again on first use. (Celery's own Django fix-up would close it after every task, and a
    worker would open one per task: a PostgreSQL backend started, authenticated and set up
    for each deployment step; ``CELERY_DB_REUSE_MAX`` in the settings turns that off.)
    An eager task runs inside its caller's transaction: its connection is the caller's."""
    from django.db import close_old_connections

    if task is not None and not getattr(task.request, "is_eager", False):
        close_old_connections()


app = Celery("fleet", task_cls=AuditedTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
