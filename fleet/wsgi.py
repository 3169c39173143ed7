"""WSGI entry point (gunicorn); configuration errors are printed, not raised."""

import os

from django.core.wsgi import get_wsgi_application

from fleet.conf import ConfigError, report_and_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
try:
    application = get_wsgi_application()
except ConfigError as exc:
    report_and_exit(exc)
