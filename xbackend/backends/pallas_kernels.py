"""The Pallas kernel of ``jax-pallas``, imported only when that strategy compiles (or the tests interpret it).

torch-triton's strided partial sums (``core.shapes``), written in Pallas so that
JAX compiles them into its own executable: on NVIDIA GPUs Pallas lowers the
kernel to Triton, and the partials' sum follows in the same XLA program. Kept
apart from ``jax.py`` because ``jax.experimental.pallas`` is imported here, at
module level, and only a GPU run needs it.

Program ``p`` owns lanes ``p * GPU_BLOCK ...``; lane ``l`` of ``L = K x R``
lanes sums ``a.flat[l::L] * b.flat[l::L]`` in the accumulation dtype, loading
``gpu_rows_per_trip`` rows per loop trip before adding them in row order, as
torch-triton's threads do. Offsets are 32-bit (JAX's default integers): the
caller sends larger inputs elsewhere (``fits``).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from ..core.shapes import GPU_BLOCK, GPU_WARPS, gpu_rows_per_trip, sum_strided_partials

# Renamed from TritonCompilerParams in JAX 0.6.
_COMPILER_PARAMS = getattr(plgpu, "CompilerParams", None) or plgpu.TritonCompilerParams
# PTX's ``mul.rn`` is never contracted into a fused multiply-add with the sum that
# follows (NVPTX contracts a plain multiply), so every product is rounded on its own,
# as in every other strategy: a product past the format's range is inf, not rescued.
_ROUNDED_MULTIPLY = {
    "float32": ("mul.rn.f32 $0, $1, $2;", "=f,f,f"),
    "float64": ("mul.rn.f64 $0, $1, $2;", "=d,d,d"),
}
_INT32_LIMIT = 2**31 - 1


def fits(total: int, step: int, itemsize: int) -> bool:
    """Whether 32-bit offsets reach every element the kernel forms for ``total`` elements over ``step`` lanes."""
    return total + (gpu_rows_per_trip(itemsize) + 1) * step + GPU_BLOCK <= _INT32_LIMIT


def _rounded_product(x: Any, y: Any, interpret: bool) -> Any:
    # Pallas's interpreter runs the kernel as XLA:CPU operations, which round each product.
    if interpret:
        return x * y
    asm, constraints = _ROUNDED_MULTIPLY[jnp.dtype(x.dtype).name]
    (product,) = plgpu.elementwise_inline_asm(
        asm, args=[x, y], constraints=constraints, pack=1, result_shape_dtypes=[jax.ShapeDtypeStruct(x.shape, x.dtype)]
    )
    return product


def _partials_kernel(
    a_ref: Any, b_ref: Any, partials_ref: Any, *, total: int, step: int, trips: int, rows_per_trip: int, interpret: bool
) -> None:
    first = pl.program_id(0) * GPU_BLOCK
    lanes = first + lax.iota(jnp.int32, GPU_BLOCK)
    live = lanes < step
    acc_dtype = partials_ref.dtype

    def row_product(offset: Any) -> Any:
        mask = live & (lanes + offset < total)
        x = plgpu.load(a_ref.at[pl.ds(first + offset, GPU_BLOCK)], mask=mask, other=0).astype(acc_dtype)
        y = plgpu.load(b_ref.at[pl.ds(first + offset, GPU_BLOCK)], mask=mask, other=0).astype(acc_dtype)
        return _rounded_product(x, y, interpret)

    def trip(t: Any, acc: Any) -> Any:
        offset = t * (rows_per_trip * step)
        products = [row_product(offset + row * step) for row in range(rows_per_trip)]  # all loads issued first
        for product in products:
            acc = acc + product
        return acc

    acc = lax.fori_loop(0, trips, trip, jnp.zeros((GPU_BLOCK,), acc_dtype))
    plgpu.store(partials_ref.at[pl.ds(first, GPU_BLOCK)], acc, mask=live)


def strided_partial_sums(
    a: Any, b: Any, k: int, groups: int, acc_dtype: Any, *, rows_per_trip: int | None = None, interpret: bool = False
) -> Any:
    """The ``groups x k`` strided partial sums (R x K, in ``acc_dtype``) of flat, equal-length ``a`` and ``b``."""
    total, step = a.size, k * groups
    rows = rows_per_trip or gpu_rows_per_trip(jnp.dtype(a.dtype).itemsize)
    kernel = functools.partial(
        _partials_kernel,
        total=total,
        step=step,
        trips=-(-total // (step * rows)),
        rows_per_trip=rows,
        interpret=interpret,
    )
    return pl.pallas_call(
        kernel,
        out_shape=jax.ShapeDtypeStruct((step,), acc_dtype),
        grid=(pl.cdiv(step, GPU_BLOCK),),
        compiler_params=_COMPILER_PARAMS(num_warps=GPU_WARPS, num_stages=1),
        interpret=interpret,
        name="xbackend_strided_partial_sums",
    )(a, b)


def mul_sum(
    a: Any,
    b: Any,
    *,
    full_shape: tuple[int, ...],
    out_dtype: Any,
    acc_dtype: Any,
    groups: int,
    interpret: bool = False,
) -> Any:
    """``sum(a * b, axis=0)`` of ``a`` and ``b`` of ``full_shape`` and the result's dtype over ``groups`` x K lanes."""
    k = math.prod(full_shape[1:])
    partials = strided_partial_sums(a.reshape(-1), b.reshape(-1), k, groups, acc_dtype, interpret=interpret)
    return sum_strided_partials(partials, k, groups, False, acc_dtype).reshape(full_shape[1:]).astype(out_dtype)
