"""The trusted evaluator on hand-made saved models: honest scores, and hostile models refused.

Each case writes a small candidate worktree (``tasks/toy/model.py``), a saved model in
NVFlare's layout (``app_server/FL_global_model.pt``) and a trusted data directory, then
runs the real evaluator: its sandboxed model process and the engine-side metric.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.run.databridge import SiteData
from engine.run.evaluator import METRICS, ModelProcess, accuracy, evaluate, reported_scores, score_mismatch
from engine.run.sandbox import detect_sandbox

HONEST = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)

    def forward(self, x):
        return self.net(x).squeeze(-1)


def build_model(arch="logreg", max_params=0, seed=0):
    if arch != "logreg":
        raise ValueError(f"unknown architecture {arch!r}")
    return Net()
"""

HIDDEN_BUFFER = HONEST.replace(
    "self.net = nn.Linear(4, 1)",
    "self.net = nn.Linear(4, 1)\n        self.register_buffer('rows', torch.zeros(5000), persistent=False)",
)
FROZEN = HONEST.replace(
    "self.net = nn.Linear(4, 1)",
    "self.net = nn.Sequential(nn.Linear(4, 600), nn.Linear(600, 1)).requires_grad_(False)",
)
LAZY_TABLE = HONEST.replace(
    "return self.net(x).squeeze(-1)",
    "self.table = [torch.zeros(3000)]\n        return self.net(x).squeeze(-1)",
)
LABEL_THIEF = HONEST.replace(
    "return self.net(x).squeeze(-1)",
    """import glob, inspect
        # the evaluator's own spec, found on the call stack of the process it shares
        spec = next(f.frame.f_locals['spec'] for f in inspect.stack() if 'spec' in f.frame.f_locals)
        found = glob.glob(spec['inputs_dir'] + '/../labels/*.npy')
        for path in found:
            try:
                import numpy
                labels = numpy.load(path)
                if len(labels) == len(x):
                    return torch.from_numpy(labels * 20.0 - 10.0).float()
            except OSError:
                pass
        return torch.zeros(len(x))""",
)
CRASHES = HONEST.replace("return self.net(x).squeeze(-1)", "raise RuntimeError('boom')")
WRONG_LENGTH = HONEST.replace("return self.net(x).squeeze(-1)", "return torch.zeros(3)")

SITES = ["site-1", "site-2"]


def make_worktree(root: Path, model_source: str) -> Path:
    package = root / "tasks" / "toy"
    package.mkdir(parents=True)
    (root / "tasks" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "model.py").write_text(model_source)
    return root


def make_data(root: Path) -> tuple[SiteData, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    features = {}
    for site in SITES:
        x = rng.normal(size=(40, 4)).astype(np.float32)
        y = np.array([0.0, 1.0] * 20, dtype=np.float32)
        (root / "inputs").mkdir(parents=True, exist_ok=True)
        (root / "labels").mkdir(parents=True, exist_ok=True)
        np.save(root / "inputs" / f"{site}.npy", x)
        np.save(root / "labels" / f"{site}.npy", y)
        features[site] = x
    return SiteData(root, None, {}), features


def save_model(result: Path, state: dict[str, torch.Tensor]) -> Path:
    folder = result / "server" / "simulate_job" / "app_server"
    folder.mkdir(parents=True)
    torch.save({"model": state, "train_conf": {"train": {"model": "Net"}}}, folder / "FL_global_model.pt")
    return folder / "FL_global_model.pt"


def state_of(source: str, tmp_path: Path) -> dict[str, torch.Tensor]:
    namespace: dict = {}
    exec(compile(source, "model.py", "exec"), namespace)  # the test's own fixture code, not a candidate's
    torch.manual_seed(1)
    return namespace["build_model"]().state_dict()


@pytest.fixture()
def setup(tmp_path):
    data, features = make_data(tmp_path / "trusted")

    def run(model_source: str, state=None, sandbox=None, max_params=2000, **kwargs):
        worktree = make_worktree(tmp_path / f"worktree-{len(list(tmp_path.iterdir()))}", model_source)
        result = tmp_path / f"result-{len(list(tmp_path.iterdir()))}"
        save_model(result, state if state is not None else state_of(model_source, tmp_path))
        return evaluate(
            worktree,
            "tasks.toy.model",
            "logreg",
            result,
            data,
            SITES,
            "accuracy",
            max_params,
            sandbox=sandbox,
            **kwargs,
        )

    return run, data, features


def test_an_honest_model_is_scored_by_the_engine(setup, tmp_path):
    run, data, features = setup
    state = state_of(HONEST, tmp_path)
    evaluation = run(HONEST, state)
    assert evaluation.ok, evaluation.error
    weight, bias = state["net.weight"].numpy(), state["net.bias"].numpy()
    for site in SITES:
        logits = features[site] @ weight.T + bias
        expected = float(((logits[:, 0] > 0) == data.labels(site).astype(bool)).mean())
        assert evaluation.per_site[site] == pytest.approx(expected, abs=1e-12)
    assert evaluation.score == pytest.approx(sum(evaluation.per_site.values()) / 2)
    assert evaluation.counts["parameters"] == 5 and evaluation.counts["total"] == 5
    assert evaluation.sandbox == detect_sandbox()
    assert "tasks.toy" not in sys.modules and "tasks.toy.model" not in sys.modules  # nothing imported here


def test_non_persistent_buffers_count_against_the_cap(setup):
    run, *_ = setup
    evaluation = run(HIDDEN_BUFFER)
    assert not evaluation.ok
    assert evaluation.counts["buffers"] == 5000
    assert "over the cap of 2000" in evaluation.error


def test_frozen_parameters_count_against_the_cap(setup):
    run, *_ = setup
    evaluation = run(FROZEN)
    assert not evaluation.ok and "3601 parameters and buffers, over the cap" in evaluation.error


def test_tensors_made_in_forward_count_against_the_cap(setup):
    run, *_ = setup
    evaluation = run(LAZY_TABLE)
    assert evaluation.counts["other_tensors"] == 3000 and "over the cap" in evaluation.error


def test_a_state_the_architecture_does_not_declare_is_refused(setup, tmp_path):
    run, *_ = setup
    state = {**state_of(HONEST, tmp_path), "lookup": torch.zeros(10)}
    evaluation = run(HONEST, state)
    assert (
        evaluation.error == "model refused: saved model has entries the architecture does not declare: lookup"
    )
    state = state_of(HONEST, tmp_path)
    state["net.weight"] = torch.zeros(1, 5)
    assert "has shape (1, 5)" in run(HONEST, state).error


@pytest.mark.skipif(detect_sandbox() != "bwrap", reason="bubblewrap is not usable here")
def test_the_model_process_never_sees_the_labels(setup):
    run, *_ = setup
    sandboxed = run(LABEL_THIEF)
    assert sandboxed.ok, sandboxed.error
    assert sandboxed.score == pytest.approx(0.5)  # all-zero logits: class 0, half the rows
    unsandboxed = run(LABEL_THIEF, sandbox="none")
    assert unsandboxed.score == 1.0  # only the sandbox stops this


def test_a_crashing_or_malformed_model_is_an_error_not_a_score(setup):
    run, *_ = setup
    crashed = run(CRASHES)
    assert crashed.score is None and "RuntimeError: boom" in crashed.error
    wrong = run(WRONG_LENGTH)
    assert wrong.score is None and "outputs for 40 rows" in wrong.error


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_saved_file_with_pickled_code_is_refused_unread(setup, tmp_path, capfd):
    run, *_ = setup
    worktree = make_worktree(tmp_path / "wt-pickle", HONEST)
    result = tmp_path / "result-pickle"
    path = save_model(result, state_of(HONEST, tmp_path))
    torch.save({"model": state_of(HONEST, tmp_path), "meta_props": Payload()}, path)
    data, _ = make_data(tmp_path / "trusted-pickle")
    evaluation = evaluate(worktree, "tasks.toy.model", "logreg", result, data, SITES)
    assert evaluation.score is None and "refused global __builtin__.print" in evaluation.error
    assert "pickled code ran" not in capfd.readouterr().out


def test_a_missing_model_file_is_an_error(tmp_path):
    data, _ = make_data(tmp_path / "trusted")
    worktree = make_worktree(tmp_path / "wt", HONEST)
    evaluation = evaluate(worktree, "tasks.toy.model", "logreg", tmp_path / "empty", data, SITES)
    assert evaluation.score is None and "expected one app_server/FL_global_model.pt" in evaluation.error


def test_metric_registry_and_accuracy():
    assert METRICS["accuracy"].direction == "maximize"
    assert accuracy(np.array([2.0, -1.0, 0.5]), np.array([1, 0, 0])) == pytest.approx(2 / 3)
    assert accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([1, 1])) == 0.5


def test_score_mismatch_against_a_forged_cross_val_file(tmp_path):
    folder = tmp_path / "server" / "simulate_job" / "cross_site_val"
    folder.mkdir(parents=True)
    results = {site: {"SRV_FL_global_model.pt": {"accuracy": 0.99}} for site in SITES}
    (folder / "cross_val_results.json").write_text(json.dumps(results))
    reported = reported_scores(tmp_path)
    assert reported == {"site-1": 0.99, "site-2": 0.99}
    evaluated = {"site-1": 0.6, "site-2": 0.99}
    assert score_mismatch(evaluated, reported) == (
        "score mismatch: site-1 scored 0.600000 by afr's evaluator, 0.990000 by the job"
    )
    assert score_mismatch({"site-1": 0.99 + 1e-7, "site-2": 0.99}, reported) is None
    assert score_mismatch({"site-3": 0.5}, reported) == "score mismatch: the job reported no score for site-3"


def test_a_model_process_closed_at_once_leaves_nothing(tmp_path):
    # Closing right after the start hits bwrap in its set-up; the process group goes as a whole.
    data, _ = make_data(tmp_path / "trusted")
    worktree = make_worktree(tmp_path / "wt", HONEST)
    for _ in range(5):
        process = ModelProcess(worktree, data, SITES)
        started = time.monotonic()
        process.close()
        assert time.monotonic() - started < 10
        assert process._process.poll() is not None
