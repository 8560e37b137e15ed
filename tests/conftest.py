"""Shared fixtures: the conformance data lives in ../shared and is never copied in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = Path(os.environ.get("GBHIL_CONFORMANCE", ROOT.parent / "shared" / "conformance"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(
            f"conformance data not found at {path} (checkout ../shared next to the repository "
            "or set GBHIL_CONFORMANCE)"
        )
    return path


@pytest.fixture(scope="session")
def conformance_dir() -> Path:
    return _need(CONFORMANCE)


@pytest.fixture(scope="session")
def rtds_dir() -> Path:
    return _need(CONFORMANCE / "rtds-4.5.0")


@pytest.fixture(scope="session")
def rtds_keystore_dir() -> Path:
    return _need(CONFORMANCE / "rtds-keystore")


@pytest.fixture(scope="session")
def zaz1_dir() -> Path:
    return _need(CONFORMANCE / "zaz1")


def rtds_files(root: Path) -> list[Path]:
    """Every RTDS message below ``root``, sorted for stable test ids."""
    return sorted(root.rglob("*.HEX"))
