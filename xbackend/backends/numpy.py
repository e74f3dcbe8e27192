"""NumPy: ``np.einsum('i...,i...->...')``, the fastest correct NumPy formulation.

``np.einsum`` streams both inputs once with no N x K temporary; ``(a*b).sum(0)``
writes and re-reads that temporary and measured ~3x slower on a 2-core CPU. For
float16 and bfloat16 (``np.einsum`` rejects bfloat16, and NumPy's own axis-0
float16 sum accumulates row by row in float16), blocks of rows are upcast to
float32 and einsum'd, so accumulation stays in float32 and the extra memory is
bounded by one block.

``numpy-threads`` runs the same einsum on every allowed core: ``np.einsum``
has no threads of its own but releases the GIL, so row blocks (column blocks
where the kept axis is long) on a persistent thread pool each stream their
share, and T partial results (T x K extra memory) are added. One thread
streams ~10-12 GB/s on a 2-vCPU Xeon VM; the memory system gives ~2x that to two.
A block of short rows (K <= 2048) is summed as rows of ~4096 lanes, each lane
one column of several whole rows, so that einsum's inner loop is long.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..core.dtypes import numpy_dtype, numpy_dtype_name
from ..core.probes import MemoryUse, cpu_count, cpu_l2_cache_bytes
from ..core.semantics import Plan
from ..core.shapes import sub_block_rows
from .base import Adapter, Library, host_device

if TYPE_CHECKING:
    from .numba_kernels import OpenMPTeam


def broadcast_inputs(a: np.ndarray, b: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as views of ``plan.full_shape`` in ``plan.out_dtype`` (a copy only when casting)."""
    dtype = numpy_dtype(plan.out_dtype)
    return _read_only(a.astype(dtype, copy=False), plan.full_shape), _read_only(
        b.astype(dtype, copy=False), plan.full_shape
    )


def _read_only(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A read-only view of ``x`` broadcast to ``shape``, as ``np.broadcast_to`` gives.

    An input of that shape already takes a plain view: ``np.broadcast_to``
    costs tens of microseconds in the Python right after a streaming call.
    """
    if x.shape != shape:
        return np.broadcast_to(x, shape)
    view = x.view(np.ndarray)
    view.flags.writeable = False
    return view


class NumpyAdapter(Adapter):
    name = "numpy"
    framework = "numpy"
    devices = ("cpu",)
    install_hint = "pip install numpy"
    formulation = "np.einsum('i...,i...->...', a, b); float16/bfloat16 upcast to float32 by row blocks"

    def asarray(self, host: np.ndarray) -> np.ndarray:
        return np.array(host, copy=True)

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def synchronize(self, *arrays: Any) -> None:
        """NumPy computes synchronously."""

    def is_native(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def dtype_name(self, x: np.ndarray) -> str:
        return numpy_dtype_name(x.dtype)

    def device_of(self, x: np.ndarray) -> str:
        return "cpu"

    def _zeros(self, plan: Plan, like: Any) -> np.ndarray:
        return np.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))

    # -- measurement hooks --------------------------------------------------
    def extra_memory(self, a: np.ndarray, b: np.ndarray) -> MemoryUse:
        # NumPy reports every data buffer to tracemalloc, so its peak counts the
        # temporaries exactly (objects Python allocates for the call are noise).
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            out = self.mul_sum(a, b)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            if not was_tracing:
                tracemalloc.stop()
        return MemoryUse(out, max(0, peak - before - out.nbytes), "tracemalloc peak (NumPy data buffers)")

    def host_view(self, x: np.ndarray) -> np.ndarray:
        return x

    def from_host_view(self, view: np.ndarray) -> np.ndarray:
        return view

    honours_cpu_threads = True
    # Set by fix_cpu_threads: the threads of the floor's chunk dots and of numpy-threads.
    threads: int | None = None

    def floor_kernels(self) -> dict[str, Callable[[Any, Any], Any]]:
        threads = self.threads or cpu_count()
        kernels = {
            # BLAS is one implementation; np.einsum's own SIMD loop on every core is another.
            f"np.einsum dot in {threads} row chunks on {threads} threads": functools.partial(
                _threaded_einsum_dot, threads=threads
            ),
        }
        if threads < cpu_count() and _threadpoolctl() is None:
            return kernels  # BLAS cannot be pinned to fewer threads: np.dot would not honour the count
        return {f"np.dot ({_blas_description()})": lambda x, y: np.dot(x.ravel(), y.ravel())} | kernels

    def fix_cpu_threads(self, threads: int) -> None:
        self.threads = threads
        threadpoolctl = _threadpoolctl()
        if threadpoolctl is not None:
            threadpoolctl.threadpool_limits(limits=threads, user_api="blas")

    def thread_report(self) -> dict[str, Any]:
        return {
            "blas": _blas_description(),
            "einsum": "single-threaded (NumPy's einsum and ufunc loops run on one thread)",
        }

    def _compute(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
        return numpy_mul_sum(a, b, plan)

    def kernel(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> Callable[[Any, Any], Any]:
        # Same dtype and shape, nothing to cast or broadcast: np.einsum itself,
        # so that dispatch adds nothing to a tiny call.
        direct = (
            a.shape == b.shape == plan.full_shape
            and a.ndim > 1
            and plan.n > 0
            and a.dtype == b.dtype == numpy_dtype(plan.out_dtype)
            and plan.acc_dtype == plan.out_dtype
            and sub_block_rows(plan.full_shape, copies=False) >= plan.n
        )
        if not direct:
            return super().kernel(a, b, plan)
        # The cached kernel serves later inputs of this shape whatever their strides: a
        # row repeated by np.broadcast_to takes the products' way (_block_sum).
        return lambda x, y: numpy_mul_sum(x, y, plan) if _repeats_a_row(x, y) else np.einsum("i...,i...->...", x, y)


def numpy_mul_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """The NumPy strategy on validated NumPy inputs (``torch-numpy`` and ``jax-numpy`` run it on views)."""
    return in_result_dtype(accumulated_mul_sum(a, b, plan), plan)


def in_result_dtype(acc: np.ndarray, plan: Plan) -> np.ndarray:
    """The accumulated sum rounded to the result dtype: a float16 sum past 65504 is inf, silently as in np.einsum."""
    with np.errstate(over="ignore"):
        return acc.astype(numpy_dtype(plan.out_dtype), copy=False)


def accumulated_mul_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """The NumPy strategy's sum, left in ``plan.acc_dtype`` (dask sums these per chunk)."""
    a, b = broadcast_inputs(a, b, plan)
    return _block_sum(a, b, plan)


def _block_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """The sum over dim 0 of one block of broadcast inputs, in ``plan.acc_dtype``.

    Summed by sub-blocks of rows whose sums are added: np.einsum adds rows of
    K > 1 into one running sum per output (C order, and strided or broadcast
    views), which past 2**24 rows stops growing in float32. In sub-blocks the
    error grows with the rows of one sub-block plus their count, not with N.
    """
    acc_dtype = numpy_dtype(plan.acc_dtype)
    if plan.acc_dtype != plan.out_dtype:  # each sub-block upcast: one copy of ~1 MiB
        rows = sub_block_rows(a.shape, copies=True)
        return _by_sub_blocks(a, b, rows, acc_dtype, lambda x, y: _einsum(x.astype(acc_dtype), y.astype(acc_dtype)))
    if _repeats_a_row(a, b):  # each sub-block's products formed
        rows = sub_block_rows(a.shape, copies=True)
        return _by_sub_blocks(a, b, rows, acc_dtype, lambda x, y: np.add.reduce(np.multiply(x, y), axis=0))
    if math.prod(a.shape[1:]) == 1:  # a column: einsum's dot keeps partial sums itself
        return np.asarray(_einsum(a, b))
    return _by_sub_blocks(a, b, sub_block_rows(a.shape, copies=False), acc_dtype, _einsum)


def _einsum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("i...,i...->...", a, b)


def _by_sub_blocks(
    a: np.ndarray,
    b: np.ndarray,
    rows: int,
    acc_dtype: np.dtype,
    sum_block: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """The sum over dim 0 as the sum of ``sum_block`` over sub-blocks of ``rows`` rows; silent like np.einsum on
    overflow and inf - inf."""
    with np.errstate(**_IEEE_QUIET):  # the products formed here too (a repeated row), not only the adds
        if a.shape[0] <= rows:
            return np.asarray(sum_block(a, b), dtype=acc_dtype)
        total = np.zeros(a.shape[1:], acc_dtype)
        for start in range(0, a.shape[0], rows):
            total += sum_block(a[start : start + rows], b[start : start + rows])
    return total


def _repeats_a_row(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether an input repeats one row over dim 0 (stride 0 there: broadcast, or ``np.broadcast_to``).

    Where its loop runs along dim 0, np.einsum sums such a reduction as the
    repeated value times the other input's sum: -inf times rows of both signs
    gave -inf where the products (inf and -inf) sum to NaN, and a product that
    overflows was never formed. It does so for 1-D inputs, N x 1, and a row
    broadcast against a Fortran-ordered input. So such blocks form every product
    (``_block_sum``), one sub-block at a time.
    """
    return a.shape[0] > 1 and not (a.strides[0] and b.strides[0])


# -- numpy-threads: the NumPy strategy on every allowed core --------------------
# Below this many input elements per thread, a thread costs more than it saves
# (a pool hand-off is ~20-50 us; one core streams ~1e5 float32 elements in that time).
_MIN_ELEMENTS_PER_THREAD = 1 << 17
# Column blocks (each thread owns a slice of the output, no partial sums) need
# row segments this long to stream well; shorter ones go to row blocks.
_MIN_COLUMN_BLOCK = 4096


def default_threads() -> int:
    """Threads numpy-threads uses: every CPU of this process's affinity mask, capped by ``OMP_NUM_THREADS``.

    ``OMP_NUM_THREADS`` is the conventional user limit for every CPU pool; a
    value that is not a positive integer is ignored. ``fix_cpu_threads``
    (``xbackend compare --threads``) overrides it per adapter.
    """
    limit = os.environ.get("OMP_NUM_THREADS", "")
    cap = int(limit) if limit.strip().isdigit() and int(limit) > 0 else None
    return min(cpu_count(), cap) if cap else cpu_count()


def threaded_mul_sum(a: np.ndarray, b: np.ndarray, plan: Plan, threads: int) -> np.ndarray:
    """The NumPy strategy split over ``threads`` threads (np.einsum releases the GIL); no N x K temporary.

    Row blocks give each thread a partial sum (T x K extra memory, then added);
    where the kept axis is long (short-wide), column blocks along axis 1 give
    each thread its own slice of the output instead. One block per thread: 4
    per thread from one queue (meant to let a running thread take over a
    descheduled one's share) measured no faster and up to 25% slower while
    other processes kept both cores of a 2-vCPU VM busy; each block's hand-back
    takes the GIL, which a descheduled thread may hold.
    ``torch-numpy`` and ``jax-numpy`` run it on zero-copy views of their arrays.
    """
    a, b = broadcast_inputs(a, b, plan)
    threads = _useful_threads(plan, threads)
    if threads == 1:
        out = _lane_sum(a, b, plan)
    elif _column_blocks(plan, threads):
        out = _by_column_blocks(a, b, plan, threads)
    else:
        out = _by_row_blocks(a, b, plan, threads)
    return in_result_dtype(np.asarray(out), plan)


def _useful_threads(plan: Plan, threads: int) -> int:
    return max(1, min(threads, math.prod(plan.full_shape) // _MIN_ELEMENTS_PER_THREAD))


def _column_blocks(plan: Plan, threads: int) -> bool:
    shape = plan.full_shape
    k = math.prod(shape[1:])
    return len(shape) > 1 and shape[1] >= threads and k >= plan.n and k // threads >= _MIN_COLUMN_BLOCK


def _bounds(size: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, size, parts + 1, dtype=np.int64)
    return [(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo]


def _by_row_blocks(a: np.ndarray, b: np.ndarray, plan: Plan, threads: int) -> np.ndarray:
    """One row block per thread, one partial sum each (T x K extra), added."""
    bounds = _bounds(plan.n, threads)
    partials = _on_threads(lambda rows: _lane_sum(a[rows[0] : rows[1]], b[rows[0] : rows[1]], plan), bounds)
    return _add_partials(partials)


# Adding partial sums is silent like np.einsum on inf - inf and overflow: IEEE results, no warning.
_IEEE_QUIET = {"invalid": "ignore", "over": "ignore"}


def _add_partials(partials: Iterable[np.ndarray]) -> np.ndarray:
    with np.errstate(**_IEEE_QUIET):
        return functools.reduce(np.add, partials)


def _fold_lanes(lanes: np.ndarray, rows_per_lane_row: int, out_shape: tuple[int, ...]) -> np.ndarray:
    """Each column's sum from its lanes (lane l holds column l % K)."""
    with np.errstate(**_IEEE_QUIET):
        return lanes.reshape(rows_per_lane_row, *out_shape).sum(axis=0)


# Rows of fewer elements than this are summed as rows of this many lanes (whole rows
# each): np.einsum's inner loop then runs over thousands of contiguous elements
# instead of K per row, and the lanes that hold one column are added at the end.
# Measured single-threaded on a 2-vCPU Xeon VM: K = 8 went from 7.7 to 12.8 GB/s,
# K = 32 from 10.1 to 11.2; rows of 4096 (square) are unchanged.
_LANES = 4096


def _lane_layout(rows: int, k: int, lanes: int = _LANES) -> tuple[int, int]:
    """Whole rows per lane row of ``lanes`` lanes for rows of ``k`` elements (1: rows too long to regroup), and
    how many of ``rows`` fill whole lane rows."""
    per_lane_row = lanes // k if k <= lanes // 2 else 1
    return per_lane_row, rows // per_lane_row * per_lane_row


def numba_lanes(acc_itemsize: int) -> int:
    """Lanes per lane row of the numba kernel, whose partial sums are ``acc_itemsize`` bytes each.

    ``LANE_ROW_SUMS_BYTES`` of sums: they stay in L1, and lane rows follow each
    other in memory, so the kernel's input streams run on through a thread's
    whole block.
    """
    kernels = importlib.import_module("xbackend.backends.numba_kernels")
    return kernels.LANE_ROW_SUMS_BYTES // acc_itemsize


def _lane_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """``_block_sum`` of a row block, with short C-contiguous rows regrouped into rows of ~``_LANES`` lanes."""
    k = math.prod(a.shape[1:])
    short_rows = 1 < k <= _LANES // 2 and plan.acc_dtype == plan.out_dtype  # k = 1: einsum runs a dot
    if not (short_rows and a.flags.c_contiguous and b.flags.c_contiguous):
        return _chunked_sum(a, b, plan)
    rows_per_lane_row, whole = _lane_layout(a.shape[0], k)
    if whole == 0:
        return _block_sum(a, b, plan)
    width = rows_per_lane_row * k  # lane l holds column l % k of every row it covers
    lanes = np.einsum("ij,ij->j", a[:whole].reshape(-1, width), b[:whole].reshape(-1, width))
    out = _fold_lanes(lanes, rows_per_lane_row, a.shape[1:])
    if whole < a.shape[0]:
        out = _add_partials([out, _block_sum(a[whole:], b[whole:], plan)])
    return out


def _by_column_blocks(a: np.ndarray, b: np.ndarray, plan: Plan, threads: int) -> np.ndarray:
    """One slice of axis 1 per thread, each summed into its own slice of the output."""
    out = np.empty(plan.out_shape, dtype=numpy_dtype(plan.acc_dtype))

    def fill(columns: tuple[int, int]) -> None:
        lo, hi = columns
        out[lo:hi] = _chunked_sum(a[:, lo:hi], b[:, lo:hi], plan)

    _on_threads(fill, _bounds(plan.full_shape[1], threads))
    return out


# np.einsum reads and writes a block's partial sums once per row: rows longer than
# the core's L2 send that traffic to the shared cache or memory, beside the input
# streams. Column chunks of 1/8 of L2 keep it in L2. Measured on a 2-vCPU Xeon VM
# (2 MiB L2), 64 x 1e6 float32: whole rows 12.0-12.2 GB/s on one thread and 18.2 on
# two; 256 KiB chunks 13.0-13.8 and 18.7-21.2 (1/16 and 1/4 of L2: no better).
_L2_FRACTION = 8
_L2_WHEN_UNKNOWN = 1 << 20


def _chunk_elements(itemsize: int) -> int:
    """Partial sums per column chunk: about ``L2 / _L2_FRACTION`` bytes of them."""
    return max(1, (cpu_l2_cache_bytes() or _L2_WHEN_UNKNOWN) // _L2_FRACTION // itemsize)


def _chunk_columns(a: np.ndarray, plan: Plan) -> int:
    """Indices of axis 1 per column chunk of ``a``."""
    return max(1, _chunk_elements(numpy_dtype(plan.acc_dtype).itemsize) // max(1, math.prod(a.shape[2:])))


def _chunked_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """``_block_sum`` of one block, in chunks of axis 1 whose partial sums stay in the core's L2."""
    width = _chunk_columns(a, plan)
    if a.ndim < 2 or a.shape[0] < 2 or a.shape[1] <= width:
        return _block_sum(a, b, plan)
    out = np.empty(a.shape[1:], dtype=numpy_dtype(plan.acc_dtype))
    for lo in range(0, a.shape[1], width):
        out[lo : lo + width] = _block_sum(a[:, lo : lo + width], b[:, lo : lo + width], plan)
    return out


_POOLS: dict[int, ThreadPoolExecutor] = {}
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")
# A forked child has none of its parent's threads: a pool inherited from it would
# queue work that no thread runs (the call hung). The child starts pools of its own.
os.register_at_fork(after_in_child=_POOLS.clear)


def _pool(threads: int) -> ThreadPoolExecutor:
    """A persistent pool of ``threads`` workers (made once per count: a pool's start-up costs more than a small call)."""
    return _POOLS.get(threads) or _POOLS.setdefault(threads, ThreadPoolExecutor(threads, "xbackend-numpy"))


def _on_threads(work: Callable[[_Item], _Result], items: Sequence[_Item]) -> list[_Result]:
    """``work`` of each item, each on a thread of its own: the first on the calling thread, the rest on the pool.

    Waking a pool worker took 70 us warm and 200-300 us after a streaming
    call on a 2-vCPU AMD EPYC VM (a futex and a GIL hand-off each); the
    calling thread starts its share at once while the others wake, instead
    of waiting for all of them.
    """
    if len(items) < 2:
        return [work(item) for item in items]
    pool = _pool(len(items) - 1)
    futures = [pool.submit(work, item) for item in items[1:]]
    try:
        first = work(items[0])
    except BaseException:
        wait(futures)  # no worker may outlive the call that owns its buffers
        raise
    return [first, *(future.result() for future in futures)]


# -- numpy-numba: numpy-threads' blocks, each summed by a numba kernel -----------
# np.einsum adds one row at a time into the partial sums; the kernel adds two, half
# the block apart, and reads lane rows as a dot does (numba_kernels.rows_into). With
# four rows a pass throughout (an earlier kernel), measured interleaved on a 2-vCPU Xeon VM, 2 threads,
# float32 (21 rounds, 3 rotating input pairs, median GB/s): square 4096 x 4096
# 18.2 -> 25.7, tall-skinny 1e6 x 32 22.0 -> 29.4, short-wide 64 x 1e6 17.9 -> 25.5,
# column 16e6 x 1 17.3 -> 22.7.
NUMBA_DTYPES = frozenset({"float32", "float64", "complex64", "complex128"})
# Summed in float32, widened element by element inside the kernel: on the same VM
# (4096 x 4096, 2 threads, 30 interleaved rounds over 10 input pairs) float16 read
# 27.4 GB/s and bfloat16 28.4 against float32's 29.2, where numpy-threads' upcast
# blocks read 1.2-1.5 GB/s. float16 by LLVM's own widening (F16C): a hand-written
# bit conversion measured 9.9 GB/s.
NUMBA_HALF_DTYPES = frozenset({"float16", "bfloat16"})


def _numba_sums(plan: Plan) -> bool:
    """Whether the kernel computes ``plan``: its own dtype throughout, or half precision summed in float32."""
    if plan.out_dtype in NUMBA_DTYPES:
        return plan.acc_dtype == plan.out_dtype
    return plan.out_dtype in NUMBA_HALF_DTYPES and plan.acc_dtype == "float32"


_NUMBA_LOADED: set[str] = set()


def _numba_load_s(plan: Plan) -> float | None:
    """Seconds to compile (or load from disk) the numba kernel for ``plan``'s dtypes; None once it is loaded."""
    if plan.out_dtype in _NUMBA_LOADED:
        return None
    start = time.perf_counter()
    kernels = importlib.import_module("xbackend.backends.numba_kernels")
    kernels.load(numpy_dtype(plan.out_dtype), numpy_dtype(plan.acc_dtype))
    _NUMBA_LOADED.add(plan.out_dtype)
    return time.perf_counter() - start


def numba_unavailable_reason() -> str | None:
    """Why the numba kernel cannot run here (numba missing, or failing to import), or None."""
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed: pip install numba"
    try:
        kernels = importlib.import_module("xbackend.backends.numba_kernels")
    except Exception as exc:  # e.g. a numba too old for this NumPy: it refuses to import
        return f"numba failed to import: {exc}"
    if kernels.numba.config.DISABLE_JIT:  # the kernel would run as Python loops, ~100x slower than numpy-threads
        return "NUMBA_DISABLE_JIT is set: the kernel would run uncompiled, as Python"
    return None


# On the CPU JAX holds a host array whose data is 64-byte aligned without a copy, and
# copies any other: 0.35 against 0.14 ms for a 1e6-element bfloat16 result, measured
# right after the kernel on a 2-vCPU Xeon VM (jax 0.10).
_RESULT_ALIGNMENT = 64


def _aligned_empty(k: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised 1-D array of ``k`` elements of ``dtype`` whose data is ``_RESULT_ALIGNMENT``-byte aligned."""
    raw = np.empty(k * dtype.itemsize + _RESULT_ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _RESULT_ALIGNMENT
    return raw[start : start + k * dtype.itemsize].view(dtype)


def numba_threaded_mul_sum(
    a: np.ndarray, b: np.ndarray, plan: Plan, threads: int, team: OpenMPTeam | None = None
) -> np.ndarray:
    """numpy-threads' row (or column) blocks on ``threads`` threads, each summed by the numba kernel.

    C-contiguous inputs that the kernel sums (``_numba_sums``) only: it reads
    rows as contiguous runs. Any other input (broadcast, strided, mixed
    precisions, integer) runs ``threaded_mul_sum``. Half-precision sums are
    rounded to the result by ``narrow_into``, column blocks each on their thread.
    The blocks run on numpy-threads' pool, or on ``team`` (an OpenMP runtime's
    own threads: torch-numba's, on torch's workers) where one is given.
    """
    a, b = broadcast_inputs(a, b, plan)
    k = math.prod(plan.out_shape)
    if not (_numba_sums(plan) and k and plan.n and a.flags.c_contiguous and b.flags.c_contiguous):
        return threaded_mul_sum(a, b, plan, threads)
    kernels = importlib.import_module("xbackend.backends.numba_kernels")
    a2, b2 = kernels.kernel_view(a.reshape(plan.n, k)), kernels.kernel_view(b.reshape(plan.n, k))
    acc_dtype = numpy_dtype(plan.acc_dtype)
    threads = _useful_threads(plan, threads)
    # Half precision: the kernel also rounds the float32 sums into the result (NumPy's cast is software).
    result = None if plan.out_dtype == plan.acc_dtype else _aligned_empty(k, numpy_dtype(plan.out_dtype))
    result_bits = None if result is None else kernels.kernel_view(result)
    by_columns = threads > 1 and _column_blocks(plan, threads)
    chunk = _chunk_elements(acc_dtype.itemsize)
    if not by_columns:
        acc = _numba_row_shares(kernels, a2, b2, acc_dtype, threads, chunk, team)
        if result_bits is not None:
            kernels.narrow_into(acc, result_bits, 0, k)
        return (acc if result is None else result).reshape(plan.out_shape)
    jobs, acc = _numba_column_jobs(kernels, a2, b2, acc_dtype, result_bits, threads)
    _run_numba_jobs(kernels, jobs, chunk, team)
    return (acc if result is None else result).reshape(plan.out_shape)


def _run_numba_jobs(kernels: Any, jobs: list[list[Any]], chunk: int, team: Any) -> None:
    """``jobs[t]`` on thread ``t``: of ``team`` (an OpenMP runtime's threads) where one is given and there are
    several, else the calling thread and numpy-threads' pool."""
    if team is not None and len(jobs) > 1:
        team.run(jobs, chunk)
    else:
        _on_threads(lambda own: kernels.run_jobs(own, chunk), jobs)


def _numba_row_shares(
    kernels: Any, a2: np.ndarray, b2: np.ndarray, acc_dtype: np.dtype, threads: int, chunk: int, team: Any = None
) -> np.ndarray:
    """One block of rows per thread, each summed by one compiled call (``row_share_into``) into partial sums of
    its own, then added by another: the Python around a call is a few lines, not a list of jobs per thread.

    That Python runs right after a streaming call has evicted the interpreter's
    caches: building the jobs and folding the lanes took 250-350 us of a 4.4
    ms call on a 2-vCPU AMD EPYC VM. The blocks run on numpy-threads' pool, or
    on ``team`` (an OpenMP runtime's threads) where one is given.
    """
    n, k = a2.shape
    shares = _row_shares(n, threads)
    stride = _padded(k, acc_dtype.itemsize)  # each thread's sums on cache lines of their own
    sums = _aligned_empty(stride * len(shares), acc_dtype)
    per_lane_row = _lane_layout(n, k, numba_lanes(acc_dtype.itemsize))[0]
    # Allocated before the threads run: right after them, with the interpreter's
    # caches evicted by the stream, the same allocation took 60-90 us, not 12.
    out = sums[:k] if len(shares) == 1 else _aligned_empty(k, acc_dtype)
    jobs = [[kernels.ShareJob(a2, b2, sums[t * stride : t * stride + k], lo, hi, per_lane_row)] for lo, hi, t in shares]
    _run_numba_jobs(kernels, jobs, chunk, team)
    if len(shares) > 1:
        kernels.add_shares_into(sums, stride, len(shares), out)
    return out


@functools.lru_cache(maxsize=64)
def _row_shares(n: int, threads: int) -> tuple[tuple[int, int, int], ...]:
    """``(row_lo, row_hi, thread)`` of each thread's block of ``n`` rows (none empty)."""
    return tuple((lo, hi, index) for index, (lo, hi) in enumerate(_bounds(n, threads)))


def _padded(k: int, itemsize: int) -> int:
    """``k`` rounded up to whole ``_RESULT_ALIGNMENT``-byte lines of ``itemsize``-byte elements."""
    per_line = max(1, _RESULT_ALIGNMENT // itemsize)
    return -(-k // per_line) * per_line


def _numba_column_jobs(
    kernels: Any, a2: np.ndarray, b2: np.ndarray, acc_dtype: np.dtype, result_bits: np.ndarray | None, threads: int
) -> tuple[list[list[Any]], np.ndarray]:
    """One slice of axis 1 per thread, summed into its own slice of the sums (and rounded there, in half precision)."""
    n, k = a2.shape
    # Zeroed by each thread, not by np.zeros: a large calloc maps fresh pages on
    # every call, whose faults cost ~0.2 ms per 4 MB on a 2-vCPU Xeon VM.
    acc = _aligned_empty(k, acc_dtype)
    jobs = []
    for lo, hi in _bounds(k, threads):
        own = [kernels.RowsJob(a2, b2, acc[lo:hi], 0, n, lo, hi, zero=True)]
        if result_bits is not None:
            own.append(kernels.NarrowJob(acc, result_bits, lo, hi))
        jobs.append(own)
    return jobs, acc


def _threaded_einsum_dot(x: np.ndarray, y: np.ndarray, *, threads: int) -> float:
    """The dot of flattened ``x`` and ``y`` as ``threads`` chunk dots (np.einsum releases the GIL), summed."""
    x, y = x.reshape(-1), y.reshape(-1)
    chunks = [(x[lo:hi], y[lo:hi]) for lo, hi in _bounds(x.size, threads)]
    return float(sum(_on_threads(lambda pair: np.einsum("i,i->", *pair), chunks)))


def _threadpoolctl() -> Any:
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def _blas_description() -> str:
    """NumPy's BLAS library and its thread count, via threadpoolctl."""
    threadpoolctl = _threadpoolctl()
    if threadpoolctl is None:
        return "BLAS threads unknown: threadpoolctl is not installed"
    libraries = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    # Other frameworks may load their own BLAS; NumPy's lives in NumPy's wheel.
    own = [info for info in libraries if "numpy" in info["filepath"]] or libraries
    if not own:
        return "no BLAS library found by threadpoolctl"
    info = own[0]
    return (
        f"{info['internal_api']} {info['version']}, {info['num_threads']} threads ({info.get('threading_layer', '?')})"
    )


class NumpyThreadsAdapter(NumpyAdapter):
    name = "numpy-threads"
    formulation = (
        "np.einsum over row blocks (column blocks where K is long; short rows regrouped into ~4096-element rows) "
        "on a persistent thread pool of every allowed core, partial sums added (T x K extra); float16/bfloat16 "
        "upcast to float32 by row blocks"
    )

    # The blocks' sum: np.einsum here, the numba kernel in numpy-numba.
    host_mul_sum = staticmethod(threaded_mul_sum)
    blocks_summed_by = "np.einsum per block"

    def thread_report(self) -> dict[str, Any]:
        threads = self.threads or default_threads()
        return NumpyAdapter.thread_report(self) | {self.name: f"{threads} threads ({self.blocks_summed_by})"}

    def _compute(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
        return self.host_mul_sum(a, b, plan, self.threads or default_threads())

    def kernel(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> Callable[[Any, Any], Any]:
        return Adapter.kernel(self, a, b, plan)  # never the single-threaded direct einsum


class NumbaKernel:
    """What the ``*-numba`` strategies share: numpy-numba's blocks, available where numba runs compiled.

    Mixed in before a strategy that sums NumPy arrays or views with
    ``host_mul_sum`` (numpy-threads, torch-numpy, jax-numpy).
    """

    install_hint = "pip install numba"
    host_mul_sum = staticmethod(numba_threaded_mul_sum)

    def prepare(self, a: Any, b: Any) -> float | None:
        """Load the kernel for the inputs' dtype: seconds spent, or None where it was loaded or is not used."""
        plan = self.plan(a, b)
        if not _numba_sums(plan):
            return None
        spent = [seconds for seconds in (_numba_load_s(plan), self._load_team_entry(plan)) if seconds is not None]
        return sum(spent) if spent else None

    def _load_team_entry(self, plan: Plan) -> float | None:
        """Seconds to load what runs the blocks on another library's threads (none here), or None."""
        return None

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        return numba_unavailable_reason() or super()._device_unavailable_reason(device)


class NumpyNumbaAdapter(NumbaKernel, NumpyThreadsAdapter):
    name = "numpy-numba"
    formulation = (
        "numpy-threads' blocks, each summed by a numba kernel (nogil, cached on disk) that adds lane rows of "
        "4 KiB of sums and longer rows two per pass, half the block apart, into column chunks of L2/8; C-contiguous "
        "float32/float64/complex64/complex128 inputs, and float16/bfloat16 widened to float32 in the kernel; "
        "others: numpy-threads"
    )
    blocks_summed_by = "a numba kernel per block"


LIBRARY = Library(
    name="numpy",
    strategies=(NumpyAdapter, NumpyThreadsAdapter, NumpyNumbaAdapter),
    default_strategy="numpy",
    devices={"cpu": "cpu"},
    device_kind=host_device,
    # NumPy scalars count as NumPy so that dispatch can refuse them by name.
    array_types=(("numpy", "ndarray"), ("numpy", "generic")),
    floor_strategy="numpy",
    distributions=("numpy", "numba"),
)
