"""afr's Textual cockpit: renders engine state and sends engine commands, nothing more."""

from __future__ import annotations

from pathlib import Path


def open_cockpit(directory: Path) -> str | None:
    """Run the cockpit on the engine serving the campaign ``directory``; returns how it ended:
    ``"left"`` (engine left running), ``"stopped"`` (stop sent) or ``"ended"``/``None``."""
    from afr_tui.app import CockpitApp
    from afr_tui.link import AttachedLink

    link = AttachedLink(directory)
    try:
        return CockpitApp(link).run()
    finally:
        link.close()
