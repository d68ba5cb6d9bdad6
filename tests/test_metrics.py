"""The metric contract: any reported metric, either direction, from the client to the result JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from tasks.shared.evaluation import accuracy, log_loss


class OneLogit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)
        with torch.no_grad():
            self.linear.weight.fill_(1.0)
            self.linear.bias.fill_(0.0)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


def test_log_loss_and_accuracy_against_hand_computed_values():
    features, labels = torch.tensor([[0.0], [2.0], [-1.0]]), torch.tensor([1.0, 0.0, 0.0])
    # Logits 0, 2, -1: -log(sigmoid(0)) + -log(1 - sigmoid(2)) + -log(1 - sigmoid(-1)), averaged.
    expected = (math.log(2) + math.log(1 + math.exp(2)) + math.log(1 + math.exp(-1))) / 3
    assert log_loss(OneLogit(), features, labels) == pytest.approx(expected, rel=1e-6)
    assert accuracy(OneLogit(), features, labels) == pytest.approx(1 / 3)  # only row 3 (logit -1 -> 0)
    three_classes = nn.Linear(2, 3)
    with torch.no_grad():
        three_classes.weight.zero_()
        three_classes.bias.zero_()
    assert log_loss(three_classes, torch.zeros(4, 2), torch.tensor([0, 1, 2, 1])) == pytest.approx(math.log(3))


@pytest.mark.nvflare
def test_a_job_scores_a_minimized_metric_the_client_reports(root, tmp_path):
    """Heart's clients report accuracy and log_loss; --metric picks the second, lower is better."""
    result = tmp_path / "result.json"
    command = [
        sys.executable, str(root / "tasks/fed_heart_disease/job.py"), "--num_rounds", "1", "--local_steps", "10",
        "--metric", "log_loss", "--metric_direction", "minimize",
        "--workspace", str(tmp_path / "nvflare"), "--result_json", str(result),
    ]  # fmt: skip
    env = {**os.environ, "AFR_EVAL_SUBSET": "full"}
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=400, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads(result.read_text())
    assert summary["metric"] == "log_loss" and summary["direction"] == "minimize"
    assert len(summary["per_site"]) == 4 and all(v > 0 for v in summary["per_site"].values())
    assert summary["score"] == pytest.approx(sum(summary["per_site"].values()) / 4)
    cross_val = next((tmp_path / "nvflare").glob("**/cross_site_val/cross_val_results.json"))
    final = json.loads(cross_val.read_text())["site-1"]["SRV_FL_global_model.pt"]
    assert set(final) >= {"accuracy", "log_loss"}
    assert final["log_loss"] == pytest.approx(summary["per_site"]["site-1"])
