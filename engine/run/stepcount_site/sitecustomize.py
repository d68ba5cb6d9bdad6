"""afr's trusted optimiser-step counter, loaded by every Python process of a candidate's job.

The engine puts this folder (and nothing else of afr) on the job's ``PYTHONPATH`` and names a
FIFO in ``AFR_STEP_LOG``; Python imports ``sitecustomize`` at start-up, before any candidate
code, so every process of the job (``job.py``, the simulator, each site's worker) registers
torch's global optimiser step post-hook here. Each step writes one line to the FIFO:
``S <pid> <site> <round> <count>`` (the running count of that site and round in this
process). The FIFO is append-only for the job: what was written cannot be taken back, so a
candidate can only add counts, never lower them. ``<site>`` is the NVFlare Client API's site
name (``-`` outside a site: ``job.py``, the server), ``<round>`` the round of the task the
site last received (``-`` before its first task, ``eval`` during an evaluation task).

A watchdog thread re-registers the hook if it disappears and reports it
(``T <pid> <site> <what>``), and reports an optimiser class whose ``step`` lost torch's hook
wrapper. What this does not stop is said in the README's security section: parameter updates
without a torch optimiser, a process started without this file, forged lines.

Self-contained on purpose: the job's sandbox mounts only this folder of afr. Without
``AFR_STEP_LOG`` (any other process) nothing happens.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

FIFO_VAR = "AFR_STEP_LOG"
WATCH_SECONDS = 0.2


class _StepCounter:
    def __init__(self, path: str, hooks) -> None:
        self.path = path
        self.hooks = hooks  # torch.optim.optimizer
        self.fd: int | None = None
        self.lock = threading.Lock()
        self.counts: dict[tuple[str, str], int] = {}
        self.last_round: str = "-"
        self.classes: set[type] = set()
        self.reported: set[str] = set()
        self.hook = self.on_step  # one bound method: the watchdog compares it by identity
        self.handle = hooks.register_optimizer_step_post_hook(self.hook)

    def where(self) -> tuple[str, str]:
        """(site, round) of the calling process, from NVFlare's Client API if it is running here."""
        api_module = sys.modules.get("nvflare.client.api")
        api = getattr(getattr(api_module, "default_context", None), "api", None)
        if api is None:
            return "-", "-"
        try:
            site = str(api.get_site_name())
            model = getattr(api, "fl_model", None)
            if model is not None and getattr(model, "current_round", None) is not None:
                self.last_round = str(int(model.current_round))
            evaluating = bool(api.is_evaluate())
        except Exception:  # an API not yet initialised, or not rank 0
            return "-", self.last_round
        return site.replace(" ", "_") or "-", "eval" if evaluating else self.last_round

    def on_step(self, optimizer, args, kwargs) -> None:
        site, round_ = self.where()
        with self.lock:
            key = (site, round_)
            count = self.counts.get(key, 0) + 1
            self.counts[key] = count
            self.classes.add(type(optimizer))
            self.emit(f"S {os.getpid()} {site} {round_} {count}\n")

    def emit(self, line: str) -> None:
        if self.fd is None:
            try:  # non-blocking open: no reader must not hang the job; writes then block as usual
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                os.set_blocking(self.fd, True)
            except OSError:
                self.fd = -1
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.write(self.fd, line.encode()[:512])  # under PIPE_BUF: never interleaved

    def tampered(self, what: str) -> None:
        if what in self.reported:
            return
        self.reported.add(what)
        with self.lock:
            self.emit(f"T {os.getpid()} {self.where()[0]} {what}\n")

    def watch(self) -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            hooks = getattr(self.hooks, "_global_optimizer_post_hooks", {})
            if hooks.get(self.handle.id) is not self.hook:
                self.tampered("hook-removed")
                self.handle = self.hooks.register_optimizer_step_post_hook(self.hook)
            with self.lock:
                classes = list(self.classes)
            for cls in classes:
                if not getattr(getattr(cls, "step", None), "hooked", False):
                    self.tampered(f"unhooked-step:{cls.__name__}")


def _install() -> None:
    path = os.environ.get(FIFO_VAR)
    if not path:
        return
    try:
        from torch.optim import optimizer as hooks
    except Exception:  # no torch here: nothing can step an optimiser
        return
    counter = _StepCounter(path, hooks)
    threading.Thread(target=counter.watch, name="afr-step-counter", daemon=True).start()


_install()
