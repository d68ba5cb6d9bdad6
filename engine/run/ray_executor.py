"""The Ray executor: each run's NVFlare job as a task on a Ray cluster (``afr run --executor ray``).

The engine, ledgers, git and trusted evaluator stay where ``afr`` runs. A task carries what
the job needs and nothing else: the candidate's code as a ``git archive`` of its worktree's
commit (no shared filesystem is assumed), the per-site data views afr exported and, on the
trusted path, the job folder afr exported and verified on the engine (never ``job.py``'s own
run). On the worker it launches that folder with ``run_job`` in the run sandbox (bubblewrap
where the node has it; with ``--die-with-parent``, so a killed worker takes its job with it)
and afr's step counter, and sends back the run directory (result files, log, final model) as
an archive with the step counts (``engine/run/remote_launch.py``). The engine unpacks it into
the local run directory, where afr's evaluator scores the final model and the budget check
reads the counts exactly as for a local run.

A worker or node lost mid-run gives the run one more try; a second loss is a crash with the
reason. Ray is imported only when this executor is built: afr runs without it.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import shutil
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.profile import Profile, Scalar
from engine.run.jobbox import VIEW_VAR, job_spec
from engine.run.remote_launch import ShippedLaunch, counts_from, land_launch, ship_launch
from engine.run.runner import CRASH_SCORE, RunResult, processes_of_run, run_job
from engine.store.gitsafe import run_git

PLACED = "afr: running on Ray node"  # the log line saying where a remote run runs (the cockpit reads it)


class ExecutorError(ValueError):
    """An executor that cannot be used (Ray missing, no cluster to reach); the message is one line."""


RAY_MISSING = "--executor ray needs Ray on this machine and every worker: pip install 'afr[ray]'"
NO_CLUSTER = (
    "no Ray cluster to connect to at {address}: start one with `ray start --head` on this machine "
    "(and `ray start --address HEAD_IP:6379` on each worker), or pass --ray-address HOST:PORT"
)
LINE_BATCH_SECONDS = 1.0  # how often a worker sends the job's new log lines
LOST = "the Ray worker running it was lost"


@dataclass(frozen=True)
class RemoteRun:
    """Everything one task needs: plain data, no path of the engine's machine."""

    code: bytes  # tar of the worktree's commit
    views: bytes | None  # tar of the per-site data views the sandboxed job reads
    profile: Profile
    args: dict[str, Scalar]
    options: dict  # run_job's keyword options that travel (env, smoke, seed, subset, timeouts, lean)
    token: str  # marks the job's processes on the worker (AFR_RUN_TOKEN)
    sandbox: str | None  # "none" when the engine asked for no sandbox, else None: the worker's best
    launch: ShippedLaunch | None = None  # the trusted path: afr's verified export, launched on the worker
    count_steps: bool = False  # the trusted path: afr's step counter in the job, its counts sent back


@dataclass
class RemoteOutcome:
    result: dict  # RunResult.to_dict(), paths under ``run_dir`` on the worker
    run_dir: str
    archive: bytes  # tar.gz of the worker's run directory
    placement: dict = field(default_factory=dict)
    steps: dict | None = None  # StepCounts.to_dict() of the worker's step log (trusted runs)


def tar_bytes(folder: Path, compress: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w") as archive:
        archive.add(str(folder), arcname=".")
    return buffer.getvalue()


def untar_bytes(data: bytes, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(target, filter="data")  # no absolute paths, links out or devices


def commit_archive(worktree: Path) -> bytes:
    """The worktree's code as committed; tracked edits not yet committed travel too (``git stash create``)."""

    def git(*argv: str) -> bytes:
        return run_git(worktree, *argv).stdout  # hardened (no hooks or helpers), in its own session

    tree = git("stash", "create").decode().strip() or "HEAD"
    return git("archive", "--format=tar", tree)


def run_on_worker(run: RemoteRun):
    """The task body, on a Ray worker (a streaming generator): where it runs first, then the job's
    progress lines as they come, then the outcome. The job runs sandboxed in a thread of the task."""
    import ray  # on a worker Ray is there by definition

    from engine.run.sandbox import detect_sandbox
    from engine.run.stepcount import StepLog

    context = ray.get_runtime_context()
    gpus = [str(gpu) for gpu in ray.get_gpu_ids()]
    scratch = Path(tempfile.mkdtemp(prefix="afr-ray-"))
    steps = None
    try:
        code, views, run_dir = scratch / "code", scratch / "views", scratch / "run"
        untar_bytes(run.code, code)
        sandbox = run.sandbox or detect_sandbox()
        run_dir.mkdir()
        if run.count_steps:
            steps = StepLog(scratch / "steps")  # the FIFO lives outside every folder the sandbox mounts
        launch = None
        if run.launch is not None:
            launch = land_launch(run.launch, scratch / "job", code, run_dir, steps, untar_bytes)
        spec = None
        if run.views is not None or launch is not None:
            if run.views is not None:
                untar_bytes(run.views, views)
            spec = job_spec(
                code,
                run_dir,
                views if run.views is not None else None,
                run.profile.surface.protected,
                steps.env if steps is not None else {},
            )
            mounts = (*(steps.mounts if steps is not None else ()), *((launch.job_dir,) if launch else ()))
            spec = replace(spec, readonly=(*spec.readonly, *mounts))  # the verified job: read-only
        placement = {
            "executor": "ray",
            "node_id": context.get_node_id(),
            "node_ip": ray.util.get_node_ip_address(),
            "hostname": socket.gethostname(),
            "gpus": gpus,
            "worker_pid": os.getpid(),
            "sandbox": sandbox if spec is not None else "none",
            "launched_by": "afr" if launch is not None else "job.py",
            "started": time.time(),  # wall clock, while the task holds its CPUs (overlap => other CPUs)
        }
        yield ("placement", placement)
        lines: queue.Queue[str] = queue.Queue()
        done: list = []

        def job() -> None:
            try:
                done.append(
                    run_job(
                        code,
                        run.profile,
                        run.args,
                        run_dir,
                        gpu=",".join(gpus) or None,
                        on_line=lines.put,
                        sandbox_spec=spec,
                        sandbox=sandbox,
                        token=run.token,
                        launch=launch,
                        **run.options,
                    )
                )
            except BaseException as error:  # handed to the engine as the task's failure
                done.append(error)
            finally:
                kill_run(run.token)

        thread = threading.Thread(target=job, name="afr-ray-job", daemon=True)
        thread.start()
        while thread.is_alive() or not lines.empty():
            thread.join(timeout=LINE_BATCH_SECONDS)
            batch = []
            while not lines.empty():
                batch.append(lines.get_nowait())
            if batch:
                yield ("lines", batch)
        if isinstance(done[0], BaseException):
            raise done[0]
        counted = steps.close().to_dict() if steps is not None else None  # every process of the job has ended
        steps = None
        placement["finished"] = time.time()
        archive = tar_bytes(run_dir, compress=True)
        yield ("outcome", RemoteOutcome(done[0].to_dict(), str(run_dir), archive, placement, counted))
    finally:
        if steps is not None:
            steps.close()
        shutil.rmtree(scratch, ignore_errors=True)


def kill_run(token: str) -> int:
    """Kill every process of the run marked ``token`` on this node; how many there were."""
    found = processes_of_run(token)
    for process in found:
        with contextlib.suppress(Exception):
            process.kill()
    return len(found)


def sweep_node(tokens: list[str]) -> int:
    return sum(kill_run(token) for token in tokens)


class RayExecutor:
    """A callable with ``run_job``'s signature that runs the job as a Ray task."""

    remote_executor = True  # engine/run/trusted.py: the launch and the step counter are rebuilt on the worker

    def __init__(self, address: str, cpus: float = 1.0, gpus: float = 0.0) -> None:
        import ray

        self.ray = ray
        self.address = address
        self.cpus = cpus  # what one run asks for when its profile says nothing
        self.gpus = gpus
        self._remote = ray.remote(run_on_worker)
        self._sweeper = ray.remote(sweep_node)
        self._lock = threading.Lock()
        self._running: dict[str, object] = {}  # token -> the ObjectRef of its task
        self._cancelled: set[str] = set()

    @classmethod
    def connect(cls, address: str | None = None) -> RayExecutor:
        """Join the cluster at ``address`` (default: ``auto``, the one started on this machine)."""
        try:
            import ray
        except ImportError as error:
            raise ExecutorError(f"{RAY_MISSING} ({error})") from None
        address = address or os.environ.get("RAY_ADDRESS") or "auto"
        if not ray.is_initialized():
            reachable_or_raise(address)
            try:
                # The engine's stdout is the console view: Ray's own logs stay in its session folder.
                ray.init(address=address, log_to_driver=False, logging_level="WARNING", configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ExecutorError(f"{NO_CLUSTER.format(address=address)} ({reason})") from None
        return cls(address)

    # -- run_job's signature -------------------------------------------------------------------

    def __call__(self, root, profile: Profile, args, run_dir, *, trusted=None, **options) -> RunResult:
        if trusted is not None:
            # The trusted path exports the views, starts the evaluator's model process and calls
            # ``self.run_remote`` as its job runner; the evaluator then scores what came back.
            result = trusted.run(self.run_remote, root, profile, args, run_dir, **options)
            sandbox = result.placement.get("sandbox")
            return replace(result, sandbox=sandbox) if sandbox else result
        return self.run_remote(root, profile, args, run_dir, **options)

    def run_remote(
        self,
        root,
        profile: Profile,
        args: dict[str, Scalar],
        run_dir,
        *,
        on_line=None,
        on_start=None,
        sandbox_spec=None,
        sandbox: str | None = None,
        gpu: str | None = None,  # the local slot's GPU: on a cluster, Ray assigns GPUs
        token: str | None = None,
        launch=None,  # engine.run.launch.Launch: verified here, launched on the worker
        step_log=None,  # engine.run.stepcount.StepLog: the worker's counts are added to it
        **options,
    ) -> RunResult:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        token = token or uuid.uuid4().hex
        views = None
        if sandbox_spec is not None and VIEW_VAR in sandbox_spec.env:
            views = tar_bytes(Path(sandbox_spec.env[VIEW_VAR]))
        run = RemoteRun(
            commit_archive(Path(root)),
            views,
            profile,
            dict(args),
            options,
            token,
            "none" if sandbox == "none" else None,
            None if launch is None else ship_launch(launch, Path(root), tar_bytes),
            step_log is not None,
        )
        if on_start is not None:
            on_start(token)  # the journal holds it: a resumed engine sweeps the cluster for it
        started = time.monotonic()
        errors: list[str] = []
        for attempt in range(2):
            outcome, error = self._submit_and_wait(run, profile, on_line)
            if outcome is not None:
                result = self._landed(outcome, run_dir, attempt, errors)
                counted = counts_from(outcome.steps)
                if step_log is not None and counted is not None:
                    step_log.add(counted)  # the budget check then sees the worker's counts (trusted.py)
                # Submission to unpacked result, against the job's own time: what Ray adds to a run.
                result.placement["executor_seconds"] = round(time.monotonic() - started, 3)
                return result
            errors.append(error)
            if token in self._cancelled or not error.startswith(LOST) or attempt == 1:
                break
            if on_line is not None:
                on_line(f"afr: {error}; running it once more")
        reason = errors[-1] if len(errors) == 1 else f"{errors[-1]} (twice: no more tries)"
        return RunResult(
            "crash",
            CRASH_SCORE,
            {},
            time.monotonic() - started,
            "",
            None,
            None,
            [],
            reason,
            placement={"executor": "ray", "attempts": len(errors)},
        )

    def _submit_and_wait(self, run: RemoteRun, profile: Profile, on_line) -> tuple[RemoteOutcome | None, str]:
        ray = self.ray
        cpus = profile.run.cpus if profile.run.cpus is not None else self.cpus
        gpus = profile.run.gpus if profile.run.gpus is not None else self.gpus
        task = self._remote.options(
            num_cpus=cpus, num_gpus=gpus, max_retries=0, num_returns="streaming", name="afr-run"
        ).remote(run)
        with self._lock:
            self._running[run.token] = task
        try:
            for ref in task:  # blocks until the worker yields; a cancel or a lost worker raises here
                kind, value = ray.get(ref)
                if kind == "placement" and on_line is not None:
                    gpu = ",".join(value["gpus"]) or "-"
                    on_line(f"{PLACED} {value['node_ip']} {value['node_id'][:12]} gpu {gpu}")
                elif kind == "lines" and on_line is not None:
                    for line in value:
                        on_line(line)
                elif kind == "outcome":
                    return value, ""
            return None, f"{LOST} (the task ended without a result)"
        except ray.exceptions.TaskCancelledError:
            return None, "cancelled: the run was aborted"
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.LocalRayletDiedError,
            ray.exceptions.ObjectLostError,
            ray.exceptions.OwnerDiedError,
        ) as error:
            if run.token in self._cancelled:
                return None, "cancelled: the run was aborted"
            return None, f"{LOST} ({type(error).__name__})"
        except ray.exceptions.RayTaskError as error:  # afr's own task code failed on the worker
            return None, f"the Ray task failed: {str(error).strip().splitlines()[-1][:300]}"
        finally:
            with self._lock:
                self._running.pop(run.token, None)

    def _landed(self, outcome: RemoteOutcome, run_dir: Path, attempt: int, errors: list[str]) -> RunResult:
        """The worker's run directory unpacked here, its paths rewritten to the local run directory."""
        untar_bytes(outcome.archive, run_dir)
        data = dict(outcome.result)
        for key in ("log_path", "result_dir"):
            if data.get(key):
                data[key] = data[key].replace(outcome.run_dir, str(run_dir), 1)
        placement = {**outcome.placement, "attempts": attempt + 1}
        if errors:
            placement["lost"] = errors
        data["placement"] = placement
        return RunResult(**data)

    # -- stop and resume ----------------------------------------------------------------------------

    def cancel(self, token: str) -> None:
        """Kill the task of the run ``token`` (its worker, and so its sandboxed job)."""
        with self._lock:
            self._cancelled.add(token)
            ref = self._running.get(token)
        if ref is not None:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)
        self.sweep([token])

    def sweep(self, tokens: list[str]) -> int:
        """Kill whatever is left of the runs ``tokens`` on every live node; how many processes."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        refs = []
        for node in self.ray.nodes():
            if node.get("Alive"):
                strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                refs.append(
                    self._sweeper.options(num_cpus=0, scheduling_strategy=strategy, name="afr-sweep").remote(tokens)
                )
        try:
            return sum(self.ray.get(refs, timeout=60))
        except Exception:  # a node that went away meanwhile has nothing left to kill
            return 0


def reachable_or_raise(address: str) -> None:
    """Fail fast unless something answers at ``HOST:PORT`` (Ray itself would wait for ever)."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            return
    except (OSError, ValueError) as error:
        raise ExecutorError(f"{NO_CLUSTER.format(address=address)} ({error})") from None
