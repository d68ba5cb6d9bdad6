"""Profiles: the bundled ones load; malformed ones fail with one line naming the field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.profile import ProfileError, load_profile, parse_profile

BUNDLED = ("fed_heart_disease", "leaf_synthetic")


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_profiles_are_valid(root, name):
    profile = load_profile(root, name)
    assert profile.name == name
    assert (root / profile.task_dir / "client.py").is_file()
    for path in profile.surface.editable:
        assert (root / path).is_file(), path
    for pattern in profile.surface.protected:
        assert list(root.glob(pattern)), pattern
    flags = profile.job_flags()
    assert flags[flags.index("--num_rounds") + 1] == str(profile.budget.num_rounds)
    assert profile.mutable["lr"].log


def bundled_text(root: Path) -> str:
    return (root / "profiles" / "fed_heart_disease.toml").read_text()


MALFORMED = [
    # (what, edit of the bundled TOML, field the error must name)
    ("missing field", lambda t: t.replace("num_rounds = 15\n", ""), "budget.num_rounds"),
    ("wrong type", lambda t: t.replace("num_rounds = 15", 'num_rounds = "fifteen"'), "budget.num_rounds"),
    (
        "unknown arg",
        lambda t: t.replace("[baseline]\n", "[baseline]\nlearning_rate = 0.1\n"),
        "baseline.learning_rate",
    ),
    (
        "range min > max",
        lambda t: t.replace(
            '[mutable.lr]\ntype = "float"\nmin = 1e-5\nmax = 1.0',
            '[mutable.lr]\ntype = "float"\nmin = 1.0\nmax = 1e-5',
        ),
        "mutable.lr",
    ),
    ("unknown field", lambda t: t.replace("[budget]\n", "[budget]\nepochs = 3\n"), "budget.epochs"),
    ("baseline out of range", lambda t: t.replace("lr = 0.001", "lr = 5.0"), "baseline.lr"),
    (
        "budget made mutable",
        lambda t: t + '\n[mutable.num_rounds]\ntype = "int"\nmin = 1\nmax = 9\n',
        "mutable.num_rounds",
    ),
    ("bad eval client", lambda t: t.replace('"site-4"]', '"site-9"]'), "final_eval_clients"),
    ("not TOML", lambda t: t.replace("[budget]", "[budget"), "not valid TOML"),
]


@pytest.mark.parametrize(("what", "edit", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_profile_gives_one_line_naming_the_field(root, what, edit, field):
    text = edit(bundled_text(root))
    assert text != bundled_text(root), "the edit did not apply"
    with pytest.raises(ProfileError) as caught:
        parse_profile(text, source="bad.toml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("bad.toml: ")
    assert field in message


def test_cli_reports_malformed_profile_in_one_line_and_exit_2(root, tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text(
        bundled_text(root).replace(
            '[mutable.lr]\ntype = "float"\nmin = 1e-5\nmax = 1.0',
            '[mutable.lr]\ntype = "float"\nmin = 2.0\nmax = 1.0',
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "data", str(bad)], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert re.search(r"broken\.toml: mutable\.lr: min 2(\.0)? is greater than max 1(\.0)?", lines[0])


def test_check_args_rejects_fixed_unknown_and_out_of_range(root):
    profile = load_profile(root, "fed_heart_disease")
    assert profile.check_args({"lr": 0.01, "aggregator": "fedadam", "fedprox_mu": 0.0}) == []
    problems = profile.check_args(
        {"num_rounds": 30, "dropout": 0.1, "lr": 3.0, "aggregator": "krum", "local_steps": 2.5}
    )
    assert problems == [
        "num_rounds: a fixed budget field cannot change",
        "dropout: not a mutable arg of profile fed_heart_disease",
        "lr: 3.0 is outside [1e-05, 1]",
        "aggregator: 'krum' is not one of ['weighted', 'fedavgm', 'fedadam', 'median', 'scaffold']",
        "local_steps: 2.5 is not an integer",
    ]
