"""The Celery application. Tasks stay thin: they call services, and all state they
advance lives in the database, so a task may be lost or run twice without harm."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")

app = Celery("fleet")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
