"""Running a task's recipe on an NVFlare environment and reporting its score.

Shared by every task's ``job.py`` so that all tasks run, find their results and print
their score the same way. ``--env sim`` (default) uses ``SimEnv``; ``--env poc`` starts
real NVFlare server and client processes on localhost with ``PocEnv`` and copies the
result out before NVFlare removes its POC workspace; ``--env prod --startup_kit DIR``
submits the portable job to an existing deployment through its admin startup kit (the admin API
that NVFlare's ``ProdEnv`` wraps) and downloads its result. ``--export_dir DIR`` only exports the
job (NVFlare's ``recipe.export``): afr verifies that export and runs it itself with the simulator
(``engine/run/launch.py``) or submits it to the deployment (``engine/run/prod.py``), so candidate
code never decides the budget at run time and never holds the admin kit.

What is scored travels in the job's configuration, never in the submitter's environment
(a remote site never sees it): ``--eval_subset``/``--heldout_fraction``/``--heldout_seed``
become the client component ``tasks.shared.holdout.JobEvaluationSubset`` and
``--final_eval_clients`` the final evaluation's participating clients.

The metric: each task's ``job.py`` declares the metric its clients report
(``TaskMetric``: a name and whether higher or lower is better); ``--metric`` and
``--metric_direction`` pick another one the clients also report. The name and direction
reach NVFlare (``key_metric``, ``key_metric_mode``), the score and the result JSON.

NVFlare's defaults suit sites on different machines polling a remote server. A research run
has every site on one machine, so ``--lean`` (the default) sets NVFlare's own knobs for that
case; ``--no-lean`` keeps NVFlare's defaults. Both compute the same model bit for bit: the
knobs change only how long processes wait for each other and how many threads torch uses.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tasks.shared.aggregators import AGGREGATOR_CHOICES, build_aggregator
from tasks.shared.holdout import COMPONENT_ID, SUBSETS, JobEvaluationSubset
from tasks.shared.scoring import final_score
from tasks.shared.site_runtime import POLL_VAR

TASKS_ROOT = Path(__file__).resolve().parents[2]
DIRECTIONS = ("maximize", "minimize")


@dataclass(frozen=True)
class TaskMetric:
    """The metric a task's clients report in their evaluate branch, and which way is better."""

    name: str
    direction: Literal["maximize", "minimize"] = "maximize"


ACCURACY = TaskMetric("accuracy", "maximize")


@dataclass(frozen=True)
class NVFlareKnobs:
    """How NVFlare schedules a job; none of these changes what the job computes."""

    # Server config ``server.task_request_interval`` (config_fed_server.json): after every
    # task, the server tells the client to wait this long before asking for the next one.
    task_request_interval: float
    # ``task_check_period`` of the FedAvg and CrossSiteModelEval controllers: how often a
    # controller looks whether its tasks are done.
    task_check_period: float
    # torch intra-op threads in every NVFlare process (OMP_NUM_THREADS, inherited by the
    # simulator's server and site processes); 0 leaves torch's default (one per core).
    threads_per_site: int
    # Final global evaluation scores only FL_global_model.pt (what afr reads), not also
    # the "best" model NVFlare's model selector saved.
    final_model_only: bool
    # How often a site's in-process Client API looks for the trainer's result and for the
    # next task: NVFlare 2.9 fixes it at 0.5 s with no setting (in_process_backend.py
    # _RESULT_POLL_INTERVAL); each site process applies this value to itself through
    # tasks/shared/site_runtime.py (the task's client.py calls it after flare.init()).
    client_poll_interval: float


# NVFlare 2.9's own defaults: what an untuned job runs with (``--no-lean``).
STOCK = NVFlareKnobs(
    task_request_interval=2.0,
    task_check_period=0.5,
    threads_per_site=0,
    final_model_only=False,
    client_poll_interval=0.5,
)
# One machine: sites answer within milliseconds, and several site processes share few cores,
# where more than one OpenMP thread each only spin-waits on tiny models.
LEAN = NVFlareKnobs(
    task_request_interval=0.1,
    task_check_period=0.02,
    threads_per_site=1,
    final_model_only=True,
    client_poll_interval=0.02,
)


def add_common_args(
    parser: argparse.ArgumentParser, metric: TaskMetric = ACCURACY, aggregator: str = "weighted"
) -> None:
    """Arguments every task's job takes: environment, output, metric, aggregation."""
    parser.add_argument("--env", choices=["sim", "poc", "prod"], default="sim", help="NVFlare environment")
    parser.add_argument("--startup_kit", default=None, help="prod: the admin's startup kit folder")
    parser.add_argument("--username", default="admin@nvidia.com", help="prod: the admin user of the startup kit")
    parser.add_argument("--eval_subset", choices=SUBSETS, default="full", help="what the final evaluation scores")
    parser.add_argument("--heldout_fraction", type=float, default=0.0, help="the profile's [heldout] fraction")
    parser.add_argument("--heldout_seed", type=int, default=0, help="the profile's [heldout] seed")
    parser.add_argument("--workspace", default=None, help="NVFlare workspace root (default: a temp dir)")
    parser.add_argument("--result_json", default=None, help="write the score and result directory here")
    parser.add_argument(
        "--export_dir", default=None, help="export the NVFlare job here instead of running it (afr runs it)"
    )
    parser.add_argument("--name", default=None, help="NVFlare job name")
    parser.add_argument("--final_eval_clients", default="all", help="comma-separated site names, or all")
    parser.add_argument("--metric", default=metric.name, help="the reported metric the score averages")
    parser.add_argument("--metric_direction", choices=DIRECTIONS, default=metric.direction)
    parser.add_argument("--aggregator", choices=AGGREGATOR_CHOICES, default=aggregator)
    parser.add_argument("--server_lr", type=float, default=1.0)
    parser.add_argument("--server_momentum", type=float, default=0.9)
    parser.add_argument("--fedadam_beta1", type=float, default=0.9)
    parser.add_argument("--fedadam_beta2", type=float, default=0.99)
    parser.add_argument("--fedadam_tau", type=float, default=1e-3)
    add_knob_args(parser)


def add_knob_args(parser: argparse.ArgumentParser) -> None:
    """NVFlare's scheduling knobs; each defaults to the ``--lean`` or ``--no-lean`` value."""
    knobs = parser.add_argument_group("NVFlare knobs (defaults: LEAN, or STOCK with --no-lean)")
    knobs.add_argument(
        "--lean",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="single-machine settings (default); --no-lean keeps NVFlare's defaults",
    )
    knobs.add_argument("--task_request_interval", type=float, default=None, help="seconds, > 0")
    knobs.add_argument("--task_check_period", type=float, default=None, help="seconds, > 0")
    knobs.add_argument(
        "--threads_per_site", type=int, default=None, help="torch threads per process; 0: default"
    )
    knobs.add_argument(
        "--final_model_only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="evaluate only the final global model at the end",
    )
    knobs.add_argument("--client_poll_interval", type=float, default=None, help="seconds, > 0")


def knobs_from_args(args: argparse.Namespace) -> NVFlareKnobs:
    """The lean or stock knobs, with any knob given on the command line replacing its default."""
    base = LEAN if args.lean else STOCK
    chosen = {
        name: getattr(base, name) if getattr(args, name) is None else getattr(args, name)
        for name in NVFlareKnobs.__dataclass_fields__
    }
    knobs = NVFlareKnobs(**chosen)
    if min(knobs.task_request_interval, knobs.task_check_period, knobs.client_poll_interval) <= 0:
        raise SystemExit(
            "error: --task_request_interval, --task_check_period and --client_poll_interval must be > 0"
        )
    if knobs.threads_per_site < 0:
        raise SystemExit("error: --threads_per_site must be >= 0")
    return knobs


def model_locator(args: argparse.Namespace):
    """The ``model_locator`` for ``FedAvgRecipe``: final model only when the knob says so, else NVFlare's."""
    if not knobs_from_args(args).final_model_only:
        return None
    from tasks.shared.final_model import FinalModelLocator

    return FinalModelLocator()


def apply_knobs(recipe, knobs: NVFlareKnobs) -> None:
    """Set the knobs on ``recipe`` (after ``add_final_global_evaluation``) and on this process's environment."""
    recipe.add_server_config({"server": {"task_request_interval": knobs.task_request_interval}})
    # The Recipe API exposes no task_check_period: set it on the server's controllers
    # (FedAvg, CrossSiteModelEval) before the job config is written, where NVFlare reads
    # the constructor argument back from the controller's ``_task_check_period``.
    controllers = [flow.controller for flow in recipe._job._deploy_map["server"].app_config.workflows]
    if not controllers or not all(hasattr(c, "_task_check_period") for c in controllers):
        raise RuntimeError("NVFlare's server workflows changed shape: cannot set task_check_period")
    for controller in controllers:
        controller._task_check_period = float(knobs.task_check_period)
    # Inherited by the site processes; at NVFlare's own value nothing is patched.
    if knobs.client_poll_interval == STOCK.client_poll_interval:
        os.environ.pop(POLL_VAR, None)
    else:
        os.environ[POLL_VAR] = repr(knobs.client_poll_interval)
    if knobs.threads_per_site:
        import torch

        threads = str(knobs.threads_per_site)
        os.environ["OMP_NUM_THREADS"] = threads  # read by torch in each process NVFlare starts
        os.environ["MKL_NUM_THREADS"] = threads
        torch.set_num_threads(knobs.threads_per_site)


def aggregator_from_args(args: argparse.Namespace):
    return build_aggregator(
        args.aggregator,
        server_lr=args.server_lr,
        server_momentum=args.server_momentum,
        beta1=args.fedadam_beta1,
        beta2=args.fedadam_beta2,
        tau=args.fedadam_tau,
    )


def key_metric_mode(args: argparse.Namespace) -> Literal["max", "min"]:
    """NVFlare's name for the direction (its best-model selector; never used for scoring)."""
    return "max" if args.metric_direction == "maximize" else "min"


def train_args_string(values: dict) -> str:
    """``--key value`` pairs for the client script; booleans become bare flags when true."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            if value:
                parts.append(f"--{key}")
        else:
            parts.append(f"--{key} {value}")
    return " ".join(parts)


def eval_clients(spec: str, num_clients: int) -> list[str] | None:
    if spec.strip().lower() == "all":
        return None
    clients = [item.strip() for item in spec.split(",") if item.strip()]
    known = {f"site-{i}" for i in range(1, num_clients + 1)}
    unknown = [c for c in clients if c not in known]
    if unknown or not clients:
        raise SystemExit(f"error: --final_eval_clients names unknown clients {unknown or spec!r}")
    return clients


def make_importable() -> None:
    """NVFlare starts client and server processes of its own: they must import ``tasks``."""
    root = str(TASKS_ROOT)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])
    if root not in sys.path:
        sys.path.insert(0, root)


def make_portable(job_folder: Path) -> None:
    """Make an exported job run at sites that share nothing with this machine.

    NVFlare writes the client script's absolute local path, which a remote site lacks: it
    becomes the script's path inside the app's ``custom`` folder, where NVFlare copied it.
    NVFlare copies modules without their packages' ``__init__.py``: a site's installed
    package of the same name (an afr installed there) would then shadow the job's code,
    since a regular package wins over a namespace one wherever it is on ``sys.path``.
    """
    for custom in job_folder.glob("*/custom"):
        for module in custom.rglob("*.py"):
            for package in module.relative_to(custom).parents:
                init = custom / package / "__init__.py"
                source = TASKS_ROOT / package / "__init__.py"
                if package != Path(".") and not init.exists() and source.is_file():
                    shutil.copyfile(source, init)
    for config in job_folder.glob("*/config/config_fed_client.json"):
        data = json.loads(config.read_text())
        for entry in data.get("executors", []):
            executor_args = entry.get("executor", {}).get("args", {})
            script = executor_args.get("task_script_path")
            if script and Path(script).is_absolute():
                custom = config.parents[1] / "custom"
                inside = [p for p in (Path(Path(script).name), _relative(Path(script))) if p and (custom / p).is_file()]
                if not inside:
                    raise SystemExit(f"error: the client script {script} is not in the exported job")
                executor_args["task_script_path"] = inside[0].as_posix()
        config.write_text(json.dumps(data, indent=4) + "\n")


@contextlib.contextmanager
def _tasks_root_imports():
    """While NVFlare exports the job, import paths inside the tasks root are the root alone.

    NVFlare files the client script under the longest ``sys.path`` entry holding it; the
    job script's own folder (``sys.path[0]``) would make it a flat ``client.py`` whose
    ``tasks.*`` imports are then not shipped with the job.
    """
    saved = list(sys.path)
    root = str(TASKS_ROOT)
    sys.path[:] = [p for p in saved if p == root or _relative(Path(p or ".")) is None]
    try:
        yield
    finally:
        sys.path[:] = saved


def _relative(path: Path) -> Path | None:
    try:
        return path.resolve().relative_to(TASKS_ROOT)
    except ValueError:
        return None


def _run_prod(recipe, args: argparse.Namespace, workspace: Path) -> tuple[Path, str | None]:
    """Submit the portable job through the admin startup kit, wait, and download its result into ``workspace``.

    The admin API NVFlare's ``ProdEnv`` wraps, used directly: ``ProdEnv`` exports the job
    itself, so the folder could not be made portable (``make_portable``) before it is sent.
    """
    from nvflare.fuel.flare_api.flare_api import new_secure_session

    if not args.startup_kit:
        raise SystemExit("error: --env prod needs --startup_kit DIR (or --export_dir DIR)")
    export_dir = workspace / "prod_job"
    shutil.rmtree(export_dir, ignore_errors=True)
    with _tasks_root_imports():
        recipe.export(str(export_dir))
    make_portable(export_dir / recipe.name)
    session = new_secure_session(args.username, str(Path(args.startup_kit).resolve()))
    try:
        job_id = session.submit_job(str(export_dir / recipe.name))
        print(f"submitted job {job_id}")
        session.monitor_job(job_id)
        status = session.get_job_meta(job_id).get("status")
        downloaded = Path(session.download_job_result(job_id, destination=str(workspace / "prod_results")))
    finally:
        session.close()
    if not (downloaded / "workspace").is_dir():
        raise RuntimeError(f"prod job {job_id} ended without a result (status {status})")
    return downloaded / "workspace", status


def run(recipe, args: argparse.Namespace, num_clients: int) -> dict:
    """Execute ``recipe`` on the chosen environment, print and return its score summary."""
    from nvflare.recipe import PocEnv, SimEnv, add_final_global_evaluation

    make_importable()
    clients = eval_clients(args.final_eval_clients, num_clients)
    add_final_global_evaluation(recipe, participating_clients=clients)
    subset = JobEvaluationSubset(args.eval_subset, args.heldout_fraction, args.heldout_seed)
    recipe._add_to_client_apps(subset, id=COMPONENT_ID)  # the Recipe API has no public call for a component
    knobs = knobs_from_args(args)
    apply_knobs(recipe, knobs)
    print(f"NVFlare knobs: {knobs}")
    if args.export_dir:
        # afr verifies the exported configuration (rounds, clients, final evaluation, client args)
        # and launches it with NVFlare's simulator, or submits it to the deployment, itself:
        # nothing of job.py runs at run time.
        if args.env == "prod":
            with _tasks_root_imports():
                recipe.export(str(Path(args.export_dir).resolve()))
            job_folder = Path(args.export_dir).resolve() / recipe.name
            make_portable(job_folder)
            print(f"exported job {recipe.name} to {job_folder}")
            return {"exported": str(job_folder)}
        recipe.export(job_dir=str(Path(args.export_dir).resolve()))
        print(f"exported: {args.export_dir}")
        return {"exported": str(args.export_dir)}
    workspace = Path(args.workspace or Path(os.environ.get("TMPDIR", "/tmp")) / "afr-nvflare").resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    started = time.time()
    if args.env == "sim":
        run_handle = recipe.execute(SimEnv(num_clients=num_clients, workspace_root=str(workspace)))
        result_dir = Path(run_handle.get_result())
        status = run_handle.get_status()
    elif args.env == "prod":
        result_dir, status = _run_prod(recipe, args, workspace)
    else:
        os.environ.setdefault("NVFLARE_POC_WORKSPACE", str(workspace / "poc"))
        env = PocEnv(num_clients=num_clients)
        run_handle = recipe.execute(env)
        poc_result = run_handle.get_result(clean_up=False)
        status = run_handle.get_status()
        result_dir = workspace / "poc_results" / run_handle.get_job_id()
        try:
            if poc_result is None:
                raise RuntimeError(f"POC job ended without a result (status {status})")
            shutil.copytree(poc_result, result_dir, dirs_exist_ok=True)
        finally:
            env.stop(clean_up=True)
    score, per_site = final_score(result_dir, args.metric, clients)
    summary = {
        "score": score,
        "metric": args.metric,
        "direction": args.metric_direction,
        "per_site": per_site,
        "result_dir": str(result_dir),
        "status": status,
        "env": args.env,
        "wall_seconds": round(time.time() - started, 3),
    }
    if args.result_json:
        out = Path(args.result_json)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        os.replace(tmp, out)
    print(f"Results: {result_dir}")
    print(f"score: {score:.6f}")
    return summary
