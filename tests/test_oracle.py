"""The exact oracle and the rigorous bound of ``xbackend.testing``, on hand-computed cases."""

import math
import warnings

import numpy as np
import pytest

from xbackend.core.dtypes import numpy_dtype
from xbackend.testing import check_mul_sum, error_bound, gamma, reference

U32, U16, U64 = 2.0**-24, 2.0**-11, 2.0**-53


def arrays(dtype, *rows):
    return tuple(np.array(row, dtype=numpy_dtype(dtype)) for row in rows)


# -- exactness ---------------------------------------------------------------


def test_catastrophic_cancellation_is_exact_in_float64():
    a, b = arrays("float64", [1e16, 1.0, -1e16], [1.0, 1.0, 1.0])
    assert np.sum(a * b) == 0.0  # what naive float64 summation gives
    assert reference(a, b).exact == 1.0


def test_float32_products_and_sums_are_exact():
    a, b = arrays("float32", [16777216.0, 1.0, -16777216.0], [3.0, 1.0, 3.0])
    assert reference(a, b).exact == 1.0


def test_float64_products_are_split_error_free():
    # (1 + 2**-30)**2 = 1 + 2**-29 + 2**-60: the 2**-60 is lost by a float64 product
    # and survives only through Dekker's TwoProduct.
    x = 1 + 2.0**-30
    a, b = arrays("float64", [x, -1.0], [x, 1 + 2.0**-29])
    assert np.sum(a * b) == 0.0
    assert reference(a, b).exact == 2.0**-60


def test_float64_sum_beyond_range_is_infinite_not_an_error():
    a, b = arrays("float64", [2.0**994, 2.0**994], [2.0**29, 2.0**29])
    assert reference(a, b).exact == math.inf
    a, b = arrays("float64", [2.0**994, 2.0**994, -(2.0**994)], [2.0**29, 2.0**29, 2.0**29])
    assert reference(a, b).exact == 2.0**1023  # fsum overflows internally; the sum does not


def test_float64_beyond_the_split_range_is_summed_exactly():
    assert reference(*arrays("float64", [2.0**996], [1.0])).exact == 2.0**996
    # Products that underflow float64: each rounds to the smallest subnormal, their exact sum is 3 of them.
    x, y = 3 * 2.0**-538, 2.0**-538
    assert reference(*arrays("float64", [x] * 4, [y] * 4)).exact == 3 * 2.0**-1074
    wrong = np.array([2.0**995])
    assert check_mul_sum(wrong, *arrays("float64", [2.0**996], [1.0])).failure is not None


def test_a_float64_product_past_the_range_is_a_finite_term_not_an_infinite_input():
    # 1e400 - 1e400 is exactly 0; IEEE products give inf - inf (NaN), a fused multiply-add
    # (XLA) inf or -inf: each is an overflow of one sign's terms, so each is accepted.
    a, b = arrays("float64", [1e200, 1e200], [1e200, -1e200])
    assert reference(a, b).exact == 0.0
    for got in (math.nan, math.inf, -math.inf, 0.0):
        assert check_mul_sum(np.array(got), a, b).failure is None, got
    # With only positive terms past the range, -inf and NaN are wrong.
    a, b = arrays("float64", [1e200, 1.0], [1e200, -1.0])
    assert reference(a, b).exact == math.inf
    for got in (math.nan, -math.inf):
        assert check_mul_sum(np.array(got), a, b).failure is not None, got
    # A true infinity still decides the sum, whatever the finite terms do.
    a, b = arrays("float64", [math.inf, 1e200], [1.0, -1e200])
    assert reference(a, b).exact == math.inf


def test_a_sum_past_float64s_range_is_a_real_number_not_an_infinite_input():
    # Terms -1e309 and +1e310: the exact sum 9e309 rounds to inf, and both signs' terms
    # overflow float64, so a fused loop's -inf (the first product) is as correct as inf.
    a, b = arrays("float64", [1e300, 1e300], [-1e9, 1e10])
    assert reference(a, b).exact == math.inf
    for got in (math.inf, -math.inf, math.nan):
        assert check_mul_sum(np.array(got), a, b).failure is None, got
    assert "past float64's range" in check_mul_sum(np.array(1.0), a, b).failure
    # 2**1024 - 2**969 rounds to inf; the largest float64 is within the bound of it.
    a, b = arrays("float64", [np.finfo(np.float64).max, 2.0**969, 2.0**969, 2.0**969], [1.0] * 4)
    assert reference(a, b).exact == math.inf
    assert check_mul_sum(np.array(np.finfo(np.float64).max), a, b).failure is None
    assert check_mul_sum(np.array(np.finfo(np.float64).max / 2), a, b).failure is not None


def test_products_that_underflow_to_zero_keep_a_bound():
    # Each product is 2**-1075, rounded to 0 in float64; their exact sum is the smallest subnormal.
    a, b = arrays("float64", [2.0**-540] * 2, [2.0**-535] * 2)
    assert reference(a, b).exact == 2.0**-1074
    assert check_mul_sum(np.array(0.0), a, b).failure is None
    assert check_mul_sum(np.array(1e-300), a, b).failure is not None


def test_a_product_past_the_range_leaves_a_finite_bound():
    # Exact sum 1; every IEEE order gives inf or NaN, and no finite result but ~1 is right.
    a, b = arrays("float64", [2.0**512, 2.0**512, 1.0], [2.0**513, -(2.0**513), 1.0])
    assert reference(a, b).exact == 1.0
    assert np.isfinite(error_bound(reference(a, b))).all()
    for got, ok in ((1.0, True), (math.nan, True), (1e300, False), (-1.0e300, False), (0.0, True)):
        assert (check_mul_sum(np.array(got), a, b).failure is None) == ok, got
    # A complex part whose exact sum is in range cannot be an infinity there.
    a, b = arrays("complex128", [1 + 2.0**512 * 1j], [-1 - 2.0**512 * 1j])
    assert check_mul_sum(np.array(complex(math.inf, -(2.0**513))), a, b).failure is None
    assert check_mul_sum(np.array(complex(math.inf, -math.inf)), a, b).failure is not None


def test_a_complex_result_whose_magnitude_is_past_the_range_keeps_a_finite_bound():
    # Both parts are in range; |exact| = 2.1e308 is not: the bound (~1e293) must stay finite.
    a, b = arrays("complex128", [1.5e308 + 1.5e308j], [1.0 + 0j])
    assert np.isfinite(error_bound(reference(a, b))).all()
    assert check_mul_sum(np.array(1.5e308 + 1.5e308j), a, b).failure is None
    for wrong in (0j, 1 + 2j, complex(math.inf, math.inf), 1.5e308 - 1.5e308j):
        assert check_mul_sum(np.array(wrong), a, b).failure is not None, wrong


def test_the_probabilistic_bound_survives_terms_whose_sum_overflows():
    # The finite terms' positive and negative sums overflow, the running sum never does:
    # left to right gives 1.0, exact 1 + 2**-52, within both bounds (no NaN bound).
    a = np.r_[np.tile([1e308, -1e308], 40), [1.0, 2.0**-53, 2.0**-53]]
    b = np.ones_like(a)
    for bound in ("rigorous", "probabilistic"):
        assert np.isfinite(error_bound(reference(a, b), bound)).all()
        assert check_mul_sum(np.asarray(1.0), a, b, bound).failure is None, bound


def test_a_bound_past_the_range_is_compared_in_scaled_units():
    # |products| sum to 2e600: the bound (~1e585) is past float64's range, the exact sum 1e400 too.
    # A wider accumulator returns 0.0 (within the bound); 1e300 too; nothing is a NaN ratio.
    a, b = arrays("float64", [1e300, 1e300, 1e300], [1e300, 1e100, -1e300])
    for got in (0.0, 1e300, -np.finfo(np.float64).max):
        assert check_mul_sum(np.asarray(got), a, b).failure is None, got
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert error_bound(reference(np.array([1e200]), np.array([1e200]))) == math.inf


def test_complex_is_multiplied_without_conjugation():
    a, b = arrays("complex64", [1 + 2j], [3 + 4j])
    assert reference(a, b).exact == -5 + 10j
    wrong = np.array(np.conj(a[0]) * b[0], dtype=np.complex64)  # 11 - 2j
    assert check_mul_sum(wrong, a, b).failure is not None


@pytest.mark.parametrize(
    ("dtype_a", "a", "dtype_b", "b", "out_dtype", "exact"),
    [
        ("int32", [2**31 - 1, 1], "int32", [1, 1], "int32", -(2**31)),
        ("int64", [2**62, 2**62], "int64", [2, 2], "int64", 0),
        ("int8", [-128], "uint8", [255], "int16", -32640),
        ("int8", [100] * 4, "uint8", [100] * 4, "int16", 40000 - 65536),
    ],
)
def test_integers_wrap_in_the_result_dtype(dtype_a, a, dtype_b, b, out_dtype, exact):
    a, b = np.array(a, numpy_dtype(dtype_a)), np.array(b, numpy_dtype(dtype_b))
    ref = reference(a, b)
    assert ref.exact.dtype == numpy_dtype(out_dtype) and ref.exact == exact
    assert error_bound(ref) == 0
    assert check_mul_sum(np.array(exact, numpy_dtype(out_dtype)), a, b).failure is None
    assert check_mul_sum(np.array(exact + 1, numpy_dtype(out_dtype)), a, b).failure is not None


@pytest.mark.parametrize(
    ("a", "b", "exact"),
    [
        ([math.inf, 1.0], [0.0, 1.0], math.nan),  # inf * 0
        ([math.inf, -math.inf], [1.0, 1.0], math.nan),  # inf - inf
        ([math.inf, 1.0], [1.0, -5.0], math.inf),
        ([-math.inf, math.inf], [1.0, -1.0], -math.inf),
        ([math.nan, 1.0], [1.0, 1.0], math.nan),
    ],
)
def test_special_values_follow_ieee(a, b, exact):
    a, b = arrays("float32", a, b)
    got = reference(a, b).exact
    assert (math.isnan(got) and math.isnan(exact)) or got == exact
    assert check_mul_sum(np.array(exact, np.float32), a, b).failure is None
    assert check_mul_sum(np.array(0.0, np.float32), a, b).failure is not None


def test_empty_sum_is_zero():
    ref = reference(*arrays("float32", np.zeros((0, 3)), np.zeros((0, 3))))
    assert ref.exact.shape == (3,) and not ref.exact.any()
    assert not reference(*arrays("int32", [], [])).exact


# -- the bound ---------------------------------------------------------------


def test_gamma():
    assert gamma(10, U32) == 10 * U32 / (1 - 10 * U32)
    assert gamma(0, U32) == 0
    assert gamma(2**24, U32) == math.inf


def test_bound_formula_float32():
    # Not integers: their sums would be exact in every order (see test_exact_sums_are_bounded_by_output_rounding).
    a, b = arrays("float32", [1.1, 2.2, 3.3, 4.4], [1, 1, 1, -1])
    big, s = np.abs(a.astype(np.float64)).sum(), float(np.sum(a.astype(np.float64) * b))
    expected = 2 * (U32 + gamma(4, U32)) * big + 4 * 2.0**-126 + (U32 + U64) * abs(s) + U32 * 2.0**-126
    assert error_bound(reference(a, b)) == pytest.approx(expected, rel=1e-15)


def test_bound_formula_half_precision_products_are_formed_in_float32():
    a, b = arrays("float16", [1.1e-3, 2.2, 3.3, 4.4e3], [1.3, 1.7, 1.9, -1.1])
    p = a.astype(np.float64) * b.astype(np.float64)  # exact: float16 products fit float32's significand
    big, s = np.abs(p).sum(), float(p.sum())
    assert not reference(a, b).components[0].exact  # S exceeds 2**24 times the products' quantum
    # Products are formed in float32, exactly: no float16 rounding term, only float32's and the output's.
    expected = 2 * (U32 + gamma(4, U32)) * big + 4 * 2.0**-126 + (U16 + U64) * abs(s) + U16 * 2.0**-14
    assert error_bound(reference(a, b)) == pytest.approx(expected, rel=1e-15)


def test_bound_catches_one_dropped_row_and_admits_the_correct_result():
    rng = np.random.default_rng(0)
    a, b = (rng.uniform(0.5, 1, 1000).astype(np.float32) for _ in range(2))
    correct = np.einsum("i,i->", a, b)
    dropped = np.einsum("i,i->", a[:-1], b[:-1])
    assert check_mul_sum(np.asarray(correct), a, b).failure is None
    assert check_mul_sum(np.asarray(dropped), a, b).failure is not None


def test_an_exact_sum_among_the_output_subnormals_may_round_to_half_their_spacing():
    # 2**-10 - 65533 * 2**-26 = 3 * 2**-26: summed exactly, and a float16 subnormal
    # (spacing 2**-24). Rounded correctly it is 2**-24, a quarter of that spacing off,
    # far more than u_out |s|; a zero or a negated result is still out of bound.
    a, b = arrays("float16", [2.0**-5, -923 * 2.0**-16], [2.0**-5, 71 * 2.0**-10])
    assert reference(a, b).components[0].exact.all()
    assert check_mul_sum(np.array(2.0**-24, np.float16), a, b).failure is None
    assert check_mul_sum(np.array(0.0, np.float16), a, b).failure is not None
    assert check_mul_sum(np.array(-(2.0**-24), np.float16), a, b).failure is not None


def test_subnormal_results_are_bounded_absolutely():
    # 3 * 2**-25 is a float16 subnormal: correct rounding gives 2**-23 (ties to even).
    a, b = arrays("float16", [2.0**-13] * 3, [2.0**-12] * 3)
    assert check_mul_sum(np.array(2.0**-23, np.float16), a, b).failure is None
    # XLA:CPU flushes float32 subnormals to zero: allowed, a large error is not.
    a, b = arrays("float32", [2.0**-140] * 3, [1.0] * 3)
    assert check_mul_sum(np.array(0.0, np.float32), a, b).failure is None
    assert check_mul_sum(np.array(1e-30, np.float32), a, b).failure is not None


def test_a_result_that_may_round_to_infinity_may_be_infinite():
    a, b = arrays("float16", [65504, 15], [1, 1])  # exact 65519, within the bound of inf
    assert check_mul_sum(np.array(np.inf, np.float16), a, b).failure is None
    assert check_mul_sum(np.array(-np.inf, np.float16), a, b).failure is not None


def test_wrong_dtype_shape_and_nan_are_failures():
    a, b = arrays("float32", [[1, 2], [3, 4]], [[1, 1], [1, 1]])
    assert "dtype float32" in check_mul_sum(np.array([4.0, 6.0]), a, b).failure
    assert "shape (2,)" in check_mul_sum(np.array([4.0], np.float32), a, b).failure
    assert check_mul_sum(np.array([4.0, np.nan], np.float32), a, b).failure is not None
    assert check_mul_sum(np.array([4.0, 6.0], np.float32), a, b).ratio == 0


def test_an_infinite_imaginary_sum_leaves_the_real_sum_as_it_is():
    # (-0.5+0j) * (-inf+0j): real 0.5 * inf - 0 * 0 = inf, imaginary -0.5 * 0 + 0 * -inf = NaN.
    # The real part is +inf, not the NaN that 1j * nan would have written into it.
    a = np.array([-0.5 + 0j, 1 + 1j], np.complex64)
    b = np.array([complex(-np.inf, 0), 2 + 0j], np.complex64)
    exact = reference(a, b).exact
    assert exact.real == np.inf and np.isnan(exact.imag)
    with np.errstate(invalid="ignore"):
        out = np.complex64(complex(np.inf, np.nan))
    assert check_mul_sum(np.array(out), a, b).failure is None
    assert check_mul_sum(np.array(np.complex64(complex(np.nan, np.nan))), a, b).failure is not None


@pytest.mark.parametrize("dtype", ["complex64", "complex128"])
def test_an_infinity_in_a_components_second_product_decides_its_sum(dtype):
    # (1+1j) * (inf+0j): imaginary 1 * 0 + 1 * inf = inf, real 1 * inf - 1 * 0 = inf. The
    # infinity of the imaginary part comes from its second product (imag(a) * real(b)).
    a = np.array([1 + 1j, 2 + 0j], dtype)
    b = np.array([complex(np.inf, 0), 1 + 3j], dtype)
    exact = reference(a, b).exact
    assert exact.real == np.inf and exact.imag == np.inf
    assert check_mul_sum(np.array(np.sum(a * b), dtype), a, b).failure is None
    assert check_mul_sum(np.array(complex(np.inf, np.nan), dtype), a, b).failure is not None
    # Both products of the real part infinite, of opposite signs: NaN, however it is summed.
    a = np.array([complex(1, -1)], dtype)
    b = np.array([complex(np.inf, -np.inf)], dtype)
    exact = reference(a, b).exact
    assert np.isnan(exact.real) and exact.imag == -np.inf  # imaginary: 1 * -inf + -1 * inf
