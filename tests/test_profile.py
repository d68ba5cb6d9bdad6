"""Profiles: the bundled ones load; malformed ones fail with one line naming the field."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.profile import ProfileError, load_profile, parse_profile

BUNDLED = ("fed_heart_disease", "leaf_synthetic", "fed_tcga_brca", "cifar10")


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
    ("unknown field", lambda t: t.replace("[run]\n", "[run]\nepochs = 3\n"), "run.epochs"),
    ("budget field reserved", lambda t: t.replace("[budget]\n", '[budget]\nworkspace = "x"\n'), "budget.workspace"),
    ("budget field not a scalar", lambda t: t.replace("[budget]\n", "[budget]\nalpha = [1, 2]\n"), "alpha"),
    (
        "mixed choices",
        lambda t: t.replace('choices = ["adam", "sgd"]', 'choices = ["adam", 1]'),
        "mutable.optimizer",
    ),
    (
        "bool arg with a range",
        lambda t: t + '\n[mutable.nesterov]\ntype = "bool"\nmin = 0\nmax = 1\n',
        "mutable.nesterov",
    ),
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
        "aggregator: 'krum' is not one of "
        "['sample_weighted', 'weighted', 'fedavgm', 'fedadam', 'median', 'scaffold']",
        "local_steps: 2.5 is not an integer",
    ]


GENERAL = """
name = "general"
task_dir = "tasks/fed_heart_disease"

[metric]
name = "loss"
direction = "minimize"

[budget]
n_clients = 4
num_rounds = 3
seed = 7
max_model_params = 100
alpha = 0.5
data_root = "data/x"
amp = true
pin_memory = false

[baseline]
aggregator = "weighted"
nesterov = false
schedule = "cosine"

[mutable.nesterov]
type = "bool"

[mutable.schedule]
type = "choice"
choices = ["constant", "cosine"]

[aggregators]
choices = ["weighted"]

[surface]
editable = ["tasks/fed_heart_disease/client.py"]
protected = ["tasks/fed_heart_disease/uci_data/*"]

[run]
parallel = 3

[smoke]
num_rounds = 1
nesterov = true
"""


def test_general_schema_budget_scalars_bools_strings_and_direction():
    profile = parse_profile(GENERAL)
    assert not profile.maximize
    assert profile.parallel_width() == 3 and profile.parallel_width(1) == 1
    assert profile.budget.batch_size is None
    assert {"alpha", "data_root", "amp", "pin_memory"} <= profile.budget.fields
    flags = profile.job_flags()
    # Fixed scalars become flags, a true bool is the bare flag, a false one is left out.
    assert flags[flags.index("--alpha") + 1] == "0.5"
    assert flags[flags.index("--data_root") + 1] == "data/x"
    assert "--amp" in flags and flags[flags.index("--amp") + 1].startswith("--")
    assert "--pin_memory" not in flags and "--nesterov" not in flags and "--batch_size" not in flags
    assert flags[flags.index("--schedule") + 1] == "cosine"
    assert "--nesterov" in profile.job_flags(smoke=True)
    assert "--nesterov" in profile.job_flags({"nesterov": True})
    # Task budget fields are as fixed as the named ones; bools and choices are typed.
    assert profile.check_args({"alpha": 0.1, "amp": False, "nesterov": 1, "schedule": "step"}) == [
        "alpha: a fixed budget field cannot change",
        "amp: a fixed budget field cannot change",
        "nesterov: 1 is not true or false",
        "schedule: 'step' is not one of ['constant', 'cosine']",
    ]
    assert profile.check_args({"nesterov": True, "schedule": "constant"}) == []
    with pytest.raises(ProfileError, match=r"^<profile>: mutable\.alpha: a fixed budget field cannot be mutable$"):
        parse_profile(GENERAL + '\n[mutable.alpha]\ntype = "float"\nmin = 0.1\nmax = 1.0\n')


def test_bool_choice_does_not_accept_a_number():
    text = GENERAL.replace('type = "bool"', 'type = "choice"\nchoices = [true, false]')
    profile = parse_profile(text)
    assert profile.check_args({"nesterov": 1}) == ["nesterov: 1 is not one of [True, False]"]
    assert profile.check_args({"nesterov": True}) == []


MISSING_PATHS = [
    ('task_dir = "tasks/fed_heart_disease"', 'task_dir = "tasks/nope"', "task_dir: tasks/nope does not exist"),
    ('job = "job.py"', 'job = "run.py"', "job: tasks/fed_heart_disease/run.py does not exist"),
    (
        '"tasks/fed_heart_disease/model.py",',
        '"tasks/fed_heart_disease/modle.py",',
        "surface.editable[1]: tasks/fed_heart_disease/modle.py does not exist",
    ),
    (
        '"tasks/fed_heart_disease/uci_data/*",',
        '"tasks/fed_heart_disease/uci/*",',
        "surface.protected[1]: tasks/fed_heart_disease/uci/* matches no file",
    ),
    (
        'context = ["program.md",',
        'context = ["../program.md",',
        "surface.context[0]: ../program.md is not a path inside the workspace",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), MISSING_PATHS, ids=[m[2].split(":")[0] for m in MISSING_PATHS])
def test_every_path_a_profile_names_must_exist(root, tmp_path, old, new, message):
    text = bundled_text(root)
    assert old in text
    bad = tmp_path / "paths.toml"
    bad.write_text(text.replace(old, new))
    with pytest.raises(ProfileError) as caught:
        load_profile(root, str(bad))
    assert str(caught.value) == f"paths.toml: {message}"


def test_afr_data_on_a_task_without_a_data_bridge_is_one_line(root, tmp_path):
    (tmp_path / "tasks" / "bare").mkdir(parents=True)
    (tmp_path / "tasks" / "bare" / "job.py").write_text("")
    (tmp_path / "tasks" / "bare" / "client.py").write_text("")
    (tmp_path / "profiles").mkdir()
    text = GENERAL.replace('task_dir = "tasks/fed_heart_disease"', 'task_dir = "tasks/bare"')
    text = text.replace('"tasks/fed_heart_disease/client.py"', '"tasks/bare/client.py"')
    text = text.replace('"tasks/fed_heart_disease/uci_data/*"', '"tasks/bare/*.py"')
    (tmp_path / "profiles" / "general.toml").write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "afr.cli", "data", "general", "--workspace", str(tmp_path)],
        cwd=root, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "afr: error: general: tasks/bare has no data.py (data bridge) to describe"


def test_scripted_search_samples_and_flips_bool_args():
    import random

    from engine.agent.scripted import perturb_value, sample_value

    arg = parse_profile(GENERAL).mutable["nesterov"]
    rng = random.Random(0)
    drawn = {sample_value(arg, rng) for _ in range(20)}
    assert drawn == {True, False}
    assert perturb_value(arg, True, rng) is False and perturb_value(arg, False, rng) is True


def test_lift_is_positive_for_a_gain_in_either_direction():
    from engine.profile import Metric

    assert Metric(name="accuracy").lift(0.80, 0.75) == pytest.approx(0.05)
    assert Metric(name="loss", direction="minimize").lift(0.30, 0.45) == pytest.approx(0.15)
    assert Metric(name="loss", direction="minimize").lift(0.50, 0.45) == pytest.approx(-0.05)
