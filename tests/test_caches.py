"""Cached state that must never break or bloat ``mul_sum``: damaged tuned tables, file modes, compiled kernels."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import warnings

import numpy as np
import pytest

import xbackend
from xbackend import report
from xbackend import selection as _selection
from xbackend.testing import assert_mul_sum_close

torch = pytest.importorskip("torch")

# Short-wide float32: the shipped table picks torch-numpy for torch, not the default torch-eager,
# so a damaged tuned table that leaked through would show in the choice.
SHAPE = (16, 4096)


# Each test gets a private per-machine cache (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("own_cache")


def seeded(shape=SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype("float32"), rng.standard_normal(shape).astype("float32")


def shipped_entries():
    return json.loads(_selection.SHIPPED_TABLE.read_text())["entries"]


def table_with(entries):
    return json.dumps({"schema": _selection.SCHEMA, "entries": entries})


def other_library_entry():
    entries = shipped_entries()
    for entry in entries:
        if (entry["library"], entry["device"], entry["shape_class"]) == ("torch", "cpu", "short-wide"):
            entry["strategy"] = "numpy"  # a registered strategy, but of another library
    return table_with(entries)


def missing_keys():
    return table_with([{k: v for k, v in e.items() if k != "strategy"} for e in shipped_entries()])


DAMAGE = {
    "garbage bytes": lambda path: path.write_bytes(b"\xff\xfe\x00garbage\x9c"),
    "truncated JSON": lambda path: path.write_text(table_with(shipped_entries())[:200]),
    "empty file": lambda path: path.write_text(""),
    "a JSON list": lambda path: path.write_text("[]"),
    "missing entries": lambda path: path.write_text(json.dumps({"schema": _selection.SCHEMA})),
    "missing keys": lambda path: path.write_text(missing_keys()),
    "strategy of another library": lambda path: path.write_text(other_library_entry()),
    "a directory": lambda path: path.mkdir(),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_tuned_table_warns_once_and_mul_sum_uses_the_shipped_choice(damage):
    a, b = seeded()
    expected = {
        "numpy": xbackend.choose(a, b).strategy,
        "torch": xbackend.choose(torch.from_numpy(a), torch.from_numpy(b)).strategy,
    }
    # The shipped entry (without numba installed, its next alternative), not the default.
    assert expected["torch"] in ("torch-numba", "torch-numpy")
    path = _selection.tuned_table_path()
    path.parent.mkdir(parents=True)
    DAMAGE[damage](path)
    xbackend.clear_dispatch_cache()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            out_np = xbackend.mul_sum(a, b)
            out_torch = xbackend.mul_sum(torch.from_numpy(a), torch.from_numpy(b))
        chosen = {
            "numpy": xbackend.choose(a, b).strategy,
            "torch": xbackend.choose(torch.from_numpy(a), torch.from_numpy(b)).strategy,
        }
    ours = [w for w in caught if "selection table" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    message = str(ours[0].message)
    assert str(path) in message and "xbackend tune" in message and "delete it" in message
    assert issubclass(ours[0].category, RuntimeWarning)
    assert chosen == expected
    assert_mul_sum_close(out_np, a, b)
    assert_mul_sum_close(out_torch, a, b)


def test_a_repaired_tuned_table_is_read_again():
    path = _selection.tuned_table_path()
    path.parent.mkdir(parents=True)
    path.write_text("[]")
    a, b = seeded()
    with pytest.warns(RuntimeWarning, match="selection table"):
        xbackend.choose(torch.from_numpy(a), torch.from_numpy(b))
    key = ("torch", "cpu", "float32", "short-wide")
    entries = [e for e in shipped_entries() if (e["library"], e["device"], e["dtype"], e["shape_class"]) == key]
    entries[0]["strategy"] = "torch-eager"
    _selection.write_table({"schema": _selection.SCHEMA, "entries": entries}, path)
    choice = xbackend.choose(torch.from_numpy(a), torch.from_numpy(b))
    assert choice.strategy == "torch-eager" and "tuned on this machine" in choice.source


# -- file modes of atomic writes -------------------------------------------------
@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("write", ["report", "table"])
def test_overwriting_keeps_the_files_mode(tmp_path, umask, write):
    path = tmp_path / "x.json"
    path.write_text("{}")
    path.chmod(0o644)
    umask(0o077)  # a new file would be 600: the existing mode must win
    document = {"schema": _selection.SCHEMA, "entries": []}
    if write == "report":
        report.write_json_atomic(path, document)
    else:
        _selection.write_table(document, path)
    assert mode(path) == 0o644
    assert json.loads(path.read_text()) == document
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary left behind


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_new_files_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    report.write_json_atomic(tmp_path / "r.json", {"a": 1})
    _selection.write_table({"schema": _selection.SCHEMA, "entries": []}, tmp_path / "t.json")
    assert mode(tmp_path / "r.json") == expected
    assert mode(tmp_path / "t.json") == expected


# -- bounded compiled kernels ------------------------------------------------------
def test_the_lru_evicts_the_least_recently_used_entry():
    from xbackend.core.cache import LRUCache

    cache = LRUCache(3)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # a is now the most recently used
    cache.put("d", "D")
    assert list(cache) == ["c", "a", "d"] and "b" not in cache and len(cache) == 3
    cache.clear()
    assert len(cache) == 0
    with pytest.raises(ValueError, match="capacity"):
        LRUCache(0)


def test_the_lru_can_be_shared_between_threads():
    # mul_sum's kernel cache is one per process: a get's move_to_end of a key another
    # thread had just evicted raised KeyError out of mul_sum (3 threads, 1100 shapes).
    from xbackend.core.cache import LRUCache

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    cache = LRUCache(2)
    failures = []

    def churn(seed):
        rng = np.random.default_rng(seed)
        try:
            for key in rng.integers(0, 6, 30_000).tolist():
                if cache.get(key) is None:
                    cache.put(key, key)
        except Exception as exc:
            failures.append(exc)

    try:
        threads = [threading.Thread(target=churn, args=(seed,)) for seed in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures and len(cache) == 2, failures[:3]


def test_an_input_whose_key_cannot_be_hashed_is_checked_on_every_call():
    class OnAList(np.ndarray):  # a device no dict can hold
        @property
        def device(self):
            return ["cpu"]

    rng = np.random.default_rng(9)
    a, b = (rng.standard_normal((5, 3)).view(OnAList) for _ in range(2))
    for call in (xbackend.mul_sum, xbackend.get_adapter("numpy-auto").mul_sum):
        for _ in range(2):
            assert_mul_sum_close(np.asarray(call(a, b)), np.asarray(a), np.asarray(b))


def test_jax_executables_are_capped_and_evicted_least_recently_used(monkeypatch):
    pytest.importorskip("jax")
    from xbackend.backends import jax as jax_backend

    monkeypatch.setattr(jax_backend, "EXECUTABLE_CACHE_SIZE", 3)
    adapter = jax_backend.JaxJit("cpu")  # a private instance, built with the small cap
    arrays = {n: seeded((n, 2048), seed=n) for n in (40, 41, 42, 43)}  # bandwidth-sized: compiled per shape
    device = {n: (adapter.asarray(a), adapter.asarray(b)) for n, (a, b) in arrays.items()}
    for n in (40, 41, 42):
        assert adapter.prepare(*device[n]) is not None  # compiled
    assert adapter.prepare(*device[40]) is None  # cached, and now the most recently used
    assert adapter.prepare(*device[43]) is not None
    assert len(adapter._executables) == 3
    assert adapter.prepare(*device[40]) is None  # kept
    assert adapter.prepare(*device[41]) is not None  # the least recently used was evicted: compiled again
    a, b = arrays[42]
    assert_mul_sum_close(adapter.mul_sum(*device[42]), a, b)


def test_mul_sum_kernels_are_capped_per_library(monkeypatch):
    from xbackend import dispatch
    from xbackend.backends import LIBRARIES

    monkeypatch.setitem(LIBRARIES, "numpy", __import__("dataclasses").replace(LIBRARIES["numpy"], kernel_cache_size=5))
    xbackend.clear_dispatch_cache()
    for n in range(1, 9):
        a, b = seeded((n, 3), seed=n)
        assert_mul_sum_close(xbackend.mul_sum(a, b), a, b)
    assert len(dispatch._KERNELS) == 5
    first, last = seeded((1, 3)), seeded((8, 3))
    assert dispatch._KERNELS.get(dispatch.dispatch_key(*first)) is None  # the oldest went
    assert dispatch._KERNELS.get(dispatch.dispatch_key(*last)) is not None


def test_small_jax_inputs_need_no_per_shape_compile():
    jax = pytest.importorskip("jax")
    compiled = [xbackend.get_adapter(name, "cpu")._executables for name in ("jax-jit", "jax-rows")]
    before = [len(cache) for cache in compiled]
    for n in range(2, 6):
        a, b = seeded((n, 7), seed=n)
        x, y = jax.device_put(a), jax.device_put(b)
        choice = xbackend.choose(x, y)
        assert choice.strategy == "jax-numpy" and choice.source == "rule"
        assert_mul_sum_close(xbackend.mul_sum(x, y), a, b)
    assert [len(cache) for cache in compiled] == before  # nothing compiled for the new shapes


def test_clear_caches_releases_every_compiled_executable():
    jax = pytest.importorskip("jax")
    from xbackend import dispatch

    xbackend.clear_caches()  # adapters are shared: an earlier test's compiled kernels would be counted here
    a, b = seeded((300, 32))
    x, y = jax.device_put(a), jax.device_put(b)
    xbackend.mul_sum(x, y)
    xbackend.mul_sum(torch.from_numpy(a), torch.from_numpy(b))
    jit = xbackend.get_adapter("jax-jit", "cpu")  # compiles per signature, whatever the table picks
    jit.mul_sum(x, y)
    compile_adapter = xbackend.get_adapter("torch-compile")
    big = seeded((300, 500), seed=3)
    compile_adapter.prepare(torch.from_numpy(big[0]), torch.from_numpy(big[1]))
    assert len(jit._executables) >= 1 and len(compile_adapter._compiled) == 1 and len(dispatch._KERNELS) >= 2
    xbackend.clear_caches()
    assert len(jit._executables) == 0 and len(compile_adapter._compiled) == 0 and len(dispatch._KERNELS) == 0
    assert_mul_sum_close(xbackend.mul_sum(x, y), a, b)
