"""Triton kernels of ``torch-triton``, imported only when that strategy runs on a CUDA tensor.

Kept apart from ``torch.py`` because ``triton.jit`` needs ``triton`` at import
time, and CPU builds of torch ship without it.
"""

from __future__ import annotations

from typing import Any

import triton
import triton.language as tl

# Elements per program: 4 warps x 32 threads x 8, two 16-byte loads per input and thread.
BLOCK = 1024
WARPS = 4


@triton.jit(do_not_specialize=["total", "iterations", "k", "groups"])
def _strided_partial_sums(
    a, b, partials, total, step, iterations, k, groups, BLOCK: tl.constexpr, TRANSPOSED: tl.constexpr
):
    # Lane l sums a[l + j*step] * b[l + j*step] over j: one column per lane (step is a
    # multiple of K), coalesced across lanes. Products and sums in the partials' dtype
    # (the accumulation dtype), each rounded on its own (no FMA contraction, see launch).
    lanes = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    live = lanes < step
    offsets = lanes.to(tl.int64)
    acc = tl.zeros([BLOCK], dtype=partials.dtype.element_ty)
    for _ in tl.range(0, iterations):
        inside = live & (offsets < total)
        x = tl.load(a + offsets, mask=inside, other=0).to(partials.dtype.element_ty)
        y = tl.load(b + offsets, mask=inside, other=0).to(partials.dtype.element_ty)
        acc += x * y
        offsets += step
    if TRANSPOSED:  # lane l holds row l // k of column l % k: stored K x R
        tl.store(partials + (lanes % k) * groups + lanes // k, acc, mask=live)
    else:
        tl.store(partials + lanes, acc, mask=live)


def strided_partial_sums(a: Any, b: Any, partials: Any, k: int, groups: int, transposed: bool) -> None:
    """Fill ``partials`` (K x R lanes) with the strided partial sums of flat contiguous ``a`` and ``b``.

    Laid out R x K, or K x R where ``transposed``.
    """
    total, step = a.numel(), k * groups
    iterations = -(-total // step)
    grid = (triton.cdiv(step, BLOCK),)
    # enable_fp_fusion=False: a fused multiply-add rounds once, so a product that
    # overflows could come back finite; the shared semantics round each product (IEEE).
    _strided_partial_sums[grid](
        a,
        b,
        partials,
        total,
        step,
        iterations,
        k,
        groups,
        BLOCK=BLOCK,
        TRANSPOSED=transposed,
        num_warps=WARPS,
        enable_fp_fusion=False,
    )
