"""The probabilistic verdict catches faults the rigorous bound cannot see, and passes every correct adapter.

Planted faults (``planted_faults.py``) at N = 1e5 and 1e6: a sign flip is
caught on data whose exact sum is far from zero (``b = a + noise``: zero-mean
data hides sign flips, the exact sum being ~sqrt(N) while sum |a b| ~ N); a
dropped row is caught on integer-valued data, whose sum every order computes
exactly (for general data one row of ordinary size is below the rounding error
a correct float32 sum makes at this N). Every CPU adapter passes the same data
with the probabilistic verdict, and obeys ``mul_sum(-a, b) == -mul_sum(a, b)``.
The exact oracle runs ``math.fsum`` per column: about 0.3 s per million terms.
"""

import functools
import math

import numpy as np
import pytest
from planted_faults import DropsLastRow, NegatesResult

from xbackend.testing import (
    FAILURE_PROBABILITY,
    check_against,
    check_mul_sum,
    error_bound,
    gamma,
    gamma_probabilistic,
    probabilistic_lambda,
    reference,
)

U32 = 2.0**-24


@functools.cache
def correlated(n: int, k: int):
    """float32 ``a`` normal, ``b = a + 0.3 noise``: sum |a b| / |sum a b| is about 1.1."""
    rng = np.random.default_rng([n, k, 1])
    a = rng.standard_normal((n, k)).astype(np.float32)
    b = (a + 0.3 * rng.standard_normal((n, k))).astype(np.float32)
    return a, b, reference(a, b)


@functools.cache
def integers(n: int, k: int):
    """float32 small integers (sums exact in every order, S < 2**24); the last row's products are 9."""
    rng = np.random.default_rng([n, k, 2])
    a = rng.integers(-4, 5, (n, k)).astype(np.float32)
    b = (a + rng.integers(-1, 2, (n, k))).astype(np.float32)
    a[-1], b[-1] = 3, 3
    return a, b, reference(a, b)


DATA = {
    "correlated-1e6x1": (correlated, 10**6, 1),
    "correlated-1e6x4": (correlated, 10**6, 4),
    "integers-1e6x1": (integers, 10**6, 1),
    "integers-1e5x4": (integers, 10**5, 4),
}


def data(name: str):
    make, n, k = DATA[name]
    return make(n, k)


# -- the numbers of the docstring ------------------------------------------------


def test_lambda_and_gamma_at_one_million_float32():
    lam = probabilistic_lambda(10**6, U32)
    assert lam == pytest.approx(9.18, abs=0.01)
    assert 2 * 10**6 * math.exp(-(lam**2) * (1 - U32) ** 2 / 2) == pytest.approx(FAILURE_PROBABILITY, rel=1e-9)
    assert gamma_probabilistic(10**6, U32, lam) == pytest.approx(5.47e-4, rel=1e-3)
    assert gamma(10**6, U32) > 100 * gamma_probabilistic(10**6, U32, lam)


def test_probabilistic_bound_is_never_looser_than_the_rigorous_one():
    rng = np.random.default_rng(3)
    for n in (1, 2, 10, 80, 1000):  # below lambda**2 the rigorous bound is the smaller
        a, b = rng.standard_normal((2, n, 3)).astype(np.float32)
        ref = reference(a, b)
        assert np.all(error_bound(ref, "probabilistic") <= error_bound(ref, "rigorous"))


def test_verdict_reports_both_ratios_and_the_bound_asked_for():
    a, b, ref = data("correlated-1e6x4")
    out = -np.einsum("i...,i...->...", a, b)
    rigorous, tight = check_against(out, ref), check_against(out, ref, "probabilistic")
    assert (rigorous.bound, tight.bound) == ("rigorous", "probabilistic")
    assert rigorous.probabilistic_ratio == tight.probabilistic_ratio == tight.ratio
    assert rigorous.rigorous_ratio == tight.rigorous_ratio == rigorous.ratio
    assert tight.ratio > 20 * rigorous.ratio
    with pytest.raises(ValueError, match="bound must be one of"):
        check_mul_sum(out, a, b, bound="loose")


# -- planted faults -------------------------------------------------------------


@pytest.mark.parametrize("name", ["correlated-1e6x1", "correlated-1e6x4"])
def test_sign_flip_is_caught_at_one_million(name):
    a, b, ref = data(name)
    verdict = check_against(NegatesResult("cpu").mul_sum(a, b), ref, "probabilistic")
    assert verdict.failure is not None and verdict.ratio > 100


def test_zero_mean_data_would_hide_the_sign_flip_from_the_rigorous_bound():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((2, 10**6, 1)).astype(np.float32)
    flipped = check_mul_sum(NegatesResult("cpu").mul_sum(a, b), a, b)
    assert flipped.failure is None  # why the planted-fault data is b = a + noise


@pytest.mark.parametrize("name", ["integers-1e6x1", "integers-1e5x4"])
def test_dropped_row_is_caught(name):
    a, b, ref = data(name)
    assert all(c.exact.all() for c in ref.components)  # integer data: the bound is the output rounding
    verdict = check_against(DropsLastRow("cpu").mul_sum(a, b), ref, "probabilistic")
    assert verdict.failure is not None
    assert check_against(DropsLastRow("cpu").mul_sum(a, b), ref).failure is not None  # exactness is rigorous


# -- no false failures: every CPU adapter on the same data -------------------------


@pytest.mark.parametrize("name", list(DATA))
def test_every_adapter_passes_the_tight_verdict(xbackend_adapter, name):
    ad = xbackend_adapter
    a, b, ref = data(name)
    x, y = ad.asarray(a), ad.asarray(b)
    out = ad.mul_sum(x, y)
    verdict = check_against(out, ref, "probabilistic")
    assert verdict.failure is None, verdict.failure
    # Negating an input negates every product and partial sum exactly, whatever the order.
    negated = ad.to_numpy(ad.mul_sum(ad.asarray(-a), y))
    np.testing.assert_array_equal(negated, -ad.to_numpy(out))
