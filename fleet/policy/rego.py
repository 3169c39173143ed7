"""Reading Rego source without an engine: package, rules, imports, ``data`` references.

Fleet never rewrites Rego syntax: OPA compiles each module in the Rego version it is
written in (a Gatekeeper template's version, or the set's ``.manifest``; see
``bundle.py``), through OPA's own v0 compatibility. Fleet only reads a module enough
to route it (which rules to query, which parts of ``input`` and ``data.fleet`` it
reads, whether its results can be reused) and moves it under its bundle's own
``data`` prefix (:func:`namespace_module`), the way Gatekeeper prefixes each template:
several policy sets, and every template of one set, share one OPA without sharing a
package. A Rego v1 module gets ``import rego.v1`` on its package line (the import OPA
defines as "this module is v1" in a server that also reads v0); lines never move, so
OPA's errors point at the author's lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_TOKEN_RE = re.compile(
    r"""(?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\\n]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      | (?P<op>:=|==|!=|<=|>=|[{}\[\]().,;:=|&<>+\-*/%!])
      | (?P<newline>\n)
      | (?P<space>[ \t\r]+)
    """,
    re.VERBOSE,
)
_OPEN, _CLOSE = "([{", ")]}"
# Built-ins whose result is not a function of the input and the policies: the clock,
# the network, randomness, the OPA process. A decision that calls one cannot be reused.
NONDETERMINISTIC_BUILTINS = frozenset({
    "time.now_ns", "http.send", "rand.intn", "uuid.rfc4122", "opa.runtime", "net.lookup_ip_addr",
    "io.jwt.decode_verify", "crypto.x509.parse_and_verify_certificates",
    "crypto.x509.parse_and_verify_certificates_with_options",
})
_TERM_END = {"ident", "string", "raw", "number"}


class RegoSyntaxError(ValueError):
    """Source Fleet cannot even tokenise; ``line`` is 1-based."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    line: int
    depth: int  # bracket depth before this token


def tokens(source: str) -> list[Token]:
    """Significant tokens (no comments or blanks), each with its line and bracket depth."""
    out: list[Token] = []
    pos, line, depth = 0, 1, 0
    while pos < len(source):
        match = _TOKEN_RE.match(source, pos)
        if match is None:
            raise RegoSyntaxError(f"unexpected character {source[pos]!r}", line)
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "op" and text in _CLOSE:
            depth = max(depth - 1, 0)
        if kind not in {"comment", "space", "newline"}:
            out.append(Token(kind, text, pos, line, depth))
        if kind == "op" and text in _OPEN:
            depth += 1
        line += text.count("\n")
        pos = match.end()
    return out


@dataclass(frozen=True)
class ModuleInfo:
    """What Fleet needs to know about one module before handing it to an engine."""

    package: str
    package_line: int
    package_end: int  # offset just after the package path, where an import may go on that line
    rules: frozenset[str]
    set_rules: frozenset[str]  # v1 rules all of whose heads are ``name contains …``: never undefined
    has_v1_import: bool
    imports: tuple[tuple[str, int], ...]  # (dotted path, line)
    data_refs: tuple[tuple[str, int], ...]  # the first key under ``data`` of each reference, and its line
    context_keys: frozenset[str]  # what it reads of data.fleet ("*": all of it)
    nondeterministic: frozenset[str]  # the NONDETERMINISTIC_BUILTINS it calls
    input_keys: frozenset[str]  # the top-level keys of ``input`` it reads ("*": all of it)
    # Every path under data.fleet / input it reads, as far as the reference is static:
    # ``data.fleet.cluster.labels.env`` is ("cluster", "labels", "env"), ``data.fleet.cluster[k]``
    # ("cluster",), a bare ``data.fleet`` (or ``data[x]``, which may be it) ().
    context_paths: frozenset[tuple[str, ...]] = frozenset({()})
    input_paths: frozenset[tuple[str, ...]] = frozenset({()})


def _package(toks: list[Token]) -> tuple[str, int, int]:
    for index, token in enumerate(toks):
        if token.kind == "ident" and token.text == "package" and token.depth == 0:
            parts: list[str] = []
            end = token.start + len(token.text)
            for part in toks[index + 1:]:
                if part.line != token.line or part.kind not in {"ident", "op", "string"}:
                    break
                if part.kind == "string":
                    parts.append(part.text.strip('"'))
                elif part.kind == "ident":
                    parts.append(part.text)
                elif part.text not in ".[]":
                    break
                end = part.start + len(part.text)
            if parts:
                return ".".join(parts), token.line, end
        if token.kind == "ident" and token.text != "package":
            break
    raise RegoSyntaxError("a Rego module must start with a package clause", toks[0].line if toks else 1)


def _line_heads(toks: list[Token]) -> list[list[Token]]:
    """Depth-0 tokens grouped by line: where rule heads live."""
    heads: dict[int, list[Token]] = {}
    for token in toks:
        if token.depth == 0:
            heads.setdefault(token.line, []).append(token)
    return list(heads.values())


def _rule_names(toks: list[Token]) -> frozenset[str]:
    names = set()
    for head in _line_heads(toks):
        first = head[0]
        if first.kind == "op" and first.text == "}":
            continue
        if first.kind == "ident" and first.text in {"package", "import"}:
            continue
        if first.kind == "ident" and first.text == "default" and len(head) > 1:
            first = head[1]
        if first.kind == "ident":
            names.add(first.text)
    return frozenset(names)


def _partial_sets(toks: list[Token]) -> frozenset[str]:
    """Rules defined only as partial sets (``name contains …``), from v1 tokens."""
    contains, other = set(), set()
    for head in _line_heads(toks):
        if head[0].kind != "ident" or head[0].text in {"package", "import"}:
            continue
        name = head[1].text if head[0].text == "default" and len(head) > 1 else head[0].text
        is_set = head[0].text != "default" and len(head) > 1 and head[1].text == "contains"
        (contains if is_set else other).add(name)
    return frozenset(contains - other)


def _context_keys(toks: list[Token]) -> frozenset[str]:
    """The keys of ``data.fleet`` a module reads, so an engine that must bake the
    context in (regopy) only depends on those; ``*`` when it reads it whole."""
    keys = set()
    for index, token in enumerate(toks[:-2]):
        if token.text == "data" and toks[index + 1].text == "." and toks[index + 2].text == "fleet":
            rest = toks[index + 3:index + 5]
            keys.add(rest[1].text if len(rest) == 2 and rest[0].text == "." and rest[1].kind == "ident"
                     else "*")
    return frozenset(keys)


def _static_path(toks: list[Token], index: int) -> tuple[str, ...]:
    """The keys after the reference's root at ``toks[index]``, as long as each is static
    (``.name`` or ``["name"]``); a variable, number or call ends it."""
    path: list[str] = []
    while index + 1 < len(toks):
        after = toks[index + 1]
        if after.text == "." and index + 2 < len(toks) and toks[index + 2].kind == "ident":
            path.append(toks[index + 2].text)
            index += 2
        elif (after.text == "[" and index + 3 < len(toks) and toks[index + 2].kind in {"string", "raw"}
              and toks[index + 3].text == "]"):
            text = toks[index + 2].text
            try:
                key = json.loads(text) if toks[index + 2].kind == "string" else text[1:-1]
            except ValueError:
                break
            path.append(key)
            index += 3
        else:
            break
    return tuple(path)


def _root_refs(toks: list[Token], root: str) -> list[int]:
    """Indexes of ``root`` used as a reference's root (not ``x.root``)."""
    return [index for index, token in enumerate(toks)
            if token.kind == "ident" and token.text == root and not (index and toks[index - 1].text == ".")]


def _context_paths(toks: list[Token]) -> frozenset[tuple[str, ...]]:
    """What a module may read of ``data.fleet``, path by path. A reference under
    another key of ``data`` is not the context; one that may be (``data`` whole,
    ``data[x]``) reads all of it. Imports are references like any other."""
    paths = set()
    for index in _root_refs(toks, "data"):
        path = _static_path(toks, index)
        if not path:
            paths.add(())
        elif path[0] == "fleet":
            paths.add(path[1:])
    return frozenset(paths)


def _input_paths(toks: list[Token]) -> frozenset[tuple[str, ...]]:
    return frozenset(_static_path(toks, index) for index in _root_refs(toks, "input"))


def _input_keys(toks: list[Token]) -> frozenset[str]:
    """The top-level keys of ``input`` a module reads (``input.k``, ``input["k"]``);
    ``*`` when it uses ``input`` in any other way."""
    keys = set()
    for index, token in enumerate(toks):
        if token.text != "input" or token.kind != "ident" or (index and toks[index - 1].text == "."):
            continue
        rest = toks[index + 1:index + 4]
        if len(rest) >= 2 and rest[0].text == "." and rest[1].kind == "ident":
            keys.add(rest[1].text)
        elif len(rest) == 3 and rest[0].text == "[" and rest[1].kind == "string" and rest[2].text == "]":
            keys.add(rest[1].text[1:-1])
        else:
            keys.add("*")
    return frozenset(keys)


def _dotted_names(toks: list[Token]) -> set[str]:
    """Every ``a.b.c`` reference, and each of its prefixes ending in an identifier."""
    names: set[str] = set()
    parts: list[str] = []
    for index, token in enumerate(toks):
        if token.kind == "ident" and (index == 0 or toks[index - 1].text != "." or not parts):
            parts = [token.text]
        elif token.kind == "ident":
            parts.append(token.text)
        elif token.text != ".":
            parts = []
            continue
        else:
            continue
        names.add(".".join(parts))
    return names


def _imports(toks: list[Token]) -> tuple[tuple[str, int], ...]:
    found = []
    for index, token in enumerate(toks):
        if token.kind == "ident" and token.text == "import" and token.depth == 0:
            parts = []
            for part in toks[index + 1:]:
                if part.line != token.line or not (part.kind == "ident" or part.text == "."):
                    break
                if part.kind == "ident":
                    if part.text == "as":
                        break
                    parts.append(part.text)
            found.append((".".join(parts), token.line))
    return tuple(found)


def _data_refs(toks: list[Token]) -> tuple[tuple[str, int], ...]:
    """``data.k…`` and ``data["k"]…`` references (not ``x.data``, not imports' own words)."""
    found = []
    for index, token in enumerate(toks[:-2]):
        if token.kind != "ident" or token.text != "data" or (index and toks[index - 1].text == "."):
            continue
        after, key = toks[index + 1], toks[index + 2]
        if after.text == "." and key.kind == "ident":
            found.append((key.text, token.line))
        elif after.text == "[" and key.kind == "string":
            found.append((key.text[1:-1], token.line))
        else:
            found.append(("*", token.line))
    return tuple(found)


def inspect_module(source: str) -> ModuleInfo:
    """Parse enough of a module to route it."""
    toks = tokens(source)
    package, package_line, package_end = _package(toks)
    imports = _imports(toks)
    return ModuleInfo(
        package=package, package_line=package_line, package_end=package_end, rules=_rule_names(toks),
        set_rules=_partial_sets(toks), has_v1_import=any(path == "rego.v1" for path, _ in imports),
        imports=imports, data_refs=_data_refs(toks), context_keys=_context_keys(toks),
        nondeterministic=frozenset(_dotted_names(toks) & NONDETERMINISTIC_BUILTINS),
        input_keys=_input_keys(toks), context_paths=_context_paths(toks), input_paths=_input_paths(toks),
    )


def with_v1_import(source: str, info: ModuleInfo) -> str:
    """``source`` marked as Rego v1 for a server that also reads v0: ``import rego.v1``
    after the package path, on the package's own line."""
    if info.has_v1_import:
        return source
    return source[:info.package_end] + " import rego.v1" + source[info.package_end:]


def namespace_module(source: str, prefix: str, keep: frozenset[str] = frozenset({"fleet"})) -> str:
    """Move a module under ``data.<prefix>``: its package and its ``data.…`` references
    (``data.k`` and ``data["k"]``), except those under the global keys ``keep``.

    Several policy sets (or two versions of one) share one OPA server, so each bundle
    lives under its own prefix, and each Gatekeeper template under one of its own;
    ``data.fleet`` (the evaluation context) and a template's ``data.inventory`` stay global.
    """
    toks = tokens(source)
    edits: list[tuple[int, str]] = []
    for index, token in enumerate(toks[:-2]):
        if token.kind != "ident":
            continue
        after, key = toks[index + 1], toks[index + 2]
        if token.text == "package" and token.depth == 0:
            edits.append((after.start, prefix + "."))
        elif token.text == "data" and (index == 0 or toks[index - 1].text != "."):
            if after.text == "." and key.kind == "ident" and key.text not in keep:
                edits.append((key.start, prefix + "."))
            elif after.text == "[" and key.kind == "string" and key.text[1:-1] not in keep:
                edits.append((after.start, "." + prefix))
    for start, text in sorted(edits, reverse=True):
        source = source[:start] + text + source[start:]
    return source
