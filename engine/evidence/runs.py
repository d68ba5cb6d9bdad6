"""Evidence before claims: seed repeats and held-out checks of a finished campaign.

``afr repeat`` reruns the top kept candidates and the baseline over matched seeds (every
other budget field unchanged) on the campaign's validation subset; ``afr heldout`` reruns
the selected candidate and the baseline on the profile's held-out subset. Both go through
the same runner as the campaign, each run in a worktree at the candidate's own commit,
and append one row per (candidate, subset, seed) to ``evidence.tsv`` in the campaign
directory. Rows already there with status ``ok`` are not run again, so an interrupted
command continues where it stopped. All statistics are computed from ``evidence.tsv``.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from engine.campaign.status import campaigns_root, resolve_tag
from engine.evidence.stats import Paired, Summary, paired_difference, summarize
from engine.profile import Profile, load_profile, parse_profile
from engine.run.executors import cancel_run
from engine.run.retry import first_try_name, run_retrying_stalls
from engine.run.runner import RunResult, processes_of_run, run_job
from engine.run.trusted import TrustedScoring
from engine.store.ledger import Ledger, LedgerError, ResultRow, locked_append
from engine.store.workspace import CampaignRepo

EVIDENCE_FILE = "evidence.tsv"
EVIDENCE_HEADER = (
    "candidate",
    "role",
    "subset",
    "seed",
    "status",
    "score",
    "runtime_seconds",
    "commit",
    "run_dir",
)
SUBSETS = ("validation", "heldout", "full")
RUNNER: Callable[..., RunResult] = run_job  # what the commands run with; tests put a fake here


class EvidenceError(ValueError):
    """A repeat or held-out check that cannot run, or an unreadable evidence.tsv; one line."""


@dataclass(frozen=True)
class EvidenceRow:
    candidate: str
    role: str  # "baseline" or "top N" (repeat) / "selected" (held-out)
    subset: str
    seed: int
    status: str  # the runner's status: ok, crash, timeout, stalled
    score: float | None
    runtime_seconds: float
    commit: str
    run_dir: str

    def to_line(self) -> str:
        score = "" if self.score is None else f"{self.score:.6f}"
        values = (
            self.candidate,
            self.role,
            self.subset,
            str(self.seed),
            self.status,
            score,
            f"{self.runtime_seconds:.1f}",
            self.commit,
            self.run_dir,
        )
        return "\t".join(v.replace("\t", " ").replace("\n", " ") for v in values) + "\n"


class EvidenceLedger:
    """``evidence.tsv`` of one campaign: append-only, locked like the ledger."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / EVIDENCE_FILE

    def rows(self) -> list[EvidenceRow]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").split("\n")[:-1]  # a torn last line is ignored
        if not lines:
            return []
        if tuple(lines[0].split("\t")) != EVIDENCE_HEADER:
            raise EvidenceError(f"{self.path}: line 1 is not the header {' '.join(EVIDENCE_HEADER)}")
        rows = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            rows.append(_parse(line, f"{self.path} line {number}"))
        return rows

    def append(self, row: EvidenceRow) -> None:
        self.rows()  # refuse to add to a file we cannot read back
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size == 0:
            locked_append(self.path, "\t".join(EVIDENCE_HEADER) + "\n")
        locked_append(self.path, row.to_line())

    def latest(self) -> dict[tuple[str, str, int], EvidenceRow]:
        """The last row per (candidate, subset, seed): a rerun after a crash supersedes it."""
        return {(r.candidate, r.subset, r.seed): r for r in self.rows()}


def _parse(line: str, where: str) -> EvidenceRow:
    fields = line.split("\t")
    if len(fields) != len(EVIDENCE_HEADER):
        raise EvidenceError(f"{where}: {len(fields)} fields, expected {len(EVIDENCE_HEADER)}")
    candidate, role, subset, seed, status, score, runtime, commit, run_dir = fields
    if subset not in SUBSETS:
        raise EvidenceError(f"{where}: subset {subset!r} is not one of {', '.join(SUBSETS)}")
    try:
        seed_value = int(seed)
        score_value = None if score == "" else float(score)
        runtime_value = float(runtime)
    except ValueError:
        raise EvidenceError(f"{where}: seed, score or runtime_seconds is not a number") from None
    if score_value is not None and not math.isfinite(score_value):
        raise EvidenceError(f"{where}: score {score!r} is not finite")
    if status == "ok" and score_value is None:
        raise EvidenceError(f"{where}: an ok row needs a score")
    return EvidenceRow(
        candidate, role, subset, seed_value, status, score_value, runtime_value, commit, run_dir
    )


# -- the campaign under study ---------------------------------------------------------------------


@dataclass
class CampaignView:
    """What evidence needs of a campaign: its profile as started, options, ledger, records."""

    root: Path
    tag: str
    directory: Path
    meta: dict
    profile: Profile
    rows: list[ResultRow]
    records: dict[str, dict]
    evidence: EvidenceLedger = field(init=False)

    def __post_init__(self) -> None:
        self.evidence = EvidenceLedger(self.directory)

    @property
    def options(self) -> dict:
        return self.meta.get("options", {})

    def baseline(self) -> dict:
        """The campaign's first scored candidate (the baseline), as its final record."""
        for row in self.rows:
            if row.status in ("keep", "discard") and row.score is not None:
                record = self.records.get(row.artifacts.removeprefix("runs/"))
                if record is not None:
                    return record
        raise EvidenceError(f"campaign {self.tag} has no scored baseline yet")

    def kept(self) -> list[dict]:
        """Kept candidates other than the baseline, best first."""
        baseline_id = self.baseline()["id"]
        kept = [
            r
            for r in self.records.values()
            if r.get("status") == "keep" and r["id"] != baseline_id and r.get("score") is not None
        ]
        return sorted(kept, key=lambda r: r["score"], reverse=self.profile.maximize)

    def top(self, k: int) -> list[dict]:
        kept = self.kept()
        if not kept:
            raise EvidenceError(f"campaign {self.tag} has no kept candidate besides the baseline")
        return kept[:k]


def open_campaign(root: Path, tag: str | None) -> CampaignView:
    """The campaign ``tag`` (latest if None) of the workspace at ``root``."""
    tag = resolve_tag(root, tag)
    directory = campaigns_root(root) / tag
    meta = json.loads((directory / "campaign.json").read_text())
    # The profile as the campaign started: a later edit of profiles/ must not change its evidence.
    text = meta.get("profile_toml") or ""
    profile = parse_profile(text, f"{tag}/campaign.json") if text else load_profile(root, meta["profile"])
    ledger = Ledger(directory)
    try:
        rows, records = ledger.rows(), ledger.latest_candidates()
    except LedgerError as error:
        raise EvidenceError(str(error)) from None
    return CampaignView(Path(root), tag, directory, meta, profile, rows, records)


# -- running evidence jobs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    record: dict
    role: str
    subset: str
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.record["id"], self.subset, self.seed)

    @property
    def name(self) -> str:
        return f"{self.record['id']}-{self.subset}-seed{self.seed}"


def run_jobs(
    campaign: CampaignView,
    jobs: list[Job],
    run_fn: Callable[..., RunResult] = run_job,
    parallel: int = 1,
    gpus: list[str] | None = None,
    report: Callable[[str], None] = print,
    env: str | None = None,
    deployment: dict | None = None,
) -> list[EvidenceRow]:
    """Run every job not already in ``evidence.tsv`` with status ok; append a row per run.

    ``env`` (default: the campaign's) may send the runs to a real deployment (``"prod"`` with
    ``deployment``, default the campaign's); a prod run's folder ends in ``-prod``, and only
    rows from the same kind of environment count as done.
    """
    env = env or campaign.options.get("env", "sim")
    if env == "prod":
        deployment = deployment or campaign.options.get("deployment")
    target = {"env": env, **({"deployment": deployment} if env == "prod" else {})}
    done = campaign.evidence.latest()
    todo = [
        job
        for job in jobs
        if done.get(job.key) is None or done[job.key].status != "ok" or _is_prod(done[job.key]) != (env == "prod")
    ]
    skipped = len(jobs) - len(todo)
    if skipped:
        report(f"{skipped} of {len(jobs)} runs already in {EVIDENCE_FILE}; running the other {len(todo)}")
    repo = CampaignRepo(campaign.root, campaign.tag)
    slots: queue.Queue[int] = queue.Queue()
    width = max(1, min(parallel, len(todo) or 1))
    for slot in range(width):
        slots.put(slot)
    counter = iter(range(1, len(todo) + 1))
    tokens: set[str] = set()
    stopping = threading.Event()
    # One trusted scoring path for all runs: the evaluator's data is exported once per subset.
    trusted = TrustedScoring.for_campaign(campaign.root, campaign.directory, campaign.profile)

    def execute(job: Job) -> EvidenceRow | None:
        slot = slots.get()
        try:
            gpu = (gpus or [None])[slot % len(gpus or [None])]
            row = _run_one(campaign, repo, job, run_fn, gpu, report, tokens.add, stopping, trusted, target)
            if row is not None:
                score = "" if row.score is None else f" {row.score:.4f}"
                report(f"[{next(counter)}/{len(todo)}] {job.name}: {row.status}{score}")
            return row
        finally:
            slots.put(slot)

    pool = ThreadPoolExecutor(max_workers=width)
    try:
        return [row for row in pool.map(execute, todo) if row is not None]
    except KeyboardInterrupt:
        # Ctrl-C: no new runs, kill the running NVFlare jobs, record nothing for them.
        stopping.set()
        for token in list(tokens):
            for process in processes_of_run(token):
                with contextlib.suppress(Exception):
                    process.kill()
            cancel_run(run_fn, token)  # a job on a Ray worker: cancel its task
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _is_prod(row: EvidenceRow) -> bool:
    return first_try_name(row.run_dir).endswith("-prod")


def _run_one(
    campaign, repo, job: Job, run_fn, gpu, report, on_start, stopping, trusted=None, target=None
) -> EvidenceRow | None:
    record = job.record
    commit = record.get("commit") or campaign.meta.get("base_commit") or repo.head()
    worktree_id = f"evidence-{job.name}"
    worktree = repo.worktree_for(worktree_id, commit)
    target = target or {"env": campaign.options.get("env", "sim")}
    run_dir = campaign.directory / "evidence" / (job.name + ("-prod" if target["env"] == "prod" else ""))
    report(f"running {job.name} ({job.role}: {record.get('description', '')[:60]})")
    try:

        def run(run_dir: Path) -> RunResult:
            return run_fn(
                worktree,
                campaign.profile,
                dict(record.get("args") or {}),
                run_dir,
                **target,  # env, and for prod the deployment
                smoke=bool(campaign.options.get("smoke", False)),
                gpu=gpu,
                seed=job.seed,
                subset=job.subset,
                on_start=on_start,
                trusted=trusted,
            )

        result, run_dir = run_retrying_stalls(run, run_dir)  # a stalled NVFlare job runs again, as in the campaign
    finally:
        repo.remove_worktree(worktree_id)
    if stopping.is_set():
        return None  # interrupted: the next command runs it again
    row = EvidenceRow(
        record["id"],
        job.role,
        job.subset,
        job.seed,
        result.status,
        result.score if result.status == "ok" else None,
        result.runtime_seconds,
        commit[:7],
        str(run_dir.relative_to(campaign.directory)),
    )
    campaign.evidence.append(row)
    if result.status != "ok":
        report(f"{job.name}: {result.status}: {result.error}")
    return row


def parse_seeds(text: str | None, default: list[int], minimum: int = 1) -> list[int]:
    """``42,43,44`` as a list of distinct integers; ``default`` when ``text`` is None."""
    if text is None:
        seeds = list(default)
    else:
        seeds = []
        for part in text.split(","):
            part = part.strip()
            try:
                seeds.append(int(part))
            except ValueError:
                raise EvidenceError(f"--seeds: {part!r} is not an integer (e.g. --seeds 42,43,44)") from None
    if len(set(seeds)) != len(seeds):
        raise EvidenceError(f"--seeds: {','.join(map(str, seeds))} repeats a seed")
    if len(seeds) < minimum:
        raise EvidenceError(f"--seeds: give at least {minimum} seeds for an interval, not {len(seeds)}")
    return seeds


def repeat_jobs(campaign: CampaignView, top: int, seeds: list[int]) -> list[Job]:
    if top < 1:
        raise EvidenceError(f"--top must be at least 1, not {top}")
    chosen = campaign.top(top)
    jobs = [Job(campaign.baseline(), "baseline", "validation", s) for s in seeds]
    for rank, record in enumerate(chosen, start=1):
        jobs += [Job(record, f"top {rank}", "validation", s) for s in seeds]
    return jobs


def heldout_jobs(campaign: CampaignView, seeds: list[int], candidate: str | None = None) -> list[Job]:
    if campaign.profile.heldout is None:
        raise EvidenceError(
            f"campaign {campaign.tag} was scored on the whole evaluation split (its profile declares no "
            "[heldout]); there is no held-out subset to check"
        )
    if candidate is None:
        selected = campaign.top(1)[0]
    else:
        selected = campaign.records.get(candidate)
        if selected is None or selected.get("score") is None:
            raise EvidenceError(f"no scored candidate {candidate!r} in campaign {campaign.tag}")
    baseline = campaign.baseline()
    if selected["id"] == baseline["id"]:
        raise EvidenceError("the selected candidate is the baseline; nothing to compare")
    return [Job(baseline, "baseline", "heldout", s) for s in seeds] + [
        Job(selected, "selected", "heldout", s) for s in seeds
    ]


# -- what evidence.tsv says -----------------------------------------------------------------------------


@dataclass
class CandidateEvidence:
    candidate: str
    role: str
    subset: str
    scores: dict[int, float]  # seed -> score, ok runs only
    failures: int
    summary: Summary | None


@dataclass
class Comparison:
    candidate: str
    subset: str
    paired: Paired


def evidence_by_candidate(rows: list[EvidenceRow]) -> list[CandidateEvidence]:
    """Per (candidate, subset), the last result of each seed, in first-seen order."""
    latest: dict[tuple[str, str, int], EvidenceRow] = {}
    for row in rows:
        latest[(row.candidate, row.subset, row.seed)] = row
    grouped: dict[tuple[str, str], CandidateEvidence] = {}
    for (candidate, subset, seed), row in latest.items():
        entry = grouped.setdefault(
            (candidate, subset), CandidateEvidence(candidate, row.role, subset, {}, 0, None)
        )
        if row.role == "baseline":
            entry.role = "baseline"
        if row.status == "ok" and row.score is not None:
            entry.scores[seed] = row.score
        else:
            entry.failures += 1
    for entry in grouped.values():
        if entry.scores:
            entry.summary = summarize([entry.scores[s] for s in sorted(entry.scores)])
    return list(grouped.values())


def comparisons(entries: list[CandidateEvidence], maximize: bool = True) -> list[Comparison]:
    """Each non-baseline candidate against the baseline of the same subset, over matched seeds."""
    baselines = {e.subset: e for e in entries if e.role == "baseline"}
    found = []
    for entry in entries:
        base = baselines.get(entry.subset)
        if entry.role == "baseline" or base is None or not set(entry.scores) & set(base.scores):
            continue
        found.append(
            Comparison(entry.candidate, entry.subset, paired_difference(entry.scores, base.scores, maximize))
        )
    return found


def heldout_survives(comparison: Comparison) -> bool:
    """The gain survives the held-out subset: positive, and for several seeds not a no-gain verdict."""
    return comparison.paired.difference.mean > 0 and comparison.paired.verdict != "no gain"


def format_summary_table(entries: list[CandidateEvidence], subset: str) -> list[str]:
    lines = [f"{'candidate':<10} {'role':<9} {'n':>2} {'mean':>8} {'sd':>8} {'se':>8}  95% t-interval"]
    for e in entries:
        if e.subset != subset:
            continue
        if e.summary is None:
            lines.append(f"{e.candidate:<10} {e.role:<9} {0:>2} {'-':>8} (all {e.failures} runs failed)")
            continue
        s = e.summary
        interval = f"[{s.low:.4f}, {s.high:.4f}]" if s.n >= 2 else "-"
        sd = f"{s.sd:.4f}" if s.n >= 2 else "-"
        se = f"{s.se:.4f}" if s.n >= 2 else "-"
        failed = f"  ({e.failures} failed)" if e.failures else ""
        lines.append(
            f"{e.candidate:<10} {e.role:<9} {s.n:>2} {s.mean:>8.4f} {sd:>8} {se:>8}  {interval}{failed}"
        )
    return lines


def format_comparison(comparison: Comparison, baseline_id: str) -> str:
    d = comparison.paired.difference
    spread = f" ± {d.half_width:.4f}" if d.n >= 2 else ""
    return (
        f"{comparison.candidate} - {baseline_id} (paired over {d.n} seeds): {d.mean:+.4f}{spread}"
        f" -> {comparison.paired.verdict}"
    )


def elapsed(started: float) -> str:
    return f"{(time.monotonic() - started) / 60:.1f} min"
