"""The agent's operating knowledge: the system prompt's token budget, the bundled bibliography, and
the literature search's recall on hand-made symptom -> mechanism cases."""

from __future__ import annotations

import re

import git
import pytest

from engine.agent.base import ProposalContext
from engine.agent.literature import BIBLIOGRAPHY, search
from engine.agent.llm import PROMPT_BUDGET_TOKENS, SKILLS, prompt_tokens, system_prompt, working_memory
from engine.agent.tools import AgentWorkspace
from engine.profile import load_profile
from engine.store.ledger import ResultRow
from engine.store.workspace import init_workspace


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return init_workspace(tmp_path_factory.mktemp("prompt") / "ws")[0]


def busy_context(root, profile_name: str) -> ProposalContext:
    """A context as late in a campaign as the working memory gets: 20 rows shown, crashes, notes."""
    profile = load_profile(root, profile_name)
    rows, records = [], []
    for i in range(60):
        status = ("keep", "discard", "discard", "crash")[i % 4]
        description = f"random search: lr={0.001 * (i + 1):.4g} local_steps={10 + i} [src: arXiv:1909.06335] " + "why " * 120
        rows.append(ResultRow(f"{i:07x}", 0.6 + i / 1000, 12.0, "smoke", status, "scalar", description, f"runs/c{i:03d}"))
        records.append(
            {"id": f"c{i:03d}", "status": status, "args": {"lr": 0.001 * (i + 1)}, "error": "ValueError: Input contains NaN" * (status == "crash")}
        )
    head = git.Repo(root).head.commit.hexsha
    notes = [f"note {i}: prefer server-side changes over more lr sweeps" for i in range(12)]
    running = [  # eight slots busy, each with a long description
        {"id": f"c{60 + i:03d}", "args": {"lr": 0.01 * i}, "description": "random search: " + "long " * 80}
        for i in range(8)
    ]
    return ProposalContext(
        profile, rows, records, {"lr": 0.003}, 60, 0, notes, root=root, parent=head, tag="p-20261125", in_flight=running
    )


def test_while_the_baseline_runs_the_memory_says_so_and_lists_what_runs(root):
    profile = load_profile(root, "fed_heart_disease")
    running = [{"id": "c001", "args": {}, "description": "baseline: Fed-Heart-Disease"}]
    context = ProposalContext(profile, [], [], {}, 1, 0, in_flight=running)
    assert not context.baseline_due  # the baseline is running: the proposer must not propose it again
    memory = working_memory(context)
    assert "best: none yet (the baseline is running)" in memory
    assert "running now, not yet scored (do not propose these again): c001: baseline: Fed-Heart-Disease" in memory
    assert ProposalContext(profile, [], [], {}, 0, 0).baseline_due


@pytest.mark.parametrize("profile_name", ["fed_heart_disease", "leaf_synthetic"])
def test_the_system_prompt_stays_within_its_stated_budget(root, profile_name):
    context = busy_context(root, profile_name)
    prompt = system_prompt(root, AgentWorkspace(context).get_profile(), working_memory(context))
    tokens = prompt_tokens(prompt)
    print(f"system prompt for {profile_name}: {tokens} tokens (budget {PROMPT_BUDGET_TOKENS})")
    assert 2000 < tokens <= PROMPT_BUDGET_TOKENS
    for skill in SKILLS:  # every skill is in it, and program.md states the same budget
        assert (root / "skills" / skill).read_text().splitlines()[0] in prompt
    assert f"**{PROMPT_BUDGET_TOKENS:,} tokens**" in (root / "program.md").read_text()


def test_the_bibliography_has_forty_complete_entries():
    assert len(BIBLIOGRAPHY) >= 40
    assert len({entry.key for entry in BIBLIOGRAPHY}) == len(BIBLIOGRAPHY)
    for entry in BIBLIOGRAPHY:
        assert re.fullmatch(r"arXiv:\d{4}\.\d{4,5}", entry.source), entry.key
        assert entry.title and entry.authors and 2010 <= entry.year <= 2026 and entry.mechanism, entry.key
        assert 1 <= entry.summary.count(". ") + 1 <= 3, entry.key  # one or two sentences
        assert entry.args or entry.code, entry.key  # maps to args or to code


# Hand-made: a symptom as the ledger or a log shows it -> the mechanisms a good FL researcher
# would look up first. Recall@5: a case counts if any expected mechanism is in the top five.
RECALL_CASES = [
    ("client drift under heterogeneous data, local models diverge", {"fedprox", "scaffold", "feddyn"}),
    ("global accuracy oscillates from round to round", {"fedavgm", "slowmo", "lookahead", "swa"}),
    ("loss becomes nan at high learning rate", {"grad_clip", "warmup", "centered_clipping"}),
    ("one hospital site far below the others, large per-site spread", {"qffl", "afl", "median"}),
    ("an outlier client pulls the average", {"median", "trimmed_mean", "rfa", "krum"}),
    ("badly scaled features, server optimizer converges slowly", {"fedadam", "fedyogi", "fedadam_tau"}),
    ("clients take different numbers of local steps", {"fednova"}),
    ("more local steps make the global model worse", {"scaffold", "local_sgd_theory", "minibatch_vs_local", "noniid_weight_divergence"}),
    ("learning curve still rising at the last round, slow convergence", {"fedexp", "fedadam", "local_sgd"}),
    ("accuracy plateaus; fixed learning rate never settles", {"fedavg_noniid_convergence", "sgdr"}),
    ("class imbalance and label skew at some sites", {"focal_loss", "fedavgm_label_skew", "fedavgm"}),
    ("small site overfits its local data", {"adamw", "label_smoothing"}),
    ("new deeper MLP architecture trains slowly", {"he_init", "groupnorm"}),
    ("exploding client updates", {"centered_clipping", "dp_fedavg_clip", "grad_clip"}),
    ("tune client and server learning rates together", {"two_sided_lr", "fedopt_field_guide", "linear_speedup"}),
    ("feature shift between hospitals", {"fedbn", "groupnorm"}),
]


def test_literature_search_recall_on_symptom_cases():
    found = [bool(expected & {m.key for m in search(symptom)[:5]}) for symptom, expected in RECALL_CASES]
    recall = sum(found) / len(found)
    missed = [symptom for (symptom, _), ok in zip(RECALL_CASES, found, strict=True) if not ok]
    print(f"literature search recall@5: {sum(found)}/{len(found)} = {recall:.2f}; missed: {missed}")
    assert recall >= 0.8, missed
