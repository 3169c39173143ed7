"""The Celery application. Tasks stay thin: they call services, and all state they
advance lives in the database, so a task may be lost or run twice without harm.

Every task runs in a context (``fleet.core.context``) with source ``task``; the actor
who enqueued it travels in the message headers, so the audit log says who a task acted for.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish

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


app = Celery("fleet", task_cls=AuditedTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
