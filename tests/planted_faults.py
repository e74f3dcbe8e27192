"""Deliberately wrong adapters: the correctness suite must fail on each of them.

Each subclasses a real adapter and breaks exactly one rule of the semantics.
``register()`` adds them to xbackend's registry so the plugin can select them
(``--xbackend=planted-drop-last-row``).
"""

from typing import Any

import numpy as np

import xbackend
from xbackend.backends.numpy import NumpyAdapter, broadcast_inputs
from xbackend.backends.torch import TorchEager
from xbackend.core.dtypes import numpy_dtype
from xbackend.core.semantics import Plan


class DropsLastRow(NumpyAdapter):
    """Sums rows 0 .. N-2: an off-by-one in the reduction."""

    name = "planted-drop-last-row"

    def _compute(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> Any:
        a, b = broadcast_inputs(a, b, plan)
        shorter = Plan((plan.n - 1, *plan.out_shape), plan.out_dtype, plan.acc_dtype)
        return self._zeros(plan, a) if shorter.n == 0 else super()._compute(a[:-1], b[:-1], shorter)


class AccumulatesInInputDtype(NumpyAdapter):
    """Sums float16 / bfloat16 products in float16 / bfloat16 (NumPy's own axis-0 sum)."""

    name = "planted-half-accumulator"

    def _compute(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> Any:
        a, b = broadcast_inputs(a, b, plan)
        return np.asarray(np.sum(a * b, axis=0, dtype=numpy_dtype(plan.out_dtype)))


class ConjugatesFirstInput(TorchEager):
    """Computes sum(conj(a) * b): what vecdot / vdot do, and the semantics forbid."""

    name = "planted-conjugate"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        return super()._compute(a.conj(), b, plan)


class NegatesResult(NumpyAdapter):
    """Returns ``-sum(a * b)``: a sign flip (what a lost negative bit does, W1 of issue 11)."""

    name = "planted-negate"

    def _compute(self, a: np.ndarray, b: np.ndarray, plan: Plan) -> Any:
        return -super()._compute(a, b, plan)


PLANTED = (DropsLastRow, AccumulatesInInputDtype, ConjugatesFirstInput, NegatesResult)


def register() -> None:
    for cls in PLANTED:
        xbackend.register_strategy(cls, replace=True)
