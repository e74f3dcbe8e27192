"""Framework-free measurement probes: the host timer, the CPU memory high-water mark, the CPU caches.

Adapters return these from their measurement hooks by default; a framework
module overrides a hook where its framework offers something better (CUDA
events, allocator peak statistics, XLA's memory analysis). Only the standard
library and NumPy are imported here.
"""

from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

_CACHE_DIR = Path("/sys/devices/system/cpu/cpu0/cache")
_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


class Timer(Protocol):
    """Times one call of a zero-argument function, including the device work it starts.

    ``asynchronous``: the device runs behind the host (GPUs), so a call returns
    before its work is done and back-to-back calls overlap launch with work;
    measurement then times batches of calls, as a real caller's loop runs them.
    """

    method: str
    asynchronous: bool

    def time(self, call: Callable[[], Any]) -> float:
        """Seconds from the call's start until its device work has finished."""
        ...


class HostTimer:
    """The host clock around the call and a synchronize: right on CPUs, and on any device that can synchronize."""

    def __init__(
        self,
        synchronize: Callable[..., None],
        method: str = "host perf_counter around call + synchronize",
        asynchronous: bool = False,
        prelude: Callable[[], Any] | None = None,
    ) -> None:
        self._synchronize = synchronize
        self.method = method
        self.asynchronous = asynchronous
        # Run before each timed call, outside the clock: the state a call meets in its
        # framework's programs (torch's spinning OpenMP workers, TorchAdapter.timer).
        self._prelude = prelude

    def time(self, call: Callable[[], Any]) -> float:
        if self._prelude is not None:
            self._prelude()
        start = time.perf_counter()
        out = call()
        self._synchronize(out)
        return time.perf_counter() - start


class DeviceEventTimer:
    """Two device events recorded on the current stream around the call (about 0.5 us resolution).

    Works for any framework whose events have ``record()`` and ``synchronize()``;
    ``elapsed_ms(start, end)`` is the framework's own reading of the interval.
    """

    asynchronous = True

    def __init__(self, start: Any, end: Any, elapsed_ms: Callable[[Any, Any], float], method: str) -> None:
        self._start, self._end = start, end
        self._elapsed_ms = elapsed_ms
        self.method = method

    def time(self, call: Callable[[], Any]) -> float:
        self._start.record()
        out = call()
        self._end.record()
        self._end.synchronize()
        del out
        return self._elapsed_ms(self._start, self._end) / 1e3


@dataclass(frozen=True)
class MemoryUse:
    """One call's result and the peak bytes it allocated beyond its inputs and output.

    ``extra_bytes`` is None when the device has no probe; ``method`` names how the
    figure was measured (or why there is none).
    """

    out: Any
    extra_bytes: int | None
    method: str


def nbytes(x: Any) -> int:
    """Bytes held by a NumPy, torch, JAX or CuPy array (all expose ``nbytes``)."""
    return int(x.nbytes)


def _status_kib(field: str) -> int:
    for line in _PROC_STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_high_water_available() -> bool:
    return _PROC_STATUS.exists() and os.access(_CLEAR_REFS, os.W_OK)


def rss_extra_memory(call: Callable[[], Any], output_bytes: Callable[[Any], int] = nbytes) -> MemoryUse:
    """Run ``call`` once and report the rise of the resident-set high-water mark, less the output.

    Writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM`` to the current RSS
    (Linux). This counts pages first touched during the call, so memory the
    allocator reuses without returning it to the OS is missed: a lower bound.
    Free heap memory is returned to the OS first (glibc ``malloc_trim``), so
    that a temporary cannot hide in space freed by earlier work.
    """
    method = "CPU RSS high-water mark (VmHWM after clear_refs=5), a lower bound"
    if not rss_high_water_available():
        return MemoryUse(call(), None, "no probe: /proc/self/clear_refs is not writable here")
    _return_free_heap()
    _CLEAR_REFS.write_text("5")
    before = _status_kib("VmHWM")
    out = call()
    rise = (_status_kib("VmHWM") - before) * 1024
    return MemoryUse(out, max(0, rise - output_bytes(out)), method)


def _return_free_heap() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _parse_size(text: str) -> int:
    text = text.strip()
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    if text and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return int(text)


@functools.cache
def _cpu_data_caches() -> dict[int, int]:
    """Size of each data (or unified) cache level of CPU 0, from sysfs; empty where it is not exposed."""
    sizes: dict[int, int] = {}
    for index in _CACHE_DIR.glob("index*"):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            level = int((index / "level").read_text())
            sizes[level] = max(sizes.get(level, 0), _parse_size((index / "size").read_text()))
        except (OSError, ValueError):
            continue
    return sizes


def cpu_last_level_cache_bytes() -> int | None:
    """Size of the CPU's largest (last-level) cache, from sysfs; None where it is not exposed."""
    return max(_cpu_data_caches().values(), default=None)


def cpu_l2_cache_bytes() -> int | None:
    """Size of one core's L2 cache (each core's own on current x86 and Arm servers); None where it is not exposed."""
    return _cpu_data_caches().get(2)


@functools.cache
def gpu_l2_cache_bytes() -> int | None:
    """The L2 cache of CUDA device 0, read through whichever of CuPy and torch is already loaded (None: neither).

    JAX has no such query, and loading a framework just for it is not worth it.
    """
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        return int(cupy.cuda.Device(0).attributes["L2CacheSize"])
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return getattr(torch.cuda.get_device_properties(0), "L2_cache_size", None)
    return None


# Cached: mul_sum's first call per signature names the machine (selection.machine_id),
# and on a 16-core VM rereading /proc/cpuinfo each time cost far more than the choice.
@functools.cache
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def total_memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (``MemAvailable``), else the total."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total_memory_bytes()
