"""Correctness helpers for ``sum(a * b, axis=0)``: an exact oracle and a rigorous error bound.

Import these in your own cross-framework tests::

    from xbackend.testing import assert_mul_sum_close
    assert_mul_sum_close(out, a, b)   # any mix of NumPy / torch / JAX / CuPy arrays

The bound (Higham, *Accuracy and Stability of Numerical Algorithms*, sec. 3.1).
Let ``p_i = a_i b_i`` exactly, ``S = sum_i |p_i|`` and ``s = sum_i p_i``. The
inputs are cast to the accumulation dtype (exact: it only widens), each product
is formed and rounded in that dtype, ``|fl(p_i) - p_i| <= u_acc |p_i|`` (float16
and bfloat16 products are exact in float32 unless they leave its range). Any
summation order (recursive, pairwise, blocked, tree) in a dtype of unit
roundoff ``u_acc`` adds at most ``gamma_N(u_acc) * sum_i |fl(p_i)|`` with
``gamma_N(u) = N u / (1 - N u)``. Rounding the sum to the output dtype adds
``u_out |s|``. Hence the rigorous bound::

    |out - s| <= c * (u_acc + gamma_N(u_acc)) * S + u_out * |s|,   c = 2

``c = 2`` absorbs the second-order ``(1 + u)`` factors and the complex case,
where each component of a complex product is ``ar*br - ai*bi`` (two products and
a subtraction: error ``gamma_2(u_in)`` relative to ``|ar br| + |ai bi|``, so S is
taken per component over both products). The oracle's own rounding of ``s`` to
float64 adds ``2**-53 |s|``. When ``N u_acc >= 1`` the bound is infinite: no
a-priori bound holds for arbitrary summation order there.

Underflow is not relative: a product or partial sum below the smallest normal
number ``tiny`` of its dtype is subnormal, or flushed to zero where FTZ/DAZ is
on (XLA:CPU flushes float32 subnormals), and a subnormal operand may be read as
zero. The bound therefore adds ``U + N tiny_acc + tiny_out``, where ``U`` sums
``|p_i|`` over the products with a subnormal operand or a product below
``tiny_in`` (each may be lost entirely), ``N tiny_acc`` covers flushed partial
sums and ``tiny_out`` a flushed result (only when ``|s|`` is near the
subnormal range). Where every order sums exactly, a result among the output's
subnormals still rounds to half their spacing, ``u_out tiny_out``, which is added
too. For data of ordinary size all of these are zero or negligible.

The probabilistic bound (Higham and Mary, "A new approach to probabilistic
rounding error analysis", SIAM J. Sci. Comput. 41(5), 2019, Thm. 3.1 for inner
products). Assume the relative rounding errors ``delta_k`` of the products and
additions are independent random variables of mean zero (mean-independent:
``E(delta_k | delta_1..delta_k-1) = 0``), each ``|delta_k| <= u``. Then for any
``lambda > 0``::

    |s_hat - s| <= gamma~_n(lambda, u) * S,
    gamma~_n(lambda, u) = exp(lambda sqrt(n) u + n u**2 / (1 - u)) - 1

fails with probability at most ``2 n exp(-lambda**2 (1 - u)**2 / 2)`` (n = N
operations per result, N + 1 for a complex component). ``probabilistic_lambda``
picks lambda so that this probability, summed (union bound) over every checked
result element and complex component, is at most ``FAILURE_PROBABILITY`` =
1e-12 per check: at N = 1e6 float32 and one element lambda ~ 9.2 and
gamma~ ~ 5.5e-4, against gamma_N = 0.063. The probabilistic bound replaces
``gamma_N`` in the formula above (same product, output and underflow terms, same
c = 2); where it is larger (N < lambda**2) the rigorous one is used. Its
assumption fails under *stagnation*: terms below half an ulp of a large
running sum are rounded away whole, all in one direction when they share a
sign (e.g. 1 followed by N terms of 0.4 u, or heavy-tailed same-sign data), an
error near ``N u S`` that a correct strategy really makes. The bound therefore
adds, deterministically, ``|sum of p_i over |p_i| < u_acc max(P+, P-)|`` (the
terms some running sum may swallow; ``P+``/``P-`` the sums of the positive /
negative terms): zero for data of bounded spread, the whole stagnation error
for same-sign data, small for terms of random sign (their losses are mean-zero
and inside the probabilistic term). It is a heuristic extension, not part of
Higham and Mary's theorem: adversarial data can still defeat it. Use ``bound="probabilistic"`` for random data (the
project's own suites do, and ``benchmarks/false_failures.py`` measured 0 false
failures in its trials, docs/false-failures.md), the rigorous default for data
of unknown origin.

Exact sums. When every product is exactly representable in the accumulation
dtype (a ``t``-bit significand, ``u = 2**-t``), all are multiples of a quantum
``q >= tiny_acc`` (the lowest set bit of the smallest), no input or product is
subnormal, and ``S <= 2**t q`` (and ``S`` within range), then every partial sum
in every order is a multiple of ``q`` of magnitude ``<= S``, hence exactly
representable: every strategy computes ``s`` exactly and only the output rounding
``u_out |s|`` remains. Both bounds use this (it is rigorous). It is what lets a
suite catch one dropped row at N = 1e6: with integer-valued data the sum is
exact, while for general data a row of ordinary size is below the rounding
error a correct float32 sum makes (about ``sqrt(N) u S``).

Overflow in the accumulation dtype is legitimate IEEE behaviour: ``[3e38,
3e38, -3e38] . 1`` overflows a float32 running sum in left-to-right order and
``1e20 * 1e20`` overflows a float32 product. A result of ``+inf`` is accepted
where the positive terms, ``P+ = sum of p_i > 0`` (inflated by the rounding
factor), exceed the accumulation dtype's largest finite value, ``-inf`` where
``P-`` does, NaN where both do; otherwise a non-finite result for a finite
exact sum is a failure. One exception, by design: a complex result's two
parts share one bound (from the larger of their absolute sums), so where that
bound itself passes float64's range, either part may round to an infinity of
its sign (a complex product formed from three real products, as in the 3M
method, carries one part's overflow into the other).

Signed zeros. The sign of a zero is not compared: an exact sum of zero may be
returned as +0.0 or -0.0 (IEEE gives -0.0 for ``(-0.0) * 1`` summed from a
-0.0 start and +0.0 from a zeroed accumulator; the empty sum is +0.0).

Integers wrap modulo ``2**bits`` (the documented integer policy), so their
result is exact and the bound is zero.

Exactness of the oracle: for float32 and narrower inputs a float64 product is
exact and ``math.fsum`` rounds the sum correctly; float64 products are split
error-free (Dekker's TwoProduct with Veltkamp splitting) into ``p + e`` before
``fsum``. That split is exact for ``|x| < 2**995`` with products in
``[2**-969, 2**1000)``; a column holding a product of finite factors outside
that range (one that overflows or underflows float64, say) is summed in
rational arithmetic instead, so the oracle is exact for every float64 input.
Such a product past float64's range is a finite term: it counts towards the
overflow masses ``P+`` / ``P-`` above (a strategy may return +-inf or NaN), and
not as an infinite input (which would make the exact sum +-inf or NaN).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

import numpy as np

from ..backends import LIBRARIES, device_kind_of, library_of
from ..core import dtypes as _dtypes
from ..core.dtypes import BOUND_CONSTANT, gamma, numpy_dtype, numpy_dtype_name, rigorous_factor
from ..core.semantics import Plan, plan_mul_sum
from ..registry import get_adapter

# Per check: the chance that the probabilistic bound rejects a correct result
# on data satisfying its assumptions (union bound over elements and roundings).
FAILURE_PROBABILITY = 1e-12
BOUNDS = ("rigorous", "probabilistic")
_ORACLE_ROUNDOFF = 2.0**-53
_VELTKAMP = 134217729.0  # 2**27 + 1
_SPLIT_SAFE_MAX = 2.0**995
_PRODUCT_SAFE_MIN = 2.0**-969
_PRODUCT_SAFE_MAX = 2.0**1000  # xh * yh stays below float64's top for products under it
_SMALLEST_SUBNORMAL = 2.0**-1074
# A sum of 2**40 products of float64s (each below 2**2048) times 2**-1066 is in float64's range.
_ABS_SUM_SHIFT = 1066

__all__ = [
    "BOUNDS",
    "FAILURE_PROBABILITY",
    "Component",
    "Reference",
    "Verdict",
    "check_against",
    "check_mul_sum",
    "assert_mul_sum_close",
    "error_bound",
    "gamma",
    "gamma_probabilistic",
    "probabilistic_lambda",
    "reference",
    "to_host",
]


def probabilistic_lambda(n: int, u: float, failure_probability: float = FAILURE_PROBABILITY, checks: int = 1) -> float:
    """The smallest lambda with ``checks * 2 n exp(-lambda**2 (1 - u)**2 / 2) <= failure_probability``."""
    if n <= 0:
        return 0.0
    return math.sqrt(2 * math.log(2 * n * max(checks, 1) / failure_probability)) / (1 - u)


def gamma_probabilistic(n: int, u: float, lam: float) -> float:
    """Higham and Mary's ``gamma~_n(lambda) = exp(lambda sqrt(n) u + n u**2 / (1 - u)) - 1``."""
    return math.expm1(lam * math.sqrt(n) * u + n * u * u / (1 - u))


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy of an array of any supported library (dtype kept, bfloat16 included)."""
    library = library_of(x)
    if library == "numpy":
        return np.asarray(x)
    return get_adapter(LIBRARIES[library].default_strategy, device_kind_of(library, x)).to_numpy(x)


@dataclass(frozen=True)
class Component:
    """Per result element, what one real component of the sum needs beyond its bound.

    ``positive`` and ``negative`` are the sums of the positive terms and of the
    magnitudes of the negative ones (what overflow of the accumulation dtype
    depends on); ``absorbed`` is the stagnation term of the probabilistic bound
    (module docstring); ``exact`` marks elements that every summation order computes
    exactly (see "Exact sums" in the module docstring).
    """

    positive: np.ndarray
    negative: np.ndarray
    exact: np.ndarray
    absorbed: np.ndarray | float = 0.0  # |signed sum of the terms a running sum may round away entirely|
    # Where the exact sum is finite but rounds past float64's range (``exact`` holds +-inf there): that
    # sum times 2**-_ABS_SUM_SHIFT, NaN elsewhere; None where no element is past the range.
    scaled_past_range: np.ndarray | None = None


@dataclass(frozen=True)
class Reference:
    """The exact result of ``sum(a * b, axis=0)`` and what its error bound needs.

    ``exact`` is the exact sum rounded to float64 (complex128 for complex inputs),
    or, for integers, the exact sum wrapped to the result dtype. ``abs_sum`` is
    ``sum_i |a_i b_i|``; for complex inputs the larger of the two
    components' sums of absolute products (a product of nonzero factors
    that underflows counts as float64's smallest subnormal); it is inf where
    it passes float64's range, and ``scaled_abs_sum`` then holds it times
    ``2**-_ABS_SUM_SHIFT`` (the bound, a small multiple of it, may still be
    finite). ``underflow`` is the part of that sum whose products may
    underflow (see the module docstring). ``components`` holds one
    ``Component`` per real component (two for complex results, none for
    integers).
    """

    plan: Plan
    exact: np.ndarray
    abs_sum: np.ndarray
    underflow: np.ndarray  # U of the module docstring, per output element
    components: tuple[Component, ...] = ()
    scaled_abs_sum: np.ndarray | None = None


@dataclass(frozen=True)
class _Products:
    """The products ``x * y`` (shape (N, M)) of one real component, kept exact.

    ``rounded`` is IEEE's float64 product (what overflow and infinite inputs
    are judged on); ``terms`` are float64 arrays whose exact sum is the product
    wherever ``outside`` is False; ``outside`` marks products of finite factors
    that the float64 split cannot hold, summed as fractions of ``x`` and ``y``.
    """

    x: np.ndarray
    y: np.ndarray
    rounded: np.ndarray
    terms: tuple[np.ndarray, ...]
    outside: np.ndarray

    def __neg__(self) -> _Products:
        return _Products(-self.x, self.y, -self.rounded, tuple(-t for t in self.terms), self.outside)

    @property
    def of_finite_factors(self) -> np.ndarray:
        return np.isfinite(self.x) & np.isfinite(self.y)


def _two_product(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x * y == p + e`` exactly (Dekker), elementwise on float64 arrays in the split's range."""

    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = _VELTKAMP * v
        high = scaled - (scaled - v)
        return high, v - high

    p = x * y
    xh, xl = split(x)
    yh, yl = split(y)
    e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl
    return p, e


def _outside_split_range(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Products of finite factors that Dekker's split would not represent exactly."""
    finite = np.isfinite(x) & np.isfinite(y)
    big = (np.abs(x) >= _SPLIT_SAFE_MAX) | (np.abs(y) >= _SPLIT_SAFE_MAX) | ~(np.abs(p) < _PRODUCT_SAFE_MAX)
    tiny = (x != 0) & (y != 0) & (np.abs(p) < _PRODUCT_SAFE_MIN)
    return finite & (big | tiny)


def _exact_products(x: np.ndarray, y: np.ndarray, wide: bool) -> _Products:
    """The products of float64 factors of shape (N, M), as terms whose exact sum is ``x*y`` per column."""
    if not wide:  # products of float32 or narrower factors are exact in float64
        p = x * y
        return _Products(x, y, p, (p,), np.zeros(p.shape, dtype=bool))
    rounded = x * y
    outside = _outside_split_range(x, y, rounded)
    p, e = _two_product(np.where(outside, 0.0, x), np.where(outside, 0.0, y))
    return _Products(x, y, rounded, (p, e), outside)


def _fsum_columns(products: list[_Products]) -> tuple[np.ndarray, np.ndarray | None]:
    """Correctly rounded column sums of the products, with IEEE semantics for infinite and NaN inputs.

    A complex component sums two product arrays; an infinite or NaN factor in
    either decides its sum. Also returns, where a column's finite sum rounds
    past float64's range, that sum times ``2**-_ABS_SUM_SHIFT`` (NaN elsewhere;
    None where no column does).
    """
    special = np.concatenate([~p.of_finite_factors for p in products], axis=0)  # (arrays*N, M)
    rounded = np.concatenate([p.rounded for p in products], axis=0)
    outside = np.concatenate([p.outside for p in products], axis=0)
    stacked = np.concatenate([term for p in products for term in p.terms], axis=0)
    out = np.empty(stacked.shape[1])
    scaled_past_range = np.full(stacked.shape[1], np.nan)
    for col in range(stacked.shape[1]):
        specials = rounded[special[:, col], col]
        if specials.size:
            out[col], scaled = _special_sum(specials), None
        elif outside[:, col].any():
            out[col], scaled = _rounded_scaled(_scaled_column_sum(products, col))
        else:
            out[col], scaled = _exact_sum(stacked[:, col].tolist())
        if scaled is not None:
            scaled_past_range[col] = scaled
    return out, None if np.isnan(scaled_past_range).all() else scaled_past_range


def _special_sum(products: np.ndarray) -> float:
    """The sum of finite terms and these products of an infinite or NaN factor (IEEE's)."""
    if np.isnan(products).any() or (np.isposinf(products).any() and np.isneginf(products).any()):
        return math.nan
    return math.inf if np.isposinf(products).any() else -math.inf


# Every float64 is an integer over 2**1074 at most, so every product of two is one over 2**2148.
_PRODUCT_DENOMINATOR_BITS = 2 * 1074


def _scaled_integer(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` (a power of 2 up to ``2**_PRODUCT_DENOMINATOR_BITS``) over that bound."""
    return numerator << (_PRODUCT_DENOMINATOR_BITS + 1 - denominator.bit_length())


def _scaled_column_sum(products: list[_Products], col: int) -> int:
    """One column's exact sum times ``2**_PRODUCT_DENOMINATOR_BITS``, an integer (for products outside the
    split's range)."""
    total = 0
    for p in products:
        for xi, yi in zip(p.x[:, col].tolist(), p.y[:, col].tolist()):
            (nx, dx), (ny, dy) = xi.as_integer_ratio(), yi.as_integer_ratio()
            total += _scaled_integer(nx * ny, dx * dy)
    return total


def _rounded_scaled(total: int) -> tuple[float, float | None]:
    """``total * 2**-_PRODUCT_DENOMINATOR_BITS`` correctly rounded (int division is), and where that is past
    float64's range, the sum times ``2**-_ABS_SUM_SHIFT``."""
    try:
        return total / (1 << _PRODUCT_DENOMINATOR_BITS), None
    except OverflowError:
        return (math.inf if total > 0 else -math.inf), total / (1 << (_PRODUCT_DENOMINATOR_BITS + _ABS_SUM_SHIFT))


def _exact_sum(values: list[float]) -> tuple[float, float | None]:
    """The correctly rounded sum of finite floats, and where it is past float64's range, the sum times
    ``2**-_ABS_SUM_SHIFT``."""
    try:
        return math.fsum(values), None
    except OverflowError:  # fsum refuses sums beyond float64; integer arithmetic is exact
        return _rounded_scaled(sum(_scaled_integer(*v.as_integer_ratio()) for v in values))


def _magnitudes(x: np.ndarray, y: np.ndarray, shift: int = 0) -> np.ndarray:
    """``|x y| * 2**-shift`` elementwise; a product of nonzero factors that underflows to 0 counts as the
    smallest subnormal (an upper bound of what it is)."""
    half = shift // 2
    magnitude = np.ldexp(np.abs(x), -half) * np.ldexp(np.abs(y), half - shift)
    return np.where((magnitude == 0) & (x != 0) & (y != 0), _SMALLEST_SUBNORMAL, magnitude)


def _abs_sum(products: list[_Products], shift: int = 0) -> np.ndarray:
    """Per column, ``sum |x y| * 2**-shift`` over the product arrays of one component."""
    return sum((_magnitudes(p.x, p.y, shift).sum(0) for p in products), np.zeros(products[0].x.shape[1]))


def _underflow_mass(products: list[_Products], tiny: float) -> np.ndarray:
    """Per column, the sum of ``|x_i y_i|`` over products that may underflow or meet a flushed operand."""
    total = np.zeros(products[0].x.shape[1])
    for p in products:
        magnitude = _magnitudes(p.x, p.y)
        nonzero = (p.x != 0) & (p.y != 0) & np.isfinite(magnitude)
        risky = nonzero & ((np.abs(p.x) < tiny) | (np.abs(p.y) < tiny) | (magnitude < tiny))
        total = total + np.where(risky, magnitude, 0.0).sum(0)
    return total


def _real_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.real(x).astype(np.float64), np.imag(x).astype(np.float64)


def _as_columns(x: np.ndarray, plan: Plan, dtype: str) -> np.ndarray:
    full = np.broadcast_to(x.astype(numpy_dtype(dtype), copy=False), plan.full_shape)
    return full.reshape(plan.n, math.prod(plan.out_shape))  # -1 is ambiguous when n == 0


def reference(a: Any, b: Any) -> Reference:
    """The exact ``sum(a * b, axis=0)`` of arrays of any supported library."""
    with np.errstate(all="ignore"):  # inf * 0 and inf - inf are expected here
        return _reference(to_host(a), to_host(b))


def _reference(a: np.ndarray, b: np.ndarray) -> Reference:
    plan = plan_mul_sum(a.shape, numpy_dtype_name(a.dtype), b.shape, numpy_dtype_name(b.dtype))
    if _dtypes.is_integer(plan.out_dtype):
        exact, zeros = _integer_reference(a, b, plan), np.zeros(plan.out_shape)
        return Reference(plan, exact, zeros, zeros)
    x, y = _as_columns(a, plan, plan.out_dtype), _as_columns(b, plan, plan.out_dtype)
    wide = _dtypes.BITS[plan.out_dtype] > (64 if _dtypes.is_complex(plan.out_dtype) else 32)
    if plan.n == 0:
        zeros = np.zeros(plan.out_shape, dtype=np.complex128 if _dtypes.is_complex(plan.out_dtype) else np.float64)
        empty = Component(np.zeros(plan.out_shape), np.zeros(plan.out_shape), np.ones(plan.out_shape, dtype=bool))
        count = 2 if _dtypes.is_complex(plan.out_dtype) else 1
        return Reference(plan, zeros, np.zeros(plan.out_shape), np.zeros(plan.out_shape), (empty,) * count)
    tiny = _dtypes.SMALLEST_NORMAL[plan.out_dtype]
    if _dtypes.is_complex(plan.out_dtype):
        (xr, xi), (yr, yi) = _real_parts(x), _real_parts(y)
        rr, ii = _exact_products(xr, yr, wide), -_exact_products(xi, yi, wide)
        ri, ir = _exact_products(xr, yi, wide), _exact_products(xi, yr, wide)
        parts = [[rr, ii], [ri, ir]]
    else:
        parts = [[_exact_products(x.astype(np.float64), y.astype(np.float64), wide)]]
    sums = [_fsum_columns(products) for products in parts]
    if len(sums) == 2:
        # Filled part by part: 1j * inf is nan + inf*1j, which would turn an infinite or NaN
        # imaginary sum into a NaN real part.
        exact = np.empty(x.shape[1], np.complex128)
        exact.real, exact.imag = sums[0][0], sums[1][0]
    else:
        exact = sums[0][0]
    abs_sum = np.maximum.reduce([_abs_sum(products) for products in parts])
    scaled_abs_sum = None
    if not np.isfinite(abs_sum).all():
        scaled = np.maximum.reduce([_abs_sum(products, _ABS_SUM_SHIFT) for products in parts])
        scaled_abs_sum = scaled.reshape(plan.out_shape)
    underflow = np.maximum.reduce([_underflow_mass(products, tiny) for products in parts])
    shape = plan.out_shape
    components = []
    for products, (_, scaled_past_range) in zip(parts, sums):
        c = _component(products, plan.acc_dtype)
        exactly = (c.exact & (underflow == 0)).reshape(shape)
        components.append(
            Component(
                c.positive.reshape(shape),
                c.negative.reshape(shape),
                exactly,
                np.reshape(c.absorbed, shape),
                None if scaled_past_range is None else scaled_past_range.reshape(shape),
            )
        )
    return Reference(
        plan,
        exact.reshape(shape),
        np.asarray(abs_sum).reshape(shape),
        np.asarray(underflow).reshape(shape),
        tuple(components),
        scaled_abs_sum,
    )


def _component(products: list[_Products], acc_dtype: str) -> Component:
    """Overflow masses and exactness of one real component, from its product arrays.

    A product of finite factors past float64's range is infinite in ``rounded``
    and so makes its sign's mass infinite: a term that overflows any accumulator.
    """
    bits = -int(math.log2(_dtypes.UNIT_ROUNDOFF[acc_dtype]))
    tiny, top = _dtypes.SMALLEST_NORMAL[acc_dtype], _dtypes.MAX_FINITE[acc_dtype]
    positive = negative = 0.0
    exact = True
    quantum = np.inf
    for product in products:
        p, regular = product.rounded, product.of_finite_factors
        positive = positive + np.where(regular & (p > 0), p, 0.0).sum(0)
        negative = negative - np.where(regular & (p < 0), p, 0.0).sum(0)
        finite = np.isfinite(p)
        significand, q = _odd_significand(np.where(finite, p, 0.0))
        magnitude = np.abs(p)
        representable = (p == 0) | ((significand < 2**bits) & (magnitude >= tiny) & (magnitude <= top))
        exact = exact & np.all(finite & representable & ~product.outside, axis=0)
        for error in product.terms[1:]:
            exact = exact & np.all(error == 0, axis=0)
        quantum = np.minimum(quantum, np.where(p == 0, np.inf, q).min(axis=0))
    total = positive + negative
    exact = exact & (quantum >= tiny) & ((total <= quantum * 2.0**bits) | (total == 0)) & (total <= top)
    # Below half an ulp of the largest running sum (<= u * max(P+, P-)) a term may be rounded away whole.
    threshold = 2.0**-bits * np.maximum(positive, negative)
    absorbed = 0.0
    for product in products:
        p = product.rounded
        absorbed = absorbed + np.where(np.isfinite(p) & (np.abs(p) < threshold), p, 0.0).sum(0)
    # Where the finite terms' own sum overflows (inf - inf), no stagnation estimate: the rigorous bound holds.
    absorbed = np.where(np.isnan(absorbed), np.inf, np.abs(absorbed))
    return Component(np.asarray(positive), np.asarray(negative), np.asarray(exact), absorbed)


def _odd_significand(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``|p| = k * q`` with ``k`` an odd integer (0 for p == 0) and ``q`` a power of two, elementwise."""
    mantissa, exponent = np.frexp(np.abs(p))  # |p| = m 2**e, 0.5 <= m < 1: m 2**53 is an integer
    whole = (mantissa * 2.0**53).astype(np.int64)
    lowest = whole & -whole
    odd = whole // np.maximum(lowest, 1)
    return odd, np.ldexp(lowest.astype(np.float64), exponent - 53)


def _integer_reference(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    x = _as_columns(a, plan, plan.out_dtype).astype(object)
    y = _as_columns(b, plan, plan.out_dtype).astype(object)
    bits = _dtypes.BITS[plan.out_dtype]
    sums = (x * y).sum(axis=0) if plan.n else np.zeros(x.shape[1], dtype=object)
    modulus, signed = 1 << bits, _dtypes.kind(plan.out_dtype) == "signed"
    wrapped = [(int(s) + (modulus >> 1)) % modulus - (modulus >> 1) if signed else int(s) % modulus for s in sums]
    return np.array(wrapped, dtype=numpy_dtype(plan.out_dtype)).reshape(plan.out_shape)


def error_bound(
    ref: Reference, bound: str = "rigorous", *, failure_probability: float = FAILURE_PROBABILITY
) -> np.ndarray:
    """The per-element bound on ``|out - exact|`` (see the module docstring).

    ``bound="rigorous"`` holds for every input and summation order;
    ``bound="probabilistic"`` is Higham and Mary's, which holds except with
    probability ``failure_probability`` per call on data whose rounding errors
    are independent and of mean zero (never larger than the rigorous one).
    """
    _check_bound_name(bound)
    if _dtypes.is_integer(ref.plan.out_dtype):
        return np.zeros(ref.plan.out_shape)
    with np.errstate(over="ignore"):  # a bound past float64's range is inf (``_scaled_error_bound`` holds it)
        return _bound(ref, bound, failure_probability, 0)


def _scaled_error_bound(ref: Reference, bound: str) -> np.ndarray:
    """``error_bound`` times ``2**-_ABS_SUM_SHIFT``: finite where the bound is past float64's range (its
    terms near the smallest normal vanish in these units, where they do not matter)."""
    return _bound(ref, bound, FAILURE_PROBABILITY, _ABS_SUM_SHIFT)


def _bound(ref: Reference, bound: str, failure_probability: float, shift: int) -> np.ndarray:
    """``error_bound`` times ``2**-shift``."""
    out = ref.plan.out_dtype
    u_out = _dtypes.UNIT_ROUNDOFF[out]
    u_acc = _dtypes.UNIT_ROUNDOFF[ref.plan.acc_dtype]  # products are formed in the accumulation dtype
    n_terms = ref.plan.n
    growth = gamma(n_terms, u_acc)
    if bound == "probabilistic":
        operations = n_terms + 1 if _dtypes.is_complex(out) else n_terms  # a complex component's subtraction
        checks = ref.exact.size * max(1, len(ref.components))
        lam = probabilistic_lambda(operations, u_acc, failure_probability, checks)
        probabilistic = gamma_probabilistic(operations, u_acc, lam)
    relative = rigorous_factor(n_terms, u_acc)
    with np.errstate(invalid="ignore"):  # inf * 0 where an all-zero column meets an infinite gamma
        product_term = np.where(ref.abs_sum == 0, 0.0, _times_abs_sum(ref, relative, shift))
        if bound == "probabilistic" and probabilistic < growth:
            stagnation = np.max([np.asarray(c.absorbed) for c in ref.components], axis=0) if ref.components else 0.0
            tight = _times_abs_sum(ref, BOUND_CONSTANT * (u_acc + probabilistic), shift) + np.ldexp(stagnation, -shift)
            product_term = np.minimum(product_term, np.where(ref.abs_sum == 0, 0.0, tight))
    tiny_out = np.ldexp(_dtypes.SMALLEST_NORMAL[out], -shift)
    flushed_sums = np.ldexp(n_terms * _dtypes.SMALLEST_NORMAL[ref.plan.acc_dtype], -shift)
    flushed_result = np.where(_times_exact_magnitude(ref, 1.0, shift) < tiny_out + product_term, tiny_out, 0.0)
    underflow_term = np.where(ref.abs_sum == 0, 0.0, np.ldexp(ref.underflow, -shift) + flushed_sums + flushed_result)
    # Where every order sums exactly, only the output rounding remains.
    summed_exactly = np.logical_and.reduce([c.exact for c in ref.components]) if ref.components else False
    rounding = np.where(summed_exactly, 0.0, product_term + underflow_term)
    # The result's own rounding: u_out |s|, and where s lies among the output's
    # subnormals, half their spacing (u_out tiny_out), which no multiple of |s| covers.
    subnormal_rounding = np.where(ref.abs_sum == 0, 0.0, u_out * tiny_out)
    return rounding + _times_exact_magnitude(ref, u_out + _ORACLE_ROUNDOFF, shift) + subnormal_rounding


def _times_abs_sum(ref: Reference, factor: float, shift: int) -> np.ndarray:
    """``factor * abs_sum * 2**-shift``, finite where that is although ``abs_sum`` is past float64's range."""
    direct = np.ldexp(factor * ref.abs_sum, -shift)
    if ref.scaled_abs_sum is None:
        return direct
    return np.where(np.isinf(ref.abs_sum), np.ldexp(factor * ref.scaled_abs_sum, _ABS_SUM_SHIFT - shift), direct)


def _times_exact_magnitude(ref: Reference, factor: float, shift: int) -> np.ndarray:
    """``factor * |exact| * 2**-shift``, finite where that is although ``|exact|`` (or a part) is past float64's
    range."""
    magnitude = np.abs(ref.exact)
    direct = np.ldexp(factor * magnitude, -shift)
    if np.isfinite(magnitude).all():
        return direct
    parts = _real_parts(ref.exact) if len(ref.components) == 2 else (ref.exact,)
    scaled = [_scaled_part(part, c.scaled_past_range) for part, c in zip(parts, ref.components)]
    scaled_magnitude = np.hypot(*scaled) if len(scaled) == 2 else np.abs(scaled[0])
    return np.where(np.isfinite(magnitude), direct, np.ldexp(factor * scaled_magnitude, _ABS_SUM_SHIFT - shift))


def _scaled_part(part: np.ndarray, scaled_past_range: np.ndarray | None) -> np.ndarray:
    """One part of the exact result times ``2**-_ABS_SUM_SHIFT``, past-range sums included."""
    scaled = np.ldexp(part, -_ABS_SUM_SHIFT)
    return scaled if scaled_past_range is None else np.where(np.isnan(scaled_past_range), scaled, scaled_past_range)


def _check_bound_name(bound: str) -> None:
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {', '.join(map(repr, BOUNDS))}, not {bound!r}")


@dataclass(frozen=True)
class Verdict:
    """How ``out`` compares with the exact result: worst error / bound, and why it fails if it does.

    ``ratio`` and ``failure`` are those of the bound asked for (``bound``);
    ``rigorous_ratio`` and ``probabilistic_ratio`` are the worst error over
    each bound (> 1: out of that bound), whichever was asked for.
    """

    ratio: float
    failure: str | None
    bound: str = "rigorous"
    rigorous_ratio: float = math.nan
    probabilistic_ratio: float = math.nan


def check_mul_sum(out: Any, a: Any, b: Any, bound: str = "rigorous") -> Verdict:
    """Compare ``out`` with the exact ``sum(a * b, axis=0)``; never raises on a wrong result.

    ``bound`` is ``"rigorous"`` (any data) or ``"probabilistic"`` (random data;
    see the module docstring for its assumptions and failure probability).
    """
    _check_bound_name(bound)
    return check_against(out, reference(a, b), bound)


def check_against(out: Any, ref: Reference, bound: str = "rigorous") -> Verdict:
    """``check_mul_sum`` with the reference computed once, for checking several results of one input."""
    _check_bound_name(bound)
    got = to_host(out)
    with np.errstate(all="ignore"):
        verdicts = {name: _verdict(got, ref, name) for name in BOUNDS}
    chosen = verdicts[bound]
    return Verdict(
        chosen.ratio,
        chosen.failure,
        bound,
        verdicts["rigorous"].ratio,
        verdicts["probabilistic"].ratio,
    )


def _verdict(got: np.ndarray, ref: Reference, bound: str) -> Verdict:
    expected = ref.plan.out_dtype
    if numpy_dtype_name(got.dtype) != expected or got.shape != ref.plan.out_shape:
        return Verdict(
            math.inf,
            (
                f"expected a result of shape {ref.plan.out_shape} and dtype {expected}, "
                f"got shape {got.shape} and dtype {numpy_dtype_name(got.dtype)}"
            ),
        )
    if _dtypes.is_integer(expected):
        wrong = np.flatnonzero(got.ravel() != ref.exact.ravel())
        if not wrong.size:
            return Verdict(0.0, None)
        i = wrong[0]
        return Verdict(
            math.inf,
            (
                f"{wrong.size} of {got.size} integer results differ from the exact (wrapped) sum; "
                f"first at flat index {i}: got {got.ravel()[i]}, exact {ref.exact.ravel()[i]}"
            ),
        )
    wide = np.complex128 if _dtypes.is_complex(expected) else np.float64
    got, exact = got.astype(wide).ravel(), ref.exact.astype(wide).ravel()
    limit = error_bound(ref, bound).ravel()
    scaled_limit = None if np.isfinite(limit).all() else _scaled_error_bound(ref, bound).ravel()
    parts = [(np.real, " (real part)"), (np.imag, " (imag part)")] if wide is np.complex128 else [(np.real, "")]
    acc_top = _dtypes.MAX_FINITE[ref.plan.acc_dtype] / (
        1
        + BOUND_CONSTANT
        * (_dtypes.UNIT_ROUNDOFF[ref.plan.acc_dtype] + gamma(ref.plan.n, _dtypes.UNIT_ROUNDOFF[ref.plan.acc_dtype]))
    )
    verdicts = [
        _check_component(
            part(got),
            part(exact),
            limit,
            _dtypes.MAX_FINITE[expected],
            label,
            _may_overflow(component.positive, acc_top),
            _may_overflow(component.negative, acc_top),
            component.scaled_past_range,
            scaled_limit,
        )
        for (part, label), component in zip(parts, ref.components)
    ]
    return max(verdicts, key=lambda v: (v.failure is not None, v.ratio))


def _may_overflow(mass: np.ndarray, top: float) -> np.ndarray:
    """Where a running sum of terms of one sign (their sum is ``mass``) may exceed the accumulation range."""
    return np.asarray(mass).ravel() > top


def assert_mul_sum_close(out: Any, a: Any, b: Any, bound: str = "rigorous") -> None:
    """Assert that ``out`` is ``sum(a * b, axis=0)`` within the error bound.

    ``out``, ``a`` and ``b`` may be arrays of any supported library. The result's
    shape and dtype must match the shared semantics exactly; NaN must sit where
    the exact result is NaN and infinities must match (or come from overflow of
    the accumulation dtype, see the module docstring). ``bound`` is
    ``"rigorous"`` (the default: holds for any data) or ``"probabilistic"``
    (much tighter at large N; for random data). On failure the message names
    the worst element, its error and its bound.
    """
    verdict = check_mul_sum(out, a, b, bound)
    if verdict.failure is not None:
        raise AssertionError(verdict.failure)


def _check_component(
    got: np.ndarray,
    exact: np.ndarray,
    bound: np.ndarray,
    max_finite: float,
    where: str,
    positive_overflow: np.ndarray | bool = False,
    negative_overflow: np.ndarray | bool = False,
    scaled_past_range: np.ndarray | None = None,
    scaled_bound: np.ndarray | None = None,
) -> Verdict:
    past = np.zeros(exact.shape, bool) if scaled_past_range is None else ~np.isnan(scaled_past_range.ravel())
    scaled = None if scaled_past_range is None else scaled_past_range.ravel()
    # A real exact sum: finite, or finite but past float64's range (exact holds +-inf there).
    real = np.isfinite(exact) | past
    beyond_top = np.abs(exact) - max_finite
    if scaled is not None:
        excess = np.ldexp(np.abs(scaled) - np.ldexp(max_finite, -_ABS_SUM_SHIFT), _ABS_SUM_SHIFT)
        beyond_top = np.where(past, excess, beyond_top)
    # Exact sums beyond the output range by more than the bound must overflow to the same infinity.
    overflow = real & (beyond_top > bound)
    must_match = ~real | overflow
    infinite = ~real & ~np.isnan(exact)  # an infinite input decides the sign
    # Which special results IEEE arithmetic can give: +inf where a positive
    # running sum may overflow or a +inf term is present, -inf likewise, NaN
    # where both signs can reach infinity (or the exact result is NaN).
    can_pos = positive_overflow | ((infinite | overflow) & (exact > 0))
    can_neg = negative_overflow | ((infinite | overflow) & (exact < 0))
    nan_exact = np.isnan(exact)
    allowed = np.where(
        np.isnan(got),
        (can_pos & can_neg) | nan_exact,
        np.where(
            got == np.inf,
            can_pos & ~(infinite & (exact < 0)) & ~nan_exact,
            np.where(got == -np.inf, can_neg & ~(infinite & (exact > 0)) & ~nan_exact, False),
        ),
    )
    expected_special = np.where(overflow, np.sign(exact) * np.inf, exact)
    # Near the top of the range a correct result may round either way, to inf included.
    may_overflow = real & (beyond_top + bound > 0)
    rounded_up = may_overflow & (got == np.sign(exact) * np.inf)
    # A special result where none is allowed is wrong whatever the bound (which may be inf past the range).
    mismatched = (must_match | ~np.isfinite(got)) & ~allowed & ~rounded_up
    if mismatched.any():
        i = np.flatnonzero(mismatched)[0]
        shown = _describe(expected_special[i], scaled[i] if past[i] else math.nan)
        return Verdict(math.inf, f"element {i}{where}: got {got[i]!r}, exact result is {shown}")
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.where(must_match | rounded_up | allowed, 0.0, np.abs(got - exact))
        # |got - exact| in units of 2**_ABS_SUM_SHIFT, for sums and bounds past float64's range; within
        # the oracle's own rounding (2**-53 |exact|, in the bound).
        apart_units = None
        if scaled is not None or scaled_bound is not None:
            apart_units = np.abs(np.ldexp(got, -_ABS_SUM_SHIFT) - _scaled_part(exact, scaled))
        if scaled is not None:
            error = np.where(past & (error != 0) & np.isfinite(got), np.ldexp(apart_units, _ABS_SUM_SHIFT), error)
    error = np.where(np.isnan(error), np.inf, error)  # NaN where the exact sum is finite
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
        if scaled_bound is not None:
            outsized = np.isinf(bound) & (error != 0) & np.isfinite(got) & real
            ratio = np.where(outsized, apart_units / scaled_bound, ratio)
    if ratio.size == 0:
        return Verdict(0.0, None)
    worst = int(np.argmax(ratio))
    if ratio[worst] <= 1:
        return Verdict(float(ratio[worst]), None)
    shown = _describe(exact[worst], scaled[worst] if past[worst] else math.nan)
    return Verdict(
        float(ratio[worst]),
        (
            f"element {worst}{where}: got {got[worst]!r}, exact {shown}, "
            f"error {error[worst]:.3e} exceeds the bound {bound[worst]:.3e} "
            f"({ratio[worst]:.3g}x); {int((ratio > 1).sum())} of {ratio.size} elements out of bound"
        ),
    )


def _describe(exact: float, scaled_past_range: float) -> str:
    """An exact value as a message shows it; one past float64's range (given times 2**-_ABS_SUM_SHIFT) in decimal."""
    if math.isnan(scaled_past_range):
        return repr(exact)
    value = Context(prec=17).multiply(Decimal(scaled_past_range), Decimal(2) ** _ABS_SUM_SHIFT)
    return f"{value:.16e} (past float64's range)"
