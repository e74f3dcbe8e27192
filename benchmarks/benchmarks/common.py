"""The grid of the asv suite, and how one cell of it becomes a ready adapter with inputs.

A cell is (adapter, device, shape class, dtype). Every cell of the grid is a
parameter set of every benchmark on every machine, so the benchmark list and
versions are the same everywhere; a cell that cannot run here (framework not
installed, no GPU, a dtype the strategy refuses, a strategy that does not run on
that device) raises ``SkipNotImplemented`` in ``setup`` and shows as n/a.

Grids (environment variable ``XBACKEND_ASV_GRID``):

- ``full`` (the default): shape classes square (4096 x 4096), tall-skinny
  (1,000,000 x 32), short-wide (64 x 1,000,000), column (16,000,000 x 1) and
  latency (3 x 4), in float32, bfloat16 and float64. Only full-grid results are
  published (``benchmarks/curate.py`` refuses others).
- ``smoke``: latency and one small bandwidth case (65,536 x 16), float32 only,
  measured on a short budget: CI runs every benchmark once on it.

Frameworks are imported in ``setup`` (through ``xbackend.get_adapter``), never
when asv imports this suite.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from typing import Any

# JAX decides its 64-bit mode when it is first imported, which happens later in
# setup: without it jax-jit refuses every float64 cell. Without the second, JAX
# would take 75% of GPU memory at start, starving torch and CuPy in the same process.
os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from asv_runner.benchmarks.mark import SkipNotImplemented  # noqa: E402

GRID_VARIABLE = "XBACKEND_ASV_GRID"
PARAM_NAMES = ["adapter", "device", "shape", "dtype"]

# Fixed here, not read from the package, so that the suite is the same for every
# commit asv builds; tests/test_asv_suite.py checks them against xbackend.
ADAPTERS = (
    "numpy",
    "torch-eager",
    "torch-einsum",
    "jax-jit",
    "cupy",
    "torch-numpy",
    "torch-blocked",
    "torch-compile",
    "jax-rows",
    "jax-numpy",
    "cupy-fused",
    # xbackend.mul_sum itself (the selected strategy, dispatch included), per library
    "numpy-auto",
    "torch-auto",
    "jax-auto",
    "cupy-auto",
    # scale-out: array-API namespaces, dask (local threads, then a dask.distributed
    # cluster, started once per measuring process by get_adapter), JAX over all devices
    "array-api",
    "dask",
    "dask-cluster",
    "jax-sharded",
)
# Registered strategies outside the grid, and why (tests/test_asv_suite.py keeps
# ADAPTERS and this table together covering the registry).
_ADDED_LATER = "added after published results; asv parameter lists stay fixed (xbackend compare measures it)"
NOT_BENCHMARKED: dict[str, str] = {
    # Added after results were published: a new ADAPTERS value would change every
    # benchmark's parameter list (and so its version) and orphan the old results.
    # They are measured by ``xbackend compare`` and picked by their -auto adapter where faster.
    "numpy-threads": _ADDED_LATER,
    "torch-triton": _ADDED_LATER,
    "cupy-raw": _ADDED_LATER,
    "numpy-numba": _ADDED_LATER,
    "torch-numba": _ADDED_LATER,
    "jax-numba": _ADDED_LATER,
    "jax-pallas": _ADDED_LATER,
}
DEVICES = ("cpu", "cuda")
FULL_SHAPE_CLASSES = ("square", "tall-skinny", "short-wide", "column", "latency")
FULL_DTYPES = ("float32", "bfloat16", "float64")
SMOKE_SHAPES = {"latency": (3, 4), "small": (65_536, 16)}
SMOKE_DTYPES = ("float32",)
# The 16-bit cell of a framework without bfloat16 (CuPy) runs in float16.
HALF_FALLBACK = {"bfloat16": "float16"}


# The history grid: the cells recorded for every commit of main (a few minutes a
# commit on 2 cores). It is a selection of the full grid, not a grid of its own,
# so its results sit beside full-grid runs under the same benchmark versions: the
# mission's five adapters and what users call (``xbackend.mul_sum``, per library),
# on every shape class, in float32.
HISTORY_ADAPTERS = ("numpy", "torch-eager", "torch-einsum", "jax-jit", "cupy")
HISTORY_ADAPTERS += ("numpy-auto", "torch-auto", "jax-auto", "cupy-auto")
HISTORY_DTYPES = ("float32",)
# History adapters without a GPU device, and those without a CPU device
# (tests/test_asv_suite.py checks both against xbackend): their cells on the other
# device would only be skipped, one process start each.
HISTORY_CPU_ONLY = ("numpy", "numpy-auto")
HISTORY_GPU_ONLY = ("cupy", "cupy-auto")


def cells_regex(
    adapters: tuple[str, ...], devices: tuple[str, ...], shapes: tuple[str, ...], dtypes: tuple[str, ...]
) -> str:
    """A regex matching these cells' parameter part as asv's ``-b`` sees it: ``('numpy', 'cpu', 'square', 'float32')``."""

    def one_of(values: tuple[str, ...]) -> str:
        return "'(?:" + "|".join(re.escape(value) for value in values) + ")'"

    return r"\(" + ", ".join(one_of(values) for values in (adapters, devices, shapes, dtypes)) + r"\)"


# Figures a history cell cannot have are not asked for: each asked-for cell costs a
# process start even to be skipped. Latency cells have no GB/s or floor; only the
# JAX adapters compile ahead of time (measure.py's ``compile_s``).
BANDWIDTH_SHAPE_CLASSES = tuple(c for c in FULL_SHAPE_CLASSES if c != "latency")
HISTORY_COMPILING_ADAPTERS = ("jax-jit", "jax-auto")


def _history_cells(adapters: tuple[str, ...], devices: tuple[str, ...], shapes: tuple[str, ...]) -> str:
    """``cells_regex`` of the history grid's (adapter, device) pairs that exist: no CPU-only adapter on a GPU,
    no GPU-only adapter on the CPU."""
    parts = []
    for device in devices:
        elsewhere = HISTORY_GPU_ONLY if device == "cpu" else HISTORY_CPU_ONLY
        names = tuple(name for name in adapters if name not in elsewhere)
        if names:
            parts.append(cells_regex(names, (device,), shapes, HISTORY_DTYPES))
    return "(?:" + "|".join(parts) + ")"


def history_regex(devices: tuple[str, ...] = DEVICES) -> str:
    """The parameter regex of the history grid on ``devices`` (for ``XBACKEND_ASV_MEASURE_ONLY``)."""
    return _history_cells(HISTORY_ADAPTERS, devices, FULL_SHAPE_CLASSES)


# The history grid's two kinds of benchmark: the ``track_`` figures (one shared
# measurement per run) and asv's own ``time_`` timer (a process per cell).
HISTORY_KINDS = ("track", "time")


def history_benchmark_regexes(devices: tuple[str, ...] = DEVICES, kinds: tuple[str, ...] = HISTORY_KINDS) -> list[str]:
    """asv ``-b`` regexes selecting the history grid's benchmarks of ``kinds`` and their cells on ``devices``."""
    if unknown := set(kinds) - set(HISTORY_KINDS):
        raise ValueError(f"benchmark kinds {sorted(unknown)}: choose from {', '.join(HISTORY_KINDS)}")
    # No regex at all would make ``asv run`` run the whole suite, not none of it.
    if not kinds or not devices or set(devices) - set(DEVICES):
        raise ValueError(
            f"kinds {list(kinds)} on devices {list(devices)}: give at least one of each; devices from {', '.join(DEVICES)}"
        )
    every_cell = history_regex(devices)
    bandwidth = _history_cells(HISTORY_ADAPTERS, devices, BANDWIDTH_SHAPE_CLASSES)
    compiled = _history_cells(HISTORY_COMPILING_ADAPTERS, devices, FULL_SHAPE_CLASSES)
    regexes = {
        "time": [r"\.time_mul_sum" + every_cell],
        "track": [
            r"\.(track_seconds|track_extra_memory)" + every_cell,
            r"\.(track_gbps|track_fraction_of_floor)" + bandwidth,
            r"\.track_compile_seconds" + compiled,
        ],
    }
    return [regex for kind in kinds for regex in regexes[kind]]


def grid_name() -> str:
    grid = os.environ.get(GRID_VARIABLE, "full") or "full"
    if grid not in ("full", "smoke"):
        raise ValueError(f"{GRID_VARIABLE}={grid!r}: use 'full' (the default) or 'smoke'")
    return grid


def grid_params(grid: str | None = None) -> list[list[str]]:
    """The values of adapter, device, shape class and dtype in ``grid`` (default: from the environment)."""
    grid = grid or grid_name()
    shapes = FULL_SHAPE_CLASSES if grid == "full" else tuple(SMOKE_SHAPES)
    dtypes = FULL_DTYPES if grid == "full" else SMOKE_DTYPES
    return [list(ADAPTERS), list(DEVICES), list(shapes), list(dtypes)]


def full_grid_params() -> list[list[str]]:
    """The full grid's parameters as asv stores them in ``benchmarks.json`` (each value's repr)."""
    return [[repr(value) for value in values] for values in grid_params("full")]


def grid_cells(grid: str | None = None) -> list[tuple[str, str, str, str]]:
    return list(itertools.product(*grid_params(grid)))


def _measure() -> Any:
    try:
        from xbackend import measure
    except ImportError as exc:  # a commit from before the measurement module
        raise SkipNotImplemented(f"xbackend at this commit has no measure module: {exc}") from None
    if not hasattr(measure, "SharedInputs"):  # the oldest entry point into measure this suite reads
        raise SkipNotImplemented("xbackend.measure at this commit predates SharedInputs")
    return measure


def shape_of(shape_class: str) -> tuple[int, ...]:
    if shape_class in SMOKE_SHAPES:
        return SMOKE_SHAPES[shape_class]
    return tuple(_measure().SHAPE_CLASSES[shape_class])


# torch and CuPy call the GPU "cuda", JAX calls it "gpu": the grid says "cuda".
NATIVE_DEVICES = {"cpu": ("cpu",), "cuda": ("cuda", "gpu")}


@dataclass(frozen=True)
class Cell:
    """A runnable cell: the adapter on its native device name and the dtype it computes in."""

    adapter: Any
    shape_class: str
    shape: tuple[int, ...]
    dtype: str


def resolve_cell(adapter_name: str, device: str, shape_class: str, dtype: str) -> Cell:
    """The adapter for this cell, or ``SkipNotImplemented`` saying why it cannot run here."""
    _measure()
    from xbackend import AdapterUnavailable, get_adapter

    adapter = None
    for native in NATIVE_DEVICES[device]:
        try:
            adapter = get_adapter(adapter_name, native)
            break
        except ValueError:  # no such strategy at this commit, or not on this device name
            continue
        except AdapterUnavailable as exc:
            raise SkipNotImplemented(str(exc)) from None
    if adapter is None:
        raise SkipNotImplemented(f"xbackend at this commit has no {adapter_name!r} on {device}")
    unsupported = adapter.unsupported_dtypes()
    fallback = HALF_FALLBACK.get(dtype)
    if dtype in unsupported and fallback is not None and fallback not in unsupported:
        dtype = fallback
    if dtype in unsupported:
        raise SkipNotImplemented(f"{adapter_name} on {device} does not support {dtype}")
    return Cell(adapter, shape_class, shape_of(shape_class), dtype)


# -- the time_ benchmark's call --------------------------------------------------
_PREPARED: dict[tuple[str, str, str, str], Any] = {}


def synchronized_call(adapter_name: str, device: str, shape_class: str, dtype: str) -> Any:
    """A zero-argument call running one synchronized ``mul_sum``, compiled and called once already.

    Kept for the life of the process: asv re-runs ``setup`` before every sample,
    and preparing a cell (inputs, device copies, compile) must not be repeated.
    """
    key = (adapter_name, device, shape_class, dtype)
    if key not in _PREPARED:
        _PREPARED[key] = _prepare_call(resolve_cell(*key))
    return _PREPARED[key]


def _prepare_call(cell: Cell) -> Any:
    measure = _measure()
    if not hasattr(measure, "synchronized_call"):  # a commit from before it: skip rather than time another way
        raise SkipNotImplemented("xbackend.measure at this commit has no synchronized_call")
    return measure.synchronized_call(cell.adapter, cell.shape, cell.dtype)


# -- the track_ benchmarks' measurements --------------------------------------------
MEASURE_ONLY_VARIABLE = "XBACKEND_ASV_MEASURE_ONLY"


def measured(cell: tuple[str, str, str, str]) -> bool:
    """Whether ``measure_grid`` measures ``cell``: all, or those matching ``XBACKEND_ASV_MEASURE_ONLY``.

    asv's ``-b REGEX`` selects parameter sets but cannot reach ``setup_cache``;
    give this variable the same parameter regex (it is matched against
    ``('numpy', 'cpu', 'latency', 'float32')`` as ``-b`` sees it) so the shared
    measurement skips the cells the run does not select, e.g. ``"'cuda'"``.
    """
    pattern = os.environ.get(MEASURE_ONLY_VARIABLE, "")
    return not pattern or re.search(pattern, "(" + ", ".join(map(repr, cell)) + ")") is not None


BUDGET_VARIABLE = "XBACKEND_ASV_BUDGET"


def measure_budget(measure: Any) -> Any:
    """``measure.QUICK_BUDGET`` on the smoke grid or with ``XBACKEND_ASV_BUDGET=quick``, else the default."""
    choice = os.environ.get(BUDGET_VARIABLE, "") or ("default" if grid_name() == "full" else "quick")
    budgets = {"default": measure.DEFAULT_BUDGET, "quick": measure.QUICK_BUDGET}
    if choice not in budgets:
        raise ValueError(f"{BUDGET_VARIABLE}={choice!r}: use 'default' or 'quick'")
    return budgets[choice]


def measure_grid() -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Every cell of the grid measured by xbackend's own grid runner (``measure.measure_grid``), in one process.

    Each value is the cell's ``CellResult.to_dict()``, or ``{"skip": reason}``.
    """
    try:
        measure = _measure()
    except SkipNotImplemented as exc:  # a commit from before xbackend.measure: every cell skips
        return {cell: {"skip": str(exc)} for cell in grid_cells()}
    results: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    runnable: dict[tuple[str, str, str, str], Cell] = {}
    for key in grid_cells():
        if not measured(key):
            results[key] = {"skip": f"not measured in this run ({MEASURE_ONLY_VARIABLE})"}
            continue
        try:
            runnable[key] = resolve_cell(*key)
        except SkipNotImplemented as exc:
            results[key] = {"skip": str(exc)}
    if not hasattr(measure, "measure_grid"):
        reason = "xbackend.measure at this commit has no measure_grid"
        return results | {key: {"skip": reason} for key in runnable}
    grid = [measure.GridCell(c.adapter, c.shape_class, c.shape, c.dtype) for c in runnable.values()]
    measured_cells = measure.measure_grid(grid, budget=measure_budget(measure)).cells
    for key, (_, result) in zip(runnable, measured_cells):
        results[key] = result.to_dict()
    return results
