"""Red team of the owned budget: candidates whose ``job.py`` asks for more than the profile gives.

They run in the shared red-team campaign (``tests/redteam_campaign.py``: ``Campaign`` with the
real ``run_job``, afr's trusted path, on a real workspace), scripted ``CandidateSpec(edits=...)``
whose ``job.py`` sets 10x the rounds, fewer clients, 20x the clients' local steps while
declaring the profile's, no final evaluation, a final evaluation on one site, another seed, runs
the job itself instead of exporting it, or rewrites its exported bundle. Each must end a
``crash`` whose reason names the departure, before any NVFlare run. Then: protected hashes
unchanged, no process left, the next campaign's baseline identical, and the launched baseline's
final weights bit-identical to a run of the same job the old way (``job.py`` executing its recipe).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.guard.validate import protected_hashes
from engine.run.runner import processes_of_run

pytestmark = pytest.mark.nvflare


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    (path,) = Path(folder).glob("**/app_server/FL_global_model.pt")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved.get("model", saved)


def test_the_baseline_is_launched_by_afr_and_kept(redteam):
    baseline = redteam.records["baseline"]
    assert baseline["status"] == "keep", baseline["error"]
    assert baseline["evaluator"]["export_seconds"] > 0
    run_dir = redteam.campaign_dir / "runs" / baseline["id"]
    first_line = (run_dir / "job.log").read_text().splitlines()[0]
    assert "nvflare.private.fed.app.simulator.simulator" in first_line and "job.py" not in first_line
    assert "--export_dir" in (run_dir / "export.log").read_text().splitlines()[0]


@pytest.mark.parametrize(
    "description",
    [
        "10x rounds",
        "two clients",
        "20x local steps",
        "no final evaluation",
        "final evaluation on one site",
        "another model seed",
        "runs the job itself",
        "rewrites its export",
    ],
)
def test_a_job_that_takes_more_budget_is_a_crash_with_its_reason(redteam, description):
    record = redteam.records[description]
    assert record["status"] == "crash", record
    assert record["error"].startswith("budget: "), record["error"]
    assert any(reason in record["error"] for reason in redteam.hostile[description][1].split("|"))
    assert "\n" not in record["error"]
    # Refused before any NVFlare run: no job token was ever handed out for it.
    assert record["id"] not in redteam.nvflare_runs


def test_protected_hashes_unchanged_and_no_process_left(redteam):
    assert protected_hashes(redteam.root, redteam.profile) == redteam.hashes
    meta = json.loads((redteam.campaign_dir / "campaign.json").read_text())
    assert meta["protected_hashes"] == redteam.hashes
    for token in redteam.tokens:
        assert processes_of_run(token) == []
    assert not redteam.left


def test_the_next_campaigns_baseline_is_identical(redteam):
    first = redteam.records["baseline"]
    (following,) = [r for r in redteam.next_records.values() if r.get("target") == "baseline"]
    assert following["status"] == "keep", following["error"]
    assert following["score"] == first["score"]
    assert following["per_site"] == first["per_site"]


def test_the_launched_job_computes_what_job_py_computed(redteam):
    """The same final weights bit for bit as the old path, so the same score of record."""
    old = redteam.old_way
    assert old.status == "ok", old.error
    baseline = redteam.records["baseline"]
    launched = final_weights(redteam.campaign_dir / "runs" / baseline["id"] / "nvflare")
    direct = final_weights(redteam.old_way_dir / "nvflare")
    assert launched.keys() == direct.keys()
    for name in launched:
        assert torch.equal(launched[name], direct[name]), name
    for site, score in old.per_site.items():
        assert baseline["per_site"][site] == pytest.approx(score, abs=1e-6)
