"""The strided partial sums of the hand-written GPU kernels (torch-triton, jax-pallas, cupy-raw).

The lane arithmetic is checked on the CPU against a NumPy model, the Triton and
Pallas kernels also under their interpreters; the kernels themselves on a GPU (``gpu`` marker): against the exact oracle on every
shape class's aspect, through the layouts they hand to another formulation,
and for products rounded one by one (no fused multiply-add).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import numpy as np
import pytest

from xbackend.core.shapes import (
    GPU_LANES_PER_SM,
    partial_row_groups,
    strided_partials_layout,
    sum_strided_partials,
)
from xbackend.measure import host_inputs
from xbackend.registry import adapters, get_adapter
from xbackend.testing import assert_mul_sum_close


@pytest.mark.parametrize(
    ("n", "k", "lanes", "groups"),
    [
        (1000, 4, 100, 25),  # 25 x 4 lanes
        (1000, 3, 100, 34),  # rounded up: 102 lanes
        (10, 4, 100, 10),  # never more groups than rows
        (64, 1_000_000, 540_672, 1),  # short-wide: one lane per column
        (67_108_864, 1, 540_672, 540_672),  # column: every lane one stride of the flat input
    ],
)
def test_row_groups_aim_at_the_lane_count(n, k, lanes, groups):
    assert partial_row_groups(n, k, lanes) == groups


@pytest.mark.parametrize(("n", "k", "lanes"), [(0, 4, 10), (4, 0, 10), (4, 4, 0)])
def test_row_groups_refuse_empty_work(n, k, lanes):
    with pytest.raises(ValueError, match="positive n, k and lanes"):
        partial_row_groups(n, k, lanes)


@pytest.mark.parametrize(
    ("n", "k", "layout"),
    [
        (2_097_152, 32, (16_896, True)),  # tall-skinny on 132 SMs: few outputs, partials stored K x R
        (8192, 8192, (66, False)),  # square: as many outputs as GPU_FEW_OUTPUTS, stored R x K
        (64, 1_048_576, (1, False)),
    ],
)
def test_layout_on_an_h200(n, k, layout):
    assert strided_partials_layout(n, k, 132) == layout
    assert layout[0] == partial_row_groups(n, k, GPU_LANES_PER_SM * 132)


def _strided_partials_model(a: np.ndarray, b: np.ndarray, lanes: int, transposed: bool) -> np.ndarray:
    """What both kernels compute, lane by lane: lane l sums a.flat[l::L] * b.flat[l::L], stored where the
    kernels store it (R x K, or K x R: lane l at (l % K) * R + l // K); then the shared second pass."""
    n, k = a.shape
    groups = partial_row_groups(n, k, lanes)
    step = groups * k
    products = (a.astype(np.float64) * b).ravel()
    partials = np.empty(step)
    for lane in range(step):
        partials[(lane % k) * groups + lane // k if transposed else lane] = products[lane::step].sum()
    return sum_strided_partials(partials, k, groups, transposed, np.float64)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize(("shape", "lanes"), [((1000, 33), 1500), ((7, 2000), 1500), ((3001, 1), 64), ((5, 3), 1500)])
def test_each_lane_stays_in_one_column(shape, lanes, transposed):
    # A lane that strayed into another column, or a partial read back from the wrong
    # place, would add another column's products: far outside the bound.
    a, b = host_inputs(shape, "float64", seed=5)
    assert_mul_sum_close(_strided_partials_model(a, b, lanes, transposed), a, b)


KERNEL_PAIRS = [
    pytest.param(name, device, marks=pytest.mark.gpu, id=f"{name}@{device}")
    for name, device in (("torch-triton", "cuda"), ("jax-pallas", "gpu"), ("cupy-raw", "cuda"))
]


def _adapter(name: str, device: str):
    info = next(info for info in adapters() if (info.name, info.device) == (name, device))
    if not info.available:
        pytest.skip(info.reason)
    return get_adapter(name, device)


@pytest.mark.parametrize(("name", "device"), KERNEL_PAIRS)
@pytest.mark.parametrize("shape", [(4096, 512), (200_000, 3), (16, 700_000), (1_000_001, 1), (1, 7)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_kernel_matches_the_oracle(name, device, shape, dtype):
    adapter = _adapter(name, device)
    if dtype in adapter.unsupported_dtypes():
        pytest.skip(adapter.unsupported_dtype_reason(dtype))
    a, b = host_inputs(shape, dtype, seed=11)
    out = adapter.mul_sum(adapter.asarray(a), adapter.asarray(b))
    assert_mul_sum_close(adapter.to_numpy(out), a, b)


@pytest.mark.parametrize(("name", "device"), KERNEL_PAIRS)
def test_other_layouts_take_another_formulation_and_stay_right(name, device):
    adapter = _adapter(name, device)
    a, b = host_inputs((300, 64), "float32", seed=12)
    x, y = adapter.asarray(a), adapter.asarray(b)
    transposed = adapter.to_numpy(adapter.mul_sum(x.T, y.T))  # F-ordered: (64, 300)
    assert_mul_sum_close(transposed, a.T, b.T)
    broadcast = adapter.to_numpy(adapter.mul_sum(x, y[:, :1]))  # (300, 1) against (300, 64)
    assert_mul_sum_close(broadcast, a, b[:, :1])


@pytest.mark.parametrize(("name", "device"), KERNEL_PAIRS)
def test_products_are_rounded_before_they_are_added(name, device):
    # Column 0 sums -1e38 + 2e38 * 2: the product overflows to inf in float32, as in
    # every other strategy; a fused multiply-add would round once and return 3e38.
    # K is wide enough that one lane sums the whole column inside the kernel's loop.
    adapter = _adapter(name, device)
    a, b = host_inputs((2, 1_200_000), "float32", seed=13)
    a[:, 0], b[:, 0] = (-1e38, 2e38), (1.0, 2.0)
    out = adapter.to_numpy(adapter.mul_sum(adapter.asarray(a), adapter.asarray(b)))
    assert out[0] == np.inf
    assert_mul_sum_close(out[1:], a[:, 1:], b[:, 1:])


_INTERPRETED_TRITON = r"""
import numpy as np, torch
import triton.runtime.interpreter as interpreter

# Triton's interpreter turns a scalar argument into a 1-element array and int()s it,
# which NumPy 2 refuses: take its one element.
patch_tensor = interpreter._patch_lang_tensor

def patch_tensor_with_index(tensor, scope):
    patch_tensor(tensor, scope)
    scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

interpreter._patch_lang_tensor = patch_tensor_with_index

from xbackend.backends import triton_kernels
from xbackend.core.shapes import strided_partials_layout, sum_strided_partials
from xbackend.measure import host_inputs
from xbackend.testing import assert_mul_sum_close

def partials(a, b, k, groups, transposed, rows_per_trip):
    # The launcher itself, with its rows per trip fixed.
    triton_kernels.gpu_rows_per_trip = lambda itemsize: rows_per_trip
    out = torch.empty(groups * k, dtype=torch.float64 if a.dtype == torch.float64 else torch.float32)
    triton_kernels.strided_partial_sums(a, b, out, k, groups, transposed)
    return out

for dtype in ("float32", "float16", "float64"):
    for n, k in ((50_000, 1), (20_000, 5), (10_007, 3), (9, 2500)):  # several trips each
        host_a, host_b = host_inputs((n, k), dtype, seed=n)
        a, b = torch.from_numpy(host_a), torch.from_numpy(host_b)
        groups, transposed = strided_partials_layout(n, k, 1)  # one SM: a few thousand lanes
        one = partials(a, b, k, groups, transposed, 1)
        for rows in (2, 4):  # the same sums in the same order: bit for bit
            assert torch.equal(partials(a, b, k, groups, transposed, rows), one), (dtype, n, k, rows)
        # A lane that strayed into another column lands far outside the bound.
        out = sum_strided_partials(one, k, groups, transposed, one.dtype).to(a.dtype)
        assert_mul_sum_close(out.numpy(), host_a, host_b)
print("ok")
"""


def test_triton_kernel_unrolled_trips_add_in_order_in_the_interpreter():
    # Runs torch-triton's kernel on the CPU under Triton's interpreter (where Triton is
    # installed): the unrolled trips must give the one-row trips' sums bit for bit.
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run([sys.executable, "-c", _INTERPRETED_TRITON], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def _rounded_lane_sums(a: np.ndarray, b: np.ndarray, step: int) -> np.ndarray:
    """Lane l's float32 sum of a.flat[l::step] * b.flat[l::step], each product and each sum rounded, in row order."""
    products = a.ravel().astype(np.float32) * b.ravel().astype(np.float32)
    rows = np.concatenate([products, np.zeros(-products.size % step, np.float32)]).reshape(-1, step)
    sums = np.zeros(step, np.float32)
    for row in rows:
        sums = sums + row
    return sums


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize(("n", "k"), [(50_000, 1), (10_007, 3), (9, 2500)])
def test_pallas_kernel_sums_each_lane_in_row_order_in_the_interpreter(n, k, dtype):
    # jax-pallas's kernel under Pallas's interpreter (XLA:CPU): with one, two or four
    # rows per trip, every lane's sum is the sequential float32 sum of its products,
    # bit for bit; the partials' last block and last trip are masked.
    jax = pytest.importorskip("jax")
    kernels = pytest.importorskip("xbackend.backends.pallas_kernels")
    a, b = host_inputs((n, k), dtype, seed=n)
    groups, _ = strided_partials_layout(n, k, 1)  # one SM: a few thousand lanes, several trips
    expected = _rounded_lane_sums(a, b, groups * k)
    for rows in (1, 2, 4):
        partials = jax.jit(
            lambda x, y, rows=rows: kernels.strided_partial_sums(
                x.reshape(-1), y.reshape(-1), k, groups, np.float32, rows_per_trip=rows, interpret=True
            )
        )(a, b)
        np.testing.assert_array_equal(np.asarray(partials), expected, err_msg=f"{rows} rows per trip")


@pytest.mark.parametrize(
    ("shape_a", "shape_b", "dtype_b"),
    [
        ((4096, 24), (4096, 24), "bfloat16"),  # the kernel
        ((3, 4), (3, 4), "bfloat16"),  # the kernel, one program
        ((4096, 24), (1, 24), "bfloat16"),  # a broadcast: jax-jit's formulation
        ((4096, 24), (4096, 24), "float32"),  # a dtype mix: jax-jit's formulation
        ((0, 24), (0, 24), "bfloat16"),  # empty sums
    ],
)
def test_pallas_strategy_kernel_matches_the_oracle_in_the_interpreter(shape_a, shape_b, dtype_b):
    jax = pytest.importorskip("jax")
    pytest.importorskip("xbackend.backends.pallas_kernels")
    from xbackend.backends.jax import _pallas_mul_sum_kernel
    from xbackend.core.dtypes import numpy_dtype
    from xbackend.core.semantics import plan_mul_sum

    if 0 in shape_a:
        a, b = np.empty(shape_a, numpy_dtype("bfloat16")), np.empty(shape_b, numpy_dtype(dtype_b))
    else:
        a, _ = host_inputs(shape_a, "bfloat16", seed=21)
        _, b = host_inputs(shape_b, dtype_b, seed=22)
        a[0, 0], b[0, 0] = -a[0, 0], -b[0, 0]  # sign errors show
    plan = plan_mul_sum(shape_a, "bfloat16", shape_b, dtype_b)
    kernel = functools.partial(
        _pallas_mul_sum_kernel,
        full_shape=plan.full_shape,
        out_dtype=numpy_dtype(plan.out_dtype),
        acc_dtype=numpy_dtype(plan.acc_dtype),
        multiprocessors=1,
        interpret=True,
    )
    out = np.asarray(jax.jit(kernel)(a, b))
    assert out.dtype == numpy_dtype(plan.out_dtype) and out.shape == plan.out_shape
    assert_mul_sum_close(out, a, b)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_pallas_kernel_lowers_to_triton_with_rounded_products(dtype):
    # The CUDA lowering runs on any machine (jax.export for the "cuda" platform): the
    # kernel becomes one Triton call whose products are PTX mul.rn, never contracted
    # into a fused multiply-add, followed by XLA's sum of the partials.
    jax = pytest.importorskip("jax")
    pytest.importorskip("xbackend.backends.pallas_kernels")
    from jax import export

    from xbackend.backends.jax import _pallas_mul_sum_kernel
    from xbackend.core.dtypes import numpy_dtype

    kernel = functools.partial(
        _pallas_mul_sum_kernel,
        full_shape=(4096, 32),
        out_dtype=numpy_dtype(dtype),
        acc_dtype=np.dtype(np.float32),
        multiprocessors=132,
    )
    spec = jax.ShapeDtypeStruct((4096, 32), numpy_dtype(dtype))
    triton_call = "__gpu$xla.gpu.triton"
    exported = export.export(
        jax.jit(kernel), platforms=["cuda"], disabled_checks=[export.DisabledSafetyCheck.custom_call(triton_call)]
    )(spec, spec)
    module = exported.mlir_module()
    assert module.count(f"stablehlo.custom_call @{triton_call}") == 1
    assert "mul.rn.f32 $0, $1, $2;" in module
    assert "stablehlo.reduce" in module  # the partials' sum, in the same executable


_PALLAS_WITHOUT_X64 = r"""
import functools
import numpy as np, jax
from jax import export
assert not jax.config.jax_enable_x64
from xbackend.backends import pallas_kernels
from xbackend.backends.jax import _pallas_mul_sum_kernel
from xbackend.core.shapes import strided_partials_layout
from xbackend.measure import host_inputs
from xbackend.testing import assert_mul_sum_close

# JAX's default, 32-bit integers: the offsets pallas_kernels.fits guards.
a, b = host_inputs((10_007, 3), "float32", seed=3)
groups, _ = strided_partials_layout(10_007, 3, 1)
kernel = functools.partial(
    _pallas_mul_sum_kernel, full_shape=(10_007, 3), out_dtype=a.dtype, acc_dtype=a.dtype, multiprocessors=1
)
assert_mul_sum_close(np.asarray(jax.jit(functools.partial(kernel, interpret=True))(a, b)), a, b)
spec = jax.ShapeDtypeStruct(a.shape, a.dtype)
triton_call = "__gpu$xla.gpu.triton"
module = export.export(
    jax.jit(kernel), platforms=["cuda"], disabled_checks=[export.DisabledSafetyCheck.custom_call(triton_call)]
)(spec, spec).mlir_module()
assert module.count(f"stablehlo.custom_call @{triton_call}") == 1 and "mul.rn.f32" in module
assert pallas_kernels.fits(2**30, 2**16, 4) and not pallas_kernels.fits(2**31 - 2**16, 2**16, 4)
print("ok")
"""


def test_pallas_kernel_runs_and_lowers_with_32_bit_offsets():
    # The suite runs with JAX_ENABLE_X64=1 (64-bit loop indices); users and the GPU
    # compare run JAX's default, where the kernel's offsets are 32-bit.
    pytest.importorskip("jax")
    pytest.importorskip("xbackend.backends.pallas_kernels")
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    done = subprocess.run([sys.executable, "-c", _PALLAS_WITHOUT_X64], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
