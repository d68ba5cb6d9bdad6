"""Red team through the real path: one smoke Heart campaign whose candidates try to forge their score.

The campaign runs in this process (``Campaign`` with the real ``run_job``) on a real
workspace, with a scripted list of hostile ``CandidateSpec(edits=...)`` after the baseline:
four real NVFlare runs shared by every assertion. Each attack must end refused, or run and
scored honestly by afr's evaluator, or ``crash`` with its reason; in every case the
protected hashes are unchanged and no process of a run is left. The workspace's protected
``scoring.py`` carries a side effect that writes a marker when imported by *this* process:
the engine must never import it (the jobs themselves still use it to print their score).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from engine.agent.base import CandidateSpec
from engine.agent.scripted import ScriptedProposer
from engine.campaign.loop import Campaign
from engine.campaign.options import CampaignOptions
from engine.campaign.status import summary
from engine.control.events import EventType
from engine.guard.validate import protected_hashes
from engine.profile import load_profile
from engine.run.runner import processes_of_run, run_job
from engine.run.sandbox import detect_sandbox
from engine.store.gitsafe import run_git
from engine.store.workspace import init_workspace

pytestmark = pytest.mark.nvflare
TAG = "redteam-20261125"
TASK = "tasks/fed_heart_disease"

# The forged evaluate branch: the job's own cross-site scores say 0.99. At import, each client
# also tries to rewrite the worktree's protected scoring.py (read-only in the sandbox).
FORGED_EVAL = '            metrics = {"accuracy": 0.99, "log_loss": 0.01}\n'
REWRITE_SCORING = """
try:
    with open("tasks/shared/scoring.py", "a") as _handle:
        _handle.write("\\nraise SystemExit('rewritten by a candidate')\\n")
except OSError:
    pass
"""

# job.py rewrites NVFlare's cross_val_results.json after the run.
FORGE_RESULTS = """
    import glob as _glob
    import json as _json

    for _path in _glob.glob(str(Path(args.workspace) / "**" / "cross_val_results.json"), recursive=True):
        _data = _json.load(open(_path))
        for _site in _data.values():
            for _entry in _site.values():
                _entry["accuracy"] = 0.99
        _json.dump(_data, open(_path, "w"))
"""

# A model with a non-persistent buffer: the guard counts parameters only, the evaluator every tensor.
HIDDEN_BUFFER = (
    "            self.net = ARCHITECTURES[arch]()\n"
    '        self.register_buffer("memo", torch.zeros(5000), persistent=False)\n'
)


class ListProposer(ScriptedProposer):
    name = "list"

    def __init__(self, specs):
        self.specs = list(specs)

    def propose(self, context):
        return self.specs.pop(0) if self.specs else super().propose(context)


def hostile_specs(root: Path) -> list[CandidateSpec]:
    client = (root / TASK / "client.py").read_text()
    original = '            metrics = {"accuracy": accuracy(model, test_x, test_y), "log_loss": log_loss(model, test_x, test_y)}\n'
    assert original in client
    forged_client = client.replace(original, FORGED_EVAL).replace(
        "\n\ndef parse_args", REWRITE_SCORING + "\n\ndef parse_args", 1
    )
    job = (root / TASK / "job.py").read_text()
    forged_job = job.replace(
        "    jobs.run(recipe, args, args.n_clients)\n",
        "    jobs.run(recipe, args, args.n_clients)\n" + FORGE_RESULTS,
    )
    assert forged_job != job
    model = (root / TASK / "model.py").read_text()
    buffered = model.replace("            self.net = ARCHITECTURES[arch]()\n", HIDDEN_BUFFER)
    assert buffered != model
    return [
        CandidateSpec("baseline", "baseline", {}),
        CandidateSpec("forged evaluate branch", "code", {}, {f"{TASK}/client.py": forged_client}),
        CandidateSpec("forged cross-site results", "code", {}, {f"{TASK}/job.py": forged_job}),
        CandidateSpec("hidden buffers", "architecture", {}, {f"{TASK}/model.py": buffered}),
    ]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("redteam")
    root, _ = init_workspace(tmp / "ws")
    marker = tmp / "engine-imported-scoring"
    scoring = root / "tasks" / "shared" / "scoring.py"
    scoring.write_text(
        scoring.read_text()
        + f"\nimport os as _os\nif _os.getpid() == {os.getpid()}:\n    open({str(marker)!r}, 'w').write('imported')\n"
    )
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "scoring.py marks an import by the engine process")
    profile = load_profile(root, "fed_heart_disease")
    hashes = protected_hashes(root, profile)
    engine = Campaign(
        root,
        profile,
        TAG,
        CampaignOptions(max_candidates=4, smoke=True),
        ListProposer(hostile_specs(root)),
        run_fn=run_job,
    )
    events = []
    engine.subscribe(events.append)
    engine.start()
    records = {r["id"]: r for r in engine.ledger.latest_candidates().values()}
    by_description = {r["description"]: r for r in records.values()}
    tokens = [e.data["token"] for e in events if e.type is EventType.CANDIDATE_LOG and e.data.get("token")]
    return {
        "root": root,
        "profile": profile,
        "hashes": hashes,
        "marker": marker,
        "records": by_description,
        "tokens": tokens,
        "summary": summary(root, TAG),
        "campaign": engine,
    }


def test_the_honest_baseline_is_scored_by_the_evaluator(campaign):
    baseline = campaign["records"]["baseline"]
    assert baseline["status"] == "keep", baseline["error"]
    evaluator = baseline["evaluator"]
    assert evaluator["score"] == pytest.approx(baseline["score"])
    assert evaluator["per_site"] == baseline["per_site"]
    for site, score in evaluator["reported"].items():
        assert score == pytest.approx(evaluator["per_site"][site], abs=1e-4)
    assert evaluator["counts"]["total"] == 14
    assert baseline["sandbox"] == detect_sandbox() == campaign["summary"]["sandbox"]


def test_a_forged_evaluate_branch_is_a_score_mismatch(campaign):
    record = campaign["records"]["forged evaluate branch"]
    assert record["status"] == "crash"
    assert record["error"].startswith("score mismatch:"), record["error"]
    # afr's own score of the model is the baseline's (same training): the forgery bought nothing.
    assert record["evaluator"]["score"] == pytest.approx(campaign["records"]["baseline"]["score"], abs=1e-6)


def test_rewritten_cross_site_results_are_a_score_mismatch(campaign):
    record = campaign["records"]["forged cross-site results"]
    # A lean run stops the job once the result is complete and keeps the first complete file, so
    # the forgery may never land; either way the score of record is afr's evaluator's, never 0.99.
    if record["status"] == "crash":
        assert record["error"].startswith("score mismatch:"), record["error"]
    else:
        assert record["score"] == pytest.approx(record["evaluator"]["score"]) and record["score"] < 0.99


def test_hidden_buffers_are_refused(campaign):
    record = campaign["records"]["hidden buffers"]
    assert record["status"] in ("crash", "rejected")
    assert "over the cap" in record["error"], record["error"]


def test_the_engine_never_imported_the_worktrees_scoring_py(campaign):
    assert not campaign["marker"].exists()


def test_protected_hashes_unchanged_and_no_process_left(campaign):
    root, profile = campaign["root"], campaign["profile"]
    assert protected_hashes(root, profile) == campaign["hashes"]
    meta = json.loads((root / ".afr" / "campaigns" / TAG / "campaign.json").read_text())
    assert meta["protected_hashes"] == campaign["hashes"]
    assert campaign["tokens"]
    for token in campaign["tokens"]:
        assert processes_of_run(token) == []
    mine = psutil.Process().children(recursive=True)
    # GitPython's cat-file helpers of this test process's own Repo objects are not the run's.
    left = [p for p in mine if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and p.name() != "git"]
    assert not left


def test_every_kept_score_is_the_evaluators(campaign):
    for record in campaign["records"].values():
        if record["status"] == "keep":
            assert record["score"] < 0.99
            assert record["evaluator"]["score"] == pytest.approx(record["score"])
