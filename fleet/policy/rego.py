"""Reading Rego source without an engine: package, rule names, syntax version.

Both engines must see the *same* source to give the same verdicts, but they disagree
on Rego v0: OPA 1.x rejects it, and regopy (rego-cpp) parses it with v1 meanings, so
``violation[{"msg": m}] { … }`` silently becomes an object rule instead of a partial
set. Fleet therefore upgrades v0 rule heads to v1 itself, once, before either engine
sees a module (``deny[msg] {`` → ``deny contains msg if {``, ``p {`` → ``p if {``).
Edits stay on the head's line, so engine errors keep pointing at the author's lines.
"""

from __future__ import annotations

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
    rules: frozenset[str]
    set_rules: frozenset[str]  # rules all of whose heads are ``name contains …``: never undefined
    was_v0: bool
    uses_with: bool
    context_keys: frozenset[str]  # what it reads of data.fleet ("*": all of it)
    nondeterministic: frozenset[str]  # the NONDETERMINISTIC_BUILTINS it calls
    input_keys: frozenset[str]  # the top-level keys of ``input`` it reads ("*": all of it)
    source: str  # v1 source, same line numbering as the original


def _package(toks: list[Token]) -> tuple[str, int]:
    for index, token in enumerate(toks):
        if token.kind == "ident" and token.text == "package" and token.depth == 0:
            parts: list[str] = []
            for part in toks[index + 1:]:
                if part.line != token.line or part.kind not in {"ident", "op", "string"}:
                    break
                if part.kind == "string":
                    parts.append(part.text.strip('"'))
                elif part.kind == "ident":
                    parts.append(part.text)
                elif part.text not in ".[]":
                    break
            if parts:
                return ".".join(parts), token.line
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


def _v1_edits(toks: list[Token]) -> list[tuple[int, int, str]]:
    """(start, end, replacement) edits turning v0 rule heads into v1 ones."""
    edits: list[tuple[int, int, str]] = []
    for index, token in enumerate(toks):
        if not (token.kind == "op" and token.text == "{" and token.depth == 0 and index > 0):
            continue
        prev = toks[index - 1]
        if not (prev.kind in _TERM_END or prev.text in {"]", ")"}):
            continue  # a value such as `p = {1, 2}`, or a second body after `}`
        head = [t for t in toks[:index] if t.line == token.line and t.depth == 0]
        while head and head[0].text == "}":
            head = head[1:]
        if not head or any(t.kind == "ident" and t.text in {"if", "contains"} for t in head):
            continue
        bracket_head = (len(head) >= 2 and head[0].kind == "ident" and head[0].text != "else"
                        and head[1].text == "[" and prev.text == "]"
                        and _matching_close(toks, toks.index(head[1])) == index - 1)
        if bracket_head:
            key_start = toks[toks.index(head[1]) + 1].start
            edits.append((head[1].start, key_start, " contains "))
            edits.append((prev.start, prev.start + 1, " if "))
        else:
            edits.append((token.start, token.start, "if "))
    return edits


def _matching_close(toks: list[Token], open_index: int) -> int:
    depth = toks[open_index].depth
    for index in range(open_index + 1, len(toks)):
        if toks[index].text in _CLOSE and toks[index].depth == depth:
            return index
    return -1


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


def inspect_module(source: str) -> ModuleInfo:
    """Parse enough of a module to route it, and return its v1 form."""
    toks = tokens(source)
    package, package_line = _package(toks)
    has_v1_import = any(t.text == "rego" and i + 2 < len(toks) and toks[i - 1].text == "import"
                        and toks[i + 2].text == "v1" for i, t in enumerate(toks) if i > 0)
    edits = [] if has_v1_import else _v1_edits(toks)
    upgraded = source
    for start, end, text in sorted(edits, reverse=True):
        upgraded = upgraded[:start] + text + upgraded[end:]
    return ModuleInfo(
        package=package, package_line=package_line, rules=_rule_names(toks),
        set_rules=_partial_sets(tokens(upgraded) if edits else toks),
        was_v0=bool(edits), source=upgraded,
        uses_with=any(t.kind == "ident" and t.text == "with" for t in toks),
        context_keys=_context_keys(toks),
        nondeterministic=frozenset(_dotted_names(toks) & NONDETERMINISTIC_BUILTINS),
        input_keys=_input_keys(toks),
    )


def namespace_module(source: str, prefix: str, keep: frozenset[str] = frozenset({"fleet"})) -> str:
    """Move a module under ``data.<prefix>``: its package and its ``data.…`` references.

    Several policy sets (or two versions of one) share one OPA server, so each bundle
    lives under its own prefix; ``data.fleet`` (the evaluation context) stays global.
    """
    toks = tokens(source)
    edits: list[int] = []
    for index, token in enumerate(toks[:-2]):
        if token.kind != "ident":
            continue
        after = toks[index + 1]
        if token.text == "package" and token.depth == 0:
            edits.append(after.start)
        elif (token.text == "data" and after.text == "." and toks[index + 2].kind == "ident"
              and toks[index + 2].text not in keep
              and (index == 0 or toks[index - 1].text != ".")):
            edits.append(toks[index + 2].start)
    for start in sorted(edits, reverse=True):
        source = source[:start] + prefix + "." + source[start:]
    return source
