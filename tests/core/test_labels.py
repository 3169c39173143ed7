import pytest

from fleet.core.labels import LabelError, parse_selector, validate_labels

pytestmark = pytest.mark.embedded

LABELS = {"env": "prod", "region": "eu", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("env=prod", True),
        ("env==prod", True),
        ("env!=prod", False),
        ("env=dev", False),
        ("region in (eu,us)", True),
        ("region in (us, ap)", False),
        ("region notin (us)", True),
        ("canary", False),
        ("!canary", True),
        ("!env", False),
        ("env=prod,region in (eu,us),!canary", True),
        ("missing!=x", True),  # Kubernetes: != matches objects without the key
        ("missing notin (x)", True),
        ("example.com/team", False),
    ],
)
def test_selector_matches_like_kubernetes(selector, expected):
    assert parse_selector(selector).matches(LABELS) is expected


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        ("env=", None),  # empty value is valid
        ("region in (eu", "expected ')'"),
        ("region in eu", "expected '('"),
        ("env=prod,", "trailing ','"),
        ("env>3", "unexpected '>'"),
        ("-bad=x", "label key '-bad'"),
        ("env=not valid", "expected ','"),
        ("env=" + "x" * 64, "at most 63 characters"),
    ],
)
def test_selector_errors_name_the_problem(selector, fragment):
    if fragment is None:
        assert parse_selector(selector).matches({"env": ""})
        return
    with pytest.raises(LabelError) as info:
        parse_selector(selector)
    assert fragment in str(info.value)
    assert repr(selector) in str(info.value)


def test_selector_round_trips_to_text():
    text = "env=prod,region in (eu,us),!canary,tier,zone notin (a)"
    assert str(parse_selector(text)) == text


def test_validate_labels_names_every_problem():
    validate_labels({"app.kubernetes.io/name": "web", "env": ""})
    with pytest.raises(LabelError) as info:
        validate_labels({"Bad Key": "x", "env": "not ok!", "n": 3})
    message = str(info.value)
    assert "'Bad Key'" in message and "'not ok!'" in message and "must be a string" in message
    with pytest.raises(LabelError, match="at most 64 labels"):
        validate_labels({f"k{i}": "v" for i in range(65)})
