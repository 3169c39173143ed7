"""In-process Rego through regopy (rego-cpp): the embedded default, no server needed.

rego-cpp compiles modules and a query into a prepared bundle once; each decision then
only swaps the input. It has no working ``with`` (it crashes the process), so instead
of OPA's single driver query, every object is one prepared query over all per-object
rules, and every (constraint, matching object) one query of its template. The context
is ``data.fleet``, baked into the compiled form, so prepared interpreters are cached
by bundle hash and the part of the context the bundle reads (``Bundle.context_keys``):
the baseline reads only the cluster, so it is compiled once per cluster, and a bundle
that never reads ``data.fleet`` exactly once. Inputs go in as JSON text: regopy's ``Input`` builder
stores Python strings unescaped, and a quote in any object would corrupt the output.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping

import regopy
from regopy import Interpreter, LogLevel, RegoError

from fleet.policy.bundle import Bundle, Module
from fleet.policy.engines.base import (
    SET_INDEX,
    Engine,
    Hit,
    constraint_source,
    gatekeeper_input,
    located_error,
    rule_source,
    sorted_hits,
)
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import EvaluationInput

_ERROR_RE = re.compile(r"\(error \d+:(?P<file>[^|]*)\|(?P<offset>\d+)\|\d+")
_MESSAGE_RE = re.compile(r"\(errormsg \d+:(?P<message>[^)\n]*)")


def _collect(paths: list[str]) -> str:
    return "x = [" + ", ".join(f"[m | some m in data.{path}]" for path in paths) + "]"


@dataclass
class _Prepared:
    interpreter: Interpreter
    object_rules: list[tuple[Module, str]]
    set_rules: list[tuple[Module, str]]
    queries: dict[str, Any] = field(default_factory=dict)  # name -> regopy.Bundle
    lock: threading.Lock = field(default_factory=threading.Lock)


class RegopyEngine(Engine):
    name = "regopy"

    def __init__(self, cache_size: int = 32):
        self._cache: OrderedDict[tuple[str, str], _Prepared] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def prepare(self, bundle: Bundle) -> None:
        self._prepared(bundle, EvaluationInput([], {}, {}, {}).context_json(bundle.context_keys))

    def _prepared(self, bundle: Bundle, context_json: str) -> _Prepared:
        key = (bundle.hash, context_json)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        prepared = self._compile(bundle, context_json)
        with self._lock:
            self._cache[key] = prepared
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return prepared

    def _compile(self, bundle: Bundle, context_json: str) -> _Prepared:
        for module in bundle.modules:
            if module.uses_with:
                raise PolicyError("the embedded engine (regopy) cannot evaluate `with`; "
                                  "use the OPA engine for this policy", code="engine",
                                  file=module.file)
        interpreter = Interpreter()
        interpreter.log_level = LogLevel.NONE
        interpreter.strict_built_in_errors = True
        for module in bundle.modules:
            try:
                interpreter.add_module(module.id, module.source)
            except RegoError as exc:
                raise self._error(bundle, str(exc), "syntax", module) from None
        interpreter.add_data_json('{"fleet": ' + context_json + "}")
        prepared = _Prepared(interpreter, bundle.rules("object"), bundle.rules("set"))
        queries = {
            "object": [f"{bundle.path(m.package)}.{r}" for m, r in prepared.object_rules],
            "set": [f"{bundle.path(m.package)}.{r}" for m, r in prepared.set_rules],
            **{f"gk:{kind}": [f"{bundle.path(package)}.violation"]
               for kind, package in bundle.templates.items()},
        }
        for name, paths in queries.items():
            if paths:
                prepared.queries[name] = self._build(bundle, interpreter, _collect(paths))
        return prepared

    def _build(self, bundle: Bundle, interpreter: Interpreter, query: str) -> "regopy.Bundle":
        try:
            built = interpreter.build(query)
        except RegoError as exc:
            raise self._error(bundle, str(exc), "syntax") from None
        if not built.ok():
            raise PolicyError("the policies do not compile (regopy gave no detail)", code="syntax")
        return built

    @staticmethod
    def _error(bundle: Bundle, text: str, code: str, module: Module | None = None) -> PolicyError:
        where, what = _ERROR_RE.search(text), _MESSAGE_RE.search(text)
        message = what.group("message").strip() if what else text.strip()[:500]
        target = bundle.module(where.group("file")) if where else module
        if target is None:
            return PolicyError(message, code=code, file=module.file if module else "")
        line = target.source[: int(where.group("offset"))].count("\n") + 1 if where else None
        return located_error(bundle, target.id, line, message, code)

    def evaluate(self, bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                 matches: Mapping[int, list[int]], *, per_object: bool = True,
                 whole_set: bool = True) -> list[Hit]:
        prepared = self._prepared(bundle, data.context_json(bundle.context_keys))
        hits: list[Hit] = []
        with prepared.lock:
            if "set" in prepared.queries and whole_set:
                hits += self._hits(bundle, prepared, "set", prepared.set_rules,
                                    data.set_input(bundle.set_input_keys), SET_INDEX)
            if not per_object:
                return sorted_hits(hits)
            if "object" in prepared.queries:
                for index, obj in enumerate(data.objects):
                    hits += self._hits(bundle, prepared, "object", prepared.object_rules, obj, index)
            for number, constraint in enumerate(bundle.constraints):
                for index in matches.get(number, []):
                    document = gatekeeper_input(data, reviews, index, constraint.parameters)
                    results = self._run(prepared, f"gk:{constraint.kind}", document)
                    if results is None:
                        raise PolicyError(f"template {constraint.kind} failed at run time on object "
                                          f"#{index} (constraint {constraint.id})", code="runtime",
                                          file=constraint.path)
                    hits += [Hit(constraint_source(number), index, value) for value in results[0]]
        return sorted_hits(hits)

    @staticmethod
    def _run(prepared: _Prepared, query: str, document: Any) -> list[list[Any]] | None:
        """One prepared query over ``document``; None when it failed at run time."""
        prepared.interpreter.set_input_term(json.dumps(document))
        output = prepared.interpreter.query_bundle(prepared.queries[query])
        return output.results[0]["x"] if output.ok() else None

    def _hits(self, bundle: Bundle, prepared: _Prepared, query: str, rules: list[tuple[Module, str]],
              document: Any, index: int) -> list[Hit]:
        results = self._run(prepared, query, document)
        if results is None:
            raise self._runtime_error(bundle, prepared, rules, document, index)
        return [Hit(rule_source(module, rule), index, value)
                for (module, rule), values in zip(rules, results) for value in values]

    def _runtime_error(self, bundle: Bundle, prepared: _Prepared, rules: list[tuple[Module, str]],
                       document: Any, index: int) -> PolicyError:
        """regopy only says that the query failed: find the rule by running each alone."""
        target = "the release" if index == SET_INDEX else f"object #{index}"
        for module, rule in rules:
            query = f"rule:{module.id}::{rule}"
            if query not in prepared.queries:
                prepared.queries[query] = self._build(
                    bundle, prepared.interpreter, _collect([f"{bundle.path(module.package)}.{rule}"]))
            if self._run(prepared, query, document) is None:
                return PolicyError(f"{module.package}.{rule} failed at run time on {target} (the "
                                   "embedded engine gives no detail; the OPA engine does)",
                                   code="runtime", file=module.file)
        return PolicyError(f"the policies failed at run time on {target}", code="runtime")

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
