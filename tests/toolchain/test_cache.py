"""Locating a tool: the cache entry or the override, and a clear ``toolchain.missing``
naming the install command when neither is there. Locating never builds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.toolchain.cache import cached_path, locate
from fleet.toolchain.constants import KUSTOMIZE_VERSION
from fleet.toolchain.errors import ToolchainError

ROOT = Path(__file__).resolve().parents[2]


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\necho built\n")
    path.chmod(0o755)
    return path


def test_locate_finds_the_cache_entry(empty_cache):
    empty_cache.mkdir()
    cached_path("kustomize").write_text("")
    assert locate("kustomize") == cached_path("kustomize")


def test_locate_prefers_the_override(empty_cache, monkeypatch, tmp_path):
    own = executable(tmp_path / "kustomize")
    monkeypatch.setenv("FLEET_KUSTOMIZE_BIN", str(own))
    assert locate("kustomize") == own


def test_a_missing_tool_names_the_command_that_installs_it_and_nothing_is_built(empty_cache):
    with pytest.raises(ToolchainError) as info:
        locate("kustomize")
    assert info.value.key == "toolchain.missing"
    assert f"kustomize {KUSTOMIZE_VERSION} is not installed" in str(info.value)
    assert "`python -m fleet.toolchain kustomize`" in str(info.value)
    assert "FLEET_KUSTOMIZE_BIN" in str(info.value)
    assert not empty_cache.exists()  # no build lock, no build


def test_unknown_and_bad_override_have_their_codes(empty_cache, monkeypatch, tmp_path):
    with pytest.raises(ToolchainError) as unknown:
        locate("helm")
    (tmp_path / "kustomize").write_text("not executable")
    monkeypatch.setenv("FLEET_KUSTOMIZE_BIN", str(tmp_path / "kustomize"))
    with pytest.raises(ToolchainError) as bad:
        locate("kustomize")
    assert (unknown.value.key, bad.value.key) == ("toolchain.unknown", "toolchain.bad-override")


def test_the_command_line_reports_each_path(tmp_path):
    own = executable(tmp_path / "kustomize")
    env = {**os.environ, "FLEET_BIN_CACHE": str(tmp_path / "bin"), "FLEET_KUSTOMIZE_BIN": str(own)}
    result = subprocess.run([sys.executable, "-m", "fleet.toolchain", "kustomize"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"kustomize: {own}" in result.stdout
    failed = subprocess.run([sys.executable, "-m", "fleet.toolchain", "helm"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "unknown local-fleet artifact 'helm'" in failed.stderr
