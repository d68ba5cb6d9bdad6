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


HEAVY_MARKS = ("nvflare", "ray", "prod", "slow")  # a real job, cluster, deployment or model: long


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    """Under ``pytest -n N --dist loadgroup`` (``make test``), each module is one unit of work on
    one worker: its module fixtures (a Ray cluster, a deployment, a shared job) are made once.
    Units with the most real runs go first (with ``--no-loadscope-reorder``, xdist hands them out
    in this order), so the quick ones fill the workers' last minutes instead of a long one."""
    groups: dict[str, str] = {}
    for item in items:
        module = item.module.__name__.rpartition(".")[2]
        groups[item.nodeid] = SHARED_GROUPS.get(module, module)
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    heavy: dict[str, int] = {}
    for item in items:
        if any(item.get_closest_marker(mark) for mark in HEAVY_MARKS):
            heavy[groups[item.nodeid]] = heavy.get(groups[item.nodeid], 0) + 1
    order = {item.nodeid: index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-heavy.get(groups[item.nodeid], 0), order[item.nodeid]))
