"""The report's confirmation section: which would-be keeps were confirmed on extra seeds, at what cost.

Read from ``candidates.jsonl`` (each confirmed or unconfirmed candidate's record carries its
``confirmation``: seeds, per-seed scores of the candidate and the incumbent, paired gain, runtime)
and ``results.tsv`` (the campaign's candidate runtime, which includes the confirmation runs).
"""

from __future__ import annotations

from engine.evidence.runs import CampaignView


def confirmation_facts(campaign: CampaignView) -> dict:
    """Confirmed and unconfirmed candidates and the runtime their confirmation runs took."""
    confirmed = [r for r in campaign.records.values() if r.get("confirmation")]
    runtime = sum(float(r["confirmation"].get("runtime_seconds") or 0.0) for r in confirmed)
    total = sum(r.runtime_seconds for r in campaign.rows if r.status != "literature")
    return {
        "enabled": bool(campaign.options.get("confirm", False))
        and bool(campaign.profile.review.confirm_seeds),
        "seeds": [campaign.profile.budget.seed, *campaign.profile.review.confirm_seeds],
        "records": confirmed,
        "confirmed": sum(bool(r["confirmation"].get("confirmed")) for r in confirmed),
        "runtime_seconds": runtime,
        "candidate_seconds": total,
    }


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def confirmation_section(campaign: CampaignView) -> str:
    facts = confirmation_facts(campaign)
    lines = ["## Confirmation before keep\n"]
    if not facts["enabled"] and not facts["records"]:
        lines.append(
            "Not used: a candidate was kept on the campaign seed alone (the reference rule). "
            "Set `[review] confirm_seeds` in the profile and run without `--no-confirm` to confirm keeps."
        )
        return "\n".join(lines) + "\n"
    seeds = ", ".join(map(str, facts["seeds"]))
    records = facts["records"]
    lines.append(
        f"A candidate that beat the best kept one on seed {facts['seeds'][0]} was re-run with it on seeds "
        f"{seeds} and kept only if its paired mean gain exceeded min_delta "
        f"({campaign.profile.watchdog.min_delta:g}). {len(records)} went to confirmation: "
        f"{facts['confirmed']} confirmed, {len(records) - facts['confirmed']} not confirmed (discarded)."
    )
    if records:
        lines += ["", "| candidate | incumbent | per seed: candidate vs incumbent | paired gain | outcome |"]
        lines.append("|---|---|---|---|---|")
        for record in records:
            c = record["confirmation"]
            scores = c.get("candidate_scores") or {}
            incumbent = c.get("incumbent_scores") or {}
            per_seed = "; ".join(f"{s}: {_f(scores.get(s))} vs {_f(incumbent.get(s))}" for s in scores)
            gain = "-" if c.get("gain") is None else f"{c['gain']:+.4f}"
            outcome = "confirmed, kept" if c.get("confirmed") else "not confirmed, discarded"
            lines.append(f"| {record['id']} | {c.get('incumbent', '-')} | {per_seed} | {gain} | {outcome} |")
    share = facts["runtime_seconds"] / facts["candidate_seconds"] if facts["candidate_seconds"] else 0.0
    lines += [
        "",
        f"Confirmation runs took {facts['runtime_seconds'] / 3600:.2f} h, {share:.0%} of the campaign's "
        f"{facts['candidate_seconds'] / 3600:.2f} h of candidate runtime (they are counted in it; runs "
        "already in evidence.tsv were reused, not repeated).",
    ]
    return "\n".join(lines) + "\n"
