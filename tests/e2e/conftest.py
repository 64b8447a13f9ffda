"""Fixtures of the end-to-end tier (the suite-wide ones are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def token_file(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """A token file holding the test module's ``SECRET``, readable by its owner only."""
    path = tmp_path / "token"
    path.write_text(request.module.SECRET + "\n")
    path.chmod(0o600)
    return path
