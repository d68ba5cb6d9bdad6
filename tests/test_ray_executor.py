"""``afr run --executor ray`` on a real two-node Ray cluster on this machine.

One cluster for the module: a head node and a second node with its own custom resource, so
where a run landed is observable. The campaigns are real (``afr`` subprocesses, NVFlare jobs
launched by afr from the verified export in the sandbox on the Ray workers, afr's step counter
there, afr's evaluator scoring what came back). The shared 4-candidate campaign's agent is a
stand-in command: two honest scalar candidates, then a red-team one (20x the declared local
steps) that must be a budget crash exactly as on the local executor.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from itertools import combinations
from pathlib import Path

import psutil
import pytest
from afr_cli import afr

from afr_tui.model import CockpitModel, placement_text
from afr_tui.widgets.detail import describe
from engine.control.events import Event, EventType
from engine.run.executors import PLACED, ExecutorError, build_executor
from engine.run.launch import Launch
from engine.run.ray_executor import tar_bytes, untar_bytes
from engine.run.remote_launch import counts_from, land_launch, ship_launch
from engine.run.stepcount import SITE_DIR, StepCounts, StepLog
from engine.store.ledger import Ledger

try:
    import ray
except ImportError:  # the test setup installs afr[ray]; only a bare install lacks it
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="Ray is not installed (pip install 'afr[ray]')")

TAG = "heart-ray-20261125"
TOKEN_VAR = "AFR_RUN_TOKEN"
RAY_TASK_TITLE = "ray::afr-run"  # a Ray worker's process title while it runs an afr task
LOCAL_TRAIN = "            model, global_model, data, args.local_steps, optimizer, loss_fn, args.fedprox_mu, scaffold\n"
CHEAT = "20x local steps, report the declared count"
HONEST_STEPS = {"steps": {f"site-{i}": {"0": 10} for i in range(1, 5)}, "tampered": []}  # smoke: 1 round of 10
# The stand-in coding agent (--agent-cmd): c004 trains 20x the declared local steps, the others change lr.
STAND_IN = f"""
import json, os, pathlib

cid = os.environ["AFR_CANDIDATE"]
lr = 0.01 if cid == "c002" else 0.003
answer = {{"description": f"Adam lr {{lr}}", "target": "scalar", "args": {{"lr": lr}}}}
if cid == "c004":
    client = pathlib.Path("tasks/fed_heart_disease/client.py")
    text = client.read_text()
    assert {LOCAL_TRAIN!r} in text
    client.write_text(text.replace({LOCAL_TRAIN!r}, {LOCAL_TRAIN.replace("args.local_steps,", "args.local_steps * 20,")!r}))
    answer = {{"description": {CHEAT!r}, "target": "code", "args": {{}}}}
pathlib.Path(os.environ["AFR_ARGS_FILE"]).write_text(json.dumps(answer))
"""


def smoke_run(address: str, candidates: int, *extra: str) -> list[str]:
    return [
        "run",
        "--profile",
        "fed_heart_disease",
        "--headless",
        "--smoke",
        "--no-confirm",
        "--max-candidates",
        str(candidates),
        "--tag",
        TAG,
        "--executor",
        "ray",
        "--ray-address",
        address,
        *extra,
    ]


def journal(workspace: Path) -> list[Event]:
    path = workspace / ".afr" / "campaigns" / TAG / "journal.jsonl"
    if not path.exists():
        return []
    return [Event.from_json(line) for line in path.read_text().split("\n")[:-1] if line.strip()]


def records(workspace: Path) -> list[dict]:
    path = workspace / ".afr" / "campaigns" / TAG / "candidates.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def job_processes() -> list[psutil.Process]:
    """Processes of any afr run started by a Ray task (the job runs in the task's scratch folder)."""
    found = []
    for process in psutil.process_iter():
        try:
            if TOKEN_VAR in process.environ() and "afr-ray-" in " ".join(process.cmdline()):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def ray_worker_of(process: psutil.Process) -> psutil.Process | None:
    """The Ray worker process executing the task that started ``process``."""
    try:
        for parent in process.parents():
            if " ".join(parent.cmdline()).startswith(RAY_TASK_TITLE):
                return parent
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return None


def busy_workers() -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if " ".join(process.info["cmdline"] or []).startswith(RAY_TASK_TITLE):
            found.append(process)
    return found


def wait_cluster_idle(timeout: float = 90.0) -> tuple[dict, dict]:
    """Poll until no task holds any of the cluster's CPUs; (available, total) as last seen."""
    deadline = time.time() + timeout
    while True:
        available, total = ray.available_resources(), ray.cluster_resources()
        if available.get("CPU", 0) >= total.get("CPU", 0) or time.time() > deadline:
            return available, total
        time.sleep(1)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"afr_head": 1}, "include_dashboard": False},
    )
    second = cluster.add_node(num_cpus=1, resources={"afr_node_b": 1})
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)  # the test's own view of the cluster
    yield cluster, second
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def node_ids(cluster) -> dict[str, str]:
    """Node id -> the custom resource that names it."""
    named = {}
    for node in ray.nodes():
        if node["Alive"]:
            named[node["NodeID"]] = next(r for r in node["Resources"] if r.startswith("afr_"))
    return named


def record_node(record: dict) -> str:
    return placement_text(record["placement"])


def new_workspace(base: Path) -> Path:
    done = afr("init", str(base / "ws"), cwd=base)
    assert done.returncode == 0, done.stderr
    return base / "ws"


@pytest.fixture(scope="module")
def campaign(cluster, tmp_path_factory):
    """A 4-candidate Heart smoke campaign on the cluster, two runs at a time, proposed by the stand-in
    agent (c004 cheats); one worker is killed (SIGKILL) a few seconds into the first job it runs."""
    base = tmp_path_factory.mktemp("ray-campaign")
    workspace = new_workspace(base)
    agent = base / "stand_in.py"
    agent.write_text(STAND_IN)
    stop, killed = threading.Event(), []

    def kill_one_worker() -> None:
        while not stop.is_set():
            for process in job_processes():
                try:
                    worker = ray_worker_of(process)
                    if worker is not None and time.time() - process.create_time() > 3:
                        token = process.environ()[TOKEN_VAR]
                        worker.send_signal(signal.SIGKILL)
                        killed.append((token, worker.pid))
                        return
                except (psutil.Error, KeyError):  # a process of the run ended meanwhile
                    continue
            stop.wait(0.5)

    killer = threading.Thread(target=kill_one_worker, daemon=True)
    killer.start()
    started = time.monotonic()
    agent_cmd = f"{sys.executable} {agent}"
    done = afr(*smoke_run(cluster[0].address, 4, "--parallel", "2", "--agent-cmd", agent_cmd), cwd=workspace)
    stop.set()
    killer.join(timeout=5)
    return workspace, done, killed, time.monotonic() - started


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_every_candidate_is_ledgered_once_with_its_placement(campaign, node_ids):
    workspace, done, _, _ = campaign
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = Ledger(workspace / ".afr/campaigns" / TAG).rows()
    assert sorted(r.artifacts for r in rows) == [f"runs/c00{i}" for i in range(1, 5)]  # two slots: any order
    honest = [r for r in rows if r.artifacts != "runs/c004"]  # c004 is the red-team candidate
    assert all(r.status in ("keep", "discard") and 0 < r.score <= 1 for r in honest), rows
    final = Ledger(workspace / ".afr/campaigns" / TAG).latest_candidates()
    assert sorted(final) == ["c001", "c002", "c003", "c004"]
    for record in final.values():
        placement = record["placement"]
        assert placement["executor"] == "ray" and placement["node_id"] in node_ids, placement
        assert placement["sandbox"] == record["sandbox"]
    for record in (final[cid] for cid in ("c001", "c002", "c003")):
        assert record["evaluator"]["score"] == record["score"]  # afr's evaluator scored what came back
    # The recorded node is the one Ray reports, address included (which node depends on timing:
    # two slots, one CPU per node, but runs overlap only when proposals keep up).
    addresses = {node["NodeID"]: node["NodeManagerAddress"] for node in ray.nodes()}
    assert all(r["placement"]["node_ip"] == addresses[r["placement"]["node_id"]] for r in final.values())
    # The run directory came back: the job's log and the server's final model are local.
    for cid in ("c001", "c002", "c003"):
        run_dir = workspace / ".afr/campaigns" / TAG / "runs" / cid
        assert "afr: score:" in (run_dir / "job.log").read_text()
        assert len(list(run_dir.glob("nvflare/*/server/*/cross_site_val/model_shareables/SRV_FL_global_model.pt"))) == 1
        assert len(list(run_dir.glob("nvflare/*/server/*/cross_site_val/cross_val_results.json"))) == 1
    # Where each one runs reached the journal, and the cockpit's fold shows it.
    placed = [e for e in journal(workspace) if e.type is EventType.CANDIDATE_LOG and e.data["line"].startswith(PLACED)]
    assert {e.data["id"] for e in placed} == set(final)
    model = CockpitModel()
    model.replay(journal(workspace))
    for cid, record in final.items():
        shown = model.candidates[cid].node
        assert shown.startswith(f"{record['placement']['node_ip']} {record['placement']['node_id'][:12]} gpu -")
    text = "".join(str(part) for part in describe(model.candidates["c001"], model, final["c001"]).renderables)
    assert f"runs on: Ray node {record_node(final['c001'])}" in text


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_a_killed_worker_gives_one_retry_and_a_correct_row(campaign):
    workspace, done, killed, _ = campaign
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert len(killed) == 1, "the test never found a Ray worker running a job"
    final = Ledger(workspace / ".afr/campaigns" / TAG).latest_candidates()
    retried = [r for r in final.values() if r["placement"].get("attempts") == 2]
    assert len(retried) == 1, [r["placement"] for r in final.values()]
    record = retried[0]
    assert record["status"] in ("keep", "discard") and record["run_status"] == "ok"
    assert "WorkerCrashedError" in record["placement"]["lost"][0]
    log_lines = [e.data["line"] for e in journal(workspace) if e.type is EventType.CANDIDATE_LOG]
    assert any("running it once more" in line for line in log_lines)
    # The killed worker took its sandboxed job with it: nothing of that run is left.
    token = killed[0][0]
    assert not [p for p in job_processes() if p.environ().get(TOKEN_VAR) == token]


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_kill_9_of_the_engine_then_resume_leaves_no_task_on_the_cluster(cluster, tmp_path):
    workspace = new_workspace(tmp_path)
    engine = subprocess.Popen(
        [sys.executable, "-m", "afr.cli", *smoke_run(cluster[0].address, 3)],
        cwd=workspace,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    deadline = time.time() + 400
    while time.time() < deadline:
        placed = [
            e.data["id"]
            for e in journal(workspace)
            if e.type is EventType.CANDIDATE_LOG and e.data["line"].startswith(PLACED)
        ]
        if "c002" in placed and job_processes():
            break
        time.sleep(0.5)
    else:
        engine.kill()
        pytest.fail("c002 never started on the cluster")
    time.sleep(3)
    os.kill(engine.pid, signal.SIGKILL)
    engine.wait(timeout=10)

    done = afr("resume", TAG, "--headless", cwd=workspace)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = Ledger(workspace / ".afr/campaigns" / TAG).rows()
    assert len(rows) == 3 and [r.artifacts for r in rows[:2]] == ["runs/c001", "runs/c002"]
    assert rows[1].status == "crash" and rows[1].description.endswith("(interrupted)")
    assert rows[2].status in ("keep", "discard") and rows[2].score > 0
    final = Ledger(workspace / ".afr/campaigns" / TAG).latest_candidates()
    assert final["c002"]["error"] == "interrupted"
    assert final[rows[2].artifacts.removeprefix("runs/")]["placement"]["executor"] == "ray"
    # A candidate held ahead for a slot when the engine died never ran: recorded as such, not ledgered.
    assert all(r["error"].startswith("not run") for r in final.values() if r["status"] == "rejected")
    # Nothing of any run is left: no job process, no busy worker, every CPU of the cluster free.
    available, total = wait_cluster_idle()
    assert available.get("CPU") == total.get("CPU"), (available, total)
    assert job_processes() == [] and busy_workers() == []


def test_without_ray_the_executor_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an afr without the extra sees
    with pytest.raises(ExecutorError, match=r"pip install 'afr\[ray\]'"):
        build_executor("ray", "127.0.0.1:1")


@pytest.mark.ray
@needs_ray
def test_no_cluster_at_the_address_is_a_one_line_error(tmp_path):
    workspace = new_workspace(tmp_path)
    done = afr(*smoke_run("127.0.0.1:1", 1), cwd=workspace, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("afr: error: no Ray cluster to connect to at 127.0.0.1:1")
    assert "ray start --head" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (workspace / ".afr" / "campaigns" / TAG / "candidates.jsonl").exists()


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_ray_runs_carry_the_trust_fields_of_a_local_run(campaign):
    """afr exported and verified on the engine, launched the verified folder on the worker, and
    counted the optimiser steps there: the record holds what a local run's holds."""
    workspace, done, _, _ = campaign
    final = Ledger(workspace / ".afr/campaigns" / TAG).latest_candidates()
    for cid in ("c001", "c002", "c003"):
        record, run_dir = final[cid], workspace / ".afr/campaigns" / TAG / "runs" / cid
        assert record["evaluator"]["steps"] == HONEST_STEPS, (cid, record["evaluator"]["steps"])
        assert record["evaluator"]["export_seconds"] > 0 and record["evaluator"]["verify_seconds"] >= 0
        assert record["placement"]["launched_by"] == "afr"
        first_line = (run_dir / "job.log").read_text().splitlines()[0]
        assert "nvflare.private.fed.app.simulator.simulator" in first_line and "job.py" not in first_line
        assert "--export_dir" in (run_dir / "export.log").read_text().splitlines()[0]
        # launched from the worker's copy of the verified folder, not from the engine's run directory
        assert str(run_dir) not in first_line and "afr-ray-" in first_line


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_twenty_times_the_declared_steps_on_a_worker_is_a_budget_crash(campaign):
    workspace, _, _, _ = campaign
    cheat = Ledger(workspace / ".afr/campaigns" / TAG).latest_candidates()["c004"]
    assert cheat["description"] == CHEAT
    assert cheat["status"] == "crash", cheat
    assert cheat["error"] == "budget: site-1 took 200 optimiser steps in round 0, declared 10", cheat["error"]
    assert cheat["evaluator"]["steps"]["steps"]["site-4"] == {"0": 200}
    assert cheat["placement"]["executor"] == "ray" and cheat["placement"]["launched_by"] == "afr"
    row = next(r for r in Ledger(workspace / ".afr/campaigns" / TAG).rows() if r.artifacts == "runs/c004")
    assert row.status == "crash"


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_runs_that_overlapped_ran_on_different_nodes(campaign, node_ids):
    """Each node has one CPU and each run asks for one: two runs whose tasks held their CPUs at the
    same time must have been on the two nodes. Intervals are the workers' own clocks (one machine)."""
    workspace, _, _, _ = campaign
    final = Ledger(workspace / ".afr/campaigns" / TAG).latest_candidates()
    spans = {cid: (r["placement"]["node_id"], r["placement"]["started"], r["placement"]["finished"]) for cid, r in final.items()}
    assert all(start < end for _, start, end in spans.values()), spans
    overlapping = [(a, b) for a, b in combinations(sorted(spans), 2) if spans[a][1] < spans[b][2] and spans[b][1] < spans[a][2]]
    assert overlapping, f"no two runs overlapped: {spans}"
    assert all(spans[a][0] != spans[b][0] for a, b in overlapping), (overlapping, spans)
    assert {node for node, _, _ in spans.values()} == set(node_ids)  # the campaign used both nodes


@pytest.mark.nvflare
@pytest.mark.ray
@needs_ray
def test_ctrl_c_twice_aborts_the_remote_run_and_frees_the_cluster(cluster, tmp_path):
    """Through the real CLI: the first Ctrl-C asks for a stop, the second aborts the running
    candidate: the engine exits, the candidate is recorded aborted, nothing is left on the cluster."""
    workspace = new_workspace(tmp_path)
    console = tmp_path / "console.txt"  # a file, not a pipe: the engine never blocks on its output
    engine = subprocess.Popen(
        [sys.executable, "-m", "afr.cli", *smoke_run(cluster[0].address, 2)],
        cwd=workspace,
        stdout=console.open("w"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # A shell that starts jobs in the background (CI's) ignores SIGINT for them; a terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        placed = [e for e in journal(workspace) if e.type is EventType.CANDIDATE_LOG and e.data["line"].startswith(PLACED)]
        if placed and job_processes():
            break
        time.sleep(0.5)
    else:
        engine.kill()
        pytest.fail("no candidate started on the cluster")
    engine.send_signal(signal.SIGINT)  # stop after the running candidate...
    time.sleep(2)
    assert engine.poll() is None  # ...which goes on running
    engine.send_signal(signal.SIGINT)  # ...then abort it
    engine.wait(timeout=120)
    output = console.read_text()
    assert engine.returncode == 130, output[-3000:]
    assert "afr: aborted" in output
    final = Ledger(workspace / ".afr" / "campaigns" / TAG).latest_candidates()
    aborted = final[placed[0].data["id"]]
    assert aborted["status"] == "aborted" and "aborted by the human" in aborted["error"], aborted
    assert not [r for r in final.values() if r["status"] == "crash"]
    available, total = wait_cluster_idle()
    assert available.get("CPU") == total.get("CPU"), (available, total)
    assert job_processes() == [] and busy_workers() == []


def test_the_verified_export_lands_on_a_worker_with_its_paths_and_the_step_counter(tmp_path):
    """What travels is the verified folder; on the worker only the engine's worktree prefix changes."""
    engine_root, worker_code = tmp_path / "engine" / "wt", tmp_path / "worker" / "code"
    job_dir = tmp_path / "engine" / "run" / "export" / "heart"
    (job_dir / "app" / "config").mkdir(parents=True)
    script = f"{engine_root.resolve()}/tasks/fed_heart_disease/client.py"
    args = {"task_script_path": script, "task_script_args": f"--lr 0.1 --data_root {engine_root.resolve()}2/x"}
    config = {"executors": [{"executor": {"args": args}}]}
    (job_dir / "app" / "config" / "config_fed_client.json").write_text(json.dumps(config))
    (job_dir / "meta.json").write_text(json.dumps({"name": "heart"}))
    launch = Launch(job_dir, tmp_path / "engine/run/nvflare/heart", [], {"PYTHONPATH": "/engine", "OMP_NUM_THREADS": "1"}, n_clients=4)
    shipped = ship_launch(launch, engine_root, tar_bytes)
    assert shipped.env == {"OMP_NUM_THREADS": "1"} and shipped.engine_root == str(engine_root.resolve())
    steps = StepLog(tmp_path / "steps")
    try:
        landed = land_launch(shipped, tmp_path / "worker" / "job", worker_code, tmp_path / "worker" / "run", steps, untar_bytes)
    finally:
        steps.close()
    exported = json.loads((landed.job_dir / "app/config/config_fed_client.json").read_text())
    args = exported["executors"][0]["executor"]["args"]
    assert args == {  # the worktree's path changed; a longer path that only starts like it did not
        "task_script_path": f"{worker_code.resolve()}/tasks/fed_heart_disease/client.py",
        "task_script_args": f"--lr 0.1 --data_root {engine_root.resolve()}2/x",
    }
    assert json.loads((landed.job_dir / "meta.json").read_text()) == {"name": "heart"}
    assert landed.command[-6:] == ["-c", "site-1,site-2,site-3,site-4", "-n", "4", "-t", "4"]
    assert landed.command[4:7] == [str(landed.job_dir), "-w", str(tmp_path / "worker/run/nvflare/heart")]
    assert landed.env == {"OMP_NUM_THREADS": "1", "PYTHONPATH": f"{SITE_DIR}{os.pathsep}{worker_code.resolve()}"}


def test_a_workers_step_counts_add_to_the_engines_step_log(tmp_path):
    log = StepLog(tmp_path)
    fifo = os.open(log.path, os.O_WRONLY)
    os.write(fifo, b"S 7 - - 3\n")  # job.py on the engine, during the export
    os.close(fifo)
    worker = StepCounts({"site-1": {"0": 10}, "site-2": {"0": 200}}, ["site-2: hook-removed"])
    log.add(counts_from(worker.to_dict()))
    counts = log.close()
    assert counts.steps == {"-": {"-": 3}, "site-1": {"0": 10}, "site-2": {"0": 200}}
    assert counts.tampered == ["site-2: hook-removed"] and counts_from(None) is None
