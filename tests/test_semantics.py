"""The shared shape and dtype rules, checked without any framework."""

import re

import pytest

from xbackend import plan_mul_sum
from xbackend.core.dtypes import SUPPORTED_DTYPES, accumulation_dtype, promote


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "full_shape"),
    [
        ((5,), (5,), (5,)),
        ((5, 3), (5, 3), (5, 3)),
        ((1, 3), (5, 3), (5, 3)),  # dim 0 broadcasts from 1
        ((5, 3), (1, 3), (5, 3)),
        ((5, 1), (5, 3), (5, 3)),  # trailing dims broadcast
        ((5, 3, 1), (1, 1, 4), (5, 3, 4)),
        ((0, 3), (0, 3), (0, 3)),  # N = 0
        ((0, 3), (1, 3), (0, 3)),
    ],
)
def test_plan_shapes(a_shape, b_shape, full_shape):
    plan = plan_mul_sum(a_shape, "float32", b_shape, "float32")
    assert plan.full_shape == full_shape
    assert plan.out_shape == full_shape[1:]
    assert plan.n == full_shape[0]


@pytest.mark.parametrize(
    ("a_shape", "b_shape", "message"),
    [
        ((), (3,), "at least one dimension"),
        ((3,), (), "at least one dimension"),
        ((3, 2), (3,), r"same number of dimensions; got shapes \(3, 2\) \(2-d\) and \(3,\) \(1-d\)"),
        ((3, 2), (4, 2), r"dim 0 .* \(3, 2\) and \(4, 2\)"),
        ((0, 2), (3, 2), r"dim 0"),
        ((3, 2), (3, 4), r"shapes \(3, 2\) and \(3, 4\) do not broadcast"),
    ],
)
def test_plan_rejects_bad_shapes(a_shape, b_shape, message):
    with pytest.raises(ValueError, match=message):
        plan_mul_sum(a_shape, "float32", b_shape, "float32")


@pytest.mark.parametrize(
    ("a", "b", "result"),
    [
        ("float32", "float32", "float32"),
        ("float16", "float32", "float32"),
        ("float16", "bfloat16", "float32"),
        ("bfloat16", "bfloat16", "bfloat16"),
        ("float32", "float64", "float64"),
        ("complex64", "float32", "complex64"),
        ("complex64", "float64", "complex128"),
        ("complex64", "float16", "complex64"),
        ("int8", "int32", "int32"),
        ("int8", "uint8", "int16"),
        ("uint8", "int64", "int64"),
        ("uint8", "uint8", "uint8"),
    ],
)
def test_promotion_table(a, b, result):
    assert promote(a, b) == result
    assert promote(b, a) == result


@pytest.mark.parametrize(("a", "b"), [("int32", "float32"), ("float64", "int8"), ("uint8", "complex64")])
def test_mixing_integer_and_floating_is_refused(a, b):
    with pytest.raises(TypeError, match=f"integer and floating inputs .*{a}.*{b}"):
        plan_mul_sum((3,), a, (3,), b)


@pytest.mark.parametrize("dtype", ["bool", "object", "<U3", "datetime64[s]", "float128"])
def test_non_numeric_dtypes_are_refused(dtype):
    with pytest.raises(TypeError, match=re.escape(f"first input has dtype '{dtype}'; mul_sum needs a numeric dtype")):
        plan_mul_sum((3,), dtype, (3,), "float32")


def test_half_precision_accumulates_in_float32_and_others_in_their_own_dtype():
    assert accumulation_dtype("float16") == "float32"
    assert accumulation_dtype("bfloat16") == "float32"
    for dtype in set(SUPPORTED_DTYPES) - {"float16", "bfloat16"}:
        assert accumulation_dtype(dtype) == dtype
