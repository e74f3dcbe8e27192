"""``xbackend.mul_sum``: validate once per input signature, choose a strategy, call its kernel.

The choice is keyed on (library, device, dtype, shape class) and read from the
selection tables (``xbackend.selection``): the tuned table, then the shipped
one; where no entry matches the dtype, the float32 entry of the same class is
used if that strategy computes the dtype; otherwise the library's default
strategy runs. ``choose`` says which and why. The ``<library>-auto`` adapters
are ``mul_sum`` itself behind the adapter interface, so that ``xbackend
compare`` and the asv suite time exactly what users call.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from . import selection
from .backends import LIBRARIES, device_kind_of, library_of
from .backends.base import Adapter
from .backends.cupy import CupyAdapter
from .backends.jax import JaxAdapter, is_tracer
from .backends.numpy import NumpyAdapter
from .backends.torch import TorchAdapter, compiling, traceable_mul_sum
from .core.cache import LRUCache
from .core.dtypes import SMALLEST_NORMAL, UNIT_ROUNDOFF, numpy_dtype, rigorous_factor
from .core.errors import AdapterUnavailable
from .core.semantics import Plan
from .core.shapes import MANY_ROWS_CLASSES
from .core.timing import Budget, time_mul_sum, time_one_call
from .registry import STRATEGIES, get_adapter, instantiated, on_change, register_strategy

# JAX arrays spread over several devices go to the strategy that keeps them there.
SHARDED_JAX_STRATEGY = "jax-sharded"


def is_sharded(x: Any) -> bool:
    """Whether JAX array ``x`` lives on several devices (a tracer: not yet, so no)."""
    return not is_tracer(x) and len(x.devices()) > 1


def _sharded_jax(library: str, a: Any, b: Any) -> bool:
    """Whether ``mul_sum(a, b)`` goes to jax-sharded: either input may be the sharded one (the other a tracer, in
    a gradient with respect to it)."""
    return library == "jax" and (is_sharded(a) or is_sharded(b))


def _default_strategy(library: str, a: Any, b: Any) -> str:
    if _sharded_jax(library, a, b):
        return SHARDED_JAX_STRATEGY
    return LIBRARIES[library].default_strategy


def resolve_inputs(a: Any, b: Any) -> tuple[str, str, Plan]:
    """Library, device kind and plan of ``mul_sum(a, b)``; every input error is raised here, before work."""
    library_a, library_b = library_of(a), library_of(b)
    if library_a != library_b:
        raise TypeError(f"inputs come from two libraries: {library_a} and {library_b}")
    device = device_kind_of(library_a, a)
    default = _default_strategy(library_a, a, b)
    if device not in STRATEGIES[default].devices:
        raise ValueError(f"no adapter for {library_a} arrays on {device}")
    return library_a, device, get_adapter(default, device).plan(a, b)


# -- the choice ---------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    """The strategy ``mul_sum`` runs for one (library, device, dtype, shape class), and why."""

    strategy: str
    library: str
    device: str
    dtype: str
    shape_class: str
    source: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.library} {self.dtype} on {self.device}, {self.shape_class}: {self.strategy} "
            f"({self.source}): {self.reason}"
        )


def choose(a: Any, b: Any) -> Choice:
    """The strategy ``xbackend.mul_sum(a, b)`` runs, and why (inputs are validated first)."""
    library, device, plan = resolve_inputs(a, b)
    if _sharded_jax(library, a, b):
        return Choice(
            SHARDED_JAX_STRATEGY,
            library,
            device,
            plan.out_dtype,
            "-",
            "rule",
            "the input is sharded over several devices: jax-sharded keeps it there",
        )
    return choose_for(library, device, plan.full_shape, plan.out_dtype)


def explain(a: Any, b: Any) -> str:
    """``str(choose(a, b))``: which strategy runs on these inputs, and why."""
    return str(choose(a, b))


def choose_for(library: str, device: str, shape: Sequence[int], dtype: str) -> Choice:
    """The strategy for ``library`` arrays of ``dtype`` on ``device`` whose broadcast shape is ``shape``."""
    if library not in LIBRARIES:
        raise ValueError(f"unknown library {library!r}; choose from {', '.join(LIBRARIES)}")
    record = LIBRARIES[library]
    if device not in record.devices:
        raise ValueError(f"{library} has no device {device!r}; its devices: {', '.join(record.devices)}")
    shape_class = selection.shape_class_of(shape, dtype)
    default = record.default_strategy
    if not record.selectable:
        return Choice(default, library, device, dtype, shape_class, "default", f"{library} has one strategy")
    small = record.small_input_strategies.get(device)
    if shape_class == "latency" and small is not None and _runs(small, device, dtype):
        reason = "small inputs: served without a per-shape compile, so new shapes stay cheap (docs/shape-churn.md)"
        return Choice(small, library, device, dtype, shape_class, "rule", reason)
    key = (library, device, dtype, shape_class)
    found = list(selection.entries_for(key))
    tuned = _table_choice(found, library, device, dtype, shape_class, source_prefix="tuned")
    if tuned is not None:  # a table tuned on this machine (xbackend tune) wins over trials
        return tuned
    trial = _trial_result(key)
    if trial is not None:
        source, entry = trial
        return Choice(entry["strategy"], library, device, dtype, shape_class, source, _trial_figures(entry))
    untried = _UNTRIED.get(key) if autotune_mode() != "off" else None
    choice = _untuned_choice(found, library, device, dtype, shape_class)
    return choice if untried is None else replace(choice, reason=f"{choice.reason}; {untried[1]}")


def _untuned_choice(
    found: list[tuple[str, dict[str, Any]]], library: str, device: str, dtype: str, shape_class: str
) -> Choice:
    """The shipped table's choice, one borrowed from its float32 entry, or the library's default."""
    tabled = _table_choice(found, library, device, dtype, shape_class)
    if tabled is not None:
        return tabled
    fallback = selection.FALLBACK_DTYPE
    entries = selection.entries_for((library, device, fallback, shape_class))
    borrowed = _table_choice(entries, library, device, dtype, shape_class)
    if borrowed is not None:
        return replace(borrowed, reason=f"no {dtype} measurement; {fallback} {borrowed.reason}")
    return Choice(
        LIBRARIES[library].default_strategy,
        library,
        device,
        dtype,
        shape_class,
        "default",
        f"no measured entry for {library} {dtype} on {device}, {shape_class}: the library's default strategy",
    )


def _table_choice(
    entries: Iterable[tuple[str, dict[str, Any]]],
    library: str,
    device: str,
    dtype: str,
    shape_class: str,
    source_prefix: str = "",
) -> Choice | None:
    """The choice the first of ``entries`` whose source starts with ``source_prefix`` stands for here, if any."""
    for source, entry in entries:
        strategy = _table_strategy(entry, device, dtype, shape_class) if source.startswith(source_prefix) else None
        if strategy is not None:
            reason = _measured(entry, strategy, device, dtype, shape_class)
            return Choice(strategy, library, device, dtype, shape_class, source, reason)
    return None


def _measured(entry: dict[str, Any], strategy: str, device: str, dtype: str, shape_class: str) -> str:
    bandwidth = entry.get("fraction_of_floor") is not None
    figure = (
        f"{entry['fraction_of_floor']:.2f} of the floor" if bandwidth else f"{entry['median_s'] * 1e6:.3g} us per call"
    )
    others = ", ".join(
        f"{name} {value:.2f}" if bandwidth else f"{name} {value * 1e6:.3g} us"
        for name, value in entry.get("alternatives", {}).items()
    )
    text = f"fastest measured: {figure} at {'x'.join(map(str, entry['shape']))}"
    text += f" (others: {others})" if others else ""
    if strategy != entry["strategy"]:
        reason = _why_passed_over(entry["strategy"], device, dtype, shape_class)
        text = f"{entry['strategy']} {text}; {reason}, so {strategy}, the fastest of the others, runs"
    return text


def _why_passed_over(strategy: str, device: str, dtype: str, shape_class: str) -> str | None:
    """Why ``mul_sum`` may not choose ``strategy`` here, or None where it may.

    Named, not assumed: a winner missing its package (numba for the ``*-numba``
    strategies) must not read as one that compiles for seconds. A strategy whose
    first call of every new input signature compiles for seconds (torch-compile)
    waits for the user's opt-in (``XBACKEND_AUTOTUNE=compile``); one that may keep
    a single running sum per output (``Adapter.serial_sum_devices``) is not chosen
    where each output sums many rows.
    """
    cls = STRATEGIES.get(strategy)
    if cls is None:
        return "it is not registered here"
    if not _runs(strategy, device, dtype):
        missing = cls.unavailable_reason(device) if device in cls.devices else f"it has no device {device!r}"
        return f"it cannot run here ({missing})" if missing is not None else f"it does not compute {dtype}"
    if cls.compiles_for_seconds and autotune_mode() != "compile":
        return "its first call of each input signature compiles for seconds (XBACKEND_AUTOTUNE=compile allows it)"
    if device in cls.serial_sum_devices and shape_class in MANY_ROWS_CLASSES:
        return (
            f"on {device} it may sum each output in one running sum over all rows, which loses accuracy "
            f"with N (docs/adapters.md), and {shape_class} outputs sum many rows"
        )
    return None


def _table_strategy(entry: dict[str, Any], device: str, dtype: str, shape_class: str) -> str | None:
    """The strategy a table entry stands for here: its winner, or the fastest alternative ``mul_sum`` may run."""
    ranked = [entry["strategy"], *entry.get("alternatives", {})]
    return next((name for name in ranked if _why_passed_over(name, device, dtype, shape_class) is None), None)


# -- the first-call trial (FFTW-wisdom style) -----------------------------------
# On a machine without a tuned table, the first mul_sum of a (library, device,
# dtype, shape class) whose inputs are large enough times the library's few
# candidate strategies on those very inputs, in interleaved rounds, through the
# same timing code as ``xbackend compare`` (core.timing), and keeps the fastest
# whose result agrees with the shipped choice's. The result is persisted per
# machine and library versions (``selection.wisdom_path``) and used from then on.
# Timing lives in core (layer 0), so dispatch needs no hook into measure.
AUTOTUNE_VARIABLE = "XBACKEND_AUTOTUNE"  # "0": off (the shipped choice); "compile": torch-compile may compete
TRIAL_MIN_BYTES = 8 * 2**20  # both inputs together; smaller calls cost less than a trial could save
TRIAL_ROUNDS = 2
TRIAL_LIMIT_S = 0.8  # the whole trial, first calls included; a trial that cannot fit is not run
# An alternative the shipped table measured below this fraction of its winner is not tried.
TRIAL_PRUNE = 0.25
# How far a candidate's result may stray from the shipped choice's, relative to its largest magnitude.
_AGREEMENT = {"float16": 2e-2, "bfloat16": 5e-2, "float32": 1e-3, "complex64": 1e-3}
_TRIALS: dict[selection.TableKey, dict[str, Any]] = {}
# Keys whose trial could not be run in this process: the bytes of the smallest input
# it was due on, and why. Each later signature of the key paid another 0.7 s before
# (64 x 1e6 float32 on the 2-vCPU VM); one of half those bytes or fewer may fit.
_UNTRIED: dict[selection.TableKey, tuple[int, str]] = {}


def autotune_mode() -> str:
    """``"off"`` (XBACKEND_AUTOTUNE=0), ``"compile"`` (torch-compile competes too) or ``"on"`` (the default)."""
    value = os.environ.get(AUTOTUNE_VARIABLE, "").strip().lower()
    return "off" if value in ("0", "off", "false", "no") else "compile" if value == "compile" else "on"


def _trial_result(key: selection.TableKey) -> tuple[str, dict[str, Any]] | None:
    if autotune_mode() == "off":
        return None
    for source, entry in (("trial in this process", _TRIALS.get(key)), (None, selection.wisdom().get(key))):
        if entry is not None and _runs(entry["strategy"], key[1], key[2]):
            return source or f"trial on this machine, from {selection.wisdom_path()}", entry
    return None


def _trial_figures(entry: dict[str, Any]) -> str:
    in_rounds = entry.get("in_rounds", list(entry["median_s"]))  # wisdom of before 2026-11-28 has no such list
    timings = ", ".join(
        f"{name} {seconds * 1e3:.3g} ms" + ("" if name in in_rounds else " (one call, out of the rounds)")
        for name, seconds in entry["median_s"].items()
    )
    shape = "x".join(map(str, entry["shape"]))
    return f"fastest in a {entry['trial_s']:.2g} s trial at {shape} (median per call: {timings})"


def trial_candidates(choice: Choice) -> list[str]:
    """The strategies a trial times for ``choice``'s key: the prior first, pruned by the shipped figures."""
    shipped = next((entry for source, entry in selection.entries_for(_key(choice)) if source.startswith("shipped")), {})
    best = shipped.get("fraction_of_floor")
    weak = {
        name
        for name, value in shipped.get("alternatives", {}).items()
        if best is not None and value is not None and value < TRIAL_PRUNE * best
    }
    others = [
        name
        for name, cls in STRATEGIES.items()
        if name != choice.strategy and cls.selectable and cls.framework == choice.library and name not in weak
    ]
    # Fastest measured first, those the table has no figure for before the rest: where a
    # candidate stalls and spends the trial's time, the likeliest winners have run.
    measured = shipped.get("alternatives", {})
    others.sort(key=lambda name: -measured[name] if isinstance(measured.get(name), int | float) else -math.inf)
    names = [choice.strategy, *others]
    return [name for name in names if _why_passed_over(name, choice.device, choice.dtype, choice.shape_class) is None]


def _key(choice: Choice) -> selection.TableKey:
    return (choice.library, choice.device, choice.dtype, choice.shape_class)


def _trial_bytes(plan: Plan) -> int:
    """The bytes a trial's calls read: both inputs, broadcast, in the result's dtype."""
    return 2 * math.prod(plan.full_shape) * numpy_dtype(plan.out_dtype).itemsize


def _wants_trial(choice: Choice, plan: Plan, a: Any) -> bool:
    if autotune_mode() == "off" or choice.source.startswith(("tuned", "trial", "rule")):
        return False
    if not LIBRARIES[choice.library].selectable or is_tracer(a):
        return False
    untried = _UNTRIED.get(_key(choice))
    if untried is not None and _trial_bytes(plan) > untried[0] // 2:
        return False
    return _trial_bytes(plan) >= TRIAL_MIN_BYTES


def run_trial(choice: Choice, a: Any, b: Any) -> Choice:
    """Time ``trial_candidates(choice)`` on ``a``, ``b``; record and return the fastest that agrees with the prior.

    Bounded by ``TRIAL_LIMIT_S``: no call starts once it is spent, and no
    candidate's first call starts where it would pass it, predicted as the
    slowest first call seen so far. Each
    candidate's first call is timed first (after its compile); one that took
    ``TRIAL_SLOW`` times the fastest first call in two calls is out: a strategy
    that stalls on this machine, e.g. many short OpenMP regions while another
    process holds a core (keeping such a prior cost up to 100x). The rest are
    timed in interleaved rounds, dropping any that falls ``TRIAL_SLOW`` times
    behind; where time is short, the slowest first calls sit the rounds out.
    Where no round fits, the first calls decide only against a stalled prior:
    the prior stays unless it was dropped. A lone survivor wins; otherwise the
    prior yields only to a median ``TRIAL_MARGIN`` lower than its own.
    """
    names = trial_candidates(choice)
    if len(names) < 2:
        return choice
    adapters = {name: get_adapter(name, choice.device) for name in names}
    prior = adapters[names[0]]  # trial_candidates lists the prior first
    # The caller's inputs may still be in the making (JAX and CUDA work is
    # asynchronous): their producer's time is not the first candidate's. A 64 x 1e6
    # float32 JAX array fresh from the host charged jax-numba's first call 0.6 s,
    # the whole trial, so no other candidate ran.
    prior.synchronize(a, b)
    _prepare_prior(prior, a, b)
    start = time.perf_counter()
    plan = prior.plan(a, b)
    every_first = _first_calls(adapters, a, b, plan, start)
    if not every_first:
        return _untried(choice, plan, "no candidate ran")
    first = _not_stalled(every_first)
    medians = _rounds(adapters, first, a, b, start) if len(first) > 1 else {}
    if not medians and len(first) > 1 and choice.strategy in first:
        return _untried(choice, plan, f"one call of each takes {sum(first.values()):.2g} s")
    figures = medians or first  # no round fitted and the prior stalled: the fastest first call of the others
    winner = min(figures, key=lambda name: figures[name])
    if choice.strategy in figures and figures[winner] > (1 - TRIAL_MARGIN) * figures[choice.strategy]:
        winner = choice.strategy
    # Every candidate's figure is kept: a dropped one's first call (or its rounds' median).
    figures = every_first | figures
    entry = {
        "library": choice.library,
        "device": choice.device,
        "dtype": choice.dtype,
        "shape_class": choice.shape_class,
        "strategy": winner,
        "shape": [int(n) for n in getattr(a, "shape", ())],
        "median_s": dict(sorted(figures.items(), key=lambda item: item[1])),
        # Whose figure is a median of the rounds; the others' is one first call (stalled, or sat the rounds out).
        "in_rounds": sorted(medians),
        "prior": choice.strategy,
        "trial_s": time.perf_counter() - start,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    _TRIALS[_key(choice)] = entry
    try:
        selection.record_wisdom(entry)
    except OSError:  # a read-only cache: the choice holds for this process only
        pass
    return replace(choice, strategy=winner, source="trial in this process", reason=_trial_figures(entry))


def _untried(choice: Choice, plan: Plan, why: str) -> Choice:
    """``choice``, its trial recorded as not run: inputs of its key as large are not tried again in this process."""
    shape = "x".join(map(str, plan.full_shape))
    note = f"no trial at {shape} ({why}); inputs of half its bytes or fewer are tried"
    known = _UNTRIED.get(_key(choice))
    if known is None or _trial_bytes(plan) < known[0]:
        _UNTRIED[_key(choice)] = (_trial_bytes(plan), note)
    return replace(choice, reason=f"{choice.reason}; {note}")


def _prepare_prior(prior: Adapter, a: Any, b: Any) -> None:
    """The prior's one-off compile (numba's kernel load, a JAX compile), outside the trial's limit.

    The call pays it whether or not a trial runs: counted in the limit, it left
    no time to try another candidate (numba's first load in a process, ~0.4 s
    of the 0.8, made every other candidate's first call look that slow).
    """
    try:
        prior.prepare(a, b)
    except Exception:  # the trial's first calls see the failure and pass the candidate over
        pass


# A candidate this many times slower than the fastest (first call or median) is out of the trial.
TRIAL_SLOW = 3.0
# A candidate replaces the prior only when its median is this much lower. The trial
# times the caller's one input pair, which stays in a large last-level cache between
# calls, while the table's figures (xbackend compare) stream rotated inputs from
# memory: on the 2-vCPU Xeon VM (300 MiB LLC) torch-blocked timed 11.9 ms against
# torch-numpy's 12.4 ms in a trial at 4096 x 4096 and 41 ms against 13.6 ms streamed.
# Within a few percent the trial cannot tell; the prior, measured cold, decides.
TRIAL_MARGIN = 0.1


def _first_calls(adapters: dict[str, Adapter], a: Any, b: Any, plan: Plan, start: float) -> dict[str, float]:
    """Seconds of each candidate's first call after its compile (the prior's first) whose result agrees with the prior's.

    No candidate starts once the trial's limit is spent.
    """
    reference, first, magnitudes = None, {}, None
    for name, adapter in adapters.items():
        if first and time.perf_counter() - start + _predicted_call_s(first) > TRIAL_LIMIT_S:
            break
        try:
            adapter.prepare(a, b)  # a compile (jax-jit, jax-rows) is a one-off: not what a call costs
            seconds, out = time_one_call(adapter, a, b)
            host = adapter.to_numpy(out)
        except Exception:  # a candidate that fails here is simply not chosen
            continue
        if reference is None:
            reference, magnitudes = host, _Magnitudes(adapter, a, b, plan)
        elif not _agrees(host, reference, plan, magnitudes):
            continue
        first[name] = seconds
    return _retimed_if_slow(adapters, first, a, b, start)


def _predicted_call_s(first: dict[str, float]) -> float:
    """What the next candidate's first call is expected to cost: the slowest first call seen so far."""
    return max(first.values())


def _retimed_if_slow(
    adapters: dict[str, Adapter], first: dict[str, float], a: Any, b: Any, start: float
) -> dict[str, float]:
    """``first``, where a candidate that looks stalled is called once more (time allowing) and keeps its faster call.

    A first call also pays one-off costs (page faults, a thread pool's start)
    and a busy machine's spikes; a stall that is the strategy's own repeats.
    """
    fastest = min(first.values(), default=0.0)
    for name in [name for name, seconds in first.items() if seconds > TRIAL_SLOW * fastest]:
        if time.perf_counter() - start + first[name] > TRIAL_LIMIT_S:
            continue  # no time to call it again: it stays as slow as it looked
        first[name] = min(first[name], time_one_call(adapters[name], a, b)[0])
    return first


def _not_stalled(seconds: dict[str, float]) -> dict[str, float]:
    fastest = min(seconds.values(), default=0.0)
    return {name: value for name, value in seconds.items() if value <= TRIAL_SLOW * fastest}


def _rounds(adapters: dict[str, Adapter], first: dict[str, float], a: Any, b: Any, start: float) -> dict[str, float]:
    """Median seconds per call over interleaved rounds of the first of ``first`` (the prior) and the
    others fastest first, as many as the time left allows; {} where not two fit."""
    left = TRIAL_LIMIT_S - (time.perf_counter() - start)
    leader, *others = first
    fit = {leader: first[leader]}
    for name in sorted(others, key=lambda name: first[name]):
        # Each round costs each candidate at least two calls (time_mul_sum's first call and one sample).
        if (sum(fit.values()) + first[name]) * TRIAL_ROUNDS * 2 > left:
            break
        fit[name] = first[name]
    if len(fit) < 2:
        return {}
    # A visit costs time_mul_sum's first call, then samples until ``measure_s`` has
    # passed, the last overshooting it by at most one call: two calls plus ``spare``,
    # so that the rounds end within the limit rather than the limit cutting one short.
    spare = max(0.0, (left / TRIAL_ROUNDS - 2 * sum(fit.values())) / len(fit))
    budget = Budget(warmup_s=0.0, measure_s=spare, min_repeats=1, max_repeats=50)
    samples: dict[str, list[float]] = {name: [] for name in fit}
    for _ in range(TRIAL_ROUNDS):
        for name in list(samples):
            if time.perf_counter() - start > TRIAL_LIMIT_S:
                break
            samples[name] += time_mul_sum(adapters[name], a, b, budget=budget).samples_s
        # A candidate the limit cut off before its first sample is out, as is one that stalled.
        samples = {name: samples[name] for name in _not_stalled(_medians(samples))}
    return _medians(samples)


def _medians(samples: dict[str, list[float]]) -> dict[str, float]:
    return {name: sorted(values)[len(values) // 2] for name, values in samples.items() if values}


def _agrees(got: np.ndarray, reference: np.ndarray, plan: Plan, magnitudes: _Magnitudes) -> bool:
    """A guard against a broken strategy (correctness itself is the test suite's): same shape and dtype, and
    values no further apart than two correct results can be.

    Each element within ``_AGREEMENT`` of the reference's passes at once. Others
    are held to the rigorous bound: each correct result is within
    ``c (u + gamma_N(u)) S + u_out |s|`` of the exact sum ``s`` (``S = sum |a_i b_i|``),
    so two differ by at most twice that. A fixed relative tolerance alone failed
    sums that cancel: torch-numba's and torch-einsum's sums of a 16e6 x 1 float32
    column, -69.80 and -69.62, both correct, differ by 2.6e-3 of their magnitude,
    and no other candidate reached the trial's rounds. An infinity or NaN agrees
    only with the same.
    """
    if got.shape != reference.shape or got.dtype != reference.dtype:
        return False
    if reference.dtype.kind in "iub":
        return bool(np.array_equal(got, reference))
    wide = np.complex128 if reference.dtype.kind == "c" else np.float64
    ref, out = reference.astype(wide), got.astype(wide)
    # Where either is not finite, only ``same`` (equal infinities, NaN and NaN) agrees.
    with np.errstate(invalid="ignore", over="ignore"):
        same = (out == ref) | (np.isnan(ref) & np.isnan(out))
        finite = np.isfinite(out) & np.isfinite(ref)
        diff = np.abs(np.where(finite, out - ref, 0))
        near = same | finite & (diff <= _AGREEMENT.get(plan.out_dtype, 1e-9) * np.abs(ref))
        if np.all(near):
            return True
        if not np.all(finite | same):
            return False
        # Only the elements the fixed tolerance failed need S: in a sum that cancels, a few.
        unsure = ~near
        apart = _rounding_apart(plan, magnitudes.of(unsure), np.abs(ref[unsure]))
        return bool(np.all(diff[unsure] <= apart))


def _rounding_apart(plan: Plan, magnitudes: np.ndarray, result: np.ndarray) -> np.ndarray:
    """How far apart two correct results may be: twice the rigorous bound (``testing/oracle.py`` has the derivation),
    ``result`` standing for the exact sum, and a flushed partial sum per row allowed for.

    Finite wherever ``result`` is (an infinite bound is no bound: where ``N u >= 1``
    or ``S`` overflowed float64, only equal results agree)."""
    u_acc, u_out = UNIT_ROUNDOFF[plan.acc_dtype], UNIT_ROUNDOFF[plan.out_dtype]
    relative = rigorous_factor(plan.n, u_acc)
    flushed = plan.n * SMALLEST_NORMAL[plan.acc_dtype]
    apart = 2 * (relative * magnitudes + flushed + u_out * result)
    return np.where(np.isfinite(apart), apart, -1.0)


class _Magnitudes:
    """``sum_i |a_i| |b_i|`` of chosen output elements, in float64 on the host.

    Row blocks of ``a`` and ``b`` (slicing works on every library's arrays) are
    read on the host (zero-copy views where the memory is the host's, else
    ``adapter.to_numpy``); the chosen elements are picked out of each block
    before they are widened and summed in float64: a sum in the inputs' dtype
    overflowed float16 (100000 rows of magnitude 1) and switched the guard off,
    and widening every element of a 64 x 1e6 float32 input took 0.5 s of the
    trial's 0.8 (2-vCPU AMD EPYC VM), where a sum that cancels leaves a few
    hundred elements to check.
    ``|a_i||b_i|`` bounds both components of a complex product's ``|ar br| + |ai bi|``.
    """

    BLOCK_ELEMENTS = 1 << 20

    def __init__(self, adapter: Adapter, a: Any, b: Any, plan: Plan) -> None:
        self.adapter, self.a, self.b, self.plan = adapter, a, b, plan
        # S of each element summed so far (NaN: not yet), kept for the next candidate.
        self.known: np.ndarray | None = None

    def of(self, chosen: np.ndarray) -> np.ndarray:
        """``S`` of the elements where boolean ``chosen`` (of the output's shape) is True, in ``x[chosen]`` order."""
        if self.known is None:
            self.known = np.full(self.plan.out_shape, np.nan)
        missing = chosen & np.isnan(self.known)
        if np.any(missing):
            self.known[missing] = self._sums(missing)
        return self.known[chosen]

    def _sums(self, chosen: np.ndarray) -> np.ndarray:
        plan = self.plan
        # Every element (a wrong candidate's result): whole rows, no indexing (2x faster at 4096 x 4096).
        where = None if np.all(chosen) else np.nonzero(chosen)
        total = np.zeros(int(np.count_nonzero(chosen)), dtype=np.float64)
        rows = max(1, self.BLOCK_ELEMENTS // max(1, math.prod(plan.out_shape)))
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, plan.n, rows):
                a, b = (self._magnitude(_rows(x, plan, start, start + rows), where) for x in (self.a, self.b))
                total += np.sum(a * b, axis=0).reshape(-1)
        return total

    def _magnitude(self, x: Any, where: tuple[np.ndarray, ...] | None) -> np.ndarray:
        """``|x|`` in float64 at ``where`` (None: everywhere) of each row of block ``x``: rows x elements
        (one row where ``x`` is broadcast along dim 0)."""
        view = self.adapter.host_view(x)
        host = np.asarray(view if view is not None else self.adapter.to_numpy(x))
        rows = np.broadcast_to(host, host.shape[:1] + tuple(self.plan.out_shape))  # a view: no element is copied
        picked = rows if where is None else rows[(slice(None), *where)]
        return np.abs(picked.astype(np.complex128 if picked.dtype.kind == "c" else np.float64))


def _rows(x: Any, plan: Plan, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of ``x``, or ``x`` itself where it is broadcast along dim 0."""
    if len(x.shape) < len(plan.full_shape) or x.shape[0] == 1:
        return x
    return x[start:stop]


def _runs(strategy: str, device: str, dtype: str) -> bool:
    """Whether ``strategy`` is registered, runs on ``device`` here, and computes ``dtype``."""
    cls = STRATEGIES.get(strategy)
    if cls is None or device not in cls.devices:
        return False
    try:
        return dtype not in get_adapter(strategy, device).unsupported_dtypes()
    except AdapterUnavailable:
        return False


# -- mul_sum ------------------------------------------------------------------
class KernelCache:
    """``mul_sum``'s kernels by input signature, one LRU per array type.

    Each array type's cache holds at most its library's ``kernel_cache_size``
    kernels (``Library`` records), the least recently used evicted: a JAX
    kernel is a compiled executable, so churn over shapes stays bounded.
    """

    def __init__(self) -> None:
        self._by_type: dict[type, LRUCache[tuple[Any, ...], Callable[[Any, Any], Any]]] = {}
        # The (key, kernel) used last, read and written as one tuple so that a
        # thread never pairs one call's key with another's kernel. It is always
        # its type's most recent LRU entry, so a hit on it needs no LRU update:
        # a loop of same-signature calls skips hashing the key (docs/selection.md).
        self.last: tuple[tuple[Any, ...] | None, Callable[[Any, Any], Any] | None] = (None, None)

    def get(self, key: tuple[Any, ...]) -> Callable[[Any, Any], Any] | None:
        """The kernel cached under ``key``; None where there is none, or where ``key`` cannot be hashed."""
        cache = self._by_type.get(key[0])
        try:
            kernel = cache.get(key) if cache is not None else None
        except TypeError:  # a device that cannot be hashed, of a library without a device_key
            return None
        if kernel is not None:
            self.last = (key, kernel)
        return kernel

    def __getitem__(self, key: tuple[Any, ...]) -> Callable[[Any, Any], Any]:
        kernel = self.get(key)
        if kernel is None:
            raise KeyError(key)
        return kernel

    def put(self, key: tuple[Any, ...], kernel: Callable[[Any, Any], Any], capacity: int) -> None:
        """Cache ``kernel`` under ``key``; a key that cannot be hashed is not cached."""
        try:
            hash(key)
        except TypeError:
            return
        cache = self._by_type.get(key[0])
        if cache is None:
            cache = self._by_type[key[0]] = LRUCache(capacity)
        cache.put(key, kernel)
        self.last = (key, kernel)

    def __len__(self) -> int:
        return sum(len(cache) for cache in self._by_type.values())

    def clear(self) -> None:
        self._by_type.clear()
        self.last = (None, None)


# What mul_sum runs without validating or choosing again.
_KERNELS = KernelCache()


def dispatch_key(a: Any, b: Any) -> tuple[Any, ...] | None:
    """The input signature ``mul_sum`` caches its kernel under; None for inputs it does not key.

    Not hashed here: a loop of one signature compares it with the last key only.
    """
    if type(a) is np.ndarray and type(b) is np.ndarray:
        # NumPy arrays live on the CPU and have no layouts: the shortest key keeps tiny calls cheap.
        return (np.ndarray, np.ndarray, a.shape, b.shape, a.dtype, b.dtype)
    try:
        device_key = _DEVICE_KEYS.get(type(a)) or _device_key_of(a)
        key = (type(a), type(b), a.shape, b.shape, a.dtype, b.dtype, device_key(a), device_key(b))
        # The layouts: a torch sparse tensor must not reuse a dense tensor's kernel.
        return key + (getattr(a, "layout", None), getattr(b, "layout", None))
    except Exception:  # no device (dask), tracers: validated on every call
        return None


# What stands for an array's device in the key, per array type: its library's
# ``device_key`` where it has one, else the array's ``.device``.
_DEVICE_KEYS: dict[type, Callable[[Any], Hashable]] = {}


def _device_key_of(x: Any) -> Callable[[Any], Hashable]:
    try:
        device_key = LIBRARIES[library_of(x)].device_key or _device
    except Exception:  # not an array of a library xbackend knows: validation says so
        device_key = _device
    _DEVICE_KEYS[type(x)] = device_key
    return device_key


def _device(x: Any) -> Any:
    return x.device


def clear_dispatch_cache() -> None:
    """Forget ``mul_sum``'s cached kernels and loaded tables: the next call chooses afresh."""
    _KERNELS.clear()
    _DEVICE_KEYS.clear()
    _TRIALS.clear()
    _UNTRIED.clear()
    selection.forget_loaded()


on_change(clear_dispatch_cache)


def clear_caches() -> None:
    """Release every compiled executable xbackend holds, and its frameworks' compilation caches.

    Clears ``mul_sum``'s kernels and loaded tables, each adapter's executables
    (jax-jit, jax-rows, jax-pallas, jax-sharded, torch-compile, which also resets
    ``torch._dynamo``), and ``jax.clear_caches()`` when JAX is loaded. The next
    call of each shape compiles again.
    """
    clear_dispatch_cache()
    for adapter in instantiated():
        adapter.release_compiled()
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()


def _kernel_for(a: Any, b: Any) -> Callable[[Any, Any], Any]:
    _, device, plan = resolve_inputs(a, b)  # validates against the library's default strategy
    choice = choose(a, b)
    if _wants_trial(choice, plan, a):
        choice = run_trial(choice, a, b)
    adapter = get_adapter(choice.strategy, device)
    return adapter.kernel(a, b, adapter.plan(a, b))


def mul_sum(a: Any, b: Any) -> Any:
    """``sum(a * b, axis=0)`` on the inputs' own library and device, by the fastest known strategy.

    ``a`` and ``b`` are arrays of one library (NumPy, PyTorch, JAX, CuPy, dask.array,
    or any other array API library) on one device; the result is an array of that
    library on that device. dask arrays give a lazy dask result; JAX arrays sharded
    over several devices run on ``jax-sharded``. The semantics
    (shapes, broadcasting, dtypes, errors) are the README's, shared by every adapter.
    The strategy comes from the selection table (``xbackend.choose(a, b)`` says
    which and why); the first call per input signature (types, shapes, dtypes,
    devices) validates and chooses, later ones call the cached kernel directly.
    Every strategy's result carries torch autograd and composes with torch.func,
    torch.compile and JAX's transforms (docs/transforms.md).
    """
    key = dispatch_key(a, b)
    last_key, kernel = _KERNELS.last  # one read: a pair no other thread can tear
    if key is None or key != last_key:  # tuple equality: no hashing for a loop of one signature
        kernel = _KERNELS.get(key) if key is not None else None
    if kernel is None:
        if compiling(a):  # dynamo cannot trace the choice; see traceable_mul_sum
            return traceable_mul_sum(a, b)
        kernel = _kernel_for(a, b)
        if key is not None:
            _KERNELS.put(key, kernel, LIBRARIES[library_of(a)].kernel_cache_size)
    return kernel(a, b)


# -- the <library>-auto adapters ------------------------------------------------
class Selected(Adapter):
    """``xbackend.mul_sum`` itself as an adapter of one library: selection and dispatch included.

    Its ``mul_sum`` checks the inputs against this adapter's device once per
    input signature, then calls ``xbackend.mul_sum``; the measurement hooks
    (compile, extra memory) are those of the strategy the table chooses. It
    computes the dtypes of the library's default strategy.
    """

    selectable: ClassVar[bool] = False
    library: ClassVar[str]
    formulation = "xbackend.mul_sum: the strategy the selection table picks for the input (xbackend explain says which)"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self._checked: LRUCache[Any, bool] = LRUCache(LIBRARIES[self.library].kernel_cache_size)
        self._used: dict[str, Adapter] = {}

    def _chosen(self, a: Any, b: Any) -> Adapter:
        strategy = choose(a, b).strategy
        if strategy not in self._used:
            self._used[strategy] = get_adapter(strategy, self.device)
        return self._used[strategy]

    def mul_sum(self, a: Any, b: Any) -> Any:
        key = dispatch_key(a, b)
        try:
            checked = key is not None and key in self._checked
        except TypeError:  # a key that cannot be hashed: checked on every call
            key, checked = None, False
        if not checked:
            self.plan(a, b)
            if key is not None:
                self._checked.put(key, True)
        return mul_sum(a, b)

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        return self._chosen(a, b)._compute(a, b, plan)

    def dispatch_pair(self, a: Any, b: Any) -> tuple[Callable[[Any, Any], Any], Callable[[Any, Any], Any], str]:
        # xbackend.mul_sum itself (not this adapter's checked wrapper) against the kernel it caches and calls.
        chosen = self._chosen(a, b)
        return mul_sum, chosen.kernel(a, b, chosen.plan(a, b)), f"the {chosen.name} kernel mul_sum calls"

    def choice(self, a: Any, b: Any) -> str:
        return str(choose(a, b))

    def prepare(self, a: Any, b: Any) -> float | None:
        return None if self.plan(a, b).n == 0 else self._chosen(a, b).prepare(a, b)

    def synchronize(self, *arrays: Any) -> None:
        for adapter in self._used.values():
            adapter.synchronize(*arrays)
        super().synchronize(*arrays)

    def extra_memory(self, a: Any, b: Any) -> Any:
        return self._chosen(a, b).extra_memory(a, b)

    def fix_cpu_threads(self, threads: int) -> None:
        # Whichever strategy the table picks must run on the same threads.
        super().fix_cpu_threads(threads)
        for name, cls in STRATEGIES.items():
            if cls.selectable and cls.framework == self.library and self.device in cls.devices:
                if cls.unavailable_reason(self.device) is None:
                    get_adapter(name, self.device).fix_cpu_threads(threads)

    def unsupported_dtypes(self) -> frozenset[str]:
        return get_adapter(LIBRARIES[self.library].default_strategy, self.device).unsupported_dtypes()


# Each inherits its library's plumbing (conversion, devices, timer, floor) after Selected.
class NumpyAuto(Selected, NumpyAdapter):
    name = "numpy-auto"
    library = "numpy"


class TorchAuto(Selected, TorchAdapter):
    name = "torch-auto"
    library = "torch"


class JaxAuto(Selected, JaxAdapter):
    name = "jax-auto"
    library = "jax"


class CupyAuto(Selected, CupyAdapter):
    name = "cupy-auto"
    library = "cupy"


for _auto in (NumpyAuto, TorchAuto, JaxAuto, CupyAuto):
    register_strategy(_auto)
