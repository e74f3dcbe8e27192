"""numpy-threads and numpy-numba: every block layout (rows, columns, one thread, column chunks) against the exact
oracle, the numba kernel's paths, and their thread counts."""

from __future__ import annotations

import time

import numpy as np
import pytest
from exact_cases import assert_close_to, exact_case

from xbackend.backends import numpy as numpy_backend
from xbackend.core.semantics import plan_mul_sum
from xbackend.measure import host_inputs
from xbackend.registry import get_adapter
from xbackend.testing import assert_mul_sum_close


def _adapter(threads: int, name: str = "numpy-threads"):
    if name == "numpy-numba" and numpy_backend.numba_unavailable_reason():
        pytest.skip(numpy_backend.numba_unavailable_reason())
    adapter = get_adapter(name)
    adapter.fix_cpu_threads(threads)
    return adapter


def _layout(shape: tuple[int, ...], dtype: str, threads: int) -> str:
    plan = plan_mul_sum(shape, dtype, shape, dtype)
    used = min(threads, int(np.prod(shape)) // numpy_backend._MIN_ELEMENTS_PER_THREAD)
    if used <= 1:
        return "one"
    return "columns" if numpy_backend._column_blocks(plan, used) else "rows"


# Each case names the layout it must take, so a change of the rule cannot leave a path untested.
# Layout by thread count (2, 3).
CASES = [
    ((200_000, 8), ("rows", "rows")),
    ((1_000_000, 1), ("rows", "rows")),
    ((8, 100_000), ("columns", "columns")),
    ((16, 2, 20_000), ("columns", "rows")),  # axis 1 shorter than the thread count: row blocks
    # Several trailing axes, split along axis 1. (N stays >= 16: sums of 3 float16
    # products land in float16's subnormals, where the oracle's output-rounding
    # term, relative only, is below half a subnormal ulp: an oracle gap, not ours.)
    ((40, 4, 5_000), ("columns", "columns")),
    ((5, 7), ("one", "one")),
]


STRATEGIES = ["numpy-threads", "numpy-numba"]


@pytest.mark.parametrize("name", STRATEGIES)
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64", "int32", "complex64"])
@pytest.mark.parametrize(("shape", "layouts"), CASES)
def test_every_layout_is_exact_within_the_bound(shape, layouts, dtype, threads, name):
    assert _layout(shape, dtype, threads) == layouts[threads - 2]
    a, b, exact = exact_case(shape, dtype, seed=len(shape))  # one reference for the 4 cases of threads x strategy
    assert_close_to(_adapter(threads, name).mul_sum(a, b), exact)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "complex128"])
@pytest.mark.parametrize("shape", [(8, 100_000), (3, 5, 9_000), (40, 3_000)])
def test_long_rows_summed_in_column_chunks_are_exact_within_the_bound(shape, dtype, threads, monkeypatch):
    # Partial sums longer than a chunk (L2 / 8 bytes; 1000 elements here) are summed a chunk of axis 1 at a time.
    monkeypatch.setattr(numpy_backend, "_chunk_elements", lambda itemsize: 1000)
    widths = []
    block_sum = numpy_backend._block_sum
    monkeypatch.setattr(
        numpy_backend, "_block_sum", lambda a, b, plan: widths.append(a[0].size) or block_sum(a, b, plan)
    )
    a, b = host_inputs(shape, dtype, seed=threads + 5)
    assert_mul_sum_close(_adapter(threads).mul_sum(a, b), a, b)
    assert len(widths) > threads and max(widths) <= 1000 + shape[-1] * (len(shape) > 2)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "complex64"])
@pytest.mark.parametrize("shape", [(70_001, 3, 4), (3_001, 2), (2_051, 2048)])  # N > K: row blocks
def test_short_rows_summed_as_lanes_are_exact_within_the_bound(shape, dtype, threads, monkeypatch):
    # Rows of K <= 2048 elements are regrouped into rows of 4096 // K whole rows; the
    # rows left over (a tail shorter than one lane row) are summed as they are.
    per_block = []
    block_sum = numpy_backend._block_sum
    monkeypatch.setattr(
        numpy_backend, "_block_sum", lambda a, b, plan: per_block.append(a.shape[0]) or block_sum(a, b, plan)
    )
    a, b = host_inputs(shape, dtype, seed=threads)
    assert_mul_sum_close(_adapter(threads).mul_sum(a, b), a, b)
    rows_per_lane_row = numpy_backend._LANES // int(np.prod(shape[1:]))
    assert all(rows < rows_per_lane_row for rows in per_block)  # only tails went the row-by-row way


def test_broadcast_inputs_make_no_copy_per_thread():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((300_000, 1), dtype=np.float32)
    b = rng.standard_normal((1, 4), dtype=np.float32)
    out = _adapter(2).mul_sum(a, b)
    assert out.shape == (4,)
    assert_mul_sum_close(out, a, b)


def test_integers_wrap_like_numpy():
    a = np.full((400_000, 2), 2**40, dtype=np.int64)
    b = np.full((400_000, 2), 2**30, dtype=np.int64)
    expected = np.einsum("ij,ij->j", a, b)  # wraps modulo 2**64
    np.testing.assert_array_equal(_adapter(2).mul_sum(a, b), expected)


def test_thread_count_respects_omp_num_threads(monkeypatch):
    monkeypatch.setattr(numpy_backend, "cpu_count", lambda: 8)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert numpy_backend.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert numpy_backend.default_threads() == 8
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert numpy_backend.default_threads() == 8


def test_fixed_threads_are_reported():
    adapter = _adapter(3)
    assert adapter.thread_report()["numpy-threads"].startswith("3 threads")


def _pools_used(monkeypatch) -> list[int]:
    """Threads numpy-threads' blocks run on (a pool's workers and the calling thread), recorded from here on."""
    used: list[int] = []
    pool = numpy_backend._pool
    monkeypatch.setattr(numpy_backend, "_pool", lambda workers: used.append(workers + 1) or pool(workers))
    return used


def test_torch_numpy_runs_on_torchs_thread_count(monkeypatch):
    torch = pytest.importorskip("torch")
    used = _pools_used(monkeypatch)
    a, b = host_inputs((300_000, 8), "float32", seed=11)
    adapter = get_adapter("torch-numpy")
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        out = adapter.mul_sum(torch.from_numpy(a), torch.from_numpy(b))
    finally:
        torch.set_num_threads(saved)
    assert used == [3]
    assert_mul_sum_close(out.numpy(), a, b)


def test_jax_numpy_runs_on_the_fixed_thread_count(monkeypatch):
    jnp = pytest.importorskip("jax.numpy")
    used = _pools_used(monkeypatch)
    a, b = host_inputs((8, 100_000), "float32", seed=12)
    adapter = get_adapter("jax-numpy")
    saved = adapter.threads
    try:
        adapter.fix_cpu_threads(3)
        out = adapter.mul_sum(jnp.asarray(a), jnp.asarray(b))
    finally:
        adapter.threads = saved
    assert used == [3]
    assert_mul_sum_close(np.asarray(out), a, b)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", ["numpy", "numpy-threads", "numpy-numba", "torch-numpy", "jax-numpy", "dask"])
def test_a_float16_sum_past_its_range_is_inf_without_a_warning(name):
    # Accumulated in float32, rounded once to float16: inf, as np.einsum gives it, with no RuntimeWarning.
    from xbackend.registry import STRATEGIES

    reason = STRATEGIES[name].unavailable_reason("cpu")
    if reason:
        pytest.skip(reason)
    rng = np.random.default_rng(21)
    a = (200 + rng.random((300_000, 3))).astype(np.float16)
    b = (200 + rng.random((300_000, 3))).astype(np.float16)
    adapter = get_adapter(name)
    out = adapter.to_numpy(adapter.mul_sum(adapter.asarray(a), adapter.asarray(b)))
    assert out.dtype == np.float16 and np.isposinf(out).all()
    assert_mul_sum_close(out, a, b)


def test_a_timer_prelude_runs_before_each_call_outside_the_clock():
    from xbackend.core.probes import HostTimer

    events = []
    timer = HostTimer(lambda out: events.append("sync"), prelude=lambda: (events.append("prelude"), time.sleep(0.05)))
    seconds = [timer.time(lambda: events.append("call")) for _ in range(2)]
    assert events == ["prelude", "call", "sync"] * 2
    assert max(seconds) < 0.05


@pytest.mark.parametrize(
    ("environment", "threads", "spins"),
    [
        ({}, 2, True),
        ({"OMP_WAIT_POLICY": "PASSIVE"}, 2, False),
        ({"OMP_WAIT_POLICY": "active"}, 2, True),
        ({"GOMP_SPINCOUNT": "0"}, 2, False),
        ({}, 1, False),  # no workers: the calling thread runs every op
    ],
)
def test_torch_cpu_cells_are_timed_after_a_torch_op_where_its_workers_spin(environment, threads, spins, monkeypatch):
    torch = pytest.importorskip("torch")
    from xbackend.backends import torch as torch_backend

    if not torch_backend._openmp_backend(torch):
        pytest.skip("this torch runs its CPU ops on another thread pool than OpenMP")
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert torch_backend.openmp_workers_spin(torch) is spins
        timer = get_adapter("torch-eager").timer()
    finally:
        torch.set_num_threads(before)
    assert ("right after a parallel torch op" in timer.method) is spins
    assert (timer._prelude is not None) is spins
