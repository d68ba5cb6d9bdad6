"""GPU (NVML, through nvidia-ml-py) and host (psutil) status: what the cockpit's GPU panel shows.

Sampling runs on a worker thread; a sample is a plain dataclass so tests and snapshots can
feed fixed ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psutil


@dataclass
class GpuStat:
    index: int
    name: str
    utilization: float  # percent
    memory_used: float  # MiB
    memory_total: float  # MiB
    temperature: float | None  # Celsius
    power: float | None  # W
    processes: list[tuple[int, str, float]] = field(default_factory=list)  # pid, name, MiB (the campaign's)


@dataclass
class HostStat:
    cpu: float  # percent of all cores
    cores: int
    ram_used: float  # GiB
    ram_total: float  # GiB
    campaign_cpu: float  # percent of one core, summed over the engine and its children
    campaign_rss: float  # GiB
    campaign_processes: int


@dataclass
class Sample:
    gpus: list[GpuStat]
    host: HostStat
    gpu_note: str = ""  # why there are no GPUs to show


class SystemSampler:
    """Samples NVML (through nvidia-ml-py) and psutil. ``engine_pid`` names the campaign's processes."""

    def __init__(self, engine_pid: int | None = None) -> None:
        self.engine_pid = engine_pid
        self._nvml = None
        self._note = ""
        self._procs: dict[int, psutil.Process] = {}
        try:
            import pynvml

            pynvml.nvmlInit()
            if pynvml.nvmlDeviceGetCount() == 0:
                self._note = "no NVIDIA GPU found"
            else:
                self._nvml = pynvml
        except Exception as error:  # no driver or no library: show the host instead
            self._note = f"no NVIDIA GPU ({type(error).__name__})"
        psutil.cpu_percent(None)

    def campaign_pids(self) -> set[int]:
        if not self.engine_pid:
            return set()
        try:
            root = psutil.Process(self.engine_pid)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.Error:
            return set()

    def sample(self) -> Sample:
        pids = self.campaign_pids()
        return Sample(self._gpus(pids), self._host(pids), self._note)

    def _host(self, pids: set[int]) -> HostStat:
        memory = psutil.virtual_memory()
        cpu = rss = 0.0
        for pid in pids:
            process = self._procs.get(pid)
            try:
                if process is None:
                    process = self._procs[pid] = psutil.Process(pid)
                    process.cpu_percent(None)  # the first call only starts the measurement
                cpu += process.cpu_percent(None)
                rss += process.memory_info().rss
            except psutil.Error:
                self._procs.pop(pid, None)
        for gone in set(self._procs) - pids:
            self._procs.pop(gone, None)
        return HostStat(
            psutil.cpu_percent(None),
            psutil.cpu_count() or 1,
            (memory.total - memory.available) / 2**30,
            memory.total / 2**30,
            cpu,
            rss / 2**30,
            len(pids),
        )

    def _gpus(self, pids: set[int]) -> list[GpuStat]:
        nvml = self._nvml
        if nvml is None:
            return []
        found = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else name
            util = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(
                GpuStat(
                    index,
                    name,
                    float(util),
                    memory.used / 2**20,
                    memory.total / 2**20,
                    _optional(lambda h=handle: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
                    _optional(lambda h=handle: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0),
                    self._gpu_processes(handle, pids),
                )
            )
        return found

    def _gpu_processes(self, handle, pids: set[int]) -> list[tuple[int, str, float]]:
        nvml = self._nvml
        try:
            running = nvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:
            return []
        mine = []
        for process in running:
            if process.pid not in pids:
                continue
            try:
                name = psutil.Process(process.pid).name()
            except psutil.Error:
                name = "?"
            used = (process.usedGpuMemory or 0) / 2**20
            mine.append((process.pid, name, used))
        return mine


def _optional(read):
    try:
        return float(read())
    except Exception:  # some boards report no temperature or power
        return None


class FixedSampler:
    """The same sample every time (snapshots, benchmarks)."""

    def __init__(self, sample: Sample) -> None:
        self._sample = sample

    def sample(self) -> Sample:
        return self._sample


def cpu_only_sample() -> Sample:
    return Sample([], HostStat(12.5, 2, 3.1, 7.8, 95.0, 0.62, 4), "no NVIDIA GPU found")
