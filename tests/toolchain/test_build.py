"""Building: pinned versions agree with the go.mod files, overrides win, and a
warm run never invokes Go."""

from __future__ import annotations

import time

import pytest

from fleet.toolchain.build import check_gomod, ensure_binaries
from fleet.toolchain.cache import cached_path
from fleet.toolchain.constants import ARTIFACT_NAMES, BUILDS, KUBERNETES_VERSION
from fleet.toolchain.errors import ToolchainError


@pytest.mark.parametrize("build", BUILDS, ids=lambda build: build.group)
def test_go_mod_requires_the_pinned_version(build):
    check_gomod(build)


def test_cache_layout_is_name_dash_version(empty_cache):
    assert cached_path("kube-apiserver") == empty_cache / f"kube-apiserver-{KUBERNETES_VERSION}"


def test_warm_run_only_checks_files(empty_cache):
    empty_cache.mkdir()
    for name in ARTIFACT_NAMES:
        cached_path(name).write_text("")
    started = time.monotonic()
    paths = ensure_binaries(progress=pytest.fail)
    assert time.monotonic() - started < 0.1
    assert paths == {name: cached_path(name) for name in ARTIFACT_NAMES}


def test_override_wins_over_the_cache(empty_cache, monkeypatch, tmp_path):
    own = tmp_path / "my-kustomize"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("FLEET_KUSTOMIZE_BIN", str(own))
    monkeypatch.setenv("FLEET_KUBE_APISERVER_BIN", str(own))
    assert ensure_binaries(["kustomize", "kube-apiserver"], progress=pytest.fail) == {
        "kustomize": own,
        "kube-apiserver": own,
    }


def test_override_must_be_executable(empty_cache, monkeypatch, tmp_path):
    (tmp_path / "kubectl").write_text("not executable")
    monkeypatch.setenv("FLEET_KUBECTL_BIN", str(tmp_path / "kubectl"))
    with pytest.raises(ToolchainError, match="FLEET_KUBECTL_BIN=.* is not an executable file"):
        ensure_binaries(["kubectl"])


def test_unknown_name_is_refused(empty_cache):
    with pytest.raises(ToolchainError, match="unknown local-fleet artifact 'helm'"):
        ensure_binaries(["helm"])


def test_missing_go_is_explained(empty_cache):
    with pytest.raises(ToolchainError, match="`go` is not on PATH"):
        ensure_binaries(["opa"], progress=lambda message: None)
