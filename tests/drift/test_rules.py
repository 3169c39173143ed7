"""Ignore rules and modes: validated when written (a clear error naming the field), and
matched as documented (globs, selectors, JSON pointers, field managers)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleet.core.objects import ObjectRef
from fleet.drift import modes, ownership, rules, services
from fleet.drift.errors import DriftError
from fleet.drift.models import IgnoreRule
from fleet.kube.diff import FieldChange

pytestmark = [pytest.mark.django_db]

DEPLOYMENT = ObjectRef("apps", "v1", "Deployment", "prod", "web")


@pytest.mark.parametrize("data, field, words", [
    ({"json_pointers": ["spec/replicas"]}, "json_pointers[0]", "must start with '/'"),
    ({"json_pointers": ["/spec/~2"]}, "json_pointers[0]", "'~' must be followed by 0 or 1"),
    ({"json_pointers": ["/spec//replicas"]}, "json_pointers[0]", "empty segment"),
    ({"json_pointers": "/spec"}, "json_pointers", "must be a list"),
    ({"json_pointers": ["/spec"], "cluster_selector": "env in (prod"}, "cluster_selector", "bad cluster selector"),
    ({"json_pointers": ["/spec"], "kind": "Deploy ment"}, "kind", "not a name or glob"),
    ({"managers": ["fleet"]}, "managers[0]", "Fleet's own field manager"),
    ({"managers": ["\x00bad"]}, "managers[0]", "not a field manager name"),
    ({}, "json_pointers", "give at least one"),
])
def test_a_bad_rule_is_refused_naming_the_field_and_nothing_is_stored(data, field, words):
    with pytest.raises(DriftError) as caught:
        services.create_ignore_rule({"name": "bad", **data})
    assert caught.value.field == field and words in caught.value.message
    assert caught.value.key == "drift.invalid"
    assert not IgnoreRule.objects.exists()


def test_pointers_match_fields_by_merge_key_index_or_wildcard():
    rule = rules.compile_rule(IgnoreRule(name="r", kind="Deploy*", namespace="pr?d",
                                         json_pointers=["/spec/template/spec/containers/*/image",
                                                        "/metadata/labels/a~1b"]))
    image = FieldChange("spec.template.spec.containers[name=web].image", "a", "b",
                        ("spec", "template", "spec", "containers", ("name", "web"), "image"))
    label = FieldChange("metadata.labels.a/b", None, "x", ("metadata", "labels", "a/b"))
    replicas = FieldChange("spec.replicas", 1, 2, ("spec", "replicas"))
    assert rule.applies_to(DEPLOYMENT, {})
    assert not rule.applies_to(replace(DEPLOYMENT, kind="Service"), {})
    assert not rule.applies_to(replace(DEPLOYMENT, namespace="staging"), {})
    kept, hidden = rules.split([image, label, replicas], DEPLOYMENT, None, [rule], {})
    assert kept == [replicas] and hidden == 2


def test_manager_rules_use_the_live_objects_managed_fields():
    live = {"metadata": {"managedFields": [
        {"manager": "fleet", "operation": "Apply", "time": "2026-01-01T10:00:00Z",
         "fieldsV1": {"f:spec": {"f:template": {}}}},
        {"manager": "hpa-controller", "operation": "Update", "time": "2026-01-01T12:03:00Z",
         "fieldsV1": {"f:spec": {"f:replicas": {}}}}]}}
    rule = rules.compile_rule(IgnoreRule(name="hpa", managers=["hpa-controller"]))
    replicas = FieldChange("spec.replicas", 1, 4, ("spec", "replicas"))
    assert rule.hides(replicas, live)
    assert ownership.who_changed(live, ("spec", "replicas")).manager == "hpa-controller"
    assert rules.owned_pointers(live, frozenset({"hpa-controller"})) == [("spec", "replicas")]
    obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}}}
    stripped = rules.strip_fields(obj, [("spec", "replicas"), ("spec", "template", "spec", "containers", "web",
                                                               "image"), ("metadata", "name")])
    assert stripped["spec"] == {"template": {"spec": {"containers": [{"name": "web"}]}}}
    assert stripped["metadata"] == {"name": "web"} and obj["spec"]["replicas"] == 1  # identity kept; a copy


@pytest.mark.parametrize("windows, field", [(["25:00-01:00"], "heal_windows[0]"), (["10:00-10:00"], "heal_windows[0]"),
                                            ("22:00-06:00", "heal_windows")])
def test_bad_heal_windows_are_refused(windows, field):
    with pytest.raises(DriftError) as caught:
        services.create_mode_rule({"name": "w", "mode": "heal", "heal_windows": windows})
    assert caught.value.field == field


def test_heal_windows_may_wrap_midnight():
    import datetime

    mode = modes.EffectiveMode("heal", "rule", modes.parse_windows(["22:00-06:00"]))
    at = lambda h: datetime.datetime(2026, 1, 1, h, 30, tzinfo=datetime.UTC)  # noqa: E731
    assert mode.may_heal_at(at(23)) and mode.may_heal_at(at(5)) and not mode.may_heal_at(at(12))
