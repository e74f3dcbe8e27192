"""xbackend.measure: inputs, cache state, timing statistics, the floor, extra memory, error, one cell."""

from __future__ import annotations

import time

import numpy as np
import pytest

import xbackend
from xbackend import measure
from xbackend.backends.numpy import NumpyAdapter
from xbackend.core.dtypes import numpy_dtype
from xbackend.measure import Budget, CellResult

TINY = Budget(warmup_s=0.0, measure_s=0.05, min_repeats=5, max_repeats=200)


class NaiveNumpy(NumpyAdapter):
    """``(a * b).sum(0)``: the N x K temporary is a known amount of extra memory."""

    name = "test-naive"

    def _compute(self, a, b, plan):
        return (a * b).sum(0)


class DotAsMulSum(NumpyAdapter):
    """Times the floor's own kernel as if it were a strategy: its fraction of floor must be ~1."""

    name = "test-dot"

    def _compute(self, a, b, plan):
        return np.dot(a.ravel(), b.ravel())


class SmallCache(NumpyAdapter):
    name = "test-small-cache"

    def cache_bytes(self):
        return 2**20


class Broken(NumpyAdapter):
    name = "test-broken"

    def _compute(self, a, b, plan):
        raise RuntimeError("planted failure")


class OutOfMemory(NumpyAdapter):
    name = "test-oom"

    def _compute(self, a, b, plan):
        raise MemoryError("planted: cannot allocate")


class RefusesFloat32(NumpyAdapter):
    name = "test-refuses"

    def unsupported_dtypes(self):
        return frozenset({"float32"})


def test_shape_classes_and_bytes_moved():
    assert measure.SHAPE_CLASSES == {
        "square": (4096, 4096),
        "tall-skinny": (1_000_000, 32),
        "short-wide": (64, 1_000_000),
        "column": (16_000_000, 1),
        "latency": (3, 4),
    }
    assert measure.bytes_moved((4096, 4096), "float32") == 2 * 4096 * 4096 * 4
    assert measure.bytes_moved((3, 4), "bfloat16") == 2 * 12 * 2
    assert measure.bytes_moved((10, 2), "complex128") == 2 * 20 * 16


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16", "int32", "complex64"])
def test_host_inputs_are_seeded_and_not_constant(dtype):
    a, b = measure.host_inputs((64, 8), dtype, seed=3)
    again, _ = measure.host_inputs((64, 8), dtype, seed=3)
    other, _ = measure.host_inputs((64, 8), dtype, seed=4)
    assert a.shape == b.shape == (64, 8)
    assert xbackend.core.dtypes.numpy_dtype_name(a.dtype) == dtype
    assert np.array_equal(a, again)
    assert not np.array_equal(a, other)
    assert not np.array_equal(a, b)
    assert len(np.unique(a.astype(np.complex128))) > 8


def test_host_inputs_refuse_bad_shapes_and_dtypes():
    with pytest.raises(ValueError, match="empty axis"):
        measure.host_inputs((0, 3), "float32")
    with pytest.raises(TypeError, match="bool"):
        measure.host_inputs((3, 3), "bool")


def test_cache_state_cold_rotated_latency():
    adapter = SmallCache("cpu")  # a 1 MiB last-level cache
    cold = measure.cache_state(adapter, (1024, 1024), "float32")  # 8 MiB
    assert (cold.kind, cold.copies, cold.bandwidth) == ("cold", 1, True)
    rotated = measure.cache_state(adapter, (256, 256), "float32")  # 512 KiB
    assert rotated.kind == "rotated" and rotated.copies == 4
    assert rotated.copies * measure.bytes_moved((256, 256), "float32") >= 2 * 2**20
    latency = measure.cache_state(adapter, (3, 4), "float32")
    assert latency.kind == "latency" and not latency.bandwidth


def test_bandwidth_classes_exceed_this_machines_cache():
    llc = xbackend.core.probes.cpu_last_level_cache_bytes()
    if llc is None or llc > 64 * 2**20:
        pytest.skip("no LLC size, or an LLC larger than the classes were sized for")
    adapter = xbackend.get_adapter("numpy", "cpu")
    for name, shape in measure.SHAPE_CLASSES.items():
        state = measure.cache_state(adapter, shape, "float32")
        assert state.kind == ("latency" if name == "latency" else "cold"), (name, state)


def test_timing_statistics_are_ordered():
    adapter = xbackend.get_adapter("numpy", "cpu")
    a, b = measure.host_inputs((256, 64), "float32")
    budget = Budget(warmup_s=0.02, measure_s=0.05, min_repeats=5, max_repeats=200)
    timing = measure.time_mul_sum(adapter, adapter.asarray(a), adapter.asarray(b), budget=budget, copies=3)
    assert budget.min_repeats <= timing.repeats <= budget.max_repeats
    assert 0 < timing.p20_s <= timing.median_s <= timing.p80_s
    assert timing.noise == pytest.approx((timing.p80_s - timing.p20_s) / timing.median_s)
    assert timing.first_call_s > 0 and timing.warmup_calls >= 1
    assert timing.compile_s is None  # NumPy compiles nothing
    assert timing.copies == 3


def test_slow_calls_stop_after_a_few_samples():
    adapter = xbackend.get_adapter("numpy", "cpu")
    a, b = measure.host_inputs((512, 512), "float32")
    budget = Budget(warmup_s=0.0, measure_s=1e-6, min_repeats=1000, max_repeats=2000)
    timing = measure.time_mul_sum(adapter, adapter.asarray(a), adapter.asarray(b), budget=budget)
    assert timing.repeats == 3  # 5x the budget has passed: the slow-call rule ends sampling


def test_jax_compile_time_is_reported_apart_from_the_calls():
    adapter = xbackend.get_adapter("jax-jit", "cpu")
    a, b = measure.host_inputs((37, 11), "float32", seed=11)  # a signature no other test compiles
    x, y = adapter.asarray(a), adapter.asarray(b)
    first = measure.time_mul_sum(adapter, x, y, budget=TINY)
    assert first.compile_s is not None and first.compile_s > 10 * first.median_s
    assert max(first.samples_s) < first.compile_s
    again = measure.time_mul_sum(adapter, x, y, budget=TINY)
    assert again.compile_s is None  # the executable is cached per signature


def test_floor_reads_the_same_bytes_and_is_a_ceiling():
    a, b = measure.host_inputs((2048, 1024), "float32")  # 16 MiB
    floor = measure.measure_floor("cpu", a, b, budget=TINY)
    assert floor.bytes == measure.bytes_moved(a.shape, "float32")
    assert floor.device == "cpu" and floor.method in floor.candidates
    # Several independent kernels compete; the floor is the fastest of them.
    assert any(name.startswith("np.dot") for name in floor.candidates)
    assert any(name.startswith("np.einsum dot") for name in floor.candidates)
    assert floor.gbps == pytest.approx(floor.bytes / floor.timing.median_s / 1e9)
    assert floor.gbps == pytest.approx(max(floor.candidates.values()))
    assert 0.1 < floor.gbps < 10_000  # a memory system, not a clock error
    naive = NaiveNumpy("cpu")
    slow = measure.time_mul_sum(naive, naive.asarray(a), naive.asarray(b), budget=TINY)
    assert floor.timing.median_s < slow.median_s  # (a*b).sum(0) also writes and rereads N x K


def test_floor_of_the_floor_kernel_is_about_one():
    a, b = measure.host_inputs((2048, 2048), "float32")  # 32 MiB
    same = DotAsMulSum("cpu")
    budget = Budget(warmup_s=0.02, measure_s=0.2, min_repeats=10, max_repeats=500)
    copies = measure.cache_state(same, a.shape, "float32").copies
    timing = measure.time_mul_sum(same, same.asarray(a), same.asarray(b), budget=budget, copies=copies)
    floor = measure.measure_floor("cpu", a, b, budget=budget, copies=copies)
    (dot,) = [gbps for name, gbps in floor.candidates.items() if name.startswith("np.dot")]
    # Same kernel, same bytes, same cache state: 1 up to this shared machine's noise;
    # the floor is the best candidate, so at least as fast.
    same_gbps = floor.bytes / timing.median_s / 1e9
    assert 0.5 < dot / same_gbps < 2.0
    assert floor.gbps >= dot


@pytest.mark.parametrize("name", ["torch-eager", "jax-jit"])
def test_cpu_floor_reads_memory_of_the_cells_framework(name):
    cell_adapter = xbackend.get_adapter(name, "cpu")
    floor_adapter = measure.floor_adapter("cpu")
    assert measure.floor_memory_owner(floor_adapter, cell_adapter) == cell_adapter.framework
    a, b = measure.host_inputs((512, 256), "float32")
    floor = measure.measure_floor("cpu", a, b, budget=TINY, memory_of=cell_adapter)
    # Which kernel wins a 1 MiB read is the machine's business; NumPy's kernels, which
    # can view the cell's buffers, read them there.
    numpy_kernels = [label for label in floor.candidates if label.startswith("np.")]
    assert numpy_kernels, floor.candidates
    assert all(label.endswith(f"in {cell_adapter.framework}-allocated memory") for label in numpy_kernels)
    assert floor.bytes == measure.bytes_moved(a.shape, "float32")
    x = cell_adapter.asarray(a)
    np.testing.assert_array_equal(cell_adapter.host_view(x), a)  # a view of the native buffer, same values


def test_each_memorys_floor_reads_that_memory_and_its_allocator_ratio_is_taken_in_the_same_rounds():
    cells = [xbackend.get_adapter(name, "cpu") for name in ("numpy", "torch-eager", "jax-jit")]
    a, b = measure.host_inputs((512, 256), "float32")
    floors = measure.measure_floors("cpu", a, b, memories=cells, budget=TINY)
    assert sorted(floors) == ["jax", "numpy", "torch"]
    for memory, floor in floors.items():
        assert floor.memory == memory and floor.method in floor.candidates
        assert all(label.endswith(f"in {memory}-allocated memory") for label in floor.candidates), floor.candidates
        assert floor.gbps == pytest.approx(max(floor.candidates.values()))
    # torch.dot wraps NumPy's and XLA's buffers in place; XLA's dot reads only its own.
    assert any(label.startswith("torch.dot") for label in floors["numpy"].candidates)
    assert any(label.startswith("torch.dot") for label in floors["jax"].candidates)
    assert not any(label.startswith("jax.") for label in floors["numpy"].candidates)
    fastest = max(floors.values(), key=lambda floor: floor.gbps)
    for floor in floors.values():
        assert floor.fastest_memory == fastest.memory
        assert floor.allocator_ratio == pytest.approx(floor.gbps / fastest.gbps)
    assert fastest.allocator_ratio == 1.0


def test_torch_wraps_another_frameworks_buffer_without_a_copy():
    torch = pytest.importorskip("torch")
    adapter = xbackend.get_adapter("torch-eager", "cpu")
    jax_adapter = xbackend.get_adapter("jax-jit", "cpu")
    host = jax_adapter.host_view(jax_adapter.asarray(np.arange(6, dtype=np.float32)))
    wrapped = adapter.from_host_view(host)
    assert isinstance(wrapped, torch.Tensor) and wrapped.data_ptr() == host.ctypes.data
    np.testing.assert_array_equal(wrapped.numpy(), np.arange(6, dtype=np.float32))
    assert adapter.from_host_view(np.zeros(4, numpy_dtype("bfloat16"))) is None


def test_a_grid_times_each_cell_beside_the_floor_of_its_own_memory():
    budget = Budget(warmup_s=0.0, measure_s=0.05, min_repeats=5, max_repeats=200)
    shared = measure.SharedInputs((512, 256), "float32", 0, budget)
    cells = [xbackend.get_adapter(name, "cpu") for name in ("numpy", "torch-eager")]
    shared.measure_floors(cells)
    assert sorted(shared.floors) == ["cpu/numpy", "cpu/torch"]
    for adapter in cells:
        cell = shared.measure(adapter)
        floor = shared.floors[f"cpu/{adapter.framework}"]
        assert cell.status == "ok", cell.error
        assert cell.floor_memory == adapter.framework
        assert cell.floor_method.startswith(floor.method) and "timed in the cell's rounds" in cell.floor_method
        assert cell.memory_floor_gbps == floor.gbps and cell.allocator_ratio == floor.allocator_ratio


def test_floor_falls_back_to_its_own_memory_where_it_cannot_view():
    floor_adapter = measure.floor_adapter("cpu")
    assert measure.floor_memory_owner(floor_adapter, None) == "numpy"
    assert measure.floor_memory_owner(floor_adapter, xbackend.get_adapter("dask", "cpu")) == "numpy"


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "int8"])
def test_floor_inputs_keep_the_bytes_for_dtypes_blas_lacks(dtype):
    a, b = measure.host_inputs((64, 32), dtype)
    fa, fb = measure.floor_inputs(a, b)
    assert fa.dtype == np.float32 and fa.nbytes == a.nbytes and fb.nbytes == b.nbytes
    floor = measure.measure_floor("cpu", a, b, budget=TINY)
    assert floor.bytes == measure.bytes_moved(a.shape, dtype)


def test_extra_memory_counts_the_temporary():
    a, b = measure.host_inputs((1024, 256), "float32")
    naive, einsum = NaiveNumpy("cpu"), xbackend.get_adapter("numpy", "cpu")
    extra, method = measure.extra_memory(naive, naive.asarray(a), naive.asarray(b))
    assert "tracemalloc" in method
    assert a.nbytes <= extra < a.nbytes + 2**20  # the N x K product, plus Python noise
    extra, _ = measure.extra_memory(einsum, einsum.asarray(a), einsum.asarray(b))
    assert extra < 64 * 2**10  # einsum streams: no temporary


def test_rss_fallback_sees_a_large_temporary():
    if not xbackend.core.probes.rss_high_water_available():
        pytest.skip("/proc/self/clear_refs is not writable here")
    adapter = xbackend.get_adapter("torch-eager", "cpu")
    # a*b: 64 MiB, above the largest mmap threshold glibc adapts to (32 MiB), so
    # the temporary is always fresh pages whatever earlier tests allocated.
    a, b = measure.host_inputs((4096, 4096), "float32")
    extra, method = measure.extra_memory(adapter, adapter.asarray(a), adapter.asarray(b))
    assert "VmHWM" in method
    assert 0.9 * a.nbytes <= extra <= 1.5 * a.nbytes


def test_error_check_catches_a_wrong_result():
    a, b = measure.host_inputs((5000, 700), "float32")
    check = measure.error_check(a, b)
    assert len(check.columns) == min(measure.MAX_ERROR_COLUMNS, measure.ERROR_CHECK_PRODUCTS // 5000)
    assert "of 700" in check.description
    out = np.einsum("i...,i...->...", a, b)
    assert measure.check_error(out, check).ratio <= 1
    wrong = out.copy()
    wrong[check.columns[0]] += 1000.0  # the bound is a few units here (N = 5000, |a_i b_i| ~ 1)
    verdict = measure.check_error(wrong, check)
    assert verdict.ratio > 1 and verdict.failure


def test_measure_cell_has_every_figure():
    adapter = xbackend.get_adapter("numpy", "cpu")
    cell = measure.measure_cell(adapter, (512, 256), "float32", budget=TINY)
    assert cell.status == "ok" and cell.error is None
    missing = [
        key
        for key in CellResult.keys()
        if getattr(cell, key) is None
        and key not in ("error", "error_failure", "compile_s", "chosen")  # chosen: -auto adapters only
        and not key.startswith(("dispatch_", "plain_call"))  # only the latency cells of -auto adapters have these
    ]
    assert missing == ["allocator_ratio"]  # a grid's figure: one cell's floor reads one memory
    assert cell.floor_memory == "numpy"
    assert cell.gbps == pytest.approx(cell.bytes_moved / cell.median_s / 1e9)
    assert cell.fraction_of_floor == pytest.approx(cell.gbps / cell.floor_gbps)
    assert cell.error_ratio <= 1
    assert cell.noisy == (cell.noise > measure.NOISE_WARNING)


def test_latency_cell_reports_time_only():
    cell = measure.measure_cell(xbackend.get_adapter("numpy", "cpu"), (3, 4), "float32", budget=TINY)
    assert cell.status == "ok" and cell.cache_kind == "latency"
    assert cell.median_s > 0 and cell.gbps is None and cell.fraction_of_floor is None and cell.floor_gbps is None
    assert cell.dispatch_overhead_s is None and cell.plain_call is None  # a strategy dispatches nothing
    assert cell.error_ratio <= 1 and cell.error_checked == "all 4 output elements"


@pytest.mark.parametrize(
    ("adapter_class", "status", "message"),
    [
        (Broken, "failed", "RuntimeError: planted failure"),
        (OutOfMemory, "failed", "MemoryError: planted"),
        (RefusesFloat32, "unsupported", "does not support float32"),
    ],
)
def test_a_failing_cell_is_recorded_not_raised(adapter_class, status, message):
    cell = measure.measure_cell(adapter_class("cpu"), (64, 8), "float32", budget=TINY)
    assert cell.status == status
    assert message in cell.error
    assert cell.median_s is None and cell.gbps is None
    assert set(cell.to_dict()) == set(CellResult.keys())


def test_budget_refuses_nonsense():
    with pytest.raises(ValueError, match="min_repeats"):
        Budget(min_repeats=5, max_repeats=2)
    with pytest.raises(ValueError, match="measure_s"):
        Budget(measure_s=0)


class RecordsSynchronize(NumpyAdapter):
    """Records what the timer hands to ``synchronize``: a lazy library (dask) computes it there."""

    name = "test-records-synchronize"

    def __init__(self, device):
        super().__init__(device)
        self.seen = []

    def synchronize(self, *arrays):
        self.seen += [type(x) for x in arrays]


def test_a_host_timed_call_hands_its_own_result_to_synchronize():
    adapter = RecordsSynchronize("cpu")
    a, b = measure.host_inputs((64, 8), "float32")
    measure.time_mul_sum(adapter, a, b, budget=TINY)
    assert adapter.seen and set(adapter.seen) == {np.ndarray}


def test_dask_cells_are_timed_with_their_compute():
    pytest.importorskip("dask")
    dask, numpy = xbackend.get_adapter("dask", "cpu"), xbackend.get_adapter("numpy", "cpu")
    a, b = measure.host_inputs((2048, 2048), "float32")  # 32 MiB
    lazy = measure.time_mul_sum(dask, dask.asarray(a), dask.asarray(b), budget=TINY)
    eager = measure.time_mul_sum(numpy, a, b, budget=TINY)
    # The same einsum per chunk, computed: not faster than one einsum over everything by much.
    assert lazy.median_s > 0.3 * eager.median_s


class PlantedDispatch(NumpyAdapter):
    """A dispatching adapter whose dispatch costs a known, busy-waited ``DELAY_S`` on top of its plain call."""

    name = "test-planted-dispatch"
    DELAY_S = 20e-6

    def dispatch_pair(self, a, b):
        def dispatching(x, y):
            end = time.perf_counter() + self.DELAY_S
            while time.perf_counter() < end:
                pass
            return plain(x, y)

        plain = self.kernel(a, b, self.plan(a, b))
        return dispatching, plain, "the planted plain call"


def test_dispatch_overhead_recovers_a_planted_delay():
    a, b = measure.host_inputs((3, 4), "float32")
    overhead = measure.measure_dispatch_overhead(PlantedDispatch("cpu"), a, b, budget=TINY)
    # The busy wait cannot end early; a busy machine may stretch it, not shrink it.
    assert PlantedDispatch.DELAY_S * 0.9 <= overhead.overhead_s <= PlantedDispatch.DELAY_S * 3
    assert overhead.p20_s <= overhead.overhead_s <= overhead.p80_s
    assert overhead.dispatch_s > overhead.plain_s > 0 and overhead.plain == "the planted plain call"
    assert overhead.calls_per_sample > 1 and overhead.rounds >= TINY.min_repeats
    # A strategy dispatches nothing: no figure.
    assert measure.measure_dispatch_overhead(NumpyAdapter("cpu"), a, b, budget=TINY) is None


def test_the_auto_adapters_latency_cell_reports_the_dispatch_overhead():
    a, b = measure.host_inputs((3, 4), "float32")
    cell = measure.measure_cell(xbackend.get_adapter("numpy-auto", "cpu"), (3, 4), "float32", budget=TINY)
    assert cell.status == "ok", cell.error
    assert cell.dispatch_overhead_p20_s <= cell.dispatch_overhead_s <= cell.dispatch_overhead_p80_s
    assert cell.plain_call_s > 0 and cell.dispatch_call_s > 0 and "numpy" in cell.plain_call
    # The plain call is the very kernel mul_sum caches for these inputs.
    _, plain, _ = xbackend.get_adapter("numpy-auto", "cpu").dispatch_pair(a, b)
    np.testing.assert_array_equal(plain(a, b), xbackend.mul_sum(a, b))
    bandwidth = measure.measure_cell(xbackend.get_adapter("numpy-auto", "cpu"), (512, 128), "float32", budget=TINY)
    assert bandwidth.dispatch_overhead_s is None  # a bandwidth cell has no overhead figure


def test_an_auto_cell_names_the_strategy_mul_sum_ran():
    auto = measure.measure_cell(xbackend.get_adapter("numpy-auto", "cpu"), (512, 128), "float32", budget=TINY)
    a, b = measure.host_inputs((512, 128), "float32")
    assert auto.chosen == xbackend.explain(a, b) and auto.chosen.startswith("numpy float32 on cpu, square: numpy")
    plain = measure.measure_cell(xbackend.get_adapter("numpy", "cpu"), (512, 128), "float32", budget=TINY)
    assert plain.chosen is None  # a strategy chooses nothing


# -- the floor timed beside each cell -------------------------------------------------
DRIFT = {"slowdown": 1.0}  # how slow the planted machine is now: every planted call sleeps this many times its base


class SleepingFloor(NumpyAdapter):
    """A floor library whose one kernel takes 2 ms of the planted machine's time."""

    name = "test-sleeping-floor"

    def floor_kernels(self):
        def planted_dot(x, y):
            time.sleep(0.002 * DRIFT["slowdown"])
            return np.dot(x.ravel()[:8], y.ravel()[:8])

        return {"planted dot": planted_dot}


class HalfAsFast(NumpyAdapter):
    """A strategy taking twice the floor kernel's time: at 0.5 of the floor on any machine speed."""

    name = "test-half-as-fast"

    def _compute(self, a, b, plan):
        time.sleep(0.004 * DRIFT["slowdown"])
        return super()._compute(a, b, plan)

    def cache_bytes(self):
        return 2**16  # no rotation: the figures are the sleeps'


def test_a_machine_that_slows_between_floor_and_cell_leaves_the_fraction(monkeypatch):
    # The grid measures each allocator's floor first; then the machine slows 3x (a busy
    # neighbour). A floor timed only then would put the cell at 0.5 / 3 = 0.17.
    monkeypatch.setattr(measure, "floor_adapters", lambda device: [SleepingFloor("cpu")])
    adapter = HalfAsFast("cpu")
    budget = Budget(warmup_s=0.0, measure_s=0.12, min_repeats=9, max_repeats=200)
    shared = measure.SharedInputs((256, 64), "float32", 0, budget)
    monkeypatch.setitem(DRIFT, "slowdown", 1.0)
    assert shared.floor(adapter).method.startswith("planted dot")
    monkeypatch.setitem(DRIFT, "slowdown", 3.0)
    cell = shared.measure(adapter)
    assert cell.status == "ok", cell.error
    assert cell.fraction_of_floor == pytest.approx(0.5, abs=0.1)
    assert cell.memory_floor_gbps == pytest.approx(3 * cell.floor_gbps, rel=0.3)  # the floor before the slowdown
    assert "timed in the cell's rounds" in cell.floor_method


def test_a_strategy_faster_than_the_floor_kernel_is_the_floor():
    cells = [
        CellResult("a", "numpy", "cpu", "s", [8, 8], "float32"),
        CellResult("b", "numpy", "cpu", "s", [8, 8], "float32"),
    ]
    for cell, fraction in zip(cells, (1.25, 0.5)):
        cell.gbps, cell.floor_gbps, cell.floor_median_s = 10 * fraction, 10.0, 1.0
        cell.fraction_of_floor, cell.floor_method = fraction, "planted dot, timed in the cell's rounds"
    measure.best_floor(cells)
    assert [cell.fraction_of_floor for cell in cells] == [1.0, 0.4]
    assert cells[1].floor_gbps == pytest.approx(12.5)
    assert cells[1].floor_method.startswith("a on cpu (a strategy; 1.25x the floor kernel timed beside it")


def test_a_strategy_beating_its_memorys_floor_leaves_other_memories_alone():
    # torch's pages read slower than NumPy's on some machines: a torch strategy above
    # torch memory's floor says nothing about a NumPy cell's floor.
    cells = [
        CellResult("torch-fast", "torch", "cpu", "s", [8, 8], "float32", floor_memory="torch"),
        CellResult("torch-slow", "torch", "cpu", "s", [8, 8], "float32", floor_memory="torch"),
        CellResult("numpy", "numpy", "cpu", "s", [8, 8], "float32", floor_memory="numpy"),
    ]
    for cell, fraction in zip(cells, (1.2, 0.6, 0.9)):
        cell.gbps, cell.floor_gbps, cell.floor_median_s = 10 * fraction, 10.0, 1.0
        cell.fraction_of_floor, cell.floor_method = fraction, "planted dot, timed in the cell's rounds"
    measure.best_floor(cells)
    assert [cell.fraction_of_floor for cell in cells] == pytest.approx([1.0, 0.5, 0.9])
    assert cells[2].floor_method == "planted dot, timed in the cell's rounds"


def test_memory_no_kernel_can_view_gets_the_same_kernels_whichever_cell_asks_first():
    # dask's and array-api's buffers are read as NumPy's: the NumPy memory's floor must not
    # lose torch.dot because a dask cell asked for it before the numpy cell did.
    a, b = measure.host_inputs((256, 128), "float32")
    for first in ("dask", "array-api", "numpy"):
        memories = [xbackend.get_adapter(first, "cpu"), xbackend.get_adapter("torch-eager", "cpu")]
        floors = measure.measure_floors("cpu", a, b, memories=memories, budget=TINY)
        labels = sorted(label.split(" on ")[0] for label in floors["numpy"].candidates)
        assert any(label.startswith("torch.dot") for label in labels), (first, labels)
        assert all(label.endswith("in numpy-allocated memory") for label in floors["numpy"].candidates)


def test_floor_inputs_are_native_and_c_ordered():
    a, b = measure.host_inputs((64, 48), "float32")
    fa, fb = measure.floor_inputs(np.asfortranarray(a), b)
    assert fa.flags.c_contiguous and fb.flags.c_contiguous
    np.testing.assert_array_equal(fa, a)  # the same values, read flat by every dot without a copy
    swapped = a.astype(a.dtype.newbyteorder(">"))
    fa, fb = measure.floor_inputs(swapped, swapped)
    assert fa.dtype == np.float32 and fa.dtype.isnative and fa.nbytes == a.nbytes


def test_floor_edge_cases_are_refused_or_harmless():
    a, b = measure.host_inputs((64, 48), "float32")
    with pytest.raises(ValueError, match="copies must be at least 1"):
        measure.measure_floors("cpu", a, b, memories=[None], copies=0)
    with pytest.raises(ValueError, match="at least one floor adapter"):
        measure.measure_floor([], a, b)
    empty = np.zeros((0, 4), np.float32)
    cells = [xbackend.get_adapter(name, "cpu") for name in ("numpy", "torch-eager")]
    floors = measure.measure_floors("cpu", empty, empty, memories=cells, budget=TINY)  # no ratio of 0 GB/s
    assert all(floor.allocator_ratio is None for floor in floors.values())


def test_torch_declines_what_it_cannot_wrap():
    pytest.importorskip("torch")
    adapter = xbackend.get_adapter("torch-eager", "cpu")
    assert adapter.from_host_view(np.ones(8, ">f4")) is None  # another byte order
    assert adapter.from_host_view(np.ones(8, np.float32)[::-1]) is None  # a negative stride
