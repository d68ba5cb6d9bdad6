"""The owned budget's verifier on a real export: the honest Heart job passes, every departure is refused.

One real export of the bundled Heart job (``job.py --export_dir`` in the run sandbox, no
NVFlare run) is shared by every case; each case edits a copy of that export the way a
candidate's ``job.py`` could have written it and expects ``verify_export`` to refuse it with
its one-line reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.profile import load_profile
from engine.run import launch as launch_module
from engine.run.jobbox import job_spec
from engine.run.jobconfig import BudgetError, expected_for, flag_values, verify_export
from engine.run.launch import prepare_launch
from engine.run.sandbox import detect_sandbox
from engine.store.workspace import init_workspace

ARGS = {"lr": 0.01}  # a declared change: the export must carry it to the clients
SERVER = "app/config/config_fed_server.json"
CLIENT = "app/config/config_fed_client.json"


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("jobconfig")
    root, _ = init_workspace(tmp / "ws")
    profile = load_profile(root, "fed_heart_disease")
    run_dir = tmp / "run"
    run_dir.mkdir()
    spec = job_spec(root, run_dir, None, profile.surface.protected, {})
    launch = prepare_launch(root, profile, ARGS, run_dir, spec, detect_sandbox(), smoke=True)
    return {"root": root, "profile": profile, "launch": launch, "tmp": tmp}


def test_the_honest_export_is_verified_and_launched_by_nvflares_simulator(honest):
    launch = honest["launch"]
    assert launch.job_dir.is_dir()
    assert launch.command[2:4] == ["-m", "nvflare.private.fed.app.simulator.simulator"]
    assert launch.command[4] == str(launch.job_dir)
    assert launch.command[-6:] == ["-c", "site-1,site-2,site-3,site-4", "-n", "4", "-t", "4"]
    assert launch.workspace.parent.name == "nvflare"
    assert launch.env["PYTHONPATH"] == str(honest["root"])
    assert launch.export_seconds > 0


def test_the_engines_lean_knobs_are_the_task_codes(root):
    from tasks.shared.jobs import LEAN
    from tasks.shared.site_runtime import POLL_VAR

    assert LEAN.threads_per_site == launch_module.LEAN_THREADS_PER_SITE
    assert LEAN.client_poll_interval == launch_module.LEAN_CLIENT_POLL_INTERVAL
    assert launch_module.POLL_VAR == POLL_VAR


def test_client_arguments_parse_as_the_job_writes_them():
    values = flag_values(["--seed", "42", "--augment", "--lr", "-0.5", "--amp"])
    assert values == {"seed": "42", "augment": True, "lr": "-0.5", "amp": True}
    with pytest.raises(BudgetError, match="given twice"):
        flag_values(["--seed", "1", "--seed", "2"])


def _edit_json(job: Path, name: str, change) -> None:
    path = job / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _fedavg(data):
    return data["workflows"][0]["args"]


def _evaluation(data):
    return data["workflows"][1]["args"]


def _component(data, ident):
    return next(c for c in data["components"] if c["id"] == ident)


def _executor(data):
    return data["executors"][0]["executor"]["args"]


def _script_args(data, old, new):
    args = _executor(data)
    assert old in args["task_script_args"]
    args["task_script_args"] = args["task_script_args"].replace(old, new)


CASES = {
    "num_rounds x10": (
        SERVER,
        lambda d: _fedavg(d).update(num_rounds=10),
        "num_rounds=10, the profile fixes 1",
    ),
    "start_round": (SERVER, lambda d: _fedavg(d).update(start_round=1), "FedAvg sets start_round"),
    "fewer clients": (
        SERVER,
        lambda d: _fedavg(d).update(num_clients=2),
        "min_clients=2, the profile fixes 4",
    ),
    "no final evaluation": (SERVER, lambda d: d["workflows"].pop(), "expected FedAvg then the final global"),
    "final evaluation on one site": (
        SERVER,
        lambda d: _evaluation(d).update(participating_clients=["site-1"]),
        "final evaluation on ['site-1']",
    ),
    "client models scored": (
        SERVER,
        lambda d: _evaluation(d).update(submit_model_task_name="submit_model"),
        "only the server's model",
    ),
    "another seed": (
        SERVER,
        lambda d: _component(d, "persistor")["args"]["model"]["args"].update(init_seed=7),
        "init_seed=7, the run's seed is 42",
    ),
    "extra server component": (
        SERVER,
        lambda d: d["components"].append({"id": "x", "path": "tasks.shared.aggregators.Spy", "args": {}}),
        "adds component tasks.shared.aggregators.Spy",
    ),
    "server result filter": (
        SERVER,
        lambda d: d.update(task_result_filters=[{"tasks": ["*"], "filters": []}]),
        "adds task_result_filters",
    ),
    "local_steps x20": (
        CLIENT,
        lambda d: _script_args(d, "--local_steps 10", "--local_steps 200"),
        "local_steps=200, the engine computed 10",
    ),
    "client seed": (
        CLIENT,
        lambda d: _script_args(d, "--seed 42", "--seed 43"),
        "seed=43, the engine computed 42",
    ),
    "batch size dropped": (
        CLIENT,
        lambda d: _script_args(d, "--batch_size 4 ", ""),
        "does not pass the clients --batch_size",
    ),
    "declared lr dropped back": (
        CLIENT,
        lambda d: _script_args(d, "--lr 0.01", "--lr 0.001"),
        "lr=0.001, the engine computed 0.01",
    ),
    "extra client flag": (
        CLIENT,
        lambda d: _script_args(d, "--fedprox_mu 0.0", "--fedprox_mu 0.0 --steps_factor 20"),
        "--steps_factor, which the engine does not",
    ),
    "another client count": (
        CLIENT,
        lambda d: _script_args(d, "--fedprox_mu 0.0", "--fedprox_mu 0.0 --num_clients 9"),
        "num_clients=9, the engine computed 4",
    ),
    "scaffold switched on": (
        CLIENT,
        lambda d: _script_args(d, "--fedprox_mu 0.0", "--fedprox_mu 0.0 --scaffold"),
        "passes the clients --scaffold",
    ),
    "external process": (
        CLIENT,
        lambda d: _executor(d).update(execution_mode="external_process"),
        "must run in process",
    ),
    "meta min_clients": (
        "meta.json",
        lambda d: d.update(min_clients=1),
        "min_clients=1, the profile fixes 4",
    ),
    "meta mandatory clients": (
        "meta.json",
        lambda d: d.update(mandatory_clients=["site-1"]),
        "meta.json sets mandatory_clients",
    ),
    "scores the whole split": (
        CLIENT,
        lambda d: _component(d, "afr_evaluation_subset")["args"].update(subset="full", fraction=0.0, seed=0),
        "does not score afr's evaluation subset",
    ),
    "no evaluation subset": (
        CLIENT,
        lambda d: d.update(components=[c for c in d["components"] if c["id"] != "afr_evaluation_subset"]),
        "does not score afr's evaluation subset",
    ),
    "deploy to one site": (
        "meta.json",
        lambda d: d.update(deploy_map={"app": ["server", "site-1"]}),
        "afr runs it on every site",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_departure_from_the_budget_is_refused(honest, case, tmp_path):
    name, change, reason = CASES[case]
    copy = tmp_path / "export"
    shutil.copytree(honest["launch"].job_dir.parent, copy)
    (job,) = copy.iterdir()
    _edit_json(job, name, change)
    expected = expected_for(honest["profile"], ARGS, True, None, honest["root"], "validation")
    with pytest.raises(BudgetError, match="^budget: ") as refused:
        verify_export(copy, expected, honest["root"])
    assert reason in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_honest_copy_passes_and_bundled_files_must_be_the_worktrees(honest, tmp_path):
    copy = tmp_path / "export"
    shutil.copytree(honest["launch"].job_dir.parent, copy)
    expected = expected_for(honest["profile"], ARGS, True, None, honest["root"], "validation")
    (job,) = copy.iterdir()
    assert verify_export(copy, expected, honest["root"]) == job
    bundled = next((job / "app" / "custom").rglob("model.py"))
    bundled.write_text(bundled.read_text() + "\n# patched after export\n")
    with pytest.raises(BudgetError, match="which is not the worktree's file"):
        verify_export(copy, expected, honest["root"])
    bundled.unlink()
    (job / "app" / "custom" / "sitecustomize.py").write_text("import os\n")
    with pytest.raises(BudgetError, match="sitecustomize.py"):
        verify_export(copy, expected, honest["root"])


def test_an_empty_export_is_refused(honest, tmp_path):
    expected = expected_for(honest["profile"], {}, True, None, honest["root"])
    with pytest.raises(BudgetError, match="exported no job"):
        verify_export(tmp_path, expected, honest["root"])


WRITE_OUTSIDE = """    try:
        Path(args.result_json).write_text("written by the export step")
    except OSError:
        pass
"""


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_the_export_step_writes_only_its_export_folder_in_the_sandbox(honest, sandbox, tmp_path):
    """Only the sandbox stops it: without bubblewrap the export step can write its run directory."""
    if sandbox == "bwrap" and detect_sandbox() != "bwrap":
        pytest.skip("bubblewrap is not usable here")
    root, profile = honest["root"], honest["profile"]
    job = root / "tasks/fed_heart_disease/job.py"
    original = job.read_text()
    line = "    jobs.run(recipe, args, args.n_clients)\n"
    job.write_text(original.replace(line, WRITE_OUTSIDE + line))
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        spec = job_spec(root, run_dir, None, profile.surface.protected, {})
        launch_module.export_job(root, profile, {}, run_dir, spec, sandbox, smoke=True)
    finally:
        job.write_text(original)
    assert (run_dir / "export").is_dir()
    assert (run_dir / "job_result.json").exists() == (sandbox == "none")


@pytest.mark.parametrize("task", ["leaf_synthetic", "fed_tcga_brca"])
def test_the_other_bundled_jobs_export_what_the_engine_computes(honest, task, tmp_path):
    """Each bundled job passes its clients exactly the engine's flags (CIFAR-10 needs its data to build)."""
    root = honest["root"]
    profile = load_profile(root, task)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = job_spec(root, run_dir, None, profile.surface.protected, {})
    launch = prepare_launch(root, profile, {}, run_dir, spec, detect_sandbox(), smoke=True, seed=7)
    sites = ",".join(f"site-{i}" for i in range(1, profile.budget.n_clients + 1))
    assert launch.command[-6:-4] == ["-c", sites]


def test_a_job_py_that_fails_to_export_is_refused_with_its_error(honest, tmp_path):
    root, profile = honest["root"], honest["profile"]
    job = root / "tasks/fed_heart_disease/job.py"
    original = job.read_text()
    job.write_text(
        original.replace(
            "    args = parse_args()\n",
            "    args = parse_args()\n    raise ValueError('no export today')\n",
            1,
        )
    )
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        spec = job_spec(root, run_dir, None, profile.surface.protected, {})
        with pytest.raises(
            launch_module.LaunchRefused, match=r"^export failed \(exit 1\): .*no export today"
        ):
            prepare_launch(root, profile, {}, run_dir, spec, detect_sandbox(), smoke=True)
    finally:
        job.write_text(original)
    assert "no export today" in (run_dir / "export.log").read_text()
