"""What a campaign established, in numbers: shared by ``afr compare`` and ``afr report``.

Every figure comes from the campaign's own files: ``results.tsv`` (baseline, best, kept,
crashes, literature rows, candidate runtime), ``candidates.jsonl`` (LLM telemetry),
``journal.jsonl`` (wall-clock span) and ``evidence.tsv`` (repeats and held-out checks).
"""

from __future__ import annotations

import math
from pathlib import Path

from engine.evidence.runs import (
    CampaignView,
    comparisons,
    evidence_by_candidate,
    heldout_survives,
    open_campaign,
)
from engine.store.journal import Journal


def campaign_facts(campaign: CampaignView) -> dict:
    rows = campaign.rows
    candidates = [r for r in rows if r.status != "literature"]
    scored = [r for r in candidates if r.score is not None and r.status != "crash"]
    sign = 1 if campaign.profile.maximize else -1
    best = max(scored, key=lambda r: sign * r.score, default=None)
    runtime = sum(r.runtime_seconds for r in candidates)
    events = Journal(campaign.directory / "journal.jsonl").events()
    wall = (events[-1].ts - events[0].ts) if len(events) > 1 else runtime
    telemetry = [r.get("telemetry") or {} for r in campaign.records.values()]
    models = sorted({t["model"] for t in telemetry if t.get("model")})
    facts = {
        "tag": campaign.tag,
        "profile": campaign.profile.name,
        "proposer": campaign.options.get("proposer", "scripted"),
        "match": campaign.options.get("match"),
        "smoke": bool(campaign.options.get("smoke")),
        "budget": ", ".join(dict.fromkeys(r.budget for r in candidates)),  # the results.tsv budget label(s)
        "candidates": len(candidates),
        "kept": sum(r.status == "keep" for r in candidates),
        "crashes": sum(r.status == "crash" for r in candidates),
        "literature": sum(r.status == "literature" for r in rows),
        "baseline": scored[0].score if scored else None,
        "best": best.score if best else None,
        "best_candidate": best.artifacts.removeprefix("runs/") if best else None,
        "best_description": best.description if best else "",
        "candidate_hours": runtime / 3600,
        "wall_hours": wall / 3600,
        "minutes_per_candidate": runtime / 60 / len(candidates) if candidates else None,
        "llm_models": models,
        "llm_cost_usd": sum(float(t.get("cost_usd") or 0.0) for t in telemetry),
        "llm_tokens": sum(
            int(t.get("prompt_tokens") or 0) + int(t.get("completion_tokens") or 0) for t in telemetry
        ),
    }
    facts.update(evidence_facts(campaign))
    return facts


def evidence_facts(campaign: CampaignView) -> dict:
    """Repeat and held-out figures of the campaign's selected (best kept) candidate, if run."""
    entries = evidence_by_candidate(campaign.evidence.rows())
    found = {(c.candidate, c.subset): c for c in comparisons(entries, campaign.profile.maximize)}
    by_key = {(e.candidate, e.subset): e for e in entries}
    facts: dict = {"repeat": None, "repeat_baseline": None, "repeat_difference": None, "heldout": None}
    try:
        selected = campaign.top(1)[0]["id"]
        baseline = campaign.baseline()["id"]
    except ValueError:
        return facts
    facts["selected"] = selected
    if (selected, "validation") in by_key and by_key[(selected, "validation")].summary:
        s = by_key[(selected, "validation")].summary
        facts["repeat"] = _summary(s)
    if (baseline, "validation") in by_key and by_key[(baseline, "validation")].summary:
        facts["repeat_baseline"] = _summary(by_key[(baseline, "validation")].summary)
    if (selected, "validation") in found:
        paired = found[(selected, "validation")].paired
        facts["repeat_difference"] = {**_summary(paired.difference), "verdict": paired.verdict}
    if (selected, "heldout") in found:
        comparison = found[(selected, "heldout")]
        facts["heldout"] = {
            **_summary(comparison.paired.difference),
            "verdict": comparison.paired.verdict,
            "survives": heldout_survives(comparison),
            "selected": by_key[(selected, "heldout")].summary.mean,
            "baseline": by_key[(baseline, "heldout")].summary.mean,
        }
    return facts


def _summary(summary) -> dict:
    def clean(value: float) -> float | None:
        return None if math.isnan(value) else value

    return {
        "n": summary.n,
        "mean": summary.mean,
        "sd": clean(summary.sd),
        "half_width": clean(summary.half_width),
    }


def compare_rows(root: Path, tags: list[str]) -> list[dict]:
    if len(set(tags)) != len(tags):
        raise ValueError(f"compare: a tag is named twice in {' '.join(tags)}")
    return [campaign_facts(open_campaign(root, tag)) for tag in tags]


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def mean_pm(summary: dict | None) -> str:
    if not summary:
        return "-"
    if summary["half_width"] is None:
        return f"{summary['mean']:.4f} (n={summary['n']})"
    return f"{summary['mean']:.4f} ± {summary['half_width']:.4f}"


def heldout_text(heldout: dict | None) -> str:
    if not heldout:
        return "-"
    return f"{heldout['mean']:+.4f} ({'survives' if heldout['survives'] else 'lost'})"


COLUMNS = (
    ("tag", lambda f: f["tag"]),
    ("proposer", lambda f: f["proposer"] + (f" (control of {f['match']})" if f.get("match") else "")),
    ("baseline", lambda f: _number(f["baseline"])),
    ("best", lambda f: _number(f["best"])),
    ("repeat mean ± hw", lambda f: mean_pm(f["repeat"])),
    ("baseline repeat", lambda f: mean_pm(f["repeat_baseline"])),
    ("paired gain", lambda f: mean_pm(f["repeat_difference"])),
    ("verdict", lambda f: (f["repeat_difference"] or {}).get("verdict", "-")),
    ("held-out gain", lambda f: heldout_text(f["heldout"])),
    ("kept", lambda f: str(f["kept"])),
    ("crashes", lambda f: str(f["crashes"])),
    ("literature", lambda f: str(f["literature"])),
    ("wall h", lambda f: f"{f['wall_hours']:.2f}"),
    ("min/cand", lambda f: _number(f["minutes_per_candidate"], 2)),
    ("LLM cost", lambda f: f"${f['llm_cost_usd']:.4f}" if f["llm_models"] else "no LLM"),
)


def format_compare(facts: list[dict]) -> str:
    """One column per campaign, one line per figure: 15 figures side by side would not fit a terminal."""
    cells = [[name] + [render(f) for f in facts] for name, render in COLUMNS]
    widths = [max(len(row[i]) for row in cells) for i in range(len(facts) + 1)]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells)
