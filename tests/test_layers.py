"""Imports point down the layers (DESIGN.md, "Layers"), nothing imports the dev tooling,
and no two packages import each other.

Every module under ``fleet/`` is parsed with ``ast``, every import counted wherever it
is: at module level, inside a function, under ``if TYPE_CHECKING:``. A lazy import is
how a cycle hides, so it counts like any other.

:data:`LAYERS` is the one place the order is written, bottom first. A module belongs to
the layer of the longest name that matches it (a name matches itself and the modules
below it), so ``fleet.policy.engines.opa_engine`` is engine and ``fleet.policy.gate`` is
domain. A module may import its own layer and those below; a package's interface
modules (``api``, ``admin``, ``tasks``, ``apps``, ``management``) sit at the top with
the rest of the interfaces. For the cycle check each package is one node per layer it
spans (``fleet.audit`` and ``fleet.audit [interfaces]``), so ``fleet.audit.api`` may
use ``fleet.api.viewsets`` while ``fleet.api.exceptions`` records through
``fleet.audit.services``, but ``fleet.gitops`` and ``fleet.render`` may not import each
other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "fleet"

# Bottom first. Names of packages that do not exist yet (drift, reports, console…)
# place them before they are written.
LAYERS: dict[str, tuple[str, ...]] = {
    "ground": ("fleet.core", "fleet.conf", "fleet.settings", "fleet.toolchain"),
    "records": ("fleet.inventory", "fleet.accounts", "fleet.audit"),
    "engine": ("fleet.gitops", "fleet.render", "fleet.kube", "fleet.policy.engines", "fleet.policy.bundle",
               "fleet.policy.rego", "fleet.policy.gatekeeper", "fleet.policy.inputs", "fleet.policy.errors"),
    "domain": ("fleet.rollouts", "fleet.policy", "fleet.drift", "fleet.clusteraudit"),
    "reports": ("fleet.reports",),
    # ``fleet`` alone is the project package's __init__, which loads the Celery app.
    # Clusters-as-code sync validates through the API serializer: an entry point.
    "interfaces": ("fleet", "fleet.api", "fleet.urls", "fleet.celery", "fleet.wsgi", "fleet.console",
                   "fleet.inventory.sync"),
    "dev": ("fleet.dev",),  # may import anything; nothing else may import it
}
# In every package (but the dev tooling) these modules are interfaces.
INTERFACE_MODULES = ("api", "admin", "tasks", "apps", "management")
DEV = "dev"

# Imports another person is removing right now: (importer, imported prefix) -> why.
# The lead empties this on merge.

Graph = Mapping[str, Iterable[str]]


def layer_of(module: str) -> str | None:
    """The layer of the longest matching name (a package's interface modules included)."""
    best, found = -1, None
    for layer, names in LAYERS.items():
        for name in names:
            if (module == name or (name != PROJECT and module.startswith(name + "."))) and len(name) > best:
                best, found = len(name), layer
    parts = module.split(".")
    if len(parts) > 2 and parts[0] == PROJECT and parts[2] in INTERFACE_MODULES and found not in (DEV, None):
        prefix = ".".join(parts[:3])
        if len(prefix) > best:
            found = "interfaces"
    return found


def rank(layer: str) -> int:
    return list(LAYERS).index(layer)


# -- reading the tree ------------------------------------------------------------------

def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_under(root: Path, package: str = PROJECT) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted((root / package).rglob("*.py"))}


def imports_of(source: str, module: str, is_package: bool, known: Iterable[str]) -> set[str]:
    """Every ``fleet`` module ``source`` imports, anywhere in it.

    ``from a import b`` names the module ``a.b`` when there is one, else ``a``.
    """
    known = set(known)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {name for name in found if name == PROJECT or name.startswith(PROJECT + ".")}


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = modules_under(root)
    return {name: imports_of(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", modules)
            for name, path in modules.items()}


# -- the checks --------------------------------------------------------------------------

@dataclass(frozen=True)
class Unit:
    """A package at one layer: the node of the cycle check."""

    package: str
    layer: str

    def __str__(self) -> str:
        return self.package if layer_of(self.package) == self.layer else f"{self.package} [{self.layer}]"


def unit_of(module: str) -> Unit:
    return Unit(".".join(module.split(".")[:2]), layer_of(module) or "?")


def violations(graph: Graph) -> list[str]:
    """One line per module without a layer, upward import, import of the dev tooling,
    and package cycle."""
    problems: list[str] = []
    edges: dict[Unit, dict[Unit, tuple[str, str]]] = {}
    for importer, imports in sorted(graph.items()):
        source = layer_of(importer)
        if source is None:
            problems.append(f"{importer} has no layer: add it to LAYERS in {__name__}")
            continue
        for imported in sorted(imports):
            target = layer_of(imported)
            if target is None or imported == importer:
                continue
            if target == DEV and source != DEV:
                problems.append(f"{importer} imports {imported}: product code never imports the dev tooling")
            elif rank(target) > rank(source):
                problems.append(f"{importer} ({source}) imports {imported} ({target}), a higher layer")
            elif unit_of(importer) != unit_of(imported):
                edges.setdefault(unit_of(importer), {}).setdefault(unit_of(imported), (importer, imported))
    for cycle in _cycles(edges):
        through = "; ".join(f"{a} imports {b}" for unit, nxt in zip(cycle, cycle[1:] + cycle[:1], strict=True)
                            for a, b in [edges[unit][nxt]])
        problems.append(f"package cycle {' -> '.join(map(str, cycle + cycle[:1]))}: {through}")
    return problems


def _cycles(edges: dict[Unit, dict[Unit, tuple[str, str]]]) -> list[list[Unit]]:
    """One cycle per strongly connected component of more than one unit (Tarjan)."""
    index: dict[Unit, int] = {}
    low: dict[Unit, int] = {}
    stack: list[Unit] = []
    components: list[set[Unit]] = []

    def visit(unit: Unit) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for nxt in edges.get(unit, {}):
            if nxt not in index:
                visit(nxt)
                low[unit] = min(low[unit], low[nxt])
            elif nxt in stack:
                low[unit] = min(low[unit], index[nxt])
        if low[unit] == index[unit]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == unit:
                    break
            if len(component) > 1:
                components.append(component)

    for unit in sorted(edges, key=str):
        if unit not in index:
            visit(unit)
    return [_path_through(component, edges) for component in components]


def _path_through(component: set[Unit], edges: dict[Unit, dict[Unit, tuple[str, str]]]) -> list[Unit]:
    """A closed walk inside ``component`` from its first unit back to it (breadth first)."""
    start = min(component, key=str)
    came_from: dict[Unit, Unit] = {}
    frontier = [start]
    while frontier:
        unit = frontier.pop(0)
        for nxt in sorted(edges.get(unit, {}), key=str):
            if nxt not in component:
                continue
            if nxt == start:
                path = [unit]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return path[::-1]
            if nxt not in came_from:
                came_from[nxt] = unit
                frontier.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # a component of >1 unit always has one


# -- the tree ----------------------------------------------------------------------------

def test_imports_point_down_and_packages_form_no_cycle():
    graph = import_graph()
    assert len(graph) > 100, "the walk found too few modules: is ROOT right?"
    assert violations(graph) == []


# -- the checker itself, so it cannot silently pass ----------------------------------------

def test_layers_by_longest_name():
    assert layer_of("fleet.policy.engines.opa_engine") == "engine"
    assert layer_of("fleet.policy.gate") == "domain"
    assert layer_of("fleet.policy.api") == "interfaces"
    assert layer_of("fleet.kube.tasks") == "interfaces"
    assert layer_of("fleet.rollouts.management.commands.rollout") == "interfaces"
    assert layer_of("fleet.inventory.sync") == "interfaces"
    assert layer_of("fleet.inventory.services") == "records"
    assert layer_of("fleet.core.context") == "ground"
    assert layer_of("fleet.dev.management.commands.demo") == "dev"
    assert layer_of("fleet") == "interfaces"
    assert layer_of("fleet.newthing.services") is None
    assert layer_of("fleetish") is None


def test_an_upward_import_fails():
    assert violations({"fleet.kube.services": {"fleet.rollouts.models"}}) == [
        "fleet.kube.services (engine) imports fleet.rollouts.models (domain), a higher layer"]
    assert violations({"fleet.kube.services": {"fleet.kube.tasks"}}) == [
        "fleet.kube.services (engine) imports fleet.kube.tasks (interfaces), a higher layer"]


def test_importing_the_dev_tooling_fails():
    assert violations({"fleet.api.views": {"fleet.dev.demo"}}) == [
        "fleet.api.views imports fleet.dev.demo: product code never imports the dev tooling"]
    assert violations({"fleet.dev.demo": {"fleet.rollouts.services", "fleet.api.urls"}}) == []


def test_a_module_without_a_layer_fails():
    assert violations({"fleet.newthing": set()}) == [
        f"fleet.newthing has no layer: add it to LAYERS in {__name__}"]


def test_a_package_cycle_fails_even_within_a_layer():
    graph = {"fleet.render.services": {"fleet.gitops.mirror"}, "fleet.gitops.services": {"fleet.render.services"}}
    assert violations(graph) == [
        "package cycle fleet.gitops -> fleet.render -> fleet.gitops: fleet.gitops.services imports "
        "fleet.render.services; fleet.render.services imports fleet.gitops.mirror"]
    longer = {"fleet.gitops.a": {"fleet.kube.a"}, "fleet.kube.b": {"fleet.render.a"},
              "fleet.render.b": {"fleet.gitops.b"}}
    assert violations(longer) == [
        "package cycle fleet.gitops -> fleet.kube -> fleet.render -> fleet.gitops: fleet.gitops.a imports "
        "fleet.kube.a; fleet.kube.b imports fleet.render.a; fleet.render.b imports fleet.gitops.b"]


def test_a_package_may_use_the_interfaces_of_another_that_records_through_it():
    graph = {"fleet.audit.api": {"fleet.api.viewsets"}, "fleet.api.exceptions": {"fleet.audit.services"}}
    assert violations(graph) == []
    graph["fleet.api.urls"] = {"fleet.audit.api"}
    graph["fleet.audit.api"] = {"fleet.api.viewsets"}
    assert violations(graph) == [
        "package cycle fleet.api -> fleet.audit [interfaces] -> fleet.api: fleet.api.urls imports "
        "fleet.audit.api; fleet.audit.api imports fleet.api.viewsets"]


def test_lazy_and_type_checking_imports_are_read(tmp_path):
    package = tmp_path / "fleet" / "render"
    package.mkdir(parents=True)
    (tmp_path / "fleet" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "services.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "from . import limits\n"
        "if TYPE_CHECKING:\n"
        "    from fleet.rollouts.models import Rollout\n"
        "def render_ref():\n"
        "    from fleet.gitops.mirror import exported_tree\n"
        "    import fleet.kube.client\n")
    (package / "limits.py").write_text("")
    graph = import_graph(tmp_path)
    assert graph["fleet.render.services"] == {"fleet.render.limits", "fleet.rollouts.models",
                                               "fleet.gitops.mirror", "fleet.kube.client"}
    assert "fleet.render.services (engine) imports fleet.rollouts.models (domain), a higher layer" in violations(
        graph)
