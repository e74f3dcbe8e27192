"""Shape classes: the vocabulary shared by the selection table, measurement and the asv suite.

A reduction over dim 0 of an N x K input (K = the product of the trailing
dims) falls in one class by its size and aspect, and each class has one
representative shape per grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Shape = tuple[int, ...]

# Below this many input bytes a call measures per-call overhead, not bandwidth.
LATENCY_BYTES = 64 * 1024
# N/K (or K/N) beyond which a shape is tall-skinny (short-wide).
ELONGATION = 16
# The classes whose outputs each sum many rows (N >= ELONGATION x K), where a strategy that
# keeps one running sum per output loses accuracy others keep.
MANY_ROWS_CLASSES = ("column", "tall-skinny")

# Sum-by-row-blocks (numpy's np.einsum, array-api's xp.sum): a library that adds rows of
# K > 1 into one running sum per output loses accuracy with N, and past 2**24 rows a
# float32 sum stops growing. Sub-blocks of rows whose sums are added keep the error to
# the rows of one sub-block plus their count. A sub-block that copies (an upcast, the
# products) holds about 1 MiB of float32 per input, so that the copy stays in cache;
# one that copies nothing, 4 MiB and 4096 rows at least, so that a block of a few
# thousand rows (square, short-wide) is one call. Against one einsum call over 1e6 x 32
# float32 (2-vCPU AMD EPYC VM, 25 interleaved rounds), sub-blocks of 2**18 elements took
# 8-10% longer, of 2**20 3-5%, of 2**22 0-2%; but the larger, the more a sub-block's
# running sum drifts (2**22 rows of uniform values: 6e-4 relative), so 2**20.
SUB_BLOCK_ELEMENTS = 1 << 18
SUB_BLOCK_ELEMENTS_NO_COPY = 1 << 20
SUB_BLOCK_MIN_ROWS = 4096


def sub_block_rows(shape: Sequence[int], *, copies: bool) -> int:
    """Rows per sub-block of inputs of ``shape``, whose sub-blocks ``copies`` or not."""
    per_row = max(1, math.prod(int(d) for d in shape[1:]))
    if copies:
        return max(1, SUB_BLOCK_ELEMENTS // per_row)
    return max(SUB_BLOCK_MIN_ROWS, SUB_BLOCK_ELEMENTS_NO_COPY // per_row)


# The default grid: every bandwidth class reads 128-256 MiB in float32.
SHAPE_CLASSES: dict[str, Shape] = {
    "square": (4096, 4096),
    "tall-skinny": (1_000_000, 32),
    "short-wide": (64, 1_000_000),
    "column": (16_000_000, 1),
    "latency": (3, 4),
}
# ``--quick`` and reduced grids: the same classes with a quarter of the rows or
# columns (square stays 4096 x 4096). Every bandwidth class still reads >= 64 MiB
# in float32; measurement rotates input sets where a cache is larger than half of that.
QUICK_SHAPE_CLASSES: dict[str, Shape] = {
    "square": (4096, 4096),
    "tall-skinny": (250_000, 32),
    "short-wide": (64, 250_000),
    "column": (8_000_000, 1),
    "latency": (3, 4),
}

# ``--large``: GPU-sized, every bandwidth class reads 2 x 256 MiB in float32 (2 x
# 128 MiB in 16 bits), several times the 50-60 MiB L2 of an H100 / H200.
LARGE_SHAPE_CLASSES: dict[str, Shape] = {
    "square": (8192, 8192),
    "tall-skinny": (2_097_152, 32),
    "short-wide": (64, 1_048_576),
    "column": (67_108_864, 1),
    "latency": (3, 4),
}


def classify(shape: Sequence[int], itemsize: int) -> str:
    """The shape class of a reduction over dim 0 of ``shape`` with elements of ``itemsize`` bytes.

    latency: both inputs under ``LATENCY_BYTES``; column: K == 1; short-wide:
    K >= 16 N; tall-skinny: N >= 16 K; square otherwise.
    """
    n = int(shape[0]) if len(shape) else 1
    k = math.prod(int(d) for d in shape[1:])
    if 2 * n * k * itemsize < LATENCY_BYTES:
        return "latency"
    if k == 1:
        return "column"
    if k >= ELONGATION * n:
        return "short-wide"
    if n >= ELONGATION * k:
        return "tall-skinny"
    return "square"


# The strided partial sums of the hand-written GPU kernels (torch-triton, jax-pallas, cupy-raw):
# lane i of L = K x R lanes sums elements i, i + L, i + 2L, ... of the flattened
# C-contiguous inputs. L is a multiple of K, so a lane stays in one column, and
# neighbouring lanes read neighbouring addresses: every warp's loads are coalesced
# whatever K is. The R x K partial sums are then summed over R.
# Lanes per streaming multiprocessor: two inputs x 4 bytes x 4096 lanes x 132 SMs keep
# ~4 MB of loads in flight per row of lanes, while the float32 partials stay under 1%
# of a 512 MiB input. The kernels keep several rows in flight, 2-byte elements more
# (torch-triton and jax-pallas: GPU_BYTES_PER_TRIP per thread; cupy-raw: its loop unrolled four times,
# eight for float16).
GPU_LANES_PER_SM = 4096
# The Triton-compiled kernels (torch-triton, jax-pallas): lanes per program, 4 warps x
# 32 threads x 8 elements: 16, 32 or 64 bytes of each input per thread and row.
GPU_BLOCK = 1024
GPU_WARPS = 4
# Bytes of each input a thread loads per loop trip, over rows issued before any is
# used. A thread's loads wait at their first use, so these bytes are what each thread
# keeps in flight: GPU_LANES_PER_SM at one float32 row per trip kept ~32 KiB per SM in
# flight on an H200, about what covers its memory latency at 4.8 TB/s, and one
# bfloat16 row half that (bfloat16 read 0.34-0.60 of the floor, float32 0.61-0.93).
GPU_BYTES_PER_TRIP = 64


def gpu_rows_per_trip(itemsize: int) -> int:
    """Rows a thread of the Triton-compiled kernels loads per loop trip for elements of ``itemsize`` bytes: 1, 2 or 4."""
    return min(4, max(1, GPU_BYTES_PER_TRIP // (GPU_BLOCK // (GPU_WARPS * 32) * itemsize)))


# Below this many outputs, a dim-0 reduction of the R x K partials leaves most of a
# GPU idle (CuPy's took 170-300 us for K = 1 and 32 on an H200, more than the 140 us
# kernel): the kernels then store them transposed, K x R, and the second pass sums
# contiguous rows.
GPU_FEW_OUTPUTS = 8192


def partial_row_groups(n: int, k: int, lanes: int) -> int:
    """R: how many row groups the strided partial sums use for an N x K input, aiming at ``lanes`` lanes.

    At least 1 (each lane then sums a whole column), at most N (each lane then
    sums one element).
    """
    if n <= 0 or k <= 0 or lanes <= 0:
        raise ValueError(f"partial_row_groups needs positive n, k and lanes; got n={n}, k={k}, lanes={lanes}")
    return max(1, min(n, -(-lanes // k)))


def strided_partials_layout(n: int, k: int, multiprocessors: int) -> tuple[int, bool]:
    """(R, transposed) of the GPU kernels' strided partial sums of an N x K input.

    R from ``partial_row_groups`` at ``GPU_LANES_PER_SM`` lanes per SM;
    transposed (K x R) where there are fewer than ``GPU_FEW_OUTPUTS`` outputs.
    """
    return partial_row_groups(n, k, GPU_LANES_PER_SM * multiprocessors), k < GPU_FEW_OUTPUTS


def sum_strided_partials(partials: Any, k: int, groups: int, transposed: bool, dtype: Any) -> Any:
    """The K sums, in ``dtype``, of the GPU kernels' ``groups x k`` partials laid out as ``strided_partials_layout`` says.

    Duck-typed: torch tensors and CuPy arrays both take ``reshape`` and ``sum(axis=, dtype=)``.
    """
    if groups == 1:
        return partials
    if transposed:  # K x R: each output's partials are one contiguous row
        return partials.reshape(k, groups).sum(axis=1, dtype=dtype)
    return partials.reshape(groups, k).sum(axis=0, dtype=dtype)
