"""Shared fixtures: the checkout as workspace, an isolated data cache per session, the red-team campaign."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.store.bundle import bundle_root, import_root

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    os.environ["AFR_DATA_CACHE"] = str(tmp_path_factory.mktemp("afr-cache"))
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    # Literature reviews search the bundled bibliography: the suite never reaches for the real
    # arXiv/OpenAlex/Semantic Scholar (tests of the clients use a loopback server instead).
    os.environ.setdefault("AFR_LITERATURE", "offline")
    yield


@pytest.fixture(scope="session")
def root() -> Path:
    assert bundle_root() == ROOT
    import_root(ROOT)
    return ROOT


@pytest.fixture(scope="session")
def redteam(tmp_path_factory):
    """One red-team campaign (real NVFlare) shared by the three red-team modules: tests/redteam_campaign.py."""
    from redteam_campaign import run_redteam

    return run_redteam(tmp_path_factory.mktemp("redteam"))
