"""Kubernetes labels: validation and label selectors.

The selector grammar is Kubernetes' own (``env=prod,region in (eu,us),!canary``), so
a selector written for kubectl means the same here. A selector both matches a plain
dict (policy sets, waves) and becomes a Django ``Q`` on a JSON ``labels`` column, so
the database does the filtering for the API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.lookups import In

from fleet.core.errors import FleetError

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_NAME_RE = re.compile(rf"^{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")
_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_LABELS = 64


class LabelError(FleetError):
    """A label or selector is not valid Kubernetes syntax; the message says why."""

    domain = "labels"
    code = "invalid"


def label_key_error(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None."""
    if not isinstance(key, str) or not key:
        return "label key must be a non-empty string"
    prefix, _, name = key.rpartition("/")
    if prefix:
        if len(prefix) > 253 or not _PREFIX_RE.match(prefix):
            return f"label key {key!r}: prefix must be a DNS subdomain of at most 253 characters"
    if len(name) > 63 or not _NAME_RE.match(name):
        return (f"label key {key!r}: name must be at most 63 characters of alphanumerics, "
                "'-', '_' or '.', starting and ending with an alphanumeric")
    return None


def label_value_error(key: str, value: object) -> str | None:
    """Why ``value`` is not a valid value for ``key``, or None."""
    if not isinstance(value, str):
        return f"label {key!r}: value must be a string, not {type(value).__name__}"
    if len(value) > 63 or not _VALUE_RE.match(value):
        return (f"label {key!r}: value {value!r} must be empty or at most 63 characters of "
                "alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric")
    return None


def validate_labels(labels: object) -> None:
    """Raise LabelError naming every bad key or value in a labels mapping."""
    if not isinstance(labels, Mapping):
        raise LabelError("labels must be a mapping of key to value")
    if len(labels) > MAX_LABELS:
        raise LabelError(f"at most {MAX_LABELS} labels are allowed, got {len(labels)}")
    problems = [
        problem
        for key, value in labels.items()
        for problem in (label_key_error(key) or label_value_error(key, value),)
        if problem
    ]
    if problems:
        raise LabelError("; ".join(problems))


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # one of: exists, !exists, =, !=, in, notin
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values  # != and notin

    def to_q(self, field: str) -> Q:
        # Key transforms, not JSON containment: they work on SQLite as on PostgreSQL and
        # take any label key, even one with "__" in it.
        has_key = Q(**{f"{field}__has_key": self.key})
        value = KeyTextTransform(self.key, field)
        if self.operator == "exists":
            return has_key
        if self.operator == "!exists":
            return ~has_key
        if self.operator in ("=", "in"):
            return Q(In(value, list(self.values)))
        # != and notin also match objects without the key, as in Kubernetes.
        return ~has_key | ~Q(In(value, list(self.values)))

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!exists":
            return f"!{self.key}"
        if self.operator in ("=", "!="):
            return f"{self.key}{self.operator}{self.values[0]}"
        return f"{self.key} {self.operator} ({','.join(self.values)})"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    def to_q(self, field: str = "labels") -> Q:
        query = Q()
        for req in self.requirements:
            query &= req.to_q(field)
        return query

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)


_TOKEN_RE = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!|<|>)|(?P<word>[^\s=!(),<>]+))")


def _tokens(text: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if not match or match.end() == pos:
            raise LabelError(f"label selector {text!r}: unexpected character at position {pos}")
        kind = "op" if match.group("op") else "word"
        tokens.append((kind, match.group(kind), match.start(kind)))
        pos = match.end()
    return tokens


def parse_selector(text: str) -> Selector:
    """Parse a Kubernetes label selector; an empty string matches everything."""
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def fail(message: str, at: int | None = None) -> LabelError:
        where = f" at position {at}" if at is not None else " at the end"
        return LabelError(f"label selector {text!r}: {message}{where}")

    def peek(offset: int = 0) -> tuple[str, str, int] | None:
        return tokens[i + offset] if i + offset < len(tokens) else None

    def key_at(token: tuple[str, str, int] | None) -> str:
        if token is None or token[0] != "word":
            raise fail("expected a label key", token[2] if token else None)
        problem = label_key_error(token[1])
        if problem:
            raise fail(problem, token[2])
        return token[1]

    def value_at(key: str, token: tuple[str, str, int] | None) -> str:
        if token is None or token[0] != "word":
            # `key=` is a valid requirement for the empty value, as in Kubernetes.
            if token is None or token[1] in {",", ")"}:
                return ""
            raise fail("expected a label value", token[2])
        problem = label_value_error(key, token[1])
        if problem:
            raise fail(problem, token[2])
        return token[1]

    while i < len(tokens):
        token = peek()
        if token and token[1] == "!":
            i += 1
            requirements.append(Requirement(key_at(peek()), "!exists"))
            i += 1
        else:
            key = key_at(token)
            i += 1
            nxt = peek()
            if nxt is None or nxt[1] == ",":
                requirements.append(Requirement(key, "exists"))
            elif nxt[1] in {"=", "==", "!="}:
                i += 1
                value = value_at(key, peek())
                if peek() is not None and peek()[0] == "word":
                    i += 1
                requirements.append(Requirement(key, "!=" if nxt[1] == "!=" else "=", (value,)))
            elif nxt[0] == "word" and nxt[1] in {"in", "notin"}:
                i += 1
                if peek() is None or peek()[1] != "(":
                    raise fail("expected '('", peek()[2] if peek() else None)
                i += 1
                if peek() is not None and peek()[1] == ")":
                    raise fail(f"{nxt[1]} needs at least one value", peek()[2])
                values: list[str] = []
                while True:
                    values.append(value_at(key, peek()))
                    if peek() is not None and peek()[0] == "word":
                        i += 1
                    sep = peek()
                    if sep is None:
                        raise fail("expected ')'")
                    i += 1
                    if sep[1] == ")":
                        break
                    if sep[1] != ",":
                        raise fail("expected ',' or ')'", sep[2])
                requirements.append(Requirement(key, nxt[1], tuple(values)))
            else:
                raise fail(f"unexpected {nxt[1]!r}; operators are =, ==, !=, in, notin, !", nxt[2])
        sep = peek()
        if sep is not None:
            if sep[1] != ",":
                raise fail("expected ','", sep[2])
            i += 1
            if peek() is None:
                raise fail("trailing ','", sep[2])
    return Selector(tuple(requirements))
