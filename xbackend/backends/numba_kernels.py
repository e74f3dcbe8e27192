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
kernel as their bits (``kernel_view``) and are widened to float32 element by
element inside the loop (``widen``): the N x K float32 copy that numpy-threads'
upcast blocks write and re-read is never made. The float32 sums are rounded
back to the input's format here too (``narrow_into``): NumPy's own float32 to
float16 cast is software, 2.5 ns an element, a sixth of a 64 x 1e6 call.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

# Half-precision inputs travel as these integer views of their bits: one integer type
# per format, so that ``widen`` can tell them apart by type alone.
_BITS_OF = {"bfloat16": np.int16, "float16": np.uint16}


def kernel_view(x: np.ndarray) -> np.ndarray:
    """``x`` as the kernel reads it: itself, or the bits of a float16 or bfloat16 array (no copy)."""
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
    if value != types.float32 or not isinstance(bits, types.Array):
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


@numba.njit(nogil=True, cache=True)
def rows_into(
    a: np.ndarray, b: np.ndarray, acc: np.ndarray, row_lo: int, row_hi: int, col_lo: int, col_hi: int, chunk: int
) -> None:
    """``acc[j - col_lo] += sum(widen(a[i, j]) * widen(b[i, j]) for i in rows)`` for ``col_lo <= j < col_hi``.

    Four rows per pass, so that eight streams are in flight and the partial sums
    are read and written once per four rows; columns in chunks of ``chunk``, so
    that those partial sums stay in the core's L2. Each product and sum is
    rounded on its own: no fastmath, so no FMA contraction or reassociation
    beyond the four-row grouping, which the bound allows (any summation order).
    """
    for lo in range(col_lo, col_hi, chunk):
        hi = min(col_hi, lo + chunk)
        out = acc[lo - col_lo : hi - col_lo]
        i = row_lo
        while i + 4 <= row_hi:
            a0, a1, a2, a3 = a[i, lo:hi], a[i + 1, lo:hi], a[i + 2, lo:hi], a[i + 3, lo:hi]
            b0, b1, b2, b3 = b[i, lo:hi], b[i + 1, lo:hi], b[i + 2, lo:hi], b[i + 3, lo:hi]
            for j in range(hi - lo):
                out[j] += (widen(a0[j]) * widen(b0[j]) + widen(a1[j]) * widen(b1[j])) + (
                    widen(a2[j]) * widen(b2[j]) + widen(a3[j]) * widen(b3[j])
                )
            i += 4
        while i < row_hi:
            a0, b0 = a[i, lo:hi], b[i, lo:hi]
            for j in range(hi - lo):
                out[j] += widen(a0[j]) * widen(b0[j])
            i += 1


def load(dtype: np.dtype, acc_dtype: np.dtype) -> None:
    """Compile ``rows_into`` for inputs of ``dtype`` summed in ``acc_dtype``, or load it from numba's disk cache.

    The signature is the one the strategies call with: read-only 2-D inputs
    (``np.broadcast_to`` views; numba compiles writable ones apart), a 1-D
    output, int64 bounds. Even from the cache, a process's first load costs
    about 0.4 s (numba's code generator starting), a one-off that is a compile,
    not a call.
    """
    rows = kernel_view(np.broadcast_to(np.ones((1, 1), dtype), (1, 1)))
    acc = np.zeros(1, acc_dtype)
    rows_into(rows, rows, acc, 0, 1, 0, 1, 1)
    if rows.dtype != dtype:  # half precision: the sums are rounded back by the kernel too
        narrow_into(acc, kernel_view(np.zeros(1, dtype)), 0, 1)


def _drop_an_unreadable_cache(kernel: numba.core.registry.CPUDispatcher) -> None:
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


for _kernel in (rows_into, narrow_into):
    _drop_an_unreadable_cache(_kernel)
