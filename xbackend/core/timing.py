"""Timing one strategy's calls: the budget, the samples, and the figures taken from them.

``xbackend.measure`` (every cell, floor and grid) and ``xbackend.dispatch``
(the first-call trial that picks a strategy on an untuned machine) both time
through here, so a trial and a reported cell are the same measurement. The
adapter is duck-typed (``prepare``, ``timer``, ``mul_sum``, ``asarray``,
``to_numpy``): this layer imports no framework and no registry.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_SLOW_CALL_SAMPLES = 3
_SLOW_CALL_BUDGETS = 5


@dataclass(frozen=True)
class Budget:
    """How long a cell is measured."""

    warmup_s: float = 0.5
    measure_s: float = 1.5
    min_repeats: int = 10
    max_repeats: int = 10_000

    def __post_init__(self) -> None:
        if self.warmup_s < 0 or self.measure_s <= 0 or not 1 <= self.min_repeats <= self.max_repeats:
            raise ValueError(
                f"invalid budget {self}: need warmup_s >= 0, measure_s > 0, 1 <= min_repeats <= max_repeats"
            )


DEFAULT_BUDGET = Budget()
QUICK_BUDGET = Budget(warmup_s=0.1, measure_s=0.3, min_repeats=5, max_repeats=2_000)


def _device_copies(adapter: Any, x: Any, y: Any, copies: int) -> list[tuple[Any, Any]]:
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    host_x, host_y = (adapter.to_numpy(x), adapter.to_numpy(y)) if copies > 1 else (None, None)
    return [(x, y)] + [(adapter.asarray(host_x), adapter.asarray(host_y)) for _ in range(copies - 1)]


# -- timing -------------------------------------------------------------------
@dataclass(frozen=True)
class Timing:
    """Per-call seconds of the timed calls, with the one-off costs kept apart."""

    samples_s: tuple[float, ...]
    first_call_s: float
    compile_s: float | None
    warmup_calls: int
    timer: str
    copies: int = 1
    # Calls per sample: a sample times a batch of back-to-back calls on an
    # asynchronous device (see ``batch_size``), one call elsewhere.
    calls_per_sample: int = 1

    @functools.cached_property
    def _quantiles(self) -> tuple[float, float, float]:
        p20, median, p80 = np.percentile(self.samples_s, [20, 50, 80])
        return float(p20), float(median), float(p80)

    @property
    def median_s(self) -> float:
        return self._quantiles[1]

    @property
    def p20_s(self) -> float:
        return self._quantiles[0]

    @property
    def p80_s(self) -> float:
        return self._quantiles[2]

    @property
    def noise(self) -> float:
        """(p80 - p20) / median: the spread of the middle 60% relative to the median."""
        return (self.p80_s - self.p20_s) / self.median_s if self.median_s > 0 else math.inf

    @property
    def repeats(self) -> int:
        return len(self.samples_s)


def _sample(
    timer: Any, calls: Sequence[Callable[[], Any]], budget: Budget, first_call_s: float, compile_s: float | None
) -> Timing:
    """Warm up until ``budget.warmup_s`` has passed since the first call began, then sample, cycling through ``calls``."""
    warmup_calls, start = 0, time.perf_counter() - first_call_s
    while time.perf_counter() - start < budget.warmup_s:
        timer.time(calls[warmup_calls % len(calls)])
        warmup_calls += 1
    batch = batch_size(timer, calls)
    turns = itertools.cycle(calls)

    def run_batch() -> Any:
        # One call hands its own result to the timer's synchronize (a lazy dask
        # array is computed there); a batch, only on asynchronous devices, a list.
        if batch == 1:
            return next(turns)()
        return [next(turns)() for _ in range(batch)]

    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < budget.max_repeats:
        samples.append(timer.time(run_batch) / batch)
        elapsed = time.perf_counter() - start
        if elapsed >= budget.measure_s and len(samples) >= budget.min_repeats:
            break
        if elapsed >= _SLOW_CALL_BUDGETS * budget.measure_s and len(samples) >= _SLOW_CALL_SAMPLES:
            break
    return Timing(tuple(samples), first_call_s, compile_s, warmup_calls, timer.method, len(calls), batch)


# A sample on an asynchronous device spans at least this long: a single call of a
# few tens of microseconds would otherwise time its own launch and the empty
# queue's start-up (10-30 us on an H200) more than its memory traffic.
BATCH_TARGET_S = 1e-3
MAX_BATCH = 100


def batch_size(timer: Any, calls: Sequence[Callable[[], Any]]) -> int:
    """Calls per sample: enough back-to-back calls to span ``BATCH_TARGET_S`` on an asynchronous device, else 1."""
    if not getattr(timer, "asynchronous", False):
        return 1
    single = min(timer.time(calls[i % len(calls)]) for i in range(3))
    return max(1, min(MAX_BATCH, math.ceil(BATCH_TARGET_S / max(single, 1e-7))))


def prepared_calls(adapter: Any, x: Any, y: Any, copies: int = 1) -> tuple[float | None, list[Callable[[], Any]]]:
    """``adapter``'s compile seconds for ``x``, ``y`` (None: nothing compiles), and its ``mul_sum`` calls rotated
    over ``copies`` device copies, ``x``, ``y`` first: the next call is the first after the compile."""
    pairs = _device_copies(adapter, x, y, copies)
    compile_s = adapter.prepare(x, y)
    return compile_s, [functools.partial(adapter.mul_sum, u, v) for u, v in pairs]


def time_mul_sum(adapter: Any, x: Any, y: Any, *, budget: Budget = DEFAULT_BUDGET, copies: int = 1) -> Timing:
    """Time ``adapter.mul_sum`` on native ``x``, ``y`` (rotated over ``copies`` device copies)."""
    compile_s, calls = prepared_calls(adapter, x, y, copies)
    timer = adapter.timer()
    first_call_s = timer.time(calls[0])
    return _sample(timer, calls, budget, first_call_s, compile_s)


def time_one_call(adapter: Any, x: Any, y: Any) -> tuple[float, Any]:
    """Seconds of one ``adapter.mul_sum(x, y)`` by the adapter's own timer (its prelude included), and its result."""
    outs: list[Any] = []

    def call() -> Any:
        outs.append(adapter.mul_sum(x, y))
        return outs[-1]

    return adapter.timer().time(call), outs[-1]
