"""Every strategy by name: registration, lookup, and what can run here.

The backends' strategies are registered when this module loads; the
``<library>-auto`` adapters (``xbackend.dispatch``) and users' own strategies
join through ``register_strategy``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .backends import strategy_classes
from .backends.base import Adapter, require

STRATEGIES: dict[str, type[Adapter]] = {cls.name: cls for cls in strategy_classes()}


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    framework: str
    device: str
    available: bool
    reason: str | None
    version: str | None
    formulation: str


def adapters() -> list[AdapterInfo]:
    """Every registered (strategy, device) pair, with whether it can run here and why not.

    Checking a device imports that framework.
    """
    return [
        AdapterInfo(
            name=cls.name,
            framework=cls.framework,
            device=device,
            available=(reason := cls.unavailable_reason(device)) is None,
            reason=reason,
            version=cls.framework_version(),
            formulation=cls.formulation,
        )
        for cls in STRATEGIES.values()
        for device in cls.devices
    ]


_instances: dict[tuple[str, str], Adapter] = {}


def get_adapter(name: str, device: str | None = None) -> Adapter:
    """The adapter for strategy ``name`` on ``device`` (default: the strategy's first device).

    Raises ``ValueError`` for an unknown name or device and ``AdapterUnavailable``
    (with the reason) when it cannot run here.
    """
    try:
        cls = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown adapter {name!r}; known: {', '.join(STRATEGIES)}") from None
    device = cls.devices[0] if device is None else device
    if device not in cls.devices:
        raise ValueError(f"adapter {name!r} runs on {', '.join(cls.devices)}, not {device!r}")
    key = (name, device)
    if key not in _instances:
        require(cls, device)
        _instances[key] = cls(device)
    return _instances[key]


def instantiated() -> list[Adapter]:
    """Every adapter ``get_adapter`` has made so far (what holds compiled executables)."""
    return list(_instances.values())


def register_strategy(cls: type[Adapter], *, replace: bool = False) -> type[Adapter]:
    """Add strategy ``cls`` (an ``Adapter`` subclass) under ``cls.name``; usable as a class decorator.

    Registering a name twice raises ``ValueError`` unless ``replace`` is true.
    """
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise TypeError(f"register_strategy takes an Adapter subclass, not {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__qualname__} has no strategy name (class attribute 'name')")
    if name in STRATEGIES and STRATEGIES[name] is not cls and not replace:
        raise ValueError(f"a strategy named {name!r} is registered already ({STRATEGIES[name].__qualname__})")
    STRATEGIES[name] = cls
    _forget(name)
    return cls


def unregister_strategy(name: str) -> None:
    """Remove strategy ``name`` (``KeyError`` if it is not registered)."""
    del STRATEGIES[name]
    _forget(name)


@contextlib.contextmanager
def registered(cls: type[Adapter]) -> Iterator[type[Adapter]]:
    """Register ``cls`` for the duration of a ``with`` block (tests), restoring what it replaced."""
    previous = STRATEGIES.get(cls.name)
    register_strategy(cls, replace=True)
    try:
        yield cls
    finally:
        if previous is None:
            unregister_strategy(cls.name)
        else:
            register_strategy(previous, replace=True)


# Called whenever the set of strategies changes (layers above cache choices: dispatch).
_listeners: list[Callable[[], None]] = []


def on_change(listener: Callable[[], None]) -> None:
    """Call ``listener()`` whenever a strategy is registered or removed."""
    _listeners.append(listener)


def _forget(name: str) -> None:
    for key in [key for key in _instances if key[0] == name]:
        del _instances[key]
    for listener in _listeners:
        listener()
