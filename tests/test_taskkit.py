"""afr task new / afr task check: scaffolds that pass as generated, and each breakage's one-line reason.

Real NVFlare smoke runs: two per passing check (smoke + determinism) and two for the
non-deterministic client, six in all; every other breakage fails before any NVFlare run.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.profile import load_profile
from engine.taskkit.check import flag_sets

AFR = [sys.executable, "-m", "afr.cli"]


def afr(root: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*AFR, *args, "--workspace", str(root)], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("taskkit") / "ws"
    subprocess.run([*AFR, "init", str(root)], check=True, capture_output=True)
    made = afr(root, "task", "new", "toy")
    assert made.returncode == 0, made.stderr
    assert "wrote profiles/toy.toml and tasks/toy/ from the minimal template" in made.stdout
    return root


def broken_copy(root: Path, name: str, edit) -> None:
    """A copy of the template task ``toy`` with one file edited by ``edit(task_dir)``."""
    assert afr(root, "task", "new", name, "--from", "toy").returncode == 0
    edit(root / "tasks" / name)


def verdicts(out: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(r"^\[\d/7\] (ok  |FAIL|skip) (\w+)", out, re.M)}


def assert_fails_at(done: subprocess.CompletedProcess, check: str, reason: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    found = verdicts(done.stdout)
    order = list(found)
    assert found[check] == "FAIL" and all(found[c] == "ok  " for c in order[: order.index(check)])
    assert all(found[c] == "skip" for c in order[order.index(check) + 1 :])
    (line,) = done.stderr.strip().splitlines()  # one line, naming the check and the reason
    assert line.startswith(f"afr: task check failed: {check}: ") and reason in line


def test_new_refuses_bad_names_existing_tasks_and_unknown_sources(workspace):
    for args, message in [
        (("new", "toy"), "tasks/toy already exists"),
        (("new", "Bad-Name"), "task name 'Bad-Name'"),
        (("new", "other", "--from", "nope"), "no task 'nope' in tasks/"),
    ]:
        done = afr(workspace, "task", *args)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
        assert message in done.stderr


def test_flag_sets_cover_every_bound_choice_and_aggregator(workspace):
    profile = load_profile(workspace, "toy")
    labels = [label for label, _ in flag_sets(profile)]
    assert labels[0] == "baseline"
    assert {"lr=0.0001", "lr=1.0", "local_steps=5", "local_steps=100", "fedprox_mu=0.0"} <= set(labels)
    assert {"model_arch=mlp8", "optimizer=adam", "aggregator=fedavgm", "aggregator=median"} <= set(labels)


def test_a_missing_path_fails_the_profile_check(workspace):
    broken_copy(workspace, "nomodel", lambda d: (d / "model.py").unlink())
    done = afr(workspace, "task", "check", "profiles/nomodel.toml")
    assert_fails_at(done, "profile", "surface.editable[1]: tasks/nomodel/model.py does not exist")


def test_a_client_off_the_contract_fails_the_contract_check(workspace):
    def loose(d: Path) -> None:
        client = d / "client.py"
        client.write_text(client.read_text().replace("strict=True", "strict=False"))

    broken_copy(workspace, "loose", loose)
    done = afr(workspace, "task", "check", "loose")
    assert_fails_at(done, "contract", "no load_state_dict(..., strict=True)")


def test_a_job_that_rejects_a_flag_fails_the_flags_check(workspace):
    def drop_flag(d: Path) -> None:
        job = d / "job.py"
        text = job.read_text()
        job.write_text(text.replace('    parser.add_argument("--fedprox_mu", type=float, default=0.0)\n', ""))

    broken_copy(workspace, "noprox", drop_flag)
    done = afr(workspace, "task", "check", "profiles/noprox.toml")
    assert_fails_at(done, "flags", "job.py rejects the smoke budget flags: ")
    assert "unrecognized arguments: --fedprox_mu" in done.stderr


def test_a_bridge_that_ignores_the_heldout_subset_fails_the_subsets_check(workspace):
    def ignore(d: Path) -> None:
        data = d / "data.py"
        text = data.read_text()
        data.write_text(
            text.replace("keep = subset_indices(test.labels, site_name, environ)", "keep = slice(None)")
        )

    broken_copy(workspace, "leaky", ignore)
    done = afr(workspace, "task", "check", "profiles/leaky.toml")
    assert_fails_at(
        done, "subsets", "site-1: validation (60 rows) and held-out (60) do not split its 60 scored rows"
    )
    assert "the data bridge ignores the held-out subset" in done.stderr


def assert_passes(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(verdicts(done.stdout).values()) == {"ok  "} and len(verdicts(done.stdout)) == 7
    assert "all 7 checks passed" in done.stdout
    assert "... smoke run 1 (NVFlare simulator" in done.stdout  # progress while it runs


@pytest.mark.nvflare
def test_the_minimal_template_passes_as_generated(workspace):
    done = afr(workspace, "task", "check", "profiles/toy.toml")
    assert_passes(done)
    assert re.search(r"smoke\s+log_loss = \d\.\d{6} over 3 client\(s\)", done.stdout)


@pytest.mark.nvflare
def test_a_copy_of_heart_passes_as_generated(workspace):
    made = afr(workspace, "task", "new", "mytask", "--from", "fed_heart_disease")
    assert made.returncode == 0, made.stderr
    profile = load_profile(workspace, "mytask")
    assert profile.task_dir == "tasks/mytask" and "tasks/mytask/uci_data/*" in profile.surface.protected
    assert "fed_heart_disease" not in (workspace / "tasks" / "mytask" / "client.py").read_text()
    done = afr(workspace, "task", "check", "profiles/mytask.toml")
    assert_passes(done)
    assert re.search(r"smoke\s+accuracy = \d\.\d{6} over 4 client\(s\)", done.stdout)


@pytest.mark.nvflare
def test_a_nondeterministic_client_fails_the_determinism_check(workspace):
    # The same real runs also show a stall retried: the first site to start goes silent once,
    # as NVFlare sometimes leaves a job, and the smoke run goes again instead of failing.
    marker = workspace / "stalled-once"

    def unseeded(d: Path) -> None:
        client = d / "client.py"
        text = client.read_text().replace(
            "seed = site_seed(args.seed, site_name)",
            "seed = site_seed(args.seed, site_name) + __import__('time').time_ns() % 100_000",
        )
        text = text.replace(
            "    flare.init()\n",
            f"    flare.init()\n    if not __import__('os').path.exists({str(marker)!r}):\n"
            f"        open({str(marker)!r}, 'w').close()\n        __import__('time').sleep(600)\n",
        )
        assert "time_ns" in text and "sleep(600)" in text
        client.write_text(text)

    broken_copy(workspace, "noisy", unseeded)
    profile = workspace / "profiles" / "noisy.toml"
    profile.write_text(profile.read_text().replace("[run]\n", "[run]\nstall_seconds = 30\n"))
    done = afr(workspace, "task", "check", "profiles/noisy.toml")
    assert_fails_at(done, "determinism", "two smoke runs at seed 42 differ")
    assert marker.exists()
    assert "smoke run 1 stalled (no output for 30 s: the NVFlare job stalled); running it once more" in done.stdout
    assert (workspace / ".afr" / "taskcheck" / "smoke1-retry" / "job.log").is_file()
