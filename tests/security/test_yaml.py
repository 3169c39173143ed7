"""One YAML loader with limits (``fleet.core.yaml``), and a test per place YAML enters.

An alias bomb of under 1 KB once made ``POST /policy/evaluate`` take 1.7 GB and no answer
after 120 s, hung ``inventory sync``, and was accepted as a stored kubeconfig. Each test
here sends the hostile document to one entry point and wants a clear refusal, fast.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest

from fleet.core import yaml
from fleet.core.errors import FleetError
from tests.security import payloads

pytestmark = [pytest.mark.embedded]
ROOT = Path(__file__).resolve().parents[2]
FAST = 2.0  # seconds: a refusal is a check, never an expansion


def refused_as_bomb(text: object) -> bool:
    """Whether an error text is the loader's refusal of an alias bomb (by nodes or aliases)."""
    return "more than" in str(text) and ("nodes" in str(text) or "aliases" in str(text))


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.monotonic() - self.started


# -- the loader ---------------------------------------------------------------------

def test_the_bomb_is_small():
    assert len(payloads.alias_bomb()) < 1024


@pytest.mark.parametrize(("text", "code"), [
    (payloads.alias_bomb(), "too-many-nodes"),
    (payloads.alias_bomb(levels=6, width=6), "too-many-nodes"),  # 30 aliases, still 46,656 nodes from 300 bytes
    ("a: &x [1]\nb: [" + ",".join(["*x"] * 1001) + "]\n", "too-many-aliases"),
    (payloads.deep_yaml(), "too-deep"),
    (payloads.recursive_yaml(), "too-deep"),
    ("a: " + "x" * 5000, "too-large"),
])
def test_the_loader_refuses_each_class_fast_with_a_code_and_line(text, code):
    with Timer() as timer, pytest.raises(yaml.YamlError) as info:
        yaml.load_all(text, yaml.YamlLimits(max_bytes=4096))
    assert timer.seconds < FAST
    assert info.value.code == code
    assert info.value.key == f"yaml.{code}"


def test_limits_are_for_the_whole_stream_not_each_document():
    one = payloads.alias_bomb(levels=3, width=9)  # 821 expanded nodes, 18 aliases
    stream = "---\n".join([one] * 40)
    with pytest.raises(yaml.YamlError) as info:
        yaml.load_all(stream, yaml.YamlLimits(max_nodes=20_000, max_aliases=10_000))
    assert info.value.code == "too-many-nodes"


def test_ordinary_documents_load_as_pyyaml_would():
    text = "a: &x {b: [1, 2.5, true, null, '3']}\nc: *x\n---\n---\nd: 2026-01-01\n"
    first, second = yaml.load_all(text)
    assert first == {"a": {"b": [1, 2.5, True, None, "3"]}, "c": {"b": [1, 2.5, True, None, "3"]}}
    assert str(second["d"]) == "2026-01-01"
    with pytest.raises(yaml.YamlError) as info:
        yaml.load("a: !!python/object/apply:os.system [true]")
    assert info.value.code == "invalid"


def test_a_malformed_document_names_its_line():
    with pytest.raises(yaml.YamlError) as info:
        yaml.load("a: 1\nb: [2\n", source="f.yaml")
    assert info.value.line is not None and str(info.value).startswith("f.yaml:")


def test_no_module_but_the_loader_uses_pyyaml():
    """The class defence: YAML enters through ``fleet.core.yaml`` or not at all."""
    users = []
    for path in sorted((ROOT / "fleet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(name == "yaml" or name.startswith(("yaml.", "_yaml")) for name in names):
                users.append(str(path.relative_to(ROOT)))
    assert users == ["fleet/core/yaml.py"]


# -- the entry points ---------------------------------------------------------------

@pytest.mark.django_db
def test_policy_evaluate_refuses_a_bomb_in_manifests(viewer):
    with Timer() as timer:
        response = viewer.post("/api/v1/policy/evaluate",
                               {"manifests": payloads.alias_bomb_manifest(), "labels": {"env": "prod"}})
    assert timer.seconds < FAST
    assert response.status_code == 400, response.content
    assert refused_as_bomb(response.json())


@pytest.mark.django_db
def test_policy_evaluate_refuses_deep_manifests(viewer):
    response = viewer.post("/api/v1/policy/evaluate", {"manifests": payloads.deep_yaml(), "labels": {}})
    assert response.status_code == 400 and "deeper than" in str(response.json())


@pytest.mark.django_db
def test_a_policy_set_file_with_a_bomb_is_refused(admin_client_api):
    with Timer() as timer:
        response = admin_client_api.post("/api/v1/policy/sets/", {
            "name": "bomb", "selector": "", "files": {"constraints.yaml": payloads.alias_bomb()}})
    assert timer.seconds < FAST
    assert response.status_code == 400, response.content
    assert refused_as_bomb(response.json())


@pytest.mark.django_db
def test_a_bomb_is_refused_as_a_stored_kubeconfig(operator):
    from tests.factories import ChannelFactory

    ChannelFactory(name="stable")
    response = operator.post("/api/v1/clusters/", {
        "name": "bomb", "api_server_url": "https://10.0.0.1:6443", "channel": "stable",
        "internal_repo_url": "https://git.example.com/c/bomb.git",
        "credentials": {"kubeconfig": payloads.kubeconfig_bomb()}})
    assert response.status_code == 400, response.content
    assert refused_as_bomb(response.json()["credentials"])


@pytest.mark.django_db
@pytest.mark.parametrize("text", [payloads.alias_bomb(), payloads.deep_yaml(2000)])
def test_inventory_sync_refuses_a_bomb_or_deep_file_with_its_name(tmp_path, text):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    (tmp_path / "bomb.yaml").write_text(text)
    with Timer() as timer, pytest.raises(CommandError) as info:
        call_command("inventory", "sync", "--dir", str(tmp_path))
    assert timer.seconds < FAST
    assert "1 problem(s)" in str(info.value)


@pytest.mark.django_db  # a render looks its content up in the render cache first
@pytest.mark.parametrize("name", ["bomb.yaml", "deep.yaml"])
def test_rendering_refuses_a_bomb_in_plain_manifests(tmp_path, name):
    from fleet.render.errors import RenderError
    from fleet.render.services import render_dir

    (tmp_path / name).write_text(payloads.alias_bomb_manifest() if name == "bomb.yaml"
                                 else "apiVersion: v1\nkind: X\nmetadata: {name: x}\n" + payloads.deep_yaml())
    with pytest.raises(RenderError) as info:
        render_dir(tmp_path)
    assert info.value.code == "parse" and info.value.path == name


def test_rendering_refuses_a_bomb_in_a_kustomization(tmp_path):
    from fleet.render.errors import RenderError
    from fleet.render.services import render_dir

    (tmp_path / "kustomization.yaml").write_text("resources: []\n" + payloads.alias_bomb())
    with pytest.raises(RenderError) as info:
        render_dir(tmp_path)
    assert info.value.code == "parse" and refused_as_bomb(info.value)


def test_rendered_output_goes_through_the_loader():
    from fleet.render.errors import RenderError
    from fleet.render.objects import parse_stream

    with pytest.raises(RenderError) as info:
        parse_stream(payloads.alias_bomb_manifest(), "kustomize output", 32 * 1024 * 1024)
    assert info.value.code == "parse"


def test_a_policy_bundle_file_with_a_bomb_is_refused():
    from fleet.policy.bundle import load_bundle
    from fleet.policy.errors import PolicyError

    with pytest.raises(PolicyError) as info:
        load_bundle({"bomb.yaml": payloads.alias_bomb()})
    assert refused_as_bomb(info.value)


def test_refusals_are_fleet_errors_the_api_maps_to_400():
    from fleet.api.exceptions import HTTP_STATUS, http_status

    with pytest.raises(FleetError) as info:
        yaml.load(payloads.alias_bomb())
    assert http_status(info.value) == 400 and HTTP_STATUS["yaml.*"] == 400
