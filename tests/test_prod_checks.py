"""What afr checks before it submits a job to a real deployment, without a deployment.

The candidate's real ``job.py`` exports the job (in the sandbox, as ``engine.run.prod`` runs
it); each test then changes one thing the candidate's code could have changed and expects
the check to refuse it with its reason. The deployment options and the evaluation-subset
component are exercised directly.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from engine.profile import load_profile
from engine.run import prod
from engine.run.deployment import Deployment, DeploymentError
from engine.run.runner import evaluation_flags, job_command, processes_of_run
from tasks.shared import holdout

ROOT = Path(__file__).resolve().parents[1]
SITES = ["site-1", "site-2"]


@pytest.fixture(scope="module")
def heart():
    return Deployment("kit", sites=tuple(SITES)).profile_for(load_profile(ROOT, "fed_heart_disease"))


@pytest.fixture(scope="module")
def exported(heart, tmp_path_factory):
    """A Heart job exported for two sites on the held-out subset, by the candidate's job.py in the sandbox."""
    run_dir = tmp_path_factory.mktemp("export")
    command = job_command(ROOT, heart, {}, run_dir, "prod", True, None, True, "heldout")
    command += ["--export_dir", str(run_dir / "job")]
    lines: list[str] = []
    prod._export(ROOT, heart, command, run_dir, None, lines.append, None)
    return prod._exported_folder(run_dir / "job")


@pytest.fixture
def job(exported, tmp_path):
    copy = tmp_path / exported.name
    shutil.copytree(exported, copy)
    return copy


def client_config(job: Path) -> tuple[Path, dict]:
    path = next(job.glob("*/config/config_fed_client.json"))
    return path, json.loads(path.read_text())


def test_the_names_afr_checks_are_the_task_code_s():
    assert prod.COMPONENT_ID == holdout.COMPONENT_ID
    assert f"{holdout.__name__}.{holdout.JobEvaluationSubset.__name__}" == prod.COMPONENT_PATH


def test_an_exported_job_carries_what_afr_asked_for(job, heart):
    prod.check_job(job, ROOT, heart, "heldout", SITES)  # no exception: as asked
    _, config = client_config(job)
    component = next(c for c in config["components"] if c["id"] == holdout.COMPONENT_ID)
    assert component["args"] == {"subset": "heldout", "fraction": 0.5, "seed": 20260}
    script = config["executors"][0]["executor"]["args"]["task_script_path"]
    assert script == "tasks/fed_heart_disease/client.py"
    custom = next(job.glob("*/custom"))
    for package in ("tasks", "tasks/shared", "tasks/fed_heart_disease"):  # the job's code wins at a site
        assert (custom / package / "__init__.py").is_file()
    with pytest.raises(prod.JobRefused, match="evaluation subset"):
        prod.check_job(job, ROOT, heart, "validation", SITES)  # afr asked for another subset


def test_a_changed_subset_is_refused(job, heart):
    path, config = client_config(job)
    component = next(c for c in config["components"] if c["id"] == holdout.COMPONENT_ID)
    component["args"]["subset"] = "full"
    path.write_text(json.dumps(config))
    with pytest.raises(prod.JobRefused, match="evaluation subset"):
        prod.check_job(job, ROOT, heart, "heldout", SITES)


def test_a_local_script_path_is_refused(job, heart):
    path, config = client_config(job)
    config["executors"][0]["executor"]["args"]["task_script_path"] = str(ROOT / "tasks/fed_heart_disease/client.py")
    path.write_text(json.dumps(config))
    with pytest.raises(prod.JobRefused, match="not a path inside the job"):
        prod.check_job(job, ROOT, heart, "heldout", SITES)


def test_other_final_evaluation_sites_are_refused(job, heart):
    path = next(job.glob("*/config/config_fed_server.json"))
    config = json.loads(path.read_text())
    for workflow in config["workflows"]:
        if workflow["path"].endswith("CrossSiteModelEval"):
            workflow["args"]["participating_clients"] = ["site-1"]
    path.write_text(json.dumps(config))
    with pytest.raises(prod.JobRefused, match="final evaluation"):
        prod.check_job(job, ROOT, heart, "heldout", SITES)


def test_a_shipped_protected_file_that_differs_is_refused(job, heart):
    shipped = next(job.glob("*/custom")) / "tasks" / "shared" / "holdout.py"
    shipped.write_text(shipped.read_text().replace("fraction * len(rows)", "0 * len(rows)"))
    with pytest.raises(prod.JobRefused, match="holdout.py that differs"):
        prod.check_job(job, ROOT, heart, "heldout", SITES)


def test_deployment_sites_map_onto_the_profile():
    profile = load_profile(ROOT, "fed_heart_disease")
    two = Deployment("kit", sites=("site-1", "site-2")).profile_for(profile)
    assert two.budget.n_clients == 2 and two.budget.final_eval_clients == SITES
    assert two.budget.num_rounds == profile.budget.num_rounds
    assert Deployment("kit").profile_for(profile) == profile
    for bad in (("site-2",), ("site-1", "site-3"), tuple(f"site-{i}" for i in range(1, 6))):
        with pytest.raises(DeploymentError, match="site-1..site-k"):
            Deployment("kit", sites=bad).profile_for(profile)
    with pytest.raises(DeploymentError, match="startup-kit"):
        Deployment.of(None)
    with pytest.raises(DeploymentError, match="not an NVFlare admin startup kit"):
        Deployment.of({"startup_kit": str(ROOT)}).check()


def test_the_subset_reaches_the_job_as_flags_not_environment(tmp_path):
    profile = load_profile(ROOT, "fed_heart_disease")
    command = job_command(ROOT, profile, {}, tmp_path, "sim", True, None, True, "heldout")
    flags = evaluation_flags(profile, "heldout")
    assert flags == ["--eval_subset", "heldout", "--heldout_fraction", "0.5", "--heldout_seed", "20260"]
    assert " ".join(flags) in " ".join(command)


def test_the_component_decides_the_site_process_s_subset(monkeypatch):
    monkeypatch.setenv(holdout.SUBSET_VAR, "heldout")  # inherited from whoever started the site
    monkeypatch.setenv(holdout.FRACTION_VAR, "0.9")
    holdout.JobEvaluationSubset("validation", 0.5, 7)
    assert holdout.requested_subset() == ("validation", 0.5, 7)
    holdout.JobEvaluationSubset()
    assert holdout.requested_subset() == ("full", 0.0, 0)
    assert holdout.FRACTION_VAR not in os.environ


def test_an_export_over_its_time_leaves_no_process(heart, tmp_path, monkeypatch):
    # A job.py that starts the job itself (here: a child that outlives it) instead of exporting.
    monkeypatch.setattr(prod, "EXPORT_TIMEOUT", 3.0)
    runs_on = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    tokens: list[str] = []
    with pytest.raises(ValueError, match="exporting the job took over 3 s"):
        prod._export(ROOT, heart, [sys.executable, "-c", runs_on], tmp_path, "none", print, tokens.append)
    assert len(tokens) == 1 and processes_of_run(tokens[0]) == []
