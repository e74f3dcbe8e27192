"""``out = sum(a * b, axis=0)`` per (adapter, device, shape class, dtype): time, GB/s, floor, memory, compile.

The grid and its switch (``XBACKEND_ASV_GRID``) are in ``common.py``. The
figures of the ``track_`` benchmarks come from ``xbackend.measure.measure_cell``,
the measurement the ``xbackend compare`` report uses: CUDA events on a GPU,
compile and first call kept apart, inputs rotated when they would fit the
last-level cache. The 16-bit cell of a framework without bfloat16 (CuPy) runs
in float16.
"""

from __future__ import annotations

from typing import Any

from .common import PARAM_NAMES, SkipNotImplemented, grid_params, measure_grid, synchronized_call


class TimeMulSum:
    """asv's own timer around one synchronized ``mul_sum`` per sample.

    ``setup`` prepares the cell once per process (inputs on the device, compile,
    first call), so neither compile nor first-call costs are timed. asv-runner
    0.3 gives a ``time_`` benchmark that has a ``setup`` ``number = 1`` and
    re-runs ``setup`` before every sample (asv#966): that is what is wanted here,
    one synchronized call per sample, and the re-run ``setup`` only looks the
    prepared cell up. The timer is the host clock, also on a GPU (the call ends
    with a synchronize); ``MulSumMetrics.track_seconds`` is the device-event
    figure.
    """

    params = grid_params()
    param_names = PARAM_NAMES
    number = 1
    # At least 3 samples, at most 200, about 2 s of sampling per round.
    repeat = (3, 200, 2.0)
    warmup_time = 0.3
    timeout = 300

    def setup(self, adapter: str, device: str, shape: str, dtype: str) -> None:
        self.call = synchronized_call(adapter, device, shape, dtype)

    def time_mul_sum(self, adapter: str, device: str, shape: str, dtype: str) -> None:
        self.call()


CellKey = tuple[str, str, str, str]


class MulSumMetrics:
    """Figures of ``xbackend.measure.measure_cell``, measured for the whole grid once per run.

    ``setup_cache`` measures every cell in one process (frameworks imported once;
    inputs, floor and exact reference shared by the adapters of a shape and
    dtype); each ``track_`` reads its cell. A cell that failed fails its
    benchmarks with the measurement's error; one that cannot run here is skipped.
    """

    params = grid_params()
    param_names = PARAM_NAMES
    timeout = 120

    def setup_cache(self) -> dict[CellKey, dict[str, Any]]:
        return measure_grid()

    # The full grid on a 2-core CPU measures for several minutes.
    setup_cache.timeout = 3600

    def setup(self, cells: dict[CellKey, dict[str, Any]], adapter: str, device: str, shape: str, dtype: str) -> None:
        cell = cells[(adapter, device, shape, dtype)]
        if "skip" in cell:
            raise SkipNotImplemented(cell["skip"])
        if cell["status"] == "unsupported":
            raise SkipNotImplemented(cell["error"])
        if cell["status"] != "ok":
            raise RuntimeError(f"measuring {adapter} on {device}, {shape}, {dtype} failed: {cell['error']}")
        self.cell = cell

    def _figure(self, key: str, why_none: str) -> float:
        value = self.cell[key]
        if value is None:
            raise SkipNotImplemented(why_none)
        return value

    def track_seconds(self, cells: Any, adapter: str, device: str, shape: str, dtype: str) -> float:
        """Median seconds per call, device events on a GPU (the figure behind GB/s)."""
        return self._figure("median_s", "not timed")

    track_seconds.unit = "seconds"

    def track_gbps(self, cells: Any, adapter: str, device: str, shape: str, dtype: str) -> float:
        """Achieved bandwidth: 2 * N * K * itemsize / median time, in GB/s (1e9 bytes/s)."""
        return self._figure("gbps", "a latency cell: its inputs fit in cache, so GB/s means nothing")

    track_gbps.unit = "GB/s"

    def track_fraction_of_floor(self, cells: Any, adapter: str, device: str, shape: str, dtype: str) -> float:
        """GB/s as a fraction of a library dot over the same bytes on the same device (1 = at the floor)."""
        return self._figure("fraction_of_floor", f"no floor: {self.cell.get('floor_method') or 'a latency cell'}")

    track_fraction_of_floor.unit = "fraction of floor"

    def track_extra_memory(self, cells: Any, adapter: str, device: str, shape: str, dtype: str) -> float:
        """Peak bytes one call allocates beyond its inputs and output, measured per framework."""
        return self._figure("extra_memory_bytes", f"no memory probe: {self.cell['extra_memory_method']}")

    track_extra_memory.unit = "bytes"

    def track_compile_seconds(self, cells: Any, adapter: str, device: str, shape: str, dtype: str) -> float:
        """Ahead-of-time compile seconds of a compiled strategy (jax-jit); others are skipped."""
        return self._figure("compile_s", f"{adapter} does not compile")

    track_compile_seconds.unit = "seconds"
