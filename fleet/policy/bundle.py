"""A policy bundle: the files of one policy set, checked, versioned and ready to run.

Files are ``*.rego`` modules (conftest style) and YAML holding Gatekeeper
ConstraintTemplates and Constraints; ``*_test.rego`` files are tests, never loaded.
A bundle is content-addressed: its hash names the compiled form in every engine's
cache, so changing any policy yields a new hash and nothing stale is ever reused.

Conftest-style modules are evaluated per object (``input`` is the object, as in
conftest) unless they contain the line ``# fleet:scope set``, in which case they are
evaluated once over the whole release (see ``policies/README.md`` for both inputs).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from fleet.core import yaml
from fleet.policy import gatekeeper
from fleet.policy.errors import PolicyError
from fleet.policy.inputs import SET_INPUT_KEYS
from fleet.policy.rego import RegoSyntaxError, inspect_module, namespace_module

RULE_RE = re.compile(r"^(deny|violation|warn)(_[A-Za-z0-9_]+)?$")
SET_SCOPE_RE = re.compile(r"^\s*#\s*fleet:scope\s+set\s*$", re.MULTILINE)
BUNDLES_ROOT = "fleet_bundles"
MAX_FILES = 500


@dataclass(frozen=True)
class Module:
    """One Rego module as the engines receive it."""

    id: str        # engine module name, also how errors name the file
    file: str      # the file (and, for templates, the document) the author wrote
    package: str   # as written
    scope: str     # object | set | gatekeeper | library
    rules: tuple[str, ...]  # the deny/violation/warn rules it defines
    source: str    # v1, namespaced; same line numbering as the file's Rego
    line_offset: int = 0  # lines before the Rego inside ``file`` (YAML block scalars)
    set_rules: frozenset[str] = frozenset()  # those that are partial sets (defined, if empty)
    uses_with: bool = False
    context_keys: frozenset[str] = frozenset()
    nondeterministic: frozenset[str] = frozenset()  # built-ins that make results unrepeatable
    input_keys: frozenset[str] = frozenset({"*"})  # what it reads of ``input``


@dataclass(frozen=True)
class Bundle:
    hash: str
    files: Mapping[str, str]
    modules: tuple[Module, ...]
    templates: Mapping[str, str]  # constraint kind -> template package (as written)
    constraints: tuple[gatekeeper.Constraint, ...]

    @property
    def prefix(self) -> str:
        return f"{BUNDLES_ROOT}.b{self.hash[:16]}"

    def path(self, package: str) -> str:
        """The full ``data`` path of a package of this bundle."""
        return f"{self.prefix}.{package}"

    def rules(self, scope: str) -> list[tuple[Module, str]]:
        return [(m, rule) for m in self.modules if m.scope == scope for rule in m.rules]

    @property
    def context_keys(self) -> frozenset[str]:
        """What of ``data.fleet`` any module reads (``*``: all of it)."""
        return frozenset().union(*(m.context_keys for m in self.modules))

    @property
    def set_input_keys(self) -> tuple[str, ...]:
        """The parts of the release input that rules over the whole release may read:
        a set module that never reads ``input.objects`` needs no objects sent (or parsed)."""
        read = frozenset().union(*(m.input_keys for m in self.modules if m.scope in {"set", "library"}))
        return tuple(key for key in SET_INPUT_KEYS if key in read or "*" in read)

    @property
    def deterministic(self) -> bool:
        """Whether the same input always yields the same hits, so hits can be reused."""
        return not any(m.nondeterministic for m in self.modules)

    def module(self, module_id: str) -> Module | None:
        return next((m for m in self.modules if m.id == module_id), None)


def bundle_hash(files: Mapping[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return digest.hexdigest()


def read_directory(path: Path) -> dict[str, str]:
    """The bundle files under ``path`` (or the one file ``path``), by relative name."""
    path = Path(path)
    if path.is_file():
        return {path.name: path.read_text()}
    if not path.is_dir():
        raise PolicyError("no such policy file or directory", code="input", file=str(path))
    files = {
        str(file.relative_to(path)): file.read_text()
        for pattern in ("*.rego", "*.yaml", "*.yml")
        for file in sorted(path.rglob(pattern))
        if file.is_file() and not file.name.endswith("_test.rego")
        and not any(part.startswith(".") for part in file.relative_to(path).parts)
    }
    if len(files) > MAX_FILES:
        raise PolicyError(f"{len(files)} files; a bundle holds at most {MAX_FILES}",
                          code="input", file=str(path))
    return files


def _module(module_id: str, file: str, source: str, prefix: str, scope: str | None,
            line_offset: int = 0) -> Module:
    try:
        info = inspect_module(source)
    except RegoSyntaxError as exc:
        raise PolicyError(str(exc), file=file, line=exc.line + line_offset) from None
    if info.package == "fleet" or info.package.startswith(("fleet.", "fleet_")):
        raise PolicyError(f"package {info.package}: names starting with 'fleet' are reserved",
                          file=file, line=info.package_line + line_offset)
    rules = tuple(sorted(r for r in info.rules if RULE_RE.match(r)))
    if scope is None:
        scope = ("set" if SET_SCOPE_RE.search(source) else "object") if rules else "library"
    elif scope == "gatekeeper":
        rules = ("violation",)
    return Module(id=module_id, file=file, package=info.package, scope=scope, rules=rules,
                  set_rules=info.set_rules & frozenset(rules),
                  source=namespace_module(info.source, prefix), line_offset=line_offset,
                  uses_with=info.uses_with, context_keys=info.context_keys,
                  nondeterministic=info.nondeterministic, input_keys=info.input_keys)


def _block_offsets(text: str) -> dict[str, int]:
    """Line offset of each multi-line string in a YAML file (for error lines in Rego)."""
    offsets: dict[str, int] = {}
    for node in yaml.compose_all(text):
        stack = [node]
        while stack:
            current = stack.pop()
            if isinstance(current, yaml.ScalarNode) and "\n" in current.value:
                offsets.setdefault(current.value, current.start_mark.line + (
                    1 if current.style in ("|", ">") else 0))
            elif isinstance(current, yaml.SequenceNode):
                stack.extend(current.value)
            elif isinstance(current, yaml.MappingNode):
                stack.extend(v for pair in current.value for v in pair)
    return offsets


def _yaml_documents(name: str, text: str) -> list[tuple[dict, dict[str, int]]]:
    try:
        docs = [d for d in yaml.load_all(text) if isinstance(d, dict)]
        offsets = _block_offsets(text) if any(gatekeeper.is_template(d) for d in docs) else {}
    except yaml.YamlError as exc:
        raise PolicyError(exc.message, code="input", file=name, line=exc.line) from None
    return [(doc, offsets) for doc in docs]


def load_bundle(files: Mapping[str, str]) -> Bundle:
    """Check every file and build the bundle; the first problem raises PolicyError."""
    digest = bundle_hash(files)
    prefix = f"{BUNDLES_ROOT}.b{digest[:16]}"
    modules: list[Module] = []
    templates: dict[str, gatekeeper.Template] = {}
    constraint_docs: list[tuple[str, dict]] = []
    for name in sorted(files):
        if name.endswith(".rego"):
            modules.append(_module(name, name, files[name], prefix, None))
            continue
        for doc, offsets in _yaml_documents(name, files[name]):
            if gatekeeper.is_template(doc):
                template = gatekeeper.parse_template(doc, name)
                if template.kind in templates:
                    raise PolicyError(f"ConstraintTemplate kind {template.kind} is defined twice",
                                      code="template", file=name)
                templates[template.kind] = template
                for index, source in enumerate((template.rego, *template.libs)):
                    modules.append(_module(
                        f"{name}#{template.kind}" + (f"/lib{index}" if index else ""), name,
                        source, prefix, "gatekeeper" if index == 0 else "library",
                        offsets.get(source, 0)))
            elif gatekeeper.is_constraint(doc):
                constraint_docs.append((name, doc))
    packages: dict[str, Module] = {}
    for module in modules:
        other = packages.setdefault(module.package, module)
        if other is not module and (module.scope == "gatekeeper" or other.scope == "gatekeeper"):
            raise PolicyError(f"package {module.package} is also defined by {other.file}; "
                              "a template's package must be its own", code="template", file=module.file)
    constraints = tuple(gatekeeper.parse_constraint(doc, name, templates)
                        for name, doc in constraint_docs)
    template_packages = {
        kind: next(m.package for m in modules if m.id == f"{t.path}#{kind}")
        for kind, t in templates.items()
    }
    return Bundle(hash=digest, files=dict(files), modules=tuple(modules),
                  templates=template_packages, constraints=constraints)
