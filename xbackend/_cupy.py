"""CuPy: ``cupy``, ``cupy.sum(a * b, axis=0)`` with the accumulation dtype made explicit."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ._adapter import Adapter
from ._errors import UnsupportedDtypeError
from ._numpy import numpy_dtype, numpy_dtype_name
from ._probes import DeviceEventTimer, MemoryUse, Timer
from ._semantics import Plan


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
        return f"cupy has no {dtype} arrays"

    def asarray(self, host: np.ndarray) -> Any:
        dtype = numpy_dtype_name(host.dtype)
        if dtype in self.unsupported_dtypes():
            raise UnsupportedDtypeError(self.unsupported_dtype_reason(dtype))
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

    def _zeros(self, plan: Plan) -> Any:
        return self.cupy.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))

    # -- measurement hooks --------------------------------------------------
    def timer(self) -> Timer:
        cuda = self.cupy.cuda
        return DeviceEventTimer(cuda.Event(), cuda.Event(), cuda.get_elapsed_time, "CUDA events (cupy.cuda.Event) around the call")

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        # The pool's used_bytes() is not a peak: a hook keeps a running maximum.
        self.synchronize()
        hook = _peak_hook(self.cupy)
        with hook:
            out = self.mul_sum(a, b)
            self.synchronize()
        extra = hook.peak - out.nbytes
        return MemoryUse(out, max(0, extra), "cupy MemoryHook running max of pool allocations (512-byte rounded)")

    def floor_dot(self, x: Any, y: Any) -> Any:
        return self.cupy.dot(x.ravel(), y.ravel())

    def floor_method(self) -> str:
        return "cupy.dot over the flattened inputs (cuBLAS)"

    def cache_bytes(self) -> int | None:
        return int(self.cupy.cuda.Device().attributes["L2CacheSize"])

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
                "T x, T y", "A z",
                "static_cast<A>(static_cast<A>(x) * static_cast<A>(y))",
                "a + b", "z = a", "0",
                "xbackend_mul_sum",
            )
            type(self)._kernel = kernel
        return kernel

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        dtype = numpy_dtype(plan.out_dtype)
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        a, b = self.cupy.broadcast_to(a, plan.full_shape), self.cupy.broadcast_to(b, plan.full_shape)
        acc = self.cupy.empty(plan.out_shape, dtype=numpy_dtype(plan.acc_dtype))
        self._reduction()(a, b, out=acc, axis=0)
        return acc.astype(dtype, copy=False)
