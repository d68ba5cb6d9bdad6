"""The running candidate's log, following its ``job.log``."""

from __future__ import annotations

import re

from textual.widgets import Log

MAX_LINES = 400
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:(\d\d:\d\d)[,.]\d+ - ")  # NVFlare's prefix, shortened


class LogPane(Log):
    DEFAULT_CSS = """
    LogPane { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, **kwargs)
        self.following: str | None = None

    def follow(self, cid: str | None) -> None:
        if cid != self.following:
            self.following = cid
            self.clear()
            self.border_subtitle = f"following {cid}" if cid else "no candidate running"

    def add(self, lines: list[str]) -> None:
        if lines:
            self.write_lines([TIMESTAMP.sub(r"\1 ", line.rstrip("\r\n"))[-400:] for line in lines])
            # Once max_lines prunes the top, the virtual size stops growing and Textual's Log
            # repaints nothing: the new lines are there but the screen stays stale. Repaint.
            self.refresh()
