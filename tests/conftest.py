"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared benchmark data folder (``$NERFKIT_SHARED_DATA`` or ``<repo>/../shared/data``).

    Missing data fails the run on CI (``CI=true``, where the data must be present) and skips elsewhere.
    """
    env = os.environ.get("NERFKIT_SHARED_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not path.is_dir():
        msg = f"shared data folder {path} not found (set NERFKIT_SHARED_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def synthetic_64(tmp_path_factory) -> Path:
    """The built-in synthetic scene at 64x64 (100 train, 25 test views), generated once per session."""
    from nerfkit.data.synthetic import generate_synthetic

    return generate_synthetic(tmp_path_factory.mktemp("synthetic") / "s64", resolution=64)
