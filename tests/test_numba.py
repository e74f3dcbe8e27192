"""numpy-numba, torch-numba, jax-numba: the numba kernel's paths (lanes, tails, column chunks, row and column
blocks) against the exact oracle, the inputs it leaves to numpy-threads, and its availability."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from exact_cases import assert_close_to, exact_case

from xbackend.backends import numpy as numpy_backend
from xbackend.core.dtypes import numpy_dtype
from xbackend.core.semantics import plan_mul_sum
from xbackend.measure import host_inputs
from xbackend.registry import get_adapter
from xbackend.testing import assert_mul_sum_close, reference

pytestmark = pytest.mark.skipif(
    numpy_backend.numba_unavailable_reason() is not None, reason=str(numpy_backend.numba_unavailable_reason())
)


@pytest.fixture
def kernel_calls(monkeypatch) -> list[tuple[int, ...]]:
    """(rows, row_lo, row_hi, col_lo, col_hi, chunk) of every kernel call from here on."""
    import xbackend.backends.numba_kernels as kernels

    calls: list[tuple[int, ...]] = []
    rows_into = kernels.rows_into

    def spy(a, b, acc, row_lo, row_hi, col_lo, col_hi, chunk):
        calls.append((a.shape[0], row_lo, row_hi, col_lo, col_hi, chunk))
        rows_into(a, b, acc, row_lo, row_hi, col_lo, col_hi, chunk)

    monkeypatch.setattr(kernels, "rows_into", spy)
    # A thread's share of row blocks calls the kernel from compiled code: count its calls as it is handed over.
    row_share_into = kernels.row_share_into

    def count_share(a, row_lo, row_hi, rows_per_lane_row, chunk):
        whole = kernels.whole_lane_rows(row_hi - row_lo, rows_per_lane_row)
        if whole:
            lane_rows = whole // rows_per_lane_row
            calls.append((lane_rows, 0, lane_rows, 0, rows_per_lane_row * a.shape[1], chunk))
        calls.append((a.shape[0], row_lo + whole, row_hi, 0, a.shape[1], chunk))

    def share_spy(a, b, sums, row_lo, row_hi, rows_per_lane_row, chunk):
        count_share(a, row_lo, row_hi, rows_per_lane_row, chunk)
        row_share_into(a, b, sums, row_lo, row_hi, rows_per_lane_row, chunk)

    monkeypatch.setattr(kernels, "row_share_into", share_spy)
    # Jobs on an OpenMP team call the kernel from compiled code: count them as they are handed over.
    team_run = kernels.OpenMPTeam.run

    def team_spy(team, jobs, chunk):
        for job in (job for share in jobs for job in share):
            if isinstance(job, kernels.ShareJob):
                count_share(job.a, job.row_lo, job.row_hi, job.rows_per_lane_row, chunk)
            elif isinstance(job, kernels.RowsJob):
                calls.append((job.a.shape[0], job.row_lo, job.row_hi, job.col_lo, job.col_hi, chunk))
        team_run(team, jobs, chunk)

    monkeypatch.setattr(kernels.OpenMPTeam, "run", team_spy)
    return calls


def _numba(threads: int):
    adapter = get_adapter("numpy-numba")
    adapter.fix_cpu_threads(threads)
    return adapter


# Row blocks of lane rows with a tail (K = 8, K = 1), long rows in several column
# chunks (rows, then columns), several trailing axes, and one thread for a small call.
SHAPES = [(200_003, 8), (1_000_001, 1), (1_001, 3_000), (8, 100_000), (40, 4, 5_000), (5, 7)]


KERNEL_DTYPES = sorted(numpy_backend.NUMBA_DTYPES | numpy_backend.NUMBA_HALF_DTYPES)


# Column chunks of 1000 elements and of 2**20 (long rows in one chunk); rows two per
# pass, half the block apart, with an odd last row where a block's count is odd.
@pytest.mark.parametrize("chunk", [1000, 1 << 20])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", KERNEL_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_kernel_path_is_exact_within_the_bound(shape, dtype, threads, chunk, kernel_calls, monkeypatch):
    monkeypatch.setattr(numpy_backend, "_chunk_elements", lambda itemsize: chunk)
    # Random inputs of mean 1 (2 + 2j for complex), so that a dropped row, lane row or
    # lane (1/128 of the products) moves a sum by far more than even the probabilistic bound:
    # with mean-zero inputs a dropped share of the products adds up like the rounding does.
    offset = 1 + 1j if np.iscomplexobj(np.zeros(1, numpy_dtype(dtype))) else 1
    a, b, exact = exact_case(shape, dtype, seed=1, offset=offset)  # one reference for the 4 cases of threads x chunk
    assert_close_to(_numba(threads).mul_sum(a, b), exact, bound="probabilistic")
    assert kernel_calls, "the kernel did not run"
    assert {call[-1] for call in kernel_calls} == {chunk}
    k = int(np.prod(shape[1:]))
    lanes = numpy_backend.numba_lanes(4 if dtype in numpy_backend.NUMBA_HALF_DTYPES else numpy_dtype(dtype).itemsize)
    if k <= lanes // 2 and shape[0] >= lanes // k:
        # Whole lane rows first; only a tail shorter than one lane row goes row by row.
        lane_calls = [call for call in kernel_calls if call[0] < shape[0]]
        assert lane_calls and all(call[2] - call[1] < lanes // k for call in kernel_calls if call[0] == shape[0])


@pytest.mark.parametrize(
    ("make", "dtype"),
    [
        (lambda a, b: (a[:, :1], b[:1, :]), "float32"),  # broadcast both ways
        (lambda a, b: (a[:, ::2], b[:, ::2]), "float32"),  # strided rows
        (lambda a, b: (a[::-1], b), "float64"),  # negative stride
        (lambda a, b: (a[:, ::2], b[:, ::2]), "float16"),
        (lambda a, b: (np.asfortranarray(a), b), "bfloat16"),
        (lambda a, b: (a, b), "int32"),
    ],
)
def test_other_inputs_run_numpy_threads(make, dtype, kernel_calls):
    a, b = make(*host_inputs((300_000, 4), dtype, seed=3))
    out = _numba(2).mul_sum(a, b)
    assert not kernel_calls
    assert_mul_sum_close(out, a, b)
    threads = get_adapter("numpy-threads")
    threads.fix_cpu_threads(2)  # the same blocks, so the same rounding (another test may have fixed another count)
    np.testing.assert_array_equal(out, threads.mul_sum(a, b))


@pytest.mark.filterwarnings("error")
def test_special_values_follow_ieee_arithmetic():
    # No fastmath: inf * 0 is NaN, a product past float32's range is inf (no FMA or
    # wider intermediate), and a NaN anywhere in a column reaches its sum.
    a, b = host_inputs((300_000, 4), "float32", seed=4)
    a[10, 0], b[10, 0] = np.inf, 0.0
    a[20, 1], b[20, 1] = 1e30, 1e30
    a[30, 2] = np.nan
    a[40, 3], b[40, 3], a[41, 3], b[41, 3] = 1e30, 1e30, -1e30, 1e30
    out = _numba(2).mul_sum(a, b)
    assert np.isnan(out[0]) and out[1] == np.inf and np.isnan(out[2]) and np.isnan(out[3])


def test_negated_kernel_is_caught(monkeypatch):
    # The checker this suite relies on tells a negated answer from a right one.
    a, b = host_inputs((4_096, 64), "float32", seed=5)
    out = _numba(2).mul_sum(a, b)
    assert_mul_sum_close(out, a, b)
    with pytest.raises(AssertionError):
        assert_mul_sum_close(-out, a, b)


@pytest.mark.parametrize("bits", ["float16", "bfloat16"])
def test_half_precision_widens_exactly_for_every_bit_pattern(bits):
    # Every one of the 65,536 patterns (subnormals, both zeros, infinities, NaNs) times
    # 1.0, added to -0.0 (which keeps a -0.0): the float32 that the format's own cast gives.
    import xbackend.backends.numba_kernels as kernels

    patterns = np.arange(2**16, dtype=np.uint16).view(numpy_dtype(bits)).reshape(1, -1)
    ones = np.ones_like(patterns)
    acc = np.full(patterns.shape[1], -0.0, np.float32)
    kernels.rows_into(kernels.kernel_view(patterns), kernels.kernel_view(ones), acc, 0, 1, 0, acc.size, 4096)
    expected = patterns[0].astype(np.float32)
    nan = np.isnan(expected)
    np.testing.assert_array_equal(np.isnan(acc), nan)
    np.testing.assert_array_equal(acc[~nan].view(np.uint32), expected[~nan].view(np.uint32))


def float32_rounding_cases() -> np.ndarray:
    """Every float32 exponent with random mantissas, the halfway cases of both formats, and the edges."""
    rng = np.random.default_rng(11)
    random = rng.integers(0, 2**32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    # A 16-bit result keeps the high bits (bfloat16) or 10 of 23 mantissa bits (float16):
    # a low part of exactly one half, just below it and just above it, both signs.
    high = rng.integers(0, 2**16, size=1 << 14, dtype=np.uint64).astype(np.uint32) << 16
    halfway = np.concatenate([high | low for low in (0x8000, 0x7FFF, 0x8001)])
    # float16 keeps 10 mantissa bits: every one of them, at every float32 exponent from
    # below float16's subnormals (2**-24) to past its largest value (65504).
    kept = (np.arange(100, 146, dtype=np.uint32)[:, None] << 23 | np.arange(1024, dtype=np.uint32) << 13).ravel()
    halfway16 = np.concatenate([sign | kept | low for sign in (0, 1 << 31) for low in (0x1000, 0x0FFF, 0x1001)])
    edges = np.array(
        [0.0, -0.0, np.inf, -np.inf, 65504, 65519.996, 65520, -65520, 2.0**-24, 2.0**-25, 3e38], np.float32
    )
    patterns = np.concatenate([random, halfway, halfway16, edges.view(np.uint32)])
    return patterns.view(np.float32)


@pytest.mark.parametrize("bits", ["float16", "bfloat16"])
def test_half_precision_rounds_like_the_formats_own_cast(bits):
    # The float32 sums are rounded to the result by the kernel: to nearest even, past
    # the largest finite value to inf, subnormals kept, bit for bit as NumPy's float16
    # cast and ml_dtypes' bfloat16 cast; a NaN stays a NaN (payloads are unspecified).
    import xbackend.backends.numba_kernels as kernels

    values = float32_rounding_cases()
    out = np.empty(values.size, numpy_dtype(bits))
    kernels.narrow_into(values, kernels.kernel_view(out), 0, values.size)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = values.astype(numpy_dtype(bits))
    nan = np.isnan(values)
    assert nan.any() and np.isnan(out[nan].astype(np.float32)).all()
    np.testing.assert_array_equal(out[~nan].view(np.uint16), expected[~nan].view(np.uint16))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("threads", [1, 2])
def test_only_the_asked_columns_are_rounded(dtype, threads, monkeypatch):
    # Column blocks round their own columns on their own thread: every column once.
    import xbackend.backends.numba_kernels as kernels

    rounded: list[tuple[int, int]] = []
    narrow_into = kernels.narrow_into

    def spy(acc, bits, lo, hi):
        rounded.append((lo, hi))
        narrow_into(acc, bits, lo, hi)

    monkeypatch.setattr(kernels, "narrow_into", spy)
    a, b = host_inputs((64, 100_001), dtype, seed=threads)
    out = _numba(threads).mul_sum(a, b)
    assert out.dtype == a.dtype
    assert_mul_sum_close(out, a, b)
    covered = sorted(rounded)
    assert covered[0][0] == 0 and covered[-1][1] == a.shape[1] and len(covered) == threads
    assert all(left[1] == right[0] for left, right in zip(covered, covered[1:]))


@pytest.mark.filterwarnings("error")
def test_half_precision_sums_in_float32_then_rounds_once():
    # 300,000 products of 1.0 pass float16's largest finite value (65504) only in the
    # sum: float32 holds them, the one rounding to float16 gives inf (silently, as
    # np.einsum does); a bfloat16 NaN reaches its column's sum.
    a = np.ones((300_000, 3), np.float16)
    a[:, 1] = 0.25
    out = _numba(2).mul_sum(a, a)
    assert out.dtype == np.float16 and out[0] == np.inf and out[1] == np.float16(300_000 / 16)
    assert_mul_sum_close(out, a, a)
    x, y = host_inputs((300_000, 3), "bfloat16", seed=8)
    x[77, 2] = np.nan
    out = _numba(2).mul_sum(x, y)
    assert np.isnan(out[2]) and not np.isnan(out[:2]).any()


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name", ["torch-numba", "jax-numba"])
def test_views_of_other_libraries_run_the_kernel(name, dtype, kernel_calls):
    adapter = get_adapter(name)
    a, b = host_inputs((300_000, 8), dtype, seed=6)
    out = adapter.to_numpy(adapter.mul_sum(adapter.asarray(a), adapter.asarray(b)))
    assert kernel_calls
    assert_mul_sum_close(out, a, b)


def test_missing_or_broken_numba_is_a_reason(monkeypatch):
    find_spec = numpy_backend.importlib.util.find_spec
    monkeypatch.setattr(
        numpy_backend.importlib.util, "find_spec", lambda name, *args: None if name == "numba" else find_spec(name)
    )
    assert numpy_backend.numba_unavailable_reason() == "numba is not installed: pip install numba"
    monkeypatch.undo()

    def broken(name):
        raise ImportError("Numba needs NumPy 2.3 or less")

    monkeypatch.setattr(numpy_backend.importlib, "import_module", broken)
    assert numpy_backend.numba_unavailable_reason() == "numba failed to import: Numba needs NumPy 2.3 or less"
    for name in ("numpy-numba", "torch-numba", "jax-numba"):
        cls = get_adapter(name).__class__
        assert cls.unavailable_reason("cpu") == "numba failed to import: Numba needs NumPy 2.3 or less"


def test_numba_with_its_jit_disabled_is_a_reason(monkeypatch):
    # NUMBA_DISABLE_JIT=1 (set to debug one's own numba code) would run the kernel as
    # Python loops: the *-numba strategies step aside and mul_sum runs the next one.
    import xbackend.backends.numba_kernels as kernels

    monkeypatch.setattr(kernels.numba.config, "DISABLE_JIT", 1)
    reason = "NUMBA_DISABLE_JIT is set: the kernel would run uncompiled, as Python"
    assert numpy_backend.numba_unavailable_reason() == reason
    for name in ("numpy-numba", "torch-numba", "jax-numba"):
        assert get_adapter(name).__class__.unavailable_reason("cpu") == reason


_RUN_KERNEL = """
from xbackend.measure import host_inputs
from xbackend.registry import get_adapter
from xbackend.testing import assert_mul_sum_close
numpy_numba = get_adapter("numpy-numba")
numpy_numba.fix_cpu_threads(2)  # two shares, whatever this process's CPUs: each kernel runs, and is cached
# bfloat16 runs every kernel (its sums are rounded back by narrow_into); another dtype would double the compile.
a, b = host_inputs((300_000, 8), "bfloat16", seed=7)
numpy_numba.prepare(a, b)
assert_mul_sum_close(numpy_numba.mul_sum(a, b), a, b)
if get_adapter("torch-numba").unavailable_reason("cpu") is None:  # the OpenMP team's entry is cached too
    torch_numba = get_adapter("torch-numba")
    out = torch_numba.mul_sum(torch_numba.asarray(a), torch_numba.asarray(b))
    assert_mul_sum_close(torch_numba.to_numpy(out), a, b)
"""


def _run_kernel(cache: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-c", _RUN_KERNEL], env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def filled_numba_cache(tmp_path_factory) -> Path:
    """A numba cache holding every kernel ``_RUN_KERNEL`` calls, compiled once (20-40 s) for both damage tests."""
    cache = tmp_path_factory.mktemp("numba-cache")
    first = _run_kernel(cache)
    assert first.returncode == 0, first.stderr[-2000:]
    return cache


@pytest.mark.parametrize("damaged", ["index", "data"])
def test_a_damaged_disk_cache_is_emptied_not_raised(damaged, filled_numba_cache, tmp_path):
    # numba raises on an unreadable cache file at every call (it copes only with a
    # missing one): the kernels' module empties such a cache and compiles again.
    cache = tmp_path / "numba-cache"
    shutil.copytree(filled_numba_cache, cache)
    suffix = ".nbi" if damaged == "index" else ".nbc"
    import xbackend.backends.numba_kernels as kernels

    # Every cached kernel of the module, damaged at once; the team's entry and a kernel
    # called only from compiled code may have no file of their own.
    names = [kernel.__name__ for kernel in kernels.CACHED_KERNELS] + ["_team_entry"]
    for kernel in names:
        files = [path for path in cache.rglob(f"*.{kernel}[-.]*") if path.suffix == suffix]
        assert files or kernel in ("_team_entry", "whole_lane_rows"), f"numba wrote no cache of {kernel}"
        for path in files:
            path.write_bytes(b"\xbd not a pickle")
    second = _run_kernel(cache)
    assert second.returncode == 0, second.stderr[-2000:]
    assert _run_kernel(cache).returncode == 0  # and the rewritten cache loads


def test_column_chunks_follow_the_l2(monkeypatch):
    monkeypatch.setattr(numpy_backend, "cpu_l2_cache_bytes", lambda: 2 * 2**20)
    assert numpy_backend._chunk_elements(4) == 65_536
    monkeypatch.setattr(numpy_backend, "cpu_l2_cache_bytes", lambda: None)  # not exposed: a 1 MiB L2 is assumed
    assert numpy_backend._chunk_elements(8) == 16_384
    plan = plan_mul_sum((4, 3, 1_000), "float16", (4, 3, 1_000), "float16")
    assert numpy_backend._chunk_columns(np.empty((4, 3, 1_000), np.float16), plan) == 32  # float32 partials


@pytest.mark.parametrize("k", [1, 3, 4097, 1_000_000])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "complex128"])
def test_results_are_64_byte_aligned(k, dtype):
    # JAX holds an aligned host result without a copy (jax-numba hands it over).
    out = numpy_backend._aligned_empty(k, numpy_dtype(dtype))
    assert out.shape == (k,) and out.dtype == numpy_dtype(dtype) and out.flags.c_contiguous and out.flags.writeable
    assert out.ctypes.data % 64 == 0
    a, b = host_inputs((64, 100_000), dtype, seed=9)
    assert _numba(2).mul_sum(a, b).ctypes.data % 64 == 0  # column blocks, each zeroing its own columns


# -- torch-numba on torch's own OpenMP workers -------------------------------------


def _torch_team():
    torch = pytest.importorskip("torch")
    from xbackend.backends.torch import torch_openmp_team

    team = torch_openmp_team(torch)
    if team is None:
        pytest.skip("torch's CPU ops do not run on an OpenMP runtime of its own here")
    return torch, team


def test_the_team_is_torchs_own_openmp_runtime():
    # torch.set_num_threads sets the thread count of torch's runtime: the team's runtime
    # reads it back, so the two are one library (not a second libgomp beside it).
    torch, team = _torch_team()
    threads = torch.get_num_threads()
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            assert team.max_threads() == count
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "complex64"])
@pytest.mark.parametrize("shape", [(300_001, 8), (2_000_001,), (64, 100_003), (1_001, 3_000)])
def test_torch_numba_hands_its_blocks_to_torchs_team(dtype, shape, monkeypatch):
    if dtype == "float32" and len(shape) == 1:
        pytest.skip("one column of float32 is torch.dot: test_torch_numba_sums_one_column_with_torch_dot")
    torch, team = _torch_team()
    import xbackend.backends.numba_kernels as kernels

    handed: list[int] = []
    team_run = kernels.OpenMPTeam.run
    monkeypatch.setattr(
        kernels.OpenMPTeam, "run", lambda own, jobs, chunk: handed.append(len(jobs)) or team_run(own, jobs, chunk)
    )
    adapter = get_adapter("torch-numba")
    # Of mean 1 (2 + 2j): a share the team left out moves a sum past the probabilistic bound.
    offset = 1 + 1j if dtype.startswith("complex") else 1
    a, b = (x + np.asarray(offset, x.dtype) for x in host_inputs(shape, dtype, seed=12))
    out = adapter.to_numpy(adapter.mul_sum(adapter.asarray(a), adapter.asarray(b)))
    assert handed == [torch.get_num_threads()] if torch.get_num_threads() > 1 else handed == []
    assert_mul_sum_close(out, a, b, bound="probabilistic")


@pytest.fixture
def dots(monkeypatch) -> list[tuple[int, ...]]:
    """The shapes of every torch.dot call made while the test runs."""
    torch = pytest.importorskip("torch")
    calls: list[tuple[int, ...]] = []
    dot = torch.dot
    monkeypatch.setattr(torch, "dot", lambda x, y: calls.append(tuple(x.shape)) or dot(x, y))
    return calls


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["1-D", "Nx1", "Nx1x1", "negated"])
def test_torch_numba_sums_one_column_with_torch_dot(dtype, layout, dots):
    torch = pytest.importorskip("torch")
    n = 200_001
    a, b = (torch.from_numpy(x + 1) for x in host_inputs((n, 2), dtype, seed=13))  # mean 1: a dropped row shows
    x, y = {
        "1-D": (a[:, 0].contiguous(), b[:, 0].contiguous()),
        "Nx1": (a[:, :1].contiguous(), b[:, :1].contiguous()),
        "Nx1x1": (a[:, :1, None].contiguous(), b[:, :1, None].contiguous()),
        "negated": (torch._neg_view(a[:, :1].contiguous()), b[:, :1].contiguous()),
    }[layout]
    out = get_adapter("torch-numba").mul_sum(x, y)
    assert dots == [(n,)]
    assert out.shape == x.shape[1:] and out.dtype == x.dtype
    assert_mul_sum_close(out, x, y, bound="probabilistic")
    if layout == "negated":
        assert out.item() < 0


@pytest.mark.parametrize(
    "case",
    ["two columns", "a repeated row", "bfloat16", "mixed dtypes", "requires grad", "one row", "strided", "expanded"],
)
def test_torch_numba_uses_torch_dot_only_for_one_column(case, dots):
    torch = pytest.importorskip("torch")
    a, b = (torch.from_numpy(x + 1) for x in host_inputs((100_000, 2), "float32", seed=14))
    x, y = {
        "two columns": (a, b),
        "a repeated row": (a[:1, :1], b[:, :1]),
        "bfloat16": (a[:, :1].bfloat16(), b[:, :1].bfloat16()),
        "mixed dtypes": (a[:, :1], b[:, :1].double()),
        "requires grad": (a[:, :1].clone().requires_grad_(), b[:, :1]),
        "one row": (a[:1, :1], b[:1, :1]),
        "strided": (a[:, :1], b[:, 1:]),  # BLAS's strided sdot keeps one or two running sums
        "expanded": (a[:1, :1].expand(100_000, 1), b[:, :1]),
    }[case]
    out = get_adapter("torch-numba").mul_sum(x, y)
    assert dots == []
    assert_mul_sum_close(out.detach(), x.detach(), y)
    if case == "requires grad":
        out.sum().backward()
        assert torch.equal(x.grad, y.expand_as(x))


@pytest.mark.parametrize("layout", ["strided", "expanded"])
def test_torch_numba_sums_long_non_contiguous_columns_in_lanes(layout):
    # A single float32 running sum stalls at 2**24 (ones) or 2**25 (two sums): the lanes do not.
    torch = pytest.importorskip("torch")
    n = 40_000_000
    x = torch.ones(n, 2)[:, :1] if layout == "strided" else torch.ones(1, 1).expand(n, 1)
    assert get_adapter("torch-numba").mul_sum(x, x).item() == n


def test_every_share_is_summed_when_the_team_is_smaller_than_asked():
    # OMP_THREAD_LIMIT=2 caps the team at two threads while five shares are handed
    # over: each thread takes every second share, none is left out.
    script = """
import numpy as np, torch
from xbackend.backends.torch import torch_openmp_team
import xbackend.backends.numba_kernels as kernels
team = torch_openmp_team(torch)
assert team is not None
rng = np.random.default_rng(3)
a, b = rng.standard_normal((2, 5_000, 16)).astype(np.float32)
sums = np.full((5, 16), np.nan, np.float32)
bounds = np.linspace(0, 5_000, 6, dtype=int)
jobs = [[kernels.RowsJob(a, b, sums[t], int(lo), int(hi), 0, 16, zero=True)] for t, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
team.run(jobs, 1024)
from xbackend.testing import assert_mul_sum_close
for t, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
    assert_mul_sum_close(sums[t], a[lo:hi], b[lo:hi])
print("summed")
sums[:] = np.nan
shares = [[kernels.ShareJob(a, b, sums[t], int(lo), int(hi), 64)] for t, (lo, hi) in enumerate(zip(bounds, bounds[1:]))]
team.run(shares, 1024)
for t, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
    assert_mul_sum_close(sums[t], a[lo:hi], b[lo:hi])
print("shared")
"""
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_THREAD_LIMIT": "2", "OMP_NUM_THREADS": "2"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    if "assert team is not None" in run.stderr:
        pytest.skip("torch's CPU ops do not run on an OpenMP runtime of its own here")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["summed", "shared"]


def test_the_team_refuses_arrays_it_would_misread():
    _, team = _torch_team()
    import xbackend.backends.numba_kernels as kernels

    a, b = host_inputs((64, 32), "float32", seed=4)
    sums = np.zeros(32, np.float32)
    strided = kernels.RowsJob(a[::2], b[::2], sums, 0, 32, 0, 32)
    with pytest.raises(ValueError, match="C-contiguous"):
        team.run([[strided]], 1024)
    mixed = kernels.RowsJob(a, b.astype(np.float64), sums, 0, 64, 0, 32)
    with pytest.raises(ValueError, match="mix dtypes"):
        team.run([[mixed]], 1024)
    flat = kernels.RowsJob(a.ravel(), b.ravel(), sums, 0, 64, 0, 32)
    with pytest.raises(ValueError, match="2-D"):
        team.run([[flat]], 1024)
    # The compiled kernel checks no bounds: each job's are checked before any thread starts.
    for rows, columns in [((0, 65), (0, 32)), ((-1, 64), (0, 32)), ((0, 64), (0, 33)), ((5, 4), (0, 32))]:
        with pytest.raises(ValueError, match="lie outside its inputs"):
            team.run([[kernels.RowsJob(a, b, sums, *rows, *columns)]], 1024)
    with pytest.raises(ValueError, match=r"sums have shape \(32,\), not \(16,\)"):
        team.run([[kernels.RowsJob(a, b, sums, 0, 64, 0, 16)]], 1024)
    with pytest.raises(ValueError, match="at least 1"):
        team.run([[kernels.RowsJob(a, b, sums, 0, 64, 0, 32)]], 0)
    with pytest.raises(ValueError, match="read-only"):
        team.run([[kernels.RowsJob(a, b, np.broadcast_to(sums, (32,)), 0, 64, 0, 32)]], 1024)
    half = a.astype(np.float16)  # not as its bits (kernel_view): the entry has no float16 type
    with pytest.raises(ValueError, match="not float16 in float32"):
        team.run([[kernels.RowsJob(half, half, sums, 0, 64, 0, 32)]], 1024)
    bits = np.zeros(32, np.uint16)
    with pytest.raises(ValueError, match="narrow job's elements 0:33"):
        team.run([[kernels.NarrowJob(sums, bits, 0, 33)]], 1024)
    share = kernels.ShareJob(a, b, sums, 0, 64, 2)
    for bad, match in [
        (share._replace(row_hi=65), "share job's rows 0:65"),
        (share._replace(rows_per_lane_row=0), "at least 1 row each, not 0"),
        (share._replace(acc=np.zeros(16, np.float32)), r"share job's sums have shape \(16,\), not \(32,\)"),
        (share._replace(b=b[:32]), "2-D inputs of one shape"),
    ]:
        with pytest.raises(ValueError, match=match):
            team.run([[bad]], 1024)
    # Bounds go into an int64 table: a float would be truncated there (rows 0:63.9 summed 0:63).
    for bad, error, match in [
        (share._replace(row_hi=63.9), TypeError, "ShareJob's row_hi must be an integer, not 63.9"),
        (share._replace(rows_per_lane_row=2**63), ValueError, "rows_per_lane_row .* outside int64's range"),
        (share._replace(acc=[0.0] * 32), TypeError, "ShareJob's acc must be a NumPy array, not list"),
    ]:
        with pytest.raises(error, match=match):
            team.run([[bad]], 1024)
    with pytest.raises(TypeError, match="column chunk must be an integer"):
        team.run([[share]], 1.5)
    team.run(([job] for job in [share]), 1024)  # a generator of jobs is read, not taken for empty
    assert_mul_sum_close(sums, a, b)
    sums[:] = 0
    with pytest.raises(TypeError, match="RowsJob, ShareJob and NarrowJob only"):
        team.run([[(a, b, sums)]], 1024)
    assert (sums == 0).all()


def test_calls_from_two_threads_at_once_each_get_their_own_sums():
    # Each calling thread that starts a parallel region leads a team of its own: two
    # torch-numba calls at once never run each other's jobs.
    from concurrent.futures import ThreadPoolExecutor

    _torch_team()
    adapter = get_adapter("torch-numba")
    pairs = [host_inputs((200_000, 16), "float32", seed=20 + i) for i in range(2)]
    tensors = [(adapter.asarray(a), adapter.asarray(b)) for a, b in pairs]
    with ThreadPoolExecutor(2) as pool:
        outs = list(
            pool.map(lambda i: [adapter.to_numpy(adapter.mul_sum(*tensors[i % 2])) for _ in range(20)], range(2))
        )
    exact = [reference(*pair) for pair in pairs]  # each 3.2M-element reference once, not per call (~0.7 s each)
    for i, runs in enumerate(outs):
        for out in runs:
            assert_close_to(out, exact[i % 2])


def test_prepare_loads_the_teams_entry_even_where_the_kernel_was_loaded(monkeypatch):
    # The kernel may have been loaded for numpy-numba already: torch-numba's prepare
    # still loads the team's entry, so that no first timed call (or trial) pays for it.
    _, team = _torch_team()
    a, b = host_inputs((4_096, 64), "bfloat16", seed=2)
    get_adapter("numpy-numba").prepare(a, b)
    monkeypatch.setattr(team, "_loaded", set())
    adapter = get_adapter("torch-numba")
    x, y = adapter.asarray(a), adapter.asarray(b)
    assert adapter.prepare(x, y) > 0
    assert adapter.prepare(x, y) is None


@pytest.mark.parametrize("name", ["numpy-threads", "numpy-numba", "torch-numba"])
def test_a_forked_child_sums_on_threads_of_its_own(name):
    # A child has none of its parent's threads: a thread pool inherited from the parent
    # queued work no thread ran, and GNU OpenMP's team waits for workers that are gone.
    adapter = get_adapter(name)
    if adapter.unavailable_reason("cpu") is not None:
        pytest.skip(adapter.unavailable_reason("cpu"))
    script = f"""
import os, signal
from xbackend.measure import host_inputs
from xbackend.registry import get_adapter
from xbackend.testing import assert_mul_sum_close
adapter = get_adapter({name!r})
a, b = host_inputs((2_000, 5_000), "float32", seed=3)
x, y = adapter.asarray(a), adapter.asarray(b)
adapter.mul_sum(x, y)  # the parent's threads start
child = os.fork()
if child == 0:
    signal.alarm(30)
    assert_mul_sum_close(adapter.to_numpy(adapter.mul_sum(x, y)), a, b)
    os._exit(0)
_, status = os.waitpid(child, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
print("child summed")
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.split() == ["child", "summed"], run.stderr[-2000:]


def test_bfloat16_word_pairs_sum_in_the_given_type_and_read_any_layout():
    # The word-pair path (C-layout bits, even K) adds a chunk in the sums' own type, float64
    # too (2**24 + 1 is no float32); other layouts take the column-by-column path.
    import xbackend.backends.numba_kernels as kernels

    bfloat16 = numpy_dtype("bfloat16")
    a = np.array([[2.0**24] * 2, [1.0] * 2, [0.0] * 2, [0.0] * 2], bfloat16)
    acc = np.zeros(2, np.float64)
    kernels.rows_into(kernels.kernel_view(a), kernels.kernel_view(np.ones_like(a)), acc, 0, 4, 0, 2, 1 << 20)
    assert acc.tolist() == [2.0**24 + 1] * 2
    # Small integers: every product and sum exact, so each layout must give the exact sums.
    x, y = (np.random.default_rng(seed).integers(-8, 9, size=(7, 10)).astype(bfloat16) for seed in (1, 2))
    exact = (x.astype(np.float64) * y.astype(np.float64)).sum(0)
    for layout in (np.ascontiguousarray, np.asfortranarray):
        for lo, hi, chunk in [(0, 10, 4), (1, 9, 3), (2, 10, 1 << 20)]:
            acc = np.zeros(hi - lo, np.float32)
            u, v = kernels.kernel_view(layout(x)), kernels.kernel_view(layout(y))
            kernels.rows_into(u, v, acc, 0, 7, lo, hi, chunk)
            np.testing.assert_array_equal(acc, exact[lo:hi])
