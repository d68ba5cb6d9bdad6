"""An abort by the human reaches a job running on an NVFlare deployment (``--env prod``).

Killing the engine's processes of a prod run is not enough: the job runs on the deployment's
server. ``cancel_run`` (what ``Campaign.kill_running`` calls on a second Ctrl-C) marks the run,
and the run's wait loop aborts the job through the admin API. The admin session here is a
stand-in with the four calls the loop makes; tests/test_prod.py runs the real deployment.
"""

from __future__ import annotations

import threading

import pytest

from engine.run import prod
from engine.run.deployment import Deployment
from engine.run.executors import cancel_run
from engine.run.runner import run_job


class RunningJobSession:
    """The admin API as submit_and_wait uses it, for a job that runs until it is aborted."""

    def __init__(self) -> None:
        self.aborted: list[str] = []
        self.closed = False
        self.polls = 0

    def submit_job(self, folder: str) -> str:
        return "job-7"

    def get_job_meta(self, job_id: str) -> dict:
        self.polls += 1
        return {"status": "FINISHED:ABORTED" if self.aborted else "RUNNING"}

    def abort_job(self, job_id: str) -> None:
        self.aborted.append(job_id)

    def download_job_result(self, job_id: str, destination: str) -> str:
        raise AssertionError("an aborted job's result is not downloaded")

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def session(monkeypatch):
    import nvflare.fuel.flare_api.flare_api as flare_api

    session = RunningJobSession()
    monkeypatch.setattr(flare_api, "new_secure_session", lambda *args, **kwargs: session)
    monkeypatch.setattr(prod, "POLL_SECONDS", 0.05)
    return session


def test_the_human_s_abort_aborts_the_job_on_the_deployment(session, tmp_path):
    token, lines = "run-token-1", []
    threading.Timer(0.3, cancel_run, args=(run_job, token)).start()  # the second Ctrl-C, mid-job
    with pytest.raises(prod.JobAborted, match="prod job job-7 aborted by the human"):
        prod.submit_and_wait(
            tmp_path, Deployment(str(tmp_path)), tmp_path, 60.0, lines.append, lambda: prod._is_aborted(token)
        )
    assert session.aborted == ["job-7"] and session.closed
    assert session.polls >= 2  # it was running when the abort came
    assert "afr: aborted prod job job-7" in lines


def test_another_run_s_abort_leaves_the_job_running(session, tmp_path):
    cancel_run(run_job, "some-other-run")
    session.get_job_meta = lambda job_id: {"status": "FINISHED:COMPLETED"}
    session.download_job_result = lambda job_id, destination: destination
    job_id, status, _ = prod.submit_and_wait(
        tmp_path, Deployment(str(tmp_path)), tmp_path, 60.0, lambda line: None, lambda: prod._is_aborted("mine")
    )
    assert (job_id, status) == ("job-7", "FINISHED:COMPLETED") and session.aborted == []
