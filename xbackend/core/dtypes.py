"""Dtype names, promotion and precision: the one table every adapter obeys.

Dtypes are named by strings ("float32", "bfloat16", ...) so that the rules live
here once, independent of any framework's dtype objects; ``numpy_dtype`` and
``numpy_dtype_name`` bridge them to NumPy, which every backend converts through.
"""

from __future__ import annotations

import functools
import math
from typing import Final

import numpy as np

from .errors import UnsupportedDtypeError

SIGNED_INTEGERS: Final = ("int8", "int16", "int32", "int64")
UNSIGNED_INTEGERS: Final = ("uint8",)
INTEGERS: Final = SIGNED_INTEGERS + UNSIGNED_INTEGERS
REAL_FLOATS: Final = ("float16", "bfloat16", "float32", "float64")
COMPLEX_FLOATS: Final = ("complex64", "complex128")
FLOATS: Final = REAL_FLOATS + COMPLEX_FLOATS
SUPPORTED_DTYPES: Final = INTEGERS + FLOATS

# Unit roundoff u = 2**-p for a p-bit significand (Higham, sec. 2.1).
UNIT_ROUNDOFF: Final = {
    "float16": 2.0**-11,
    "bfloat16": 2.0**-8,
    "float32": 2.0**-24,
    "float64": 2.0**-53,
    "complex64": 2.0**-24,
    "complex128": 2.0**-53,
}

# The rigorous bound on a sum of N rounded products in any order is
# ``BOUND_CONSTANT * (u + gamma(N, u)) * sum |a_i b_i|`` (testing/oracle.py derives
# it); the constant absorbs second-order terms and the complex case.
BOUND_CONSTANT: Final = 2.0


def gamma(n: int, u: float) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``; infinite when ``n u >= 1``."""
    nu = n * u
    return math.inf if nu >= 1 else nu / (1 - nu)


def rigorous_factor(n: int, u: float) -> float:
    """``BOUND_CONSTANT * (u + gamma(n, u))``: the rigorous bound's multiple of ``sum |a_i b_i|``."""
    return BOUND_CONSTANT * (u + gamma(n, u))


# Largest finite value of each floating dtype (per component for complex).
MAX_FINITE: Final = {
    "float16": 65504.0,
    "bfloat16": 3.3895313892515355e38,
    "float32": 3.4028234663852886e38,
    "float64": 1.7976931348623157e308,
    "complex64": 3.4028234663852886e38,
    "complex128": 1.7976931348623157e308,
}

# Smallest positive normal value of each floating dtype (per component for
# complex). Below it results are subnormal, or flushed to zero by FTZ/DAZ
# hardware modes (XLA:CPU flushes float32 subnormals).
SMALLEST_NORMAL: Final = {
    "float16": 2.0**-14,
    "bfloat16": 2.0**-126,
    "float32": 2.0**-126,
    "float64": 2.0**-1022,
    "complex64": 2.0**-126,
    "complex128": 2.0**-1022,
}

BITS: Final = {
    "int8": 8,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "uint8": 8,
    "float16": 16,
    "bfloat16": 16,
    "float32": 32,
    "float64": 64,
    "complex64": 64,
    "complex128": 128,
}

_COMPLEX_OF_REAL: Final = {"float32": "complex64", "float64": "complex128"}
_REAL_OF_COMPLEX: Final = {"complex64": "float32", "complex128": "float64"}


def check_supported(dtype: str, *, where: str) -> None:
    """Refuse every dtype outside the table, with ``UnsupportedDtypeError`` (a ``TypeError``) naming the fix."""
    if dtype not in SUPPORTED_DTYPES:
        raise UnsupportedDtypeError(
            f"{where} has dtype {dtype!r}; mul_sum needs a numeric dtype, one of "
            f"{', '.join(SUPPORTED_DTYPES)}: {unsupported_reason(dtype)}"
        )


# Dtype families outside the table: (name prefixes, why, what to do instead).
_REFUSED: Final = (
    (
        ("uint16", "uint32", "uint64"),
        (
            "unsigned integers wider than 8 bits have no signed dtype holding both ranges "
            "(uint64 with int64 has no integer result) and few framework kernels"
        ),
        "cast to a wider signed dtype (int32 for uint16, int64 for uint32)",
    ),
    (
        ("float128", "complex256", "longdouble", "clongdouble", "float96", "complex192"),
        "extended precision exists in NumPy only, with a platform-dependent format",
        "cast to float64 / complex128",
    ),
    (
        ("float8", "float6", "float4", "int4", "uint4", "int2", "uint2"),
        "sub-16-bit types have no portable product and accumulation rules",
        "cast to float16, bfloat16 or float32 (int8 for small integers)",
    ),
    (
        ("qint", "quint"),
        "quantized tensors carry a scale and zero point the sum would ignore",
        "call .dequantize() first",
    ),
    (("complex32", "chalf"), "half-precision complex has no kernels in most frameworks", "cast to complex64"),
    (("bool",), "booleans are not numbers here", "cast to an integer dtype"),
)


def unsupported_reason(dtype: str) -> str:
    """Why ``dtype`` is outside the table, and what to cast to."""
    for prefixes, why, fix in _REFUSED:
        if dtype.startswith(prefixes):
            return f"{why}; {fix}"
    return "it is not a numeric dtype of the array API standard (or bfloat16)"


def kind(dtype: str) -> str:
    if dtype in SIGNED_INTEGERS:
        return "signed"
    if dtype in UNSIGNED_INTEGERS:
        return "unsigned"
    if dtype in REAL_FLOATS:
        return "real"
    return "complex"


def is_integer(dtype: str) -> bool:
    return dtype in INTEGERS


def is_complex(dtype: str) -> bool:
    return dtype in COMPLEX_FLOATS


def _promote_floats(a: str, b: str) -> str:
    if {a, b} == {"float16", "bfloat16"}:
        return "float32"
    if kind(a) == "complex" or kind(b) == "complex":
        real = _promote_floats(_REAL_OF_COMPLEX.get(a, a), _REAL_OF_COMPLEX.get(b, b))
        return _COMPLEX_OF_REAL.get(real, "complex64")
    return a if BITS[a] >= BITS[b] else b


def _promote_integers(a: str, b: str) -> str:
    if kind(a) == kind(b):
        return a if BITS[a] >= BITS[b] else b
    signed, unsigned = (a, b) if kind(a) == "signed" else (b, a)
    if BITS[signed] > BITS[unsigned]:
        return signed
    # uint8 with int8 needs int16 to hold both ranges (array API table).
    return {8: "int16"}[BITS[unsigned]]


def promote(a: str, b: str) -> str:
    """The result dtype of ``mul_sum`` for inputs of dtypes ``a`` and ``b``.

    Promotion follows the array API standard's table, extended with bfloat16
    (float16 with bfloat16 gives float32, as in PyTorch and JAX). Integer with
    floating inputs is refused: NumPy, PyTorch and JAX disagree on its result.
    """
    if is_integer(a) != is_integer(b):
        raise TypeError(
            f"cannot mix integer and floating inputs ({a} and {b}): frameworks "
            "disagree on the result dtype; cast one input explicitly"
        )
    if is_integer(a):
        return _promote_integers(a, b)
    return _promote_floats(a, b)


def accumulation_dtype(dtype: str) -> str:
    """The narrowest dtype the sum may be accumulated in.

    float16 and bfloat16 accumulate in float32: summing N half-precision
    products in half precision loses all accuracy once N*u approaches 1.
    Integers accumulate in their own dtype, wrapping modulo 2**bits, which gives
    the same answer whatever the summation order or any wider intermediate.
    """
    return "float32" if dtype in ("float16", "bfloat16") else dtype


# -- the NumPy bridge -----------------------------------------------------------
@functools.lru_cache(maxsize=64)  # parsing a name costs microseconds, and strategies ask on every call
def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def numpy_dtype_name(dtype: np.dtype) -> str:
    # Bool, object, string and datetime arrays fall through as their own names and
    # are refused by the shared dtype check.
    return dtype.name
