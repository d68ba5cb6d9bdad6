"""The FL contract check on client.py, and the engine's headless rule."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.guard.contract import check_client_source

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("task", ["fed_heart_disease", "leaf_synthetic"])
def test_bundled_clients_keep_the_contract(task):
    assert check_client_source((ROOT / "tasks" / task / "client.py").read_text()) == []


BREAKS = [
    ("strict=True", "strict=False", "load_state_dict(..., strict=True)"),
    ("params_type=ParamsType.DIFF", "params_type=ParamsType.FULL", "params_type=ParamsType.DIFF"),
    ("compute_model_diff(model, global_state)", "{}", "compute_model_diff"),
    ('"NUM_STEPS_CURRENT_ROUND"', '"STEPS"', "NUM_STEPS_CURRENT_ROUND"),
    ("if flare.is_evaluate():", "if False:", "is_evaluate"),
    (
        "flare.FLModel(metrics=metrics)",
        "flare.FLModel()",
        "FLModel(metrics=...)",
    ),
    ("    flare.init()\n", "    pass\n", "flare.init"),
    ("def main() -> None:", "def main() -> None\n", "does not parse"),
]


@pytest.mark.parametrize(("old", "new", "reason"), BREAKS, ids=[b[2] for b in BREAKS])
def test_each_broken_rule_is_named(old, new, reason):
    source = (ROOT / "tasks" / "fed_heart_disease" / "client.py").read_text()
    assert old in source
    problems = check_client_source(source.replace(old, new, 1))
    assert problems and any(reason in p for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_engine_never_imports_textual():
    for path in (ROOT / "engine").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "textual" or n.startswith("textual.") for n in names), path
