"""PyTorch: ``torch-eager`` (``torch.sum(a * b, dim=0)``) and ``torch-einsum``.

``torch.einsum('i...,i...->...')`` lowers (ATen ``sumproduct_pair``) to a
permute plus a batched matmul of K (1 x N)(N x 1) products, which runs far below
memory bandwidth for large K (pytorch#32591, #101249); it is kept as a strategy
because it is the idiom people reach for. On CUDA its matmul would use TF32 for
float32 and reduced-precision split-K reductions for float16/bfloat16 when the
global flags allow it, so the call pins full precision for its duration.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator

import numpy as np

from . import _dtypes
from ._adapter import Adapter
from ._numpy import numpy_dtype
from ._semantics import Plan


def _torch() -> Any:
    return importlib.import_module("torch")


class TorchAdapter(Adapter):
    framework = "torch"
    devices = ("cpu", "cuda")
    install_hint = "pip install torch==2.13.0 (CPU) or a CUDA build from pytorch.org"

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.torch = _torch()

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        torch = _torch()
        if device == "cuda" and not torch.cuda.is_available():
            return f"no CUDA device (torch {torch.__version__} built for CUDA {torch.version.cuda})"
        return None

    def torch_dtype(self, name: str) -> Any:
        return getattr(self.torch, name)

    def asarray(self, host: np.ndarray) -> Any:
        host = np.require(host, requirements="C")  # ascontiguousarray would turn 0-d into 1-d
        if host.dtype == numpy_dtype("bfloat16"):
            # torch.from_numpy has no bfloat16: move the bits as int16, then reinterpret.
            bits = self.torch.from_numpy(host.view(np.int16))
            return bits.to(self.device).view(self.torch.bfloat16)
        return self.torch.from_numpy(host).to(self.device, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        x = x.detach().cpu()
        if x.dtype == self.torch.bfloat16:
            return x.view(self.torch.int16).numpy().view(numpy_dtype("bfloat16"))
        return x.numpy()

    def synchronize(self, *arrays: Any) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.torch.Tensor)

    def dtype_name(self, x: Any) -> str:
        return str(x.dtype).removeprefix("torch.")

    def device_of(self, x: Any) -> str:
        return str(x.device)

    def _zeros(self, plan: Plan) -> Any:
        return self.torch.zeros(plan.out_shape, dtype=self.torch_dtype(plan.out_dtype), device=self.device)

    def _cast(self, a: Any, b: Any, plan: Plan) -> tuple[Any, Any]:
        dtype = self.torch_dtype(plan.out_dtype)
        return a.to(dtype), b.to(dtype)


class TorchEager(TorchAdapter):
    name = "torch-eager"
    formulation = "torch.sum(a * b, dim=0, dtype=<accumulation dtype>)"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        a, b = self._cast(a, b, plan)
        # dtype= keeps integers from widening to int64 and makes half precision
        # accumulate in float32.
        out = self.torch.sum(a * b, dim=0, dtype=self.torch_dtype(plan.acc_dtype))
        return out.to(self.torch_dtype(plan.out_dtype))


class TorchEinsum(TorchAdapter):
    name = "torch-einsum"
    formulation = "torch.einsum('i...,i...->...', a, b), full-precision matmul pinned on CUDA"

    def unsupported_dtypes(self) -> frozenset[str]:
        # CUDA's bmm has no integer kernels.
        return frozenset(_dtypes.INTEGERS) if self.device == "cuda" else frozenset()

    def _unsupported_dtype_message(self, dtype: str) -> str:
        return (
            f"torch-einsum on cuda does not support {dtype}: torch.einsum lowers to "
            "bmm, which has no integer kernel on CUDA; use torch-eager"
        )

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        a, b = self._cast(a, b, plan)
        # einsum cannot broadcast the contracted label from 1 to N: expand (views).
        a, b = a.expand(plan.full_shape), b.expand(plan.full_shape)
        with self._full_precision_matmul():
            return self.torch.einsum("i...,i...->...", a, b)

    @contextlib.contextmanager
    def _full_precision_matmul(self) -> Iterator[None]:
        if self.device != "cuda":
            yield
            return
        matmul = self.torch.backends.cuda.matmul
        saved = (
            matmul.fp32_precision,
            matmul.allow_fp16_reduced_precision_reduction,
            matmul.allow_bf16_reduced_precision_reduction,
        )
        matmul.fp32_precision = "ieee"
        matmul.allow_fp16_reduced_precision_reduction = False
        matmul.allow_bf16_reduced_precision_reduction = False
        try:
            yield
        finally:
            (
                matmul.fp32_precision,
                matmul.allow_fp16_reduced_precision_reduction,
                matmul.allow_bf16_reduced_precision_reduction,
            ) = saved
