"""Triton kernels of ``torch-triton``, imported only when that strategy runs on a CUDA tensor.

Kept apart from ``torch.py`` because ``triton.jit`` needs ``triton`` at import
time, and CPU builds of torch ship without it.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

from ..core.shapes import GPU_BLOCK, GPU_WARPS, gpu_rows_per_trip


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
    rows_per_trip = gpu_rows_per_trip(a.element_size())
    trips = -(-total // (step * rows_per_trip))
    grid = (triton.cdiv(step, GPU_BLOCK),)
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
        BLOCK=GPU_BLOCK,
        UNROLL=rows_per_trip,
        TRANSPOSED=transposed,
        num_warps=GPU_WARPS,
        enable_fp_fusion=False,
    )
