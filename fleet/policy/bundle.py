"""A policy bundle: the files of one policy set, checked, versioned and ready to run.

Files are ``*.rego`` modules (conftest style) and YAML holding Gatekeeper
ConstraintTemplates, Constraints, and the ``Config``/``SyncSet`` that say what to sync
into ``data.inventory``; ``*_test.rego`` files are tests, never loaded (``policy
verify`` runs them). A bundle is content-addressed: its hash names the compiled form
in every engine's cache, so changing any policy yields a new hash and nothing stale
is ever reused.

Rego versions follow OPA and Gatekeeper, and Fleet converts nothing: a ``.rego`` file
is Rego v1 (OPA 1.x and conftest's default) unless the set's ``.manifest`` says
otherwise, with OPA's bundle manifest fields ``rego_version`` (0 or 1) and
``file_rego_versions`` (glob on ``/``-rooted paths → version; sorted, first match
wins); a template's Rego is v0 unless its ``code[engine=Rego].source.version`` is
``v1`` (Gatekeeper's rule). OPA compiles each module in its own version.

Each template is compiled apart, as Gatekeeper does: its entry point and its libs live
under a prefix of their own (``<bundle>.gk_<Kind>``), so two templates may share a
package name or a ``lib`` package and still both load. As in Gatekeeper (frameworks'
``regorewriter``), a template may read only ``data.lib.*`` (its own libs, whose
packages must start with ``lib.``) and ``data.inventory``, and import only
``data.lib.*`` and ``future.*``.

Conftest-style modules are evaluated per object (``input`` is the object, as in
conftest) unless they contain the line ``# fleet:scope set``, in which case they are
evaluated once over the whole release (see ``policies/README.md`` for both inputs).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet.core import yaml
from fleet.policy.errors import PolicyError
from fleet.policy.gatekeeper import templates as gk
from fleet.policy.inputs import SET_INPUT_KEYS
from fleet.policy.rego import RegoSyntaxError, inspect_module, namespace_module, with_v1_import

RULE_RE = re.compile(r"^(deny|violation|warn)(_[A-Za-z0-9_]+)?$")
SET_SCOPE_RE = re.compile(r"^\s*#\s*fleet:scope\s+set\s*$", re.MULTILINE)
BUNDLES_ROOT = "fleet_bundles"
MANIFEST = ".manifest"
MAX_FILES = 500
TEMPLATE_EXTERNS = frozenset({"inventory"})


@dataclass(frozen=True)
class Module:
    """One Rego module as the engines receive it."""

    id: str        # engine module name, also how errors name the file
    file: str      # the file (and, for templates, the document) the author wrote
    package: str   # full package under the bundle's prefix, without "data."
    scope: str     # object | set | gatekeeper | library
    rules: tuple[str, ...]  # the deny/violation/warn rules it defines
    source: str    # as OPA receives it: namespaced; same line numbering as the file's Rego
    version: str = "v1"
    line_offset: int = 0  # lines before the Rego inside ``file`` (YAML block scalars)
    set_rules: frozenset[str] = frozenset()  # those that are partial sets (defined, if empty)
    context_keys: frozenset[str] = frozenset()
    nondeterministic: frozenset[str] = frozenset()  # built-ins that make results unrepeatable
    input_keys: frozenset[str] = frozenset({"*"})  # what it reads of ``input``
    context_paths: frozenset[tuple[str, ...]] = frozenset({()})  # what it reads of data.fleet, path by path
    input_paths: frozenset[tuple[str, ...]] = frozenset({()})  # and of ``input``
    written_package: str = ""  # as the author wrote it (rule names in findings)
    reads_inventory: bool = False  # a template's module that reads data.inventory


@dataclass(frozen=True)
class Bundle:
    hash: str
    files: Mapping[str, str]
    modules: tuple[Module, ...]
    templates: Mapping[str, str]  # constraint kind -> full package of its entry point
    constraints: tuple[gk.Constraint, ...]
    sync: gk.SyncConfig = field(default_factory=gk.SyncConfig)

    @property
    def prefix(self) -> str:
        return f"{BUNDLES_ROOT}.b{self.hash[:16]}"

    def rules(self, scope: str) -> list[tuple[Module, str]]:
        return [(m, rule) for m in self.modules if m.scope == scope for rule in m.rules]

    @property
    def context_keys(self) -> frozenset[str]:
        """What of ``data.fleet`` any module reads (``*``: all of it)."""
        return frozenset().union(*(m.context_keys for m in self.modules))

    @property
    def context_paths(self) -> frozenset[tuple[str, ...]]:
        """Every path of ``data.fleet`` any module may read (``()``: all of it). The memo
        keys findings on the values there: the baseline reads the cluster's ``env``
        label, so clusters that differ only in name share them."""
        return frozenset().union(*(m.context_paths for m in self.modules))

    @property
    def object_input_paths(self) -> frozenset[tuple[str, ...]]:
        """Every path of an object that rules judging it one by one may read (``()``: all
        of it): the baseline never reads ``metadata.namespace``, so the same object in
        another namespace has the same findings."""
        return frozenset().union(*(m.input_paths for m in self.modules if m.scope != "set"))

    @property
    def set_input_paths(self) -> frozenset[tuple[str, ...]]:
        """What rules over the whole release may read of their input, path by path."""
        return frozenset().union(*(m.input_paths for m in self.modules if m.scope in {"set", "library"}))

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

    @property
    def reads_inventory(self) -> bool:
        return any(m.reads_inventory for m in self.modules)

    @property
    def has_v0(self) -> bool:
        return any(m.version == "v0" for m in self.modules)

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
    if (path / MANIFEST).is_file():
        files[MANIFEST] = (path / MANIFEST).read_text()
    if len(files) > MAX_FILES:
        raise PolicyError(f"{len(files)} files; a bundle holds at most {MAX_FILES}",
                          code="input", file=str(path))
    return files


def _rego_versions(files: Mapping[str, str]) -> tuple[int, list[tuple[str, int]]]:
    """The set's default Rego version and per-file overrides, from OPA's ``.manifest``."""
    if MANIFEST not in files:
        return 1, []
    try:
        manifest = json.loads(files[MANIFEST])
        default = manifest.get("rego_version", 1)
        overrides = sorted((manifest.get("file_rego_versions") or {}).items())
        if default not in (0, 1) or any(v not in (0, 1) for _, v in overrides):
            raise ValueError("rego_version and file_rego_versions take 0 or 1")
    except (ValueError, AttributeError) as exc:
        raise PolicyError(f"invalid bundle manifest: {exc}", code="input", file=MANIFEST) from None
    return default, overrides


def _version_of(name: str, default: int, overrides: list[tuple[str, int]]) -> str:
    path = "/" + name
    number = next((v for pattern, v in overrides if fnmatch.fnmatchcase(path, pattern)
                   or fnmatch.fnmatchcase(name, pattern)), default)
    return f"v{number}"


def _module(module_id: str, file: str, source: str, prefix: str, scope: str | None, version: str,
            line_offset: int = 0, externs: frozenset[str] = frozenset()) -> Module:
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
    written = with_v1_import(source, info) if version == "v1" else source
    return Module(id=module_id, file=file, package=f"{prefix}.{info.package}", scope=scope, rules=rules,
                  source=namespace_module(written, prefix, frozenset({"fleet"}) | externs), version=version,
                  line_offset=line_offset, set_rules=info.set_rules & frozenset(rules) if version == "v1"
                  else frozenset(), context_keys=info.context_keys, nondeterministic=info.nondeterministic,
                  input_keys=info.input_keys, context_paths=info.context_paths, input_paths=info.input_paths,
                  written_package=info.package,
                  reads_inventory=bool(externs) and any(key == "inventory" for key, _ in info.data_refs))


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
        offsets = _block_offsets(text) if any(gk.is_template(d) for d in docs) else {}
    except yaml.YamlError as exc:
        raise PolicyError(exc.message, code="input", file=name, line=exc.line) from None
    return [(doc, offsets) for doc in docs]


def _check_template_refs(template: gk.Template, source: str, module: str, line_offset: int) -> None:
    """Gatekeeper's regorewriter checks: what a template may import and read of ``data``."""
    info = inspect_module(source)
    for path, line in info.imports:
        if not (path.startswith("data.lib.") or path == "future" or path.startswith("future.")):
            raise PolicyError(f"template {template.kind}: bad import {path!r}: a template may import only "
                              "data.lib.* and future.*", code="template", file=template.path,
                              line=line + line_offset)
    for key, line in info.data_refs:
        if key not in ("lib", *TEMPLATE_EXTERNS):
            raise PolicyError(f"template {template.kind}: disallowed reference data.{key}: a template may read "
                              "only data.lib.* (its libs) and data.inventory", code="template",
                              file=template.path, line=line + line_offset)
    if module != "entry" and not info.package.startswith("lib."):
        raise PolicyError(f"template {template.kind}: lib package {info.package!r} must start with 'lib.'",
                          code="template", file=template.path, line=info.package_line + line_offset)


def _template_modules(template: gk.Template, prefix: str, offsets: Mapping[str, int]) -> list[Module]:
    own = f"{prefix}.gk_{template.kind}"
    modules = []
    for index, source in enumerate((template.rego, *template.libs)):
        offset = offsets.get(source, 0)
        try:
            _check_template_refs(template, source, "entry" if index == 0 else "lib", offset)
        except RegoSyntaxError as exc:
            raise PolicyError(str(exc), file=template.path, line=exc.line + offset) from None
        modules.append(_module(f"{template.path}#{template.kind}" + (f"/lib{index}" if index else ""),
                               template.path, source, own, "gatekeeper" if index == 0 else "library",
                               template.version, offset, TEMPLATE_EXTERNS))
    if "violation" not in inspect_module(template.rego).rules:
        raise PolicyError(f"template {template.kind}: its Rego must define a violation rule",
                          code="template", file=template.path)
    return modules


def load_bundle(files: Mapping[str, str]) -> Bundle:
    """Check every file and build the bundle; the first problem raises PolicyError."""
    digest = bundle_hash(files)
    prefix = f"{BUNDLES_ROOT}.b{digest[:16]}"
    default_version, overrides = _rego_versions(files)
    modules: list[Module] = []
    templates: dict[str, gk.Template] = {}
    constraint_docs: list[tuple[str, dict]] = []
    sync_docs: list[tuple[str, dict]] = []
    for name in sorted(files):
        if name.endswith(".rego"):
            modules.append(_module(name, name, files[name], prefix, None,
                                   _version_of(name, default_version, overrides)))
            continue
        if name == MANIFEST:
            continue
        for doc, offsets in _yaml_documents(name, files[name]):
            if gk.is_template(doc):
                template = gk.parse_template(doc, name)
                if template.kind in templates:
                    raise PolicyError(f"ConstraintTemplate kind {template.kind} is defined twice",
                                      code="template", file=name)
                templates[template.kind] = template
                modules.extend(_template_modules(template, prefix, offsets))
            elif gk.is_constraint(doc):
                constraint_docs.append((name, doc))
            elif gk.is_sync_source(doc):
                sync_docs.append((name, doc))
    constraints = tuple(gk.parse_constraint(doc, name, templates) for name, doc in constraint_docs)
    template_packages = {kind: next(m.package for m in modules if m.id == f"{t.path}#{kind}")
                         for kind, t in templates.items()}
    return Bundle(hash=digest, files=dict(files), modules=tuple(modules), templates=template_packages,
                  constraints=constraints,
                  sync=gk.sync_config(sync_docs, templates, {c.kind for c in constraints}))

