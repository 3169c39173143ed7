#!/usr/bin/env python
"""Fleet's command line: Django's manage.py, with configuration errors printed plainly."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fleet.settings")
    from fleet.conf import ConfigError, report_and_exit

    try:
        import django

        django.setup()
    except ConfigError as exc:
        report_and_exit(exc)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
