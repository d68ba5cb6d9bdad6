"""The GPU panel: per GPU utilisation, memory, temperature, power and the campaign's
processes, with a short history; on a machine without an NVIDIA GPU, the host's CPU and RAM."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widgets import Static

from engine.control.telemetry import Sample

HISTORY = 30
BARS = "▁▂▃▄▅▆▇█"


def sparkline(values, top: float = 100.0) -> str:
    if not values:
        return ""
    return "".join(BARS[min(len(BARS) - 1, int(len(BARS) * max(0.0, v) / (top or 1)))] for v in values)


class SystemPanel(Static):
    DEFAULT_CSS = """
    SystemPanel { height: 1fr; padding: 0 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("sampling…", **kwargs)
        self.history: dict[str, deque] = {}

    def _remember(self, key: str, value: float) -> deque:
        series = self.history.setdefault(key, deque(maxlen=HISTORY))
        series.append(value)
        return series

    def show(self, sample: Sample, owners: dict[str, str] | None = None) -> None:
        self.update(self.render_sample(sample, owners or {}))

    def render_sample(self, sample: Sample, owners: dict[str, str] | None = None) -> Text:
        """``owners``: device index -> the candidate whose run slot holds it."""
        owners = owners or {}
        lines: list[Text] = []
        for gpu in sample.gpus:
            util = self._remember(f"gpu{gpu.index}", gpu.utilization)
            memory = self._remember(f"mem{gpu.index}", 100 * gpu.memory_used / (gpu.memory_total or 1))
            extra = []
            if gpu.temperature is not None:
                extra.append(f"{gpu.temperature:.0f}°C")
            if gpu.power is not None:
                extra.append(f"{gpu.power:.0f} W")
            owner = owners.get(str(gpu.index))
            lines.append(
                Text.assemble(
                    (f"GPU{gpu.index} ", "bold"),
                    (gpu.name, "cyan"),
                    "  " + "  ".join(extra),
                    (f"  ▶ {owner}" if owner else "", "bold dodger_blue1"),
                )
            )
            lines.append(Text.assemble(f" util {gpu.utilization:3.0f}% ", (sparkline(util), "green")))
            lines.append(
                Text.assemble(
                    f" mem  {gpu.memory_used / 1024:.1f}/{gpu.memory_total / 1024:.0f} GiB ",
                    (sparkline(memory), "cyan"),
                )
            )
            for pid, name, used in gpu.processes:
                lines.append(Text(f"  pid {pid} {name[:12]} {used / 1024:.1f} GiB", style="dim"))
            if not gpu.processes:
                lines.append(Text("  no campaign process on this GPU", style="dim"))
        host = sample.host
        if not sample.gpus:
            lines.append(Text(sample.gpu_note or "no NVIDIA GPU", style="yellow"))
        cpu = self._remember("cpu", host.cpu)
        ram = self._remember("ram", 100 * host.ram_used / (host.ram_total or 1))
        lines.append(Text.assemble(f"CPU {host.cpu:3.0f}% of {host.cores} ", (sparkline(cpu), "green")))
        lines.append(
            Text.assemble(f"RAM {host.ram_used:.1f}/{host.ram_total:.1f} GiB ", (sparkline(ram), "cyan"))
        )
        lines.append(
            Text(
                f"campaign: {host.campaign_processes} proc, {host.campaign_cpu:.0f}% cpu, "
                f"{host.campaign_rss:.2f} GiB",
                style="dim",
            )
        )
        return Text("\n").join(lines)
