"""Shared fixtures: the repository, the `leafe-host` binary the CLI checks compare with."""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def leafe_host() -> str:
    """The CLI: $LEAFE_HOST, else `leafe-host` on PATH (the Rust test driver sets LEAFE_HOST)."""
    path = os.environ.get("LEAFE_HOST") or shutil.which("leafe-host")
    if not path or not os.access(path, os.X_OK):
        pytest.fail(
            "these tests compare with the leafe-host CLI: build it (cargo build -p leafe-host) "
            "and set LEAFE_HOST=target/debug/leafe-host"
        )
    return path


@pytest.fixture(scope="session")
def component_path() -> str:
    """An environment component as a .wasm file: the guess environment ($LEAFE_TEST_COMPONENT)."""
    path = os.environ.get("LEAFE_TEST_COMPONENT")
    if not path or not os.path.exists(path):
        pytest.fail(
            "set LEAFE_TEST_COMPONENT to a component file, e.g. the guess environment's "
            "leafe_env_guess.wasm under target/ (tests/python_package.rs sets it)"
        )
    return path
