"""The ``afr`` command as a user runs it: a real subprocess, real output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git

from engine import __version__


def afr(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "afr.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def test_help_and_version(root):
    done = afr("--help", cwd=root)
    assert done.returncode == 0
    for command in ("init", "data", "run"):
        assert command in done.stdout
    version = afr("--version", cwd=root)
    assert version.returncode == 0 and version.stdout.strip() == f"afr {__version__}"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "afr"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout


def test_data_heart_json_gives_flamby_sizes(root):
    done = afr("data", "fed_heart_disease", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [(c["train"], c["test"]) for c in summary["clients"]] == [
        (199, 104),
        (172, 89),
        (30, 16),
        (85, 45),
    ]
    assert [c["source"] for c in summary["clients"]] == ["cleveland", "hungarian", "switzerland", "va"]
    assert summary["clients"][2]["train_classes"] == {"0": 0, "1": 30}
    assert summary["total_samples"] == 740


def test_data_leaf_json_reports_all_users(root):
    done = afr("data", "leaf_synthetic", "--json", cwd=root)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["total_samples"] == 107_553
    assert summary["users"] == 1000
    assert len(summary["clients"]) == 8
    for client in summary["clients"]:
        assert sum(client["train_classes"].values()) == client["train"]


def test_data_table_is_readable(root):
    done = afr("data", "fed_heart_disease", cwd=root)
    assert done.returncode == 0
    assert "switzerland" in done.stdout and "740 samples" in done.stdout


def test_unknown_profile_is_one_line_error(root):
    done = afr("data", "no_such_task", cwd=root)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "no profile 'no_such_task'" in done.stderr and "fed_heart_disease" in done.stderr


def test_init_makes_a_committed_workspace(tmp_path):
    target = tmp_path / "ws"
    done = afr("init", str(target))
    assert done.returncode == 0, done.stderr
    repo = git.Repo(target)
    tracked = set(repo.git.ls_files().splitlines())
    assert "program.md" in tracked and "profiles/fed_heart_disease.toml" in tracked
    assert "tasks/fed_heart_disease/uci_data/processed.va.data" in tracked
    assert not any("__pycache__" in path for path in tracked)
    assert not repo.is_dirty(untracked_files=True)
    assert ".afr/" in (target / ".gitignore").read_text()
    # The workspace answers from its own copy of the tasks.
    data = afr("data", "fed_heart_disease", "--json", "--workspace", str(target))
    assert data.returncode == 0 and json.loads(data.stdout)["total_samples"] == 740
    # Again: refused unless --exist-ok; a non-empty foreign folder is never overwritten.
    again = afr("init", str(target))
    assert again.returncode == 2 and "already an afr workspace" in again.stderr
    assert afr("init", str(target), "--exist-ok").returncode == 0
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    refused = afr("init", str(foreign))
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert (foreign / "mine.txt").read_text() == "keep me"


def test_bad_arguments_exit_2_without_traceback(root):
    done = afr("data", cwd=root)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = afr("run", "--profile", "fed_heart_disease", "--env", "cloud", cwd=root)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_wheel_carries_the_workspace_template(root, tmp_path):
    """A non-editable install must still have program.md, profiles, tasks and skills."""
    import zipfile

    from hatchling.builders.wheel import WheelBuilder

    wheel = next(iter(WheelBuilder(str(root)).build(directory=str(tmp_path), versions=["standard"])))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "afr/cli.py",
        "engine/campaign/loop.py",
        "afr_tui/__init__.py",
        "engine/_bundled/program.md",
        "engine/_bundled/profiles/fed_heart_disease.toml",
        "engine/_bundled/tasks/fed_heart_disease/uci_data/processed.cleveland.data",
        "engine/_bundled/tasks/fed_heart_disease/uci_data/SOURCE.md",
        "engine/_bundled/tasks/leaf_synthetic/client.py",
        "engine/_bundled/tasks/shared/aggregators.py",
        "engine/_bundled/skills/literature.md",
    ):
        assert expected in names, expected
    assert not any("__pycache__" in name for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "afr = afr.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_validate_reports_each_check_and_refuses_a_protected_edit(tmp_path):
    target = tmp_path / "ws"
    assert afr("init", str(target)).returncode == 0
    clean = afr("validate", "--profile", "fed_heart_disease", cwd=target)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "ok   integrity: ok" in clean.stdout
    data = target / "tasks/fed_heart_disease/data.py"
    data.write_text(data.read_text() + "\n# tweak\n")
    dirty = afr("validate", "--profile", "fed_heart_disease", cwd=target)
    assert dirty.returncode == 2
    assert "FAIL surface: tasks/fed_heart_disease/data.py is protected" in dirty.stdout
    assert dirty.stderr.strip().splitlines() == [
        "afr: error: validation failed: surface: tasks/fed_heart_disease/data.py is protected"
    ]


def test_campaign_commands_outside_a_workspace_fail_cleanly(tmp_path):
    for args in (["status"], ["list"], ["resume"], ["diff", "c001"]):
        done = afr(*args, "--workspace", str(tmp_path), cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, args
        assert done.stderr.count("\n") == 1


def test_bad_tag_is_refused(tmp_path):
    target = tmp_path / "ws"
    assert afr("init", str(target)).returncode == 0
    done = afr("run", "--tag", "My Campaign", "--headless", cwd=target)
    assert done.returncode == 2 and "may only use lowercase" in done.stderr
    done = afr("run", "--tag", "heart-nodate", "--headless", cwd=target)
    assert done.returncode == 2 and "must contain a YYYYMMDD date" in done.stderr
