"""The trusted evaluator: the score of record, computed by afr from the model the server saved.

After a job, the final global model NVFlare persisted (``app_server/FL_global_model.pt``)
is copied out of the run directory, its saved tensors are counted by the engine without
unpickling it (``tensorfile``), and a sandboxed model process
(``predict_child.py``) builds the candidate's registered architecture, loads the state
strictly, counts every parameter and buffer and writes raw outputs for each site's scored
features. The engine then computes the metric from the labels it alone holds. The job's
own ``cross_val_results.json`` is only a cross-check (``score_mismatch``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.run.databridge import SiteData
from engine.run.sandbox import SandboxSpec, detect_sandbox, wrap
from engine.run.tensorfile import read_state, stored_elements

CHILD = Path(__file__).with_name("predict_child.py")
SAVED_MODEL = "FL_global_model.pt"  # NVFlare's PTFileModelPersistor: the final global model
CROSS_VAL_MODEL = "SRV_FL_global_model.pt"  # its name in cross_site_val/cross_val_results.json
MISMATCH_TOLERANCE = 1e-4  # same model, same rows, same CPU kernels: only float noise may differ
MAX_RESULTS_BYTES = 1_000_000
CLOSE_GRACE = 10.0  # seconds to wait for a killed model process's pipes to close


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "maximize" or "minimize"
    compute: Callable[[np.ndarray, np.ndarray], float]  # (raw model outputs, labels) -> score


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """One output per row is a logit thresholded at 0, several are class scores (argmax)."""
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        return (outputs.reshape(len(outputs), -1)[:, 0] > 0).astype(np.int64)
    return outputs.argmax(axis=-1).astype(np.int64)


def accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy on an empty evaluation set")
    return float((predicted_classes(outputs) == labels.reshape(-1).astype(np.int64)).mean())


# Metrics by profile name. A new one (c-index on risk scores, a loss on logits) is a function
# of (raw outputs, labels) and a direction.
METRICS: dict[str, Metric] = {"accuracy": Metric("accuracy", "maximize", accuracy)}


@dataclass
class Evaluation:
    """The evaluator's verdict on one run: a score, or the reason there is none."""

    score: float | None
    per_site: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # parameters, buffers, other_tensors, saved, total
    error: str = ""
    sandbox: str = "none"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.score is not None and not self.error


def find_saved_model(result_dir: Path) -> Path:
    """The one final model file under ``result_dir``; refuses links and files outside it."""
    result_dir = Path(result_dir).resolve()
    matches = [p for p in result_dir.glob(f"**/app_server/{SAVED_MODEL}")]
    if len(matches) != 1:
        raise ValueError(f"expected one app_server/{SAVED_MODEL} under {result_dir}, found {len(matches)}")
    path = matches[0]
    if path.is_symlink() or not path.is_file() or result_dir not in path.resolve().parents:
        raise ValueError(f"{path} is not a regular file inside the run's result directory")
    return path


class ModelProcess:
    """The sandboxed model process of one run, started early and given its work after the job.

    Started when the job starts, it imports torch while NVFlare runs, then waits for its
    spec on stdin, so the evaluator adds little to the candidate's wall time. It sees the
    worktree read-only (raw data hidden), the scored features, an empty model folder the
    engine fills after the job, and the folder it writes its outputs to.
    """

    def __init__(
        self,
        worktree: Path,
        data: SiteData,
        sites: list[str],
        hidden: tuple[Path, ...] = (),
        sandbox: str | None = None,
    ) -> None:
        self.sandbox = sandbox or detect_sandbox()
        self.worktree, self.data, self.sites = Path(worktree), data, list(sites)
        self._scratch = tempfile.TemporaryDirectory(prefix="afr-eval-")
        scratch = Path(self._scratch.name)
        self.model_dir, self.out_dir = scratch / "model", scratch / "out"
        self.model_dir.mkdir()
        self.out_dir.mkdir()
        box = SandboxSpec(
            workdir=self.out_dir,
            writable=(self.out_dir,),
            readonly=(self.worktree, self.model_dir, data.inputs_dir(), CHILD),
            hidden=hidden,
            env={"PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"},
        )
        command = wrap([sys.executable, "-I", str(CHILD)], box, self.sandbox)
        self._process = subprocess.Popen(
            command.argv,
            env=command.env,
            cwd=command.cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # one process group: bwrap and its namespace init, see close()
        )

    def close(self) -> None:
        """Stop the process (if still waiting) and remove its folders; safe to call twice.

        The whole process group is killed: killing only bwrap while it is still setting up
        leaves its namespace init waiting forever, holding our pipes open.
        """
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.communicate(timeout=CLOSE_GRACE)
        self._scratch.cleanup()

    def finish(
        self,
        model_module: str,
        arch: str,
        result_dir: Path,
        metric: str = "accuracy",
        max_params: int = 0,
        timeout: float = 300.0,
    ) -> Evaluation:
        """Score the run's saved final model per site with afr's metric; never raises for a bad model.

        ``model_module`` is e.g. ``tasks.fed_heart_disease.model``; ``max_params`` (0: no
        cap) applies to every parameter, buffer and stray tensor the loaded model holds.
        """
        started = time.monotonic()
        try:
            evaluation = self._finish(model_module, arch, Path(result_dir), metric, max_params, timeout)
        finally:
            self.close()
        evaluation.sandbox = self.sandbox
        evaluation.seconds = time.monotonic() - started
        return evaluation

    def _finish(self, model_module, arch, result_dir, metric, max_params, timeout) -> Evaluation:
        if metric not in METRICS:
            return Evaluation(None, error=f"no metric {metric!r} in the evaluator")
        try:
            model_file = self.model_dir / SAVED_MODEL
            shutil.copyfile(find_saved_model(result_dir), model_file, follow_symlinks=False)
            saved_state = read_state(model_file)  # no torch, no pickled code: shapes only
        except (OSError, ValueError) as error:
            return Evaluation(None, error=f"final model: {error}")
        spec = {
            "worktree": str(self.worktree.resolve()),
            "model_module": model_module,
            "arch": arch,
            "model_file": str(model_file),
            "inputs_dir": str(self.data.inputs_dir().resolve()),
            "out_dir": str(self.out_dir),
            "sites": self.sites,
        }
        try:
            _, stderr = self._process.communicate(json.dumps(spec) + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            return Evaluation(None, error=f"model process took over {timeout:.0f} s")
        result = _read_report(self.out_dir / "report.json", self._process.returncode, stderr)
        if isinstance(result, str):
            return Evaluation(None, error=result)
        try:
            counts = {k: int(result.get(k, 0)) for k in ("parameters", "buffers", "other_tensors")}
            keys = sorted(str(key) for key in result.get("keys", []))
        except (TypeError, ValueError):
            return Evaluation(None, error="model process wrote an unreadable report")
        counts["saved"] = stored_elements(saved_state)
        if keys != sorted(saved_state):
            return Evaluation(
                None, counts=counts, error="model process loaded other tensors than the saved file holds"
            )
        counts["total"] = max(
            sum(counts[k] for k in ("parameters", "buffers", "other_tensors")), counts["saved"]
        )
        if max_params and counts["total"] > max_params:
            error = f"model holds {counts['total']} parameters and buffers, over the cap of {max_params}"
            return Evaluation(None, counts=counts, error=error)
        try:
            per_site = {
                site: _site_score(self.out_dir / f"{site}.npy", self.data.labels(site), METRICS[metric])
                for site in self.sites
            }
        except (OSError, ValueError) as error:
            return Evaluation(None, counts=counts, error=f"predictions: {error}")
        return Evaluation(sum(per_site.values()) / len(per_site), per_site, counts)


def evaluate(
    worktree: Path,
    model_module: str,
    arch: str,
    result_dir: Path,
    data: SiteData,
    sites: list[str],
    metric: str = "accuracy",
    max_params: int = 0,
    hidden: tuple[Path, ...] = (),
    sandbox: str | None = None,
    timeout: float = 300.0,
) -> Evaluation:
    """Start a model process and score ``result_dir`` at once (``ModelProcess`` overlaps it with the job)."""
    process = ModelProcess(worktree, data, sites, hidden, sandbox)
    return process.finish(model_module, arch, result_dir, metric, max_params, timeout)


def _read_report(path: Path, returncode: int | None, stderr: str) -> dict | str:
    try:
        report = json.loads(path.read_text()[:MAX_RESULTS_BYTES]) if path.is_file() else None
    except (OSError, ValueError):
        report = None
    if isinstance(report, dict) and "refused" in report:
        return f"model refused: {report['refused']}"
    if returncode != 0 or not isinstance(report, dict):
        last = (stderr.strip().splitlines() or [f"exit code {returncode}"])[-1]
        return f"model process failed: {last[:300]}"
    return report


def _site_score(path: Path, labels: np.ndarray, metric: Metric) -> float:
    outputs = np.load(path, allow_pickle=False)
    if outputs.dtype.kind != "f" or len(outputs) != len(labels):
        raise ValueError(f"{path.name}: {outputs.shape} {outputs.dtype} outputs for {len(labels)} rows")
    if not np.isfinite(outputs).all():
        raise ValueError(f"{path.name}: non-finite outputs")
    return metric.compute(outputs, labels)


def reported_scores(result_dir: Path, metric: str = "accuracy") -> dict[str, float]:
    """The job's own per-site metric of the final model, read as plain JSON (a cross-check only)."""
    matches = sorted(Path(result_dir).glob("**/cross_site_val/cross_val_results.json"))
    if not matches:
        raise ValueError(f"no cross_site_val/cross_val_results.json under {result_dir}")
    with open(matches[0], encoding="utf-8") as handle:
        data = json.loads(handle.read(MAX_RESULTS_BYTES))
    scores = {}
    for site, models in data.items():
        entry = (models or {}).get(CROSS_VAL_MODEL) if isinstance(models, dict) else None
        if isinstance(entry, dict) and isinstance(entry.get(metric), int | float):
            scores[str(site)] = float(entry[metric])
    return scores


def score_mismatch(
    evaluated: dict[str, float], reported: dict[str, float], tolerance: float = MISMATCH_TOLERANCE
) -> str | None:
    """The crash reason when the job's own scores disagree with the evaluator's, else None."""
    for site in sorted(evaluated):
        if site not in reported:
            return f"score mismatch: the job reported no score for {site}"
        if not math.isclose(evaluated[site], reported[site], rel_tol=0.0, abs_tol=tolerance):
            return (
                f"score mismatch: {site} scored {evaluated[site]:.6f} by afr's evaluator, "
                f"{reported[site]:.6f} by the job"
            )
    return None
