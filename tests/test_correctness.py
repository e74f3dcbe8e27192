"""Property-based correctness of every available adapter against the exact oracle.

Each test runs once per (adapter, device) through the ``xbackend_adapter``
fixture of xbackend's own pytest plugin; choose adapters with
``--xbackend=numpy,jax-jit@cpu`` or ``XBACKEND_ADAPTERS``. Inputs are built on
the host by ``xbackend.correctness.build_case`` (seeded, exact in the dtype)
and laid out natively (transposed, Fortran-ordered, strided views). Hypothesis
draws the case descriptions; it runs derandomized, so CI sees the same cases
every time (``XBACKEND_EXAMPLES`` sets how many per test).
"""

import contextlib
import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xbackend import plan_mul_sum
from xbackend.cli import main
from xbackend.core.dtypes import numpy_dtype, numpy_dtype_name
from xbackend.testing import assert_mul_sum_close, check_mul_sum
from xbackend.testing.sweep import LAYOUTS, MAGNITUDES, CaseSpec, build_case, native_input, sweep

DTYPES = ["float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int32", "int64"]

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("XBACKEND_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    database=None,
    # The adapter fixture is a cached, stateless object: sharing it across examples is fine.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=DTYPES)
def dtype(request, xbackend_adapter):
    """A dtype the adapter supports here; the others skip with the adapter's own reason."""
    if request.param in xbackend_adapter.unsupported_dtypes():
        pytest.skip(xbackend_adapter.unsupported_dtype_reason(request.param))
    return request.param


@st.composite
def case_specs(draw):
    """Shapes (N in {0, 1, small, large}, K = 1, up to 3-D, broadcasting), layout, magnitude, specials."""
    ndim = draw(st.integers(1, 3))
    n = draw(st.sampled_from([0, 1]) | st.integers(2, 40) | st.just(3000))
    trailing = [draw(st.sampled_from([0, 1, 2, 3, 5])) for _ in range(ndim - 1)]
    a_shape, b_shape = [n, *trailing], [n, *trailing]
    broadcast_dim0 = draw(st.sampled_from([None, 0, 1]))
    if broadcast_dim0 is not None:
        (a_shape, b_shape)[broadcast_dim0][0] = 1
    for axis in range(1, ndim):
        side = draw(st.sampled_from([None, None, 0, 1]))
        if side is not None:
            (a_shape, b_shape)[side][axis] = 1
    return CaseSpec(
        tuple(a_shape),
        tuple(b_shape),
        layout=draw(st.sampled_from(LAYOUTS)),
        magnitude=draw(st.sampled_from(MAGNITUDES)),
        specials=draw(st.sampled_from([0, 0, 0, 1, 3])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@PROPERTY_SETTINGS
@given(spec=case_specs())
def test_mul_sum_matches_oracle(xbackend_adapter, dtype, spec):
    ad = xbackend_adapter
    case = build_case(spec, dtype)
    plan = plan_mul_sum(case.a.shape, dtype, case.b.shape, dtype)
    out = ad.mul_sum(native_input(ad, case.a, spec.layout), native_input(ad, case.b, spec.layout))
    assert ad.is_native(out), f"{spec.label}: result is {type(out)}"
    assert ad.dtype_name(out) == plan.out_dtype == dtype
    assert tuple(out.shape) == plan.out_shape
    assert ad.device_kind(ad.device_of(out)) == ad.device
    assert_mul_sum_close(out, case.a, case.b, bound="probabilistic")


def test_sweep_passes(xbackend_adapter):
    """The fixed sweep of ``xbackend check``: every shape rule, layout, magnitude, special, and N = 1e5."""
    rows = sweep(xbackend_adapter, DTYPES)
    failures = [f"{row.dtype}: {failure}" for row in rows for failure in row.failures]
    assert not failures, "\n".join(failures)
    ran = {row.dtype for row in rows if row.skipped is None}
    assert ran == set(DTYPES) - xbackend_adapter.unsupported_dtypes()
    assert all(row.cases > 0 for row in rows if row.skipped is None)


@pytest.mark.parametrize("dtype_name", ["int32", "int64"])
def test_integers_wrap_without_widening(xbackend_adapter, dtype_name):
    ad = xbackend_adapter
    if dtype_name in ad.unsupported_dtypes():
        pytest.skip(ad.unsupported_dtype_reason(dtype_name))
    top = np.iinfo(numpy_dtype(dtype_name)).max
    a = np.array([[top, 3], [1, top]], dtype=numpy_dtype(dtype_name))
    b = np.array([[1, top], [1, 2]], dtype=numpy_dtype(dtype_name))
    out = ad.to_numpy(ad.mul_sum(ad.asarray(a), ad.asarray(b)))
    assert numpy_dtype_name(out.dtype) == dtype_name
    modulus = 2 ** np.iinfo(out.dtype).bits
    exact = [
        (top + 1 + modulus // 2) % modulus - modulus // 2,
        (3 * top + 2 * top + modulus // 2) % modulus - modulus // 2,
    ]
    assert out.tolist() == exact


@pytest.mark.parametrize("dtype_name", ["float16", "bfloat16"])
def test_half_precision_accumulates_in_float32(xbackend_adapter, dtype_name):
    """1e5 same-sign products: a half-precision running sum stalls far below the exact sum."""
    ad = xbackend_adapter
    if dtype_name in ad.unsupported_dtypes():
        pytest.skip(ad.unsupported_dtype_reason(dtype_name))
    case = build_case(CaseSpec((100_000, 2), (100_000, 2), magnitude="positive", seed=7), dtype_name)
    out = ad.mul_sum(ad.asarray(case.a), ad.asarray(case.b))
    assert_mul_sum_close(out, case.a, case.b, bound="probabilistic")
    # The case discriminates: NumPy's axis-0 sum accumulates row by row in the input dtype.
    narrow = np.asarray(np.sum(case.a * case.b, axis=0))
    assert check_mul_sum(narrow, case.a, case.b).failure is not None


def test_complex_is_not_conjugated(xbackend_adapter):
    ad = xbackend_adapter
    if "complex64" in ad.unsupported_dtypes():
        pytest.skip(ad.unsupported_dtype_reason("complex64"))
    a = np.array([[1 + 2j, -3 + 0.5j]], dtype=np.complex64)
    b = np.array([[3 + 4j, 2 - 1j]], dtype=np.complex64)
    out = ad.to_numpy(ad.mul_sum(ad.asarray(a), ad.asarray(b)))
    assert out.dtype == np.complex64
    assert out.tolist() == [-5 + 10j, -5.5 + 4j]  # (1+2j)(3+4j), (-3+0.5j)(2-1j): exact in float32


@contextlib.contextmanager
def _permissive_torch_precision():
    import torch

    # TF32 switched on the way most user code does it, through the legacy flag:
    # a strategy's own pin must cope with a setting made through the other API.
    matmul = torch.backends.cuda.matmul
    saved = (
        torch.get_float32_matmul_precision(),
        matmul.allow_fp16_reduced_precision_reduction,
        matmul.allow_bf16_reduced_precision_reduction,
    )
    matmul.allow_tf32 = True
    matmul.allow_fp16_reduced_precision_reduction = matmul.allow_bf16_reduced_precision_reduction = True
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved[0])
        matmul.allow_fp16_reduced_precision_reduction, matmul.allow_bf16_reduced_precision_reduction = saved[1:]


@contextlib.contextmanager
def _permissive_jax_precision():
    import jax

    with jax.default_matmul_precision("bfloat16"):
        yield


# The global switches that trade precision for speed on NVIDIA GPUs, set to their
# fastest (least precise) values. CuPy's equivalent, CUPY_TF32, is read at import.
PERMISSIVE_PRECISION = {"torch": _permissive_torch_precision, "jax": _permissive_jax_precision}


def test_results_do_not_depend_on_global_precision_flags(xbackend_adapter):
    """With TF32 and reduced-precision reductions allowed globally, every adapter still meets the bound."""
    ad = xbackend_adapter
    if ad.device == "cpu":
        pytest.skip("TF32 / reduced-precision reduction flags act only on NVIDIA GPUs")
    if ad.framework not in PERMISSIVE_PRECISION:
        pytest.skip(f"{ad.framework} has no run-time precision switch")
    specs = [
        CaseSpec((257, 33), (257, 33)),
        CaseSpec((4096, 64), (4096, 64), magnitude="wide"),
        CaseSpec((100_000, 2), (100_000, 2), magnitude="positive"),
    ]
    with PERMISSIVE_PRECISION[ad.framework]():
        rows = sweep(ad, ["float16", "bfloat16", "float32", "complex64"], specs=specs)
    failures = [f"{row.dtype}: {failure}" for row in rows for failure in row.failures]
    assert not failures, "\n".join(failures)


def test_check_command_prints_one_row_per_dtype_and_exits_0(capsys):
    assert main(["check", "--adapters", "numpy", "--dtypes", "float32,int32"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^numpy +cpu +float32 +\d+ +[0-9.e-]+ +pass$", out, re.M)
    assert re.search(r"^numpy +cpu +int32 +\d+ +0 +pass$", out, re.M)


def test_check_command_rejects_unknown_adapters(capsys):
    assert main(["check", "--adapters", "nope"]) == 2
    assert "unknown adapter 'nope'" in capsys.readouterr().err
