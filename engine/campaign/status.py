"""Naming, finding and summarising the campaigns of a workspace (for ``afr status``, ``list``, ``resume``)."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
from pathlib import Path

import tomllib

from engine.campaign.timing import time_totals
from engine.control.events import EventType
from engine.store.journal import read_events
from engine.store.ledger import Ledger, LedgerError, ledger_warnings

TAG_PATTERN = re.compile(r"^[a-z0-9._-]+$")
DATE_PATTERN = re.compile(r"(\d{8})")


def campaigns_root(root: Path) -> Path:
    return Path(root) / ".afr" / "campaigns"


def tag_problem(tag: str) -> str | None:
    if not TAG_PATTERN.match(tag):
        return f"tag {tag!r} may only use lowercase letters, digits, '.', '_' and '-'"
    for match in DATE_PATTERN.findall(tag):
        try:
            dt.datetime.strptime(match, "%Y%m%d")
            return None
        except ValueError:
            continue
    return f"tag {tag!r} must contain a YYYYMMDD date, e.g. heart-fedprox-{dt.date.today():%Y%m%d}"


def default_tag(root: Path, profile: str) -> str:
    """``<host>-<profile>-<YYYYMMDD>``, with ``-2``, ``-3``... if that campaign exists."""
    host = re.sub(r"[^a-z0-9]+", "-", socket.gethostname().lower()).strip("-")[:20] or "host"
    base = f"{host}-{profile.replace('_', '-')}-{dt.date.today():%Y%m%d}"
    tag, number = base, 1
    while (campaigns_root(root) / tag).exists():
        number += 1
        tag = f"{base}-{number}"
    return tag


def list_tags(root: Path) -> list[str]:
    """Campaign tags, oldest first."""
    base = campaigns_root(root)
    if not base.is_dir():
        return []
    found = [d for d in base.iterdir() if (d / "campaign.json").is_file()]
    return [
        d.name
        for d in sorted(found, key=lambda d: json.loads((d / "campaign.json").read_text()).get("created", 0))
    ]


def resolve_tag(root: Path, tag: str | None) -> str:
    tags = list_tags(root)
    if tag is None:
        if not tags:
            raise FileNotFoundError(f"no campaign in {root}; start one with `afr run`")
        return tags[-1]
    if tag not in tags:
        raise FileNotFoundError(f"no campaign {tag!r} in {root} (campaigns: {', '.join(tags) or 'none'})")
    return tag


def last_state(campaign_dir: Path) -> str:
    """The campaign's state as its journal last recorded it."""
    return state_and_reason(campaign_dir)[0]


def state_and_reason(campaign_dir: Path) -> tuple[str, str]:
    """The last recorded state, and why the campaign paused, stopped or finished ('' while running)."""
    journal = campaign_dir / "journal.jsonl"
    if not journal.exists():
        return "new", ""
    state, reason = "unknown", ""
    for event in read_events(journal):
        if event.type is EventType.STATE:
            state = event.data["state"]
            if state == "running":
                reason = ""
        elif event.type is EventType.PAUSED:
            reason = event.data.get("note") or "paused by the human"
        elif event.type is EventType.STOPPED and event.data.get("phase") == "done":
            reason = event.data.get("reason", "")
        elif event.type is EventType.FINISHED:
            state, reason = "finished", event.data.get("reason", "")
    return state, reason


def llm_totals(directory: Path, records: dict[str, dict]) -> dict:
    """Tokens, cost and model calls of the whole campaign: every proposal (rejected ones too) and
    every literature cycle. All zero for the scripted proposer."""
    parts = [r.get("telemetry") or {} for r in records.values()]
    journal = directory / "journal.jsonl"
    if journal.exists():
        parts += [event.data for event in read_events(journal) if event.type is EventType.TELEMETRY]
    models = sorted({p["model"] for p in parts if p.get("model")})
    return {
        "models": models,
        "prompt_tokens": sum(int(p.get("prompt_tokens", 0)) for p in parts),
        "completion_tokens": sum(int(p.get("completion_tokens", 0)) for p in parts),
        "cost_usd": round(sum(float(p.get("cost_usd", 0.0)) for p in parts), 6),
        "model_calls": sum(int(p.get("steps", 0)) for p in parts),
    }


def sandbox_label(meta: dict, records: dict[str, dict]) -> str:
    """"bwrap" when every run so far was sandboxed, "none" when any was not (or none could be)."""
    ran = [r.get("sandbox", "none") for r in records.values() if "run_status" in r]
    if not ran:
        return meta.get("sandbox", "none")
    return "bwrap" if all(kind == "bwrap" for kind in ran) else "none"


def scored_by_label(records: dict[str, dict]) -> str | None:
    """Who computed the scores of record when it was not afr's evaluator: "sites (prod)" on a deployment."""
    found = {(r.get("evaluator") or {}).get("scored_by") for r in records.values()} - {None}
    return ", ".join(sorted(found)) or None


def _maximize(root: Path, meta: dict) -> bool:
    """The metric direction of the profile as the campaign started (its snapshot in campaign.json,
    else the workspace's profile file); higher is better when neither says otherwise."""
    text = meta.get("profile_toml") or ""
    try:
        if not text:
            text = (Path(root) / "profiles" / f"{meta['profile']}.toml").read_text()
        return tomllib.loads(text).get("metric", {}).get("direction", "maximize") != "minimize"
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return True


def _events(directory: Path) -> list:
    journal = directory / "journal.jsonl"
    return read_events(journal) if journal.exists() else []


def summary(root: Path, tag: str) -> dict:
    directory = campaigns_root(root) / tag
    try:
        return _summary(root, directory, tag)
    except (LedgerError, json.JSONDecodeError) as error:  # only this campaign fails, and says where
        raise LedgerError(f"campaign {tag}: {error}") from None


def _summary(root: Path, directory: Path, tag: str) -> dict:
    meta = json.loads((directory / "campaign.json").read_text())
    ledger = Ledger(directory)
    rows = ledger.rows()
    state, reason = state_and_reason(directory)
    candidates = [r for r in rows if r.status != "literature"]
    scored = [r for r in candidates if r.score is not None and r.status != "crash"]
    maximize = _maximize(root, meta)
    kept = [r for r in scored if r.status == "keep"]  # a discard that did not confirm is not the best
    best = max(kept or scored, key=lambda r: r.score if maximize else -r.score, default=None)
    records = ledger.latest_candidates()
    return {
        "tag": tag,
        "profile": meta["profile"],
        "branch": f"autoresearch/{tag}",
        "state": state,
        "reason": reason,
        "ledger_warnings": ledger_warnings(ledger, tag),
        "options": meta.get("options", {}),
        "candidates": len(candidates),
        "kept": sum(r.status == "keep" for r in rows),
        "discarded": sum(r.status == "discard" for r in rows),
        "crashes": sum(r.status == "crash" for r in rows),
        "literature": sum(r.status == "literature" for r in rows),
        "rejected": sum(r.get("status") == "rejected" for r in records.values()),
        "aborted": sum(r.get("status") == "aborted" for r in records.values()),
        "baseline": scored[0].score if scored else None,
        "best": best.score if best else None,
        "maximize": maximize,
        "best_description": best.description if best else "",
        "best_candidate": best.artifacts.removeprefix("runs/") if best else None,
        "wall_hours": sum(r.runtime_seconds for r in rows) / 3600,
        "time": time_totals(records, meta.get("created"), events=_events(directory)),
        "llm": llm_totals(directory, records),
        "sandbox": sandbox_label(meta, records),
        "scored_by": scored_by_label(records),
        "directory": str(directory),
    }
