"""The shape and dtype rules of ``out = sum(a * b, axis=0)``, checked before any work."""

from __future__ import annotations

from dataclasses import dataclass

from . import dtypes as _dtypes

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    """What a valid call computes: reduce ``n`` rows of ``full_shape`` into ``out_shape``."""

    full_shape: Shape
    out_dtype: str
    acc_dtype: str

    @property
    def n(self) -> int:
        return self.full_shape[0]

    @property
    def out_shape(self) -> Shape:
        return self.full_shape[1:]

    @property
    def product_dtype(self) -> str:
        """The dtype each product ``a_i * b_i`` is formed in: the accumulation dtype.

        float16 and bfloat16 products are exact in float32 (11 + 11 and 8 + 8
        significand bits fit its 24, and float16's range fits), so ``300 * 300 -
        300 * 300`` in float16 is 0 on every adapter instead of inf - inf. For
        every other dtype this is the result dtype.
        """
        return self.acc_dtype


def _broadcast_trailing(a_shape: Shape, b_shape: Shape) -> Shape:
    out = []
    for da, db in zip(a_shape, b_shape):
        if da != db and 1 not in (da, db):
            raise ValueError(f"shapes {a_shape} and {b_shape} do not broadcast: trailing dimensions must be equal or 1")
        out.append(db if da == 1 else da)
    return tuple(out)


def plan_mul_sum(a_shape: Shape, a_dtype: str, b_shape: Shape, b_dtype: str) -> Plan:
    """Validate shapes and dtypes of ``mul_sum(a, b)`` and say what it returns.

    Raises ``ValueError`` for 0-d inputs, differing ndim or shapes that do not
    broadcast, and ``TypeError`` for non-numeric or unpromotable dtypes.
    """
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if not a_shape or not b_shape:
        raise ValueError(
            f"mul_sum needs inputs of at least one dimension (dim 0 is reduced); got shapes {a_shape} and {b_shape}"
        )
    if len(a_shape) != len(b_shape):
        raise ValueError(
            f"inputs must have the same number of dimensions; got shapes "
            f"{a_shape} ({len(a_shape)}-d) and {b_shape} ({len(b_shape)}-d)"
        )
    if a_shape[0] != b_shape[0] and 1 not in (a_shape[0], b_shape[0]):
        raise ValueError(f"dim 0 (the reduced dimension) must be equal or 1; got shapes {a_shape} and {b_shape}")
    _dtypes.check_supported(a_dtype, where="first input")
    _dtypes.check_supported(b_dtype, where="second input")
    out_dtype = _dtypes.promote(a_dtype, b_dtype)
    return Plan(
        full_shape=_broadcast_trailing(a_shape, b_shape),
        out_dtype=out_dtype,
        acc_dtype=_dtypes.accumulation_dtype(out_dtype),
    )
