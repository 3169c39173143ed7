"""Real engines for the policy tests, both OPA built from its Go module by
``ensure_binaries``: the embedded engine (an OPA this process starts and supervises),
and an ``opa run --server`` started apart, as production points Fleet at one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.dev.opa_process import opa_server
from fleet.policy.bundle import Bundle, load_bundle, read_directory
from fleet.policy.engines.base import Engine
from fleet.policy.engines.managed import ManagedOpaEngine
from fleet.policy.engines.opa_engine import OpaEngine
from fleet.toolchain.build import ensure_binaries

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="session")
def opa_binary() -> Path:
    return ensure_binaries(["opa"])["opa"]


@pytest.fixture(scope="session")
def opa_url(opa_binary: Path, tmp_path_factory) -> Iterator[str]:
    with opa_server(opa_binary, tmp_path_factory.mktemp("opa") / "opa.log") as server:
        yield server.url


@pytest.fixture(scope="session")
def opa_engine(opa_url: str) -> Iterator[OpaEngine]:
    engine = OpaEngine(opa_url)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def embedded_engine(opa_binary: Path) -> Iterator[ManagedOpaEngine]:
    engine = ManagedOpaEngine(binary=opa_binary)
    yield engine
    engine.close()


@pytest.fixture(params=["embedded", "opa"])
def engine(request) -> Engine:
    """Each test using it runs on every engine Fleet ships."""
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture(scope="session")
def baseline_files() -> dict[str, str]:
    return read_directory(POLICIES_DIR)


@pytest.fixture(scope="session")
def baseline(baseline_files) -> Bundle:
    return load_bundle(baseline_files)
