"""How xbackend measures one cell: time, GB/s, fraction of the floor, extra memory, error.

This module is the one place for timing, floor and memory logic. ``xbackend
compare``, the tests and the asv suite in ``benchmarks/`` all call it. Data
flows one way: shape + dtype -> seeded host inputs -> ``adapter.asarray`` (the
device) -> the operation -> synchronize -> figures.

Public API (kept stable for the asv suite)::

    SHAPE_CLASSES                       name -> shape: square, tall-skinny, short-wide, column, latency
    QUICK_SHAPE_CLASSES                 the same names, smaller bandwidth shapes (still >= 64 MiB): --quick
    DEFAULT_DTYPES                      ("float32",)
    Budget, DEFAULT_BUDGET, QUICK_BUDGET
                                        warm-up seconds, sampling seconds, min/max repeats
    bytes_moved(shape, dtype) -> int    2 * N * K * itemsize: the bytes both inputs occupy
    host_inputs(shape, dtype, seed=0) -> (a, b)
                                        seeded, non-constant NumPy inputs
    cache_state(adapter, shape, dtype) -> CacheState
                                        cold / rotated over k input sets / latency
    time_mul_sum(adapter, x, y, *, budget=DEFAULT_BUDGET, copies=1) -> Timing
                                        compile and first call reported apart, then timed calls
    floor_adapter(device) -> Adapter    the adapter whose library dot is the floor on that hardware
    measure_floor(adapter_or_device, a, b, *, budget=DEFAULT_BUDGET, copies=1, memory_of=None) -> Floor
                                        the fastest kernel over the same bytes on the same device
                                        (in ``memory_of``'s framework's memory where it can be viewed)
    measure_floors(adapter_or_device, a, b, *, memories, budget=..., copies=1) -> {memory: Floor}
                                        the same in several frameworks' memory, in one set of rounds,
                                        with each memory's allocator ratio
    time_beside_floor(adapter, x, y, floor.kernel, *, budget=DEFAULT_BUDGET, copies=1) -> (Timing, Timing)
                                        the cell and the floor's best kernel, in alternating rounds
    floor_memory_owner(floor_adapter, memory_of) -> str
                                        whose allocator holds that floor's operands
    extra_memory(adapter, x, y) -> (bytes | None, method)
    error_check(a, b, seed=0) -> ErrorCheck, check_error(out, check) -> Verdict
                                        the oracle on a seeded subset of output columns
    SharedInputs(shape, dtype, seed, budget).measure(adapter, shape_class) -> CellResult
                                        cells of one (shape, dtype) sharing inputs, oracle check and floors
    measure_grid([GridCell(adapter, shape_class, shape, dtype), ...], budget=..., threads=...) -> GridResult
                                        the one grid runner: xbackend compare, xbackend tune and asv
    synchronized_call(adapter, shape, dtype) -> call
                                        one synchronized mul_sum per call on rotated inputs (asv's timer)
    measure_at_threads(adapter, shape, dtype, threads, ...) -> ThreadPoint
                                        a CPU cell's GB/s and the floor's, both pinned to ``threads``
    measure_dispatch_overhead(adapter, x, y, *, budget=...) -> DispatchOverhead | None
                                        what xbackend.mul_sum adds to the plain call it ends in
                                        (the <library>-auto adapters' latency cells)
    first_dispatch(library, device, shape, dtype) -> (seconds, Choice)
                                        one first xbackend.mul_sum, its autotune trial included
    measure_cell(adapter, shape, dtype, *, ...) -> CellResult
                                        every figure of one (adapter, device, shape, dtype) cell;
                                        a failure is recorded in ``CellResult.error``, never raised

Choices, and why:

* Timing. The first call is timed alone (``first_call_s``), after any
  ahead-of-time compile (``compile_s``, jax-jit). Warm-up calls follow until
  ``Budget.warmup_s`` has passed since the first call began (none when the
  first call alone took that long); samples are taken until ``Budget.measure_s`` has passed
  and ``min_repeats`` are in (a call slower than the budget stops at 3
  samples or 5x the budget). Each sample is one call, timed by the adapter's
  ``timer()`` hook: the host clock around call + synchronize, or CUDA events.
  Figures are the median and p20/p80; noise is (p80 - p20) / median, flagged
  above ``NOISE_WARNING``.
* Cache. Inputs of at least twice the last-level cache (CPU LLC, GPU L2) are
  streamed from memory on every call ("cold"). Smaller inputs are rotated:
  k copies on the device, k * bytes >= 2x the cache, one per call in turn.
  Each copy is a buffer of its own (``Adapter.asarray`` always copies): copies
  that shared one buffer (JAX's ``device_put`` aliases a 64-byte aligned host
  array on the CPU) were read from the cache, at up to 1.5x memory speed.
  Inputs under ``LATENCY_BYTES`` (the ``latency`` class, 3 x 4) fit in the
  L1 by design: such a cell measures per-call overhead, so its GB/s and
  fraction of floor are not reported (None).
* Floor. The fastest streaming read of the same bytes on the same hardware in
  the same run: every floor kernel of every installed library (``floor_kernels``:
  BLAS ``np.dot`` and ``np.einsum`` chunk dots on every core on the CPU;
  ``torch.dot``, ``cupy.cublas.dot``, ``jax.jit(jnp.dot)`` on either), timed in
  interleaved rounds; in a grid (``measure_grid``), also every strategy: where
  one beats all kernels, it is the floor, and ``floor_method`` says so. BLAS
  has no 16-bit or integer dot, so for every dtype other than float32 /
  float64 the kernels read float32 arrays of the same total bytes. On the CPU
  the floor of a cell reads the buffers allocated by the cell's own
  framework, through every kernel that can wrap them in place (NumPy's and
  torch's wrap any framework's, XLA's only its own): the same bytes in the
  same pages. Allocators differ: NumPy asks for transparent huge pages,
  torch's and XLA's CPU allocators do not; on the 2-vCPU Xeon VM the three
  read alike (26.9-27.4 GB/s for ``torch.dot``), on the 2-vCPU AMD EPYC VM
  torch's and XLA's pages read at ~0.87 of NumPy's. That is the allocator
  figure (``allocator_ratio``: each memory's floor over the fastest memory's,
  all timed in the same rounds), reported beside the fractions, not in them:
  a strategy reads the pages its caller allocated. The cell's floor kernel
  is then timed again beside each cell, the two
  alternating in ``FLOOR_ROUNDS`` rounds that share the cell's budget
  (``time_beside_floor``), and the fraction is cell GB/s / that floor GB/s:
  a drift of the machine between cells (20-40% within a minute on the 2-vCPU
  VMs) lands on both sides of the ratio.
* Timing on a GPU. Device work is asynchronous: a sample times a batch of
  back-to-back calls (``batch_size``: enough to span ``BATCH_TARGET_S``) with
  device events (JAX: the host clock and ``block_until_ready``), as a loop of
  calls runs in real code; a single call's launch is ``first_call_s``.
* Extra memory: the adapter's ``extra_memory`` hook (tracemalloc for NumPy,
  CUDA peak statistics for torch, a CuPy memory hook, XLA's memory analysis
  for JAX, the RSS high-water mark otherwise); the method is named per cell.
* Error: worst |out - exact| / bound (``xbackend.testing``) of the cell's own
  output on the timed inputs. The exact oracle sums in Python, so only a
  seeded subset of output columns is checked: about ``ERROR_CHECK_PRODUCTS``
  products (at least one column, at most ``MAX_ERROR_COLUMNS``). The cell
  says how many columns were checked.
"""

from __future__ import annotations

import functools
import gc
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from .backends import LIBRARIES, hardware
from .backends.base import Adapter
from .core import dtypes as _dtypes
from .core.dtypes import numpy_dtype
from .core.errors import AdapterUnavailable, UnsupportedDtypeError
from .core.probes import cpu_count
from .core.shapes import LATENCY_BYTES, QUICK_SHAPE_CLASSES, SHAPE_CLASSES, Shape
from .core.timing import (
    DEFAULT_BUDGET,
    QUICK_BUDGET,
    Budget,
    Timing,
    _device_copies,
    _sample,
    prepared_calls,
    time_mul_sum,
)
from .dispatch import Choice, Selected, choose, mul_sum
from .registry import STRATEGIES, get_adapter
from .testing import Reference, Verdict, check_against, reference, to_host

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_DTYPES",
    "QUICK_BUDGET",
    "QUICK_SHAPE_CLASSES",
    "SHAPE_CLASSES",
    "Budget",
    "CacheState",
    "CellResult",
    "ErrorCheck",
    "Floor",
    "GridCell",
    "GridResult",
    "SharedInputs",
    "Timing",
    "bytes_moved",
    "cache_state",
    "check_error",
    "DispatchOverhead",
    "measure_dispatch_overhead",
    "first_dispatch",
    "error_check",
    "extra_memory",
    "floor_adapter",
    "floor_memory_owner",
    "hardware",
    "host_inputs",
    "measure_cell",
    "measure_floor",
    "measure_floors",
    "measure_grid",
    "synchronized_call",
    "ThreadPoint",
    "measure_at_threads",
    "pin_cpu_threads",
    "thread_counts",
    "time_mul_sum",
]

DEFAULT_DTYPES: tuple[str, ...] = ("float32",)

NOISE_WARNING = 0.10
ERROR_CHECK_PRODUCTS = 2_000_000
MAX_ERROR_COLUMNS = 256
_FLOOR_DTYPES = ("float32", "float64")
# Whose library dot is the floor on each hardware, in order of preference.
FLOOR_PREFERENCE = tuple(record.floor_strategy for record in LIBRARIES.values() if record.floor_strategy)


# -- inputs -------------------------------------------------------------------
def _elements(shape: Shape) -> int:
    return math.prod(shape)


def itemsize(dtype: str) -> int:
    return numpy_dtype(dtype).itemsize


def bytes_moved(shape: Shape, dtype: str) -> int:
    """``2 * N * K * itemsize``: both inputs read once (the output is negligible)."""
    return 2 * _elements(shape) * itemsize(dtype)


def host_inputs(shape: Shape, dtype: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two seeded random NumPy arrays of ``shape`` and ``dtype`` (normal values; integers in [-8, 8))."""
    _dtypes.check_supported(dtype, where="the benchmark dtype")
    shape = tuple(int(n) for n in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"benchmark shapes need at least one dimension and no empty axis; got {shape}")
    rng = np.random.default_rng(seed)
    return _random(rng, shape, dtype), _random(rng, shape, dtype)


def _random(rng: np.random.Generator, shape: Shape, dtype: str) -> np.ndarray:
    target = numpy_dtype(dtype)
    if _dtypes.is_integer(dtype):
        low = 0 if _dtypes.kind(dtype) == "unsigned" else -8
        return rng.integers(low, 8, size=shape, dtype=target)
    real_dtype = np.float64 if dtype in ("float64", "complex128") else np.float32
    values = rng.standard_normal(shape, dtype=real_dtype)
    if _dtypes.is_complex(dtype):
        values = values + 1j * rng.standard_normal(shape, dtype=real_dtype)
    return values.astype(target)


# -- cache state --------------------------------------------------------------
@dataclass(frozen=True)
class CacheState:
    """How the inputs meet the device's last-level cache in a measurement.

    ``kind`` is "cold" (inputs >= 2x the cache), "rotated" (``copies`` input
    sets used in turn, together >= 2x the cache), "latency" (inputs fit in
    cache by design: GB/s is not meaningful) or "unknown" (no cache size).
    """

    kind: str
    copies: int
    description: str

    @property
    def bandwidth(self) -> bool:
        return self.kind != "latency"


def _mib(n: float) -> str:
    return f"{n / 2**20:.3g} MiB"


def cache_state(adapter: Adapter, shape: Shape, dtype: str) -> CacheState:
    size = bytes_moved(shape, dtype)
    if size < LATENCY_BYTES:
        return CacheState("latency", 1, f"warm: inputs ({size} B) fit in cache by design; a per-call latency figure")
    cache = adapter.cache_bytes()
    if cache is None:
        return CacheState("unknown", 1, f"cache size unknown; inputs {_mib(size)}, not rotated")
    if size >= 2 * cache:
        return CacheState("cold", 1, f"cold: inputs {_mib(size)} >= 2x last-level cache ({_mib(cache)})")
    copies = math.ceil(2 * cache / size)
    return CacheState(
        "rotated",
        copies,
        f"rotated over {copies} input sets ({_mib(copies * size)} >= 2x last-level cache {_mib(cache)})",
    )


def synchronized_call(adapter: Adapter, shape: Shape, dtype: str, seed: int = 0) -> Callable[[], None]:
    """A zero-argument call running one synchronized ``mul_sum`` per call, for an outside timer (asv).

    The inputs are those of ``measure_cell`` (seeded, rotated over the input sets
    ``cache_state`` asks for); compile and each set's first call happen here,
    outside the timing.
    """
    a, b = host_inputs(shape, dtype, seed)
    x, y = adapter.asarray(a), adapter.asarray(b)
    pairs = _device_copies(adapter, x, y, cache_state(adapter, shape, dtype).copies)
    adapter.prepare(x, y)
    for u, v in pairs:  # allocator warm-up and lazy initialisation, untimed
        adapter.synchronize(adapter.mul_sum(u, v))
    turns = itertools.cycle(pairs)

    def call() -> None:
        u, v = next(turns)
        adapter.synchronize(adapter.mul_sum(u, v))

    return call


# -- floor --------------------------------------------------------------------
@dataclass(frozen=True)
class Floor:
    """The bandwidth floor: the fastest of several streaming reads of ``bytes`` on ``device``'s hardware.

    ``candidates`` holds every candidate kernel's GB/s; ``method`` names the winner.
    """

    timing: Timing
    bytes: int
    device: str
    method: str
    candidates: dict[str, float] = field(default_factory=dict)
    # The winner, to be timed again beside each cell (None once its operands are released).
    kernel: FloorKernel | None = field(default=None, compare=False, repr=False)
    # Whose allocator holds the operands ("numpy", "torch", ...; on a GPU, the
    # first floor library's name: device memory is one kind whoever allocates it).
    memory: str | None = None
    # The allocator figure: this floor's GB/s over the fastest memory's, where the
    # floors of several memories were timed in the same rounds (``measure_floors``).
    allocator_ratio: float | None = None
    fastest_memory: str | None = None

    @property
    def gbps(self) -> float:
        return self.bytes / self.timing.median_s / 1e9


@dataclass(frozen=True)
class FloorKernel:
    """A floor kernel ready to call: its timer and its calls over rotated operands."""

    timer: Any
    calls: list[Callable[[], Any]]


def floor_adapters(device: str) -> list[Adapter]:
    """Every available library adapter with floor kernels on ``device``'s hardware (see ``FLOOR_PREFERENCE``)."""
    found, reasons = [], []
    for name in FLOOR_PREFERENCE:
        cls = STRATEGIES[name]
        for candidate in cls.devices:
            if hardware(candidate) != hardware(device):
                continue
            reason = cls.unavailable_reason(candidate)
            if reason is None:
                found.append(get_adapter(name, candidate))
            else:
                reasons.append(f"{name} on {candidate}: {reason}")
    if not found:
        raise AdapterUnavailable(f"no floor kernel on {device}: " + "; ".join(reasons or ["no adapter"]))
    return found


def floor_adapter(device: str) -> Adapter:
    """The first of ``floor_adapters(device)``: whose memory the floor reads when the cell's cannot be viewed."""
    return floor_adapters(device)[0]


def floor_inputs(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The floor's inputs: ``a``, ``b`` themselves for native float32/float64 (C-ordered: a dot reads them
    flat), else float32 arrays of the same bytes."""
    if a.dtype.name in _FLOOR_DTYPES and b.dtype == a.dtype and a.dtype.isnative:
        # A Fortran-ordered input is copied by every flat dot on every call: 3 against 75 GB/s.
        return np.ascontiguousarray(a), np.ascontiguousarray(b)
    elements = max(1, math.ceil(a.nbytes / 4))
    return host_inputs((elements,), "float32", seed)


# Candidates are timed in this many interleaved rounds, so that a slow spell of a
# shared machine lands on all of them rather than on one.
FLOOR_ROUNDS = 3


def measure_floor(
    adapter_or_device: Adapter | str | Sequence[Adapter],
    a: np.ndarray,
    b: np.ndarray,
    *,
    budget: Budget = DEFAULT_BUDGET,
    copies: int = 1,
    memory_of: Adapter | None = None,
) -> Floor:
    """The fastest streaming read of the bytes of host inputs ``a`` and ``b`` on the given device's hardware.

    Every floor kernel of every library available there is a candidate (a
    given adapter, or list of adapters: only theirs). With ``memory_of`` (the
    adapter under test) on the CPU, the candidates are the kernels that read
    the buffers allocated by that adapter's framework in place (``host_view``,
    ``from_host_view``): the same kind of pages the cell reads, so the fraction
    measures the strategy, not the allocator. Without it, each library's
    kernels read their own library's memory.
    """
    (floor,) = measure_floors(adapter_or_device, a, b, memories=[memory_of], budget=budget, copies=copies).values()
    return floor


def measure_floors(
    adapter_or_device: Adapter | str | Sequence[Adapter],
    a: np.ndarray,
    b: np.ndarray,
    *,
    memories: Sequence[Adapter | None],
    budget: Budget = DEFAULT_BUDGET,
    copies: int = 1,
) -> dict[str, Floor]:
    """``measure_floor`` in the memory of each of ``memories``, every kernel of every memory in the same rounds.

    Keyed by memory owner (``Floor.memory``). Where two or more memories are
    timed, each floor's ``allocator_ratio`` is its GB/s over the fastest
    memory's: a ratio taken in one window, so the machine's drift stays out of it.
    """
    adapters = _floor_adapters_of(adapter_or_device)
    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    fa, fb = floor_inputs(a, b)
    by_memory: dict[str, list[_Candidate]] = {}
    for memory_of in memories:
        memory = floor_memory_owner(adapters[0], memory_of)
        if memory_of is not None and memory != memory_of.framework:
            # Memory no floor kernel can view (dask's, an array API library's): the floor
            # library's own stands in, read by the same kernels whichever cell asks first.
            memory_of = adapters[0]
        if memory not in by_memory:
            by_memory[memory] = _floor_candidates(adapters, memory_of, memory, fa, fb, copies)
    missing = [memory for memory, candidates in by_memory.items() if not candidates]
    if missing:
        names = ", ".join(adapter.name for adapter in adapters)
        raise AdapterUnavailable(f"no floor kernel among {names} reads {', '.join(missing)}-allocated memory")
    timings = _interleaved([candidate for candidates in by_memory.values() for candidate in candidates], budget)
    size = fa.nbytes + fb.nbytes
    floors = {
        memory: _fastest(candidates, timings, size, adapters[0].device, memory)
        for memory, candidates in by_memory.items()
    }
    fastest = max(floors.values(), key=lambda floor: floor.gbps, default=None)
    if len(floors) < 2 or fastest is None or fastest.gbps <= 0:  # no ratio of one memory, or of empty inputs
        return floors
    return {
        memory: replace(floor, allocator_ratio=floor.gbps / fastest.gbps, fastest_memory=fastest.memory)
        for memory, floor in floors.items()
    }


# (label, timer, one call per rotated operand pair)
_Candidate = tuple[str, Any, list[Callable[[], Any]]]


def _floor_adapters_of(adapter_or_device: Adapter | str | Sequence[Adapter]) -> list[Adapter]:
    if isinstance(adapter_or_device, str):
        return floor_adapters(adapter_or_device)
    if isinstance(adapter_or_device, Adapter):
        return [adapter_or_device]
    adapters = list(adapter_or_device)
    if not adapters:
        raise ValueError("a floor needs at least one floor adapter; none was given")
    return adapters


def _floor_candidates(
    adapters: Sequence[Adapter], memory_of: Adapter | None, memory: str, fa: np.ndarray, fb: np.ndarray, copies: int
) -> list[_Candidate]:
    """The kernels of ``adapters`` that read ``memory`` (on a GPU, or without ``memory_of``: every kernel)."""
    candidates = []
    for floor in adapters:
        owner = floor_memory_owner(floor, memory_of)
        if memory_of is not None and floor.device == "cpu" and owner != memory:
            continue  # it would read its own library's pages: the allocator figure, not this memory's floor
        pairs = [_floor_operands(floor, memory_of, fa, fb) for _ in range(copies)]
        for name, kernel in floor.floor_kernels().items():
            label = f"{name} on {floor.device}, {fa.dtype.name}, in {owner}-allocated memory"
            candidates.append((label, floor.timer(), [functools.partial(kernel, u, v) for u, v, _ in pairs]))
    return candidates


def _fastest(candidates: list[_Candidate], timings: dict[str, Timing], size: int, device: str, memory: str) -> Floor:
    label, timer, calls = min(candidates, key=lambda candidate: timings[candidate[0]].median_s)
    rates = {name: size / timings[name].median_s / 1e9 for name, _, _ in candidates}
    return Floor(timings[label], size, device, label, rates, FloorKernel(timer, calls), memory)


# A cell and its floor kernel share one cell's budget, half each, in FLOOR_ROUNDS
# alternating rounds: a slow spell of a shared machine (these VMs drift by 20-40%
# within a minute) lands on both, where a floor timed once per shape class and
# cells timed after it put the drift into the fraction.
def time_beside_floor(
    adapter: Adapter, x: Any, y: Any, kernel: FloorKernel, *, budget: Budget = DEFAULT_BUDGET, copies: int = 1
) -> tuple[Timing, Timing]:
    """``time_mul_sum`` of ``adapter`` and the floor ``kernel``'s timing, taken in the same alternating rounds."""
    compile_s, calls = prepared_calls(adapter, x, y, copies)  # the first round's first call is the first after it
    half = Budget(
        warmup_s=budget.warmup_s / 2,
        measure_s=budget.measure_s / 2,
        min_repeats=budget.min_repeats,
        max_repeats=budget.max_repeats,
    )
    timings = _interleaved([("cell", adapter.timer(), calls), ("floor", kernel.timer, kernel.calls)], half)
    return replace(timings["cell"], compile_s=compile_s), timings["floor"]


def _interleaved(candidates: list[_Candidate], budget: Budget) -> dict[str, Timing]:
    """Each candidate's timing, sampled in ``FLOOR_ROUNDS`` rounds that alternate between the candidates."""
    share = Budget(
        warmup_s=budget.warmup_s / FLOOR_ROUNDS,
        measure_s=budget.measure_s / FLOOR_ROUNDS,
        min_repeats=max(1, budget.min_repeats // FLOOR_ROUNDS),
        max_repeats=max(1, budget.max_repeats // FLOOR_ROUNDS),
    )
    parts: dict[str, list[Timing]] = {label: [] for label, _, _ in candidates}
    first: dict[str, float] = {label: timer.time(calls[0]) for label, timer, calls in candidates}
    for _ in range(FLOOR_ROUNDS):
        for label, timer, calls in candidates:
            parts[label].append(_sample(timer, calls, share, 0.0, None))
    return {label: _merged(timings, first[label]) for label, timings in parts.items()}


def _merged(timings: list[Timing], first_call_s: float) -> Timing:
    samples = tuple(sample for timing in timings for sample in timing.samples_s)
    warmup = sum(timing.warmup_calls for timing in timings)
    return Timing(samples, first_call_s, None, warmup, timings[0].timer, timings[0].copies, timings[0].calls_per_sample)


def floor_memory_owner(floor: Adapter, memory_of: Adapter | None) -> str:
    """Whose allocator holds ``floor``'s operands when measured for ``memory_of``.

    The cell's own memory wherever ``floor``'s library can wrap a zero-copy host
    view of it (on the CPU: NumPy and torch wrap any framework's), else the
    floor library's own.
    """
    if memory_of is None or floor.device != "cpu" or hardware(memory_of.device) != "cpu":
        return floor.framework
    if memory_of.framework == floor.framework:
        return floor.framework
    view = memory_of.host_view(memory_of.asarray(np.full(1, 0.5, np.float32)))
    return memory_of.framework if view is not None and floor.from_host_view(view) is not None else floor.framework


def _floor_operands(floor: Adapter, memory_of: Adapter | None, fa: np.ndarray, fb: np.ndarray) -> tuple[Any, Any, str]:
    if floor_memory_owner(floor, memory_of) != floor.framework:
        assert memory_of is not None
        # Each wrapper keeps its view, and the view its native array, alive.
        return (
            floor.from_host_view(memory_of.host_view(memory_of.asarray(fa))),
            floor.from_host_view(memory_of.host_view(memory_of.asarray(fb))),
            memory_of.framework,
        )
    return floor.asarray(fa), floor.asarray(fb), floor.framework


def extra_memory(adapter: Adapter, x: Any, y: Any) -> tuple[int | None, str]:
    """Peak bytes one ``mul_sum(x, y)`` allocates beyond its inputs and output, and how it was measured."""
    use = adapter.extra_memory(x, y)
    return use.extra_bytes, use.method


# -- error --------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorCheck:
    """The exact result on a seeded subset of output columns, computed once per input."""

    columns: np.ndarray
    reference: Reference
    total_columns: int

    @property
    def description(self) -> str:
        if len(self.columns) == self.total_columns:
            return f"all {self.total_columns} output elements"
        return f"{len(self.columns)} of {self.total_columns} output elements (seeded sample)"


def error_check(a: np.ndarray, b: np.ndarray, seed: int = 0) -> ErrorCheck:
    """The oracle on about ``ERROR_CHECK_PRODUCTS`` products: whole columns, chosen with ``seed``."""
    n = a.shape[0]
    a2, b2 = a.reshape(n, -1), b.reshape(n, -1)
    total = a2.shape[1]
    count = min(total, MAX_ERROR_COLUMNS, max(1, ERROR_CHECK_PRODUCTS // n))
    columns = np.sort(np.random.default_rng(seed).choice(total, size=count, replace=False))
    return ErrorCheck(columns, reference(a2[:, columns], b2[:, columns]), total)


def check_error(out: Any, check: ErrorCheck) -> Verdict:
    """Worst error / bound of ``out`` (any library) on the checked columns."""
    return check_against(to_host(out).reshape(-1)[check.columns], check.reference)


# -- one cell -----------------------------------------------------------------
@dataclass
class CellResult:
    """Every figure of one (adapter, device, shape, dtype) cell; None where not measured.

    ``status`` is "ok", "unsupported" (the adapter refuses the dtype) or
    "failed" (any other exception, out-of-memory included); ``error`` then says
    why. ``error_ratio`` is the accuracy: worst error / rigorous bound (<= 1
    is correct). GB/s is decimal (1e9 bytes per second).
    """

    adapter: str
    framework: str
    device: str
    shape_class: str
    shape: list[int]
    dtype: str
    status: str = "ok"
    error: str | None = None
    bytes_moved: int = 0
    cache_kind: str | None = None
    cache_state: str | None = None
    input_sets: int | None = None
    timer: str | None = None
    median_s: float | None = None
    p20_s: float | None = None
    p80_s: float | None = None
    noise: float | None = None
    noisy: bool | None = None
    repeats: int | None = None
    calls_per_sample: int | None = None
    warmup_calls: int | None = None
    compile_s: float | None = None
    first_call_s: float | None = None
    gbps: float | None = None
    floor_gbps: float | None = None
    floor_median_s: float | None = None
    floor_noise: float | None = None
    floor_method: str | None = None
    memory_floor_gbps: float | None = None
    # Whose allocator holds the cell's inputs, and so the floor's operands; that
    # memory's floor over the fastest memory's, in the same rounds (``Floor``).
    floor_memory: str | None = None
    allocator_ratio: float | None = None
    fraction_of_floor: float | None = None
    extra_memory_bytes: int | None = None
    extra_memory_method: str | None = None
    error_ratio: float | None = None
    error_checked: str | None = None
    error_failure: str | None = None
    # Latency cells of an adapter that dispatches (<library>-auto): measure_dispatch_overhead.
    dispatch_overhead_s: float | None = None
    dispatch_overhead_p20_s: float | None = None
    dispatch_overhead_p80_s: float | None = None
    dispatch_call_s: float | None = None
    plain_call_s: float | None = None
    plain_call: str | None = None
    # A <library>-auto cell: the strategy mul_sum ran after its first call (a trial's choice) and why.
    chosen: str | None = None
    samples_s: list[float] = field(default_factory=list)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, Any]:
        return {key: _json_number(value) for key, value in asdict(self).items()}


def _json_number(value: Any) -> Any:
    # JSON has no inf / nan: an unbounded error ratio is written as a string.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def measure_cell(
    adapter: Adapter,
    shape: Shape,
    dtype: str,
    *,
    shape_class: str | None = None,
    budget: Budget = DEFAULT_BUDGET,
    seed: int = 0,
    inputs: tuple[np.ndarray, np.ndarray] | None = None,
    floor: Floor | None = None,
    check: ErrorCheck | None = None,
) -> CellResult:
    """Measure one cell. Pass ``inputs``, ``floor`` and ``check`` to share them across adapters.

    ``floor``: the floor in the memory of the cell's framework, whose kernel
    is timed again beside the cell. Never raises for a failure of the
    adapter: the cell records it.
    """
    shape = tuple(int(n) for n in shape)
    cell = CellResult(
        adapter=adapter.name,
        framework=adapter.framework,
        device=adapter.device,
        shape_class=shape_class or "x".join(map(str, shape)),
        shape=list(shape),
        dtype=dtype,
        bytes_moved=bytes_moved(shape, dtype),
    )
    try:
        _measure_into(cell, adapter, shape, dtype, budget, seed, inputs, floor, check)
    except UnsupportedDtypeError as exc:
        cell.status, cell.error = "unsupported", str(exc)
    except Exception as exc:  # MemoryError and framework OOMs included: the grid goes on
        cell.status, cell.error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        gc.collect()
        adapter.release_memory()
    return cell


def _measure_into(
    cell: CellResult,
    adapter: Adapter,
    shape: Shape,
    dtype: str,
    budget: Budget,
    seed: int,
    inputs: tuple[np.ndarray, np.ndarray] | None,
    floor: Floor | None,
    check: ErrorCheck | None,
) -> None:
    a, b = inputs if inputs is not None else host_inputs(shape, dtype, seed)
    cache = cache_state(adapter, shape, dtype)
    cell.cache_kind, cell.cache_state, cell.input_sets = cache.kind, cache.description, cache.copies
    if cache.bandwidth and floor is None:
        floor = _floor_or_none(cell, adapter, a, b, budget, cache.copies)
    x, y = adapter.asarray(a), adapter.asarray(b)
    beside = None
    if cache.bandwidth and floor is not None and floor.kernel is not None:
        timing, beside = time_beside_floor(adapter, x, y, floor.kernel, budget=budget, copies=cache.copies)
    else:
        timing = time_mul_sum(adapter, x, y, budget=budget, copies=cache.copies)
    _fill_timing(cell, timing)
    cell.chosen = adapter.choice(x, y)
    memory = adapter.extra_memory(x, y)
    cell.extra_memory_bytes, cell.extra_memory_method = memory.extra_bytes, memory.method
    check = check if check is not None else error_check(a, b, seed)
    verdict = check_error(memory.out, check)
    cell.error_ratio, cell.error_failure, cell.error_checked = verdict.ratio, verdict.failure, check.description
    if not cache.bandwidth:
        _fill_overhead(cell, measure_dispatch_overhead(adapter, x, y, budget=budget))
        return
    cell.gbps = cell.bytes_moved / timing.median_s / 1e9
    if floor is not None:
        _fill_floor(cell, floor, beside)


# -- dispatch overhead ------------------------------------------------------------
# One sample is a loop of back-to-back calls spanning about this long, so the
# clock's own cost (~0.1 us a reading) is spread over thousands of calls.
OVERHEAD_SAMPLE_S = 5e-3
MAX_OVERHEAD_CALLS = 100_000


@dataclass(frozen=True)
class DispatchOverhead:
    """What ``xbackend.mul_sum`` adds to the plain call it ends in, per call, both timed in the same rounds.

    ``overhead_s`` is the median over rounds of (dispatching call - plain call),
    each a loop of ``calls_per_sample`` calls; p20/p80 are of those differences.
    """

    overhead_s: float
    p20_s: float
    p80_s: float
    dispatch_s: float
    plain_s: float
    plain: str
    rounds: int
    calls_per_sample: int


def measure_dispatch_overhead(
    adapter: Adapter, x: Any, y: Any, *, budget: Budget = DEFAULT_BUDGET
) -> DispatchOverhead | None:
    """The dispatch overhead of ``adapter`` on native ``x``, ``y`` (None for an adapter that dispatches nothing).

    The dispatching call (``xbackend.mul_sum``) and the plain one (the chosen
    strategy's kernel) alternate within each round, which of them goes first
    alternating too, so a slow spell of a busy machine falls on both.
    """
    pair = adapter.dispatch_pair(x, y)
    if pair is None:
        return None
    dispatch, plain, description = pair
    timer = adapter.timer()
    single = min(timer.time(functools.partial(call, x, y)) for call in (dispatch, plain) for _ in range(3))
    calls = max(1, min(MAX_OVERHEAD_CALLS, math.ceil(OVERHEAD_SAMPLE_S / max(single, 1e-9))))
    loops = [functools.partial(_call_loop, call, x, y, calls) for call in (dispatch, plain)]
    times: tuple[list[float], list[float]] = ([], [])
    start = time.perf_counter()
    while time.perf_counter() - start < budget.warmup_s:
        for loop in loops:
            timer.time(loop)
    start = time.perf_counter()
    while len(times[0]) < budget.max_repeats and (
        time.perf_counter() - start < budget.measure_s or len(times[0]) < budget.min_repeats
    ):
        for index in (0, 1) if len(times[0]) % 2 == 0 else (1, 0):
            times[index].append(timer.time(loops[index]) / calls)
    differences = np.subtract(*times)
    p20, median, p80 = (float(value) for value in np.percentile(differences, [20, 50, 80]))
    return DispatchOverhead(
        median, p20, p80, float(np.median(times[0])), float(np.median(times[1])), description, len(differences), calls
    )


def first_dispatch(library: str, device: str, shape: Shape, dtype: str, seed: int = 0) -> tuple[float, Choice]:
    """Seconds of one first ``xbackend.mul_sum`` on seeded inputs of ``library`` (a first-call trial included
    where one is due: its own seconds are in the choice's reason and the wisdom file), and the choice it left.

    ``xbackend explain --trial``: the autotune's one-time cost as a user meets it.
    """
    adapter = get_adapter(LIBRARIES[library].default_strategy, device)
    a, b = host_inputs(shape, dtype, seed)
    x, y = adapter.asarray(a), adapter.asarray(b)
    seconds = adapter.timer().time(functools.partial(mul_sum, x, y))
    return seconds, choose(x, y)


def _call_loop(call: Callable[[Any, Any], Any], x: Any, y: Any, calls: int) -> Any:
    # The last result goes to the timer's synchronize: on a device, the queue ends with it.
    out = None
    for _ in range(calls):
        out = call(x, y)
    return out


def _fill_overhead(cell: CellResult, overhead: DispatchOverhead | None) -> None:
    if overhead is None:
        return
    cell.dispatch_overhead_s = overhead.overhead_s
    cell.dispatch_overhead_p20_s, cell.dispatch_overhead_p80_s = overhead.p20_s, overhead.p80_s
    cell.dispatch_call_s, cell.plain_call_s, cell.plain_call = overhead.dispatch_s, overhead.plain_s, overhead.plain


def _fill_timing(cell: CellResult, timing: Timing) -> None:
    cell.timer = timing.timer
    cell.median_s, cell.p20_s, cell.p80_s = timing.median_s, timing.p20_s, timing.p80_s
    cell.noise, cell.noisy = timing.noise, timing.noise > NOISE_WARNING
    cell.repeats, cell.warmup_calls, cell.calls_per_sample = (
        timing.repeats,
        timing.warmup_calls,
        timing.calls_per_sample,
    )
    cell.compile_s, cell.first_call_s = timing.compile_s, timing.first_call_s
    cell.samples_s = list(timing.samples_s)


def _fill_floor(cell: CellResult, floor: Floor, beside: Timing | None) -> None:
    """The cell's floor: ``floor``'s kernel as timed ``beside`` the cell (else its own timing), and its allocator
    figures."""
    timing = beside or floor.timing
    cell.floor_median_s, cell.floor_noise = timing.median_s, timing.noise
    cell.floor_gbps = floor.bytes / timing.median_s / 1e9
    cell.floor_method = floor.method + (", timed in the cell's rounds" if beside is not None else "")
    cell.memory_floor_gbps, cell.floor_memory, cell.allocator_ratio = floor.gbps, floor.memory, floor.allocator_ratio
    # A ratio of rates: the floor's bytes differ from the cell's by under 4
    # bytes where a 16-bit input has an odd element count.
    cell.fraction_of_floor = cell.gbps / cell.floor_gbps


def _floor_or_none(
    cell: CellResult, adapter: Adapter, a: np.ndarray, b: np.ndarray, budget: Budget, copies: int
) -> Floor | None:
    try:
        return measure_floor(adapter.device, a, b, budget=budget, copies=copies, memory_of=adapter)
    except Exception as exc:  # a missing floor leaves the fraction blank, not the cell
        cell.floor_method = f"unavailable: {type(exc).__name__}: {exc}"
        return None


class SharedInputs:
    """Inputs, oracle check and floors of one (shape, dtype), made once and shared by every adapter's cell.

    ``xbackend compare`` and the asv suite measure a grid through it.
    """

    def __init__(self, shape: Shape, dtype: str, seed: int, budget: Budget) -> None:
        self.shape, self.dtype, self.seed, self.budget = shape, dtype, seed, budget
        self.inputs = host_inputs(shape, dtype, seed)
        self._check: ErrorCheck | None = None
        self.floors: dict[str, Floor | None] = {}

    def check(self) -> ErrorCheck:
        if self._check is None:
            self._check = error_check(*self.inputs, seed=self.seed)
        return self._check

    def floor(self, cell_adapter: Adapter) -> Floor | None:
        """The floor on the cell's hardware, in its framework's memory (None: a latency cell, or no floor kernel)."""
        key = self._key(cell_adapter)
        if key is not None and key not in self.floors:
            self.measure_floors([cell_adapter])
        return self.floors.get(key) if key is not None else None

    def measure_floors(self, cell_adapters: Sequence[Adapter]) -> None:
        """The floors of every memory these cells read and no floor has yet, per hardware in one set of rounds."""
        by_hardware: dict[str, dict[str, Adapter]] = {}
        for adapter in cell_adapters:
            key = self._key(adapter)
            if key is not None and key not in self.floors:
                by_hardware.setdefault(hardware(adapter.device), {}).setdefault(key, adapter)
        for cells in by_hardware.values():
            floors = self._measure_floors(list(cells.values()))
            for key in cells:
                self.floors[key] = floors.get(key.split("/", 1)[1]) if floors else None

    def _key(self, cell_adapter: Adapter) -> str | None:
        """``"<hardware>/<memory owner>"`` of the cell's floor; None where its hardware has no floor kernel."""
        try:
            adapter = floor_adapter(cell_adapter.device)
        except Exception:
            return None
        return f"{hardware(cell_adapter.device)}/{floor_memory_owner(adapter, cell_adapter)}"

    def _measure_floors(self, cell_adapters: list[Adapter]) -> dict[str, Floor] | None:
        device = cell_adapters[0].device
        state = cache_state(floor_adapter(device), self.shape, self.dtype)
        if not state.bandwidth:
            return None
        return measure_floors(device, *self.inputs, memories=cell_adapters, budget=self.budget, copies=state.copies)

    def measure(self, adapter: Adapter, shape_class: str | None = None) -> CellResult:
        """``measure_cell`` for ``adapter`` on these inputs, with the shared check and floors."""
        # Where the shared oracle or floor fails, measure_cell redoes it for this
        # cell and records the failure there; the grid goes on.
        try:
            check: ErrorCheck | None = self.check()
        except Exception:
            check = None
        try:
            floor = self.floor(adapter)
        except Exception:
            floor = None
        return measure_cell(
            adapter,
            self.shape,
            self.dtype,
            shape_class=shape_class,
            budget=self.budget,
            seed=self.seed,
            inputs=self.inputs,
            floor=floor,
            check=check,
        )


def best_floor(cells: Sequence[CellResult]) -> None:
    """Where a strategy of one (shape, dtype) beat the floor kernel timed beside it, make it the floor.

    Each cell's fraction is a ratio to the best floor kernel reading its
    framework's memory on its hardware, timed in the cell's own rounds. Where
    the fastest cell of one (hardware, memory) has a fraction above 1, the
    floor is that strategy: every fraction there is divided by it
    (``floor_method`` says so), so no fraction exceeds 1 but by noise. The
    ratios, not GB/s, are compared: GB/s of cells timed minutes apart differ by
    the machine's drift.
    """
    by_memory: dict[tuple[str, str | None], list[CellResult]] = {}
    for cell in cells:
        if cell.fraction_of_floor is not None and cell.floor_gbps is not None:
            by_memory.setdefault((hardware(cell.device), cell.floor_memory), []).append(cell)
    for group in by_memory.values():
        fastest = max(group, key=lambda cell: cell.fraction_of_floor or 0.0)
        lead = fastest.fraction_of_floor or 0.0
        if lead <= 1.0:
            continue
        method = (
            f"{fastest.adapter} on {fastest.device} (a strategy; {lead:.3g}x the floor kernel timed beside it: "
            f"{fastest.floor_method})"
        )
        for cell in group:
            cell.fraction_of_floor = (cell.fraction_of_floor or 0.0) / lead
            cell.floor_gbps = (cell.floor_gbps or 0.0) * lead
            cell.floor_median_s = (cell.floor_median_s or 0.0) / lead
            cell.floor_method = method


# -- a grid of cells ------------------------------------------------------------
@dataclass(frozen=True)
class GridCell:
    """One cell of a grid: an adapter on a shape (named by its class) and dtype."""

    adapter: Adapter
    shape_class: str
    shape: Shape
    dtype: str


@dataclass
class GridResult:
    """Each cell's result in the grid's order, and every floor measured on the way."""

    cells: list[tuple[GridCell, CellResult]] = field(default_factory=list)
    # (shape class, dtype, "<hardware>/<memory owner>", floor or None)
    floors: list[tuple[str, str, str, Floor | None]] = field(default_factory=list)


Progress = Callable[[int, int, str], None]


class GridInterrupted(KeyboardInterrupt):
    """``measure_grid`` interrupted (Ctrl-C): ``partial`` holds the cells measured so far, of ``total``."""

    def __init__(self, partial: GridResult, total: int) -> None:
        super().__init__(f"interrupted after {len(partial.cells)} of {total} cells")
        self.partial, self.total = partial, total


def measure_grid(
    cells: Sequence[GridCell],
    *,
    budget: Budget = DEFAULT_BUDGET,
    seed: int = 0,
    threads: int | None = None,
    progress: Progress | None = None,
) -> GridResult:
    """Measure ``cells``, sharing inputs, oracle check and floors per (shape, dtype): ``xbackend compare``, ``xbackend tune`` and asv.

    CPU adapters are pinned to ``threads`` (default: every CPU) first, so every
    caller measures with the same thread pools.
    """
    pin_cpu_threads([cell.adapter for cell in cells], threads or cpu_count())
    groups: dict[tuple[Shape, str], list[int]] = {}
    for index, cell in enumerate(cells):
        groups.setdefault((tuple(cell.shape), cell.dtype), []).append(index)
    measured: dict[int, CellResult] = {}
    result = GridResult()
    try:
        for (shape, dtype), members in groups.items():
            _measure_group(cells, members, shape, dtype, seed, budget, measured, result, progress)
    except KeyboardInterrupt as exc:
        # Ctrl-C: hand back every cell measured so far (grid order), with its group's floors.
        done = [(cell, measured[index]) for index, cell in enumerate(cells) if index in measured]
        raise GridInterrupted(GridResult(done, result.floors), len(cells)) from exc
    result.cells = [(cell, measured[index]) for index, cell in enumerate(cells)]
    if progress:
        progress(len(cells), len(cells), "done")
    return result


def _measure_group(
    cells: Sequence[GridCell],
    members: list[int],
    shape: Shape,
    dtype: str,
    seed: int,
    budget: Budget,
    measured: dict[int, CellResult],
    result: GridResult,
    progress: Progress | None,
) -> None:
    """Measure the cells of one (shape, dtype) into ``measured``; its floors join ``result`` even if interrupted."""
    first = cells[members[0]]
    if progress:
        progress(len(measured), len(cells), f"inputs {first.shape_class} {dtype}")
    shared = SharedInputs(shape, dtype, seed, budget)
    try:
        try:  # every memory's floor first, in the same rounds: the allocator figures
            shared.measure_floors([cells[index].adapter for index in members])
        except Exception:  # measure_cell measures each again for its cell and records why it failed
            pass
        for index in members:
            cell = cells[index]
            if progress:
                progress(
                    len(measured), len(cells), f"{cell.adapter.name} {cell.adapter.device} {cell.shape_class} {dtype}"
                )
            measured[index] = shared.measure(cell.adapter, cell.shape_class)
    finally:
        result.floors += [(first.shape_class, dtype, key, floor) for key, floor in shared.floors.items()]
        best_floor([measured[index] for index in members if index in measured])


# -- thread scaling -------------------------------------------------------------
@dataclass(frozen=True)
class ThreadPoint:
    """One cell's GB/s and the CPU floor's at a fixed thread count (``xbackend compare --scaling``).

    The floor counts only kernels of libraries whose thread pools obey the
    count (``honours_cpu_threads``; XLA:CPU's does not); where the cell beats
    them, it is the floor, as in ``best_floor``. ``honours_threads`` says
    whether the cell's own framework obeys the count.
    """

    adapter: str
    threads: int
    honours_threads: bool
    gbps: float | None = None
    median_s: float | None = None
    noise: float | None = None
    floor_gbps: float | None = None
    floor_method: str | None = None
    fraction_of_floor: float | None = None
    error: str | None = None


def thread_counts(limit: int | None = None) -> list[int]:
    """1, 2, 4, ... up to ``limit`` (default: every CPU), ``limit`` itself included."""
    limit = limit or cpu_count()
    counts = [1 << i for i in range(limit.bit_length()) if 1 << i < limit]
    return counts + [limit]


def pin_cpu_threads(adapters: Sequence[Adapter], threads: int) -> None:
    """``fix_cpu_threads(threads)`` on each CPU adapter: every caller pins through here."""
    for adapter in {id(adapter): adapter for adapter in adapters}.values():
        if adapter.device == "cpu":
            adapter.fix_cpu_threads(threads)


def _honours_threads(adapter: Adapter, x: Any, y: Any) -> bool:
    """Whether what runs on ``x``, ``y`` obeys the thread count: for ``mul_sum``, the strategy it chooses."""
    if isinstance(adapter, Selected):
        return STRATEGIES[choose(x, y).strategy].honours_cpu_threads
    return adapter.honours_cpu_threads


def measure_at_threads(
    adapter: Adapter,
    shape: Shape,
    dtype: str,
    threads: int,
    *,
    budget: Budget = QUICK_BUDGET,
    inputs: tuple[np.ndarray, np.ndarray] | None = None,
    seed: int = 0,
) -> ThreadPoint:
    """GB/s of CPU ``adapter`` on ``shape`` and of the floor, both pinned to ``threads``; every CPU again after.

    Never raises for a failure of the adapter: the point records it.
    """
    if adapter.device != "cpu":
        raise ValueError(f"thread scaling is for CPU adapters; {adapter.name} runs on {adapter.device}")
    point = ThreadPoint(adapter.name, threads, adapter.honours_cpu_threads)
    floors = [floor for floor in floor_adapters("cpu") if floor.honours_cpu_threads]
    a, b = inputs if inputs is not None else host_inputs(shape, dtype, seed)
    copies = cache_state(adapter, shape, dtype).copies
    try:
        pin_cpu_threads([adapter, *floors], threads)
        x, y = adapter.asarray(a), adapter.asarray(b)
        point = replace(point, honours_threads=_honours_threads(adapter, x, y))
        timing = time_mul_sum(adapter, x, y, budget=budget, copies=copies)
        del x, y
        floor = measure_floor(floors, a, b, budget=budget, copies=copies, memory_of=adapter)
    except Exception as exc:  # the scaling table goes on
        return ThreadPoint(adapter.name, threads, point.honours_threads, error=f"{type(exc).__name__}: {exc}")
    finally:
        pin_cpu_threads([adapter, *floors], cpu_count())
        gc.collect()
    gbps = bytes_moved(shape, dtype) / timing.median_s / 1e9
    floor_gbps, method = floor.gbps, floor.method
    if gbps > floor_gbps:
        floor_gbps, method = gbps, f"{adapter.name} itself (faster than every kernel, best {floor.gbps:.4g} GB/s)"
    return ThreadPoint(
        adapter.name,
        threads,
        point.honours_threads,
        gbps,
        timing.median_s,
        timing.noise,
        floor_gbps,
        method,
        gbps / floor_gbps,
    )
