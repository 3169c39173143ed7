"""An OPA server through ``opa-python-client``: the production engine.

A bundle's modules are PUT once under ``fleet_bundles/b<hash>/`` with a generated
driver module; each decision is then a single ``POST /v1/data/…/fleet_driver/hits``
whose driver iterates the objects with ``with input as …`` — one HTTP round trip per
decision, however many objects and policies. OPA keeps the compiled policies, so a
decision never re-parses Rego. Loaded bundles are remembered (LRU, evicted ones are
deleted from OPA); an OPA that restarted and lost them is detected (undefined
result) and reloaded once.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests
from opa_client import OpaClient
from opa_client.errors import ConnectionsError, DeletePolicyError, RegoParseError

from fleet.policy.bundle import Bundle, Module
from fleet.policy.engines.base import (
    SET_INDEX,
    Engine,
    Hit,
    constraint_source,
    located_error,
    rule_source,
    sorted_hits,
)
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import EvaluationInput

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._/-]")
_CONTEXT = '{"cluster": input.cluster, "release": input.release, "change": input.change}'
_SET_INPUT = ('{"objects": input.objects, "cluster": input.cluster, "release": input.release, '
              '"change": input.change}')


def driver_source(bundle: Bundle) -> str:
    """The module that turns one request into every rule's hits, in one evaluation.

    All per-object rules are gathered in one object evaluated once per object (one
    ``with`` each): ``with`` resets OPA's caches, so one per rule would cost ~2x.
    Each entry is a comprehension, so a rule that is undefined hides no other rule.
    """
    lines = [f"package {bundle.prefix}.fleet_driver", "", "import rego.v1", ""]

    def hit_rule(loop: list[str], call: str, pairs: list[str], index: str) -> None:
        lines.extend(["hits contains h if {", f"\tc := {_CONTEXT}", *loop,
                      f"\tresults := {call} with data.fleet as c", *pairs, "\tsome m in ms",
                      f'\th := {{"s": s, "i": {index}, "m": m}}', "}", ""])

    def gather(name: str, rules: list[tuple[Module, str]]) -> None:
        entries = ",\n".join(f"\t{json.dumps(rule_source(m, r))}: [m | some m in data.{bundle.path(m.package)}.{r}]"
                             for m, r in rules)
        lines.extend([f"{name} := {{", entries, "}", ""])

    each = ["\tsome s, ms in results"]
    if bundle.rules("object"):
        gather("object_rules", bundle.rules("object"))
        hit_rule(["\tsome i, obj in input.objects"], "object_rules with input as obj", each, "i")
    if bundle.rules("set"):
        gather("set_rules", bundle.rules("set"))
        hit_rule([], f"set_rules with input as {_SET_INPUT}", each, str(SET_INDEX))
    for number, constraint in enumerate(bundle.constraints):
        package = bundle.path(bundle.templates[constraint.kind])
        hit_rule([f'\tsome i in input.matches["{number}"]',
                  '\treview := object.union(input.reviews[i], {"object": input.objects[i]})'],
                 f'[m | some m in data.{package}.violation] with input as {{"review": review, '
                 f'"parameters": input.parameters["{number}"]}}',
                 [f"\ts := {json.dumps(constraint_source(number))}", "\tms := results"], "i")
    return "\n".join(lines)


class OpaEngine(Engine):
    name = "opa"

    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None,
                 max_bundles: int = 64):
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise PolicyError(f"OPA URL {url!r} must be http(s)://host:port", kind="engine")
        self.url = url
        self._client = OpaClient(host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
                                 ssl=parts.scheme == "https", token=token, timeout=timeout, retries=0)
        self._loaded: OrderedDict[str, dict[str, str]] = OrderedDict()  # hash -> policy id -> module id
        self._max_bundles = max_bundles
        self._lock = threading.Lock()

    def _unreachable(self, exc: Exception) -> PolicyError:
        return PolicyError(f"the OPA server at {self.url} cannot be reached: {type(exc).__name__}",
                           kind="engine")

    def prepare(self, bundle: Bundle) -> None:
        with self._lock:
            if bundle.hash in self._loaded:
                self._loaded.move_to_end(bundle.hash)
                return
        base = bundle.prefix.replace(".", "/")
        modules = {f"{base}/{_UNSAFE_ID.sub('_', m.id)}": (m.id, m.source) for m in bundle.modules}
        modules[f"{base}/fleet_driver"] = ("fleet_driver", driver_source(bundle))
        try:
            self._put_all(modules)
        except RegoParseError as exc:
            self._delete(list(modules))
            raise self._parse_error(bundle, exc, {p: m for p, (m, _) in modules.items()}) from None
        except (requests.RequestException, ConnectionsError) as exc:
            raise self._unreachable(exc) from None
        with self._lock:
            self._loaded[bundle.hash] = {p: m for p, (m, _) in modules.items()}
            evicted = []
            while len(self._loaded) > self._max_bundles:
                evicted.extend(self._loaded.popitem(last=False)[1])
        self._delete(evicted)

    def _put_all(self, modules: Mapping[str, tuple[str, str]]) -> None:
        """PUT every module. OPA compiles each PUT against what it already holds, so a
        module whose imports are not loaded yet fails: retry those until no progress."""
        pending = list(modules)
        while pending:
            failed: list[tuple[str, RegoParseError]] = []
            for policy_id in pending:
                try:
                    self._client.update_policy_from_string(modules[policy_id][1], policy_id,
                                                           rego_compat=False)
                except RegoParseError as exc:
                    failed.append((policy_id, exc))
            if len(failed) == len(pending):  # a syntax error is the cause, not its dependents
                raise next((exc for _, exc in failed if any(
                    isinstance(e, dict) and e.get("code") == "rego_parse_error" for e in exc.errors)),
                    failed[0][1])
            pending = [policy_id for policy_id, _ in failed]

    def _delete(self, policy_ids: list[str]) -> None:
        for policy_id in policy_ids:
            try:
                self._client.delete_policy(policy_id)
            except (DeletePolicyError, requests.RequestException, ValueError):
                pass  # already gone, or OPA is down: it holds nothing of ours then

    @staticmethod
    def _parse_error(bundle: Bundle, exc: RegoParseError, ids: Mapping[str, str]) -> PolicyError:
        errors = [e for e in exc.errors if isinstance(e, dict)] or [{"message": str(exc.message)}]
        first = errors[0]
        location = first.get("location") or {}
        module_id = ids.get(location.get("file", ""), location.get("file", ""))
        message = first.get("message", "invalid policy")
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return located_error(bundle, module_id, location.get("row"), message, "syntax")

    def evaluate(self, bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                 matches: Mapping[int, list[int]]) -> list[Hit]:
        needed = set().union(*matches.values()) if matches else set()
        # Only matched objects need their review (which may hold the whole oldObject).
        document = {**data.set_input(),
                    "reviews": [review if i in needed else None for i, review in enumerate(reviews)],
                    "matches": {str(n): indexes for n, indexes in matches.items()},
                    "parameters": {str(n): c.parameters for n, c in enumerate(bundle.constraints)}}
        for _ in range(2):
            self.prepare(bundle)
            response = self._query(bundle, document)
            if "result" in response:
                break
            with self._lock:  # OPA lost the bundle (restarted): load it again, once
                self._loaded.pop(bundle.hash, None)
        else:
            raise PolicyError(f"the OPA server at {self.url} does not keep the loaded policies",
                              kind="engine")
        return sorted_hits([Hit(h["s"], h["i"], h["m"]) for h in response["result"]])

    def _query(self, bundle: Bundle, document: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._client.query_rule(document, f"{bundle.prefix}.fleet_driver", "hits",
                                           query_params={"strict-builtin-errors": "true"})
        except requests.HTTPError as exc:
            raise self._runtime_error(bundle, exc.response) from None
        except (requests.RequestException, ConnectionsError) as exc:
            raise self._unreachable(exc) from None

    def _runtime_error(self, bundle: Bundle, response: requests.Response | None) -> PolicyError:
        try:
            body = response.json() if response is not None else {}
        except ValueError:
            body = {}
        errors = body.get("errors") or [body]
        location = errors[0].get("location") or {}
        ids = self._loaded.get(bundle.hash, {})
        message = errors[0].get("message") or body.get("message") or "OPA refused the query"
        return located_error(bundle, ids.get(location.get("file", ""), location.get("file", "")),
                             location.get("row"), message, "runtime")

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, OrderedDict()
        self._delete([p for ids in loaded.values() for p in ids])
        self._client.close_connection()
