"""Fixtures shared by the test modules."""

import pytest


@pytest.fixture(autouse=True)
def instrclf_cache(tmp_path, monkeypatch):
    """Point the download cache ($INSTRCLF_CACHE) at a fresh folder, never the user's cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("INSTRCLF_CACHE", str(cache))
    return cache
