"""The literature worksheet: challenge and proposal cards, their ranking, and the selection.

Whoever writes the cards (the LLM agent, or the scripted proposer from the bundled
bibliography), the engine scores, filters and selects them here, so the rule is the same for
every proposer: ``2*expected_gain + 2*contract_safety + simplicity + evidence + novelty -
runtime_cost``; duplicates, known-null ideas and contract-breaking proposals are dropped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext
from engine.agent.configs import config_key, describe_args, effective_args
from engine.guard.validate import path_problem

SCORE_KEYS = ("expected_gain", "contract_safety", "simplicity", "evidence", "novelty", "runtime_cost")
TEXT_KEYS = (
    "implementation_surface",
    "change",
    "expected_effect",
    "runtime_note",
    "contract_risk",
    "falsifying_observation",
)
MIN_CONTRACT_SAFETY = 3  # a proposal its own author rates riskier than this is not run


class CardError(ValueError):
    """A card that cannot be used; the message says which field and why."""


@dataclass
class ChallengeCard:
    title: str
    evidence: str = ""
    hypothesis: str = ""


@dataclass
class ProposalCard:
    mechanism: str
    sources: list[str]
    change: str
    scores: dict[str, int]
    args: dict = field(default_factory=dict)  # mutable-arg overrides; {} when the change is code
    implementation_surface: str = "args"
    expected_effect: str = ""
    runtime_note: str = ""
    contract_risk: str = ""
    falsifying_observation: str = ""

    @property
    def score(self) -> int:
        s = self.scores
        return (
            2 * s["expected_gain"]
            + 2 * s["contract_safety"]
            + s["simplicity"]
            + s["evidence"]
            + s["novelty"]
            - s["runtime_cost"]
        )

    @property
    def code_change(self) -> bool:
        return self.implementation_surface.strip().lower() not in ("args", "profile args", "")


@dataclass
class Draft:
    """What a proposer brings to a literature cycle, before the engine ranks it."""

    author: str  # "scripted" or the model string
    queries: list[str]
    hits: dict[str, list[str]]  # query -> "key (source)" of the bibliography entries found
    challenges: list[ChallengeCard]
    proposals: list[ProposalCard]
    notes: list[str] = field(default_factory=list)  # fallbacks and refusals, for the worksheet
    telemetry: dict = field(default_factory=dict)
    papers: list = field(default_factory=list)  # literature_sources.Paper: the triaged candidates
    sources: str = ""  # "online" or "offline": where the papers came from


# -- parsing what a model wrote --------------------------------------------------------------------


def parse_challenge(raw: object) -> ChallengeCard:
    if not isinstance(raw, dict):
        raise CardError("a challenge card must be an object")
    title = str(raw.get("title") or raw.get("challenge") or "").strip()
    if not title:
        raise CardError("challenge card without a title")
    return ChallengeCard(
        title[:200], str(raw.get("evidence", ""))[:400], str(raw.get("hypothesis", ""))[:400]
    )


def parse_proposal(raw: object) -> ProposalCard:
    if not isinstance(raw, dict):
        raise CardError("a proposal card must be an object")
    mechanism = str(raw.get("mechanism") or "").strip()
    if not mechanism:
        raise CardError("proposal card without a mechanism")
    sources = raw.get("sources") or []
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) and s.strip() for s in sources):
        raise CardError(f"{mechanism}: sources must be a list of strings")
    scores = raw.get("scores")
    if not isinstance(scores, dict):
        raise CardError(f"{mechanism}: scores must be an object with {', '.join(SCORE_KEYS)}")
    clean: dict[str, int] = {}
    for key in SCORE_KEYS:
        value = scores.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 5:
            raise CardError(f"{mechanism}: score {key} must be a number from 1 to 5, not {value!r}")
        clean[key] = int(round(value))
    args = raw.get("args") or {}
    if not isinstance(args, dict):
        raise CardError(f"{mechanism}: args must be an object of mutable-arg overrides")
    text = {key: str(raw.get(key) or "")[:500] for key in TEXT_KEYS}
    text["change"] = text["change"] or mechanism
    text["implementation_surface"] = text["implementation_surface"] or "args"
    sources = [source.strip()[:120] for source in sources][:5]
    return ProposalCard(mechanism[:120], sources, scores=clean, args=args, **text)


def parse_cards(text: str) -> tuple[list[ChallengeCard], list[ProposalCard], list[str]]:
    """Cards from a model reply (a JSON object, fenced or bare). Bad cards are skipped with a note;
    a reply with no usable proposal raises ``CardError``."""
    data = first_json_object(text)
    if data is None:
        raise CardError("no JSON object with 'challenges' and 'proposals' found")
    notes: list[str] = []
    challenges, proposals = [], []
    for raw in data.get("challenges") or []:
        try:
            challenges.append(parse_challenge(raw))
        except CardError as error:
            notes.append(f"challenge card skipped: {error}")
    for raw in data.get("proposals") or []:
        try:
            proposals.append(parse_proposal(raw))
        except CardError as error:
            notes.append(f"proposal card skipped: {error}")
    if not proposals:
        raise CardError("no usable proposal card" + (f" ({notes[-1]})" if notes else ""))
    return challenges[:5], proposals[:8], notes


def first_json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (models wrap JSON in prose and code fences)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text or ""):
        try:
            data, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            return data
    return None


# -- ranking and selection --------------------------------------------------------------------------


def normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", name.lower()).strip()


def verdicts(draft: Draft, context: ProposalContext, width: int) -> tuple[list[ProposalCard], dict[int, str]]:
    """The selected cards (best first, at most ``width``) and, per card index, why it was dropped."""
    profile = context.profile
    tried = {}
    for record in context.records:
        tried.setdefault(config_key(profile, record.get("args") or {}), record)
    null_mechanisms = {
        normalise(record.get("description", "")): record
        for record in context.records
        if record.get("target") == "literature" and record.get("status") in ("discard", "crash")
    }
    dropped: dict[int, str] = {}
    seen: dict[str, str] = {}
    order = sorted(range(len(draft.proposals)), key=lambda i: -draft.proposals[i].score)
    selected: list[ProposalCard] = []
    for index in order:
        card = draft.proposals[index]
        reason = _contract_problem(card, context)
        if not reason and not card.sources:
            reason = "no source: a literature proposal must cite one"
        full = effective_args(profile, {**context.best_args, **card.args})
        key = config_key(profile, full) if not card.code_change else "code:" + normalise(card.mechanism)
        if not reason and key in seen:
            reason = f"duplicate of {seen[key]}"
        if not reason and not card.code_change and key in tried:
            record = tried[key]
            reason = f"known: tried as {record['id']} ({record.get('status')}, score {record.get('score')})"
        if not reason:
            name = normalise(card.mechanism)
            for description, record in null_mechanisms.items():
                if name and name in description:
                    reason = f"known null: {record['id']} implemented it and was a {record.get('status')}"
                    break
        if not reason:
            seen[key] = card.mechanism
            if len(selected) >= width:
                reason = f"ranked below the {width} selected"
        if reason:
            dropped[index] = reason
            continue
        card.args = full
        selected.append(card)
    return selected, dropped


def _contract_problem(card: ProposalCard, context: ProposalContext) -> str:
    profile = context.profile
    if card.scores["contract_safety"] < MIN_CONTRACT_SAFETY:
        return f"contract risk: its own contract_safety score is {card.scores['contract_safety']}"
    problems = profile.check_args(card.args)
    if problems:
        return "contract: " + "; ".join(problems)
    if card.code_change:
        for path in re.findall(r"[\w./-]+\.(?:py|toml|md|json)", card.implementation_surface):
            problem = path_problem(path, profile)
            if problem:
                return f"contract: {problem}"
    return ""


def spec_for(card: ProposalCard) -> CandidateSpec:
    """The candidate that implements a selected card; code changes go back to the agent."""
    cite = " ".join(f"[src: {source}]" for source in card.sources)
    if card.code_change:
        directive = (
            f"Implement this selected literature proposal: {card.mechanism}. Change: {card.change}. "
            f"Surface: {card.implementation_surface}. Expected effect: {card.expected_effect}. "
            f"Put {cite} in the description and list the sources in source_refs."
        )
        return CandidateSpec(
            f"literature: {card.mechanism} {cite}",
            "literature",
            card.args,
            source_refs=card.sources,
            directive=directive,
        )
    return CandidateSpec(
        f"literature: {card.mechanism} ({describe_args(card.args)}) {cite}",
        "literature",
        card.args,
        source_refs=list(card.sources),
    )


# -- the worksheet ----------------------------------------------------------------------------------


def conclude(draft: Draft, context: ProposalContext, width: int, symptoms: list[str]) -> LiteratureResult:
    """Rank, filter and select the draft's proposals; write the worksheet; the ledger summary."""
    selected, dropped = verdicts(draft, context, width)
    lines = [f"# Literature review ({draft.author})", "", "## Symptoms", ""]
    lines += [f"- {s}" for s in symptoms] or ["- (none recorded)"]
    lines += ["", "## Search queries", ""]
    for number, query in enumerate(draft.queries, 1):
        found = ", ".join(draft.hits.get(query, [])) or "no bibliography match"
        lines.append(f"{number}. `{query}` → {found}")
    if draft.papers:
        where = (
            "arXiv, OpenAlex and Semantic Scholar (answers cached in literature/cache/)"
            if draft.sources == "online"
            else "the bundled bibliography (offline)"
        )
        kept = sum(p.verdict.startswith("kept") for p in draft.papers)
        lines += ["", "## Candidate papers", "", f"Searched: {where}; {len(draft.papers)} triaged to {kept}.", ""]
        lines += ["| ref | title / year | found by | query | triage |", "|---|---|---|---|---|"]
        lines += [
            f"| {p.source} | {p.title[:90]} ({p.year or '?'}) | {p.found_by} | `{p.query}` | {p.verdict} |"
            for p in draft.papers
        ]
    lines += ["", "## Challenge cards", ""]
    for number, card in enumerate(draft.challenges, 1):
        lines += [
            f"### C{number}. {card.title}",
            f"- evidence: {card.evidence}",
            f"- hypothesis: {card.hypothesis}",
            "",
        ]
    lines += [
        "## Proposal cards",
        "",
        "score = 2*expected_gain + 2*contract_safety + simplicity + evidence + novelty - runtime_cost",
        "",
        "| # | mechanism | sources | gain | safety | simpl. | evid. | novelty | runtime | score | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, card in enumerate(draft.proposals, 1):
        s = card.scores
        verdict = "selected" if (number - 1) not in dropped else "dropped: " + dropped[number - 1]
        lines.append(
            f"| P{number} | {card.mechanism} | {', '.join(card.sources) or '-'} | {s['expected_gain']} | "
            f"{s['contract_safety']} | {s['simplicity']} | {s['evidence']} | {s['novelty']} | "
            f"{s['runtime_cost']} | {card.score} | {verdict} |"
        )
    for number, card in enumerate(draft.proposals, 1):
        lines += [
            "",
            f"### P{number}. {card.mechanism}",
            f"- sources: {', '.join(card.sources) or '-'}",
            f"- implementation surface: {card.implementation_surface}",
            f"- change: {card.change}" + (f" (args: {describe_args(card.args)})" if card.args else ""),
            f"- expected effect: {card.expected_effect or '-'}",
            f"- runtime cost: {card.runtime_note or '-'}",
            f"- contract risk: {card.contract_risk or '-'}",
            f"- falsifying observation: {card.falsifying_observation or '-'}",
        ]
    specs = [spec_for(card) for card in selected]
    lines += ["", "## Selected", ""]
    lines += [f"- {spec.description}" for spec in specs] or ["- none: every proposal was dropped"]
    if draft.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in draft.notes]
    if draft.telemetry:
        t = draft.telemetry
        lines += [
            "",
            "## Agent telemetry",
            "",
            f"- model {t.get('model', draft.author)}, {t.get('prompt_tokens', 0)} prompt + "
            f"{t.get('completion_tokens', 0)} completion tokens, ${t.get('cost_usd', 0.0):.4f}, "
            f"{t.get('latency_seconds', 0.0):.1f} s",
        ]
    summary = "literature review: " + (
        "; ".join(f"{card.mechanism} {' '.join(card.sources)}" for card in selected) or "no proposal selected"
    )
    return LiteratureResult("\n".join(lines), specs, summary[:300])
