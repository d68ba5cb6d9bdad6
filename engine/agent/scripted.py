"""The offline scripted proposer: the paper's same-budget "scripted scalar HPO" control.

Seeded and stateless: every proposal is a function of the campaign seed, the number of
proposals so far and the ledger, so a resumed campaign continues the same sequence.
First the baseline; then a calibration sweep of the aggregator family; then random search
over the profile's mutable args (log-uniform where declared) mixed with local refinement
around the current best. In literature mode it picks untried mechanisms from the bundled
bibliography and cites them.
"""

from __future__ import annotations

import math
import random

from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext
from engine.agent.configs import config_key, describe_args, effective_args
from engine.agent.configs import fmt_value as _fmt
from engine.agent.literature import BIBLIOGRAPHY, symptoms
from engine.agent.literature_cards import ChallengeCard, Draft, ProposalCard, conclude
from engine.agent.literature_sources import cache_dir, expressible_in, gather
from engine.profile import MutableArg, Profile, Scalar

SCRIPTED_QUERIES = (
    "client drift heterogeneity proximal",
    "server momentum adaptive optimizer",
    "robust outlier aggregation median",
)

CALIBRATION = (
    ("FedAvgM server momentum", {"aggregator": "fedavgm", "server_lr": 1.0, "server_momentum": 0.9}),
    ("FedAdam server optimiser", {"aggregator": "fedadam", "server_lr": 0.03}),
    ("coordinate-wise median aggregation", {"aggregator": "median"}),
    ("SCAFFOLD control variates", {"aggregator": "scaffold"}),
    ("FedProx proximal term", {"fedprox_mu": 0.01}),
)
MAX_TRIES = 50


def literature_symptoms(context: ProposalContext) -> list[str]:
    return symptoms(context.rows, context.records, context.profile.maximize, context.trigger)


def relevant_args(profile: Profile, aggregator: str) -> list[str]:
    """Mutable args that change anything under ``aggregator`` (server-optimiser args need theirs)."""
    return sorted(
        n for n, a in profile.mutable.items() if a.aggregators is None or aggregator in a.aggregators
    )


def sample_value(arg: MutableArg, rng: random.Random) -> Scalar:
    if arg.type == "bool":
        return rng.random() < 0.5
    if arg.type in ("choice", "architecture"):
        return rng.choice(arg.choices)
    if arg.allow_zero and rng.random() < 0.3:
        return 0 if arg.type == "int" else 0.0
    if arg.log:
        value = math.exp(rng.uniform(math.log(arg.min), math.log(arg.max)))
    else:
        value = rng.uniform(arg.min, arg.max)
    return int(round(value)) if arg.type == "int" else float(f"{value:.4g}")


def perturb_value(arg: MutableArg, current: Scalar, rng: random.Random) -> Scalar:
    """A step around ``current``: a factor of about e^±0.5 on a log scale, ±15% of the range otherwise."""
    if arg.type == "bool":
        return not current
    if arg.type in ("choice", "architecture"):
        others = [c for c in arg.choices or [] if c != current]
        return rng.choice(others) if others else current
    if arg.log:
        base = current if current and current > 0 else math.sqrt(arg.min * arg.max)
        value = base * math.exp(rng.gauss(0.0, 0.5))
    else:
        value = float(current) + rng.gauss(0.0, 0.15 * (arg.max - arg.min))
    value = min(max(value, arg.min), arg.max)
    return int(round(value)) if arg.type == "int" else float(f"{value:.4g}")


class ScriptedProposer:
    name = "scripted"

    def propose(self, context: ProposalContext) -> CandidateSpec:
        profile = context.profile
        tried = {config_key(profile, r.get("args") or {}) for r in [*context.records, *context.in_flight]}
        if context.baseline_due:
            return CandidateSpec(f"baseline: {profile.title or profile.name}", "baseline", {})
        for label, change in CALIBRATION:
            args = {k: v for k, v in change.items() if k in profile.mutable or k == "aggregator"}
            if args.get("aggregator", "weighted") not in profile.aggregators.choices or not args:
                continue
            if config_key(profile, args) not in tried:
                return CandidateSpec(f"calibration: {label} ({describe_args(args)})", "scalar", args)
        rng = random.Random(context.seed * 100_003 + context.proposed)
        for _ in range(MAX_TRIES):
            if context.best_args is not None and rng.random() < 0.5:
                args, description = self._refine(profile, context.best_args, rng)
            else:
                args, description = self._random(profile, rng)
            if config_key(profile, args) not in tried:
                return CandidateSpec(description, "scalar", args)
        args, description = self._random(profile, rng)
        return CandidateSpec(description + " (repeat)", "scalar", args)

    def _random(self, profile: Profile, rng: random.Random) -> tuple[dict, str]:
        args = {}
        if rng.random() < 0.3:
            args["aggregator"] = rng.choice(profile.aggregators.choices)
        names = relevant_args(profile, args.get("aggregator", profile.baseline["aggregator"]))
        chosen = rng.sample(names, k=min(len(names), rng.randint(1, 3)))
        args.update({name: sample_value(profile.mutable[name], rng) for name in chosen})
        args = effective_args(profile, args)
        return args, f"random search: {describe_args(args)}"

    def _refine(self, profile: Profile, best: dict[str, Scalar], rng: random.Random) -> tuple[dict, str]:
        relevant = relevant_args(profile, best.get("aggregator", profile.baseline["aggregator"]))
        numeric = [n for n in relevant if profile.mutable[n].type in ("float", "int")]
        name = rng.choice(numeric or relevant)
        current = best.get(name, profile.baseline[name])
        value = perturb_value(profile.mutable[name], current, rng)
        args = effective_args(profile, {**best, name: value})
        return args, f"refine best: {name} {_fmt(current)}->{_fmt(value)} ({describe_args(args)})"

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult:
        return conclude(self.draft(context), context, width, literature_symptoms(context))

    def draft(self, context: ProposalContext, search_sources: bool = True) -> Draft:
        """Cards from the bundled bibliography: every mechanism the profile can express, scored by a
        fixed rule (untried families are novel; args-only changes are safe and simple)."""
        profile = context.profile
        queries = list(SCRIPTED_QUERIES)
        # A fallback draft (search_sources=False) reads only the bundled bibliography.
        gathered = gather(queries, cache_dir(context) if search_sources else None, expressible_in(profile))
        proposals, seen = [], set()
        for entry in (e for e in BIBLIOGRAPHY if e.core):
            args = {k: v for k, v in entry.args.items() if k in profile.mutable or k == "aggregator"}
            aggregator = args.get("aggregator", profile.baseline.get("aggregator"))
            if aggregator not in profile.aggregators.choices or entry.key in seen:
                continue
            seen.add(entry.key)
            # Novel unless some candidate already carried every setting of this mechanism.
            tried = any(
                all((record.get("args") or {}).get(k) == v for k, v in args.items())
                for record in context.records
            )
            novel = 2 if tried else 5
            proposals.append(
                ProposalCard(
                    entry.name,
                    [entry.source],
                    entry.summary,
                    {
                        "expected_gain": 3,
                        "contract_safety": 5,
                        "simplicity": 5,
                        "evidence": 4,
                        "novelty": novel,
                        "runtime_cost": 2 if aggregator == "scaffold" else 1,
                    },
                    args,
                    "args",
                    expected_effect=f"beats the best stack via {entry.key}",
                    runtime_note="none beyond one candidate run",
                    contract_risk="none: mutable args only",
                    falsifying_observation="its score does not beat the running best",
                )
            )
        rows = context.rows
        scored = [r for r in rows if r.score is not None and r.status not in ("crash", "literature")]
        challenges = [
            ChallengeCard(
                "the search has plateaued",
                f"{len(scored)} scored candidate(s); the running best last improved before the latest "
                "stretch of discards",
                "scalar tuning of the current stack is exhausted; a different mechanism is needed",
            ),
            ChallengeCard(
                "client heterogeneity",
                "clients differ in size and label balance (see `afr data`)",
                "local drift or noisy averaged updates limit the global model",
            ),
            ChallengeCard(
                "optimiser scale",
                f"best stack: {describe_args(context.best_args)}",
                "the server step, not the local one, sets the pace of progress",
            ),
        ]
        return Draft(
            "scripted",
            queries,
            gathered.hits,
            challenges,
            proposals,
            notes=gathered.notes,
            papers=gathered.papers,
            sources=gathered.mode,
        )
