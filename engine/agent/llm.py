"""The LLM research agent: an OpenAI-format tool loop over ``litellm.completion``.

Any LiteLLM model string works (``openai/...``, ``anthropic/...``, ``hosted_vllm/...`` with
an API base, ``ollama_chat/...``). Keys come from the environment only and are never
recorded. Models without tool calling use a JSON-in-text protocol with the same actions:
reply with ``{"tool": NAME, "arguments": {...}}``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext, ProposerError
from engine.agent.literature import watchdog
from engine.agent.literature_cards import CardError, Draft, conclude, first_json_object, parse_cards
from engine.agent.literature_sources import cache_dir, expressible_in, gather, paper_digest
from engine.agent.provider import TRANSIENT, api_key, classify, one_line
from engine.agent.scripted import ScriptedProposer, literature_symptoms
from engine.agent.tools import TOOL_NAMES, TOOL_SCHEMAS, AgentWorkspace

T = TypeVar("T")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price table at import

JSON_PROTOCOL = (
    "Your model has no tool calling here. To act, reply with exactly one JSON object and nothing else: "
    '{"tool": "<name>", "arguments": {...}}. The tools are: ' + ", ".join(TOOL_NAMES) + "."
)


def _load_litellm():
    import litellm

    litellm.suppress_debug_info = True
    litellm.drop_params = True
    return litellm


SKILLS = (
    "operating-rules.md",
    "args-and-aggregators.md",
    "reading-results.md",
    "architectures.md",
    "crashes.md",
    "provenance.md",
    "literature.md",
)
MEMORY_DESCRIPTION = 160  # characters of each ledger description in the working memory (prompt budget)
PROMPT_BUDGET_TOKENS = 7000  # program.md + skills + profile + working memory (stated in program.md)


def system_prompt(root: Path, profile_summary: str, memory: str) -> str:
    parts = [(root / "program.md").read_text(encoding="utf-8") if (root / "program.md").exists() else ""]
    for name in SKILLS:
        path = root / "skills" / name
        if path.exists():
            parts.append(path.read_text(encoding="utf-8"))
    parts.append("## This campaign's profile\n" + profile_summary)
    parts.append("## Working memory\n" + memory)
    parts.append("Use the tools to inspect, edit and validate, then call submit_candidate exactly once.")
    return "\n\n".join(p for p in parts if p)


def prompt_tokens(text: str, model: str = "gpt-4o-mini") -> int:
    """The size of a prompt in tokens, by LiteLLM's counter (its bundled tokenizer, no network)."""
    return int(_load_litellm().token_counter(model=model, text=text))


def working_memory(context: ProposalContext) -> str:
    rows = context.rows
    scored = [r for r in rows if r.score is not None and r.status not in ("crash", "literature")]
    best = max(scored, key=lambda r: r.score if context.profile.maximize else -r.score, default=None)
    lines = [
        f"best: {best.score:.6f} ({best.description})"
        if best
        else f"best: none yet ({'the baseline is running' if context.in_flight else 'propose the baseline first'})",
        f"best stack args: {json.dumps(context.best_args)}",
        "last rows (status, score, description):",
    ]
    lines += [
        f"- {r.status} {'' if r.score is None else f'{r.score:.4f}'} {r.description[:MEMORY_DESCRIPTION]}"
        for r in rows[-20:]
    ]
    worse = [
        r.description[:MEMORY_DESCRIPTION]
        for r in rows
        if r.status == "discard"
        and best
        and r.score is not None
        and (r.score < best.score if context.profile.maximize else r.score > best.score)
    ][-10:]
    if worse:
        lines.append("null or worse so far: " + "; ".join(worse))
    crashes = [
        f"{rec['id']}: {rec.get('error', '')}" for rec in context.records if rec.get("status") == "crash"
    ][-5:]
    if crashes:
        lines.append("crashes: " + "; ".join(crashes))
    rejected = [
        f"{rec['id']}: {rec.get('error', '')}" for rec in context.records if rec.get("status") == "rejected"
    ][-5:]
    if rejected:
        lines.append("rejected before running: " + "; ".join(rejected))
    state = watchdog(
        rows,
        context.profile.watchdog.max_scored_since_reset,
        context.profile.watchdog.min_delta,
        context.profile.maximize,
    )
    lines.append(
        "watchdog: " + state.reason + ("; literature mode recommended" if state.recommend_literature else "")
    )
    if context.in_flight:  # other slots' candidates: proposing one of them again wastes a run
        running = [f"{c['id']}: {c['description'][:MEMORY_DESCRIPTION]}" for c in context.in_flight[-8:]]
        running += [f"and {len(context.in_flight) - 8} more"] if len(context.in_flight) > 8 else []
        lines.append("running now, not yet scored (do not propose these again): " + "; ".join(running))
    if context.notes:
        lines.append("notes from the human: " + " | ".join(context.notes[-10:]))
    return "\n".join(lines)


def parse_json_action(text: str) -> tuple[str, dict] | None:
    """The first complete ``{"tool": ..., "arguments": {...}}`` object in a text reply (fenced or
    bare); prose after it, braces included, does not matter."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text or ""):
        try:
            data, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and isinstance(data.get("tool"), str):
            arguments = data.get("arguments") or {}
            return data["tool"], arguments if isinstance(arguments, dict) else {}
    return None


def detect_tool_calling(model: str) -> bool:
    """Native tool calls when LiteLLM's model map says the model has them; a model it does not
    know (a local or OpenAI-compatible server) is tried with tools, and a text reply still works
    through the JSON-in-text parser."""
    litellm = _load_litellm()
    try:
        info = litellm.get_model_info(model)
    except Exception:  # not in the map: ModelNotMappedError and friends
        return True
    return bool(info.get("supports_function_calling"))


QUERIES_REQUEST = (
    "The campaign entered the literature loop. Symptoms:\n{symptoms}\n\n"
    "Write exactly 3 search queries (a few technical keywords each) that could find FL mechanisms "
    'addressing these symptoms. Reply with only a JSON object: {{"queries": ["...", "...", "..."]}}'
)
CARDS_REQUEST = (
    "Papers triaged from your queries (cite their refs):\n{results}\n\n"
    "Now write 3 challenge cards (what limits the current recipe) and 3 to 5 proposal cards. "
    "Reply with only a JSON object:\n"
    '{{"challenges": [{{"title": "...", "evidence": "...", "hypothesis": "..."}}], '
    '"proposals": [{{"mechanism": "...", "sources": ["arXiv:..."], "implementation_surface": '
    '"args, or the editable file it changes", "change": "...", "args": {{"<mutable arg>": value}}, '
    '"expected_effect": "...", "runtime_note": "...", "contract_risk": "...", '
    '"falsifying_observation": "...", "scores": {{"expected_gain": 1-5, "contract_safety": 1-5, '
    '"simplicity": 1-5, "evidence": 1-5, "novelty": 1-5, "runtime_cost": 1-5}}}}]}}\n'
    "args may only use the profile's mutable args and aggregator choices: {mutable}. "
    "A proposal that changes code names its editable file as implementation_surface."
)


def keep_transcript(context: ProposalContext, messages: list[dict], telemetry: dict) -> None:
    """The agent's conversation, redacted, kept with the candidate (``runs/<id>/agent.jsonl``)."""
    if context.root is None or context.tag is None:
        return
    from engine.agent.redaction import redact
    from engine.campaign.options import campaign_dir

    cid = f"c{context.proposed + 1:03d}"
    path = campaign_dir(Path(context.root), context.tag) / "runs" / cid / "agent.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [redact(json.dumps(message, default=str)) + "\n" for message in messages]
    path.write_text("".join(lines), encoding="utf-8")
    telemetry["transcript"] = f"runs/{cid}/agent.jsonl"


def new_telemetry(model: str) -> dict:
    return {
        "model": model,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": 0.0,
        "latency_seconds": 0.0,
        "tool_calls": [],
        "errors": [],
        "steps": 0,
    }


def parse_queries(text: str) -> list[str]:
    data = first_json_object(text)
    queries = data.get("queries") if data else None
    if (
        not isinstance(queries, list)
        or not queries
        or not all(isinstance(q, str) and q.strip() for q in queries)
    ):
        raise CardError('expected {"queries": [three strings]}')
    if any(not re.search(r"[A-Za-z]{3}", q) for q in queries):
        raise CardError("each query needs real keywords, not placeholders")
    return [q.strip()[:200] for q in queries[:3]]


class LLMProposer:
    name = "llm"
    # Each call works on its own draft (AgentWorkspace), so a campaign with several slots may have
    # one call in flight per slot (engine/campaign/proposals.py): a 30 s model call then no longer
    # starves slots whose candidates finish faster than slots x 30 s.
    concurrent_proposals = 16

    def __init__(
        self,
        model: str,
        api_base: str | None = None,
        fallback_model: str | None = None,
        max_steps: int = 16,
        max_tokens: int = 60_000,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 2.0,
        tool_calling: bool | None = None,
        max_completion_tokens: int = 2048,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.fallback_model = fallback_model
        self.max_steps = max_steps
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        # None: detected from LiteLLM's model capabilities; True/False: forced by the user.
        self.tool_calling = detect_tool_calling(model) if tool_calling is None else tool_calling
        self.max_completion_tokens = max_completion_tokens
        self.total_cost = 0.0
        self.total_tokens = 0
        self._totals = threading.Lock()  # concurrent proposals add to the totals
        self._scripted = ScriptedProposer()

    # -- one completion, with retries and the fallback model -------------------------------------

    def _complete(self, messages: list[dict], telemetry: dict, tools: bool = True):
        # Why a loop of our own: LiteLLM's ``num_retries`` reaches OpenAI-compatible providers as
        # the SDK's ``max_retries`` (silent retries: no failure callback per attempt), and its
        # ``fallbacks=`` reports only the final outcome. Measured on litellm 1.103 against
        # tests/openai_server.py; per-attempt telemetry needs every attempt to come back here.
        litellm = _load_litellm()
        models = [self.model] + ([self.fallback_model] if self.fallback_model else [])
        last_error, kind = "", None
        for model in models:
            for attempt in range(self.retries + 1):
                started = time.monotonic()
                try:
                    # max_retries=0: the SDK's silent retries would hide failures from telemetry.
                    kwargs = {
                        "model": model,
                        "messages": messages,
                        "timeout": self.timeout,
                        "max_retries": 0,
                        "max_tokens": self.max_completion_tokens,
                    }
                    if self.tool_calling and tools:
                        kwargs["tools"] = TOOL_SCHEMAS
                    if self.api_base:
                        kwargs["api_base"] = self.api_base
                        kwargs["api_key"] = api_key(self.api_base)
                    response = litellm.completion(**kwargs)
                except Exception as error:  # provider errors come in many classes; retry the transient ones
                    kind = classify(error)
                    last_error = f"{kind.value} error: {one_line(error)}"
                    telemetry["errors"].append(last_error)
                    if kind not in TRANSIENT or attempt == self.retries:
                        break  # waiting mends no auth error, unknown model or refused connection
                    time.sleep(self.backoff * (2**attempt))
                    continue
                telemetry["latency_seconds"] += time.monotonic() - started
                telemetry["model"] = model
                self._account(litellm, response, telemetry)
                return response
        raise ProposerError(
            f"the model did not answer ({last_error})", telemetry, kind=kind.value if kind else ""
        )

    def _account(self, litellm, response, telemetry: dict) -> None:
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        try:
            cost = float(litellm.completion_cost(completion_response=response) or 0.0)
        except Exception:  # local and unknown models have no price: they cost 0
            cost = 0.0
        telemetry["prompt_tokens"] += prompt
        telemetry["completion_tokens"] += completion
        telemetry["cost_usd"] += cost
        with self._totals:
            self.total_tokens += prompt + completion
            self.total_cost += cost

    # -- the agent loop ---------------------------------------------------------------------------

    def propose(self, context: ProposalContext) -> CandidateSpec:
        if context.baseline_due:  # the baseline needs no model: it is the profile as declared
            return self._scripted.propose(context)
        workspace = AgentWorkspace(context)
        telemetry = new_telemetry(self.model)
        telemetry["tool_calling"] = self.tool_calling
        summary = workspace.get_profile()
        messages = [
            {
                "role": "system",
                "content": system_prompt(Path(context.root), summary, working_memory(context))
                + ("" if self.tool_calling else "\n\n" + JSON_PROTOCOL),
            },
            {
                "role": "user",
                "content": (context.directive + " " if context.directive else "")
                + "Propose the next candidate. Inspect what you need, validate, then submit.",
            },
        ]
        for step in range(self.max_steps):
            telemetry["steps"] = step + 1
            if telemetry["prompt_tokens"] + telemetry["completion_tokens"] > self.max_tokens:
                raise ProposerError(
                    f"token cap of {self.max_tokens} per candidate reached without a submission"
                )
            message = self._complete(messages, telemetry).choices[0].message
            calls = list(getattr(message, "tool_calls", None) or [])
            content = getattr(message, "content", None) or ""
            if calls:
                messages.append(
                    {
                        "role": "assistant",
                        "content": content or None,
                        "tool_calls": [
                            {
                                "id": c.id,
                                "type": "function",
                                "function": {
                                    "name": c.function.name,
                                    "arguments": c.function.arguments or "{}",
                                },
                            }
                            for c in calls
                        ],
                    }
                )
                for call in calls:
                    result = workspace.call(call.function.name, call.function.arguments)
                    telemetry["tool_calls"].append({"tool": call.function.name, "result": result[:120]})
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": result[:6000]})
            else:
                action = parse_json_action(content)
                if action is None:
                    messages += [
                        {"role": "assistant", "content": content[:2000]},
                        {"role": "user", "content": "error: no tool call found. " + JSON_PROTOCOL},
                    ]
                    telemetry["tool_calls"].append({"tool": "(none)", "result": "no tool call"})
                    continue
                result = workspace.call(*action)
                telemetry["tool_calls"].append({"tool": action[0], "result": result[:120]})
                messages += [
                    {"role": "assistant", "content": content[:2000]},
                    {"role": "user", "content": f"result of {action[0]}: {result[:6000]}"},
                ]
            if workspace.submitted is not None:
                spec = workspace.submitted
                spec.telemetry = telemetry
                keep_transcript(context, messages, telemetry)
                return spec
        keep_transcript(context, messages, telemetry)
        raise ProposerError(f"no submit_candidate within {self.max_steps} steps", telemetry)

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult:
        """Queries, search, cards: the model writes, the engine ranks (literature_cards.conclude).

        Whatever the model fails to give is taken from the scripted bibliography draft, and the
        worksheet says so: a poor or dead model never stops the campaign here."""
        found = literature_symptoms(context)
        fallback = self._scripted.draft(context, search_sources=False)
        telemetry = new_telemetry(self.model)
        notes: list[str] = []
        summary = AgentWorkspace(context).get_profile() if context.root else "{}"
        messages = [
            {
                "role": "system",
                "content": system_prompt(Path(context.root or "."), summary, working_memory(context)),
            },
            {"role": "user", "content": QUERIES_REQUEST.format(symptoms="\n".join(f"- {s}" for s in found))},
        ]
        try:
            queries = self._ask_json(messages, telemetry, parse_queries)
        except (ProposerError, CardError) as error:
            notes.append(f"the model's queries were unusable ({error}); the scripted queries were used")
            queries = fallback.queries
        gathered = gather(queries, cache_dir(context), expressible_in(context.profile))
        notes += gathered.notes
        results = paper_digest(gathered.papers)
        messages.append(
            {
                "role": "user",
                "content": CARDS_REQUEST.format(
                    results=results or "no match",
                    mutable=", ".join(sorted(context.profile.mutable))
                    + "; aggregator in "
                    + ", ".join(context.profile.aggregators.choices),
                ),
            }
        )
        try:
            challenges, proposals, skipped = self._ask_json(messages, telemetry, parse_cards)
            notes += skipped
        except (ProposerError, CardError) as error:
            notes.append(f"the model's cards were unusable ({error}); bibliography cards were used")
            challenges, proposals = fallback.challenges, fallback.proposals
        draft = Draft(
            self.model,
            queries,
            gathered.hits,
            challenges or fallback.challenges,
            proposals,
            notes,
            telemetry,
            gathered.papers,
            gathered.mode,
        )
        result = conclude(draft, context, width, found)
        result.telemetry = {k: v for k, v in telemetry.items() if k not in ("tool_calls",)}
        return result

    def _ask_json(self, messages: list[dict], telemetry: dict, parse: Callable[[str], T]) -> T:
        """One JSON answer, parsed; a bad one is shown its error and asked again once."""
        error: Exception | None = None
        for _ in range(2):
            telemetry["steps"] += 1
            content = getattr(
                self._complete(messages, telemetry, tools=False).choices[0].message, "content", ""
            )
            content = content or ""
            messages.append({"role": "assistant", "content": content[:4000]})
            try:
                return parse(content)
            except CardError as problem:
                error = problem
                telemetry["errors"].append(f"unusable reply: {problem}")
                messages.append(
                    {"role": "user", "content": f"error: {problem}. Reply with only the JSON object."}
                )
        raise CardError(str(error))
