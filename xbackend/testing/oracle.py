"""Correctness helpers for ``sum(a * b, axis=0)``: an exact oracle and a rigorous error bound.

Import these in your own cross-framework tests::

    from xbackend.testing import assert_mul_sum_close
    assert_mul_sum_close(out, a, b)   # any mix of NumPy / torch / JAX / CuPy arrays

The bound (Higham, *Accuracy and Stability of Numerical Algorithms*, sec. 3.1).
Let ``p_i = a_i b_i`` exactly, ``S = sum_i |p_i|`` and ``s = sum_i p_i``. The
inputs are cast to the result dtype (exact: promotion only widens), each product
is rounded in that dtype, ``|fl(p_i) - p_i| <= u_in |p_i|``, or better when a
strategy forms it in a wider one. Any summation order (recursive, pairwise,
blocked, tree) in a dtype of unit roundoff ``u_acc`` adds at most
``gamma_N(u_acc) * sum_i |fl(p_i)|`` with ``gamma_N(u) = N u / (1 - N u)``.
Rounding the sum to the output dtype adds ``u_out |s|``. Hence::

    |out - s| <= c * (u_in + gamma_N(u_acc)) * S + u_out * |s|,   c = 2

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
subnormal range). For data of ordinary size all three are zero or negligible.

Integers wrap modulo ``2**bits`` (the documented integer policy), so their
result is exact and the bound is zero.

Exactness of the oracle: for float32 and narrower inputs a float64 product is
exact and ``math.fsum`` rounds the sum correctly; float64 products are split
error-free (Dekker's TwoProduct with Veltkamp splitting) into ``p + e`` before
``fsum``. That split is exact for ``|x| < 2**995`` with products above
``2**-969``; the oracle refuses float64 inputs outside that range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..core import dtypes as _dtypes
from ..core.dtypes import numpy_dtype, numpy_dtype_name
from ..backends import LIBRARIES, device_kind_of, library_of
from ..registry import get_adapter
from ..core.semantics import Plan, plan_mul_sum

BOUND_CONSTANT = 2.0
_ORACLE_ROUNDOFF = 2.0**-53
_VELTKAMP = 134217729.0  # 2**27 + 1
_SPLIT_SAFE_MAX = 2.0**995
_PRODUCT_SAFE_MIN = 2.0**-969

__all__ = [
    "Reference",
    "Verdict",
    "check_against",
    "check_mul_sum",
    "assert_mul_sum_close",
    "error_bound",
    "gamma",
    "reference",
    "to_host",
]


def gamma(n: int, u: float) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``; infinite when ``n u >= 1``."""
    nu = n * u
    return math.inf if nu >= 1 else nu / (1 - nu)


def to_host(x: Any) -> np.ndarray:
    """A NumPy copy of an array of any supported library (dtype kept, bfloat16 included)."""
    library = library_of(x)
    if library == "numpy":
        return np.asarray(x)
    return get_adapter(LIBRARIES[library].default_strategy, device_kind_of(library, x)).to_numpy(x)


@dataclass(frozen=True)
class Reference:
    """The exact result of ``sum(a * b, axis=0)`` and what its error bound needs.

    ``exact`` is the exact sum rounded to float64 (complex128 for complex inputs),
    or, for integers, the exact sum wrapped to the result dtype. ``abs_sum`` is
    ``sum_i |a_i b_i|``; for complex inputs the larger of the two
    components' sums of absolute products. ``underflow`` is the part of that
    sum whose products may underflow (see the module docstring).
    """

    plan: Plan
    exact: np.ndarray
    abs_sum: np.ndarray
    underflow: np.ndarray  # U of the module docstring, per output element


def _two_product(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x * y == p + e`` exactly (Dekker), elementwise on float64 arrays."""

    def split(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scaled = _VELTKAMP * v
        high = scaled - (scaled - v)
        return high, v - high

    p = x * y
    xh, xl = split(x)
    yh, yl = split(y)
    e = ((xh * yh - p) + xh * yl + xl * yh) + xl * yl
    return p, e


def _check_split_range(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
    finite = np.isfinite(x) & np.isfinite(y)
    big = np.abs(np.where(finite, x, 0)).max(initial=0), np.abs(np.where(finite, y, 0)).max(initial=0)
    # A product of nonzero operands that underflowed to 0 is below the range too.
    tiny = np.abs(p[finite & (x != 0) & (y != 0)]).min(initial=np.inf)
    if max(big) >= _SPLIT_SAFE_MAX or tiny < _PRODUCT_SAFE_MIN:
        raise ValueError(
            "the float64 oracle is exact only for |x| < 2**995 and nonzero products "
            "above 2**-969; these inputs fall outside"
        )


def _exact_products(x: np.ndarray, y: np.ndarray, wide: bool) -> list[np.ndarray]:
    """Float64 terms, shape (terms, N, M), whose exact sum is ``sum x*y`` per column."""
    if not wide:
        return [x * y]
    p, e = _two_product(x, y)
    _check_split_range(x, y, p)
    return [p, e]


def _fsum_columns(terms: list[np.ndarray]) -> np.ndarray:
    """Correctly rounded column sums of the stacked terms, with IEEE semantics for inf/nan."""
    stacked = np.concatenate(terms, axis=0)  # (terms*N, M)
    products = terms[0]
    out = np.empty(stacked.shape[1])
    for col in range(stacked.shape[1]):
        column = products[:, col]
        if np.all(np.isfinite(column)):
            out[col] = _exact_sum(stacked[:, col].tolist())
        elif np.isnan(column).any() or (np.isposinf(column).any() and np.isneginf(column).any()):
            out[col] = math.nan
        else:
            out[col] = math.inf if np.isposinf(column).any() else -math.inf
    return out


def _exact_sum(values: list[float]) -> float:
    """The correctly rounded sum of finite floats; +-inf when it exceeds the float64 range."""
    try:
        return math.fsum(values)
    except OverflowError:  # fsum refuses sums beyond float64; rational arithmetic is exact
        total = sum(map(Fraction, values), Fraction(0))
        try:
            return float(total)
        except OverflowError:
            return math.inf if total > 0 else -math.inf


def _underflow_mass(x: np.ndarray, y: np.ndarray, tiny: float) -> np.ndarray:
    """Per column, the sum of ``|x_i y_i|`` over products that may underflow or meet a flushed operand."""
    p = np.abs(x * y)
    nonzero = (x != 0) & (y != 0) & np.isfinite(p)
    risky = nonzero & ((np.abs(x) < tiny) | (np.abs(y) < tiny) | (p < tiny))
    return np.where(risky, p, 0.0).sum(axis=0)


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
        return Reference(plan, zeros, np.zeros(plan.out_shape), np.zeros(plan.out_shape))
    tiny = _dtypes.SMALLEST_NORMAL[plan.out_dtype]
    if _dtypes.is_complex(plan.out_dtype):
        (xr, xi), (yr, yi) = _real_parts(x), _real_parts(y)
        real = _exact_products(xr, yr, wide) + [-t for t in _exact_products(xi, yi, wide)]
        imag = _exact_products(xr, yi, wide) + _exact_products(xi, yr, wide)
        exact = _fsum_columns(real) + 1j * _fsum_columns(imag)
        abs_sum = np.maximum(
            np.abs(xr * yr).sum(0) + np.abs(xi * yi).sum(0),
            np.abs(xr * yi).sum(0) + np.abs(xi * yr).sum(0),
        )
        underflow = np.maximum(
            _underflow_mass(xr, yr, tiny) + _underflow_mass(xi, yi, tiny),
            _underflow_mass(xr, yi, tiny) + _underflow_mass(xi, yr, tiny),
        )
    else:
        x64, y64 = x.astype(np.float64), y.astype(np.float64)
        exact = _fsum_columns(_exact_products(x64, y64, wide))
        abs_sum = np.abs(x64 * y64).sum(0)
        underflow = _underflow_mass(x64, y64, tiny)
    shape = plan.out_shape
    return Reference(plan, exact.reshape(shape), np.asarray(abs_sum).reshape(shape), np.asarray(underflow).reshape(shape))


def _integer_reference(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    x = _as_columns(a, plan, plan.out_dtype).astype(object)
    y = _as_columns(b, plan, plan.out_dtype).astype(object)
    bits = _dtypes.BITS[plan.out_dtype]
    sums = (x * y).sum(axis=0) if plan.n else np.zeros(x.shape[1], dtype=object)
    modulus, signed = 1 << bits, _dtypes.kind(plan.out_dtype) == "signed"
    wrapped = [(int(s) + (modulus >> 1)) % modulus - (modulus >> 1) if signed else int(s) % modulus for s in sums]
    return np.array(wrapped, dtype=numpy_dtype(plan.out_dtype)).reshape(plan.out_shape)


def error_bound(ref: Reference) -> np.ndarray:
    """The per-element bound on ``|out - exact|`` (see the module docstring)."""
    out = ref.plan.out_dtype
    if _dtypes.is_integer(out):
        return np.zeros(ref.plan.out_shape)
    u_in = _dtypes.UNIT_ROUNDOFF[out]
    u_acc = _dtypes.UNIT_ROUNDOFF[ref.plan.acc_dtype]
    n_terms = ref.plan.n
    relative = BOUND_CONSTANT * (u_in + gamma(n_terms, u_acc))
    with np.errstate(invalid="ignore"):  # inf * 0 where an all-zero column meets an infinite gamma
        product_term = np.where(ref.abs_sum == 0, 0.0, relative * ref.abs_sum)
    tiny_out = _dtypes.SMALLEST_NORMAL[out]
    flushed_sums = n_terms * _dtypes.SMALLEST_NORMAL[ref.plan.acc_dtype]
    flushed_result = np.where(np.abs(ref.exact) < tiny_out + product_term, tiny_out, 0.0)
    underflow_term = np.where(ref.abs_sum == 0, 0.0, ref.underflow + flushed_sums + flushed_result)
    return product_term + underflow_term + (u_in + _ORACLE_ROUNDOFF) * np.abs(ref.exact)


@dataclass(frozen=True)
class Verdict:
    """How ``out`` compares with the exact result: worst error / bound, and why it fails if it does."""

    ratio: float
    failure: str | None


def check_mul_sum(out: Any, a: Any, b: Any) -> Verdict:
    """Compare ``out`` with the exact ``sum(a * b, axis=0)``; never raises on a wrong result."""
    return check_against(out, reference(a, b))


def check_against(out: Any, ref: Reference) -> Verdict:
    """``check_mul_sum`` with the reference computed once, for checking several results of one input."""
    got = to_host(out)
    with np.errstate(all="ignore"):
        return _verdict(got, ref)


def _verdict(got: np.ndarray, ref: Reference) -> Verdict:
    expected = ref.plan.out_dtype
    if numpy_dtype_name(got.dtype) != expected or got.shape != ref.plan.out_shape:
        return Verdict(math.inf, (
            f"expected a result of shape {ref.plan.out_shape} and dtype {expected}, "
            f"got shape {got.shape} and dtype {numpy_dtype_name(got.dtype)}"
        ))
    if _dtypes.is_integer(expected):
        wrong = np.flatnonzero(got.ravel() != ref.exact.ravel())
        if not wrong.size:
            return Verdict(0.0, None)
        i = wrong[0]
        return Verdict(math.inf, (
            f"{wrong.size} of {got.size} integer results differ from the exact (wrapped) sum; "
            f"first at flat index {i}: got {got.ravel()[i]}, exact {ref.exact.ravel()[i]}"
        ))
    wide = np.complex128 if _dtypes.is_complex(expected) else np.float64
    got, exact = got.astype(wide).ravel(), ref.exact.astype(wide).ravel()
    bound = error_bound(ref).ravel()
    parts = [(np.real, " (real part)"), (np.imag, " (imag part)")] if wide is np.complex128 else [(np.real, "")]
    verdicts = [_check_component(part(got), part(exact), bound, _dtypes.MAX_FINITE[expected], label) for part, label in parts]
    return max(verdicts, key=lambda v: (v.failure is not None, v.ratio))


def assert_mul_sum_close(out: Any, a: Any, b: Any) -> None:
    """Assert that ``out`` is ``sum(a * b, axis=0)`` within the rigorous bound.

    ``out``, ``a`` and ``b`` may be arrays of any supported library. The result's
    shape and dtype must match the shared semantics exactly; NaN must sit where
    the exact result is NaN and infinities must match. On failure the message
    names the worst element, its error and its bound.
    """
    verdict = check_mul_sum(out, a, b)
    if verdict.failure is not None:
        raise AssertionError(verdict.failure)


def _check_component(got: np.ndarray, exact: np.ndarray, bound: np.ndarray, max_finite: float, where: str) -> Verdict:
    # Exact sums beyond the output range must overflow to the same infinity.
    overflow = np.isfinite(exact) & (np.abs(exact) - bound > max_finite)
    must_match = ~np.isfinite(exact) | overflow
    expected_special = np.where(overflow, np.sign(exact) * np.inf, exact)
    mismatched = must_match & ~((got == expected_special) | (np.isnan(got) & np.isnan(expected_special)))
    if mismatched.any():
        i = np.flatnonzero(mismatched)[0]
        return Verdict(math.inf, f"element {i}{where}: got {got[i]!r}, exact result is {expected_special[i]!r}")
    # Near the top of the range a correct result may round either way, to inf included.
    may_overflow = np.isfinite(exact) & (np.abs(exact) + bound > max_finite)
    rounded_up = may_overflow & (got == np.sign(exact) * np.inf)
    with np.errstate(invalid="ignore"):
        error = np.where(must_match | rounded_up, 0.0, np.abs(got - exact))
    error = np.where(np.isnan(error), np.inf, error)  # NaN where the exact sum is finite
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(error == 0, 0.0, error / bound)
    if ratio.size == 0:
        return Verdict(0.0, None)
    worst = int(np.argmax(ratio))
    if ratio[worst] <= 1:
        return Verdict(float(ratio[worst]), None)
    return Verdict(float(ratio[worst]), (
        f"element {worst}{where}: got {got[worst]!r}, exact {exact[worst]!r}, "
        f"error {error[worst]:.3e} exceeds the bound {bound[worst]:.3e} "
        f"({ratio[worst]:.3g}x); {int((ratio > 1).sum())} of {ratio.size} elements out of bound"
    ))
