"""Bring your own coding agent: ``--proposer command --agent-cmd "..."``.

The command (Codex, Claude Code, aider, a script) runs non-interactively in a fresh worktree
of the candidate's parent, with a brief written by afr on its standard input and in
``$AFR_BRIEF``. Whatever it changes there, and the args it writes to ``.afr-args.json``,
become the candidate; the guard, scoring, ledger, cockpit and approval then treat it like any
other. It runs under a time cap and an output cap, with provider keys scrubbed from its
environment unless the user passes them (``--agent-env NAME``); its transcript is kept with
the candidate (``runs/<id>/agent.log``). It reads evidence through ``afr tool``.

Writes outside the worktree are not prevented here (no sandbox yet) but detected: changes to
the workspace checkout become an edit that escapes the workspace, which the guard refuses,
and the campaign's ledgers are repaired (``ledger_guard.py``).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import git

from engine.agent import ledger_guard
from engine.agent.base import CandidateSpec, LiteratureResult, ProposalContext, ProposerError
from engine.agent.llm import system_prompt, working_memory
from engine.agent.scripted import ScriptedProposer
from engine.agent.tools import TARGETS, AgentWorkspace
from engine.campaign.options import campaign_dir

ARGS_FILE = ".afr-args.json"
GRACE_SECONDS = 3.0
# Provider credentials and other secrets never reach the agent unless named with --agent-env.
SECRET_VARS = re.compile(
    r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|^OPENAI_|^ANTHROPIC_|^AZURE_|^AWS_|^GOOGLE_|^GEMINI_"
    r"|^MISTRAL_|^COHERE_|^GROQ_|^HF_|^HUGGING|^OPENROUTER_|^DEEPSEEK_|^TOGETHER_|^XAI_|^AFR_LLM_)",
    re.I,
)

BRIEF_TASK = """\
## Your task

You are proposing candidate {cid} of campaign {tag}. Your working directory is a git
worktree of the candidate's parent commit: change only the profile's editable files there,
then write `{args_file}` in that directory, a JSON object:

    {{"description": "mechanism, change, why [src: arXiv:...]", "target": "scalar|code|architecture|literature",
      "args": {{"<mutable arg>": value}}, "source_refs": ["arXiv:..."]}}

`args` are overrides of the profile's mutable args (the engine starts from the best stack:
{best}). Read-only tools, the same ones the embedded agent has, print JSON:

    $AFR_TOOL list_candidates
    $AFR_TOOL get_job_log '{{"candidate": "c003", "lines": 50}}'
    $AFR_TOOL search_literature '{{"query": "client drift heterogeneity"}}'

(also get_candidate, get_candidate_diff, get_round_metrics, get_evidence, get_ledger,
get_profile, read_file, list_surface). Then exit; afr validates, runs and scores the candidate.
"""


def sandbox_argv(argv: list[str], worktree: Path) -> list[str]:
    """The hook for the run sandbox (engine/run/sandbox.py, issue 12): wrap the agent's argv so
    it sees only its worktree. Until that lands the command runs unconfined, and escapes are
    detected after the fact (``_escaped``)."""
    return argv


def agent_environment(passed: list[str], extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not SECRET_VARS.search(k) or k in passed}
    env.update(extra)
    return env


class CommandProposer:
    name = "command"

    def __init__(
        self, command: str, timeout: float = 1800.0, max_output: int = 1_000_000, env: list[str] | None = None
    ) -> None:
        if not command or not command.strip():
            raise ValueError("the command proposer needs --agent-cmd")
        self.command = command
        self.timeout = timeout
        self.max_output = max_output
        self.env = list(env or [])
        self._scripted = ScriptedProposer()

    def literature(self, context: ProposalContext, width: int) -> LiteratureResult:
        # The review's cards come from the bibliography; code-changing winners come back to the
        # agent through its brief (the directive).
        return self._scripted.literature(context, width)

    # -- one proposal ----------------------------------------------------------------------------

    def propose(self, context: ProposalContext) -> CandidateSpec:
        if context.baseline_due:  # the baseline is the profile as declared: no agent needed
            return self._scripted.propose(context)
        if context.root is None or context.parent is None or context.tag is None:
            raise ProposerError("the command proposer needs the campaign's workspace")
        from engine.store.workspace import CampaignRepo

        root, tag = Path(context.root), context.tag
        cid = f"c{context.proposed + 1:03d}"
        run_dir = campaign_dir(root, tag) / "runs" / cid
        run_dir.mkdir(parents=True, exist_ok=True)
        brief = run_dir / "agent-brief.md"
        brief.write_text(self.brief(context, cid), encoding="utf-8")
        repo = CampaignRepo(root, tag)
        draft = f"agent-{cid}"
        tree = repo.worktree_for(draft, context.parent)
        try:
            before = self._outside_state(root, tag)
            telemetry = self._run(tree, root, tag, cid, brief, run_dir / "agent.log")
            spec = self._collect(tree, context.parent, telemetry)
            escaped = self._escaped(before, self._outside_state(root, tag), root, tag, tree)
            if escaped:
                spec.edits.update(escaped)  # the guard refuses these: they escape the workspace
                telemetry["escaped"] = sorted(escaped)
            return spec
        finally:
            repo.remove_worktree(draft)

    def brief(self, context: ProposalContext, cid: str) -> str:
        summary = AgentWorkspace(context).get_profile()
        parts = [system_prompt(Path(context.root), summary, working_memory(context))]
        if context.directive:
            parts.append("## Literature directive\n" + context.directive)
        parts.append(
            BRIEF_TASK.format(
                cid=cid, tag=context.tag, args_file=ARGS_FILE, best=json.dumps(context.best_args) or "{}"
            )
        )
        return "\n\n".join(parts)

    def _run(self, tree: Path, root: Path, tag: str, cid: str, brief: Path, transcript: Path) -> dict:
        tool = f"{shlex.quote(sys.executable)} -m afr.cli tool --workspace {shlex.quote(str(root))} --tag {tag}"
        env = agent_environment(
            self.env,
            {
                "AFR_BRIEF": str(brief),
                "AFR_WORKSPACE": str(root),
                "AFR_CAMPAIGN": tag,
                "AFR_CANDIDATE": cid,
                "AFR_ARGS_FILE": ARGS_FILE,
                "AFR_TOOL": tool,
            },
        )
        argv = sandbox_argv(["/bin/sh", "-c", self.command], tree)
        started = time.monotonic()
        telemetry = {"agent_cmd": self.command, "transcript": f"runs/{cid}/agent.log"}
        with open(brief, "rb") as stdin, open(transcript, "wb") as log:
            process = subprocess.Popen(
                argv, cwd=tree, env=env, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            kept = [0, False]  # bytes written, truncated
            pump = threading.Thread(target=self._pump, args=(process.stdout, log, kept), daemon=True)
            pump.start()
            try:
                code = process.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._kill(process)
                pump.join(timeout=5)
                telemetry.update(seconds=round(time.monotonic() - started, 2), killed=True)
                raise ProposerError(
                    f"the agent command ran past its {self.timeout:g} s cap and was killed", telemetry
                ) from None
            pump.join(timeout=5)
        telemetry.update(
            exit_code=code, seconds=round(time.monotonic() - started, 2), output_bytes=kept[0], truncated=kept[1]
        )
        if code != 0:
            raise ProposerError(f"the agent command exited with status {code}", telemetry)
        return telemetry

    def _pump(self, stream, log, kept: list) -> None:
        """Copy the agent's output into its transcript up to the cap; drain the rest unseen."""
        for chunk in iter(lambda: stream.read(8192), b""):
            room = self.max_output - kept[0]
            if room > 0:
                log.write(chunk[:room])
                kept[0] += min(room, len(chunk))
            if len(chunk) > room and not kept[1]:
                kept[1] = True
                log.write(f"\n[afr: output truncated at {self.max_output} bytes]\n".encode())
            log.flush()

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=GRACE_SECONDS)
                return
            except subprocess.TimeoutExpired:
                continue

    # -- what the agent left behind ---------------------------------------------------------------

    def _collect(self, tree: Path, parent: str, telemetry: dict) -> CandidateSpec:
        args_path = tree / ARGS_FILE
        answer: dict = {}
        if args_path.exists():
            try:
                answer = json.loads(args_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                raise ProposerError(f"{ARGS_FILE} is not valid JSON: {error}", telemetry) from None
            args_path.unlink()
            if not isinstance(answer, dict):
                raise ProposerError(f"{ARGS_FILE} must hold a JSON object", telemetry)
        repo = git.Repo(tree)
        repo.git.add(A=True)  # commits the agent made count too: compare with the parent
        entries = repo.git.diff("--cached", "--name-status", "--no-renames", "-z", parent).split("\0")
        edits: dict[str, str] = {}
        problems = []
        for status, path in zip(entries[0::2], entries[1::2], strict=False):
            file = tree / path
            if status == "D":
                problems.append(f"the agent deleted {path}")
            elif file.is_symlink():
                problems.append(f"the agent made {path} a symlink")
            else:
                edits[path] = file.read_text(encoding="utf-8", errors="replace")
        args = answer.get("args", {})
        if not isinstance(args, dict):
            raise ProposerError(f"{ARGS_FILE}: args must be an object of mutable-arg overrides", telemetry)
        if not answer and not edits and not problems:
            raise ProposerError(f"the agent changed nothing and wrote no {ARGS_FILE}", telemetry)
        target = answer.get("target") if answer.get("target") in TARGETS else ("code" if edits else "scalar")
        description = str(answer.get("description") or "").strip() or (
            "external agent change of " + ", ".join(sorted(edits)) if edits else "external agent args"
        )
        refs = answer.get("source_refs") or []
        return CandidateSpec(
            description[:500],
            target,
            dict(args),
            edits,
            [str(r) for r in refs] if isinstance(refs, list) else [],
            telemetry=telemetry,
            proposer_error="; ".join(problems),
        )

    @staticmethod
    def _outside_state(root: Path, tag: str) -> dict:
        status = git.Repo(root).git.status("--porcelain=v1", "-z", "--untracked-files=all")
        return {"status": set(status.split("\0")) - {""}, "ledgers": ledger_guard.snapshot(campaign_dir(root, tag))}

    @staticmethod
    def _escaped(before: dict, after: dict, root: Path, tag: str, tree: Path) -> dict[str, str]:
        """Edits that stand for the agent's writes outside its worktree (the guard refuses them)."""
        escaped = {}
        for entry in sorted(after["status"] - before["status"]):
            path = root / entry[3:]
            escaped[os.path.relpath(path, tree)] = "(written outside the candidate's worktree)"
        ledgers = campaign_dir(root, tag)
        for name in ledger_guard.repair(ledgers, before["ledgers"]):
            escaped[os.path.relpath(ledgers / name, tree)] = "(the campaign's ledger, repaired)"
        return escaped
