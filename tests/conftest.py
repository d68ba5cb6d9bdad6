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


# Modules that share the session's red-team campaign run on one xdist worker, so it runs once.
SHARED_GROUPS = {
    "test_trusted_redteam": "redteam",
    "test_redteam_agent": "redteam",
    "test_budget_redteam": "redteam",
}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n N --dist loadgroup`` (``make test``), each module is one unit of work on
    one worker: its module fixtures (a Ray cluster, a deployment, a shared job) are made once."""
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        item.add_marker(pytest.mark.xdist_group(SHARED_GROUPS.get(module, module)))
