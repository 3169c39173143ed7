"""An OPA server through ``opa-python-client``: the production engine, and (with a
process Fleet runs itself, ``managed.py``) the embedded one.

A bundle's modules are PUT once under ``fleet_bundles/b<hash>/`` with a generated
driver module; each decision is then one ``POST /v1/data/…/fleet_driver/hits`` whose
driver iterates the objects with ``with input as …`` — one HTTP round trip however
many policies, and for a large release one per shard of objects, sent concurrently
so that OPA uses more than one core. OPA keeps the compiled policies, so a
decision never re-parses Rego.

A policy set's bundle is replaced in place: when the set's content changes, the new
bundle is loaded and the old one deleted once no set uses it, so OPA holds one
bundle per set (and a bounded number of unnamed ones, for CI checks); OPA recompiles
everything it holds on every PUT, so what it holds is what loading costs. Libraries
are PUT before the modules that import them. An OPA that restarted and lost them is
detected (undefined result) and reloaded once.

Rego v0 modules (most Gatekeeper templates) need an OPA that reads v0: one started
with ``--v0-compatible``, where a module is v1 when it imports ``rego.v1`` (Fleet adds
that import to its v1 modules). A server that reads only v1 is detected before a v0
module is sent, and named in the error.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any
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
    narrowed,
    rule_source,
    sorted_hits,
)
from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper import review as gk_review
from fleet.policy.inputs import EvaluationInput

_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._/-]")
SHARD_OBJECTS = 250  # below this many objects per shard, a second request costs more than it saves
V0_PROBE = ("fleet/probe/v0", "package fleet_probe.v0\n\nallowed[x] { x := 1 }\n")
_LOAD_ORDER = {"library": 0, "object": 1, "set": 1, "gatekeeper": 1}


def driver_source(bundle: Bundle) -> str:
    """The module that turns one request into every rule's hits, in one evaluation.

    ``object_hits`` (per-object rules and Gatekeeper constraints) and ``set_hits``
    (rules over the whole release) can be queried apart, ``hits`` is both. The context
    goes in once per request (``with data.fleet``), and each object costs one ``with
    input`` for all its rules: every ``with`` resets OPA's caches, so one per rule, or
    one context swap per object, costs up to 25 % more. A partial set is referenced as
    it is (it is never undefined); any other rule goes through a comprehension, so an
    undefined rule hides no other. Rows without findings are dropped inside OPA: with
    the copies into arrays, they cost a fifth of a decision's evaluation.
    """
    lines = [f"package {bundle.prefix}.fleet_driver", "", "import rego.v1", "",
             'context := {"cluster": input.cluster, "release": input.release, "change": input.change}', ""]

    def gather(name: str, rules: list[tuple[Module, str]]) -> None:
        def value(module: Module, rule: str) -> str:
            ref = f"data.{module.package}.{rule}"
            return ref if rule in module.set_rules else f"[m | some m in {ref}]"

        entries = ",\n".join(f"\t{json.dumps(rule_source(m, r))}: {value(m, r)}" for m, r in rules)
        lines.extend([f"{name} := {{", entries, "}", ""])

    inventory = " with data.inventory as inventory" if bundle.reads_inventory else ""
    if bundle.reads_inventory:
        lines.extend(['inventory := object.get(input, "inventory", {"cluster": {}, "namespace": {}})', ""])

    def hit_rule(name: str, results: str, loop: list[str]) -> None:
        lines.extend([f"{name} contains h if {{", "\tc := context",
                      f"\tresults := {results} with data.fleet as c{inventory}",
                      *loop, '\th := {"s": s, "i": i, "m": m}', "}", ""])

    per_object = ["\tsome row in results", "\t[i, s, ms] := row", "\tsome m in ms"]
    lines.extend([f"{name} contains h if {{ some h in [] }}" for name in ("object_hits", "set_hits")])
    lines.append("")
    if bundle.rules("object"):
        gather("object_rules", bundle.rules("object"))
        lines.extend(["object_results := [[i, s, ms] |", "\tsome i, obj in input.objects",
                      "\tsome s, ms in object_rules with input as obj", "\tcount(ms) > 0", "]", ""])
        hit_rule("object_hits", "object_results", per_object)
    if bundle.rules("set"):
        gather("set_rules", bundle.rules("set"))
        set_input = ", ".join(f'"{key}": input.{key}' for key in bundle.set_input_keys)
        hit_rule("set_hits", f"set_rules with input as {{{set_input}}}",
                 [f"\ti := {SET_INDEX}", "\tsome s, ms in results", "\tsome m in ms"])
    if bundle.constraints:
        lines.extend(['review(i) := r if {', "\tr := input.reviews[i]", "\tr.object", "}", "",
                      'review(i) := object.union(r, {"object": input.objects[i]}) if {',
                      "\tr := input.reviews[i]", "\tnot r.object", "}", ""])
    for number, constraint in enumerate(bundle.constraints):
        package = bundle.templates[constraint.kind]
        lines.extend([f"constraint_{number} := [[i, {json.dumps(constraint_source(number))}, ms] |",
                      f'\tsome i in input.matches["{number}"]',
                      f"\tms := [m | some m in data.{package}.violation] with input as "
                      f'{{"review": review(i), "parameters": input.parameters["{number}"]}}', "\tcount(ms) > 0",
                      "]", ""])
        hit_rule("object_hits", f"constraint_{number}", per_object)
    lines.append("hits := object_hits | set_hits")
    return "\n".join(lines)


class OpaEngine(Engine):
    name = "opa"

    def __init__(self, url: str, *, timeout: float = 10.0, token: str | None = None,
                 max_bundles: int = 64, parallelism: int = 2):
        self._timeout = timeout
        self.connect(url, token)
        self._loaded: OrderedDict[str, dict[str, str]] = OrderedDict()  # hash -> policy id -> module id
        self._slots: dict[str, str] = {}  # policy set name -> the hash it runs
        self._max_bundles = max_bundles
        self._reads_v0: bool | None = None
        self._lock = threading.Lock()
        self._parallelism = max(1, parallelism)
        self._executor: ThreadPoolExecutor | None = None

    def connect(self, url: str, token: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise PolicyError(f"OPA URL {url!r} must be http(s)://host:port", code="engine")
        self.url = url
        self._client = OpaClient(host=parts.hostname, port=parts.port or (443 if parts.scheme == "https" else 80),
                                 ssl=parts.scheme == "https", token=token, timeout=self._timeout, retries=0)

    def _unreachable(self, exc: Exception) -> PolicyError:
        return PolicyError(f"the OPA server at {self.url} cannot be reached: {type(exc).__name__}",
                           code="engine")

    def prepare(self, bundle: Bundle, slot: str = "") -> None:
        """Load ``bundle`` (once); ``slot`` names the policy set it is the current
        version of, so the version it replaces is deleted from OPA."""
        with self._lock:
            loaded = bundle.hash in self._loaded
            if loaded:
                self._loaded.move_to_end(bundle.hash)
        if not loaded:
            self._load(bundle)
        with self._lock:
            previous = self._slots.get(slot) if slot else None
            if slot:
                self._slots[slot] = bundle.hash
            in_use = set(self._slots.values())
            evicted = []
            if previous and previous != bundle.hash and previous not in in_use and previous in self._loaded:
                evicted.extend(self._loaded.pop(previous).keys())
            unnamed = [h for h in self._loaded if h not in in_use]
            while len(self._loaded) > self._max_bundles and unnamed:
                evicted.extend(self._loaded.pop(unnamed.pop(0)).keys())
        self._delete(evicted)

    def _load(self, bundle: Bundle) -> None:
        if bundle.has_v0 and not self._check_reads_v0():
            module = next(m for m in bundle.modules if m.version == "v0")
            raise PolicyError(f"{module.file} is Rego v0 (a Gatekeeper template's default), and the OPA server "
                              f"at {self.url} reads only Rego v1: start it with --v0-compatible",
                              code="engine", file=module.file)
        base = bundle.prefix.replace(".", "/")
        ordered = sorted(bundle.modules, key=lambda m: _LOAD_ORDER[m.scope])
        modules = {f"{base}/{_UNSAFE_ID.sub('_', m.id)}": (m.id, m.source) for m in ordered}
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

    def _check_reads_v0(self) -> bool:
        """Whether the server reads Rego v0 (``--v0-compatible``), asked once."""
        if self._reads_v0 is None:
            try:
                self._client.update_policy_from_string(V0_PROBE[1], V0_PROBE[0], rego_compat=False)
                self._delete([V0_PROBE[0]])
                self._reads_v0 = True
            except RegoParseError:
                self._reads_v0 = False
            except (requests.RequestException, ConnectionsError) as exc:
                raise self._unreachable(exc) from None
        return self._reads_v0

    def _put_all(self, modules: Mapping[str, tuple[str, str]]) -> None:
        """PUT every module, libraries first. OPA compiles each PUT against what it
        already holds, so a module whose imports are not loaded yet fails: retry those
        until no progress."""
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
        module = bundle.module(module_id)
        if module is not None and module.version == "v1" and module.scope != "gatekeeper" and \
                "keyword is required" in message:
            message += " (the file is read as Rego v1; declare a Rego v0 file in the set's .manifest)"
        return located_error(bundle, module_id, location.get("row"), message, "syntax")

    def evaluate(self, bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                 matches: Mapping[int, list[int]], *, per_object: bool = True,
                 whole_set: bool = True, slot: str = "") -> list[Hit]:
        """One request per shard of subjects, sent at once: OPA evaluates a request on one
        core, so a large release is split across ``parallelism`` concurrent requests."""
        self.prepare(bundle, slot)
        count = len(reviews) if per_object else 0
        shards = max(1, min(self._parallelism, count // SHARD_OBJECTS))
        bounds = [(count * n // shards, count * (n + 1) // shards) for n in range(shards)]
        requests_ = [("object_hits", *narrowed(data, reviews, matches, list(range(lo, hi))), lo)
                     for lo, hi in bounds] if per_object else []
        if whole_set and bundle.rules("set"):
            if shards == 1 and requests_:
                requests_ = [("hits", data, reviews, matches, 0)]
            else:  # the release alone: its objects only if a set rule reads them
                release = data if "objects" in bundle.set_input_keys else data.subset([])
                requests_.append(("set_hits", release, [], {}, 0))
        if len(requests_) <= 1:
            answers = [self._decide(bundle, *request) for request in requests_]
        else:
            answers = list(self._pool().map(lambda args: self._decide(bundle, *args), requests_))
        return sorted_hits([hit for answer in answers for hit in answer])

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._parallelism + 1, thread_name_prefix="opa")
            return self._executor

    @staticmethod
    def document(bundle: Bundle, data: EvaluationInput, reviews: list[dict[str, Any]],
                 matches: Mapping[int, list[int]]) -> dict[str, Any]:
        """The driver's input for one request."""
        needed = set().union(*matches.values()) if matches else set()
        # Only matched subjects need their review (which may hold the whole oldObject).
        document = {**data.set_input(),
                    "reviews": [review if i in needed else None for i, review in enumerate(reviews)],
                    "matches": {str(n): indexes for n, indexes in matches.items()},
                    "parameters": {str(n): c.parameters for n, c in enumerate(bundle.constraints)}}
        if bundle.reads_inventory and needed:
            document["inventory"] = gk_review.inventory(data.admission.inventory)
        return document

    def _decide(self, bundle: Bundle, rule: str, data: EvaluationInput, reviews: list[dict[str, Any]],
                matches: Mapping[int, list[int]], offset: int) -> list[Hit]:
        document = self.document(bundle, data, reviews, matches)
        for _ in range(2):
            response = self._query(bundle, rule, document)
            if "result" in response:
                break
            with self._lock:  # OPA lost the bundle (restarted): load it again, once
                self._loaded.pop(bundle.hash, None)
                self._reads_v0 = None
            self.prepare(bundle)
        else:
            raise PolicyError(f"the OPA server at {self.url} does not keep the loaded policies",
                              code="engine")
        return [Hit(h["s"], h["i"] + offset if h["i"] != SET_INDEX else SET_INDEX, h["m"])
                for h in response["result"]]

    def _query(self, bundle: Bundle, rule: str, document: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._client.query_rule(document, f"{bundle.prefix}.fleet_driver", rule,
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

    def forget(self) -> None:
        """Forget what was loaded (the server restarted empty)."""
        with self._lock:
            self._loaded.clear()
            self._slots.clear()
            self._reads_v0 = None

    def close(self) -> None:
        with self._lock:
            loaded, self._loaded = self._loaded, OrderedDict()
            self._slots.clear()
        self._delete([p for ids in loaded.values() for p in ids])
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._client.close_connection()
