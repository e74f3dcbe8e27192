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


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "shape",
    [(5_000, 128), (3, 70_000), (7, 3, 40_000), (30_001, 3, 5), (100_000,)],
    ids=["row-blocks", "column-chunks", "chunks-of-axis-1", "inner-axes", "column"],
)
def test_the_tiled_path_sums_every_block_and_chunk_within_the_bound(monkeypatch, shape, dtype):
    # 64 KiB tiles: several row blocks (the last one partial) and, for rows longer
    # than a tile, several chunks of axis 1.
    adapter = get_adapter("torch-blocked", "cpu")
    monkeypatch.setattr(adapter, "_block_bytes", lambda: 64 << 10)
    tiles = []
    tiled = adapter._tiled
    monkeypatch.setattr(adapter, "_tiled", lambda a, b: tiles.append(a.shape) or tiled(a, b))
    a, b = host_inputs(shape, dtype, seed=len(shape))
    out = adapter.mul_sum(adapter.asarray(a), adapter.asarray(b))
    assert tiles, "float32 and float64 on the CPU take the tiled path"
    assert tuple(out.shape) == shape[1:]
    assert_mul_sum_close(adapter.to_numpy(out), a, b)


def test_broadcast_rows_are_tiled_without_a_copy(monkeypatch):
    adapter = get_adapter("torch-blocked", "cpu")
    monkeypatch.setattr(adapter, "_block_bytes", lambda: 64 << 10)
    a, b = host_inputs((1, 50_000), "float32", seed=3)[0], host_inputs((40, 50_000), "float32", seed=4)[1]
    out = adapter.mul_sum(adapter.asarray(a), adapter.asarray(b))
    assert_mul_sum_close(adapter.to_numpy(out), a, b)


@pytest.mark.parametrize("block_bytes", [64 << 10, None], ids=["many-tiles", "default-tile"])
def test_products_are_rounded_before_they_are_added(monkeypatch, block_bytes):
    # A fused multiply-add (addcmul_ on x86) keeps an overflowing product finite
    # until it is added: inf and NaN would land elsewhere than in torch.sum(a * b, 0).
    adapter = get_adapter("torch-blocked", "cpu")
    if block_bytes is not None:
        monkeypatch.setattr(adapter, "_block_bytes", lambda: block_bytes)
    a, b = torch.ones(2, 600_000), torch.ones(2, 600_000)  # rows longer than a 2 MiB tile
    a[:, :2] = 3e38
    b[:, 0] = torch.tensor([2.0, -2.0])  # +inf + -inf: NaN
    b[:, 1] = torch.tensor([-1.0, 2.0])  # -3e38 + inf: inf (fused: 3e38, finite)
    out = adapter.mul_sum(a, b)
    expected = torch.sum(a * b, 0)
    assert torch.isnan(out[0]) and torch.isnan(expected[0])
    assert out[1].item() == expected[1].item() == float("inf")
    assert torch.equal(out[2:], expected[2:])
