"""JSON snapshots of model instances for audit before/after, with secrets redacted.

A model lists its secret fields in ``SECRET_FIELDS`` (``password`` always is one); a snapshot records only
whether each is set, never its value or ciphertext.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

from django.db import models

SET, UNSET = "(set)", "(unset)"
# Secret whatever the model says (Django's User keeps its password hash here).
ALWAYS_SECRET = frozenset({"password"})


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    return value


def snapshot(instance: models.Model) -> dict[str, Any]:
    secret = ALWAYS_SECRET.union(getattr(instance, "SECRET_FIELDS", ()))
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if field.name in secret:
            data[field.name] = SET if value else UNSET
        else:
            data[field.name] = _jsonable(value)
    return data


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(key for key in after if before.get(key) != after.get(key))
