"""Dask: ``dask`` and ``dask-cluster``, one fused map-reduce over chunked ``dask.array`` inputs.

Each pair of chunks becomes one task that computes its partial sum with the
NumPy strategy (``np.einsum``, float16/bfloat16 upcast by row blocks), left in
the accumulation dtype; the partials, one row per chunk along dim 0, are summed
in a tree (``dask.array.sum``, fan-in ``split_every``) and cast to the result
dtype last. No N x K product is ever formed and no input chunk outlives its
task, so inputs larger than any one worker's memory stream through.

``mul_sum`` is lazy: it returns a ``dask.array.Array`` and runs nothing. The
work happens when the result is computed (``.compute()``, ``np.asarray``,
``adapter.to_numpy``, ``adapter.synchronize``), on the scheduler that holds the
inputs' data (a ``dask.distributed`` cluster they were persisted on), else on
dask's active scheduler: a ``distributed.Client`` made the default, or dask's
local threads. ``dask-cluster`` is the same graph always computed on a cluster
of worker processes: the one at ``XBACKEND_DASK_SCHEDULER`` (an address such as
``tcp://10.0.0.5:8786``), else a ``distributed.LocalCluster`` with one
single-threaded worker process per CPU, started when the adapter is created
(its workers are spawned processes: a script that uses it needs the usual
``if __name__ == "__main__":`` guard).

Timing a lazy result: ``synchronize(out)`` computes ``out`` (the values are
discarded), so the host clock around ``mul_sum`` and ``synchronize`` measures
what a user waits for: building the graph, scheduling it and running it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
import warnings
from typing import Any

import numpy as np

from ..core.dtypes import numpy_dtype, numpy_dtype_name
from ..core.probes import HostTimer, MemoryUse, Timer, cpu_count, cpu_model, rss_extra_memory
from ..core.semantics import Plan
from .base import Adapter, Library, host_device
from .numpy import accumulated_mul_sum, in_result_dtype

# ``asarray`` splits dim 0 into chunks of whole rows of about this many bytes:
# whole rows keep each task's partial sum a full output row, and 16 MiB is
# large enough that the per-task overhead (~0.1 ms) is small beside the
# memory time, small enough that a few hundred MiB already spreads over workers.
CHUNK_BYTES = 16 * 2**20
SCHEDULER_VARIABLE = "XBACKEND_DASK_SCHEDULER"


def _dask_array() -> Any:
    return importlib.import_module("dask.array")


def default_chunks(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Whole rows, about ``CHUNK_BYTES`` per chunk (at least one row)."""
    row_bytes = itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, CHUNK_BYTES // max(1, row_bytes))
    return (min(rows, max(1, shape[0])),) + tuple(shape[1:]) if shape else ()


def _partial_mul_sum(a: np.ndarray, b: np.ndarray, *, out_dtype: str, acc_dtype: str) -> np.ndarray:
    """One task: the sum over one chunk of rows, in the accumulation dtype, as a 1-row block."""
    plan = Plan(np.broadcast_shapes(a.shape, b.shape), out_dtype, acc_dtype)
    return accumulated_mul_sum(a, b, plan)[np.newaxis]


def _holding_client(arrays: tuple[Any, ...]) -> Any:
    """The ``distributed.Client`` whose cluster holds these arrays' data, or None."""
    if "distributed" not in sys.modules:  # nothing can be persisted on a cluster
        return None
    from distributed import futures_of

    for x in arrays:
        futures = futures_of(x)
        if futures:
            return futures[0].client
    return None


class DaskAdapter(Adapter):
    name = "dask"
    framework = "dask"
    devices = ("cpu",)
    install_hint = "pip install 'dask[array]' (or xbackend[scale])"
    formulation = (
        "dask.array.blockwise(per-chunk np.einsum partial sums in the accumulation dtype).sum(axis=0): "
        "a lazy tree reduction, computed on the active dask scheduler"
    )

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.dask = importlib.import_module("dask")
        self.da = _dask_array()

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        try:
            _dask_array()
        except ImportError as exc:  # dask without its array extra
            return f"dask.array cannot be imported ({exc}): {cls.install_hint}"
        return None

    # -- where the work runs ------------------------------------------------
    def _scheduler(self, arrays: tuple[Any, ...]) -> Any:
        """What computes ``arrays``: the cluster holding their data, else dask's active scheduler (None)."""
        return _holding_client(arrays)

    def compute(self, *arrays: Any) -> tuple[Any, ...]:
        """The values of dask ``arrays`` (NumPy), computed together on this adapter's scheduler."""
        return self.dask.compute(*arrays, scheduler=self._scheduler(arrays))

    def persist(self, x: Any) -> Any:
        """``x`` with its chunks computed and held by the scheduler (in memory, or on the cluster)."""
        (held,) = self.dask.persist(x, scheduler=self._scheduler((x,)))
        return held

    # -- framework plumbing -------------------------------------------------
    def asarray(self, host: np.ndarray, chunks: Any = None) -> Any:
        """A chunked copy of ``host`` held by the scheduler; ``chunks`` defaults to ``default_chunks``."""
        host = np.array(host, copy=True)
        chunks = default_chunks(host.shape, host.dtype.itemsize) if chunks is None else chunks
        return self.persist(self.da.from_array(host, chunks=chunks))

    def to_numpy(self, x: Any) -> np.ndarray:
        (value,) = self.compute(x)
        return np.asarray(value)

    def synchronize(self, *arrays: Any) -> None:
        # A lazy result has done no work yet: run it. Its values are dropped.
        lazy = tuple(x for x in arrays if self.is_native(x))
        if lazy:
            self.compute(*lazy)

    def is_native(self, x: Any) -> bool:
        return isinstance(x, self.da.Array)

    def dtype_name(self, x: Any) -> str:
        return numpy_dtype_name(np.dtype(x.dtype))

    def device_of(self, x: Any) -> str:
        # Chunks are NumPy arrays unless the array was built on another library (CuPy: the GPU).
        chunk_library = type(x._meta).__module__.split(".", 1)[0]
        if chunk_library == "numpy":
            return "cpu"
        return "cuda" if chunk_library == "cupy" else f"{chunk_library} chunks"

    def _zeros(self, plan: Plan, like: Any) -> Any:
        return self.da.zeros(plan.out_shape, dtype=numpy_dtype(plan.out_dtype))

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        index = tuple(range(len(plan.full_shape)))
        acc_dtype = numpy_dtype(plan.acc_dtype)
        # blockwise aligns the two inputs' chunks and broadcasts size-1 dims; keeping
        # dim 0 with one row per chunk leaves the partial sums for the tree.
        partials = self.da.blockwise(
            _partial_mul_sum,
            index,
            a,
            index,
            b,
            index,
            dtype=acc_dtype,
            adjust_chunks={0: 1},
            meta=np.empty((0,) * len(index), dtype=acc_dtype),
            out_dtype=plan.out_dtype,
            acc_dtype=plan.acc_dtype,
        )
        total = partials.sum(axis=0, dtype=acc_dtype)
        return total.map_blocks(in_result_dtype, plan, dtype=numpy_dtype(plan.out_dtype))

    # -- measurement hooks --------------------------------------------------
    def timer(self) -> Timer:
        return HostTimer(self.synchronize, "host perf_counter around mul_sum + compute (graph, scheduling and run)")

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        if _holding_client((a, b)) is not None:
            return MemoryUse(self.mul_sum(a, b), None, "not probed: the work runs in the cluster's worker processes")
        # In-process threads: the persisted result is the output, everything else is extra.
        use = rss_extra_memory(lambda: self.persist(self.mul_sum(a, b)))
        return MemoryUse(use.out, use.extra_bytes, use.method + ", dask's local threads")

    def device_description(self) -> str:
        return f"{cpu_model()}; {self.scheduler_description()}"

    def scheduler_description(self) -> str:
        client = self._default_client()
        if client is not None:
            return f"the default distributed client: {describe_cluster(client)}"
        return f"dask's local scheduler ({self.dask.config.get('scheduler', 'threads')}, {cpu_count()} threads)"

    def _default_client(self) -> Any:
        if "distributed" not in sys.modules:
            return None
        from distributed import default_client

        try:
            return default_client()
        except ValueError:  # no client was made the default
            return None

    def thread_report(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler_description(), "chunk tasks": "np.einsum, single-threaded per task"}


def describe_cluster(client: Any) -> str:
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    threads = sum(worker["nthreads"] for worker in workers)
    limits = {worker.get("memory_limit") for worker in workers}
    limit = f", memory limit {max(limits) / 2**20:.0f} MiB each" if all(limits) else ""
    return f"{len(workers)} worker processes, {threads} threads{limit} at {client.scheduler.address}"


class DaskCluster(DaskAdapter):
    name = "dask-cluster"
    install_hint = "pip install 'dask[array]' distributed (or xbackend[scale])"
    formulation = (
        "the dask strategy's graph, computed on a dask.distributed cluster: "
        f"${SCHEDULER_VARIABLE}, else a LocalCluster of one worker process per CPU"
    )

    def __init__(self, device: str) -> None:
        super().__init__(device)
        self.client = connect_cluster()

    @classmethod
    def _device_unavailable_reason(cls, device: str) -> str | None:
        if importlib.util.find_spec("distributed") is None:
            return f"distributed is not installed: {cls.install_hint}"
        return super()._device_unavailable_reason(device)

    def _scheduler(self, arrays: tuple[Any, ...]) -> Any:
        return self.client

    def asarray(self, host: np.ndarray, chunks: Any = None) -> Any:
        """``host`` persisted on the cluster's workers; the copy travels once, through the scheduler."""
        with warnings.catch_warnings():
            # distributed warns about a large graph: sending the data is the point here.
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            return super().asarray(host, chunks)

    def extra_memory(self, a: Any, b: Any) -> MemoryUse:
        return MemoryUse(self.mul_sum(a, b), None, "not probed: the work runs in the cluster's worker processes")

    def scheduler_description(self) -> str:
        return describe_cluster(self.client)


@functools.cache
def connect_cluster() -> Any:
    """A client of ``$XBACKEND_DASK_SCHEDULER``, else of a new LocalCluster (one process per CPU).

    The client is never made dask's default: the ``dask`` adapter keeps
    computing on the scheduler the user chose.
    """
    from distributed import Client, LocalCluster

    address = os.environ.get(SCHEDULER_VARIABLE)
    if address:
        return Client(address, set_as_default=False)
    # ":0": a free port for the dashboard, so a second cluster does not collide with the first.
    cluster = LocalCluster(n_workers=cpu_count(), threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster, set_as_default=False)


LIBRARY = Library(
    name="dask",
    strategies=(DaskAdapter, DaskCluster),
    default_strategy="dask",
    devices={"cpu": "cpu"},
    device_kind=host_device,
    array_types=(("dask.array", "Array"),),
    selectable=False,
    distributions=("dask", "distributed"),
)
