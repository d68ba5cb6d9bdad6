"""The agent's tools: a public contract (names and arguments) that other clients rely on.

The agent works on a draft of one candidate: the files of the parent commit plus its own
pending edits, held in memory until the engine writes them into the candidate's worktree.
Every result is short and explicit; a refused action says why, in one line.
"""

from __future__ import annotations

import difflib
import json
import uuid
from pathlib import Path, PurePosixPath

import git

from engine.agent.base import CandidateSpec, ProposalContext
from engine.agent.evidence_tools import EvidenceReader, EvidenceToolError
from engine.agent.literature import search
from engine.campaign.options import campaign_dir
from engine.guard.validate import content_problem, path_problem, validate
from engine.profile import Profile
from engine.store.workspace import safe_repo

TARGETS = ("scalar", "code", "architecture", "literature")


def _schema(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": False,
            },
        },
    }


_STR = {"type": "string"}
TOOL_SCHEMAS = [
    _schema("list_surface", "List the editable and read-only files of this task.", {}, []),
    _schema("read_file", "Read an editable or read-only context file.", {"path": _STR}, ["path"]),
    _schema(
        "edit_file",
        "Replace one exact, unique occurrence of `old` with `new` in an editable file.",
        {"path": _STR, "old": _STR, "new": _STR},
        ["path", "old", "new"],
    ),
    _schema(
        "write_file",
        "Replace the whole content of an editable file.",
        {"path": _STR, "content": _STR},
        ["path", "content"],
    ),
    _schema("show_diff", "Show the pending diff of this candidate.", {}, []),
    _schema(
        "validate",
        "Run the guard on the pending candidate (with the args you intend to submit).",
        {"args": {"type": "object"}},
        [],
    ),
    _schema("get_ledger", "The last n ledger rows and the best stack.", {"n": {"type": "integer"}}, []),
    _schema("get_profile", "Budget, mutable args with ranges, aggregator choices, architecture cap.", {}, []),
    _schema(
        "search_literature",
        "Search the bibliography of FL methods (title, source, abstract, mechanism, args or code).",
        {"query": _STR},
        ["query"],
    ),
    _schema("list_candidates", "Every finished candidate: id, status, score, target, description.", {}, []),
    _schema(
        "get_candidate",
        "A finished candidate's full record: args, validation, per-site scores, error, timings.",
        {"candidate": _STR},
        ["candidate"],
    ),
    _schema("get_candidate_diff", "A finished candidate's code diff against its parent.", {"candidate": _STR}, ["candidate"]),
    _schema(
        "get_round_metrics",
        "Per site and round, the metrics a candidate's clients printed: its learning curves.",
        {"candidate": _STR},
        ["candidate"],
    ),
    _schema(
        "get_job_log",
        "The last lines (default 50, at most 200) of a candidate's job log, secrets redacted.",
        {"candidate": _STR, "lines": {"type": "integer"}},
        ["candidate"],
    ),
    _schema("get_evidence", "Seed-repeat rows of evidence.tsv (held-out rows are withheld).", {}, []),
    _schema(
        "submit_candidate",
        "Submit the pending candidate; ends your turn.",
        {
            "description": _STR,
            "target": {"type": "string", "enum": list(TARGETS)},
            "args": {"type": "object"},
            "source_refs": {"type": "array", "items": _STR},
        },
        ["description", "target", "args"],
    ),
]
TOOL_NAMES = tuple(tool["function"]["name"] for tool in TOOL_SCHEMAS)


class ToolError(ValueError):
    """A refused action; its message goes back to the model."""


class AgentWorkspace:
    def __init__(self, context: ProposalContext) -> None:
        if context.root is None or context.parent is None:
            raise ValueError("the agent needs the campaign root and the parent commit")
        self.context = context
        self.profile: Profile = context.profile
        self.repo = safe_repo(context.root)
        self.parent = context.parent
        self.edits: dict[str, str] = {}
        self.submitted: CandidateSpec | None = None
        self.evidence = EvidenceReader(campaign_dir(context.root, context.tag or "draft"), context.root)

    # -- files -----------------------------------------------------------------------------------

    def readable(self) -> list[str]:
        """Editable and context files, and protected *code*: protected data files are never readable."""
        surface = self.profile.surface
        protected = [
            p
            for pattern in surface.protected
            for p in self._committed()
            if PurePosixPath(p).match(pattern) and p.endswith(".py")
        ]
        return sorted(
            {*surface.editable, *surface.context, *protected} & set(self._committed()) | set(self.edits)
        )

    def _committed(self) -> list[str]:
        return self.repo.git.ls_tree("-r", "--name-only", self.parent).splitlines()

    def _protected_data(self, path: str) -> bool:
        return not path.endswith(".py") and any(
            PurePosixPath(path).match(pattern) for pattern in self.profile.surface.protected
        )

    def _original(self, path: str) -> str:
        try:
            return self.repo.git.show(f"{self.parent}:{path}")
        except git.GitCommandError:
            raise ToolError(f"{path} does not exist") from None

    def text(self, path: str) -> str:
        return self.edits[path] if path in self.edits else self._original(path)

    def _check_writable(self, path: str, content: str) -> None:
        problem = path_problem(path, self.profile) or content_problem(path, content)
        if problem:
            raise ToolError(f"refused: {problem}")

    # -- the tools -------------------------------------------------------------------------------

    def list_surface(self) -> str:
        surface = self.profile.surface
        return json.dumps(
            {
                "editable": surface.editable,
                "read_only": sorted(set(self.readable()) - set(surface.editable)),
                "protected_patterns": surface.protected,
            }
        )

    def read_file(self, path: str) -> str:
        if path_problem(path, self.profile) == f"{path} escapes the workspace":
            raise ToolError(f"refused: {path} escapes the workspace")
        if self._protected_data(path):
            raise ToolError(f"refused: {path} is protected data; the agent never reads raw or scored data")
        if path not in self.readable():
            raise ToolError(f"refused: {path} is not an editable or read-only context file")
        return self.text(path)

    def edit_file(self, path: str, old: str, new: str) -> str:
        current = self.read_file(path) if path in self.readable() else None
        self._check_writable(path, new)
        if current is None:
            raise ToolError(f"{path} does not exist; use write_file to create its content")
        count = current.count(old) if old else 0
        if count != 1:
            raise ToolError(f"`old` occurs {count} times in {path}; it must occur exactly once")
        self.edits[path] = current.replace(old, new, 1)
        return f"edited {path}"

    def write_file(self, path: str, content: str) -> str:
        self._check_writable(path, content)
        self.edits[path] = content
        return f"wrote {path} ({len(content)} characters)"

    def show_diff(self) -> str:
        chunks = []
        for path, text in sorted(self.edits.items()):
            try:
                before = self._original(path)
            except ToolError:
                before = ""
            chunks += difflib.unified_diff(
                before.splitlines(True), text.splitlines(True), f"a/{path}", f"b/{path}"
            )
        return "".join(chunks) or "no pending edits"

    def validate(self, args: dict | None = None) -> str:
        from engine.store.workspace import CampaignRepo, changed_paths

        repo = CampaignRepo(Path(self.context.root), self.context.tag or "draft")
        draft = f"draft-{self.context.proposed + 1:03d}-{uuid.uuid4().hex[:8]}"  # calls may run at once
        tree = repo.worktree_for(draft, self.parent)
        try:
            for path, text in self.edits.items():
                (tree / path).parent.mkdir(parents=True, exist_ok=True)
                (tree / path).write_text(text, encoding="utf-8")
            verdict = validate(
                tree, changed_paths(tree), self.profile, dict(args or {}), self.context.hashes, {}
            )
        finally:
            repo.remove_worktree(draft)
        if verdict.ok:
            return "valid: every check passed"
        return "invalid: " + "; ".join(f"{k}: {v}" for k, v in verdict.checks.items() if v != "ok")

    def get_ledger(self, n: int = 20) -> str:
        rows = self.context.rows[-max(1, min(int(n), 200)) :]
        lines = [
            f"{r.status}\t{'' if r.score is None else f'{r.score:.6f}'}\t{r.target}\t{r.description}"
            for r in rows
        ]
        return json.dumps({"rows": lines, "best_args": self.context.best_args})

    def get_profile(self) -> str:
        profile = self.profile
        return json.dumps(
            {
                "metric": profile.metric.model_dump(),
                "budget": profile.budget.model_dump(),
                "baseline": profile.baseline,
                "aggregators": profile.aggregators.choices,
                "mutable": {k: v.model_dump(exclude_defaults=True) for k, v in profile.mutable.items()},
            }
        )

    def search_literature(self, query: str) -> str:
        hits = search(query, limit=6)
        return (
            json.dumps(
                [
                    {
                        "key": h.key,
                        "title": h.title,
                        "year": h.year,
                        "source": h.source,
                        "summary": h.summary,
                        "mechanism": h.mechanism,
                        "args": h.args,
                        "code": h.code,
                    }
                    for h in hits
                ]
            )
            if hits
            else "no match in the bibliography"
        )

    # -- evidence: finished candidates and evidence.tsv (read-only, bounded, redacted) -----------

    def list_candidates(self) -> str:
        return self.evidence.list_candidates()

    def get_candidate(self, candidate: str) -> str:
        return self.evidence.get_candidate(candidate)

    def get_candidate_diff(self, candidate: str) -> str:
        return self.evidence.get_candidate_diff(candidate)

    def get_round_metrics(self, candidate: str) -> str:
        return self.evidence.get_round_metrics(candidate)

    def get_job_log(self, candidate: str, lines: int = 50) -> str:
        return self.evidence.get_job_log(candidate, lines)

    def get_evidence(self) -> str:
        return self.evidence.get_evidence()

    def submit_candidate(
        self, description: str, target: str, args: dict, source_refs: list | None = None
    ) -> str:
        if not isinstance(description, str) or not description.strip():
            raise ToolError("description must be a non-empty string")
        if target not in TARGETS:
            raise ToolError(f"target must be one of {', '.join(TARGETS)}")
        if not isinstance(args, dict):
            raise ToolError("args must be an object of mutable-arg overrides")
        refs = [str(r) for r in (source_refs or [])]
        self.submitted = CandidateSpec(description.strip()[:500], target, dict(args), dict(self.edits), refs)
        return "submitted"

    def call(self, name: str, arguments: str | dict | None) -> str:
        """Run one tool call; every failure comes back as an explicit one-line message."""
        if name not in TOOL_NAMES:
            return f"error: unknown tool {name!r}; the tools are {', '.join(TOOL_NAMES)}"
        try:
            kwargs = (
                json.loads(arguments)
                if isinstance(arguments, str) and arguments.strip()
                else (arguments or {})
            )
        except json.JSONDecodeError as error:
            return f"error: arguments are not valid JSON ({error.msg}); send a JSON object"
        if not isinstance(kwargs, dict):
            return "error: arguments must be a JSON object"
        try:
            return str(getattr(self, name)(**kwargs))
        except (ToolError, EvidenceToolError) as error:
            return f"error: {error}"
        except TypeError as error:
            return f"error: bad arguments for {name}: {error}"
