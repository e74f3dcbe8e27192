"""NumPy: ``np.einsum('i...,i...->...')``, the fastest correct NumPy formulation.

``np.einsum`` streams both inputs once with no N x K temporary; ``(a*b).sum(0)``
writes and re-reads that temporary and measured ~3x slower on a 2-core CPU. For
float16 and bfloat16 (``np.einsum`` rejects bfloat16, and NumPy's own axis-0
float16 sum accumulates row by row in float16), blocks of rows are upcast to
float32 and einsum'd, so accumulation stays in float32 and the extra memory is
bounded by one block.
"""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..core.dtypes import numpy_dtype, numpy_dtype_name
from ..core.probes import MemoryUse, cpu_count
from ..core.semantics import Plan
from .base import Adapter, Library, host_device

# Rows per upcast block are chosen so that one float32 block is about 1 MiB: it
# stays in cache and the Python loop is a few hundred iterations at most.
_UPCAST_BLOCK_ELEMENTS = 1 << 18


def broadcast_inputs(a: np.ndarray, b: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as views of ``plan.full_shape`` in ``plan.out_dtype`` (a copy only when casting)."""
    dtype = numpy_dtype(plan.out_dtype)
    return (
        np.broadcast_to(a.astype(dtype, copy=False), plan.full_shape),
        np.broadcast_to(b.astype(dtype, copy=False), plan.full_shape),
    )


class NumpyAdapter(Adapter):
    name = "numpy"
    framework = "numpy"
    devices = ("cpu",)
    install_hint = "pip install numpy"
    formulation = "np.einsum('i...,i...->...', a, b); float16/bfloat16 upcast to float32 by row blocks"

    def asarray(self, host: np.ndarray) -> np.ndarray:
        return np.array(host, copy=True)

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x)

    def synchronize(self, *arrays: Any) -> None:
        """NumPy computes synchronously."""

    def is_native(self, x: Any) -> bool:
        return isinstance(x, np.ndarray)

    def dtype_name(self, x: np.ndarray) -> str:
        return numpy_dtype_name(x.dtype)

    def device_of(self, x: np.ndarray) -> str:
        return "cpu"

    def _zeros(self, plan: Plan) -> np.ndarray:
        return np.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))

    # -- measurement hooks --------------------------------------------------
    def extra_memory(self, a: np.ndarray, b: np.ndarray) -> MemoryUse:
        # NumPy reports every data buffer to tracemalloc, so its peak counts the
        # temporaries exactly (objects Python allocates for the call are noise).
        was_tracing = tracemalloc.is_tracing()
        if not was_tracing:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            out = self.mul_sum(a, b)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            if not was_tracing:
                tracemalloc.stop()
        return MemoryUse(out, max(0, peak - before - out.nbytes), "tracemalloc peak (NumPy data buffers)")

    def host_view(self, x: np.ndarray) -> np.ndarray:
        return x

    def floor_kernels(self) -> dict[str, Callable[[Any, Any], Any]]:
        threads = cpu_count()
        return {
            f"np.dot ({_blas_description()})": lambda x, y: np.dot(x.ravel(), y.ravel()),
            # BLAS is one implementation; np.einsum's own SIMD loop on every core is another.
            f"np.einsum dot in {threads} row chunks on {threads} threads": functools.partial(
                _threaded_einsum_dot, threads=threads
            ),
        }

    def fix_cpu_threads(self, threads: int) -> None:
        threadpoolctl = _threadpoolctl()
        if threadpoolctl is not None:
            threadpoolctl.threadpool_limits(limits=threads, user_api="blas")

    def thread_report(self) -> dict[str, Any]:
        return {
            "blas": _blas_description(),
            "einsum": "single-threaded (NumPy's einsum and ufunc loops run on one thread)",
        }

    def _compute(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
        return numpy_mul_sum(a, b, plan)

    def kernel(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> Callable[[Any, Any], Any]:
        # Same dtype and shape, nothing to cast or broadcast: np.einsum itself,
        # so that dispatch adds nothing to a tiny call.
        direct = (
            a.shape == b.shape == plan.full_shape
            and a.ndim > 1
            and plan.n > 0
            and a.dtype == b.dtype == numpy_dtype(plan.out_dtype)
            and plan.acc_dtype == plan.out_dtype
        )
        return functools.partial(np.einsum, "i...,i...->...") if direct else super().kernel(a, b, plan)


def numpy_mul_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """The NumPy strategy on validated NumPy inputs (``torch-numpy`` and ``jax-numpy`` run it on views)."""
    return accumulated_mul_sum(a, b, plan).astype(numpy_dtype(plan.out_dtype), copy=False)


def accumulated_mul_sum(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    """The NumPy strategy's sum, left in ``plan.acc_dtype`` (dask sums these per chunk)."""
    a, b = broadcast_inputs(a, b, plan)
    if plan.acc_dtype == plan.out_dtype:
        return np.asarray(np.einsum("i...,i...->...", a, b))
    return _upcast_by_blocks(a, b, plan)


def _upcast_by_blocks(a: np.ndarray, b: np.ndarray, plan: Plan) -> np.ndarray:
    acc_dtype = numpy_dtype(plan.acc_dtype)
    acc = np.zeros(plan.out_shape, dtype=acc_dtype)
    row_elements = max(1, int(np.prod(plan.out_shape)))
    rows = max(1, _UPCAST_BLOCK_ELEMENTS // row_elements)
    for start in range(0, plan.n, rows):
        block = slice(start, start + rows)
        acc += np.einsum("i...,i...->...", a[block].astype(acc_dtype), b[block].astype(acc_dtype))
    return acc


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _threaded_einsum_dot(x: np.ndarray, y: np.ndarray, *, threads: int) -> float:
    """The dot of flattened ``x`` and ``y`` as ``threads`` chunk dots (np.einsum releases the GIL), summed."""
    x, y = x.reshape(-1), y.reshape(-1)
    pool = _POOLS.get(threads) or _POOLS.setdefault(threads, ThreadPoolExecutor(threads, "xbackend-floor"))
    bounds = np.linspace(0, x.size, threads + 1, dtype=np.int64)
    chunks = [(x[lo:hi], y[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return float(sum(pool.map(lambda pair: np.einsum("i,i->", *pair), chunks)))


def _threadpoolctl() -> Any:
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


def _blas_description() -> str:
    """NumPy's BLAS library and its thread count, via threadpoolctl."""
    threadpoolctl = _threadpoolctl()
    if threadpoolctl is None:
        return "BLAS threads unknown: threadpoolctl is not installed"
    libraries = [info for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    # Other frameworks may load their own BLAS; NumPy's lives in NumPy's wheel.
    own = [info for info in libraries if "numpy" in info["filepath"]] or libraries
    if not own:
        return "no BLAS library found by threadpoolctl"
    info = own[0]
    return (
        f"{info['internal_api']} {info['version']}, {info['num_threads']} threads ({info.get('threading_layer', '?')})"
    )


LIBRARY = Library(
    name="numpy",
    strategies=(NumpyAdapter,),
    default_strategy="numpy",
    devices={"cpu": "cpu"},
    device_kind=host_device,
    # NumPy scalars count as NumPy so that dispatch can refuse them by name.
    array_types=(("numpy", "ndarray"), ("numpy", "generic")),
    floor_strategy="numpy",
    distributions=("numpy",),
)
