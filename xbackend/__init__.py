"""xbackend: the dim-0 multiply-sum ``out = sum(a * b, axis=0)`` across NumPy, PyTorch, JAX and CuPy.

``import xbackend`` imports NumPy only; a framework is imported the first time
one of its adapters is used.
"""

from ._adapter import Adapter
from ._errors import AdapterUnavailable, UnsupportedDtypeError
from ._registry import AdapterInfo, adapters, get_adapter, mul_sum
from ._selection import Choice, choose, explain
from ._semantics import Plan, plan_mul_sum

__all__ = [
    "Adapter",
    "AdapterInfo",
    "AdapterUnavailable",
    "Choice",
    "Plan",
    "UnsupportedDtypeError",
    "adapters",
    "choose",
    "explain",
    "get_adapter",
    "mul_sum",
    "plan_mul_sum",
]

__version__ = "0.1.0"
