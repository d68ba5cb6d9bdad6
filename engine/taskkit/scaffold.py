"""``afr task new``: a profile and a task folder that pass ``afr task check`` as generated.

Either from the bundled minimal template (``template/*.tmpl``: logistic regression over a
small synthetic federation made deterministically in its ``data.py``) or by copying a task
already in the workspace with its name rewritten in every text file and in its profile.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from engine.profile import ProfileError

TEMPLATE = Path(__file__).resolve().parent / "template"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
TEXT_SUFFIXES = {".py"}  # code names the task (imports, job names); data and SOURCE.md stay byte-identical


@dataclass(frozen=True)
class Scaffolded:
    profile: Path
    task_dir: Path
    source: str  # "template" or the copied task's name


def new_task(root: Path, name: str, source: str | None = None) -> Scaffolded:
    """Write ``profiles/<name>.toml`` and ``tasks/<name>/``; refuse to overwrite either."""
    root = Path(root)
    if not NAME_PATTERN.match(name) or name == "shared":
        raise ProfileError(f"task name {name!r}: use lowercase letters, digits and '_' (a Python identifier)")
    task_dir, profile = root / "tasks" / name, root / "profiles" / f"{name}.toml"
    for path in (task_dir, profile):
        if path.exists():
            raise FileExistsError(f"{path.relative_to(root)} already exists; pick another name")
    if source is None:
        _from_template(task_dir, profile, name)
        return Scaffolded(profile, task_dir, "template")
    _from_task(root, task_dir, profile, name, source)
    return Scaffolded(profile, task_dir, source)


def _from_template(task_dir: Path, profile: Path, name: str) -> None:
    task_dir.mkdir(parents=True)
    for template in sorted(TEMPLATE.glob("*.tmpl")):
        text = template.read_text().replace("{{NAME}}", name)
        target = (
            profile
            if template.name == "profile.toml.tmpl"
            else task_dir / template.name.removesuffix(".tmpl")
        )
        target.write_text(text)


def _source_profile(root: Path, source: str) -> Path:
    """The profile of task ``source``: ``profiles/<source>.toml``, else the one whose task_dir it is."""
    direct = root / "profiles" / f"{source}.toml"
    if direct.is_file():
        return direct
    for path in sorted((root / "profiles").glob("*.toml")):
        if re.search(rf'^task_dir\s*=\s*"tasks/{re.escape(source)}/?"', path.read_text(), re.M):
            return path
    raise ProfileError(f"no profile in profiles/ uses task {source!r}; --from needs one to copy")


def _from_task(root: Path, task_dir: Path, profile: Path, name: str, source: str) -> None:
    source_dir = root / "tasks" / source
    if source == "shared" or not (source_dir / "client.py").is_file():
        available = sorted(p.parent.name for p in (root / "tasks").glob("*/client.py"))
        raise ProfileError(f"no task {source!r} in tasks/ to copy (available: {', '.join(available)})")
    source_profile = _source_profile(root, source)
    # The task's own name, as a whole word or a prefix of one (job names), becomes the new name.
    pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(source)}(?![A-Za-z0-9])")
    shutil.copytree(source_dir, task_dir, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in task_dir.rglob("*"):
        if path.is_file() and path.suffix in TEXT_SUFFIXES:
            path.write_text(pattern.sub(name, path.read_text()))
    text = pattern.sub(name, source_profile.read_text())
    text = re.sub(r'^name\s*=\s*"[^"]*"', f'name = "{name}"', text, count=1, flags=re.M)
    text = text.replace(f"profiles/{source_profile.stem}.toml", f"profiles/{name}.toml")
    profile.write_text(text)
