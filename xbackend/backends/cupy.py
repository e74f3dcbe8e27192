"""CuPy: ``cupy``, ``cupy.sum(a * b, axis=0)`` with the accumulation dtype made explicit."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.dtypes import SUPPORTED_DTYPES, numpy_dtype, numpy_dtype_name
from ..core.errors import UnsupportedDtypeError
from ..core.probes import DeviceEventTimer, MemoryUse, Timer, gpu_l2_cache_bytes
from ..core.semantics import Plan
from ..core.shapes import strided_partials_layout, sum_strided_partials
from .base import Adapter, Library


def _cupy() -> Any:
    return importlib.import_module("cupy")


class CupyAdapter(Adapter):
    framework = "cupy"
    devices = ("cuda",)
    install_hint = "pip install cupy-cuda12x (or cupy-cuda13x, matching your CUDA driver)"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.cupy = _cupy()

    @classmethod
    def distribution(cls) -> str:
        import importlib.metadata

        for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"):
            try:
                importlib.metadata.version(dist)
                return dist
            except importlib.metadata.PackageNotFoundError:
                continue
        return "cupy"

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        cupy = _cupy()
        try:
            count = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDARuntimeError when no driver is loaded
            return f"no CUDA device ({type(exc).__name__}: {exc})"
        return None if count > 0 else "no CUDA device"

    def unsupported_dtypes(self) -> frozenset[str]:
        return frozenset({"bfloat16"})

    def unsupported_dtype_reason(self, dtype: str) -> str:
        # CuPy 14 has only minimal bfloat16 support (no reductions checked here): refused until tested.
        return f"cupy does not compute in {dtype} (CuPy's bfloat16 support is minimal); use float16 or float32"

    def asarray(self, host: np.ndarray) -> Any:
        dtype = numpy_dtype_name(host.dtype)
        if dtype in CupyAdapter.unsupported_dtypes(self):  # what CuPy cannot hold, not what a strategy refuses
            raise UnsupportedDtypeError(CupyAdapter.unsupported_dtype_reason(self, dtype))
        return self.cupy.asarray(host)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.cupy.asnumpy(x)

    def synchronize(self, *arrays: Any) -> None:
        self.cupy.cuda.get_current_stream().synchronize()

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.cupy.ndarray)

    def dtype_name(self, x: Any) -> str:
        return numpy_dtype_name(x.dtype)

    def device_of(self, x: Any) -> str:
        return f"cuda:{x.device.id}"

    def _zeros(self, plan: Plan, like: Any) -> Any:
        with like.device:  # CuPy allocates on the current device, which need not be the input's
            return self.cupy.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))

    # -- measurement hooks --------------------------------------------------
    def timer(self) -> Timer:
        cuda = self.cupy.cuda
        return DeviceEventTimer(
            cuda.Event(), cuda.Event(), cuda.get_elapsed_time, "CUDA events (cupy.cuda.Event) around the call"
        )

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        # The pool's used_bytes() is not a peak: a hook keeps a running maximum.
        self.synchronize()
        hook = _peak_hook(self.cupy)
        with hook:
            out = self.mul_sum(a, b)
            self.synchronize()
        extra = hook.peak - out.nbytes
        return MemoryUse(out, max(0, extra), "cupy MemoryHook running max of pool allocations (512-byte rounded)")

    def floor_kernels(self) -> dict[str, Callable[[Any, Any], Any]]:
        # Not cupy.dot: with CuPy's default CUB accelerator a 1-d dot runs (a*b).sum(),
        # writing and re-reading the product (half of a one-pass read, measured on an H200).
        cublas = importlib.import_module("cupy.cublas")
        return {"cupy.cublas.dot (cuBLAS)": lambda x, y: cublas.dot(x.ravel(), y.ravel())}

    def cache_bytes(self) -> int | None:
        return gpu_l2_cache_bytes()

    def device_description(self) -> str:
        device_id = self.cupy.cuda.Device().id
        name = self.cupy.cuda.runtime.getDeviceProperties(device_id)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)

    def release_memory(self) -> None:
        self.cupy.get_default_memory_pool().free_all_blocks()


def _peak_hook(cupy: Any) -> Any:
    """A MemoryHook counting bytes taken from the pool, with the peak since it was made."""

    class PeakHook(cupy.cuda.MemoryHook):
        name = "xbackend-peak"

        def __init__(self) -> None:
            self.current = 0
            self.peak = 0

        def malloc_postprocess(self, device_id: int, size: int, mem_size: int, mem_ptr: int, pmem_id: int) -> None:
            self.current += mem_size
            self.peak = max(self.peak, self.current)

        def free_postprocess(self, device_id: int, mem_size: int, mem_ptr: int, pmem_id: int) -> None:
            self.current -= mem_size

    return PeakHook()


class CupyEager(CupyAdapter):
    name = "cupy"
    formulation = "cupy.sum(a * b, axis=0, dtype=<accumulation dtype>)"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        dtype, product_dtype = numpy_dtype(plan.out_dtype), numpy_dtype(plan.product_dtype)
        product = a.astype(product_dtype, copy=False) * b.astype(product_dtype, copy=False)
        out = self.cupy.sum(product, axis=0, dtype=numpy_dtype(plan.acc_dtype))
        return out.astype(dtype, copy=False)


class CupyFused(CupyAdapter):
    """``cupy-fused``: one ``cupy.ReductionKernel`` that multiplies and sums in a single pass (cupy#2010).

    ``cupy.sum(a * b)`` writes the N x K product to device memory and reads it
    back: three passes instead of two reads. The fused kernel reads each pair
    once, multiplies in the output array's type, which is the accumulation
    dtype (float32 for float16: half products are exact there, as in the other
    strategies; ``static_cast`` back to it, so integers wrap after C's
    promotion to int) and accumulates in that type. How fast CuPy's generic reduction walks a dim-0
    (strided) reduction depends on its block layout; measured only on a GPU
    machine.
    """

    name = "cupy-fused"
    formulation = "cupy.ReductionKernel('T x, T y', 'A z', 'A(A(x) * A(y))', 'a + b', 'z = a', '0') over axis 0, A = accumulation dtype"

    def _reduction(self) -> Any:
        kernel = getattr(type(self), "_kernel", None)
        if kernel is None:
            kernel = self.cupy.ReductionKernel(
                "T x, T y",
                "A z",
                "static_cast<A>(static_cast<A>(x) * static_cast<A>(y))",
                "a + b",
                "z = a",
                "0",
                "xbackend_mul_sum",
            )
            type(self)._kernel = kernel
        return kernel

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        dtype = numpy_dtype(plan.out_dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        a, b = self.cupy.broadcast_to(a, plan.full_shape), self.cupy.broadcast_to(b, plan.full_shape)
        acc_dtype = numpy_dtype(plan.acc_dtype)
        splits = _row_splits(plan, a, b)
        if splits == 1:
            acc = self.cupy.empty(plan.out_shape, dtype=acc_dtype)
            self._reduction()(a, b, out=acc, axis=0)
            return acc.astype(dtype, copy=False)
        # Few outputs (tall-skinny, column): one reduction per output would leave
        # most of the GPU idle (10 GB/s measured on an H200), so dim 0 is split
        # into ``splits`` slabs reduced side by side, then their partial sums.
        rows = plan.n // splits
        body = splits * rows
        partials = self.cupy.empty((splits, *plan.out_shape), dtype=acc_dtype)
        shape = (splits, rows, *plan.out_shape)
        self._reduction()(a[:body].reshape(shape), b[:body].reshape(shape), out=partials, axis=1)
        acc = partials.sum(axis=0, dtype=acc_dtype)
        if body < plan.n:
            rest = self.cupy.empty(plan.out_shape, dtype=acc_dtype)
            self._reduction()(a[body:], b[body:], out=rest, axis=0)
            acc += rest
        return acc.astype(dtype, copy=False)


# Split dim 0 until about this many partial sums run side by side, keeping at
# least MIN_SPLIT_ROWS rows per slab so the partials stay a small second pass.
TARGET_PARTIALS = 8192
MIN_SPLIT_ROWS = 256


def _row_splits(plan: Plan, a: Any, b: Any) -> int:
    """How many slabs of rows ``cupy-fused`` reduces side by side (1: no split).

    Only C-contiguous inputs with a real dim 0 are split: their slabs are views.
    """
    outputs = max(1, int(np.prod(plan.out_shape)))
    if outputs >= TARGET_PARTIALS or not (a.flags.c_contiguous and b.flags.c_contiguous):
        return 1
    return max(1, min(-(-TARGET_PARTIALS // outputs), plan.n // MIN_SPLIT_ROWS))


class CupyRaw(CupyFused):
    """``cupy-raw``: one hand-written CUDA kernel (``cupy.RawModule``) of strided partial sums, then their sum.

    CuPy's reductions (``cupy.sum``, ``cupy-fused``'s ``ReductionKernel``) walk a
    dim-0 reduction with one thread per output reading down a column, so a
    warp's loads touch 32 rows: about half of the device's bandwidth on an
    H200. Here lane ``l`` of ``L = K x R`` lanes (``core.shapes.strided_partials_layout``,
    ``GPU_LANES_PER_SM`` lanes per SM) sums ``a.flat[l::L] * b.flat[l::L]``: one column
    per lane, neighbouring lanes on neighbouring addresses, for every K. The
    R x K partial sums (float32 for float16 inputs) are then summed by
    ``cupy.sum``: a second pass over < 1% of a large input. With few outputs
    (``GPU_FEW_OUTPUTS``) they are stored K x R, so that CUB sums contiguous
    rows: CuPy's dim-0 reduction of 540k x 1 partials took longer than the kernel. Products and sums
    are rounded one by one (``__fmul_rn`` / ``__fadd_rn``: no fused multiply-add).
    C-contiguous inputs of the result's dtype and shape take the kernel; other
    layouts (broadcast, strided, mixed dtypes) run ``cupy-fused``'s reduction.
    float16, float32 and float64 only.
    """

    name = "cupy-raw"
    formulation = (
        "RawModule kernel: lane l of L = K*R lanes sums a.flat[l::L] * b.flat[l::L] (coalesced for any K), "
        "then cupy.sum of the R x K partials; other layouts as cupy-fused"
    )

    def unsupported_dtypes(self) -> frozenset[str]:
        return frozenset(SUPPORTED_DTYPES) - frozenset(_RAW_KERNEL_TYPES)

    def unsupported_dtype_reason(self, dtype: str) -> str:
        computed = ", ".join(_RAW_KERNEL_TYPES)
        return f"cupy-raw computes {computed} only (its kernel is written per dtype); use cupy-fused for {dtype}"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        dtype = numpy_dtype(plan.out_dtype)
        flat = all(x.dtype == dtype and x.shape == plan.full_shape and x.flags.c_contiguous for x in (a, b))
        if not flat:
            return super()._compute(a, b, plan)
        k = int(np.prod(plan.out_shape))
        if k == 0:
            return self._zeros(plan, a)
        groups, transposed = strided_partials_layout(plan.n, k, _multiprocessors(self.cupy, a.device.id))
        step = groups * k
        acc_dtype = numpy_dtype(plan.acc_dtype)
        partials = self.cupy.empty(step, dtype=acc_dtype)
        blocks = -(-step // RAW_THREADS)
        with a.device:  # the kernel runs on the current device
            kernel = _raw_kernel(self.cupy, plan.out_dtype)
            arguments = (a, b, partials, np.int64(a.size), np.int64(k), np.int64(groups), np.int32(transposed))
            kernel((blocks,), (RAW_THREADS,), arguments)
        acc = sum_strided_partials(partials, k, groups, transposed, acc_dtype)
        return acc.reshape(plan.out_shape).astype(dtype, copy=False)


RAW_THREADS = 256
# One kernel per dtype, each its own module: a compile error in one leaves the others.
_RAW_SOURCE = r"""
{prelude}
extern "C" __global__ void xbackend_partials(
    const {storage}* __restrict__ a, const {storage}* __restrict__ b, {acc}* __restrict__ partials,
    long long total, long long k, long long groups, int transposed)
{{
    long long step = k * groups;
    long long lane = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (lane >= step) return;
    {acc} sum = 0;
#pragma unroll {unroll}
    for (long long i = lane; i < total; i += step) {{
        sum = {add}(sum, {mul}({load}(a[i]), {load}(b[i])));
    }}
    // Transposed (few outputs): lane l holds row l / k of column l % k, stored K x R.
    partials[transposed ? (lane % k) * groups + lane / k : lane] = sum;
}}
"""
# No cuda_fp16.h needed: PTX converts a half's bits to float exactly.
_HALF_TO_FLOAT = r"""
__device__ __forceinline__ float xbackend_half_to_float(unsigned short bits) {
    float value;
    asm("cvt.f32.f16 %0, %1;" : "=f"(value) : "h"(bits));
    return value;
}
"""
_RAW_KERNEL_TYPES: dict[str, dict[str, str]] = {
    "float16": {
        "prelude": _HALF_TO_FLOAT,
        # Twice float32's rows per unrolled trip: the same bytes of loads in flight per lane.
        "unroll": "8",
        "storage": "unsigned short",
        "acc": "float",
        "load": "xbackend_half_to_float",
        "mul": "__fmul_rn",
        "add": "__fadd_rn",
    },
    "float32": {
        "prelude": "",
        "unroll": "4",
        "storage": "float",
        "acc": "float",
        "load": "",
        "mul": "__fmul_rn",
        "add": "__fadd_rn",
    },
    "float64": {
        "prelude": "",
        "unroll": "4",
        "storage": "double",
        "acc": "double",
        "load": "",
        "mul": "__dmul_rn",
        "add": "__dadd_rn",
    },
}


def raw_kernel_source(dtype: str) -> str:
    """The CUDA C source of ``cupy-raw``'s kernel for ``dtype``."""
    return _RAW_SOURCE.format(**_RAW_KERNEL_TYPES[dtype])


@functools.cache
def _raw_kernel(cupy: Any, dtype: str) -> Any:
    return cupy.RawModule(code=raw_kernel_source(dtype)).get_function("xbackend_partials")


@functools.cache
def _multiprocessors(cupy: Any, device_id: int) -> int:
    return int(cupy.cuda.Device(device_id).attributes["MultiProcessorCount"])


def _device_kind(x: Any) -> str:
    return "cuda"


def _device_id(x: Any) -> int:
    # cupy.cuda.Device compares by id but defines no __hash__, so it cannot key a cache.
    return x.device.id


LIBRARY = Library(
    name="cupy",
    strategies=(CupyEager, CupyFused, CupyRaw),
    default_strategy="cupy",
    devices={"cuda": "gpu"},
    device_kind=_device_kind,
    device_key=_device_id,
    array_types=(("cupy", "ndarray"),),
    floor_strategy="cupy",
    distributions=("cupy-cuda13x", "cupy-cuda12x", "cupy"),
)
