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
import ctypes
import functools
import importlib
import importlib.util
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..core import dtypes as _dtypes
from ..core.cache import LRUCache
from ..core.dtypes import numpy_dtype
from ..core.probes import DeviceEventTimer, HostTimer, MemoryUse, Timer, gpu_l2_cache_bytes
from ..core.semantics import Plan, plan_mul_sum
from ..core.shapes import strided_partials_layout, sum_strided_partials
from .base import Adapter, Library
from .numpy import NumbaKernel, numba_threaded_mul_sum, threaded_mul_sum

# torch-compile executables kept per adapter (least recently used evicted); only
# inputs of 1 MiB and more compile, so churn over small shapes adds none.
COMPILED_CACHE_SIZE = 32


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
        # Copied, never a view of ``host``: torch.from_numpy would also warn on a read-only array.
        if host.dtype == numpy_dtype("bfloat16"):
            # torch has no NumPy bfloat16: move the bits as int16, then reinterpret.
            bits = self.torch.asarray(host.view(np.int16), device=self.device, copy=True)
            return bits.view(self.torch.bfloat16)
        return self.torch.asarray(host, device=self.device, copy=True)

    def to_numpy(self, x: Any) -> np.ndarray:
        return self.host_view(x.detach().cpu())

    def host_view(self, x: Any) -> np.ndarray | None:
        # Each torch call here costs 10-30 us right after a streaming kernel has evicted
        # the interpreter's caches: only the calls this tensor needs are made.
        if not x.is_cpu:
            return None
        if x.requires_grad:
            x = x.detach()
        x = _resolved(x)
        if x.dtype == self.torch.bfloat16:
            # NumPy has no bfloat16 of its own: view the bits, then reinterpret as ml_dtypes'.
            return x.view(self.torch.int16).numpy().view(numpy_dtype("bfloat16"))
        return x.numpy()

    def from_host_view(self, view: np.ndarray) -> Any | None:
        if self.device != "cpu" or view.dtype == numpy_dtype("bfloat16"):
            return None
        with warnings.catch_warnings():
            # A JAX buffer's view is read-only; the floor kernels only read it.
            warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
            try:
                return self.torch.from_numpy(view)
            except (TypeError, ValueError):  # a dtype torch lacks, another byte order, a negative stride
                return None

    def synchronize(self, *arrays: Any) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.torch.Tensor)

    def dtype_name(self, x: Any) -> str:
        return _dtype_name(x)

    def device_of(self, x: Any) -> str:
        return str(x.device)

    def _zeros(self, plan: Plan, like: Any) -> Any:
        # The input's own device: the adapter's ("cuda") is the current one, which need not be it.
        return self.torch.zeros(plan.out_shape, dtype=self.torch_dtype(plan.out_dtype), device=like.device)

    def _cast(self, a: Any, b: Any, plan: Plan) -> tuple[Any, Any]:
        """Both inputs in the dtype their products are formed in (float32 for float16 / bfloat16)."""
        dtype = self.torch_dtype(plan.product_dtype)
        return a.to(dtype), b.to(dtype)

    def _eager(self, a: Any, b: Any, plan: Plan) -> Any:
        """``torch.sum(a * b, 0)`` in torch ops only: what every strategy runs when autograd or a transform watches.

        Its gradient is torch's own for ``torch.sum(a * b, 0)`` by construction
        (complex: ``grad_a = sum-reduce(grad_out * conj(b))``, reduced over
        broadcast dimensions), and torch.func (grad, vmap, jacrev, jvp),
        double backward, forward AD and dynamo all see through it.
        """
        return _compiled_kernel(a, b, self.torch_dtype(plan.out_dtype), self.torch_dtype(plan.acc_dtype))

    def _empty(self, a: Any, b: Any, plan: Plan) -> Any:
        # The eager formulation's empty sum is zeros with a grad_fn: backward() through it works.
        return self._eager(a, b, plan) if self._transformed(a, b) else self._zeros(plan, a)

    def _transformed(self, a: Any, b: Any) -> bool:
        """Whether autograd, torch.func, forward AD or torch.compile must see this call's operations.

        Then only torch ops may run: a NumPy forward silently drops the graph
        (and functorch tensors have no storage to view), ``out=`` kernels
        refuse inputs that require grad, and a nested compiled call breaks
        dynamo's graph and double backward. ``inference_mode`` and ``no_grad``
        leave it False (the fast forward is correct there). About 0.4 us;
        strategies that are differentiable themselves never ask.
        """
        torch = self.torch
        return (
            ((a.requires_grad or b.requires_grad) and torch.is_grad_enabled())
            or torch._C._are_functorch_transforms_active()
            or torch.autograd.forward_ad._current_level >= 0
            or torch.compiler.is_compiling()
        )

    # -- measurement hooks --------------------------------------------------
    def timer(self) -> Timer:
        if self.device == "cuda":
            event = functools.partial(self.torch.cuda.Event, enable_timing=True)
            return DeviceEventTimer(
                event(),
                event(),
                lambda start, end: start.elapsed_time(end),
                "CUDA events (torch.cuda.Event) around the call",
            )
        if not openmp_workers_spin(self.torch):
            return super().timer()
        pool_op = self.torch.ones(SPINNING_POOL_ELEMENTS, dtype=self.torch.float32, device="cpu")
        return HostTimer(
            self.synchronize,
            "host perf_counter around call + synchronize, each call right after a parallel torch op "
            "(torch's OpenMP workers still spinning, as in a torch program)",
            prelude=lambda: pool_op.mul_(1.0),
        )

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        if self.device != "cuda":
            return super().extra_memory(a, b)
        cuda = self.torch.cuda
        cuda.synchronize()
        cuda.reset_peak_memory_stats()
        before = cuda.memory_allocated()
        out = self.mul_sum(a, b)
        cuda.synchronize()
        extra = cuda.max_memory_allocated() - before - out.nbytes
        return MemoryUse(out, max(0, extra), "torch.cuda.max_memory_allocated after reset_peak_memory_stats")

    def floor_kernels(self) -> dict[str, Callable[[Any, Any], Any]]:
        library = "cuBLAS" if self.device == "cuda" else f"{self.torch.get_num_threads()} threads"
        return {f"torch.dot ({library})": lambda x, y: self.torch.dot(x.reshape(-1), y.reshape(-1))}

    def cache_bytes(self) -> int | None:
        return gpu_l2_cache_bytes() if self.device == "cuda" else super().cache_bytes()

    def device_description(self) -> str:
        if self.device != "cuda":
            return super().device_description()
        return self.torch.cuda.get_device_name(self.torch.cuda.current_device())

    honours_cpu_threads = True

    def fix_cpu_threads(self, threads: int) -> None:
        self.torch.set_num_threads(threads)

    def thread_report(self) -> dict[str, Any]:
        return {
            "intra-op threads": self.torch.get_num_threads(),
            "inter-op threads": self.torch.get_num_interop_threads(),
            "OpenMP workers after an op": (
                "spin (GNU OpenMP's active wait): cells timed right after a torch op"
                if openmp_workers_spin(self.torch)
                else "sleep (passive wait, or no workers)"
            ),
        }

    def release_memory(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.empty_cache()


# After each parallel region, GNU OpenMP's workers wait actively (GOMP_SPINCOUNT
# iterations of PAUSE: milliseconds on recent x86), each holding a core. A call that
# runs its own threads meets them in any torch program: on the 2-vCPU Xeon VM a
# float32 16e6 x 1 torch-numba call so timed took 9.1 ms, against 5.3 with the workers
# asleep (OMP_WAIT_POLICY=PASSIVE), while torch-einsum's dot, on the workers
# themselves, read 0.88 of the floor (docs/results/compare-cpu-torch-*.json). So
# torch's CPU cells are timed right after such an op (TorchAdapter.timer) where the
# workers spin. The environment is read when the timer is made; the OpenMP runtime
# read it when torch loaded, so set it before starting Python.
SPINNING_POOL_ELEMENTS = 1 << 17  # 4 x ATen's grain size: a parallel region on every thread


def openmp_workers_spin(torch: Any) -> bool:
    """Whether torch's CPU ops leave OpenMP workers spinning after them (on >= 2 threads).

    GNU OpenMP spins ``GOMP_SPINCOUNT`` rounds where it is set, else none under
    ``OMP_WAIT_POLICY=PASSIVE``; LLVM's and Intel's OpenMP spin for
    ``KMP_BLOCKTIME`` (0: none) unless the policy is passive.
    """
    if torch.get_num_threads() < 2 or not _openmp_backend(torch):
        return False
    setting = {
        name: os.environ.get(name, "").strip().lower()
        for name in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")
    }
    if setting["GOMP_SPINCOUNT"]:
        return setting["GOMP_SPINCOUNT"] != "0"
    return setting["OMP_WAIT_POLICY"] != "passive" and setting["KMP_BLOCKTIME"] != "0"


@functools.cache
def _openmp_backend(torch: Any) -> bool:
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


class TorchEager(TorchAdapter):
    name = "torch-eager"
    formulation = "torch.sum(a * b, dim=0, dtype=<accumulation dtype>)"

    # Differentiable and traceable as it stands: no check of autograd or transforms.
    _compute = TorchAdapter._eager


class TorchEinsum(TorchAdapter):
    name = "torch-einsum"
    formulation = (
        "torch.einsum('i...,i...->...', a, b), full-precision matmul pinned on CUDA; complex: one real einsum "
        "of the (real, imag) pairs (a complex matmul's alpha = 1+0j turns infinities into NaN)"
    )
    # ATen's CPU matmul keeps one float32 running sum per output wherever K > 1 or a column
    # is strided or expanded (2e7 x 4 ones sum to 2**24 per column; docs/adapters.md).
    serial_sum_devices = ("cpu",)

    def unsupported_dtypes(self) -> frozenset[str]:
        # CUDA's bmm has no integer kernels.
        return frozenset(_dtypes.INTEGERS) if self.device == "cuda" else frozenset()

    def unsupported_dtype_reason(self, dtype: str) -> str:
        return (
            f"torch-einsum on cuda does not support {dtype}: torch.einsum lowers to "
            "bmm, which has no integer kernel on CUDA; use torch-eager"
        )

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        a, b = self._cast(a, b, plan)
        # einsum cannot broadcast the contracted label from 1 to N: expand (views).
        a, b = a.expand(plan.full_shape), b.expand(plan.full_shape)
        with self._autocast_off(), self._full_precision_matmul():
            if a.is_complex():
                return self._complex_einsum(a, b)
            return self.torch.einsum("i...,i...->...", a, b).to(self.torch_dtype(plan.out_dtype))

    def _complex_einsum(self, a: Any, b: Any) -> Any:
        """The complex sum from one real einsum of the (real, imag) pairs: the 2 x 2 sums of component products.

        A complex batched matmul scales its result by ``alpha = 1+0j``, and
        ``(1+0j) * (nan+infj)`` is ``nan+nanj``: one infinite product would turn
        the whole sum into NaN where the exact sum (the oracle) is ``nan+infj``.
        Real matmuls keep IEEE infinities, and the error stays within the bound
        (each component is two sums of N products and one subtraction).
        """
        torch = self.torch
        pairs = torch.einsum("i...c,i...d->...cd", torch.view_as_real(_resolved(a)), torch.view_as_real(_resolved(b)))
        return torch.complex(pairs[..., 0, 0] - pairs[..., 1, 1], pairs[..., 0, 1] + pairs[..., 1, 0])

    def _autocast_off(self) -> contextlib.AbstractContextManager[Any]:
        """Under ``torch.autocast`` einsum's bmm would run in float16 / bfloat16 (on the CPU too): a float32 sum of
        98748 came back inf; the shared semantics fix the dtype whatever the caller's autocast region."""
        if self.torch.is_autocast_enabled(self.device):
            return self.torch.autocast(self.device, enabled=False)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _full_precision_matmul(self) -> Iterator[None]:
        if self.device != "cuda":
            yield
            return
        torch = self.torch
        matmul = torch.backends.cuda.matmul
        # set_float32_matmul_precision writes torch's legacy and new TF32 settings
        # together: setting only the new fp32_precision leaves a legacy
        # allow_tf32=True beside it, and torch then refuses to read either.
        saved = (
            torch.get_float32_matmul_precision(),
            matmul.allow_fp16_reduced_precision_reduction,
            matmul.allow_bf16_reduced_precision_reduction,
        )
        torch.set_float32_matmul_precision("highest")
        matmul.allow_fp16_reduced_precision_reduction = False
        matmul.allow_bf16_reduced_precision_reduction = False
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(saved[0])
            matmul.allow_fp16_reduced_precision_reduction = saved[1]
            matmul.allow_bf16_reduced_precision_reduction = saved[2]


class TorchNumpy(TorchAdapter):
    """``torch-numpy``: the numpy-threads strategy on zero-copy NumPy views of CPU tensors.

    Fast because ``np.einsum`` streams both inputs once with no N x K temporary,
    while ``torch.sum(a * b)`` writes and re-reads an N x K product and torch's
    einsum runs a batched matmul of K tiny products. One thread reads about half
    of what the memory system gives two on a 2-vCPU VM, so blocks of rows (or
    columns) run on torch's intra-op thread count (``torch.get_num_threads()``,
    which follows ``OMP_NUM_THREADS`` and ``torch.set_num_threads``) in a Python
    thread pool (``np.einsum`` releases the GIL): one block per thread and one
    hand-off per call, where ``torch-blocked``'s many short OpenMP regions each
    wait at a barrier for a thread that another process may have descheduled.
    ``Tensor.numpy()`` and ``torch.from_numpy`` share memory, so only the
    K-element result (and T x K partial sums) is new. CPU only. Autograd cannot
    see a NumPy computation, so inputs that require grad (and torch.func or
    torch.compile) get the eager formulation (``_transformed``).
    """

    name = "torch-numpy"
    devices = ("cpu",)
    formulation = (
        "np.einsum('i...,i...->...') on zero-copy NumPy views of the tensors in row (or column) blocks on "
        "torch.get_num_threads() threads (the numpy-threads strategy), result wrapped by torch.from_numpy"
    )

    # The NumPy strategy run on the views (numpy-threads' or numpy-numba's).
    host_mul_sum = staticmethod(threaded_mul_sum)

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        if self._transformed(a, b):
            return self._eager(a, b, plan)
        out = self.host_mul_sum(self.host_view(a), self.host_view(b), plan, self.torch.get_num_threads())
        # np.require only where needed: a Python-level call, ~30 us right after a streaming call.
        return self._from_numpy(out if out.flags.c_contiguous else np.require(out, requirements="C"))

    def _from_numpy(self, host: np.ndarray) -> Any:
        if host.dtype == numpy_dtype("bfloat16"):
            if host.ndim == 1 and host.size:  # one torch call, not two (frombuffer takes no empty buffer)
                return self.torch.frombuffer(host, dtype=self.torch.bfloat16)
            return self.torch.from_numpy(host.view(np.int16)).view(self.torch.bfloat16)
        return self.torch.from_numpy(host)


class TorchNumba(NumbaKernel, TorchNumpy):
    """``torch-numba``: numpy-numba's kernel on zero-copy NumPy views of CPU tensors, on torch's own OpenMP workers.

    The blocks run on the team of torch's OpenMP runtime (``torch_openmp_team``),
    the workers every torch op leaves spinning: on threads of its own the kernel
    shared the cores with them. Where torch's CPU ops are not on OpenMP, or its
    runtime is not found, they run on numpy-threads' pool as ``torch-numpy``'s do.
    """

    name = "torch-numba"
    formulation = (
        "the numpy-numba strategy (its numba kernel per block) on "
        "zero-copy NumPy views of the tensors, on torch.get_num_threads() of torch's own OpenMP workers "
        "(GOMP_parallel of torch's runtime; else a thread pool), result wrapped by torch.from_numpy; "
        "a float32 / float64 sum with one output element over two contiguous columns is torch.dot of them"
    )

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        if self._is_one_dot(a, b, plan) and not self._transformed(a, b):
            a, b = _resolved(a), _resolved(b)
            return self.torch.dot(a.reshape(plan.n), b.reshape(plan.n)).reshape(plan.out_shape)
        return super()._compute(a, b, plan)

    def _is_one_dot(self, a: Any, b: Any, plan: Plan) -> bool:
        """A sum with one output element of two contiguous columns of the result dtype.

        torch.dot reads two columns in one BLAS call on torch's threads; numba's
        lane rows and the Python around them read a 16e6 x 1 column at 0.87-0.90
        of its speed in interleaved rounds. Only unit strides: BLAS's sdot keeps
        one or two running sums for any other stride (a stride-0 column of 5e7
        ones summed to 2**24, a stride-2 one to 2**25), where the kernel's lanes
        keep thousands.
        """
        return (
            plan.out_dtype in _DOT_DTYPES
            and 1 < plan.n <= _DOT_MAX_ELEMENTS
            and math.prod(plan.full_shape) == plan.n
            and a.shape[0] == b.shape[0] == plan.n
            and a.stride(0) == b.stride(0) == 1
            and a.dtype == b.dtype == self.torch_dtype(plan.out_dtype)
        )

    def host_mul_sum(self, a: np.ndarray, b: np.ndarray, plan: Plan, threads: int) -> np.ndarray:
        return numba_threaded_mul_sum(a, b, plan, threads, torch_openmp_team(self.torch))

    def _load_team_entry(self, plan: Plan) -> float | None:
        team = torch_openmp_team(self.torch)
        return None if team is None else team.load(numpy_dtype(plan.out_dtype), numpy_dtype(plan.acc_dtype))


# The dtypes whose one-column sums torch-numba hands to torch.dot (BLAS's sdot / ddot).
_DOT_DTYPES = ("float32", "float64")
# Past this many elements ATen's dot leaves BLAS for a serial loop with one running sum.
_DOT_MAX_ELEMENTS = 2**31 - 1


# Where torch's wheels keep the OpenMP runtime their CPU ops run on: beside
# libtorch_cpu, or (auditwheel-repaired wheels) in a sibling ``torch.libs``.
_OPENMP_RUNTIMES = ("libgomp", "libiomp5", "libomp")


# GNU OpenMP does not survive fork: in a child of a process whose team had
# started, a parallel region waits forever for the parent's workers (torch's own
# ops too). A forked child runs torch-numba's blocks on a thread pool of its own.
# Only forks after this module's import are seen: a child that first imports
# xbackend after its parent ran torch ops hangs in torch-numba as in any torch op.
_FORKED_CHILD = []
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _FORKED_CHILD.append(True))


def torch_openmp_team(torch: Any) -> Any:
    """The team of the OpenMP runtime torch's CPU ops run on, for the numba kernel's jobs; None where there is
    none, and in a forked child."""
    return None if _FORKED_CHILD else _find_openmp_team(torch)


@functools.cache
def _find_openmp_team(torch: Any) -> Any:
    """Only a runtime already loaded in this process from torch's own directories counts (``RTLD_NOLOAD``):
    the one whose workers torch's ops leave spinning, never a second copy of the library."""
    if not _openmp_backend(torch) or not hasattr(os, "RTLD_NOLOAD"):
        return None
    home = os.path.dirname(torch.__file__)
    folders = [os.path.join(home, "lib"), os.path.join(os.path.dirname(home), "torch.libs")]
    for folder in folders:
        names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        for name in names:
            if not name.startswith(_OPENMP_RUNTIMES) or ".so" not in name and not name.endswith(".dylib"):
                continue
            try:
                runtime = ctypes.CDLL(os.path.join(folder, name), mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
                kernels = importlib.import_module("xbackend.backends.numba_kernels")
                return kernels.OpenMPTeam(runtime)
            except (OSError, AttributeError):  # not loaded, or not a GNU-compatible runtime
                continue
    return None


class TorchBlocked(TorchAdapter):
    """``torch-blocked``: one cache-sized block of rows at a time, never an N x K temporary.

    ``torch.sum(a * b, 0)`` writes the whole N x K product to memory and reads it
    back: three passes over N x K instead of two reads. Here the blocks are
    ``_block_bytes()`` (at least ``BLOCK_BYTES``; a sixteenth of the last-level
    cache on the CPU, a quarter of the L2 on a GPU, so they never leave the cache).

    - On the CPU, in float32 and float64, each block of rows is multiplied into a
      block-sized buffer and added into an accumulator tile of the same size
      (``torch.mul(a[blk], b[blk], out=buf)``, ``tile.add_(buf)``: the product rounded,
      then the sum, never a fused multiply-add, which ``addcmul_`` is on x86 and
      which would move where an overflowing product turns into inf or NaN), and the
      tile's rows are summed at the end; rows longer than the tile are taken a
      chunk of axis 1 at a time. Two element-wise calls per block, on torch's own
      OpenMP workers rather than beside them (``torch-numba``'s threads share the
      cores with workers that spin after every torch op): 20.7 GB/s against
      torch-numba's 21.1 in a torch program on a 2-vCPU AMD EPYC VM (float32
      4096 x 4096, ``docs/results/compare-cpu-amd.json``), where one ``addcmul_``
      a block read 20-30% more but fused the multiply-add.
    - Elsewhere (half precision, complex, integers; every dtype on a GPU) each block
      is multiplied into one reused buffer in the product dtype and summed into a
      K-element accumulator in the accumulation dtype: two or three ATen calls a block.

    Very wide rows (K beyond the block) are split along K as well. Every layout
    works: slicing dim 0 or axis 1 of any strided tensor is a view.
    """

    name = "torch-blocked"
    formulation = (
        "row blocks of ~LLC/16 (CPU) or L2/4 (GPU), at least BLOCK_BYTES: on the CPU in float32/float64 "
        "torch.mul(a[blk], b[blk], out=buf); tile.add_(buf) into a block-sized tile, then tile.sum(0); otherwise "
        "torch.mul(a[blk], b[blk], out=buf) (buf in the accumulation dtype); acc += buf.sum(0, dtype=<accumulation dtype>)"
    )
    BLOCK_BYTES = 1 << 20
    # The dtypes whose product, accumulator and result share one type: the tile
    # adds the rounded products as they are.
    TILED_DTYPES = ("float32", "float64")

    def _block_bytes(self) -> int:
        # On a GPU each block costs three kernel launches: 1 MiB blocks made a
        # large input host-bound. A quarter of the L2 keeps the product's re-read
        # in cache with a few launches per call.
        if self.device == "cuda":
            return max(self.BLOCK_BYTES, (self.cache_bytes() or 0) // 4)
        # On the CPU each ATen call is an OpenMP parallel region whose barrier
        # waits a scheduler tick for a thread that another process descheduled:
        # with 1 MiB blocks a 128 MiB input took 0.6-1.2 s a call on a busy
        # 2-vCPU VM, with blocks of 1/16 of its 300 MiB last-level cache 64-114 ms.
        # A sixteenth of the LLC still keeps the product's re-read in cache.
        return max(self.BLOCK_BYTES, (self.cache_bytes() or 0) // 16)

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        if self._transformed(a, b):  # out= and in-place kernels have no autograd
            return self._eager(a, b, plan)
        dtype = self.torch_dtype(plan.out_dtype)
        a, b = a.to(dtype).expand(plan.full_shape), b.to(dtype).expand(plan.full_shape)
        if self.device == "cpu" and plan.out_dtype in self.TILED_DTYPES and plan.n:
            if a.ndim == 1:  # a column: (N, 1) views, a one-element result
                return self._tiled(a[:, None], b[:, None]).reshape(())
            return self._tiled(a, b)
        return self._buffered(a, b, plan)

    def _tiled(self, a: Any, b: Any) -> Any:
        """Rows multiplied into a buffer and added into a block-sized tile, one chunk of axis 1 at a time."""
        torch = self.torch
        n, width, *inner = a.shape
        out = torch.empty((width, *inner), dtype=a.dtype, device=self.device)
        tile_elements = max(1, self._block_bytes() // a.element_size())
        per_column = max(1, int(np.prod(inner)))
        columns = max(1, min(width, tile_elements // per_column))
        rows = max(1, min(n, tile_elements // (columns * per_column)))
        tile = torch.empty((rows, columns, *inner), dtype=a.dtype, device=self.device)
        buffer = torch.empty_like(tile)
        for first_column in range(0, width, columns):
            chunk = slice(first_column, min(width, first_column + columns))
            acc, products = tile[:, : chunk.stop - chunk.start].zero_(), buffer[:, : chunk.stop - chunk.start]
            for start in range(0, n, rows):
                stop = min(n, start + rows)
                acc[: stop - start].add_(
                    torch.mul(a[start:stop, chunk], b[start:stop, chunk], out=products[: stop - start])
                )
            torch.sum(acc, 0, out=out[chunk])
        return out

    def _buffered(self, a: Any, b: Any, plan: Plan) -> Any:
        """Each block's product written to a reused buffer, its column sums added to a K-element accumulator."""
        torch = self.torch
        dtype = a.dtype
        product = self.torch_dtype(plan.product_dtype)
        row_elements = max(1, int(np.prod(plan.out_shape)))
        rows = max(1, self._block_bytes() // (row_elements * product.itemsize))
        acc = torch.zeros(plan.out_shape, dtype=self.torch_dtype(plan.acc_dtype), device=self.device)
        buffer = torch.empty((min(rows, plan.n), *plan.out_shape), dtype=product, device=self.device)
        for start in range(0, plan.n, rows):
            stop = min(plan.n, start + rows)
            block = buffer[: stop - start]
            if product == dtype:
                torch.mul(a[start:stop], b[start:stop], out=block)
            else:  # half precision: upcast the block, then multiply in float32 (mul would round in half)
                # Resolved first: copy_ between float16 and float32 drops a negative bit (torch 2.13 CPU).
                block.copy_(_resolved(a[start:stop]))
                block.mul_(b[start:stop])
            _accumulate(torch, acc, block.sum(0, dtype=acc.dtype))
        return acc.to(self.torch_dtype(plan.out_dtype))


def _accumulate(torch: Any, acc: Any, partial: Any) -> None:
    """``acc += partial`` with IEEE addition per component, complex included.

    ATen's complex ``add`` computes ``acc + alpha * partial`` with ``alpha = 1+0j``,
    and ``(1+0j) * (nan+infj)`` is ``nan+nanj``: an infinite component of a
    partial sum would turn into NaN. Added as real pairs it stays infinite, as
    in the exact sum (the oracle) and ``torch.sum`` itself.
    """
    if acc.is_complex():
        acc, partial = torch.view_as_real(acc), torch.view_as_real(partial)
    acc += partial


def _compiled_kernel(a: Any, b: Any, out_dtype: Any, acc_dtype: Any) -> Any:
    """The eager formulation of every torch strategy, and torch-compile's compiled kernel."""
    # Tensor methods only: dynamo cannot trace the lazy torch import. Products
    # are formed in the accumulation dtype (the plan's product_dtype); inductor
    # fuses the casts into the loop, so no copy is written.
    return (a.to(acc_dtype) * b.to(acc_dtype)).sum(dim=0, dtype=acc_dtype).to(out_dtype)


class TorchCompile(TorchAdapter):
    """``torch-compile``: ``torch.compile(dynamic=False)`` (inductor) of the eager formulation.

    Inductor fuses the multiply into the reduction's loop, so no N x K product
    is written; how well its generated loop streams memory depends on the
    reduction layout (measured near the floor on tall-skinny, far below on
    square). One executable per input signature is compiled by ``prepare`` (or
    the first call) and its seconds are reported as compile time. Each compiled
    signature gets its own code object, so dynamo's per-function recompile limit
    never silently falls back to eager. Inputs under ``COMPILE_MIN_BYTES`` run
    the eager formulation: compiling costs seconds and a compiled call's guards
    cost more than such a sum. Complex dtypes are refused: inductor has no
    complex code generation (it would fall back to eager with a warning).
    """

    compiles_for_seconds = True

    name = "torch-compile"
    formulation = "torch.compile(torch.sum(a * b, dim=0, dtype=<acc>), dynamic=False) per input signature (inductor); eager below 1 MiB"
    COMPILE_MIN_BYTES = 1 << 20

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self._compiled: LRUCache[tuple[Any, ...], Callable[..., Any]] = LRUCache(COMPILED_CACHE_SIZE)
        self._compilations = 0

    def unsupported_dtypes(self) -> frozenset[str]:
        return frozenset(_dtypes.COMPLEX_FLOATS)

    def unsupported_dtype_reason(self, dtype: str) -> str:
        return f"torch-compile does not support {dtype}: inductor has no complex code generation; use torch-eager"

    def _signature(self, a: Any, b: Any) -> tuple[Any, ...]:
        return (a.shape, a.stride(), a.dtype, b.shape, b.stride(), b.dtype, a.device)

    def _executable(self, a: Any, b: Any) -> tuple[Callable[..., Any], float | None]:
        key = self._signature(a, b)
        cached = self._compiled.get(key)
        if cached is not None:
            return cached, None
        import time
        import types

        plan = self.plan(a, b)
        kernel = types.FunctionType(
            _compiled_kernel.__code__.replace(), _compiled_kernel.__globals__, f"mul_sum_{self._compilations}"
        )
        compiled = self.torch.compile(kernel, dynamic=False, fullgraph=True)
        out_dtype, acc_dtype = self.torch_dtype(plan.out_dtype), self.torch_dtype(plan.acc_dtype)
        start = time.perf_counter()
        compiled(a, b, out_dtype, acc_dtype)  # compiles: dynamo traces on the first call
        self.synchronize()
        seconds = time.perf_counter() - start
        self._compilations += 1
        executable = lambda x, y: compiled(x, y, out_dtype, acc_dtype)  # noqa: E731
        self._compiled.put(key, executable)
        return executable, seconds

    def release_compiled(self) -> None:
        self._compiled.clear()
        if self._compilations:
            self.torch._dynamo.reset()  # dynamo's own caches hold the compiled code too
            self._compilations = 0

    def _compiles(self, plan: Plan, a: Any) -> bool:
        return 2 * int(np.prod(plan.full_shape)) * a.element_size() >= self.COMPILE_MIN_BYTES

    def prepare(self, a: Any, b: Any) -> float | None:
        plan = self.plan(a, b)
        if plan.n == 0 or not self._compiles(plan, a):
            return None
        return self._executable(_resolved(a), _resolved(b))[1]

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        # Under autograd or a transform the eager formulation runs: a compiled
        # call supports no double backward and no torch.func, and inside the
        # user's own torch.compile inductor fuses the eager formulation anyway.
        if not self._compiles(plan, a) or self._transformed(a, b):
            return self._eager(a, b, plan)
        a, b = _resolved(a), _resolved(b)
        return self._executable(a, b)[0](a, b)


class TorchTriton(TorchAdapter):
    """``torch-triton``: one Triton kernel of strided partial sums, then their sum (CUDA only).

    ``torch.sum(a * b, 0)`` writes and re-reads an N x K product (half the
    bandwidth in float32, a tenth in bfloat16 on an H200, where the product is
    upcast first), and ``torch-compile`` compiles per input signature for
    seconds. Here one kernel, compiled once per dtype and cached on disk by
    Triton, streams both inputs once: lane ``l`` of ``L = K x R`` lanes
    (``core.shapes.strided_partials_layout``) sums ``a.flat[l::L] * b.flat[l::L]`` in
    the accumulation dtype, one column per lane with neighbouring lanes on
    neighbouring addresses for every K; ``torch.sum`` then adds the R x K
    partials (< 1% of a large input), stored K x R where there are few outputs
    (``GPU_FEW_OUTPUTS``) so that it sums contiguous rows. Products and sums are rounded one by one
    (no fused multiply-add). C-contiguous inputs of the result's dtype and
    shape take the kernel; other layouts, and calls that autograd, torch.func
    or torch.compile watch (``_transformed``), run the eager formulation.
    Real floating dtypes only.
    """

    name = "torch-triton"
    devices = ("cuda",)
    formulation = (
        "Triton kernel: lane l of L = K*R lanes sums a.flat[l::L] * b.flat[l::L] in the accumulation dtype "
        "(coalesced for any K), then torch.sum of the R x K partials; other layouts and transforms: eager"
    )

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        if importlib.util.find_spec("triton") is None:
            return "triton is not installed (torch's CUDA builds bring it)"
        return super()._device_unavailable_reason(device)

    def unsupported_dtypes(self) -> frozenset[str]:
        return frozenset(_dtypes.INTEGERS + _dtypes.COMPLEX_FLOATS)

    def unsupported_dtype_reason(self, dtype: str) -> str:
        return f"torch-triton computes real floating dtypes only; use torch-eager for {dtype}"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        if self._transformed(a, b):
            return self._eager(a, b, plan)
        dtype = self.torch_dtype(plan.out_dtype)
        if not all(x.dtype == dtype and x.shape == plan.full_shape and x.is_contiguous() for x in (a, b)):
            return self._eager(a, b, plan)
        k = int(np.prod(plan.out_shape))
        if k == 0:
            return self._zeros(plan, a)
        a, b = _resolved(a), _resolved(b)  # the kernel reads storage: apply lazy negation first
        groups, transposed = strided_partials_layout(plan.n, k, _multiprocessors(self.torch, a.device))
        acc_dtype = self.torch_dtype(plan.acc_dtype)
        partials = self.torch.empty(groups * k, dtype=acc_dtype, device=a.device)
        kernels = importlib.import_module("xbackend.backends.triton_kernels")
        with self.torch.cuda.device(a.device):
            kernels.strided_partial_sums(a, b, partials, k, groups, transposed)
        acc = sum_strided_partials(partials, k, groups, transposed, acc_dtype)
        return acc.view(plan.out_shape).to(dtype)


@functools.cache
def _multiprocessors(torch: Any, device: Any) -> int:
    return int(torch.cuda.get_device_properties(device).multi_processor_count)


def _resolved(x: Any) -> Any:
    """``x`` with its lazy negation and conjugation applied; ``x`` itself (free) when neither bit is set.

    ``x.conj().imag`` is a view whose negative bit says "negate on read".
    Eager ATen kernels honour the bit; inductor's generated code reads the
    storage as it is (pytorch#145093): a compiled sum of such a view returns
    the negated sum. Every kernel that reads storage directly (compiled code,
    NumPy views) must see resolved tensors. The bits are asked first: two
    resolve calls cost 10-30 us right after a streaming kernel, the check ~1 us.
    """
    return x.resolve_conj().resolve_neg() if x.is_neg() or x.is_conj() else x


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.")


def compiling(a: Any) -> bool:
    """Whether ``a`` is a tensor that dynamo is tracing (``torch.compile`` of user code calling ``mul_sum``)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(a, torch.Tensor) and torch.compiler.is_compiling()


def traceable_mul_sum(a: Any, b: Any) -> Any:
    """``mul_sum`` inside dynamo's trace when no kernel is cached for the inputs' signature.

    Choosing a strategy reads the selection table from disk and creating an
    adapter imports modules, neither of which dynamo can trace
    (``fullgraph=True`` refuses the graph break). Inside a compiled graph the
    strategy does not matter: inductor fuses the eager formulation's multiply
    into its reduction. So the inputs are validated by the shared rules and the
    eager formulation runs; nothing is cached.
    """
    torch = sys.modules["torch"]
    if not isinstance(b, torch.Tensor):
        raise TypeError(f"inputs come from two libraries: torch and {type(b).__module__}.{type(b).__qualname__}")
    if a.device != b.device:
        raise ValueError(f"inputs are on two devices: {a.device} and {b.device}")
    plan = plan_mul_sum(tuple(a.shape), _dtype_name(a), tuple(b.shape), _dtype_name(b))
    return _compiled_kernel(a, b, getattr(torch, plan.out_dtype), getattr(torch, plan.acc_dtype))


def _device_kind(x: Any) -> str:
    return x.device.type


LIBRARY = Library(
    name="torch",
    strategies=(TorchEager, TorchEinsum, TorchNumpy, TorchNumba, TorchBlocked, TorchCompile, TorchTriton),
    default_strategy="torch-eager",
    devices={"cpu": "cpu", "cuda": "gpu"},
    device_kind=_device_kind,
    array_types=(("torch", "Tensor"),),
    floor_strategy="torch-eager",
    distributions=("torch", "numba"),
)
