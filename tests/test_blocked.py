"""torch-blocked on the CPU: blocks sized from the last-level cache, several blocks exact within the bound."""

from __future__ import annotations

import pytest

from xbackend.measure import host_inputs
from xbackend.registry import get_adapter
from xbackend.testing import assert_mul_sum_close

torch = pytest.importorskip("torch")


@pytest.mark.parametrize(("llc", "expected"), [(None, 1 << 20), (8 << 20, 1 << 20), (320 << 20, 20 << 20)])
def test_cpu_blocks_are_a_sixteenth_of_the_last_level_cache_and_at_least_1_mib(monkeypatch, llc, expected):
    adapter = get_adapter("torch-blocked", "cpu")
    monkeypatch.setattr(adapter, "cache_bytes", lambda: llc)
    assert adapter._block_bytes() == expected


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_several_blocks_sum_within_the_bound(monkeypatch, dtype):
    adapter = get_adapter("torch-blocked", "cpu")
    monkeypatch.setattr(adapter, "cache_bytes", lambda: None)  # 1 MiB blocks: 1 MiB / (K * 4 B) = 2048 rows each
    a, b = host_inputs((5_000, 128), dtype, seed=21)  # 3 blocks, the last one partial
    out = adapter.mul_sum(adapter.asarray(a), adapter.asarray(b))
    assert_mul_sum_close(adapter.to_numpy(out), a, b)
