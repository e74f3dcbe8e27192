"""Deliberately wrong torch strategies for the transform tests (``tests/test_transforms.py``).

Each subclasses ``torch-eager`` and breaks one rule that plain-array checks
cannot see: the value is right on ordinary inputs, the transform is not.
"""

from typing import Any

from xbackend.backends.torch import TorchEager
from xbackend.core.semantics import Plan


class DetachedResult(TorchEager):
    """Computes the right value on detached inputs: autograd loses the graph (what a NumPy forward does)."""

    name = "planted-detached"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        return super()._compute(a.detach(), b.detach(), plan)


class WrongGradient(TorchEager):
    """The right forward with a hand-written backward that uses ``grad_a = grad_out * a``."""

    name = "planted-wrong-gradient"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        return _wrong_gradient_function(self.torch).apply(a, b, self, plan)


def _wrong_gradient_function(torch: Any) -> Any:
    class MulSum(torch.autograd.Function):
        @staticmethod
        def forward(a: Any, b: Any, adapter: TorchEager, plan: Plan) -> Any:
            return TorchEager._compute(adapter, a, b, plan)

        @staticmethod
        def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
            a, b, _, _ = inputs
            ctx.save_for_backward(a, b)

        @staticmethod
        def backward(ctx: Any, grad_out: Any) -> tuple[Any, ...]:
            a, b = ctx.saved_tensors
            return grad_out * a, grad_out * a, None, None  # should be grad_out * b, grad_out * a

    return MulSum


class IgnoresNegativeBit(TorchEager):
    """Reads a lazily negated view's storage as it is (what inductor does: pytorch#145093)."""

    name = "planted-ignores-negative-bit"

    def _compute(self, a: Any, b: Any, plan: Plan) -> Any:
        # _neg_view of a negated view toggles the bit off: the raw storage, un-negated.
        raw = [self.torch._neg_view(x) if x.is_neg() else x for x in (a, b)]
        return super()._compute(*raw, plan)
