"""The numba kernel of the ``*-numba`` strategies, imported only when one of them runs.

Kept apart from ``numpy.py`` because ``numba.njit`` needs ``numba`` at import
time, and numba is optional. ``nogil``: the strategies run the kernel on
numpy-threads' pool, one block per thread (numba's own ``parallel=True``
would start a second pool whose spinning threads slow the first: on a 2-vCPU
VM its OpenMP layer halved numpy-threads' rate in the same process).
``cache``: the compiled code is kept on disk (numba's cache, beside this file
or under ``NUMBA_CACHE_DIR``), so a dtype compiles once per machine (~0.7 s)
and later processes load it (~0.1 s).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(nogil=True, cache=True)
def rows_into(
    a: np.ndarray, b: np.ndarray, acc: np.ndarray, row_lo: int, row_hi: int, col_lo: int, col_hi: int, chunk: int
) -> None:
    """``acc[j - col_lo] += sum(a[i, j] * b[i, j] for i in rows)`` for ``col_lo <= j < col_hi``.

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
                out[j] += (a0[j] * b0[j] + a1[j] * b1[j]) + (a2[j] * b2[j] + a3[j] * b3[j])
            i += 4
        while i < row_hi:
            a0, b0 = a[i, lo:hi], b[i, lo:hi]
            for j in range(hi - lo):
                out[j] += a0[j] * b0[j]
            i += 1


def _drop_an_unreadable_cache() -> None:
    """Empty numba's disk cache of ``rows_into`` when a file of it cannot be read back.

    numba copes with a missing cache file but raises on a damaged one (a bad
    copy, a disk error) at every call, and mul_sum selects the ``*-numba``
    strategies for large float32 inputs: one damaged file would break those
    calls for good. Emptied, the kernel compiles again (~0.7 s) and rewrites it.
    The index and data files are numba internals: a numba without them is left alone.
    """
    cache = rows_into._cache
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
            rows_into._cache = numba.core.caching.NullCache()


_drop_an_unreadable_cache()
