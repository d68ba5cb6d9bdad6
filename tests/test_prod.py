"""``--env prod``: a Heart campaign and its held-out check on a real NVFlare deployment.

A project with a server and two clients is provisioned on localhost and started from its
startup kits (``tests/prod_deployment.py``); site-1 and site-2 hold Cleveland's and
Hungary's data in their own folders. ``afr run --env prod --sites site-1,site-2`` runs a
two-candidate smoke campaign there, then ``afr heldout --env prod`` scores the baseline and
c002 on the held-out rows: each site logs the rows it scored, and they must be exactly the
held-out split of its evaluation data. One deployment serves every test of the module.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from afr_cli import afr
from prod_deployment import ADMIN, LocalDeployment

from engine.profile import load_profile
from engine.run.deployment import Deployment
from engine.run.evaluator import evaluate
from engine.run.runner import evaluation_environment
from engine.run.trusted import TrustedScoring
from engine.store.ledger import Ledger

pytestmark = [pytest.mark.nvflare, pytest.mark.prod]
TAG = "prod-20261125"
SITES = ("site-1", "site-2")


def export_site(workspace: Path, site: str, folder: Path) -> None:
    command = [sys.executable, "-m", "tasks.fed_heart_disease.data", site, str(folder)]
    done = subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def prod(tmp_path_factory):
    """(workspace, deployment, afr's prod flags) with the campaign run; everything stopped at the end."""
    tmp = tmp_path_factory.mktemp("prod")
    workspace = tmp / "ws"
    deployment = LocalDeployment(tmp / "deployment")
    deployment.root.mkdir()
    deployment.provision()
    data = {site: tmp / "site-data" / site for site in SITES}
    flags = ["--env", "prod", "--startup-kit", str(deployment.admin_kit), "--username", ADMIN]
    flags += ["--sites", ",".join(SITES)]
    try:
        # The server and clients start while the workspace and the sites' data folders are made.
        deployment.launch(data)
        done = afr("init", str(workspace), cwd=tmp)
        assert done.returncode == 0, done.stderr
        for site, folder in data.items():
            export_site(workspace, site, folder)
        deployment.wait_joined()
        run = afr(
            "run", "--profile", "fed_heart_disease", "--headless", "--smoke", "--no-confirm",
            "--max-candidates", "2", "--tag", TAG, *flags,
            cwd=workspace,
        )  # fmt: skip
        yield workspace, deployment, flags, run
    finally:
        left = deployment.stop()
    assert left == [], f"processes left behind: {[p.pid for p in left]}"


def records(workspace: Path) -> list[dict]:
    path = workspace / ".afr" / "campaigns" / TAG / "candidates.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def site_lines(deployment: LocalDeployment, job_id: str) -> dict[str, tuple[str, int, str]]:
    """Per site, what it logged about the evaluation rows it scored in job ``job_id``."""
    found = {}
    for site in SITES:
        log = (deployment.site_workspace(site) / job_id / "log.txt").read_text(errors="replace")
        match = re.search(rf"afr-site: {site} scores (\w+) rows: (\d+) ids-sha256=([0-9a-f]+)", log)
        assert match, f"{site} logged no scored rows for job {job_id}"
        found[site] = (match.group(1), int(match.group(2)), match.group(3))
    return found


def expected_rows(workspace: Path, subset: str) -> dict[str, tuple[str, int, str]]:
    """The subset's rows of each site's evaluation split, from the protected split itself."""
    from tasks.fed_heart_disease.data import load_federation
    from tasks.shared.holdout import subset_indices

    environ = evaluation_environment(load_profile(workspace, "fed_heart_disease"), subset)
    expected = {}
    for site in load_federation():
        if site.name in SITES:
            rows = np.ascontiguousarray(subset_indices(site.test.labels, site.name, environ), dtype=np.int64)
            expected[site.name] = (subset, len(rows), hashlib.sha256(rows.tobytes()).hexdigest())
    return expected


def test_campaign_runs_on_the_deployment_and_is_scored_by_its_sites(prod):
    workspace, deployment, _, run = prod
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    found = records(workspace)
    assert [r["id"] for r in found] == ["c001", "c002"]
    validation = expected_rows(workspace, "validation")
    for record in found:
        assert record["status"] in ("keep", "discard"), record.get("error")
        facts = record["evaluator"]
        assert facts["scored_by"] == "sites (prod)"
        assert facts["job_status"] == "FINISHED:COMPLETED"
        assert sorted(facts["per_site"]) == list(SITES)
        assert record["score"] == pytest.approx(sum(facts["per_site"].values()) / 2)
        # Each site scored its own validation rows, as the job's configuration told it.
        assert site_lines(deployment, facts["job_id"]) == validation
    rows = Ledger(workspace / ".afr" / "campaigns" / TAG).rows()
    assert [row.status for row in rows][0] == "keep" and all(row.score > 0 for row in rows)
    assert all(row.budget == "smoke:clients=2;rounds=1" for row in rows)  # the deployment's two sites
    status = afr("status", TAG, cwd=workspace)
    assert "scored by: sites (prod)" in status.stdout


def test_heldout_on_the_deployment_scores_exactly_the_heldout_rows(prod):
    workspace, deployment, flags, run = prod
    assert run.returncode == 0, run.stderr[-3000:]
    done = afr("heldout", TAG, "--candidate", "c002", *flags, cwd=workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "scored by its sites (prod)" in done.stdout
    evidence = (workspace / ".afr" / "campaigns" / TAG / "evidence.tsv").read_text().splitlines()
    heldout = [line.split("\t") for line in evidence[1:] if "\theldout\t" in line]
    assert [(cells[0], cells[4]) for cells in heldout] == [("c001", "ok"), ("c002", "ok")]
    expected = expected_rows(workspace, "heldout")
    assert expected != expected_rows(workspace, "validation")
    records_by_id = {record["id"]: record for record in records(workspace)}
    campaign = workspace / ".afr" / "campaigns" / TAG
    profile = Deployment("kit", sites=SITES).profile_for(load_profile(workspace, "fed_heart_disease"))
    data = TrustedScoring.for_campaign(workspace, campaign, profile).site_data("heldout")
    for cells in heldout:
        run_dir = workspace / ".afr" / "campaigns" / TAG / cells[-1]
        assert run_dir.name.endswith("-prod")
        facts = json.loads((run_dir / "prod.json").read_text())
        assert facts["subset"] == "heldout" and facts["sites"] == list(SITES)
        assert site_lines(deployment, facts["job_id"]) == expected
        # The downloaded result holds the sites' final evaluation and the final global model; afr's own
        # evaluator, given the held-out rows (this test's sites hold the bundled data), agrees with the sites.
        result = run_dir / "nvflare" / "prod" / facts["job_id"] / "workspace"
        assert (result / "cross_site_val" / "cross_val_results.json").is_file()
        arch = str((records_by_id[cells[0]].get("args") or {}).get("model_arch", "logreg"))
        evaluation = evaluate(workspace, "tasks.fed_heart_disease.model", arch, result, data, list(SITES))
        assert evaluation.ok, evaluation.error
        assert evaluation.per_site == pytest.approx(facts["per_site"], abs=1e-6)


def test_prod_options_are_checked_before_anything_runs(prod):
    workspace, deployment, _, _ = prod
    done = afr("run", "--env", "prod", "--headless", "--tag", "noprod-20261125", cwd=workspace)
    assert done.returncode == 2 and "needs --startup-kit" in done.stderr
    not_a_kit = ["--env", "prod", "--startup-kit", str(workspace), "--tag", "nokit-20261125"]
    done = afr("run", "--headless", *not_a_kit, cwd=workspace)
    assert done.returncode == 2 and "not an NVFlare admin startup kit" in done.stderr
    kit = ["--env", "prod", "--startup-kit", str(deployment.admin_kit), "--sites", "site-2"]
    done = afr("run", "--headless", "--max-candidates", "1", *kit, "--tag", "badsites-20261125", cwd=workspace)
    assert done.returncode == 2 and "site-1..site-k" in done.stderr
    assert not (workspace / ".afr" / "campaigns" / "badsites-20261125").exists()
    assert not (workspace / ".afr" / "campaigns" / "noprod-20261125").exists()
