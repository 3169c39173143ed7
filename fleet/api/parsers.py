"""The API's one JSON parser (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``): DRF's, through
Fleet's JSON loader, so a body nested past the depth limit is a 400 naming the problem
rather than a ``RecursionError`` and a 500 (``fleet.core.jsonload``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from fleet.core import jsonload


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return jsonload.loads(stream.read().decode(encoding))
        except UnicodeDecodeError:
            raise ParseError(f"JSON parse error - the body is not {encoding} text") from None
        except jsonload.JsonError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
