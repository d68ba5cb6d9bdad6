"""Probes ``afr task check`` runs inside the workspace, in a child process (``python probe.py KIND``).

Self-contained on purpose (standard library and numpy only): it imports the workspace's own
``tasks`` package, never the engine's, and each check gets a fresh interpreter.

- ``args JOB``: read a JSON list of flag lists on stdin and parse each with the job's own
  argparse parser: the job runs as ``__main__`` until its first ``parse_args`` succeeds, which
  stops it before any model or NVFlare work. Prints one JSON verdict per flag list.
- ``subsets MODULE N FIXED_JSON FRACTION SEED``: load every client's scored split through the data bridge
  for the ``full``, ``validation`` and ``heldout`` subsets and print their row counts and
  whether validation and held-out are disjoint and together cover the full split.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import json
import runpy
import sys

import numpy as np


class _Parsed(Exception):
    """Raised by the patched parser once the job's arguments parsed: stop the job there."""


def probe_args(job: str, flag_sets: list[list[str]]) -> list[dict]:
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        original(self, args, namespace)
        raise _Parsed

    argparse.ArgumentParser.parse_args = parse_then_stop
    verdicts = []
    for flags in flag_sets:
        sys.argv = [job, *flags]
        errors = io.StringIO()
        try:
            with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
                runpy.run_path(job, run_name="__main__")
            verdicts.append({"ok": False, "error": "the job never parsed its arguments"})
        except _Parsed:
            verdicts.append({"ok": True, "error": ""})
        except SystemExit:
            lines = [line for line in errors.getvalue().splitlines() if line.strip()]
            verdicts.append({"ok": False, "error": lines[-1] if lines else "the job exited while parsing"})
    return verdicts


def _rows(split) -> np.ndarray:
    """Every per-row array of a split side by side, one row per sample (for comparing rows)."""
    fields = (
        vars(split)
        if hasattr(split, "__dict__")
        else {f: getattr(split, f) for f in split.__dataclass_fields__}
    )
    arrays = [np.asarray(v) for v in fields.values() if isinstance(v, np.ndarray) or hasattr(v, "numpy")]
    count = len(arrays[0])
    return np.hstack([a.reshape(count, -1).astype(np.float64) for a in arrays if len(a) == count])


def _sorted_rows(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])] if len(rows) else rows


def probe_subsets(module_name: str, num_clients: int, fixed: dict, fraction: str, seed: str) -> list[dict]:
    module = importlib.import_module(module_name)
    accepted = inspect.signature(module.load_site).parameters
    if "environ" not in accepted:
        raise SystemExit(
            "data.py: load_site takes no environ= argument, so no trusted process can pick its subset"
        )
    kwargs = {k: v for k, v in fixed.items() if k in accepted}
    for alias in ("num_sites", "num_clients", "n_clients"):
        if alias in accepted:
            kwargs[alias] = num_clients
    environ = {"AFR_HELDOUT_FRACTION": fraction, "AFR_HELDOUT_SEED": seed}
    found = []
    for number in range(1, num_clients + 1):
        site = f"site-{number}"
        rows = {
            subset: _rows(
                module.load_site(site, **kwargs, environ={**environ, "AFR_EVAL_SUBSET": subset}).test
            )
            for subset in ("full", "validation", "heldout")
        }
        together = _sorted_rows(np.vstack([rows["validation"], rows["heldout"]]))
        found.append(
            {
                "site": site,
                **{subset: len(r) for subset, r in rows.items()},
                "partition": together.shape == rows["full"].shape
                and bool(np.array_equal(together, _sorted_rows(rows["full"]))),
            }
        )
    return found


def main() -> None:
    kind = sys.argv[1]
    if kind == "args":
        print(json.dumps(probe_args(sys.argv[2], json.load(sys.stdin))))
    elif kind == "subsets":
        print(
            json.dumps(probe_subsets(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), *sys.argv[5:7]))
        )
    else:
        raise SystemExit(f"unknown probe {kind!r}")


if __name__ == "__main__":
    main()
