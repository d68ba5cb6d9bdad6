"""Verifying a candidate's exported NVFlare job against the budget afr owns (issue 12).

A candidate's ``job.py`` is editable: it builds the recipe, so it could ask for more rounds,
other clients, other client arguments or no final evaluation. On the trusted path it only
*exports* the job (``tasks/shared/jobs.py --export_dir``); this module reads that export as
plain JSON (nothing of the worktree is imported) and refuses, with one line, anything that
departs from what the engine computed from the profile and the candidate's declared args:

- ``meta.json``: one app deployed to every site, ``min_clients`` = the profile's clients;
- the server: exactly NVFlare's ``FedAvg`` then ``CrossSiteModelEval``; FedAvg's
  ``num_rounds`` and ``num_clients`` fixed, no other FedAvg argument (``start_round``,
  ``stop_cond``...); an aggregator from ``tasks.shared.aggregators``; the final evaluation on
  the profile's clients, on the server's final model, with no client-model submission; the
  persistor's model from the task's ``model`` module with the run's seed and architecture;
  only known NVFlare widgets; no filters;
- the clients: one in-process Client API executor running the task's ``client.py`` with
  exactly the engine's client arguments; no other component, no filters;
- the app's ``custom/`` files: each a byte copy of the worktree file at the same path.

The launch (``engine/run/launch.py``) then runs this folder, read-only, with NVFlare's own
simulator; ``job.py`` never runs at run time.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.run.jobcommand import evaluation_environment

FEDAVG = "nvflare.app_common.workflows.fedavg.FedAvg"
CROSS_SITE_EVAL = "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval"
CLIENT_API_EXECUTOR = "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor"
PERSISTOR = "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor"
LOCATORS = (
    "tasks.shared.final_model.FinalModelLocator",
    "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator",
)
AGGREGATOR_MODULE = "tasks.shared.aggregators."
# Server widgets FedAvgRecipe and add_final_global_evaluation add; none changes what is trained or scored.
SERVER_WIDGETS = frozenset(
    {
        "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator",
        "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
        "nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter",
    }
)
SUBSET_COMPONENT_ID = "afr_evaluation_subset"  # tasks/shared/holdout.py COMPONENT_ID (a test keeps them equal)
SUBSET_COMPONENT_PATH = "tasks.shared.holdout.JobEvaluationSubset"
CLIENT_WIDGETS = frozenset({"nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent"})
FEDAVG_ARGS = frozenset(
    {"aggregator", "aggregation_weights", "num_clients", "num_rounds", "task_check_period"}
)
EVAL_ARGS = frozenset(
    {"task_check_period", "model_locator_id", "submit_model_task_name", "participating_clients"}
)
EXECUTOR_ARGS = frozenset(
    {"execution_mode", "task_script_path", "task_script_args", "params_exchange_format"}
)
SERVER_KEYS = frozenset(
    {"format_version", "workflows", "components", "task_data_filters", "task_result_filters", "server"}
)
CLIENT_KEYS = frozenset(
    {"format_version", "executors", "components", "task_data_filters", "task_result_filters"}
)
META_KEYS = frozenset({"name", "resource_spec", "min_clients", "deploy_map"})
SERVER_SETTINGS = frozenset({"task_request_interval"})  # scheduling only (tasks/shared/jobs.py NVFlareKnobs)
# Job flags that configure the server or the job, not the clients (tasks/shared/jobs.py add_common_args).
SERVER_FLAGS = frozenset(
    {
        "n_clients",
        "num_rounds",
        "final_eval_clients",
        "aggregator",
        "server_lr",
        "server_momentum",
        "fedadam_beta1",
        "fedadam_beta2",
        "fedadam_tau",
    }
)
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
MAX_CUSTOM_FILES = 200


class BudgetError(ValueError):
    """The export departs from the budget; the message is the candidate's one-line reason."""


@dataclass(frozen=True)
class Expected:
    """What the engine fixes for one run, from the profile and the candidate's declared args."""

    num_rounds: int
    n_clients: int
    eval_clients: tuple[str, ...]  # sorted
    seed: int
    model_arch: str | None
    client_args: dict[str, str | bool]  # name -> value as a string; True: a bare flag
    optional_client_args: dict[str, str]  # derived ones a job may pass or not, only with this value
    task_module: str  # "tasks.fed_heart_disease"
    client_script: str  # "tasks/fed_heart_disease/client.py"
    worktree: Path  # the job names the script by its path in the worktree, or relative to the custom folder
    subset_args: dict | None = None  # the JobEvaluationSubset component's exact arguments (what is scored)

    @property
    def sites(self) -> list[str]:
        return [f"site-{i}" for i in range(1, self.n_clients + 1)]


def flag_values(flags: list[str]) -> dict[str, str | bool]:
    """``--name value`` pairs and bare ``--name`` flags (True) of a command line, in order."""
    values: dict[str, str | bool] = {}
    index = 0
    while index < len(flags):
        token = flags[index]
        if not token.startswith("--") or len(token) == 2:
            raise BudgetError(f"budget: unexpected client argument {token!r}")
        name = token[2:]
        if name in values:
            raise BudgetError(f"budget: client argument --{name} given twice")
        following = flags[index + 1] if index + 1 < len(flags) else None
        if following is None or following.startswith("--"):
            values[name] = True
            index += 1
        else:
            values[name] = following
            index += 2
    return values


def expected_for(
    profile: Profile,
    args: Mapping[str, Scalar],
    smoke: bool,
    seed: int | None,
    worktree: Path,
    subset: str | None = None,
) -> Expected:
    """The engine's own view of the run: the flags it passes the job, split into server and client."""
    flags = flag_values(profile.job_flags(dict(args), smoke=smoke, seed=seed))
    n_clients = int(flags["n_clients"])
    eval_spec = flags.get("final_eval_clients", "all")
    eval_clients = (
        [f"site-{i}" for i in range(1, n_clients + 1)]
        if not isinstance(eval_spec, str) or eval_spec.strip().lower() == "all"
        else [c.strip() for c in eval_spec.split(",") if c.strip()]
    )
    client = {name: value for name, value in flags.items() if name not in SERVER_FLAGS}
    # Derived client arguments every bundled job passes (tasks/*/job.py client_args).
    client["scaffold"] = flags.get("aggregator") == "scaffold"
    if "data_root" in client and isinstance(client["data_root"], str):
        root = Path(client["data_root"]).expanduser()
        client["data_root"] = str(root if root.is_absolute() else Path(worktree).resolve() / root)
    task_dir = profile.task_dir.strip("/")
    return Expected(
        num_rounds=int(flags["num_rounds"]),
        n_clients=n_clients,
        eval_clients=tuple(sorted(eval_clients)),
        seed=int(flags.get("seed", 0)),
        model_arch=str(flags["model_arch"]) if "model_arch" in flags else None,
        client_args=client,
        optional_client_args={"num_clients": str(n_clients)},  # tasks that split one data set pass it
        task_module=task_dir.replace("/", "."),
        client_script=f"{task_dir}/client.py",
        worktree=Path(worktree).resolve(),
        subset_args=None if subset is None else expected_subset(profile, subset),
    )


def expected_subset(profile: Profile, subset: str) -> dict:
    """The ``JobEvaluationSubset`` arguments afr asks for (``evaluation_environment`` as typed values)."""
    values = evaluation_environment(profile, subset)
    if values["AFR_EVAL_SUBSET"] == "full":
        return {"subset": "full", "fraction": 0.0, "seed": 0}
    return {
        "subset": values["AFR_EVAL_SUBSET"],
        "fraction": float(values["AFR_HELDOUT_FRACTION"]),
        "seed": int(values["AFR_HELDOUT_SEED"]),
    }


def same_value(exported: str | bool, expected: str | bool) -> bool:
    """Equal as given, or as numbers (``4`` and ``4.0``); a bare flag only equals True."""
    if isinstance(exported, bool) or isinstance(expected, bool):
        return exported is expected
    if exported == expected:
        return True
    try:
        return float(exported) == float(expected)
    except ValueError:
        return False


def _load(path: Path) -> dict:
    if path.is_symlink() or not path.is_file():
        raise BudgetError(f"budget: the exported job has no {path.name}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BudgetError(f"budget: the exported {path.name} is not JSON ({error})") from None
    if not isinstance(data, dict):
        raise BudgetError(f"budget: the exported {path.name} is not a JSON object")
    return data


def _only(keys, allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(keys) - allowed)
    if extra:
        raise BudgetError(f"budget: {where} sets {', '.join(extra)}, which afr fixes or does not allow")


def _no_filters(config: dict, where: str) -> None:
    for name in ("task_data_filters", "task_result_filters"):
        if config.get(name):
            raise BudgetError(f"budget: the {where} config adds {name}")


def find_job(export_dir: Path) -> Path:
    """The one job folder NVFlare exported under ``export_dir``."""
    jobs = (
        [p for p in Path(export_dir).iterdir() if not p.name.startswith(".")] if export_dir.is_dir() else []
    )
    if len(jobs) != 1 or not jobs[0].is_dir() or jobs[0].is_symlink():
        raise BudgetError(
            "budget: job.py exported no job (export mode ignored?)"
            if not jobs
            else f"budget: job.py exported {len(jobs)} entries, expected one job folder"
        )
    if not JOB_NAME.match(jobs[0].name):
        raise BudgetError(f"budget: exported job name {jobs[0].name[:40]!r} is not a plain name")
    return jobs[0]


def check_meta(job: Path, expected: Expected) -> str:
    """The app's folder name; one app deployed to all sites, ``min_clients`` fixed."""
    meta = _load(job / "meta.json")
    _only(meta, META_KEYS, "meta.json")
    if meta.get("resource_spec") not in (None, {}):
        raise BudgetError("budget: meta.json sets a resource_spec")
    if meta.get("min_clients") != expected.n_clients:
        raise BudgetError(
            f"budget: job exports min_clients={meta.get('min_clients')}, the profile fixes {expected.n_clients}"
        )
    deploy = meta.get("deploy_map")
    if not isinstance(deploy, dict) or len(deploy) != 1:
        raise BudgetError("budget: the exported deploy map must send one app to every site")
    ((app, sites),) = deploy.items()
    if sites != ["@ALL"]:
        raise BudgetError(f"budget: job deploys its app to {sites}, afr runs it on every site (@ALL)")
    extra = sorted(set(p.name for p in job.iterdir()) - {"meta.json", app})
    if extra or not JOB_NAME.match(app):
        raise BudgetError(f"budget: the exported job holds {extra or app} besides its app and meta.json")
    return app


def check_server(config: dict, expected: Expected) -> None:
    _only(config, SERVER_KEYS, "the server config")
    _only(config.get("server") or {}, SERVER_SETTINGS, "the server section")
    _no_filters(config, "server")
    flows = config.get("workflows") or []
    paths = [flow.get("path") if isinstance(flow, dict) else None for flow in flows]
    if paths != [FEDAVG, CROSS_SITE_EVAL]:
        short = [str(p).rsplit(".", 1)[-1] for p in paths]
        raise BudgetError(
            f"budget: server workflows are {short}, expected FedAvg then the final global evaluation"
        )
    fedavg, evaluation = (flow.get("args") or {} for flow in flows)
    _only(fedavg, FEDAVG_ARGS, "FedAvg")
    if fedavg.get("num_rounds") != expected.num_rounds:
        raise BudgetError(
            f"budget: job exports num_rounds={fedavg.get('num_rounds')}, the profile fixes {expected.num_rounds}"
        )
    if fedavg.get("num_clients") != expected.n_clients:
        raise BudgetError(
            f"budget: job exports min_clients={fedavg.get('num_clients')}, the profile fixes {expected.n_clients}"
        )
    if fedavg.get("aggregation_weights") not in (None, {}):
        raise BudgetError("budget: job sets FedAvg aggregation_weights")
    aggregator = fedavg.get("aggregator")
    if aggregator is not None and not (
        isinstance(aggregator, dict) and str(aggregator.get("path", "")).startswith(AGGREGATOR_MODULE)
    ):
        raise BudgetError("budget: the FedAvg aggregator must come from tasks/shared/aggregators.py")
    _only(evaluation, EVAL_ARGS, "the final global evaluation")
    if evaluation.get("submit_model_task_name", "submit_model") != "":
        raise BudgetError(
            "budget: the final evaluation must score only the server's model (no client models)"
        )
    clients = evaluation.get("participating_clients")
    clients = expected.sites if clients is None else clients
    if not isinstance(clients, list) or tuple(sorted(map(str, clients))) != expected.eval_clients:
        raise BudgetError(
            f"budget: final evaluation on {clients}, the profile fixes {list(expected.eval_clients)}"
        )
    components = {c.get("id"): c for c in config.get("components") or [] if isinstance(c, dict)}
    if len(components) != len(config.get("components") or []):
        raise BudgetError("budget: server components must have distinct ids")
    locator = components.get(evaluation.get("model_locator_id"))
    if locator is None or locator.get("path") not in LOCATORS:
        raise BudgetError("budget: the final evaluation must use afr's final-model locator")
    _only(locator.get("args") or {}, frozenset({"pt_persistor_id"}), "the model locator")
    if (locator.get("args") or {}).get("pt_persistor_id", "persistor") != "persistor":
        raise BudgetError("budget: the final evaluation must load the server's persisted model")
    persistor = components.get("persistor")
    if persistor is None or persistor.get("path") != PERSISTOR:
        raise BudgetError("budget: the server must persist its model with NVFlare's PTFileModelPersistor")
    check_model(persistor.get("args") or {}, expected)
    for component in components.values():
        if component is locator or component is persistor:
            continue
        if component.get("path") not in SERVER_WIDGETS:
            raise BudgetError(f"budget: the server config adds component {str(component.get('path'))[:80]}")


def check_model(persistor_args: dict, expected: Expected) -> None:
    """The server's initial model: the task's registered model class, built from the run's seed."""
    _only(persistor_args, frozenset({"model"}), "the model persistor")
    model = persistor_args.get("model")
    if not isinstance(model, dict) or not str(model.get("path", "")).startswith(
        expected.task_module + ".model."
    ):
        raise BudgetError(f"budget: the server's model must come from {expected.task_module}.model")
    model_args = model.get("args") or {}
    if model_args.get("init_seed", 0) != expected.seed:
        raise BudgetError(
            f"budget: job exports init_seed={model_args.get('init_seed', 0)}, the run's seed is {expected.seed}"
        )
    if "arch" in model_args and expected.model_arch is not None and model_args["arch"] != expected.model_arch:
        raise BudgetError(
            f"budget: job exports model arch={model_args['arch']}, the candidate declares {expected.model_arch}"
        )


def check_client(config: dict, expected: Expected) -> None:
    _only(config, CLIENT_KEYS, "the client config")
    _no_filters(config, "client")
    executors = config.get("executors") or []
    if len(executors) != 1 or not isinstance(executors[0], dict) or executors[0].get("tasks") != ["*"]:
        raise BudgetError("budget: the clients must have exactly one executor for every task")
    executor = executors[0].get("executor") or {}
    if executor.get("path") != CLIENT_API_EXECUTOR:
        raise BudgetError("budget: the clients must run NVFlare's Client API executor")
    settings = executor.get("args") or {}
    _only(settings, EXECUTOR_ARGS, "the client executor")
    if settings.get("execution_mode", "in_process") != "in_process":
        raise BudgetError("budget: the client script must run in process")
    if settings.get("task_script_path") not in (
        expected.client_script,
        str(expected.worktree / expected.client_script),
    ):
        raise BudgetError(
            f"budget: the clients run {settings.get('task_script_path')}, expected {expected.client_script}"
        )
    try:
        exported = flag_values(shlex.split(str(settings.get("task_script_args", ""))))
    except ValueError as error:
        raise BudgetError(f"budget: client arguments do not parse ({error})") from None
    check_client_args(exported, expected.client_args, expected.optional_client_args)
    subsets = []
    for component in config.get("components") or []:
        if isinstance(component, dict) and component.get("path") == SUBSET_COMPONENT_PATH:
            subsets.append(component)
        elif not isinstance(component, dict) or component.get("path") not in CLIENT_WIDGETS:
            raise BudgetError("budget: the client config adds a component")
    if expected.subset_args is not None and (
        len(subsets) != 1
        or subsets[0].get("id") != SUBSET_COMPONENT_ID
        or subsets[0].get("args") != expected.subset_args
    ):
        raise BudgetError(f"budget: the job does not score afr's evaluation subset {expected.subset_args}")


def check_client_args(
    exported: dict[str, str | bool], expected: dict[str, str | bool], optional: dict[str, str] | None = None
) -> None:
    """Exactly the engine's client arguments: none missing, none changed, none added."""
    optional = optional or {}
    for name, value in expected.items():
        if value is False:
            if exported.get(name, False) is not False:
                raise BudgetError(f"budget: job passes the clients --{name}, the engine does not")
            continue
        if name not in exported:
            raise BudgetError(f"budget: job does not pass the clients --{name} {value}")
        if not same_value(exported[name], value):
            raise BudgetError(
                f"budget: job passes the clients {name}={exported[name]}, the engine computed {value}"
            )
    for name, value in optional.items():
        if name in exported and not same_value(exported[name], value):
            raise BudgetError(
                f"budget: job passes the clients {name}={exported[name]}, the engine computed {value}"
            )
    extra = sorted(set(exported) - set(expected) - set(optional))
    if extra:
        raise BudgetError(f"budget: job passes the clients --{extra[0]}, which the engine does not")


def check_custom(app_dir: Path, worktree: Path, client_script: str) -> None:
    """Every file NVFlare bundled with the app is the worktree's own file at the same path.

    NVFlare bundles the client script given by absolute path at the top of ``custom/``.
    """
    custom = app_dir / "custom"
    if not custom.exists():
        return
    worktree = Path(worktree).resolve()
    found = 0
    for path in sorted(custom.rglob("*")):
        if path.is_symlink():
            raise BudgetError(f"budget: the exported job holds a link {path.relative_to(app_dir)}")
        if path.is_dir():
            continue
        found += 1
        relative = path.relative_to(custom)
        source = worktree / (client_script if str(relative) == Path(client_script).name else relative)
        if found > MAX_CUSTOM_FILES or not source.is_file() or source.read_bytes() != path.read_bytes():
            raise BudgetError(
                f"budget: the exported job bundles {relative}, which is not the worktree's file"
            )


def verify_export(export_dir: Path, expected: Expected, worktree: Path) -> Path:
    """The verified job folder under ``export_dir``; raises ``BudgetError`` with the reason."""
    job = find_job(Path(export_dir))
    app = check_meta(job, expected)
    app_dir = job / app
    _only({p.name for p in app_dir.iterdir()}, frozenset({"config", "custom"}), "the exported app")
    config_dir = app_dir / "config"
    _only(
        {p.name for p in config_dir.iterdir()},
        frozenset({"config_fed_server.json", "config_fed_client.json"}),
        "the app config",
    )
    check_server(_load(config_dir / "config_fed_server.json"), expected)
    check_client(_load(config_dir / "config_fed_client.json"), expected)
    check_custom(app_dir, worktree, expected.client_script)
    return job
