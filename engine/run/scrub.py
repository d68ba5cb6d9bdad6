"""Secrets a job wrote into its own run directory are redacted after the run.

The runner redacts the job's output as it reaches ``job.log``, but a job also writes files of
its own there (NVFlare's per-site ``log.txt`` copies what client code prints). A job never
inherits a provider key (the sandbox's allow-list), so a key only gets there when candidate
code found one outside its sandbox: without bubblewrap, in another process's
``/proc/<pid>/environ``. This pass replaces every known secret value in the run directory's
files by ``[REDACTED:NAME]``, as ``engine.store.redact`` does for text afr writes itself. It
cannot undo an encoded key (base64, reversed): only the sandbox keeps the key out of reach.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.store.redact import collect_secrets

MAX_BYTES = 64 * 1024 * 1024  # model files and checkpoints of that size are not text logs


def scrub_secrets(folder: Path, max_bytes: int = MAX_BYTES) -> list[Path]:
    """Redact every secret of the environment in the files under ``folder``; the files changed."""
    secrets = sorted(collect_secrets().items(), key=lambda item: -len(item[0]))
    if not secrets or not Path(folder).is_dir():
        return []
    needles = [(value.encode(), f"[REDACTED:{name}]".encode()) for value, name in secrets]
    changed = []
    for path in sorted(Path(folder).rglob("*")):
        try:
            if path.is_symlink() or not path.is_file() or path.stat().st_size > max_bytes:
                continue
            data = path.read_bytes()
            if not any(needle in data for needle, _ in needles):
                continue
            for needle, replacement in needles:
                data = data.replace(needle, replacement)
            partial = path.with_name(path.name + ".afr-scrub")
            partial.write_bytes(data)
            os.replace(partial, path)
            changed.append(path)
        except OSError:
            continue  # a file the job left unreadable: nothing afr will show from it
    return changed
