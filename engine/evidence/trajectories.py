"""Trajectory repeats: K independent campaigns of one profile and budget, and what they agree on.

The study's strongest evidence came from mechanisms that independent trajectories rediscovered.
``run_trajectories`` runs K campaigns one after the other, tagged ``<base>-t1`` .. ``<base>-tK``,
each with its own proposer seed and otherwise the same options; rerunning it continues where it
stopped (a finished trajectory is skipped, an unfinished one resumed). ``mechanism_table`` says,
for each mechanism found among the kept candidates (aggregator, registered architecture, each arg
moved away from its baseline value, each code mechanism, each literature source), in how many
trajectories it appears, with the repeat verdict of the candidates carrying it where
``afr repeat`` ran.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from engine.campaign.options import CampaignError, CampaignOptions, campaign_dir
from engine.campaign.status import last_state, tag_problem
from engine.control.events import Event
from engine.evidence.runs import CampaignView, comparisons, evidence_by_candidate
from engine.profile import Profile, parse_profile
from engine.run.runner import RunResult, run_job

SEED_STRIDE = 1000  # trajectory i uses proposer seed base + (i - 1) * SEED_STRIDE


def trajectory_tags(base: str, k: int) -> list[str]:
    return [f"{base}-t{i}" for i in range(1, k + 1)]


def run_trajectories(
    root: Path,
    profile: Profile,
    base: str,
    k: int,
    options: CampaignOptions,
    build_proposer: Callable[[CampaignOptions], object],
    run_fn: Callable[..., RunResult] = run_job,
    gpus: list[str] | None = None,
    on_event: Callable[[str, Event], None] | None = None,
    report: Callable[[str], None] = print,
) -> list[str]:
    """Run (or continue) K campaigns; returns their tags."""
    from engine.campaign.loop import Campaign  # the loop imports evidence modules: import it late

    if k < 1:
        raise CampaignError(f"--k must be at least 1, not {k}")
    tags = trajectory_tags(base, k)
    problem = tag_problem(tags[0])
    if problem:
        raise CampaignError(problem)
    for index, tag in enumerate(tags):
        directory = campaign_dir(root, tag)
        exists = (directory / "campaign.json").exists()
        if exists and last_state(directory) == "finished":
            report(f"{tag}: finished already; skipped")
            continue
        if exists:  # continue it as it started: its own profile and options
            meta = json.loads((directory / "campaign.json").read_text())
            own = CampaignOptions(**meta["options"])
            started = (
                parse_profile(meta["profile_toml"], f"{tag}/campaign.json")
                if meta.get("profile_toml")
                else profile
            )
            campaign = Campaign(root, started, tag, own, build_proposer(own), run_fn=run_fn, gpus=gpus)
        else:
            own = replace(options, seed=options.seed + index * SEED_STRIDE)
            campaign = Campaign(root, profile, tag, own, build_proposer(own), run_fn=run_fn, gpus=gpus)
        if on_event is not None:
            campaign.subscribe(lambda event, tag=tag: on_event(tag, event))
        report(f"{tag}: {'resuming' if exists else 'starting'} ({own.proposer}, seed {own.seed})")
        try:
            campaign.resume() if exists else campaign.start()
        except KeyboardInterrupt:
            campaign.kill_running()
            raise
        best = campaign.best_row()
        report(f"{tag}: {campaign.state}; best {best['score']:.4f}" if best else f"{tag}: {campaign.state}")
    return tags


# -- the mechanism table ------------------------------------------------------------------------------


def mechanisms_of(record: dict, profile: Profile) -> list[str]:
    """The mechanisms a candidate carries, in words a table can count across trajectories."""
    found = []
    for name, value in sorted((record.get("args") or {}).items()):
        base = profile.baseline.get(name)
        if value == base:
            continue
        if name == "aggregator":
            found.append(f"aggregator={value}")
        elif name == "model_arch":
            found.append(f"architecture={value}")
        elif (
            isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(base, (int, float))
        ):
            if base == 0:
                found.append(f"{name} on")
            elif value == 0:
                found.append(f"{name} off")
            else:
                found.append(f"{name} {'up' if value > base else 'down'}")
        else:
            found.append(f"{name}={value}")
    found += [f"code:{name}" for name in record.get("mechanisms") or []]
    found += [f"source:{ref}" for ref in record.get("source_refs") or []]
    return found


@dataclass
class MechanismRow:
    mechanism: str
    trajectories: list[str] = field(default_factory=list)  # tags whose kept candidates carry it
    verdicts: dict[str, str] = field(default_factory=dict)  # tag -> repeat verdict (best carrier repeated)

    def to_dict(self) -> dict:
        return asdict(self)


def _verdicts(campaign: CampaignView) -> dict[str, str]:
    """Repeat verdict per candidate id (validation subset, paired against the baseline)."""
    entries = evidence_by_candidate(campaign.evidence.rows())
    return {
        c.candidate: c.paired.verdict
        for c in comparisons(entries, campaign.profile.maximize)
        if c.subset == "validation"
    }


def mechanism_table(campaigns: list[CampaignView]) -> list[MechanismRow]:
    """Mechanisms among kept candidates (the baseline aside), most trajectories first."""
    rows: dict[str, MechanismRow] = {}
    for campaign in campaigns:
        verdicts = _verdicts(campaign)
        try:
            baseline = campaign.baseline()["id"]
        except ValueError:
            continue
        sign = 1 if campaign.profile.maximize else -1
        kept = [r for r in campaign.records.values() if r.get("status") == "keep" and r["id"] != baseline]
        kept.sort(key=lambda r: -sign * (r.get("score") or 0.0))  # best first: its verdict speaks
        for record in kept:
            for mechanism in mechanisms_of(record, campaign.profile):
                row = rows.setdefault(mechanism, MechanismRow(mechanism))
                if campaign.tag not in row.trajectories:
                    row.trajectories.append(campaign.tag)
                if record["id"] in verdicts and campaign.tag not in row.verdicts:
                    row.verdicts[campaign.tag] = verdicts[record["id"]]
    return sorted(rows.values(), key=lambda r: (-len(r.trajectories), r.mechanism))


def format_mechanism_table(rows: list[MechanismRow], tags: list[str]) -> str:
    if not rows:
        return "mechanisms: no kept candidate besides the baseline in these campaigns"
    header = ("mechanism", "trajectories", "in", "repeat verdicts")
    cells = [header]
    for row in rows:
        verdicts = ", ".join(f"{tag}: {verdict}" for tag, verdict in row.verdicts.items()) or "-"
        cells.append(
            (row.mechanism, f"{len(row.trajectories)}/{len(tags)}", " ".join(row.trajectories), verdicts)
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip() for line in cells)
