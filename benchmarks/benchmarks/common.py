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
# setup: without it jax-jit refuses every float64 cell.
os.environ.setdefault("JAX_ENABLE_X64", "1")

from asv_runner.benchmarks.mark import SkipNotImplemented  # noqa: E402

GRID_VARIABLE = "XBACKEND_ASV_GRID"
PARAM_NAMES = ["adapter", "device", "shape", "dtype"]

# Fixed here, not read from the package, so that the suite is the same for every
# commit asv builds; tests/test_asv_suite.py checks them against xbackend.
ADAPTERS = (
    "numpy", "torch-eager", "torch-einsum", "jax-jit", "cupy",
    "torch-numpy", "torch-blocked", "torch-compile", "jax-rows", "jax-numpy", "cupy-fused",
    # xbackend.mul_sum itself (the selected strategy, dispatch included), per library
    "numpy-auto", "torch-auto", "jax-auto", "cupy-auto",
    # scale-out: array-API namespaces, dask (local threads, then a dask.distributed
    # cluster, started once per measuring process by get_adapter), JAX over all devices
    "array-api", "dask", "dask-cluster", "jax-sharded",
)
# Registered strategies outside the grid, and why (tests/test_asv_suite.py keeps
# ADAPTERS and this table together covering the registry).
NOT_BENCHMARKED: dict[str, str] = {}
DEVICES = ("cpu", "cuda")
FULL_SHAPE_CLASSES = ("square", "tall-skinny", "short-wide", "column", "latency")
FULL_DTYPES = ("float32", "bfloat16", "float64")
SMOKE_SHAPES = {"latency": (3, 4), "small": (65_536, 16)}
SMOKE_DTYPES = ("float32",)
# The 16-bit cell of a framework without bfloat16 (CuPy) runs in float16.
HALF_FALLBACK = {"bfloat16": "float16"}


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
    if not hasattr(measure, "SharedInputs"):  # the suite's entry point into measure
        raise SkipNotImplemented("xbackend.measure at this commit predates SharedInputs")
    return measure


def shape_of(shape_class: str) -> tuple[int, ...]:
    if shape_class in SMOKE_SHAPES:
        return SMOKE_SHAPES[shape_class]
    return tuple(_measure().SHAPE_CLASSES[shape_class])


@dataclass(frozen=True)
class Cell:
    """A runnable cell: the adapter on its native device name and the dtype it computes in."""

    adapter: Any
    shape_class: str
    shape: tuple[int, ...]
    dtype: str


def resolve_cell(adapter_name: str, device: str, shape_class: str, dtype: str) -> Cell:
    """The adapter for this cell, or ``SkipNotImplemented`` saying why it cannot run here."""
    measure = _measure()
    from xbackend import AdapterUnavailable, get_adapter
    from xbackend._registry import STRATEGIES

    if adapter_name not in STRATEGIES:
        raise SkipNotImplemented(f"xbackend at this commit has no adapter {adapter_name!r}")
    # torch and CuPy call the GPU "cuda", JAX calls it "gpu": the grid says "cuda".
    native = [d for d in STRATEGIES[adapter_name].devices if measure.hardware(d) == measure.hardware(device)]
    if not native:
        raise SkipNotImplemented(f"{adapter_name} does not run on {device}")
    try:
        adapter = get_adapter(adapter_name, native[0])
    except AdapterUnavailable as exc:
        raise SkipNotImplemented(str(exc)) from None
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
    adapter = cell.adapter
    a, b = measure.host_inputs(cell.shape, cell.dtype)
    # The same input sets as measure.time_mul_sum: inputs that fit the last-level
    # cache are rotated over enough copies to stream from memory.
    copies = measure.cache_state(adapter, cell.shape, cell.dtype).copies
    pairs = [(adapter.asarray(a), adapter.asarray(b)) for _ in range(copies)]
    adapter.prepare(*pairs[0])  # compile (jax-jit) outside the timing
    for x, y in pairs:  # first calls (allocator warm-up, lazy init) outside the timing
        adapter.synchronize(adapter.mul_sum(x, y))
    turns = itertools.cycle(pairs)

    def call() -> None:
        x, y = next(turns)
        adapter.synchronize(adapter.mul_sum(x, y))

    return call


# -- the track_ benchmarks' measurements --------------------------------------------
MEASURE_ONLY_VARIABLE = "XBACKEND_ASV_MEASURE_ONLY"


def measured(cell: tuple[str, str, str, str]) -> bool:
    """Whether ``measure_grid`` measures ``cell``: all, or those matching ``XBACKEND_ASV_MEASURE_ONLY``.

    asv's ``-b REGEX`` selects parameter sets but cannot reach ``setup_cache``;
    give this variable the same parameter regex (it is matched against
    ``'numpy', 'cpu', 'latency', 'float32'`` as ``-b`` is) so the shared
    measurement skips the cells the run does not select, e.g. ``"'cuda'"``.
    """
    pattern = os.environ.get(MEASURE_ONLY_VARIABLE, "")
    return not pattern or re.search(pattern, ", ".join(map(repr, cell))) is not None


BUDGET_VARIABLE = "XBACKEND_ASV_BUDGET"


def measure_budget(measure: Any) -> Any:
    """``measure.QUICK_BUDGET`` on the smoke grid or with ``XBACKEND_ASV_BUDGET=quick``, else the default."""
    choice = os.environ.get(BUDGET_VARIABLE, "") or ("default" if grid_name() == "full" else "quick")
    budgets = {"default": measure.DEFAULT_BUDGET, "quick": measure.QUICK_BUDGET}
    if choice not in budgets:
        raise ValueError(f"{BUDGET_VARIABLE}={choice!r}: use 'default' or 'quick'")
    return budgets[choice]


def measure_grid() -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """``measure.measure_cell`` for every cell of the grid, in one process.

    Each value is the cell's ``CellResult.to_dict()``, or ``{"skip": reason}``.
    Inputs, the floor and the oracle's reference are computed once per
    (device, shape class, dtype) and shared by that group's adapters.
    """
    try:
        measure = _measure()
    except SkipNotImplemented as exc:  # a commit from before xbackend.measure: every cell skips
        return {cell: {"skip": str(exc)} for cell in grid_cells()}
    budget = measure_budget(measure)
    results: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for device, shape_class, dtype in itertools.product(*grid_params()[1:]):
        group: dict[str, Any] = {}
        for adapter_name in ADAPTERS:
            key = (adapter_name, device, shape_class, dtype)
            if not measured(key):
                results[key] = {"skip": f"not measured in this run ({MEASURE_ONLY_VARIABLE})"}
                continue
            try:
                cell = resolve_cell(*key)
            except SkipNotImplemented as exc:
                results[key] = {"skip": str(exc)}
                continue
            results[key] = _measure_in_group(measure, cell, budget, group).to_dict()
        group.clear()
    return results


def _measure_in_group(measure: Any, cell: Cell, budget: Any, group: dict[str, Any]) -> Any:
    # Keyed by dtype: CuPy's bfloat16 cell runs in float16 inside the bfloat16 group.
    if cell.dtype not in group:
        group[cell.dtype] = measure.SharedInputs(cell.shape, cell.dtype, 0, budget)
    return group[cell.dtype].measure(cell.adapter, cell.shape_class)
