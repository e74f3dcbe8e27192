"""Scaling out: the array-api adapter, dask on a real process cluster, and jax-sharded on 4 devices.

Every result is checked against the exact oracle (``xbackend.testing``). The
dask cluster is a ``distributed.LocalCluster`` of two single-threaded worker
processes, started once for the module; JAX reads its device count at import,
so the 4-device checks run in a subprocess.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import xbackend
from xbackend.core.dtypes import numpy_dtype
from xbackend.testing import assert_mul_sum_close

array_api_strict = pytest.importorskip("array_api_strict")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

WORKER_MEMORY = 300 * 2**20


def seeded(shape, dtype, seed):
    rng, dtype = np.random.default_rng(seed), numpy_dtype(dtype)
    if dtype.kind in "iu":
        return rng.integers(-50 if dtype.kind == "i" else 0, 50, size=shape).astype(dtype)
    values = rng.standard_normal(shape)
    if dtype.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dtype)


# -- array-api ---------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128", "int32", "int64", "uint8"])
@pytest.mark.parametrize(("a_shape", "b_shape"), [((50, 4), (50, 4)), ((1, 3, 2), (9, 3, 1)), ((6,), (6,))], ids=str)
def test_mul_sum_dispatches_array_api_strict_arrays(dtype, a_shape, b_shape):
    a, b = seeded(a_shape, dtype, 1), seeded(b_shape, dtype, 2)
    x, y = array_api_strict.asarray(a), array_api_strict.asarray(b)
    out = xbackend.mul_sum(x, y)
    assert type(out) is type(x)  # stays an array_api_strict array, on its device
    assert xbackend.get_adapter("array-api").device_of(out) == "cpu"
    assert_mul_sum_close(out, a, b)


def test_array_api_keeps_the_integer_policy_and_promotion():
    adapter = xbackend.get_adapter("array-api")
    a, b = np.array([2**30, 2**30, 3], np.int32), np.array([2, 2, 1], np.int32)
    out = adapter.to_numpy(adapter.mul_sum(adapter.asarray(a), adapter.asarray(b)))
    assert out.dtype == np.int32 and out == 3  # 2**32 + 3 wraps to 3
    a8, u8 = seeded((30, 2), "int8", 3), seeded((30, 2), "uint8", 4)
    out = adapter.mul_sum(adapter.asarray(a8), adapter.asarray(u8))
    assert adapter.dtype_name(out) == "int16"
    assert_mul_sum_close(out, a8, u8)


def test_array_api_runs_in_the_dask_namespace_too():
    adapter = xbackend.get_adapter("array-api")
    a, b = seeded((200, 5), "float32", 5), seeded((200, 5), "float32", 6)
    x, y = adapter.asarray(a, xp=da), adapter.asarray(b, xp=da)
    out = adapter.mul_sum(x, y)
    assert isinstance(out, da.Array)  # dask's namespace keeps it lazy
    assert_mul_sum_close(adapter.to_numpy(out), a, b)
    h = seeded((3000, 2), "float16", 7)  # dask has float16: accumulated in float32
    assert_mul_sum_close(adapter.mul_sum(da.asarray(h, chunks=500), da.asarray(h, chunks=500)), h, h)


def test_array_api_refuses_what_it_cannot_honour_before_work():
    adapter = xbackend.get_adapter("array-api")
    x = adapter.asarray(np.ones((3, 2), np.float32))
    with pytest.raises(TypeError, match="one namespace"):
        adapter.mul_sum(x, np.ones((3, 2), np.float32))
    with pytest.raises(xbackend.UnsupportedDtypeError, match="array_api_strict has no float16"):
        adapter.asarray(np.ones((3, 2), np.float16))
    elsewhere = array_api_strict.asarray(np.ones((3, 2), np.float32), device=array_api_strict.Device("device1"))
    with pytest.raises(ValueError, match="device1"):
        xbackend.mul_sum(elsewhere, elsewhere)
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(4, 2\)"):
        xbackend.mul_sum(x, array_api_strict.ones((4, 2)))


# -- dask, in-process scheduler ------------------------------------------------
def test_mul_sum_dispatches_dask_arrays_and_stays_lazy():
    a, b = seeded((400, 6), "float64", 8), seeded((400, 6), "float64", 9)
    loaded = []

    def load(block, block_info=None):
        loaded.append(block_info[0]["chunk-location"])
        return block

    x = da.from_array(a, chunks=(100, 6)).map_blocks(load, dtype=a.dtype)
    out = xbackend.mul_sum(x, da.from_array(b, chunks=(100, 6)))
    assert isinstance(out, da.Array) and out.shape == (6,) and out.dtype == np.float64
    assert loaded == []  # building the graph ran nothing
    assert_mul_sum_close(out.compute(scheduler="threads"), a, b)
    assert sorted(loaded) == [(i, 0) for i in range(4)]


def test_dask_runs_one_map_reduce_without_a_full_size_intermediate():
    a, b = seeded((4000, 8), "float32", 10), seeded((4000, 8), "float32", 11)
    x, y = da.from_array(a, chunks=(250, 8)), da.from_array(b, chunks=(250, 8))
    results = []

    class Sizes(dask.callbacks.Callback):
        def _posttask(self, key, result, dsk, state, id):
            results.append((key, getattr(result, "nbytes", 0)))

    with Sizes():
        out = xbackend.get_adapter("dask").mul_sum(x, y).compute(scheduler="sync")
    assert_mul_sum_close(out, a, b)
    chunk_bytes = 250 * 8 * 4
    computed = [size for key, size in results if not str(key).startswith("('array-")]  # not the input chunks
    assert computed and max(computed) <= 8 * 4  # partial sums only: one output row per task
    assert max(size for _, size in results) <= chunk_bytes


def test_dask_keeps_half_precision_and_integer_semantics():
    adapter = xbackend.get_adapter("dask")
    rng = np.random.default_rng(12)
    h = rng.uniform(0.5, 1.0, size=(20_000, 3)).astype(np.float16)  # a float16 accumulator stalls here
    x = adapter.asarray(h, chunks=(3000, 2))
    out = adapter.mul_sum(x, x)
    assert adapter.dtype_name(out) == "float16"
    assert_mul_sum_close(out, h, h)
    a, b = np.array([2**30, 2**30, 3], np.int32), np.array([2, 2, 1], np.int32)
    out = adapter.to_numpy(adapter.mul_sum(adapter.asarray(a, chunks=1), adapter.asarray(b, chunks=2)))
    assert out.dtype == np.int32 and out == 3


# -- dask on a real cluster of worker processes ----------------------------------
@pytest.fixture(scope="module")
def cluster_client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, memory_limit=WORKER_MEMORY, dashboard_address=":0"
    )
    client = distributed.Client(cluster, set_as_default=False)
    yield client
    client.close()
    cluster.close()


CHUNKINGS = [
    pytest.param((3000, 5), (400, 5), (700, 5), id="dim0"),
    pytest.param((300, 40), (300, 8), (300, 16), id="trailing"),
    pytest.param((500, 6, 7), (128, 3, 7), (256, 6, 2), id="both-3d"),
]


@pytest.mark.parametrize(("shape", "a_chunks", "b_chunks"), CHUNKINGS)
def test_dask_on_a_process_cluster_matches_the_oracle(cluster_client, shape, a_chunks, b_chunks):
    a, b = seeded(shape, "float32", 13), seeded(shape, "float32", 14)
    x, y = da.from_array(a, chunks=a_chunks), da.from_array(b, chunks=b_chunks)
    with dask.config.set(scheduler=cluster_client), distributed.get_task_stream(cluster_client) as stream:
        out = xbackend.mul_sum(x, y)
        value = out.compute()
    assert_mul_sum_close(value, a, b)
    workers = {task["worker"] for task in stream.data}
    assert workers <= set(cluster_client.scheduler_info()["workers"]) and workers  # ran in the worker processes


def test_dask_computes_where_the_data_was_persisted(cluster_client):
    adapter = xbackend.get_adapter("dask")
    a, b = seeded((1, 9), "complex64", 15), seeded((600, 9), "complex64", 16)  # dim 0 broadcasts
    with dask.config.set(scheduler=cluster_client):
        x, y = adapter.asarray(a), adapter.asarray(b, chunks=(100, 3))
    assert distributed.futures_of(y)  # held by the cluster
    out = adapter.mul_sum(x, y)
    # No scheduler is active here: the result is computed on the cluster holding its inputs.
    assert_mul_sum_close(out, a, b)
    assert_mul_sum_close(xbackend.mul_sum(x, y), a, b)


def test_dask_streams_inputs_larger_than_a_worker_memory(cluster_client):
    n, k = 3 * 2**20, 32  # two float32 inputs of 384 MiB each: 768 MiB against 2 x 300 MiB of workers
    rng = da.random.default_rng(17)
    x = rng.standard_normal((n, k), dtype=np.float32, chunks=(2**17, k))
    y = rng.standard_normal((n, k), dtype=np.float32, chunks=(2**17, k))
    assert x.nbytes + y.nbytes > 2 * WORKER_MEMORY and x.nbytes > WORKER_MEMORY
    workers_before = set(cluster_client.scheduler_info()["workers"])
    with dask.config.set(scheduler=cluster_client):
        out = xbackend.mul_sum(x, y).compute()
        # The oracle needs host data: two whole columns (24 MiB) are the exact check.
        columns = [3, 29]
        a_cols, b_cols = dask.compute(x[:, columns], y[:, columns])
    assert set(cluster_client.scheduler_info()["workers"]) == workers_before  # no worker was lost
    assert out.shape == (k,) and np.isfinite(out).all()
    assert_mul_sum_close(out[columns], a_cols, b_cols)


def test_dask_cluster_adapter_runs_on_its_own_worker_processes():
    adapter = xbackend.get_adapter("dask-cluster")
    assert "worker processes" in adapter.scheduler_description()
    a, b = seeded((5000, 4), "bfloat16", 18), seeded((5000, 4), "bfloat16", 19)
    x, y = adapter.asarray(a), adapter.asarray(b)
    assert distributed.futures_of(x)[0].client is adapter.client
    out = adapter.mul_sum(x, y)
    assert isinstance(out, da.Array)
    assert_mul_sum_close(adapter.to_numpy(out), a, b)


# -- jax-sharded on 4 host devices -------------------------------------------------
SHARDED_SCRIPT = """
import numpy as np, jax, xbackend
from xbackend.testing import assert_mul_sum_close

ad = xbackend.get_adapter("jax-sharded")
assert ad.mesh.size == 4 and len(jax.devices()) == 4
rng = np.random.default_rng(20)

a, b = (rng.standard_normal((1000, 7)).astype(np.float32) for _ in range(2))
x, y = ad.asarray(a), ad.asarray(b)
assert [s.data.shape for s in x.addressable_shards] == [(250, 7)] * 4  # a quarter of the rows each
out = ad.mul_sum(x, y)
assert len(out.devices()) == 4 and ad.device_of(out) == "cpu:0,1,2,3"
assert_mul_sum_close(out, a, b)
assert xbackend.mul_sum(x, y).sharding == out.sharding  # dispatch picks jax-sharded for sharded arrays
assert xbackend.mul_sum(x, y).sharding == out.sharding  # its kernel, cached under the sharding
# The same signature on one device: another sharding in the key, another kernel (not jax-sharded's).
one = [jax.device_put(v, jax.devices()[1]) for v in (a, b)]
on_one = xbackend.mul_sum(*one)
assert on_one.devices() == {jax.devices()[1]}, on_one.devices()
assert_mul_sum_close(on_one, a, b)
# Each single-device strategy leaves its result on its inputs' device (jax-numpy's, jax-numba's and the
# empty sums' went to the first), whatever the strategy.
# Placed as JAX places jnp.sum(a * b, 0): the device, the memory kind, committed only where the inputs are.
pinned = jax.sharding.SingleDeviceSharding(jax.devices()[3], memory_kind="pinned_host")
cases = {
    "on cpu:1": one,
    "empty, on cpu:2": [jax.device_put(np.zeros((0, 7), np.float32), jax.devices()[2])] * 2,
    # Of one sharding: the executable of the committed inputs must not serve the uncommitted ones.
    "committed on cpu:0": [jax.device_put(v, jax.devices()[0]) for v in (a, b)],
    "uncommitted": [jax.numpy.asarray(v) for v in (a, b)],
    "empty, uncommitted": [jax.numpy.zeros((0, 7), np.float32)] * 2,
    "pinned host memory": [jax.device_put(v, pinned) for v in (a, b)],
}
def placed(x):
    return x.sharding, x.committed
for case, inputs in cases.items():
    expected = placed(jax.numpy.sum(inputs[0] * inputs[1], 0))
    for call in [xbackend.get_adapter(name).mul_sum for name in ("jax-jit", "jax-rows", "jax-numpy", "jax-numba")] + [xbackend.mul_sum]:
        assert placed(call(*inputs)) == expected, (case, call, placed(call(*inputs)), expected)
    # Traced (vmap over a leading axis), an empty sum too.
    batched = [v[None] for v in inputs]
    expected = placed(jax.vmap(lambda x, y: jax.numpy.sum(x * y, 0))(*batched))
    assert placed(jax.vmap(xbackend.mul_sum)(*batched)) == expected, case
# Inputs sharded over the 4 devices in an order of their own: computed, and placed, in that order.
from jax.sharding import Mesh, NamedSharding, PartitionSpec
devices = jax.devices()
for order in (devices[::-1], [devices[i] for i in (2, 0, 3, 1)]):
    for spec in (PartitionSpec("x"), PartitionSpec()):
        sharding = NamedSharding(Mesh(np.array(order), ("x",)), spec)
        for u, v in [(a, b), (a[:0], b[:0])]:
            xs, ys = jax.device_put(u, sharding), jax.device_put(v, sharding)
            expected = jax.numpy.sum(xs * ys, 0)
            for call in (ad.mul_sum, xbackend.mul_sum):
                got = call(xs, ys)
                assert_mul_sum_close(got, u, v)
                assert got.sharding._device_assignment == expected.sharding._device_assignment, (order, spec)
                assert_mul_sum_close(got + expected, u, 2 * v)  # usable beside JAX's own result
# Results replicated on the inputs' own mesh (2-D, explicit axes) and memory kind, so they combine with JAX's.
grid = Mesh(np.array(devices).reshape(2, 2), ("x", "y"))
explicit = Mesh(np.array(devices[::-1]), ("x",), axis_types=(jax.sharding.AxisType.Explicit,))
for sharding in [
    NamedSharding(grid, PartitionSpec("y", "x")),
    NamedSharding(grid, PartitionSpec(None, "x")),
    NamedSharding(explicit, PartitionSpec("x")),
    NamedSharding(Mesh(np.array(devices[::-1]), ("x",)), PartitionSpec("x"), memory_kind="pinned_host"),
]:
    for u, v in [(a[:, :4], b[:, :4]), (a[:0, :4], b[:0, :4])]:
        xs, ys = jax.device_put(u, sharding), jax.device_put(v, sharding)
        expected = jax.numpy.sum(xs * ys, 0)
        for call in (ad.mul_sum, xbackend.mul_sum):
            got = call(xs, ys)
            assert got.sharding.mesh == sharding.mesh and got.sharding.memory_kind == expected.sharding.memory_kind
            assert_mul_sum_close(got + expected, u, 2 * v)
# A gradient with respect to the first input (a tracer) of a sharded second: the traced formulation.
grad = jax.grad(lambda t: xbackend.mul_sum(t, y).sum())(x)
np.testing.assert_array_equal(np.asarray(grad), b)  # d/dt of sum(t * y) is y, with one-valued cotangents
reordered = jax.device_put(b, NamedSharding(Mesh(np.array(devices[::-1]), ("x",)), PartitionSpec("x")))
for call in (ad.mul_sum, xbackend.mul_sum):
    try:
        call(x, reordered)
    except ValueError as exc:
        assert "two orders (ids [0, 1, 2, 3] and [3, 2, 1, 0])" in str(exc), exc
    else:
        raise AssertionError("inputs sharded in two orders were accepted")
with jax.disable_jit():  # refuses compiled executables: op by op, on the inputs' devices
    assert_mul_sum_close(xbackend.mul_sum(x, y), a, b)
    assert_mul_sum_close(ad.mul_sum(x[:-4], y[:-4]), a[:-4], b[:-4])
try:
    xbackend.get_adapter("jax-jit").mul_sum(x, y)
except ValueError as exc:
    assert "sharded over 4" in str(exc)
else:
    raise AssertionError("jax-jit accepted sharded inputs")

# N not divisible by 4, and a broadcast dim 0: replicated inputs, rows split inside the kernel.
for a_shape, b_shape in [((1001, 3), (1001, 3)), ((1, 5), (13, 5)), ((7,), (7,))]:
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    assert_mul_sum_close(ad.mul_sum(ad.asarray(a), ad.asarray(b)), a, b)

# Half precision accumulates in float32, across the all-reduce too.
for dtype in ("float16", "bfloat16"):
    h = rng.uniform(0.5, 1.0, size=(20_000, 3)).astype(xbackend.core.dtypes.numpy_dtype(dtype))
    xh = ad.asarray(h)
    assert_mul_sum_close(ad.mul_sum(xh, xh), h, h)
text = ad._executable(xh, xh, ad.plan(xh, xh))[0].as_text()
assert any("all-reduce" in line and "f32[3]" in line for line in text.splitlines()), text

# Integers wrap in the result dtype, whatever the split.
i = np.array([2**30, 2**30, 3, 0], np.int32)
j = np.array([2, 2, 1, 5], np.int32)
wrapped = ad.to_numpy(ad.mul_sum(ad.asarray(i), ad.asarray(j)))
assert wrapped.dtype == np.int32 and wrapped == 3, wrapped
ints = rng.integers(-2**31, 2**31, size=(4000, 3), dtype=np.int32)
assert_mul_sum_close(ad.mul_sum(ad.asarray(ints), ad.asarray(ints)), ints, ints)

# Inputs on one device are not moved behind the caller's back.
single = jax.device_put(a, jax.devices()[0])
try:
    ad.mul_sum(single, single)
except ValueError as exc:
    assert "runs on all 4 cpu devices" in str(exc)
else:
    raise AssertionError("jax-sharded accepted single-device inputs")

# The correctness sweep of `xbackend check` (shapes, broadcasting, layouts, NaN/inf, long sums), on 4 devices.
from xbackend.testing.sweep import sweep
rows = sweep(ad, ("float16", "float32", "int32"))
assert all(row.passed and row.cases for row in rows), [row.failures for row in rows]
print("OK")
"""


def test_jax_sharded_on_four_host_devices():
    pytest.importorskip("jax")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SHARDED_SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().endswith("OK")


def test_list_shows_the_scale_out_strategies(capsys):
    from xbackend.cli import main

    assert main(["list"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"array-api", "dask", "dask-cluster", "jax-sharded"} <= listed
