"""Red team of the owned budget: candidates whose ``job.py`` asks for more than the profile gives.

One smoke Heart campaign (``Campaign`` with the real ``run_job``, afr's trusted path) on a real
workspace: the baseline, then scripted ``CandidateSpec(edits=...)`` whose ``job.py`` sets 10x
the rounds, fewer clients, 20x the clients' local steps while declaring the profile's, no final
evaluation, a final evaluation on one site, another seed, runs the job itself instead of
exporting it, or rewrites its exported bundle. Each must end a ``crash`` whose reason names the
departure, before any NVFlare run. Then: protected hashes unchanged, no process left, the next
campaign's baseline identical, and the launched baseline's final weights bit-identical to a
run of the same job the old way (``job.py`` executing its recipe).
"""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest
import torch

from engine.agent.base import CandidateSpec
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.control.events import EventType
from engine.guard.validate import protected_hashes
from engine.profile import load_profile
from engine.run.runner import processes_of_run, run_job
from engine.store.workspace import init_workspace

pytestmark = pytest.mark.nvflare
TAG = "budget-20261125"
NEXT_TAG = "budget-next-20261125"
TASK = "tasks/fed_heart_disease"
RUN_LINE = "    jobs.run(recipe, args, args.n_clients)\n"

SKIP_FINAL_EVAL = """    import nvflare.recipe as _recipe

    _recipe.add_final_global_evaluation = lambda *_args, **_kwargs: None
"""
ONE_EVAL_SITE = '    args.final_eval_clients = "site-1"\n'
IGNORE_EXPORT = "    args.export_dir = None  # runs the job itself, whatever afr asked\n"
REWRITE_BUNDLE = """    if args.export_dir:
        for _path in Path(args.export_dir).rglob("model.py"):
            _path.write_text(_path.read_text() + "\\n# swapped after the export\\n")
"""


class ListProposer(ScriptedProposer):
    name = "list"

    def __init__(self, specs):
        self.specs = list(specs)

    def propose(self, context):
        return self.specs.pop(0) if self.specs else super().propose(context)


def hostile_jobs(job: str) -> dict[str, tuple[str, str]]:
    """description -> (edited job.py, the reason its refusal must name; ``|`` between alternatives)."""

    def edit(old: str, new: str) -> str:
        assert job.count(old) == 1, old
        return job.replace(old, new)

    return {
        "10x rounds": (
            edit("num_rounds=args.num_rounds,", "num_rounds=args.num_rounds * 10,"),
            "num_rounds=10",
        ),
        "two clients": (edit("min_clients=args.n_clients,", "min_clients=2,"), "min_clients=2"),
        "20x local steps": (
            edit('"local_steps": args.local_steps,', '"local_steps": args.local_steps * 20,'),
            "local_steps=200, the engine computed 10",
        ),
        "no final evaluation": (
            edit(RUN_LINE, SKIP_FINAL_EVAL + RUN_LINE),
            "expected FedAvg then the final global",
        ),
        "final evaluation on one site": (
            edit(RUN_LINE, ONE_EVAL_SITE + RUN_LINE),
            "final evaluation on ['site-1']",
        ),
        "another model seed": (
            edit(
                "build_model(args.model_arch, args.max_model_params, seed=args.seed)",
                "build_model(args.model_arch, args.max_model_params, seed=args.seed + 1)",
            ),
            "init_seed=43, the run's seed is 42",
        ),
        # Its smoke job finishes inside the export's time limit on an idle machine, not on a loaded one.
        "runs the job itself": (
            edit(RUN_LINE, IGNORE_EXPORT + RUN_LINE),
            "exported no job|did not export within",
        ),
        "rewrites its export": (
            edit(RUN_LINE, RUN_LINE + REWRITE_BUNDLE),
            "which is not the worktree's file",
        ),
    }


def run_campaign(root: Path, tag: str, specs: list[CandidateSpec]) -> tuple[Campaign, list]:
    profile = load_profile(root, "fed_heart_disease")
    engine = Campaign(
        root,
        profile,
        tag,
        CampaignOptions(max_candidates=len(specs), smoke=True),
        ListProposer(specs),
        run_fn=run_job,
    )
    events: list = []
    engine.subscribe(events.append)
    engine.start()
    return engine, events


def final_weights(folder: Path) -> dict[str, torch.Tensor]:
    (path,) = Path(folder).glob("**/app_server/FL_global_model.pt")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    return saved.get("model", saved)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("budget")
    root, _ = init_workspace(tmp / "ws")
    profile = load_profile(root, "fed_heart_disease")
    hashes = protected_hashes(root, profile)
    hostile = hostile_jobs((root / TASK / "job.py").read_text())
    specs = [CandidateSpec("baseline", "baseline", {})]
    specs += [CandidateSpec(name, "code", {}, {f"{TASK}/job.py": job}) for name, (job, _) in hostile.items()]
    engine, events = run_campaign(root, TAG, specs)
    records = {r["description"]: r for r in engine.ledger.latest_candidates().values()}
    nvflare_runs = [e.data["id"] for e in events if e.type is EventType.CANDIDATE_LOG and e.data.get("token")]
    tokens = [e.data["token"] for e in events if e.type is EventType.CANDIDATE_LOG and e.data.get("token")]
    next_engine, next_events = run_campaign(root, NEXT_TAG, [CandidateSpec("baseline", "baseline", {})])
    tokens += [
        e.data["token"] for e in next_events if e.type is EventType.CANDIDATE_LOG and e.data.get("token")
    ]
    next_records = {r["description"]: r for r in next_engine.ledger.latest_candidates().values()}
    old_way = run_job(root, profile, {}, tmp / "old-way", smoke=True)  # job.py executes its own recipe
    return {
        "root": root,
        "profile": profile,
        "hashes": hashes,
        "hostile": hostile,
        "records": records,
        "next": next_records,
        "nvflare_runs": nvflare_runs,
        "tokens": tokens,
        "campaign_dir": engine.dir,
        "old_way": old_way,
        "old_way_dir": tmp / "old-way",
    }


def test_the_baseline_is_launched_by_afr_and_kept(campaign):
    baseline = campaign["records"]["baseline"]
    assert baseline["status"] == "keep", baseline["error"]
    assert baseline["evaluator"]["export_seconds"] > 0
    run_dir = campaign["campaign_dir"] / "runs" / baseline["id"]
    first_line = (run_dir / "job.log").read_text().splitlines()[0]
    assert "nvflare.private.fed.app.simulator.simulator" in first_line and "job.py" not in first_line
    assert "--export_dir" in (run_dir / "export.log").read_text().splitlines()[0]


@pytest.mark.parametrize(
    "description",
    [
        "10x rounds",
        "two clients",
        "20x local steps",
        "no final evaluation",
        "final evaluation on one site",
        "another model seed",
        "runs the job itself",
        "rewrites its export",
    ],
)
def test_a_job_that_takes_more_budget_is_a_crash_with_its_reason(campaign, description):
    record = campaign["records"][description]
    assert record["status"] == "crash", record
    assert record["error"].startswith("budget: "), record["error"]
    assert any(reason in record["error"] for reason in campaign["hostile"][description][1].split("|"))
    assert "\n" not in record["error"]
    # Refused before any NVFlare run: no job token was ever handed out for it.
    assert record["id"] not in campaign["nvflare_runs"]


def test_protected_hashes_unchanged_and_no_process_left(campaign):
    root, profile = campaign["root"], campaign["profile"]
    assert protected_hashes(root, profile) == campaign["hashes"]
    meta = json.loads((campaign["campaign_dir"] / "campaign.json").read_text())
    assert meta["protected_hashes"] == campaign["hashes"]
    for token in campaign["tokens"]:
        assert processes_of_run(token) == []
    mine = psutil.Process().children(recursive=True)
    left = [p for p in mine if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and p.name() != "git"]
    assert not left


def test_the_next_campaigns_baseline_is_identical(campaign):
    first, following = campaign["records"]["baseline"], campaign["next"]["baseline"]
    assert following["status"] == "keep", following["error"]
    assert following["score"] == first["score"]
    assert following["per_site"] == first["per_site"]


def test_the_launched_job_computes_what_job_py_computed(campaign):
    """The same final weights bit for bit as the old path, so the same score of record."""
    old = campaign["old_way"]
    assert old.status == "ok", old.error
    baseline = campaign["records"]["baseline"]
    launched = final_weights(campaign["campaign_dir"] / "runs" / baseline["id"] / "nvflare")
    direct = final_weights(campaign["old_way_dir"] / "nvflare")
    assert launched.keys() == direct.keys()
    for name in launched:
        assert torch.equal(launched[name], direct[name]), name
    for site, score in old.per_site.items():
        assert baseline["per_site"][site] == pytest.approx(score, abs=1e-6)
