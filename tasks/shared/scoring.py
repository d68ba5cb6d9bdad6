"""Reading a finished NVFlare job's score. Protected: the engine and the jobs share it.

With ``add_final_global_evaluation`` NVFlare writes
``<result>/server/simulate_job/cross_site_val/cross_val_results.json`` (simulation; the job
id replaces ``simulate_job`` in POC/production) holding, per client, the metrics of the
final global model ``SRV_FL_global_model.pt``. The "best" model in the same file was picked
on the same data and is never used for scoring.
"""

from __future__ import annotations

import json
from pathlib import Path

FINAL_MODEL = "SRV_FL_global_model.pt"


def find_cross_val_results(result_dir: str | Path) -> Path:
    matches = sorted(Path(result_dir).glob("**/cross_site_val/cross_val_results.json"))
    if not matches:
        raise FileNotFoundError(f"no cross_site_val/cross_val_results.json under {result_dir}")
    return matches[0]


def final_model_metrics(results_file: str | Path, metric: str = "accuracy") -> dict[str, float]:
    """Per client, the final global model's ``metric``."""
    data = json.loads(Path(results_file).read_text())
    scores = {}
    for site, models in data.items():
        entry = (models or {}).get(FINAL_MODEL)
        if entry is None or metric not in entry:
            raise ValueError(f"{results_file}: no {metric!r} for {FINAL_MODEL} on {site}")
        scores[site] = float(entry[metric])
    return scores


def final_score(
    result_dir: str | Path, metric: str = "accuracy", clients: list[str] | None = None
) -> tuple[float, dict[str, float]]:
    """Mean of the final model's metric over ``clients`` (all evaluated clients if None)."""
    per_site = final_model_metrics(find_cross_val_results(result_dir), metric)
    chosen = sorted(per_site) if clients is None else clients
    missing = [site for site in chosen if site not in per_site]
    if missing or not chosen:
        raise ValueError(f"final evaluation has no result for {missing or 'any client'}")
    return sum(per_site[site] for site in chosen) / len(chosen), {site: per_site[site] for site in chosen}
