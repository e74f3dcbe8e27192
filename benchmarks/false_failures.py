"""False failures of the probabilistic verdict: random trials on every CPU adapter.

    python benchmarks/false_failures.py [--trials 10000] [--big-trials 100] [--every dask-cluster=10] [--markdown docs/false-failures.md]

Not a CI test: it takes tens of minutes on 2 cores. Each trial draws one random
case (dtype, N, K, distribution, seed), computes its exact reference once
(``xbackend.testing.reference``) and runs it on every available CPU adapter
(``xbackend.adapters()``, ``xbackend.get_adapter``); every result is checked
with ``xbackend.testing.check_against(..., bound="probabilistic")``. A failure
of a correct adapter is a false failure of the verdict. Public API only.

What it samples, so that it finishes in reasonable time on a small machine:

- ``--trials`` trials with N log-uniform in [1, 1e5], and ``--big-trials``
  more with N log-uniform in [1e5, 1e6] (big N is subsampled: the exact oracle
  costs about 0.3 s per million terms). N is rounded to one of 16 log-spaced
  values in [1, 1e5] and 4 in [1e5, 1e6], so that adapters that compile per
  input signature (jax-*, torch-compile) compile a bounded number of kernels.
- K uniform in {1, 2, 3, 4, 8} ({1, 4} for big N); dtype uniform in float32,
  float16, bfloat16, float64.
- ``--every NAME=M`` runs adapter NAME on every M-th trial only (dask-cluster
  ships each input to worker processes, ~0.1 s a trial).
- distributions: normal; uniform(-1, 1); same-sign uniform(0.5, 1); same-sign
  lognormal (sigma 2, magnitudes over several binades); b = a + noise (sum far
  from zero); random signs with exponents spread over +-20 binades; small
  integers (sums exact: the bound shrinks to the output rounding).
  float16 data is scaled so that the sum stays inside float16's range.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

os.environ.setdefault("JAX_ENABLE_X64", "1")  # float64 on the jax adapters too

import numpy as np

import xbackend
from xbackend.testing import check_against, reference

DTYPES = ("float32", "float16", "bfloat16", "float64")
KS = (1, 2, 3, 4, 8)
DISTRIBUTIONS = ("normal", "uniform", "same-sign", "lognormal", "correlated", "wide", "integers")
GRID_POINTS = 16


@dataclass
class Tally:
    trials: int = 0
    failures: int = 0
    rigorous_failures: int = 0
    worst: float = 0.0
    worst_case: str = ""
    skipped: str | None = None
    seconds: float = 0.0
    examples: list[str] = field(default_factory=list)


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def grid(low: float, high: float, points: int) -> np.ndarray:
    return np.unique(np.round(np.logspace(math.log10(low), math.log10(high), points)).astype(int))


def draw(rng: np.random.Generator, dist: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    if dist == "normal":
        return rng.standard_normal(shape), rng.standard_normal(shape)
    if dist == "uniform":
        return rng.uniform(-1, 1, shape), rng.uniform(-1, 1, shape)
    if dist == "same-sign":
        return rng.uniform(0.5, 1, shape), rng.uniform(0.5, 1, shape)
    if dist == "lognormal":
        return rng.lognormal(0, 2, shape), rng.lognormal(0, 2, shape)
    if dist == "correlated":
        a = rng.standard_normal(shape)
        return a, a + 0.3 * rng.standard_normal(shape)
    if dist == "wide":

        def one() -> np.ndarray:
            signs = rng.choice([-1.0, 1.0], shape)
            return signs * rng.uniform(1, 2, shape) * np.exp2(rng.integers(-20, 21, shape))

        return one(), one()
    return rng.integers(-4, 5, shape).astype(float), rng.integers(-4, 5, shape).astype(float)


def make_case(rng: np.random.Generator, n_grid: np.ndarray, ks: tuple[int, ...]) -> tuple[str, np.ndarray, np.ndarray]:
    dtype = DTYPES[rng.integers(len(DTYPES))]
    n, k = int(rng.choice(n_grid)), ks[rng.integers(len(ks))]
    dist = DISTRIBUTIONS[rng.integers(len(DISTRIBUTIONS))]
    a, b = draw(rng, dist, (n, k))
    if dtype in ("float16", "bfloat16"):
        # Keep each input and the sum inside float16's range (bfloat16 shares the data, for comparison).
        peak = max(np.abs(a).max(), np.abs(b).max(), 1e-30)
        a, b = a / peak, b / peak
        scale = math.sqrt(3e4 / max(np.abs(a * b).sum(0).max(), 1e-30)) if dtype == "float16" else 1.0
        a, b = a * min(scale, 200.0), b * min(scale, 200.0)
    label = f"{dtype} N={n} K={k} {dist}"
    return label, a.astype(numpy_dtype(dtype)), b.astype(numpy_dtype(dtype))


def cpu_adapters(exclude: set[str]) -> list[xbackend.Adapter]:
    chosen = []
    for info in xbackend.adapters():
        if info.device == "cpu" and info.available and info.name not in exclude:
            chosen.append(xbackend.get_adapter(info.name, info.device))
    return chosen


def run_trial(adapter: xbackend.Adapter, a: np.ndarray, b: np.ndarray, ref: object) -> tuple[object | None, str | None]:
    dtype = a.dtype.name
    if dtype in adapter.unsupported_dtypes():
        return None, adapter.unsupported_dtype_reason(dtype)
    try:
        out = adapter.mul_sum(adapter.asarray(a), adapter.asarray(b))
    except xbackend.UnsupportedDtypeError as exc:
        return None, str(exc)
    return check_against(out, ref, "probabilistic"), None


def machine() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return (
        f"{model}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def run(
    trials: int, big_trials: int, seed: int, exclude: set[str], every: dict[str, int], progress: bool
) -> tuple[dict, dict, float]:
    adapters = cpu_adapters(exclude)
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    oracle_seconds: dict[str, float] = defaultdict(float)
    rng = np.random.default_rng(seed)
    plans = [(grid(1e5, 1e6, 4), (1, 4), big_trials), (grid(1, 1e5, GRID_POINTS), KS, trials)]
    start = time.perf_counter()
    done = 0
    for n_grid, ks, count in plans:
        for _ in range(count):
            label, a, b = make_case(rng, n_grid, ks)
            t0 = time.perf_counter()
            ref = reference(a, b)
            oracle_seconds[a.dtype.name] += time.perf_counter() - t0
            for adapter in adapters:
                if done % every.get(adapter.name, 1):
                    continue
                tally = tallies[(adapter.name, a.dtype.name)]
                t0 = time.perf_counter()
                verdict, skipped = run_trial(adapter, a, b, ref)
                tally.seconds += time.perf_counter() - t0
                if verdict is None:
                    tally.skipped = skipped
                    continue
                tally.trials += 1
                if verdict.failure is not None:
                    tally.failures += 1
                    if len(tally.examples) < 3:
                        tally.examples.append(f"{label}: {verdict.failure}")
                if verdict.rigorous_ratio > 1:
                    tally.rigorous_failures += 1
                if verdict.probabilistic_ratio > tally.worst:
                    tally.worst, tally.worst_case = verdict.probabilistic_ratio, label
            done += 1
            if progress and done % 50 == 0:
                print(f"{done} trials, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return tallies, oracle_seconds, time.perf_counter() - start


def table(tallies: dict) -> list[str]:
    lines = [
        "| adapter | dtype | trials | false failures (probabilistic) | rigorous failures | max error / probabilistic bound | worst case | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, dtype), t in sorted(tallies.items()):
        if t.trials == 0:
            lines.append(f"| {name} | {dtype} | 0 | - | - | - | not run: {t.skipped} | - |")
            continue
        lines.append(
            f"| {name} | {dtype} | {t.trials} | {t.failures} | {t.rigorous_failures} | {t.worst:.3g} | {t.worst_case} | {t.seconds:.0f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000, help="trials with N in [1, 1e5] (default 10000)")
    parser.add_argument("--big-trials", type=int, default=100, help="trials with N in [1e5, 1e6] (default 100)")
    parser.add_argument(
        "--every", default="dask-cluster=10", help="NAME=M,...: run adapter NAME on every M-th trial only"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exclude", default="", help="adapters to leave out, comma-separated")
    parser.add_argument("--markdown", metavar="PATH", help="write the result as a Markdown page")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    exclude = set(filter(None, args.exclude.split(",")))
    every = {name: int(m) for name, _, m in (item.partition("=") for item in filter(None, args.every.split(",")))}
    tallies, oracle_seconds, seconds = run(args.trials, args.big_trials, args.seed, exclude, every, args.progress)
    failures = sum(t.failures for t in tallies.values())
    command = "python benchmarks/false_failures.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# False failures of the probabilistic verdict",
        "",
        f"Generated by `{command.strip()}` on {machine()}, xbackend {xbackend.__version__}; "
        f"{seconds / 60:.1f} minutes (exact oracle: {sum(oracle_seconds.values()):.0f} s).",
        "",
        f"{args.trials} trials with N log-uniform in [1, 1e5] and {args.big_trials} with N log-uniform in "
        "[1e5, 1e6] (big N subsampled: the exact oracle dominates there), N on a grid of "
        f"{GRID_POINTS} log-spaced values in [1, 1e5] and 4 in [1e5, 1e6]; K in {list(KS)} ([1, 4] for big N); "
        f"dtypes {', '.join(DTYPES)}; distributions {', '.join(DISTRIBUTIONS)} (see the script's docstring). "
        + (f"Adapters run on every M-th trial only: `{args.every}`. " if every else "")
        + "Every trial runs on every available CPU adapter and is checked with "
        '`xbackend.testing.check_against(out, ref, bound="probabilistic")` '
        "(failure probability 1e-12 per check under the bound's assumptions).",
        "",
        f"**False failures: {failures}** over {sum(t.trials for t in tallies.values())} adapter-trials.",
        "",
        *table(tallies),
    ]
    examples = [e for t in tallies.values() for e in t.examples]
    if examples:
        lines += ["", "Failures (first three per adapter and dtype):", ""] + [f"- {e}" for e in examples]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
