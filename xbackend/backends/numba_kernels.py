"""The numba kernel of the ``*-numba`` strategies, imported only when one of them runs.

Kept apart from ``numpy.py`` because ``numba.njit`` needs ``numba`` at import
time, and numba is optional. ``nogil``: the strategies run the kernel on
numpy-threads' pool, one block per thread (numba's own ``parallel=True``
would start a second pool whose spinning threads slow the first: on a 2-vCPU
VM its OpenMP layer halved numpy-threads' rate in the same process).
``cache``: the compiled code is kept on disk (numba's cache, beside this file
or under ``NUMBA_CACHE_DIR``), so a dtype compiles once per machine (~0.7 s)
and later processes load it (~0.1 s).

numba has no float16 or bfloat16 type, so half-precision inputs reach the
kernel as their bits (``kernel_view``) and are widened to float32 inside the
loop (``widen``; bfloat16 two columns per 32-bit word, ``_bfloat16_pairs_into``):
the N x K float32 copy that numpy-threads' upcast blocks write and re-read is
never made. The float32 sums are rounded
back to the input's format here too (``narrow_into``): NumPy's own float32 to
float16 cast is software, 2.5 ns an element, a sixth of a 64 x 1e6 call.
"""

from __future__ import annotations

import ctypes
import functools
import time
from collections.abc import Sequence
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import ccallback, sigutils
from numba.extending import intrinsic, overload

# Half-precision inputs travel as these integer views of their bits: one integer type
# per format, so that ``widen`` can tell them apart by type alone.
_BITS_OF = {"bfloat16": np.int16, "float16": np.uint16}


def kernel_view(x: np.ndarray) -> np.ndarray:
    """``x`` as the kernel reads it: itself, or the bits of a float16 or bfloat16 array (no copy)."""
    if x.dtype.itemsize != 2:  # a dtype's name costs microseconds in every call
        return x
    bits = _BITS_OF.get(x.dtype.name)
    return x if bits is None else x.view(bits)


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the low 32 bits of integer ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = builder.trunc(args[0], ir.IntType(32)) if bits.bitwidth > 32 else args[0]
        return builder.bitcast(low, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _float32_from_float16_bits(typingctx, bits):
    """The float16 with bits ``bits``, widened (exactly) to float32 by LLVM: one F16C instruction on x86."""
    if bits != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(bits), codegen


def widen(x: object) -> object:
    """An element as the kernel multiplies it: floats as they are, half-precision bits as float32 (numba only)."""
    raise TypeError("widen runs compiled, inside the numba kernel")


@overload(widen)
def _widen(x):
    if isinstance(x, types.Float | types.Complex):
        return lambda x: x
    if x == types.int16:  # bfloat16: the high 16 bits of a float32
        return lambda x: _float32_from_bits((np.uint32(x) & np.uint32(0xFFFF)) << np.uint32(16))
    if x == types.uint16:
        return lambda x: _float32_from_float16_bits(x)
    return None


@intrinsic
def _bits_of_float32(typingctx, value):
    """The bit pattern of float32 ``value``, as an unsigned 32-bit integer."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.uint32(value), codegen


@intrinsic
def _float16_bits_from_float32(typingctx, value):
    """The bits of float32 ``value`` rounded (nearest even) to float16 by LLVM: one F16C instruction on x86."""
    if value != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(builder.fptrunc(args[0], ir.HalfType()), ir.IntType(16))

    return types.uint16(value), codegen


def narrow(value: object, bits: object) -> object:
    """float32 ``value`` rounded to the format whose bits array is ``bits`` (numba only)."""
    raise TypeError("narrow runs compiled, inside the numba kernel")


@overload(narrow)
def _narrow(value, bits):
    if not isinstance(bits, types.Array):
        return None
    if bits.dtype == value:  # already the result's format (compiled into the team's entries of other dtypes)
        return lambda value, bits: value
    if value != types.float32:
        return None
    if bits.dtype == types.uint16:
        return lambda value, bits: _float16_bits_from_float32(value)
    if bits.dtype == types.int16:  # bfloat16: the high half, rounded to nearest even; NaN stays a quiet NaN

        def bfloat16_bits(value, bits):
            full = np.int64(_bits_of_float32(value))
            if value != value:
                return np.int16((full >> 16) | 0x40)
            return np.int16((full + 0x7FFF + ((full >> 16) & 1)) >> 16)

        return bfloat16_bits
    return None


@numba.njit(nogil=True, cache=True)
def narrow_into(acc: np.ndarray, bits: np.ndarray, lo: int, hi: int) -> None:
    """``bits[j]`` = the bits of float32 ``acc[j]`` rounded to nearest even in ``bits``' format, ``lo <= j < hi``."""
    for j in range(lo, hi):
        bits[j] = narrow(acc[j], bits)


# Lane rows (numpy.numba_lanes) hold this many bytes of partial sums: they stay in L1
# (32 KiB or more on x86) beside the lines streaming through, and the lane rows
# that follow each other in memory keep the input streams running on.
LANE_ROW_SUMS_BYTES = 4 * 1024


@numba.njit(nogil=True, cache=True)
def rows_into(
    a: np.ndarray, b: np.ndarray, acc: np.ndarray, row_lo: int, row_hi: int, col_lo: int, col_hi: int, chunk: int
) -> None:
    """``acc[j - col_lo] += sum(widen(a[i, j]) * widen(b[i, j]) for i in rows)`` for ``col_lo <= j < col_hi``.

    Columns in chunks of ``chunk``, so that the partial sums stay in the core's
    L2. Each pass adds two rows half the rows apart: four input streams, each
    running on from pass to pass (rows i and i + 1 are adjacent), the sums read
    and written once per two rows; an odd last row goes alone. Each product and
    sum is rounded on its own: no fastmath, so no FMA contraction or
    reassociation beyond the pairing, which the bound allows (any summation
    order).
    """
    # Two rows a pass against one and four, 2 threads on a 2-vCPU AMD EPYC VM, interleaved
    # (GB/s, float32; torch.dot over the same bytes beside them): in phases where the
    # VM's memory read fast, rows of 4096 one / two / four a pass 46-50 / 50-55 / 49-53
    # (dot 62-66), lane rows of 1024 55 / 59-61 / 51-53 (dot 65-67); in slow phases all
    # three within 3% of each other (dot ~37), two never the slowest, float16 likewise.
    half = (row_hi - row_lo) // 2
    for lo in range(col_lo, col_hi, chunk):
        hi = min(col_hi, lo + chunk)
        out = acc[lo - col_lo : hi - col_lo]
        if _widens_word_pairs(a, b) and a.shape[1] % 2 == 0 and lo % 2 == 0 and hi % 2 == 0:
            _bfloat16_pairs_into(a.view(np.uint32), b.view(np.uint32), out, row_lo, row_hi, lo // 2, hi // 2)
            continue
        for i in range(row_lo, row_lo + half):
            a0, a1, b0, b1 = a[i, lo:hi], a[i + half, lo:hi], b[i, lo:hi], b[i + half, lo:hi]
            for j in range(hi - lo):
                out[j] += widen(a0[j]) * widen(b0[j]) + widen(a1[j]) * widen(b1[j])
        if (row_hi - row_lo) % 2:
            a0, b0 = a[row_hi - 1, lo:hi], b[row_hi - 1, lo:hi]
            for j in range(hi - lo):
                out[j] += widen(a0[j]) * widen(b0[j])


def _widens_word_pairs(a: object, b: object) -> object:
    """Whether ``rows_into`` sums ``a`` and ``b`` (kernel bits) by ``_bfloat16_pairs_into``: bfloat16 arrays of
    C layout, whose rows a 32-bit view reads (numba only)."""
    raise TypeError("_widens_word_pairs runs compiled, inside the numba kernel")


@overload(_widens_word_pairs)
def _widens_word_pairs_overload(a, b):
    answer = all(isinstance(x, types.Array) and x.dtype == types.int16 and x.layout == "C" for x in (a, b))
    return lambda a, b: answer


@numba.njit(nogil=True, cache=True)
def _bfloat16_pairs_into(
    a: np.ndarray, b: np.ndarray, out: np.ndarray, row_lo: int, row_hi: int, lo: int, hi: int
) -> None:
    """``rows_into``'s pass over words ``lo`` to ``hi`` of bfloat16 bits read as 32-bit words, two columns each.

    A bfloat16 is the high half of a float32, so the word holding columns 2m
    and 2m + 1 gives both as float32 by one shift (``<< 16``) and one mask
    (``& 0xFFFF0000``), where widening each column alone takes a zero-extend
    and a shift: half the vector shuffles, which bound this loop on x86. The
    sums of even and odd columns build apart and are added into ``out`` (columns
    ``2 lo`` to ``2 hi``) once; rows pair as in ``rows_into``.
    """
    # Against rows_into's widening column by column, interleaved in one process, 2 threads
    # on a 2-vCPU AMD EPYC (Zen 3) VM, bfloat16 from memory (3 runs of 15-25 rounds, median
    # new/old): 4096 x 4096 1.27-1.48, 64 x 1e6 1.19-1.24, 16384 x 1024 1.03-1.52 (torch.dot
    # over the same bytes 0.90-0.94 of it, from 0.6-0.8). In L2 on one thread: 0.94-1.00.
    words = hi - lo
    pairs = np.full((2, words), -0.0, out.dtype)  # -0.0 + x is x for every x, a -0.0 too
    even, odd = pairs[0], pairs[1]
    half = (row_hi - row_lo) // 2
    for i in range(row_lo, row_lo + half):
        a0, a1, b0, b1 = a[i, lo:hi], a[i + half, lo:hi], b[i, lo:hi], b[i + half, lo:hi]
        for m in range(words):
            even[m] += _low(a0[m]) * _low(b0[m]) + _low(a1[m]) * _low(b1[m])
            odd[m] += _high(a0[m]) * _high(b0[m]) + _high(a1[m]) * _high(b1[m])
    if (row_hi - row_lo) % 2:
        a0, b0 = a[row_hi - 1, lo:hi], b[row_hi - 1, lo:hi]
        for m in range(words):
            even[m] += _low(a0[m]) * _low(b0[m])
            odd[m] += _high(a0[m]) * _high(b0[m])
    for m in range(words):
        out[2 * m] += even[m]
        out[2 * m + 1] += odd[m]


@numba.njit(nogil=True, cache=True, inline="always")
def _low(word: np.uint32) -> np.float32:
    """The bfloat16 in the low half of ``word`` (the earlier column, little-endian), as float32."""
    return _float32_from_bits(np.uint32(word) << np.uint32(16))


@numba.njit(nogil=True, cache=True, inline="always")
def _high(word: np.uint32) -> np.float32:
    """The bfloat16 in the high half of ``word`` (the later column), as float32."""
    return _float32_from_bits(np.uint32(word) & np.uint32(0xFFFF0000))


# row_share_into calls the kernel by this name, bound once: a test's spy replacing the
# module's ``rows_into`` must not end up compiled into it (as for the team's entry).
_share_rows_into = rows_into


@numba.njit(nogil=True, cache=True)
def row_share_into(
    a: np.ndarray, b: np.ndarray, sums: np.ndarray, row_lo: int, row_hi: int, rows_per_lane_row: int, chunk: int
) -> None:
    """``sums`` (zeroed here) = the column sums of rows ``row_lo`` to ``row_hi`` of ``a``, ``b`` (both n x k).

    One thread's share of a row-block sum, in one compiled call: where
    ``rows_per_lane_row`` > 1, its whole lane rows (that many rows each, lane
    l holding column l % k) are summed into lanes and folded into ``sums``,
    then the rows left over are added there one by one (``rows_into`` both).
    """
    k = a.shape[1]
    sums[:] = 0
    whole = whole_lane_rows(row_hi - row_lo, rows_per_lane_row)
    if whole:
        width = rows_per_lane_row * k
        lane_rows = whole // rows_per_lane_row
        lanes = np.zeros(width, sums.dtype)
        a_lanes = a[row_lo : row_lo + whole].reshape((lane_rows, width))
        b_lanes = b[row_lo : row_lo + whole].reshape((lane_rows, width))
        _share_rows_into(a_lanes, b_lanes, lanes, 0, lane_rows, 0, width, chunk)
        for row in range(rows_per_lane_row):
            for j in range(k):
                sums[j] += lanes[row * k + j]
    _share_rows_into(a, b, sums, row_lo + whole, row_hi, 0, k, chunk)


@numba.njit(nogil=True, cache=True)
def whole_lane_rows(rows: int, rows_per_lane_row: int) -> int:
    """How many of ``rows`` rows fill whole lane rows of ``rows_per_lane_row`` rows (none where that is 1)."""
    return rows // rows_per_lane_row * rows_per_lane_row if rows_per_lane_row > 1 else 0


@numba.njit(nogil=True, cache=True)
def add_shares_into(shares: np.ndarray, stride: int, count: int, out: np.ndarray) -> None:
    """``out[j]`` = the sum over ``t < count`` of ``shares[t * stride + j]``: the threads' partial sums added."""
    out[:] = shares[: out.size]
    for t in range(1, count):
        for j in range(out.size):
            out[j] += shares[t * stride + j]


class RowsJob(NamedTuple):
    """``rows_into(a, b, acc, row_lo, row_hi, col_lo, col_hi)``, ``acc`` zeroed first where ``zero``.

    ``a`` and ``b`` are C-contiguous 2-D (kernel views); ``acc`` holds the
    sums of columns ``col_lo`` to ``col_hi``.
    """

    a: np.ndarray
    b: np.ndarray
    acc: np.ndarray
    row_lo: int
    row_hi: int
    col_lo: int
    col_hi: int
    zero: bool = False


class NarrowJob(NamedTuple):
    """``narrow_into(acc, bits, lo, hi)``: float32 sums rounded into a half-precision result's bits."""

    acc: np.ndarray
    bits: np.ndarray
    lo: int
    hi: int


class ShareJob(NamedTuple):
    """``row_share_into(a, b, acc, row_lo, row_hi, rows_per_lane_row)``: one thread's block of rows, in one call.

    ``a`` and ``b`` are C-contiguous 2-D (kernel views); ``acc`` (zeroed by
    the kernel) holds the block's sums of every column.
    """

    a: np.ndarray
    b: np.ndarray
    acc: np.ndarray
    row_lo: int
    row_hi: int
    rows_per_lane_row: int


Job = RowsJob | NarrowJob | ShareJob


def run_jobs(jobs: Sequence[Job], chunk: int) -> None:
    """One thread's jobs, in order, on the calling thread."""
    for job in jobs:
        if isinstance(job, ShareJob):
            row_share_into(*job, chunk)
            continue
        if isinstance(job, NarrowJob):
            narrow_into(*job)
            continue
        if job.zero:
            job.acc[...] = 0
        rows_into(job.a, job.b, job.acc, job.row_lo, job.row_hi, job.col_lo, job.col_hi, chunk)


# -- the jobs on an OpenMP runtime's own team ---------------------------------------
# A library that runs its CPU ops on OpenMP (torch) leaves its workers spinning
# after each op, each holding a core; a kernel on threads of its own then shares
# the cores with them. Run on that runtime's team instead (GOMP_parallel, the call
# ``#pragma omp parallel`` compiles to), the kernel takes the workers over.
# Each job is one row of int64s: what, then pointers and bounds (_encode).
_ROWS, _ZEROED_ROWS, _NARROW, _SHARE = 1, 2, 3, 4
_JOB_FIELDS = 10
# The header the team's threads read: the runtime's omp_get_thread_num and
# omp_get_num_threads, the job table's threads, jobs per thread, column chunk and address.
_HEADER_FIELDS = 6


# The team's entry calls the kernels by these names, bound once: a test's spy
# replacing the module's ``rows_into`` must not end up compiled into it.
_team_rows_into, _team_narrow_into, _team_row_share_into = rows_into, narrow_into, row_share_into


@intrinsic
def _voidptr_at(typingctx, address):
    """``address`` (an int64) as a ``void *``."""
    if address != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(8).as_pointer())

    return types.voidptr(address), codegen


@intrinsic
def _call_int_function(typingctx, address):
    """Call the C function ``int f(void)`` at ``address``."""
    if address != types.int64:
        return None

    def codegen(context, builder, signature, args):
        function = ir.FunctionType(ir.IntType(32), [])
        return builder.call(builder.inttoptr(args[0], function.as_pointer()), [])

    return types.int32(address), codegen


@functools.cache
def _team_entry(element: type, acc: type) -> ccallback.CFunc:
    """The C function each thread of the team runs: its row of the job table, for inputs of ``element``."""

    def entry(header_address):
        header = numba.carray(header_address, _HEADER_FIELDS, dtype=np.int64)
        # The runtime may start fewer threads than asked (OMP_THREAD_LIMIT, OMP_DYNAMIC):
        # each thread takes every team-size-th share, so every share is summed.
        team_size = _call_int_function(header[1])
        jobs = numba.carray(_voidptr_at(header[5]), (header[2], header[3], _JOB_FIELDS), dtype=np.int64)
        for share in range(_call_int_function(header[0]), header[2], team_size):
            for job in jobs[share]:
                what, first, second, rows, width, lo, hi = job[0], job[1], job[2], job[3], job[4], job[8], job[9]
                if what == _NARROW:
                    sums = numba.carray(_voidptr_at(first), width, dtype=acc)
                    bits = numba.carray(_voidptr_at(second), width, dtype=element)
                    _team_narrow_into(sums, bits, lo, hi)
                elif what == _SHARE:
                    a = numba.carray(_voidptr_at(first), (rows, width), dtype=element)
                    b = numba.carray(_voidptr_at(second), (rows, width), dtype=element)
                    sums = numba.carray(_voidptr_at(job[5]), width, dtype=acc)
                    _team_row_share_into(a, b, sums, job[6], job[7], job[8], header[4])
                elif what == _ROWS or what == _ZEROED_ROWS:
                    a = numba.carray(_voidptr_at(first), (rows, width), dtype=element)
                    b = numba.carray(_voidptr_at(second), (rows, width), dtype=element)
                    sums = numba.carray(_voidptr_at(job[5]), hi - lo, dtype=acc)
                    if what == _ZEROED_ROWS:
                        sums[:] = 0
                    _team_rows_into(a, b, sums, job[6], job[7], lo, hi, header[4])

    signature = sigutils.normalize_signature(types.void(types.voidptr))
    callback = ccallback.CFunc(entry, signature, locals={}, options={})
    callback.enable_caching()  # as numba.cfunc(..., cache=True) does, with a damaged cache file dropped first
    _drop_an_unreadable_cache(callback)
    callback.compile()
    return callback


def _encode(job: Job) -> tuple[int, ...]:
    if isinstance(job, NarrowJob):
        return (_NARROW, job.acc.ctypes.data, job.bits.ctypes.data, 1, job.bits.size, 0, 0, 0, job.lo, job.hi)
    if isinstance(job, ShareJob):
        rows, width = job.a.shape
        addresses = (job.a.ctypes.data, job.b.ctypes.data, rows, width, job.acc.ctypes.data)
        return (_SHARE, *addresses, job.row_lo, job.row_hi, job.rows_per_lane_row, 0)
    what = _ZEROED_ROWS if job.zero else _ROWS
    rows, width = job.a.shape
    addresses = (job.a.ctypes.data, job.b.ctypes.data)
    return (what, *addresses, rows, width, job.acc.ctypes.data, job.row_lo, job.row_hi, job.col_lo, job.col_hi)


class OpenMPTeam:
    """An OpenMP runtime (a loaded GNU-compatible ``libgomp``, ``libomp`` or ``libiomp5``) that runs jobs on its team."""

    def __init__(self, runtime: ctypes.CDLL) -> None:
        self._parallel = runtime.GOMP_parallel
        self._parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        self._parallel.restype = None
        self._thread_number = ctypes.cast(runtime.omp_get_thread_num, ctypes.c_void_p).value
        self._team_size = ctypes.cast(runtime.omp_get_num_threads, ctypes.c_void_p).value
        self.max_threads = runtime.omp_get_max_threads
        self._loaded: set[tuple[np.dtype, np.dtype]] = set()
        self.max_threads.restype = ctypes.c_int

    def load(self, dtype: np.dtype, acc_dtype: np.dtype) -> float | None:
        """Compile the team's entry for inputs of ``dtype`` summed in ``acc_dtype`` (or load it from numba's disk
        cache): seconds spent, or None where it was loaded before."""
        element = np.dtype(_BITS_OF.get(dtype.name, dtype))
        if (element, acc_dtype) in self._loaded:
            return None
        start = time.perf_counter()
        _team_entry(element.type, acc_dtype.type)
        self._loaded.add((element, acc_dtype))
        return time.perf_counter() - start

    def run(self, jobs: Sequence[Sequence[Job]], chunk: int) -> None:
        """``jobs[t]`` on thread ``t`` of a team of ``len(jobs)`` (the caller is thread 0); back when all are done.

        Every array of every job must be C-contiguous and of the dtypes of the
        first rows (or share) job: the threads read them by address. ctypes
        lets go of the GIL for the call; the threads run compiled code only.
        """
        _check_integer("the column chunk", chunk)
        if chunk < 1:
            raise ValueError(f"the column chunk must be at least 1, not {chunk}")
        jobs = [list(thread) for thread in jobs]  # iterables of any kind, each read once
        if not all(isinstance(job, RowsJob | NarrowJob | ShareJob) for thread in jobs for job in thread):
            raise TypeError("the OpenMP team runs RowsJob, ShareJob and NarrowJob only")
        for job in (job for thread in jobs for job in thread):
            _check_fields(job)
        if not any(jobs):
            return
        reads = [job for thread in jobs for job in thread if not isinstance(job, NarrowJob)]
        narrows = [job for thread in jobs for job in thread if isinstance(job, NarrowJob)]
        element, acc = (
            (reads[0].a.dtype, reads[0].acc.dtype) if reads else (narrows[0].bits.dtype, narrows[0].acc.dtype)
        )
        _check_team_arrays(reads, narrows, element, acc)
        per_thread = max(len(thread) for thread in jobs)
        table = np.zeros((len(jobs), per_thread, _JOB_FIELDS), np.int64)
        for t, thread in enumerate(jobs):
            for j, job in enumerate(thread):
                table[t, j] = _encode(job)
        header = [self._thread_number, self._team_size, len(jobs), per_thread, chunk, table.ctypes.data]
        header = np.array(header, np.int64)
        entry = _team_entry(element.type, acc.type)
        self._parallel(entry.address, header.ctypes.data, len(jobs), 0)


# What the team's entry reads (half precision as its bits: kernel_view) and sums in.
_TEAM_SUMS = {
    np.dtype(np.float32): np.dtype(np.float32),
    np.dtype(np.float64): np.dtype(np.float64),
    np.dtype(np.complex64): np.dtype(np.complex64),
    np.dtype(np.complex128): np.dtype(np.complex128),
    np.dtype(np.uint16): np.dtype(np.float32),
    np.dtype(np.int16): np.dtype(np.float32),
}


# A job's fields that hold arrays; every other one but RowsJob.zero is an integer the table holds as an int64.
_ARRAY_FIELDS = frozenset({"a", "b", "acc", "bits"})


def _check_fields(job: Job) -> None:
    """NumPy arrays where ``job`` takes arrays, integers of int64's range where it takes bounds (a float would be
    truncated silently in the int64 table)."""
    for name, value in zip(job._fields, job):
        if name in _ARRAY_FIELDS:
            if not isinstance(value, np.ndarray):
                raise TypeError(f"a {type(job).__name__}'s {name} must be a NumPy array, not {type(value).__name__}")
        elif name != "zero":
            _check_integer(f"a {type(job).__name__}'s {name}", value)


def _check_integer(what: str, value: object) -> None:
    if not isinstance(value, int | np.integer):
        raise TypeError(f"{what} must be an integer, not {value!r}")
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{what} ({value}) lies outside int64's range")


def _check_team_arrays(
    reads: list[RowsJob | ShareJob], narrows: list[NarrowJob], element: np.dtype, acc: np.dtype
) -> None:
    """Refuse, before any thread starts, an array the team's threads would misread by address.

    The compiled kernel checks no bounds, so every job's bounds are checked here.
    """
    if _TEAM_SUMS.get(element) != acc:
        kinds = ", ".join(f"{x} summed in {y}" for x, y in _TEAM_SUMS.items())
        raise ValueError(f"the OpenMP team sums {kinds} (half precision as kernel_view bits), not {element} in {acc}")
    arrays = [x for job in reads for x in (job.a, job.b, job.acc)] + [x for job in narrows for x in (job.acc, job.bits)]
    if not all(x.flags.c_contiguous for x in arrays):
        raise ValueError("the OpenMP team reads its jobs' arrays by address: each must be C-contiguous")
    if not all(x.flags.writeable for x in [job.acc for job in reads] + [job.bits for job in narrows]):
        raise ValueError("the OpenMP team writes each job's sums (rows, share jobs) or bits (narrow jobs): they are "
                         "read-only")  # fmt: skip
    inputs = [x for job in reads for x in (job.a, job.b)] + [job.bits for job in narrows]
    sums = [job.acc for job in reads] + [job.acc for job in narrows]
    if any(x.dtype != element for x in inputs) or any(x.dtype != acc for x in sums):
        raise ValueError(f"the OpenMP team's jobs mix dtypes: inputs must all be {element}, sums {acc}")
    if any(x.ndim != 2 for job in reads for x in (job.a, job.b)) or any(j.a.shape != j.b.shape for j in reads):
        raise ValueError("the OpenMP team's rows and share jobs take two 2-D inputs of one shape")
    for job in reads:
        _check_bounds(job)
    for job in narrows:
        if job.acc.ndim != 1 or job.acc.shape != job.bits.shape or not 0 <= job.lo <= job.hi <= job.bits.size:
            raise ValueError(f"a narrow job's elements {job.lo}:{job.hi} lie outside its 1-D sums "
                             f"{job.acc.shape} and bits {job.bits.shape}, which must be of one shape")  # fmt: skip


def _check_bounds(job: RowsJob | ShareJob) -> None:
    """A rows or share job's rows, columns and sums within its inputs."""
    kind = "share" if isinstance(job, ShareJob) else "rows"
    rows_count, width = job.a.shape
    col_lo, col_hi = (0, width) if isinstance(job, ShareJob) else (job.col_lo, job.col_hi)
    if not (0 <= job.row_lo <= job.row_hi <= rows_count and 0 <= col_lo <= col_hi <= width):
        raise ValueError(f"a {kind} job's rows {job.row_lo}:{job.row_hi} or columns {col_lo}:{col_hi} "
                         f"lie outside its inputs of shape {job.a.shape}")  # fmt: skip
    if job.acc.shape != (col_hi - col_lo,):
        raise ValueError(f"a {kind} job's sums have shape {job.acc.shape}, not ({col_hi - col_lo},)")
    if isinstance(job, ShareJob) and job.rows_per_lane_row < 1:
        raise ValueError(f"a share job's lane rows hold at least 1 row each, not {job.rows_per_lane_row}")


def load(dtype: np.dtype, acc_dtype: np.dtype) -> None:
    """Compile the kernels (``rows_into``, the row shares) for inputs of ``dtype`` summed in ``acc_dtype``, or load
    them from numba's disk cache.

    The signature is the one the strategies call with: read-only 2-D inputs
    (``np.broadcast_to`` views; numba compiles writable ones apart), a 1-D
    output, int64 bounds. Even from the cache, a process's first load costs
    about 0.4 s (numba's code generator starting), a one-off that is a compile,
    not a call.
    """
    rows = kernel_view(np.broadcast_to(np.ones((1, 1), dtype), (1, 1)))
    acc = np.zeros(1, acc_dtype)
    rows_into(rows, rows, acc, 0, 1, 0, 1, 1)
    row_share_into(rows, rows, acc, 0, 1, 2, 1)
    add_shares_into(acc, 1, 1, acc)
    if rows.dtype != dtype:  # half precision: the sums are rounded back by the kernel too
        narrow_into(acc, kernel_view(np.zeros(1, dtype)), 0, 1)


def _drop_an_unreadable_cache(kernel: numba.core.registry.CPUDispatcher | ccallback.CFunc) -> None:
    """Empty numba's disk cache of ``kernel`` when a file of it cannot be read back.

    numba copes with a missing cache file but raises on a damaged one (a bad
    copy, a disk error) at every call, and mul_sum selects the ``*-numba``
    strategies for large float32 inputs: one damaged file would break those
    calls for good. Emptied, the kernel compiles again (~0.7 s) and rewrites it.
    The index and data files are numba internals: a numba without them is left alone.
    """
    cache = kernel._cache
    cache_file = getattr(cache, "_cache_file", None)  # None: caching is off (NullCache)
    try:
        for name in cache_file._load_index().values() if cache_file is not None else ():
            try:
                cache_file._load_data(name)
            except OSError:  # removed since the index was written: numba recompiles
                continue
    except AttributeError:
        return
    except Exception:  # unpickling garbage raises anything
        try:
            cache.flush()
        except OSError:  # not writable now: compile in memory only, this process
            kernel._cache = numba.core.caching.NullCache()


# Every kernel of this module kept in numba's disk cache (the team's entries apart: _team_entry).
CACHED_KERNELS = (rows_into, narrow_into, row_share_into, add_shares_into, whole_lane_rows)
for _kernel in CACHED_KERNELS:
    _drop_an_unreadable_cache(_kernel)
