"""Which strategy ``xbackend.mul_sum`` runs: shape classes, the selection table, tuning, and the choice explained.

The choice is keyed on (library, device, dtype, shape class) and read from a
selection table: the per-machine table written by ``xbackend tune`` when one
exists (``$XDG_CACHE_HOME/xbackend/selection-<machine id>.json``), else the
table shipped in the package (``xbackend/selection.json``, made by
``xbackend select --from compare.json``). A table entry names the strategy
with the lowest median time in a measured ``xbackend compare`` run, with the
figures that justified it. Where no entry matches the dtype, the float32 entry
of the same class is used if that strategy supports the dtype; otherwise the
library's default strategy runs. ``choose`` says which and why.

Only the standard library and NumPy are imported here.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

SCHEMA = "xbackend.selection/1"
SHIPPED_TABLE = Path(__file__).with_name("selection.json")
# Below this many input bytes a call measures per-call overhead, not bandwidth.
LATENCY_BYTES = 64 * 1024
# N/K (or K/N) beyond which a shape is tall-skinny (short-wide).
ELONGATION = 16
# Libraries whose own strategies are chosen from the table; others run their default.
SELECTABLE_LIBRARIES = ("numpy", "torch", "jax", "cupy")
FALLBACK_DTYPE = "float32"


# -- shape classes (the vocabulary of xbackend.measure.SHAPE_CLASSES) ---------
def classify(shape: Sequence[int], itemsize: int) -> str:
    """The shape class of a reduction over dim 0 of ``shape`` (K = product of the trailing dims).

    latency: both inputs under ``LATENCY_BYTES``; column: K == 1; short-wide:
    K >= 16 N; tall-skinny: N >= 16 K; square otherwise.
    """
    n = int(shape[0]) if len(shape) else 1
    k = math.prod(int(d) for d in shape[1:])
    if 2 * n * k * itemsize < LATENCY_BYTES:
        return "latency"
    if k == 1:
        return "column"
    if k >= ELONGATION * n:
        return "short-wide"
    if n >= ELONGATION * k:
        return "tall-skinny"
    return "square"


def _itemsize(dtype: str) -> int:
    from ._numpy import numpy_dtype

    return numpy_dtype(dtype).itemsize


# -- the choice ---------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    """The strategy ``mul_sum`` runs for one (library, device, dtype, shape class), and why."""

    strategy: str
    library: str
    device: str
    dtype: str
    shape_class: str
    source: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.library} {self.dtype} on {self.device}, {self.shape_class}: {self.strategy} "
            f"({self.source}): {self.reason}"
        )


def choose(a: Any, b: Any) -> Choice:
    """The strategy ``xbackend.mul_sum(a, b)`` runs, and why (inputs are validated first)."""
    from . import _registry

    library, device, plan = _registry.resolve_inputs(a, b)
    if library == "jax" and _registry.is_sharded(a):
        return Choice(_registry.SHARDED_JAX_STRATEGY, library, device, plan.out_dtype, "-", "rule",
                      "the input is sharded over several devices: jax-sharded keeps it there")
    return choose_for(library, device, plan.full_shape, plan.out_dtype)


def explain(a: Any, b: Any) -> str:
    """``str(choose(a, b))``: which strategy runs on these inputs, and why."""
    return str(choose(a, b))


def choose_for(library: str, device: str, shape: Sequence[int], dtype: str) -> Choice:
    """The strategy for ``library`` arrays of ``dtype`` on ``device`` whose broadcast shape is ``shape``."""
    from . import _registry

    shape_class = classify(shape, _itemsize(dtype))
    default = _registry.DEFAULT_STRATEGY[library]
    if library not in SELECTABLE_LIBRARIES:
        return Choice(default, library, device, dtype, shape_class, "default", f"{library} has one strategy")
    for source, table in _tables():
        entry = table.get((library, device, dtype, shape_class))
        if entry and _runs(entry["strategy"], device, dtype):
            return Choice(entry["strategy"], library, device, dtype, shape_class, source, _measured(entry))
    for source, table in _tables():
        entry = table.get((library, device, FALLBACK_DTYPE, shape_class))
        if entry and _runs(entry["strategy"], device, dtype):
            reason = f"no {dtype} measurement; {FALLBACK_DTYPE} {_measured(entry)}"
            return Choice(entry["strategy"], library, device, dtype, shape_class, source, reason)
    return Choice(default, library, device, dtype, shape_class, "default",
                  f"no measured entry for {library} {dtype} on {device}, {shape_class}: the library's default strategy")


def _measured(entry: dict[str, Any]) -> str:
    fraction = entry.get("fraction_of_floor")
    figure = f"{fraction:.2f} of the floor" if fraction is not None else f"{entry['median_s'] * 1e6:.3g} us per call"
    others = ", ".join(
        f"{name} {value:.2f}" if entry.get("fraction_of_floor") is not None else f"{name} {value * 1e6:.3g} us"
        for name, value in entry.get("alternatives", {}).items()
    )
    text = f"fastest measured: {figure} at {'x'.join(map(str, entry['shape']))}"
    return text + (f" (others: {others})" if others else "")


def _runs(strategy: str, device: str, dtype: str) -> bool:
    """Whether ``strategy`` is registered, runs on ``device`` here, and computes ``dtype``."""
    from . import _registry
    from ._errors import AdapterUnavailable

    cls = _registry.STRATEGIES.get(strategy)
    if cls is None or device not in cls.devices:
        return False
    try:
        return dtype not in _registry.get_adapter(strategy, device).unsupported_dtypes()
    except AdapterUnavailable:
        return False


# -- tables -------------------------------------------------------------------
TableKey = tuple[str, str, str, str]


def machine_id() -> str:
    """A short stable id of this machine: host name, CPU model and count."""
    from ._probes import cpu_count, cpu_model

    text = f"{platform.node()}|{platform.machine()}|{cpu_model()}|{cpu_count()}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def tuned_table_path() -> Path:
    """Where ``xbackend tune`` caches this machine's table (``XDG_CACHE_HOME`` respected)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xbackend" / f"selection-{machine_id()}.json"


def _tables() -> list[tuple[str, dict[TableKey, dict[str, Any]]]]:
    """(source, entries by key): the tuned table first when present, then the shipped one."""
    found = []
    tuned = tuned_table_path()
    for source, path in ((f"tuned on this machine: {tuned}", tuned), ("shipped table xbackend/selection.json", SHIPPED_TABLE)):
        entries = _load(str(path), _mtime(path))
        if entries:
            found.append((source, entries))
    return found


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float | None) -> dict[TableKey, dict[str, Any]]:
    if mtime is None:
        return {}
    document = json.loads(Path(path).read_text())
    if document.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not a selection table (schema {document.get('schema')!r}, expected {SCHEMA!r})")
    return {_key(entry): entry for entry in document["entries"]}


def _key(entry: dict[str, Any]) -> TableKey:
    return (entry["library"], entry["device"], entry["dtype"], entry["shape_class"])


def invalidate() -> None:
    """Forget loaded tables and ``mul_sum``'s cached choices (after a table was written)."""
    from . import _registry

    _load.cache_clear()
    _registry.clear_dispatch_cache()


def build_table(documents: Iterable[dict[str, Any]], command: str) -> dict[str, Any]:
    """A selection table from ``xbackend compare`` reports: per key, the strategy with the lowest median.

    Only correct cells count (status ok, error within the bound) of strategies
    that may be selected; ``alternatives`` keeps the others' fractions of the
    floor (or median seconds for latency cells).
    """
    from ._registry import STRATEGIES

    groups: dict[TableKey, list[dict[str, Any]]] = {}
    sources = []
    for document in documents:
        if document.get("schema") != "xbackend.compare/1":
            raise ValueError(f"not an xbackend compare report (schema {document.get('schema')!r})")
        sources.append({key: document.get(key) for key in ("created_utc", "machine", "frameworks", "threads", "options")})
        for cell in document["cells"]:
            cls = STRATEGIES.get(cell["adapter"])
            if cls is None or not cls.selectable or cls.framework not in SELECTABLE_LIBRARIES or not _correct(cell):
                continue
            key = (cls.framework, cell["device"], cell["dtype"], classify(cell["shape"], _itemsize(cell["dtype"])))
            groups.setdefault(key, []).append(cell)
    entries = [_entry(key, cells) for key, cells in sorted(groups.items())]
    return {
        "schema": SCHEMA,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "rule": "per (library, device, dtype, shape class): the strategy with the lowest median time among correct cells",
        "sources": sources,
        "entries": entries,
    }


def _correct(cell: dict[str, Any]) -> bool:
    ratio = cell.get("error_ratio")
    return cell["status"] == "ok" and not cell.get("error_failure") and isinstance(ratio, (int, float)) and ratio <= 1


def _entry(key: TableKey, cells: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = sorted(cells, key=lambda cell: cell["median_s"])
    best = ranked[0]
    bandwidth = best.get("fraction_of_floor") is not None
    alternatives = {
        cell["adapter"]: round(cell["fraction_of_floor"] if bandwidth else cell["median_s"], 9 if not bandwidth else 3)
        for cell in ranked[1:]
        if not bandwidth or cell.get("fraction_of_floor") is not None
    }
    library, device, dtype, shape_class = key
    return {
        "library": library, "device": device, "dtype": dtype, "shape_class": shape_class,
        "strategy": best["adapter"],
        "shape": best["shape"],
        "median_s": best["median_s"],
        "fraction_of_floor": None if not bandwidth else round(best["fraction_of_floor"], 3),
        "floor_gbps": best.get("floor_gbps"),
        "alternatives": alternatives,
    }


def write_table(table: dict[str, Any], path: Path) -> None:
    """Write ``table`` as JSON (atomically) and make the next ``mul_sum`` calls use it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(table, indent=1) + "\n")
    os.replace(temporary, path)
    invalidate()


def candidate_pairs(libraries: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Every selectable (strategy, device) pair of ``libraries`` (default: all) that can run here."""
    from ._registry import STRATEGIES

    wanted = libraries or SELECTABLE_LIBRARIES
    unknown = set(wanted) - set(SELECTABLE_LIBRARIES)
    if unknown:
        raise ValueError(f"unknown librar{'y' if len(unknown) == 1 else 'ies'} {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(SELECTABLE_LIBRARIES)}")
    return [
        (name, device)
        for name, cls in STRATEGIES.items()
        if cls.selectable and cls.framework in wanted
        for device in cls.devices
        if cls.unavailable_reason(device) is None
    ]


def tune(options: Any, *, path: Path | None = None, progress: Any = None) -> tuple[Path, dict[str, Any]]:
    """Measure the candidate strategies on this machine (``options``: ``compare.CompareOptions``) and cache the table.

    Returns where the table was written (default: ``tuned_table_path()``) and the table.
    """
    from .compare import run_compare

    document = run_compare(options, progress=progress)
    table = build_table([document], command="xbackend tune (on this machine)")
    target = path or tuned_table_path()
    write_table(table, target)
    return target, table


class Selected:
    """Mixin for a framework's ``<library>-auto`` adapter: ``xbackend.mul_sum`` itself, measurable like a strategy.

    Its ``mul_sum`` checks the inputs against this adapter's device once per
    input signature, then calls ``xbackend.mul_sum``, so ``xbackend compare``
    and the asv suite time exactly what users call (selection and dispatch
    included). ``default`` names the library's default strategy, whose dtypes
    it supports.
    """

    selectable: ClassVar[bool] = False
    default: ClassVar[str]
    formulation = "xbackend.mul_sum: the strategy the selection table picks for the input (xbackend explain says which)"

    def __init__(self, device: str) -> None:
        super().__init__(device)  # type: ignore[call-arg]
        self._checked: set[Any] = set()
        self._used: dict[str, Any] = {}

    def _chosen(self, a: Any, b: Any) -> Any:
        from ._registry import get_adapter

        choice = choose(a, b)
        adapter = self._used.get(choice.strategy) or get_adapter(choice.strategy, self.device)
        self._used[choice.strategy] = adapter
        return adapter

    def mul_sum(self, a: Any, b: Any) -> Any:
        from ._registry import dispatch_key, mul_sum

        key = dispatch_key(a, b)
        if key is None or key not in self._checked:
            self.plan(a, b)  # type: ignore[attr-defined]
            if key is not None:
                self._checked.add(key)
        return mul_sum(a, b)

    def _compute(self, a: Any, b: Any, plan: Any) -> Any:
        return self._chosen(a, b)._compute(a, b, plan)

    def prepare(self, a: Any, b: Any) -> float | None:
        plan = self.plan(a, b)  # type: ignore[attr-defined]
        return None if plan.n == 0 else self._chosen(a, b).prepare(a, b)

    def synchronize(self, *arrays: Any) -> None:
        for adapter in self._used.values():
            adapter.synchronize(*arrays)
        super().synchronize(*arrays)  # type: ignore[misc]

    def extra_memory(self, a: Any, b: Any) -> Any:
        return self._chosen(a, b).extra_memory(a, b)

    def unsupported_dtypes(self) -> frozenset[str]:
        from ._registry import get_adapter

        return get_adapter(self.default, self.device).unsupported_dtypes()  # type: ignore[attr-defined]
