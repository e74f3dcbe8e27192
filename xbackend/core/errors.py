"""Exceptions shared by every adapter, so one mistake raises one class everywhere."""


class AdapterUnavailable(RuntimeError):
    """The adapter cannot run here; ``str(exc)`` says what a person can do about it."""


class UnsupportedDtypeError(TypeError):
    """The adapter cannot honour this dtype without losing precision or range."""
