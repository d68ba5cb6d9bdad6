"""The live candidate table: a window of the campaign's candidates, filtered and sorted.

A DataTable measures every cell it is given, so it holds at most ``MAX_ROWS`` rows (the
first ones in the current sort order; newest first by default) and the rest are a filter
away. Updates touch only the rows and cells that changed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from afr_tui.model import STATUS_LABEL, STATUS_STYLE, CandidateView, CockpitModel


def status_label(candidate: CandidateView) -> str:
    """A running candidate shows where its job is (``▶ round 7/15``), its GPU and its Ray node, if any."""
    if candidate.status == "running" and candidate.phase:
        where = f" @{candidate.node.split()[0]}" if candidate.node else ""  # a Ray node's address
        return f"▶ {candidate.phase}" + (f" gpu{candidate.gpu}" if candidate.gpu is not None else "") + where
    return STATUS_LABEL.get(candidate.status, candidate.status)


MAX_ROWS = 500
COLUMNS = (
    ("id", "id", 6),
    ("status", "status", 10),
    ("score", "score", 6),
    ("delta", "Δbest", 7),
    ("runtime", "time", 4),
    ("target", "target", 8),
    ("description", "description", None),
)
SORTS = ("order", "score", "delta", "runtime", "status", "target", "description")
STATUS_FILTERS = (None, "keep", "discard", "crash", "rejected", "literature", "running", "awaiting")
STATUS_WORDS = {*STATUS_STYLE}


def parse_filter(text: str) -> tuple[set[str], list[str]]:
    """``"keep fedprox"`` -> statuses {keep}, words [fedprox]; ``status:crash`` also names a status."""
    statuses, words = set(), []
    for word in text.lower().split():
        name = word.removeprefix("status:")
        if name in STATUS_WORDS:
            statuses.add(name)
        elif word:
            words.append(word)
    return statuses, words


def runtime_text(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f}s" if seconds < 600 else f"{seconds / 60:.0f}m"


class CandidateTable(DataTable):
    DEFAULT_CSS = """
    CandidateTable { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.sort_by = "order"
        self.descending = True
        self.status_filter: str | None = None
        self.text_filter = ""
        self.matching = 0
        self._shown: dict[str, tuple] = {}
        self._description_width = 40
        self._model: CockpitModel | None = None

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width or self._description_width)

    def on_resize(self) -> None:
        """The description takes the width left; a DataTable cannot stretch a column, so rebuild."""
        fixed = sum(width + 2 for _, _, width in COLUMNS if width) + 2  # cell padding, scrollbar
        width = max(12, self.size.width - fixed - 2)
        if width != self._description_width:
            self._description_width = width
            self.clear(columns=True)
            self._shown.clear()
            self._add_columns()
            if self._model is not None:
                self.sync(self._model)

    # -- what is shown ----------------------------------------------------------------------------

    def _matches(self, candidate: CandidateView, statuses: set[str], words: list[str]) -> bool:
        if statuses and candidate.status not in statuses:
            return False
        if words:
            haystack = f"{candidate.id} {candidate.target} {candidate.description}".lower()
            return all(word in haystack for word in words)
        return True

    def _sort_key(self, model: CockpitModel):
        column = self.sort_by
        if column == "order":
            return lambda c: c.order
        if column in ("score", "delta"):
            sign = 1 if model.maximize else -1
            return lambda c: (
                c.score is not None and c.status not in ("crash", "literature"),
                sign * (c.score or 0),
            )
        if column == "runtime":
            return lambda c: c.runtime or 0.0
        return lambda c: (str(getattr(c, column)).lower(), c.order)

    def visible(self, model: CockpitModel) -> list[CandidateView]:
        statuses, words = parse_filter(self.text_filter)
        if self.status_filter:
            statuses = statuses | {self.status_filter}
        items = [c for c in model.candidates.values() if self._matches(c, statuses, words)]
        items.sort(key=self._sort_key(model), reverse=self.descending)
        self.matching = len(items)
        return items[:MAX_ROWS]

    def cells(self, candidate: CandidateView, model: CockpitModel) -> tuple:
        best = candidate.id == model.best_id
        mark = "★" if best else ("▶" if candidate.status == "running" else " ")
        delta = model.diff_to_best(candidate)
        style = STATUS_STYLE.get(candidate.status, "")
        no_score = candidate.score is None or candidate.status in ("literature", "crash")
        score = "" if no_score else f"{candidate.score:.4f}"
        return (
            Text(mark + candidate.id, style="bold green" if best else ""),
            Text(status_label(candidate), style=style),
            candidate.confirming if candidate.status == "confirming" else score,
            "" if delta is None else ("best" if best else ("±0" if abs(delta) < 5e-5 else f"{delta:+.4f}")),
            runtime_text(candidate.runtime),
            "" if candidate.target == "literature" else candidate.target,
            candidate.description,
        )

    # -- keeping the DataTable in step ------------------------------------------------------------

    def sync(self, model: CockpitModel, changed: set[str] | None = None) -> None:
        """Show what the model holds: everything again (``changed`` None), or only the changed rows."""
        self._model = model
        selected = self.selected_id()
        if changed is None or not self._shown:
            visible = self.visible(model)
            keep = {c.id for c in visible}
            for gone in [key for key in self._shown if key not in keep]:
                self._remove(gone)
            for candidate in visible:
                self._put(candidate, model)
        else:
            self._apply(model, changed)
        wanted = self._ordered(model)
        if [row.key.value for row in self.ordered_rows] != wanted:
            position = {cid: index for index, cid in enumerate(wanted)}
            self.sort("id", key=lambda cell: position[cell.plain[1:]])
            if selected in position:
                self.move_cursor(row=position[selected], scroll=False)
        self.border_subtitle = self.summary(len(model.candidates))

    def _apply(self, model: CockpitModel, changed: set[str]) -> None:
        statuses, words = parse_filter(self.text_filter)
        if self.status_filter:
            statuses = statuses | {self.status_filter}
        key = self._sort_key(model)
        for cid in changed:
            candidate = model.candidates.get(cid)
            matches = candidate is not None and self._matches(candidate, statuses, words)
            if cid in self._shown:
                if matches:
                    self._put(candidate, model)
                else:
                    self._remove(cid)
                    self.matching -= 1
            elif matches:
                self.matching += 1
                self._put(candidate, model)
        if len(self._shown) > MAX_ROWS:  # the window keeps the first MAX_ROWS in sort order
            ordered = sorted(self._shown, key=lambda cid: key(model.candidates[cid]), reverse=self.descending)
            for cid in ordered[MAX_ROWS:]:
                self._remove(cid)

    def _ordered(self, model: CockpitModel) -> list[str]:
        key = self._sort_key(model)
        return sorted(self._shown, key=lambda cid: key(model.candidates[cid]), reverse=self.descending)

    def _put(self, candidate: CandidateView, model: CockpitModel) -> None:
        cells = self.cells(candidate, model)
        before = self._shown.get(candidate.id)
        if before is None:
            self.add_row(*cells, key=candidate.id)
        elif before != cells:
            for (key, _, _), old, new in zip(COLUMNS, before, cells, strict=True):
                if old != new:
                    self.update_cell(candidate.id, key, new)
        self._shown[candidate.id] = cells

    def _remove(self, cid: str) -> None:
        self.remove_row(cid)
        del self._shown[cid]

    def summary(self, total: int) -> str:
        arrow = "↓" if self.descending else "↑"
        sort = "#" if self.sort_by == "order" else self.sort_by
        shown = (
            f"{min(self.matching, MAX_ROWS)} of {total}"
            if self.matching < total or total > MAX_ROWS
            else f"{total}"
        )
        status = f" · {self.status_filter}" if self.status_filter else ""
        text = f" · “{self.text_filter}”" if self.text_filter else ""
        return f"{shown} rows · sort {sort} {arrow}{status}{text}"

    def selected_id(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # the cursor is outside a shrinking table
            return None

    def select(self, cid: str) -> bool:
        if cid not in self._shown:
            return False
        self.move_cursor(row=self.get_row_index(cid))
        return True

    # -- controls ---------------------------------------------------------------------------------

    def cycle_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]

    def sort_on(self, column: str) -> None:
        column = {"id": "order"}.get(column, column)
        if column == self.sort_by:
            self.descending = not self.descending
        else:
            self.sort_by, self.descending = column, column in ("order", "score", "delta")

    def cycle_status(self) -> None:
        index = STATUS_FILTERS.index(self.status_filter)
        self.status_filter = STATUS_FILTERS[(index + 1) % len(STATUS_FILTERS)]
