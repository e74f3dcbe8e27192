"""Triton kernels of ``torch-triton``, imported only when that strategy runs on a CUDA tensor.

Kept apart from ``torch.py`` because ``triton.jit`` needs ``triton`` at import
time, and CPU builds of torch ship without it.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

# Elements per program: 4 warps x 32 threads x 8, 16 or 32 bytes of each input per
# thread and row: one or two 16-byte loads.
BLOCK = 1024
WARPS = 4
# Bytes of each input a thread loads per loop trip, over UNROLL rows issued before
# any is used. A thread's loads wait at their first use, so these bytes are what each
# thread keeps in flight: 4096 lanes per SM (core.shapes) at one float32 row per trip
# kept ~32 KiB per SM in flight on an H200, about what covers its memory latency at
# 4.8 TB/s, and one bfloat16 row half that (bfloat16 read 0.34-0.60 of the floor,
# float32 0.61-0.93).
BYTES_PER_TRIP = 64


def unroll(itemsize: int) -> int:
    """Rows a thread loads per loop trip for elements of ``itemsize`` bytes: 1, 2 or 4."""
    return min(4, max(1, BYTES_PER_TRIP // (BLOCK // (WARPS * 32) * itemsize)))


@triton.jit
def _product(a, b, partials, offsets, mask):
    # In the partials' dtype (the accumulation dtype).
    x = tl.load(a + offsets, mask=mask, other=0).to(partials.dtype.element_ty)
    y = tl.load(b + offsets, mask=mask, other=0).to(partials.dtype.element_ty)
    return x * y


@triton.jit(do_not_specialize=["total", "trips", "k", "groups"])
def _strided_partial_sums(
    a, b, partials, total, step, trips, k, groups, BLOCK: tl.constexpr, UNROLL: tl.constexpr, TRANSPOSED: tl.constexpr
):
    # Lane l sums a[l + j*step] * b[l + j*step] over j: one column per lane (step is a
    # multiple of K), coalesced across lanes. Products and sums in the partials' dtype
    # (the accumulation dtype), each rounded on its own (no FMA contraction, see launch),
    # added in order of j: each trip forms UNROLL rows' products, then adds them.
    lanes = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = lanes < step
    offsets = lanes.to(tl.int64)
    acc = tl.zeros([BLOCK], dtype=partials.dtype.element_ty)
    for _ in tl.range(0, trips):
        p0 = _product(a, b, partials, offsets, live & (offsets < total))
        if UNROLL >= 2:
            p1 = _product(a, b, partials, offsets + step, live & (offsets + step < total))
        if UNROLL >= 4:
            p2 = _product(a, b, partials, offsets + 2 * step, live & (offsets + 2 * step < total))
            p3 = _product(a, b, partials, offsets + 3 * step, live & (offsets + 3 * step < total))
        acc += p0
        if UNROLL >= 2:
            acc += p1
        if UNROLL >= 4:
            acc += p2
            acc += p3
        offsets += UNROLL * step
    if TRANSPOSED:  # lane l holds row l // k of column l % k: stored K x R
        tl.store(partials + (lanes % k) * groups + lanes // k, acc, mask=live)
    else:
        tl.store(partials + lanes, acc, mask=live)


def strided_partial_sums(a: Any, b: Any, partials: Any, k: int, groups: int, transposed: bool) -> None:
    """Fill ``partials`` (K x R lanes) with the strided partial sums of flat contiguous ``a`` and ``b``.

    Laid out R x K, or K x R where ``transposed``.
    """
    total, step = a.numel(), k * groups
    rows_per_trip = unroll(a.element_size())
    trips = -(-total // (step * rows_per_trip))
    grid = (triton.cdiv(step, BLOCK),)
    # enable_fp_fusion=False: a fused multiply-add rounds once, so a product that
    # overflows could come back finite; the shared semantics round each product (IEEE).
    _strided_partial_sums[grid](
        a,
        b,
        partials,
        total,
        step,
        trips,
        k,
        groups,
        BLOCK=BLOCK,
        UNROLL=rows_per_trip,
        TRANSPOSED=transposed,
        num_warps=WARPS,
        enable_fp_fusion=False,
    )
