"""xbackend: the dim-0 multiply-sum ``out = sum(a * b, axis=0)`` across NumPy, PyTorch, JAX and CuPy.

``import xbackend`` imports NumPy only; a framework is imported the first time
one of its adapters is used.

The package is layered; each layer imports only from the layers before it
(``tests/test_layers.py`` keeps it so):

1. ``core``: dtypes, semantics, shape classes, probes, errors (no framework, no registry)
2. ``backends``: the adapter interface and one module per library, each with its ``Library`` record
3. ``registry``: every strategy by name
4. ``selection``: the selection tables (read, build, write)
5. ``dispatch``: ``mul_sum``, ``choose``/``explain``, the ``<library>-auto`` adapters
6. ``testing``: the exact oracle and bounds, the correctness sweep, the pytest plugin
7. ``measure``: timing, floors, memory, error, the one grid runner
8. ``compare``, ``report``: the comparison report and tuning
9. ``cli``: the ``xbackend`` command
"""

from .backends import LIBRARIES, Library
from .backends.base import Adapter
from .core.errors import AdapterUnavailable, UnsupportedDtypeError
from .core.semantics import Plan, plan_mul_sum
from .core.shapes import classify
from .dispatch import Choice, choose, clear_caches, clear_dispatch_cache, explain, mul_sum
from .registry import AdapterInfo, adapters, get_adapter, register_strategy, registered, unregister_strategy

__all__ = [
    "LIBRARIES",
    "Adapter",
    "AdapterInfo",
    "AdapterUnavailable",
    "Choice",
    "Library",
    "Plan",
    "UnsupportedDtypeError",
    "adapters",
    "choose",
    "classify",
    "clear_caches",
    "clear_dispatch_cache",
    "explain",
    "get_adapter",
    "mul_sum",
    "plan_mul_sum",
    "register_strategy",
    "registered",
    "unregister_strategy",
]

__version__ = "0.1.0"
