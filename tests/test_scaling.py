"""Thread scaling: measure.measure_at_threads pins the cell and the floor, and compare --scaling reports it."""

from __future__ import annotations

import pytest

from xbackend import compare, measure, report
from xbackend.core.probes import cpu_count
from xbackend.registry import get_adapter

TINY = measure.Budget(warmup_s=0.0, measure_s=0.02, min_repeats=2, max_repeats=20)


def test_thread_counts_double_up_to_the_limit():
    assert measure.thread_counts(1) == [1]
    assert measure.thread_counts(6) == [1, 2, 4, 6]
    assert measure.thread_counts(8) == [1, 2, 4, 8]


def test_a_point_pins_threads_and_restores_every_cpu(monkeypatch):
    adapter = get_adapter("numpy-threads")
    seen = []
    real = type(adapter).fix_cpu_threads
    monkeypatch.setattr(type(adapter), "fix_cpu_threads", lambda self, n: (seen.append(n), real(self, n)))
    point = measure.measure_at_threads(adapter, (512, 1024), "float32", 1, budget=TINY)
    assert point.error is None and point.threads == 1 and point.honours_threads
    assert seen[0] == 1 and seen[-1] == cpu_count()
    # The floor includes the cell where the cell beats every kernel: never above 1.
    assert 0 < point.fraction_of_floor <= 1
    assert point.gbps == pytest.approx(measure.bytes_moved((512, 1024), "float32") / point.median_s / 1e9)


def test_mul_sum_honours_the_count_as_the_strategy_it_chooses_does(monkeypatch):
    # jax-auto's label follows the strategy mul_sum runs: jax-jit is XLA's pool, jax-numpy xbackend's own.
    pytest.importorskip("jax")
    from xbackend import dispatch

    adapter = get_adapter("jax-auto")
    for strategy, honours in (("jax-jit", False), ("jax-numpy", True)):
        choice = dispatch.Choice(strategy, "jax", "cpu", "float32", "square", "planted", "test")
        monkeypatch.setattr(measure, "choose", lambda a, b, choice=choice: choice)
        point = measure.measure_at_threads(adapter, (512, 1024), "float32", 1, budget=TINY)
        assert point.error is None and point.honours_threads is honours


def test_the_floor_leaves_out_kernels_that_cannot_be_pinned(monkeypatch):
    from xbackend.backends import numpy as numpy_backend

    adapter = get_adapter("numpy")
    monkeypatch.setattr(numpy_backend, "_threadpoolctl", lambda: None)
    monkeypatch.setattr(numpy_backend, "cpu_count", lambda: 4)
    monkeypatch.setattr(adapter, "threads", 1)
    assert [name for name in adapter.floor_kernels() if name.startswith("np.dot")] == []
    monkeypatch.setattr(adapter, "threads", 4)
    assert [name for name in adapter.floor_kernels() if name.startswith("np.dot")] != []


def test_compare_scaling_section():
    options = compare.CompareOptions(
        pairs=[("numpy", "cpu"), ("numpy-auto", "cpu")], shapes={"square": (512, 1024)}, budget=TINY, scaling=True
    )
    document = compare.run_compare(options)
    scaling = document["scaling"]
    assert scaling["shape_class"] == "square" and scaling["threads"] == measure.thread_counts()
    # Only the -auto adapter is scaled when one is selected.
    assert [(p["adapter"], p["threads"]) for p in scaling["points"]] == [
        ("numpy-auto", n) for n in measure.thread_counts()
    ]
    text = report.format_table(document)
    assert "thread scaling (square 512x1024 float32" in text
    for point in scaling["points"]:
        assert f"numpy-auto  {point['threads']}" in text
