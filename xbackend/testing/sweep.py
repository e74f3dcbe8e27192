"""The correctness sweep: seeded cases of ``sum(a * b, axis=0)`` checked against the exact oracle.

A case is described by a ``CaseSpec`` (shapes, memory layout, magnitudes,
special values, seed) and built into host NumPy inputs for one dtype by
``build_case``. ``run_case`` moves the inputs onto an adapter's device in the
requested layout (made natively from a contiguous native array: a transposed,
Fortran-ordered or strided view), computes, and checks the result's dtype,
shape, library and device exactly and its values against
``xbackend.testing``'s probabilistic bound (random data). ``sweep`` runs the fixed case list
``sweep_specs()`` for every dtype and serves both ``xbackend check`` and the
test suite; the property-based tests draw their own ``CaseSpec`` values.

Magnitudes are kept where the semantics give one answer: no product or sum
overflows the result dtype (a strategy may round products in the input dtype,
where they would overflow first).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import Adapter
from ..core import dtypes as _dtypes
from ..core.dtypes import numpy_dtype
from ..core.errors import UnsupportedDtypeError
from ..registry import STRATEGIES, get_adapter
from .oracle import check_mul_sum

Shape = tuple[int, ...]

LAYOUTS = ("contiguous", "transposed", "fortran", "strided")
MAGNITUDES = ("unit", "wide", "positive")
# The dtypes the sweep covers by default (``xbackend check``).
SWEEP_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "int32", "int64")

# Largest binary exponent of one input for the "wide" magnitude; the product of
# two inputs stays below 2**(2 e) and a sum of N of them below 2**(2 e) N.
_WIDE_EXPONENT = {"float16": 3, "bfloat16": 20, "float32": 20, "float64": 200}
# Where NaN / inf are planted: (row, flat column, value in a, value in b).
_SPECIALS = (
    (math.nan, 1.0),
    (math.inf, 2.0),
    (-math.inf, 0.5),
    (math.inf, 0.0),  # inf * 0 is NaN
)


@dataclass(frozen=True)
class CaseSpec:
    """What one case exercises; ``build_case`` turns it into inputs of one dtype."""

    a_shape: Shape
    b_shape: Shape
    layout: str = "contiguous"
    magnitude: str = "unit"
    specials: int = 0  # how many NaN/inf entries to plant (real floats; NaN only for complex)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.magnitude not in MAGNITUDES:
            raise ValueError(f"magnitude must be one of {MAGNITUDES}, not {self.magnitude!r}")

    @property
    def label(self) -> str:
        extras = [self.layout, self.magnitude] + ([f"{self.specials} specials"] if self.specials else [])
        return f"{self.a_shape} x {self.b_shape} ({', '.join(extras)})"


@dataclass(frozen=True)
class Case:
    spec: CaseSpec
    dtype: str
    a: np.ndarray  # host inputs, C-contiguous
    b: np.ndarray


def _rng(spec: CaseSpec, dtype: str) -> np.random.Generator:
    return np.random.default_rng([spec.seed, zlib.crc32(f"{dtype}|{spec.label}".encode())])


def _full_n(spec: CaseSpec) -> int:
    return max(spec.a_shape[0], spec.b_shape[0]) if 0 not in (spec.a_shape[0], spec.b_shape[0]) else 0


def _real_values(rng: np.random.Generator, shape: Shape, dtype: str, magnitude: str, n: int) -> np.ndarray:
    """Float64 values exactly representable in ``dtype``, whose sums of ``n`` products stay in range."""
    if magnitude == "wide":
        # Magnitudes spread over many binades, limited so that n products never overflow.
        top = _WIDE_EXPONENT[dtype]
        limit = math.log2(_dtypes.MAX_FINITE[dtype]) - 2 - math.log2(max(n, 1))
        top = int(min(top, limit / 2))
        exponents = rng.integers(-top, top + 1, size=shape)
        values = rng.uniform(1, 2, size=shape) * np.exp2(exponents)
    elif magnitude == "positive":
        # Same-sign data: partial sums only grow, which exposes narrow accumulators.
        values = rng.uniform(0.0625, 0.125, size=shape) if dtype == "float16" else rng.uniform(0.5, 1, size=shape)
    else:
        values = rng.uniform(-1, 1, size=shape)
    values = np.where(rng.random(shape) < 0.5, -values, values) if magnitude == "wide" else values
    return values.astype(numpy_dtype(dtype)).astype(np.float64)


def _integer_values(rng: np.random.Generator, shape: Shape, dtype: str, magnitude: str) -> np.ndarray:
    info = np.iinfo(numpy_dtype(dtype))
    if magnitude == "wide":  # the full range: products and sums wrap modulo 2**bits
        return rng.integers(info.min, info.max, size=shape, dtype=numpy_dtype(dtype), endpoint=True)
    low = 0 if magnitude == "positive" else -100
    return rng.integers(low, 100, size=shape).astype(numpy_dtype(dtype))


def _values(rng: np.random.Generator, shape: Shape, dtype: str, magnitude: str, n: int) -> np.ndarray:
    if _dtypes.is_integer(dtype):
        return _integer_values(rng, shape, dtype, magnitude)
    if _dtypes.is_complex(dtype):
        real = "float32" if dtype == "complex64" else "float64"
        parts = [_real_values(rng, shape, real, magnitude, 2 * n) for _ in range(2)]
        return (parts[0] + 1j * parts[1]).astype(numpy_dtype(dtype))
    return _real_values(rng, shape, dtype, magnitude, n).astype(numpy_dtype(dtype))


def _plant_specials(rng: np.random.Generator, a: np.ndarray, b: np.ndarray, count: int, dtype: str) -> None:
    if count == 0 or _dtypes.is_integer(dtype) or a.size == 0 or b.size == 0:
        return
    for i in range(count):
        special, partner = _SPECIALS[i % len(_SPECIALS)]
        if _dtypes.is_complex(dtype):
            # Complex infinities differ between naive and C99 Annex G multiplication; NaN does not.
            special, partner = math.nan, 1.0
        ia, ib = rng.integers(a.size), rng.integers(b.size)
        a.flat[ia] = special
        b.flat[ib] = partner


def build_case(spec: CaseSpec, dtype: str) -> Case:
    """Seeded host inputs for ``spec`` in ``dtype`` (the same spec, seed and dtype give the same arrays)."""
    rng = _rng(spec, dtype)
    n = _full_n(spec)
    a = _values(rng, spec.a_shape, dtype, spec.magnitude, n)
    b = _values(rng, spec.b_shape, dtype, spec.magnitude, n)
    _plant_specials(rng, a, b, spec.specials, dtype)
    return Case(spec, dtype, np.ascontiguousarray(a), np.ascontiguousarray(b))


def _permute_dims(x: Any, axes: tuple[int, ...]) -> Any:
    """A view of native ``x`` with its axes permuted, spelt the way ``x``'s library spells it."""
    namespace = getattr(x, "__array_namespace__", None)
    if namespace is not None:  # the array API standard: NumPy 2, JAX, CuPy, array-api-strict
        return namespace().permute_dims(x, axes)
    # torch names it ``permute``; NumPy 1.x and dask ``transpose``.
    return x.permute(axes) if hasattr(x, "permute") else x.transpose(axes)


def native_input(adapter: Adapter, host: np.ndarray, layout: str) -> Any:
    """``host`` on the adapter's device, as a native array whose memory layout is ``layout``.

    The non-contiguous layouts are views made natively from a contiguous native
    array, as a user's own code would make them (JAX has no layouts: its views are copies).
    """
    if layout == "contiguous" or (host.ndim < 2 and layout != "strided"):
        return adapter.asarray(host)
    if layout == "transposed":
        swap = (1, 0, *range(2, host.ndim))
        return _permute_dims(adapter.asarray(np.ascontiguousarray(host.transpose(swap))), swap)
    if layout == "fortran":
        reverse = tuple(reversed(range(host.ndim)))
        return _permute_dims(adapter.asarray(np.ascontiguousarray(host.transpose(reverse))), reverse)
    # strided: every other element along dim 0 and the last dim; the skipped
    # elements are NaN, so a strategy that reads them poisons its result.
    padded_shape = (2 * host.shape[0],) + host.shape[1:-1] + ((2 * host.shape[-1],) if host.ndim > 1 else ())
    padded = np.full(
        padded_shape, np.nan if host.dtype.kind in "fc" or host.dtype == numpy_dtype("bfloat16") else 7, host.dtype
    )
    window = (
        (slice(None, None, 2),) + (slice(None),) * (host.ndim - 2) + ((slice(None, None, 2),) if host.ndim > 1 else ())
    )
    padded[window] = host
    return adapter.asarray(padded)[window]


def run_case(adapter: Adapter, case: Case) -> tuple[float, str | None]:
    """Compute ``case`` with ``adapter``; the worst error / bound ratio and why it fails, if it does."""
    x = native_input(adapter, case.a, case.spec.layout)
    y = native_input(adapter, case.b, case.spec.layout)
    out = adapter.mul_sum(x, y)
    adapter.synchronize(out)
    if not adapter.is_native(out):
        return (
            math.inf,
            f"{case.spec.label}: result is a {type(out).__module__}.{type(out).__name__}, not a {adapter.framework} array",
        )
    if adapter.device_kind(adapter.device_of(out)) != adapter.device:
        return math.inf, f"{case.spec.label}: result is on {adapter.device_of(out)}, inputs on {adapter.device}"
    verdict = check_mul_sum(out, case.a, case.b, bound="probabilistic")  # random data: the tight verdict
    return verdict.ratio, None if verdict.failure is None else f"{case.spec.label}: {verdict.failure}"


def sweep_specs(seed: int = 0) -> list[CaseSpec]:
    """The fixed case list of the sweep: every shape rule, layout, magnitude and special value."""
    spec = CaseSpec
    shapes = [
        ((0, 3), (0, 3)),  # N = 0
        ((0, 3), (1, 3)),
        ((1, 4), (1, 4)),  # N = 1
        ((7, 1), (7, 1)),  # K = 1
        ((5,), (5,)),  # 1-D
        ((6, 3, 4), (6, 3, 4)),  # 3-D
        ((1, 5), (9, 5)),  # dim 0 broadcasts
        ((9, 5), (1, 5)),
        ((8, 1), (8, 5)),  # trailing dims broadcast
        ((6, 3, 1), (1, 1, 4)),
        ((3, 2), (3, 2)),  # N small enough that every row matters against the bound
        ((257, 33), (257, 33)),
    ]
    specs = [spec(a, b, seed=seed) for a, b in shapes]
    specs += [spec((12, 5), (12, 5), layout, seed=seed) for layout in LAYOUTS[1:]]
    specs += [spec((5, 4, 3), (5, 4, 3), layout, seed=seed) for layout in LAYOUTS[1:]]
    specs += [spec((1, 6), (10, 6), "strided", seed=seed)]
    specs += [
        spec((40, 6), (40, 6), magnitude="wide", seed=seed),
        spec((2000, 3), (2000, 3), magnitude="wide", seed=seed),
    ]
    specs += [spec((10, 8), (10, 8), specials=4, seed=seed), spec((4,), (4,), specials=1, seed=seed)]
    # Long same-sign sums: a half-precision accumulator stagnates far from the exact sum.
    specs += [spec((100_000, 2), (100_000, 2), magnitude="positive", seed=seed)]
    return specs


@dataclass
class SweepRow:
    """One (adapter, device, dtype) line of the sweep."""

    adapter: str
    device: str
    dtype: str
    cases: int = 0
    worst_ratio: float = 0.0
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the dtype was not run

    @property
    def passed(self) -> bool:
        return not self.failures


def sweep_dtype(adapter: Adapter, dtype: str, specs: Iterable[CaseSpec]) -> SweepRow:
    """Run every spec in ``dtype`` on ``adapter``; exceptions count as failures, never abort the sweep."""
    row = SweepRow(adapter.name, adapter.device, dtype)
    if dtype in adapter.unsupported_dtypes():
        row.skipped = adapter.unsupported_dtype_reason(dtype)
        return row
    for spec in specs:
        row.cases += 1
        try:
            ratio, failure = run_case(adapter, build_case(spec, dtype))
        except UnsupportedDtypeError as exc:
            row.cases, row.skipped = 0, str(exc)
            return row
        except Exception as exc:  # noqa: BLE001 - any crash is a failed case, reported by the row
            ratio, failure = math.inf, f"{spec.label}: raised {type(exc).__name__}: {exc}"
        row.worst_ratio = max(row.worst_ratio, ratio)
        if failure is not None:
            row.failures.append(failure)
    return row


def sweep(
    adapter: Adapter, dtypes: Sequence[str] = SWEEP_DTYPES, *, seed: int = 0, specs: Sequence[CaseSpec] | None = None
) -> list[SweepRow]:
    """The correctness sweep of one adapter: one row per dtype."""
    specs = sweep_specs(seed) if specs is None else specs
    return [sweep_dtype(adapter, dtype, specs) for dtype in dtypes]


def select_pairs(selection: str | None) -> list[tuple[str, str]]:
    """The (adapter, device) pairs named by ``selection``: "name" or "name@device", comma-separated.

    None or blank selects every registered pair; an unknown name raises ``ValueError``.
    """
    pairs = [(name, device) for name, cls in STRATEGIES.items() for device in cls.devices]
    if not selection or not selection.strip():
        return pairs
    chosen: list[tuple[str, str]] = []
    for item in filter(None, (part.strip() for part in selection.split(","))):
        name, _, device = item.partition("@")
        matches = [pair for pair in pairs if pair[0] == name and device in ("", pair[1])]
        if not matches:
            known = ", ".join(f"{n}@{d}" for n, d in pairs)
            raise ValueError(f"unknown adapter {item!r}; known: {known}")
        chosen += [pair for pair in matches if pair not in chosen]
    return chosen


def sweep_pairs(
    pairs: Sequence[tuple[str, str]], dtypes: Sequence[str] = SWEEP_DTYPES, *, seed: int = 0
) -> list[SweepRow]:
    """The sweep over several (adapter, device) pairs; an unavailable pair gives one skipped row."""
    rows: list[SweepRow] = []
    for name, device in pairs:
        reason = STRATEGIES[name].unavailable_reason(device)
        if reason is not None:
            rows.append(SweepRow(name, device, "-", skipped=f"unavailable: {reason}"))
            continue
        rows += sweep(get_adapter(name, device), dtypes, seed=seed)
    return rows


def format_rows(rows: Sequence[SweepRow]) -> str:
    """The sweep as a table: one line per (adapter, device, dtype), failures listed below it."""
    table = [("adapter", "device", "dtype", "cases", "worst error/bound", "result")]
    for row in rows:
        result = (
            f"skipped ({row.skipped})" if row.skipped else ("pass" if row.passed else f"FAIL ({len(row.failures)})")
        )
        ratio = "-" if row.skipped else f"{row.worst_ratio:.3g}"
        table.append((row.adapter, row.device, row.dtype, str(row.cases), ratio, result))
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line[:5], widths)) + "  " + line[5] for line in table]
    for row in rows:
        lines += [f"FAIL {row.adapter}@{row.device} {row.dtype}: {failure}" for failure in row.failures]
    return "\n".join(lines)
