"""The environment fingerprint catches what a candidate could leave for the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.run.integrity import Fingerprint, fingerprint_problem, take_fingerprint, untrusted_path_entries
from engine.store.gitsafe import run_git


@pytest.fixture()
def workspace(tmp_path) -> Path:
    root = tmp_path / "workspace"
    root.mkdir()
    run_git(root, "init", "-q", "-b", "main")
    (root / "program.md").write_text("rules\n")
    run_git(root, "add", "-A")
    run_git(root, "commit", "-q", "-m", "start")
    return root


@pytest.fixture()
def site_packages(tmp_path) -> Path:
    folder = tmp_path / "site-packages"
    (folder / "numpy").mkdir(parents=True)
    (folder / "distutils-precedence.pth").write_text("import os\n")
    return folder


def test_unchanged_environment_has_no_problem(workspace, site_packages):
    recorded = take_fingerprint(workspace, [site_packages])
    assert fingerprint_problem(recorded, take_fingerprint(workspace, [site_packages])) is None
    assert Fingerprint.from_json(recorded.to_json()) == recorded
    assert "refs/heads/main" in recorded.heads


def test_the_real_interpreter_fingerprint_is_stable():
    assert fingerprint_problem(take_fingerprint(), take_fingerprint()) is None


def test_a_planted_pth_or_module_is_reported(workspace, site_packages):
    recorded = take_fingerprint(workspace, [site_packages])
    (site_packages / "zz_afr.pth").write_text("import os; os.environ['X'] = '1'\n")
    problem = fingerprint_problem(recorded, take_fingerprint(workspace, [site_packages]))
    assert problem and "zz_afr.pth" in problem
    (site_packages / "zz_afr.pth").unlink()
    (site_packages / "psutil.py").write_text("x = 1\n")
    problem = fingerprint_problem(recorded, take_fingerprint(workspace, [site_packages]))
    assert problem == "psutil.py appeared in site-packages since the campaign started"


def test_an_edited_pth_is_reported(workspace, site_packages):
    recorded = take_fingerprint(workspace, [site_packages])
    (site_packages / "distutils-precedence.pth").write_text("import evil\n")
    assert ".pth" in fingerprint_problem(recorded, take_fingerprint(workspace, [site_packages]))


def test_a_rewritten_branch_is_reported_unless_afr_moved_it(workspace, site_packages):
    recorded = take_fingerprint(workspace, [site_packages])
    (workspace / "program.md").write_text("rewritten\n")
    run_git(workspace, "commit", "-q", "-a", "-m", "history rewritten")
    problem = fingerprint_problem(recorded, take_fingerprint(workspace, [site_packages]))
    assert problem and problem.startswith("workspace branch refs/heads/main moved outside afr")
    head = run_git(workspace, "rev-parse", "main").stdout.decode().strip()
    moved = recorded.with_head("main", head)
    assert fingerprint_problem(moved, take_fingerprint(workspace, [site_packages])) is None


def test_the_working_directory_is_dropped_from_sys_path(tmp_path):
    (tmp_path / "shadowmod.py").write_text("print('SHADOW IMPORTED')\n")
    code = (
        "import sys\n"
        "sys.path.insert(0, '')\n"
        "from engine.run.integrity import drop_untrusted_paths\n"
        "print('dropped', drop_untrusted_paths())\n"
        "try:\n"
        "    import shadowmod\n"
        "except ImportError:\n"
        "    print('not imported')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "not imported" in done.stdout and "SHADOW" not in done.stdout


def test_untrusted_entries_name_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [str(tmp_path), "/usr/lib/python3"])
    assert untrusted_path_entries(workspace=tmp_path, cwd=Path("/")) == [str(tmp_path)]
