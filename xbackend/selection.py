"""The selection table: which strategy was measured fastest per (library, device, dtype, shape class).

Two tables are read: the per-machine table written by ``xbackend tune``
(``$XDG_CACHE_HOME/xbackend/selection-<machine id>.json``) first, then the
table shipped in the package (``xbackend/selection.json``, made by ``xbackend
select --from compare.json``). An entry names the strategy with the lowest
median time among the correct cells of a measured ``xbackend compare`` run,
with the figures that justified it.

A table is read defensively: a file that cannot be read or parsed, or an entry
that does not name a registered strategy of its own library, is reported once
with ``warnings.warn`` (naming the file and the fix) and skipped, so a damaged
cache never breaks ``mul_sum``. This module only reads, builds and writes
tables; ``xbackend.dispatch`` decides with them.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .backends import LIBRARIES, SELECTABLE_LIBRARIES
from .core.dtypes import check_supported, numpy_dtype
from .core.files import write_text_atomic
from .core.probes import cpu_count, cpu_model
from .core.shapes import classify
from .registry import STRATEGIES

SCHEMA = "xbackend.selection/1"
SHIPPED_TABLE = Path(__file__).with_name("selection.json")
# A table entry for another dtype stands in for this one where no entry matches.
FALLBACK_DTYPE = "float32"
ENTRY_KEYS = ("library", "device", "dtype", "shape_class", "strategy")

TableKey = tuple[str, str, str, str]


def shape_class_of(shape: Sequence[int], dtype: str) -> str:
    return classify(shape, numpy_dtype(dtype).itemsize)


# -- where tables live --------------------------------------------------------
def machine_id() -> str:
    """A short stable id of this machine: host name, CPU model and count."""
    text = f"{platform.node()}|{platform.machine()}|{cpu_model()}|{cpu_count()}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def tuned_table_path() -> Path:
    """Where ``xbackend tune`` caches this machine's table (``XDG_CACHE_HOME`` respected)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "xbackend" / f"selection-{machine_id()}.json"


# -- wisdom: what mul_sum's first-call trials found on this machine ------------
WISDOM_SCHEMA = "xbackend.wisdom/1"


def wisdom_path() -> Path:
    """Where ``mul_sum``'s trials persist their choices: next to the tuned table, one file per machine."""
    return tuned_table_path().with_name(f"wisdom-{machine_id()}.json")


# The strategies a trial times live here: a trial is valid for this code only.
STRATEGY_SOURCES = Path(__file__).with_name("backends")


@functools.cache
def strategies_fingerprint() -> str:
    """A digest of the strategies' source (``xbackend/backends/*.py``): it changes whenever a kernel does."""
    digest = hashlib.sha1()
    for source in sorted(STRATEGY_SOURCES.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def library_versions() -> dict[str, str | None]:
    """Every selectable library's distributions and their versions, and xbackend's strategies: a trial is valid
    for these only (a trial of an older kernel says nothing of today's)."""
    versions: dict[str, str | None] = {"xbackend strategies": strategies_fingerprint()}
    for name in SELECTABLE_LIBRARIES:
        for distribution in LIBRARIES[name].distributions:
            try:
                versions[distribution] = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                versions[distribution] = None
    return versions


def wisdom() -> dict[TableKey, dict[str, Any]]:
    """This machine's trial results by key; a corrupt or foreign file warns once and counts as empty."""
    path = wisdom_path()
    return _load_wisdom(str(path), _stamp(path))


@functools.lru_cache(maxsize=4)
def _load_wisdom(path: str, stamp: tuple[float, int] | None) -> dict[TableKey, dict[str, Any]]:
    if stamp is None:
        return {}
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("schema") != WISDOM_SCHEMA:
            raise ValueError(
                f"not a wisdom file (schema {document.get('schema') if isinstance(document, dict) else None!r})"
            )
        entries = document.get("entries")
        if not isinstance(entries, list):
            raise ValueError("its 'entries' is not a list")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _warn_wisdom(path, f"cannot be used ({type(exc).__name__}: {exc})")
        return {}
    if document.get("machine") != machine_id() or document.get("versions") != library_versions():
        _warn_wisdom(path, "was written on another machine, for other library versions or other xbackend strategies")
        return {}
    usable = [entry for entry in entries if isinstance(entry, dict) and _valid(entry) and _valid_trial(entry)]
    if len(usable) < len(entries):
        damaged = len(entries) - len(usable)
        _warn_wisdom(path, f"has {damaged} unusable entries", "they are ignored and their keys tried again")
    return {_key(entry): entry for entry in usable}


def _valid_trial(entry: dict[str, Any]) -> bool:
    """Whether a wisdom entry has the figures ``explain`` prints: a trial's medians, cost, shape and rounds."""
    medians, shape, rounds = entry.get("median_s"), entry.get("shape"), entry.get("in_rounds", [])
    return (
        isinstance(medians, dict)
        and all(isinstance(name, str) and _is_seconds(value) for name, value in medians.items())
        and _is_seconds(entry.get("trial_s"))
        and isinstance(shape, list)
        and all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
        and isinstance(rounds, list)
        and all(isinstance(name, str) for name in rounds)
    )


def _is_seconds(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _warn_wisdom(path: str, problem: str, consequence: str = "it is ignored and replaced by the next trial") -> None:
    warnings.warn(
        f"xbackend: the wisdom file {path} {problem}; {consequence} (delete it to silence this)",
        RuntimeWarning,
        stacklevel=5,
    )


def record_wisdom(entry: dict[str, Any]) -> Path:
    """Add one trial's result to this machine's wisdom file (replacing its key's entry), atomically."""
    path = wisdom_path()
    entries = {key: value for key, value in wisdom().items() if key != _key(entry)}
    entries[_key(entry)] = entry
    document = {
        "schema": WISDOM_SCHEMA,
        "machine": machine_id(),
        "versions": library_versions(),
        "entries": [entries[key] for key in sorted(entries)],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(document, indent=1) + "\n")
    return path


# -- reading ------------------------------------------------------------------
def tables() -> list[tuple[str, dict[TableKey, dict[str, Any]]]]:
    """(source, entries by key): the tuned table first when present, then the shipped one."""
    tuned = tuned_table_path()
    candidates = ((f"tuned on this machine: {tuned}", tuned), ("shipped table xbackend/selection.json", SHIPPED_TABLE))
    found = []
    for source, path in candidates:
        entries = _load(str(path), _stamp(path))
        if entries:
            found.append((source, entries))
    return found


def entries_for(key: TableKey) -> Iterator[tuple[str, dict[str, Any]]]:
    """(source, entry) of every table holding ``key``, the tuned table first."""
    for source, table in tables():
        entry = table.get(key)
        if entry is not None:
            yield source, entry


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime, status.st_size


@functools.lru_cache(maxsize=8)
def _load(path: str, stamp: tuple[float, int] | None) -> dict[TableKey, dict[str, Any]]:
    # Cached per (path, mtime, size): a damaged file warns once, a rewritten one is read again.
    if stamp is None:
        return {}
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = _entries(document)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        _warn(path, f"cannot be used ({type(exc).__name__}: {exc})")
        return {}
    good = {_key(entry): entry for entry in entries if _valid(entry)}
    if len(good) < len(entries):
        _warn(
            path,
            f"has {len(entries) - len(good)} entries that name no registered strategy of their library; "
            "they are ignored",
        )
    return good


def _entries(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"not a selection table (schema {found!r}, expected {SCHEMA!r})")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise ValueError("its 'entries' is not a list")
    return [entry for entry in entries if isinstance(entry, dict)]


def _valid(entry: dict[str, Any]) -> bool:
    if not all(isinstance(entry.get(key), str) for key in ENTRY_KEYS):
        return False
    cls = STRATEGIES.get(entry["strategy"])
    return cls is not None and cls.selectable and cls.framework == entry["library"] and entry["device"] in cls.devices


def _warn(path: str, problem: str) -> None:
    fix = "run `xbackend tune` again or delete it" if Path(path) != SHIPPED_TABLE else "reinstall xbackend"
    warnings.warn(f"xbackend: the selection table {path} {problem}; falling back ({fix})", RuntimeWarning, stacklevel=4)


def _key(entry: dict[str, Any]) -> TableKey:
    return (entry["library"], entry["device"], entry["dtype"], entry["shape_class"])


def forget_loaded() -> None:
    """Read every table and the wisdom file afresh at the next lookup."""
    _load.cache_clear()
    _load_wisdom.cache_clear()


# -- building -----------------------------------------------------------------
def build_table(documents: Iterable[dict[str, Any]], command: str, *, load: int = 0) -> dict[str, Any]:
    """A selection table from ``xbackend compare`` reports: per key, the strategy with the lowest median per element.

    Only correct cells count (status ok, error within the bound) of strategies
    that may be selected; ``alternatives`` keeps the others' fractions of the
    floor (or median seconds for latency cells).

    A table is for one scenario: every report must have been measured under
    ``load`` busy background processes (``xbackend compare --load``; 0, the
    quiet machine, by default), else ``ValueError``. A loaded report's medians
    would otherwise lose to a quiet one's and decide nothing, or win a key alone
    and put a busy machine's choice into the quiet machine's table. The table
    records its ``load``.
    """
    groups: dict[TableKey, list[dict[str, Any]]] = {}
    sources = []
    for document in documents:
        if not isinstance(document, dict) or document.get("schema") != "xbackend.compare/1":
            found = document.get("schema") if isinstance(document, dict) else type(document).__name__
            raise ValueError(f"not an xbackend compare report (schema {found!r})")
        _check_scenario(report_load(document), load)
        sources.append(
            {key: document.get(key) for key in ("created_utc", "machine", "frameworks", "threads", "options")}
        )
        cells = document.get("cells", [])
        if not isinstance(cells, list) or not all(isinstance(cell, dict) for cell in cells):
            raise ValueError("its 'cells' is not a list of cells (objects)")
        for cell in cells:
            _group_cell(groups, cell)
    return {
        "schema": SCHEMA,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command,
        "rule": (
            "per (library, device, dtype, shape class): the strategy with the lowest median time per element among "
            "correct cells; the library's default strategy where its median is within the fastest cell's p80"
        ),
        "load": load,
        "sources": sources,
        "entries": [_entry(key, cells) for key, cells in sorted(groups.items())],
    }


def report_load(document: dict[str, Any]) -> int:
    """The background load a compare report was measured under (``options.load``; absent in older reports: 0)."""
    options = document.get("options")
    load = options.get("load", 0) if isinstance(options, dict) else 0
    if isinstance(load, bool) or not isinstance(load, int) or load < 0:
        raise ValueError(f"its options.load is {load!r}; a load is a count of background processes (>= 0)")
    return load


def _check_scenario(found: int, load: int) -> None:
    if found == load:
        return
    measured = f"was measured under a background load of {found} busy process(es) (--load {found})"
    if load == 0:
        raise ValueError(
            f"it {measured}; a table for the quiet machine takes only unloaded reports "
            f"(pass --load {found} to build a table for that loaded scenario)"
        )
    raised = measured if found else "was measured without a background load"
    raise ValueError(f"it {raised}, but this table is for --load {load}; a table takes reports of one load only")


def _group_cell(groups: dict[TableKey, list[dict[str, Any]]], cell: dict[str, Any]) -> None:
    cls = STRATEGIES.get(cell.get("adapter", ""))
    if cls is None or not cls.selectable or cls.framework not in SELECTABLE_LIBRARIES or not _correct(cell):
        return
    shape_class = _checked_class(cell)
    groups.setdefault((cls.framework, cell["device"], cell["dtype"], shape_class), []).append(cell)


def _checked_class(cell: dict[str, Any]) -> str:
    """The shape class of a report cell; ``ValueError`` naming the cell's adapter and field when one is malformed."""
    where = f"a cell of {cell.get('adapter')!r}"
    shape, dtype, median = cell.get("shape"), cell.get("dtype"), cell.get("median_s")
    if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError(f"{where} has shape {shape!r}; a shape is a list of non-negative integers")
    if not isinstance(cell.get("device"), str):
        raise ValueError(f"{where} has no device name")
    # NaN would not sort (a NaN first in a report would win its key); 0 or less is no measurement.
    if not isinstance(median, (int, float)) or isinstance(median, bool) or not 0 < median < math.inf:
        raise ValueError(f"{where} has median_s {median!r}; a positive, finite number of seconds is needed")
    # The default strategy's tie rule scales by p80 / median: an infinite or huge p80
    # would hand every key to the default, a string or list would fail mid-build.
    p80 = cell.get("p80_s")
    if p80 is not None and (not isinstance(p80, (int, float)) or isinstance(p80, bool) or not median <= p80 < math.inf):
        raise ValueError(f"{where} has p80_s {p80!r}; a finite number of seconds at least its median_s is needed")
    try:
        check_supported(dtype, where=where)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    return shape_class_of(shape, dtype)


def _correct(cell: dict[str, Any]) -> bool:
    ratio = cell.get("error_ratio")
    return (
        cell.get("status") == "ok" and not cell.get("error_failure") and isinstance(ratio, (int, float)) and ratio <= 1
    )


def _median_or_inf(cell: dict[str, Any]) -> float:
    median = cell.get("median_s")
    return float(median) if isinstance(median, int | float) and 0 < median < math.inf else math.inf


def _seconds_per_element(cell: dict[str, Any]) -> float:
    # Reports of one shape class may have measured different shapes (the quick grid's
    # tall-skinny is a quarter of the full one's): their medians compare per element.
    return _median_or_inf(cell) / max(1, math.prod(cell.get("shape") or ()))


def fraction_of(cell: dict[str, Any]) -> float | None:
    """A report cell's fraction of the floor, where it has a real one (bandwidth cells)."""
    fraction = cell.get("fraction_of_floor")
    return float(fraction) if isinstance(fraction, int | float) and 0 < fraction < math.inf else None


def backend_of(cell: dict[str, Any]) -> str:
    """A report cell's backend: its framework on its device."""
    return f"{cell.get('framework')} on {cell.get('device')}"


def cell_costs(group: list[dict[str, Any]]) -> list[float]:
    """Each cell's cost among cells of one shape class and dtype, lower faster.

    1 / its fraction of the floor where every cell has one: a fraction is timed
    in the cell's own rounds beside the floor, while GB/s of cells timed minutes
    apart differ by the machine's drift (on the 2-vCPU Xeon VM a torch-numba
    cell read 12.2 GB/s in a slow spell whose floor read 13.7, while
    torch-compile read 14.0 against 34.1). Otherwise (latency cells) its median
    per element.
    """
    fractions = [fraction_of(cell) for cell in group]
    if any(fraction is None for fraction in fractions):
        return [_seconds_per_element(cell) for cell in group]
    return [1 / fraction for fraction in fractions if fraction is not None]


def mark_fastest(cells: list[dict[str, Any]]) -> None:
    """Set ``fastest`` on each cell: the lowest cost (``cell_costs``) among its backend's strategies for that shape and dtype.

    ``rivals`` counts the backend's other strategies measured there: a win
    without rivals is trivial, and the table marks only contested wins.
    """
    for cell in cells:
        cell["fastest"], cell["rivals"] = False, 0
    for group in ok_cells_by_key(cells, by_backend=True).values():
        for cell in group:
            cell["rivals"] = len(group) - 1
        costs = cell_costs(group)
        group[costs.index(min(costs))]["fastest"] = True


def ok_cells_by_key(cells: list[dict[str, Any]], *, by_backend: bool) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """The cells that ran (status ok), by shape class and dtype, and by backend first where ``by_backend``."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for cell in cells:
        if cell.get("status") == "ok":
            key = (backend_of(cell),) if by_backend else ()
            groups.setdefault((*key, cell.get("shape_class"), cell.get("dtype")), []).append(cell)
    return groups


def _within_spread(cell: dict[str, Any], best: dict[str, Any]) -> bool:
    """Whether ``cell`` is as fast as ``best`` within ``best``'s spread (its median at most ``best``'s p80)."""
    cost, best_cost = cell_costs([cell, best])
    return cost <= best_cost * (best.get("p80_s") or 0) / best["median_s"]


def _ranked(library: str, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cells fastest first; the library's default strategy first where it ties the fastest.

    A tie: the default is within the fastest cell's spread (``_within_spread``).
    The default is the plain call with nothing in front of it (``mul_sum``
    calls ``np.einsum`` itself for NumPy), so a difference the run could not
    resolve does not buy machinery.
    """
    costs = cell_costs(cells)
    ranked = [cells[i] for i in sorted(range(len(cells)), key=costs.__getitem__)]
    best, default = ranked[0], LIBRARIES[library].default_strategy
    tie = next((cell for cell in ranked[1:] if cell["adapter"] == default), None)
    if tie is not None and _within_spread(tie, best):
        ranked.remove(tie)
        ranked.insert(0, tie)
    return ranked


def _entry(key: TableKey, cells: list[dict[str, Any]]) -> dict[str, Any]:
    ranked = _ranked(key[0], cells)
    best = ranked[0]
    bandwidth = best.get("fraction_of_floor") is not None
    alternatives: dict[str, float] = {}
    for cell in ranked[1:]:  # each other strategy's fastest cell, where several reports measured it
        if cell["adapter"] != best["adapter"] and (not bandwidth or cell.get("fraction_of_floor") is not None):
            figure = cell["fraction_of_floor"] if bandwidth else cell["median_s"]
            alternatives.setdefault(cell["adapter"], round(figure, 3 if bandwidth else 9))
    library, device, dtype, shape_class = key
    return {
        "library": library,
        "device": device,
        "dtype": dtype,
        "shape_class": shape_class,
        "strategy": best["adapter"],
        "shape": best["shape"],
        "median_s": best["median_s"],
        "fraction_of_floor": None if not bandwidth else round(best["fraction_of_floor"], 3),
        "floor_gbps": best.get("floor_gbps"),
        "alternatives": alternatives,
    }


def write_table(table: dict[str, Any], path: Path) -> None:
    """Write ``table`` as JSON, atomically; the next lookup reads it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(table, indent=1) + "\n")
    forget_loaded()


def candidate_pairs(libraries: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Every selectable (strategy, device) pair of ``libraries`` (default: all) that can run here."""
    wanted = libraries or SELECTABLE_LIBRARIES
    unknown = set(wanted) - set(SELECTABLE_LIBRARIES)
    if unknown:
        raise ValueError(
            f"unknown librar{'y' if len(unknown) == 1 else 'ies'} {', '.join(sorted(unknown))}; "
            f"choose from {', '.join(SELECTABLE_LIBRARIES)}"
        )
    return [
        (name, device)
        for name, cls in STRATEGIES.items()
        if cls.selectable and cls.framework in wanted
        for device in cls.devices
        if cls.unavailable_reason(device) is None
    ]
