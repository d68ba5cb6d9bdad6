"""Task profiles: one TOML file per benchmark task, validated here.

A profile fixes what a campaign may not change (the budget: clients, rounds, seed,
parameter cap, final-evaluation clients, and any number of task-specific scalars such as
a batch size or a data folder), declares what it may change (each mutable arg with its
type and range, the aggregator choices, the editable files), and names the files that
must stay byte-identical (data bridge, metric, scoring). ``docs/tasks.md`` describes every
field. Every problem is reported as one line naming the field.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

Scalar = bool | int | float | str
FLAG_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Flags the runner or the shared job plumbing set; a profile field may not take them over.
RESERVED_FLAGS = {"env", "workspace", "result_json", "name", "aggregator", "metric", "metric_direction"}


class ProfileError(ValueError):
    """A profile that cannot be used; the message is one line and names the field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Metric(Strict):
    name: str = Field(min_length=1)
    direction: Literal["maximize", "minimize"] = "maximize"

    def lift(self, best: float, baseline: float) -> float:
        """How much ``best`` improves on ``baseline``: positive for a gain in either direction."""
        return best - baseline if self.direction == "maximize" else baseline - best


class Budget(BaseModel):
    """Fixed for the whole campaign: every candidate runs with exactly these.

    Besides the named fields a task may fix any number of its own scalars (``alpha``,
    ``data_root``, ``amp``...): each goes to the job as a flag and is never mutable.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    n_clients: PositiveInt
    num_rounds: PositiveInt
    batch_size: PositiveInt | None = None  # None: the task has no batch size to fix
    seed: int
    max_model_params: PositiveInt
    final_eval_clients: list[str] | Literal["all"] = "all"

    @model_validator(mode="after")
    def _extra_fields_are_scalars(self) -> Budget:
        for name, value in (self.model_extra or {}).items():
            if not FLAG_NAME.match(name):
                raise ValueError(f"{name}: a budget field name is lower_snake_case (it becomes --{name})")
            if name in RESERVED_FLAGS:
                raise ValueError(f"{name}: --{name} is set by afr, not by a profile")
            if not isinstance(value, (bool, int, float, str)):
                raise ValueError(f"{name}: a budget field is a single bool, number or string")
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name}: {value!r} is not finite")
        return self

    @property
    def fields(self) -> set[str]:
        """Every fixed field: the named ones and the task's own."""
        return set(type(self).model_fields) | set(self.model_extra or {})

    def values(self) -> dict[str, Scalar | list[str]]:
        """Every fixed field with a value, in declaration order."""
        return {name: value for name, value in self.model_dump().items() if value is not None}

    @model_validator(mode="after")
    def _known_clients(self) -> Budget:
        if self.final_eval_clients != "all":
            known = {f"site-{i}" for i in range(1, self.n_clients + 1)}
            unknown = [c for c in self.final_eval_clients if c not in known]
            if unknown or not self.final_eval_clients:
                raise ValueError(
                    f"final_eval_clients names {unknown or 'no client'}; expected site-1..site-{self.n_clients} or 'all'"
                )
        return self


class MutableArg(Strict):
    """One argument a candidate may change, with its type and allowed values."""

    # "architecture": any name registered in the task's model.py (checked by the guard);
    # its optional choices are the names known when the campaign starts.
    # "bool": a switch, passed to the job as ``--name`` when true and left out when false.
    type: Literal["float", "int", "choice", "bool", "architecture"]
    min: float | None = None
    max: float | None = None
    log: bool = False
    allow_zero: bool = False  # 0 switches the mechanism off (FedProx mu, weight decay)
    aggregators: list[str] | None = None  # only meaningful with these aggregators (server optimiser args)
    choices: list[Scalar] | None = None
    help: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> MutableArg:
        if self.type == "bool":
            if self.min is not None or self.max is not None or self.log or self.choices is not None:
                raise ValueError("a bool arg takes no min/max/log/choices")
            return self
        if self.type == "architecture":
            if self.min is not None or self.max is not None or self.log:
                raise ValueError("an architecture arg takes no min/max/log")
            return self
        if self.type == "choice":
            if not self.choices:
                raise ValueError("a choice arg needs a non-empty 'choices' list")
            if self.min is not None or self.max is not None or self.log:
                raise ValueError("a choice arg takes 'choices', not min/max/log")
            kinds = {type(c) if isinstance(c, (bool, str)) else float for c in self.choices}
            if len(kinds) > 1:
                raise ValueError(f"choices mix strings, numbers and bools: {self.choices}")
            return self
        if self.choices is not None:
            raise ValueError(f"a {self.type} arg takes min/max, not 'choices'")
        if self.min is None or self.max is None:
            raise ValueError(f"a {self.type} arg needs both 'min' and 'max'")
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        if self.log and self.min <= 0:
            raise ValueError("a log-scale range needs min > 0")
        return self

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed for this arg, or None when it is."""
        if self.type == "bool":
            return None if isinstance(value, bool) else f"{value!r} is not true or false"
        if self.type == "architecture":
            ok = isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value)
            return None if ok else f"{value!r} is not an architecture name"
        if self.type == "choice":
            # 1 == True in Python: a choice is matched by type as well as value.
            same = [c for c in self.choices or [] if c == value and isinstance(c, bool) == isinstance(value, bool)]
            return None if same else f"{value!r} is not one of {self.choices}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if self.type == "int" and not float(value).is_integer():
            return f"{value!r} is not an integer"
        if not math.isfinite(value):
            return f"{value!r} is not finite"
        if value == 0 and self.allow_zero:
            return None
        if not self.min <= value <= self.max:
            return f"{value!r} is outside [{self.min:g}, {self.max:g}]"
        return None


class Aggregators(Strict):
    choices: list[str] = Field(min_length=1)


class Surface(Strict):
    """Paths relative to the workspace root; ``*`` globs allowed in ``protected``."""

    editable: list[str] = Field(min_length=1)
    protected: list[str] = Field(min_length=1)
    context: list[str] = []


class RunSettings(Strict):
    timeout_seconds: PositiveInt = 900
    # NVFlare's simulator can wait forever for a worker that failed to connect (seen under
    # load); a job silent this long is stopped and run once more.
    stall_seconds: PositiveInt = 240
    parallel: PositiveInt | None = None  # the campaign's default width; else one slot per GPU, else 1
    # torch intra-op threads per NVFlare process (the job's --threads_per_site); None: the
    # job's default (1 for a lean job), 0: torch's default of one per core.
    threads_per_site: int | None = Field(default=None, ge=0)
    # "required": afr refuses to run this profile's candidates without a working sandbox
    # (bubblewrap); "preferred": it runs them anyway and says `sandbox: none` everywhere.
    sandbox: Literal["required", "preferred"] = "preferred"
    # What one run asks of a Ray cluster (afr run --executor ray); None: 1 CPU, no GPU.
    cpus: float | None = Field(default=None, gt=0)
    gpus: float | None = Field(default=None, ge=0)


class LocalWork(Strict):
    """What bounds a client's local work per round, checked by afr's trusted step counter.

    ``arg`` is the mutable arg or budget field that declares it; ``unit`` says what it counts:
    ``steps`` (optimiser steps per round) or ``epochs`` (passes over the site's training rows,
    ``max(1, ceil(epochs * rows / batch_size))`` optimiser steps per round).
    """

    arg: str
    unit: Literal["steps", "epochs"] = "steps"


class Watchdog(Strict):
    max_scored_since_reset: PositiveInt = 32
    min_delta: float = Field(default=0.0005, ge=0)


class Repeat(Strict):
    seeds: list[int] = Field(default=[42, 43, 44, 45, 46], min_length=2)


class Review(Strict):
    """Confirmation before keep: a candidate that beats the best kept one by ``min_delta`` on the
    campaign seed is re-run on these seeds with that incumbent and kept only if its paired mean
    gain over all its seeds still exceeds ``min_delta``. Empty: the reference single-seed rule."""

    confirm_seeds: list[int] = []
    # "mean": the paired mean gain exceeds min_delta; "every_seed": and the candidate also beats the
    # incumbent on every seed (a large seed-42 win can carry a mean of three seeds on its own).
    rule: Literal["mean", "every_seed"] = "mean"


class Heldout(Strict):
    """A fixed share of each client's evaluation split kept out of the campaign's scoring.

    The campaign scores on the rest (the validation subset); ``afr heldout`` scores the
    selected candidate and the baseline on this share. ``tasks/shared/holdout.py`` draws it.
    """

    fraction: float = Field(gt=0.0, lt=1.0)
    seed: int


class Profile(Strict):
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    title: str = ""
    task_dir: str
    job: str = "job.py"
    metric: Metric
    budget: Budget
    baseline: dict[str, Scalar]
    mutable: dict[str, MutableArg]
    aggregators: Aggregators
    surface: Surface
    run: RunSettings = RunSettings()
    smoke: dict[str, Scalar] = {}
    watchdog: Watchdog = Watchdog()
    repeat: Repeat = Repeat()
    review: Review = Review()
    heldout: Heldout | None = None  # None: every run is scored on the whole evaluation split
    local_work: LocalWork | None = None  # None: optimiser steps are counted and recorded, not checked

    @model_validator(mode="after")
    def _args_agree(self) -> Profile:
        budget_fields = self.budget.fields
        for name in self.mutable:
            if not FLAG_NAME.match(name):
                raise ValueError(f"mutable.{name}: an arg name is lower_snake_case (it becomes --{name})")
            if name in RESERVED_FLAGS:
                raise ValueError(f"mutable.{name}: --{name} is set by afr, not by a profile")
        for name in self.mutable:
            if name in budget_fields:
                raise ValueError(f"mutable.{name}: a fixed budget field cannot be mutable")
        for name, value in self.baseline.items():
            if name == "aggregator":
                if value not in self.aggregators.choices:
                    raise ValueError(f"baseline.aggregator: {value!r} is not in aggregators.choices")
                continue
            if name not in self.mutable:
                raise ValueError(f"baseline.{name}: unknown arg (declare it under [mutable.{name}])")
            problem = self.mutable[name].problem(value)
            if problem:
                raise ValueError(f"baseline.{name}: {problem}")
        if "aggregator" not in self.baseline:
            raise ValueError("baseline.aggregator: missing (one of aggregators.choices)")
        for name in self.mutable:
            if name not in self.baseline:
                raise ValueError(f"baseline.{name}: missing (every mutable arg needs a baseline value)")
        if self.local_work is not None:
            if self.local_work.arg not in self.mutable and self.local_work.arg not in budget_fields:
                raise ValueError(f"local_work.arg: {self.local_work.arg!r} is not a mutable arg or budget field")
            if self.local_work.unit == "epochs" and self.budget.batch_size is None:
                raise ValueError("local_work.unit: epochs need budget.batch_size to count steps")
        for name, value in self.smoke.items():
            if name not in budget_fields and name not in self.mutable:
                raise ValueError(f"smoke.{name}: unknown arg (not a budget field or mutable arg)")
            if name in self.mutable and (problem := self.mutable[name].problem(value)):
                raise ValueError(f"smoke.{name}: {problem}")
        return self

    # -- derived views -------------------------------------------------------------------

    @property
    def maximize(self) -> bool:
        return self.metric.direction == "maximize"

    def parallel_width(self, override: int | None = None, gpus: int = 0) -> int:
        """How many candidates run at once: the command line's value, else ``[run].parallel``,
        else one per visible GPU, else 1."""
        return override or self.run.parallel or gpus or 1

    def check_args(self, args: dict[str, Scalar]) -> list[str]:
        """One line per problem with candidate args (unknown, fixed, out of range)."""
        problems = []
        budget_fields = self.budget.fields
        for name, value in args.items():
            if name in budget_fields:
                problems.append(f"{name}: a fixed budget field cannot change")
            elif name == "aggregator":
                if value not in self.aggregators.choices:
                    problems.append(f"aggregator: {value!r} is not one of {self.aggregators.choices}")
            elif name not in self.mutable:
                problems.append(f"{name}: not a mutable arg of profile {self.name}")
            else:
                problem = self.mutable[name].problem(value)
                if problem:
                    problems.append(f"{name}: {problem}")
        return problems

    def job_flags(
        self, args: dict[str, Scalar] | None = None, smoke: bool = False, seed: int | None = None
    ) -> list[str]:
        """Command-line flags for the task's job: budget, then baseline args with ``args`` applied.

        ``seed`` replaces the budget's seed (seed repeats change nothing else). A bool is the
        bare flag when true and nothing when false (argparse's ``store_true``); a list is
        comma-separated.
        """
        values: dict[str, Scalar | list[str]] = self.budget.values()
        if seed is not None:
            values["seed"] = seed
        values.update(self.baseline)
        values.update(args or {})
        if smoke:
            values.update(self.smoke)
        flags = []
        for name, value in values.items():
            if isinstance(value, bool):
                flags += [f"--{name}"] if value else []
                continue
            if isinstance(value, list):
                value = ",".join(value)
            flags += [f"--{name}", str(value)]
        return flags


def format_error(error: ValidationError) -> str:
    """The first problem of a pydantic error as ``field.path: message``."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "missing required field"
    elif first["type"] == "extra_forbidden":
        message = "unknown field"
    elif "input" in first and first["type"] not in ("value_error",):
        message = f"{message} (got {first['input']!r})"
    elif where and (named := re.match(r"([a-z_][A-Za-z0-9_]*): ", message)):
        # A model validator naming one of its own fields (a task's budget scalar).
        where, message = f"{where}.{named.group(1)}", message[named.end() :]
    return f"{where}: {message}" if where else message


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ProfileError(f"{source}: not valid TOML: {error}") from None
    try:
        return Profile.model_validate(data)
    except ValidationError as error:
        raise ProfileError(f"{source}: {format_error(error)}") from None


def profile_path(root: Path, name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.is_file():
        return candidate.resolve()
    return root / "profiles" / f"{name_or_path}.toml"


def load_profile(root: Path, name_or_path: str) -> Profile:
    """Load and validate a profile by name (``profiles/<name>.toml``) or path."""
    path = profile_path(root, name_or_path)
    if not path.is_file():
        available = sorted(p.stem for p in (root / "profiles").glob("*.toml"))
        raise ProfileError(
            f"no profile {name_or_path!r} in {root / 'profiles'} (available: {', '.join(available)})"
        )
    profile = parse_profile(path.read_text(), source=path.name)
    problem = missing_path(root, profile)
    if problem:
        raise ProfileError(f"{path.name}: {problem}")
    return profile


def missing_path(root: Path, profile: Profile) -> str | None:
    """The first path the profile names that is not in the workspace, as ``field: reason``."""
    task_dir = root / profile.task_dir
    if not task_dir.is_dir():
        return f"task_dir: {profile.task_dir} does not exist"
    if not (task_dir / profile.job).is_file():
        return f"job: {profile.task_dir}/{profile.job} does not exist"
    for field in ("editable", "protected", "context"):
        for index, pattern in enumerate(getattr(profile.surface, field)):
            where = f"surface.{field}[{index}]"
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
                return f"{where}: {pattern} is not a path inside the workspace"
            if any(ch in pattern for ch in "*?["):
                if not any(root.glob(pattern)):
                    return f"{where}: {pattern} matches no file"
            elif not (root / pattern).exists():
                return f"{where}: {pattern} does not exist"
    return None
