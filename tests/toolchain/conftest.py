"""A cache to test against: empty, and no Go to build with."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def empty_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A cache with nothing in it and no `go` on PATH: any build attempt would fail."""
    monkeypatch.setenv("FLEET_BIN_CACHE", str(tmp_path / "bin"))
    monkeypatch.setenv("PATH", str(tmp_path / "no-go-here"))
    return tmp_path / "bin"
