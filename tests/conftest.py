import os
import tempfile

import pytest

# JAX must be told before it is imported: the suite checks float64, int64 and
# complex128 on JAX too. The x64-off refusal is tested in a subprocess.
os.environ.setdefault("JAX_ENABLE_X64", "1")
# Pinned for every JAX strategy the suite may check: on NVIDIA GPUs JAX's default
# float32 dot_general precision is TF32 (u = 2**-11). jax-jit itself does no
# dot_general and is tested with the permissive setting too (docs/numerics.md).
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
# On a GPU, JAX would take 75% of the memory when its backend starts, starving
# torch and CuPy in the same test process.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# mul_sum's first-call trial writes this machine's wisdom file under the cache
# folder: the suite keeps it out of the developer's ~/.cache (test files that
# test tables and trials point it at their own tmp folders).
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="xbackend-tests-cache-")

# pytester runs the plugin and the property suite in scratch directories
# (tests/test_plugin.py, tests/test_faults.py).
pytest_plugins = ["pytester"]


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A private per-machine cache, and no table of the developer's machine leaking in."""
    import xbackend

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    xbackend.clear_dispatch_cache()
    yield
    xbackend.clear_dispatch_cache()
