"""``--proposer tpe``: Optuna's TPE sampler over the profile's mutable args and the bundled mechanisms.

A stronger offline search than the scripted control: a tree-structured Parzen estimator (ask/tell)
over every mutable arg (log scales, integers, categorical args; args declared only for some
aggregators are conditional parameters; an ``allow_zero`` arg is an on/off switch plus its value),
the architectures (bundled ones and those a mechanism patch registers), and one optional training
mechanism (``engine.agent.mechanisms``), whose patch travels as the candidate's edits.

Stateless like the scripted proposer: each proposal builds a fresh study, re-tells every finished
candidate of the ledger (args, mechanisms, score; crashes as failed trials), marks the approved,
unreviewed ones as running (so TPE's constant liar steers away from them) and asks with a sampler
seeded by the campaign seed and the proposal count. A resumed campaign therefore proposes exactly
what the uninterrupted one would have.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext
from engine.agent.configs import config_key, describe_args, effective_args
from engine.agent.mechanisms import Mechanism, PatchError, available, by_name, edits_for
from engine.agent.scripted import ScriptedProposer
from engine.profile import Profile, Scalar

MAX_TRIES = 40
NONE = "none"

Pick = Callable[[str, BaseDistribution], Any]


class NotInSpace(ValueError):
    """A ledger configuration the search space cannot express (then it is not re-told)."""


def walk(profile: Profile, archs: list[str], trainings: list[str], pick: Pick) -> tuple[dict, str]:
    """The search space, define-by-run: ``pick(name, distribution)`` returns each parameter's value.

    Sampling passes ``trial.suggest``; re-telling passes a lookup in a ledger configuration, so
    both walk exactly the same conditional structure.
    """
    args: dict[str, Scalar] = {
        "aggregator": pick("aggregator", CategoricalDistribution(profile.aggregators.choices))
    }
    for name in sorted(profile.mutable):
        arg = profile.mutable[name]
        if arg.aggregators is not None and args["aggregator"] not in arg.aggregators:
            continue  # conditional: only meaningful under these aggregators
        if arg.type == "architecture":
            distribution: BaseDistribution = CategoricalDistribution(archs)
        elif arg.type == "choice":
            distribution = CategoricalDistribution(list(arg.choices or []))
        else:
            if arg.allow_zero and not pick(f"{name}:on", CategoricalDistribution([False, True])):
                args[name] = 0 if arg.type == "int" else 0.0
                continue
            if arg.type == "int":
                log = arg.log and arg.min >= 1
                distribution = IntDistribution(int(arg.min), int(arg.max), log=log)
            else:
                distribution = FloatDistribution(arg.min, arg.max, log=arg.log)
        args[name] = pick(name, distribution)
    training = pick("training", CategoricalDistribution([NONE, *trainings])) if trainings else NONE
    return args, training


def encode(profile: Profile, archs, trainings, full: dict, mechanisms: list[str]) -> tuple[dict, dict]:
    """A ledger configuration as Optuna params and distributions; NotInSpace if it has no place."""
    params: dict[str, Any] = {}
    distributions: dict[str, BaseDistribution] = {}
    training = next((m for m in mechanisms if m in trainings), NONE)

    def lookup(name: str, distribution: BaseDistribution) -> Any:
        if name == "training":
            value: Any = training
        elif name.endswith(":on"):
            value = full.get(name[:-3]) not in (0, 0.0, None)
        else:
            value = full.get(name)
        if isinstance(distribution, IntDistribution) and isinstance(value, float) and value.is_integer():
            value = int(value)
        if (
            isinstance(distribution, FloatDistribution)
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            value = float(value)
        if not _inside(value, distribution):
            raise NotInSpace(f"{name}={value!r}")
        params[name], distributions[name] = value, distribution
        return value

    walk(profile, archs, trainings, lookup)
    return params, distributions


def _inside(value: Any, distribution: BaseDistribution) -> bool:
    if isinstance(distribution, CategoricalDistribution):
        return value in distribution.choices
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(distribution, IntDistribution) and not isinstance(value, int):
        return False
    return distribution.low <= value <= distribution.high


def suggest(trial: optuna.Trial, name: str, distribution: BaseDistribution) -> Any:
    """Ask ``trial`` for ``name`` from ``distribution`` (Optuna's public suggest API)."""
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    value = trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    return _round(value, distribution)


def _round(value: Any, distribution: BaseDistribution) -> Any:
    """Four significant digits for readable ledgers, still inside the range."""
    if isinstance(distribution, FloatDistribution):
        return min(max(float(f"{value:.4g}"), distribution.low), distribution.high)
    return value


class TPEProposer:
    name = "tpe"

    def __init__(self, mechanisms: bool = True) -> None:
        self.use_mechanisms = mechanisms
        self.told = 0  # trials re-told from the ledger by the last proposal (tests, the console)

    # -- the search space of a profile ---------------------------------------------------------------

    def _mechanisms(self, profile: Profile) -> list[Mechanism]:
        return available(profile) if self.use_mechanisms else []

    def _space(self, profile: Profile) -> tuple[list[str], list[str]]:
        mechanisms = self._mechanisms(profile)
        arch = profile.mutable.get("model_arch")
        archs: list[str] = []
        if arch is not None:
            archs = [str(c) for c in (arch.choices or [profile.baseline["model_arch"]])]
            archs += [m.name for m in mechanisms if m.kind == "architecture" and m.name not in archs]
        trainings = [m.name for m in mechanisms if m.kind == "training"]
        return archs, trainings

    # -- proposing -------------------------------------------------------------------------------------

    def study(self, context: ProposalContext) -> optuna.Study:
        """A fresh study holding every finished candidate of the ledger and the in-flight ones."""
        profile = context.profile
        archs, trainings = self._space(profile)
        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna's words
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(
                seed=context.seed * 100_003 + context.proposed,
                multivariate=True,
                group=True,
                constant_liar=True,
            )
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize" if profile.maximize else "minimize", sampler=sampler)
        self.told = 0
        for record in [*context.records, *context.in_flight]:
            status = record.get("status", "running")
            if status not in ("keep", "discard", "crash", "running"):
                continue  # rejected by the guard or the human, literature rows: never ran
            full = {**profile.baseline, **(record.get("args") or {})}
            try:
                params, distributions = encode(
                    profile, archs, trainings, full, record.get("mechanisms") or []
                )
            except NotInSpace:
                continue
            score = record.get("score")
            if status == "running":
                state, value = TrialState.RUNNING, None
            elif status == "crash" or score is None:
                state, value = TrialState.FAIL, None
            else:
                state, value = TrialState.COMPLETE, float(score)
            study.add_trial(
                create_trial(state=state, value=value, params=params, distributions=distributions)
            )
            self.told += 1
        return study

    def propose(self, context: ProposalContext) -> CandidateSpec:
        profile = context.profile
        if context.baseline_due:
            return CandidateSpec(f"baseline: {profile.title or profile.name}", "baseline", {})
        archs, trainings = self._space(profile)
        tried = {
            _key(profile, r.get("args") or {}, r.get("mechanisms") or [])
            for r in [*context.records, *context.in_flight]
        }
        study = self.study(context)
        for _ in range(MAX_TRIES):
            trial = study.ask()

            args, training = walk(profile, archs, trainings, lambda n, d, t=trial: suggest(t, n, d))
            args = effective_args(profile, args)
            chosen = [by_name(training)] if training != NONE else []
            chosen += [
                m
                for m in self._mechanisms(profile)
                if m.kind == "architecture" and args.get("model_arch") == m.name
            ]
            for mechanism in chosen:  # a mechanism switches on its own args unless TPE set them
                args = {**{k: v for k, v in mechanism.args.items() if k != "model_arch"}, **args}
            args = effective_args(profile, args)
            names = [m.name for m in chosen]
            if _key(profile, args, names) in tried or profile.check_args(args):
                study.tell(trial, state=TrialState.FAIL)
                continue
            try:
                edits = (
                    edits_for(chosen, profile, context.root, context.parent)
                    if chosen and context.root
                    else {}
                )
            except PatchError:
                study.tell(trial, state=TrialState.FAIL)
                continue
            target = (
                "architecture"
                if any(m.kind == "architecture" for m in chosen)
                else ("code" if chosen else "scalar")
            )
            extra = f" + {', '.join(m.summary for m in chosen)}" if chosen else ""
            return CandidateSpec(
                f"tpe: {describe_args(args)}{extra}", target, args, edits=edits, mechanisms=names
            )
        return ScriptedProposer().propose(context)  # every sample was a repeat: the scripted fallback

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult:
        """The bundled bibliography, as the scripted control reads it (TPE has no reading of its own)."""
        return ScriptedProposer().literature(context, width)


def _key(profile: Profile, args: dict, mechanisms: list[str]) -> str:
    return config_key(profile, args) + "|" + ",".join(sorted(mechanisms))
