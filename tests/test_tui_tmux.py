"""The cockpit in a real terminal (tmux): `afr run`, keys, quit leaving it running, `afr attach`,
a hang-up of the terminal (the engine survives it), and a stop from a second `afr attach`.

One smoke NVFlare job runs (the approved baseline), so the test is marked ``nvflare``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from engine.control.server import engine_alive, engine_status
from engine.store.ledger import Ledger

pytestmark = [
    pytest.mark.nvflare,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]
TAG = "tmux-20261122"


class Terminal:
    """A detached tmux session of 120x40 running one shell command."""

    def __init__(self, command: str, cwd) -> None:
        self.name = f"afr-{uuid.uuid4().hex[:8]}"
        script = f"cd {shlex.quote(str(cwd))} && {command}; echo AFR-EXITED $?; sleep 600"
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", script],
            check=True,
            env={**os.environ, "TERM": "xterm-256color"},
        )

    def screen(self) -> str:
        done = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], capture_output=True, text=True)
        return done.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", self.name, key], check=True)
            time.sleep(0.3)

    def wait_for(self, *texts: str, timeout: float = 180.0) -> str:
        """The screen once any of ``texts`` is on it (a cockpit starting beside busy test workers
        can take a minute to draw)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if any(text in screen for text in texts):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"{texts!r} never appeared; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_run_detach_and_attach_in_a_real_terminal(tmp_path):
    afr = f"{shlex.quote(sys.executable)} -m afr.cli"
    init = subprocess.run(
        [sys.executable, "-m", "afr.cli", "init", str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    workspace = tmp_path / "ws"
    directory = workspace / ".afr" / "campaigns" / TAG
    pid = None
    run = Terminal(f"{afr} run --smoke --max-candidates 3 --approval manual --tag {TAG}", workspace)
    attach = None
    try:
        screen = run.wait_for("c001 awaits your approval")
        assert TAG in screen and "awaiting approval" in screen
        pid = engine_status(directory)["pid"]
        run.keys("a")  # approve the baseline: it starts on NVFlare
        # The running row shows its phase (▶ starting NVFlare, ▶ round 1/1), unless c002, prepared
        # while the baseline runs, already asks for approval over it.
        run.wait_for("▶ ", "c002 awaits your approval")
        assert "c001" in engine_status(directory)["running"]
        run.keys("q")
        run.wait_for("Leave it running")
        run.keys("l")
        screen = run.wait_for("AFR-EXITED 0")
        assert f"{TAG} keeps running in the background" in screen
        assert engine_alive(directory)  # the terminal's cockpit is gone, the engine is not

        attach = Terminal(f"{afr} attach", workspace)
        # Connected once it shows the campaign's record: its profile, or (at 80 columns the scored
        # header has no room for the profile) the approval c002 waits for.
        screen = attach.wait_for("fed_heart_disease", "c002 awaits your approval")
        assert TAG in screen
        # still going: the baseline finishes while we watch, and c002 comes up for approval
        screen = attach.wait_for("c002 awaits your approval", timeout=300)
        # c002 is prepared while the baseline runs: the baseline's row comes when it is scored.
        deadline = time.time() + 300
        while not Ledger(directory).rows() and time.time() < deadline:
            time.sleep(0.5)
        assert Ledger(directory).rows()[0].status == "keep"
        attach.close()  # the terminal hangs up, as a dropped SSH connection does
        time.sleep(1.0)
        assert engine_alive(directory) and engine_status(directory)["awaiting"] == ["c002"]

        attach = Terminal(f"{afr} attach {TAG}", workspace)
        attach.wait_for("c002 awaits your approval")
        attach.keys("s")
        attach.wait_for("Stop the campaign?")
        attach.keys("y")
        # The header's "stopped (reason)" once the campaign ended; c002's detail says "campaign
        # stopped before a decision" a moment earlier.
        attach.wait_for("stopped (")
        attach.keys("q")
        attach.wait_for("AFR-EXITED 0")
        deadline = time.monotonic() + 30
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not running(pid) and not engine_alive(directory)  # the engine process itself has ended
    finally:
        run.close()
        if attach:
            attach.close()
        if pid and running(pid):
            os.kill(pid, 9)
