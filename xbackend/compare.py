"""``xbackend compare``: every available adapter over a grid of shapes and dtypes, as one report.

The grid runs dtype by dtype and shape by shape. Each (shape, dtype) gets its
seeded host inputs, one oracle check and one floor per hardware, shared by
every adapter; each adapter is then measured by ``xbackend.measure.measure_cell``
(a failure stays in its cell and the run goes on). The result is a plain dict
(the JSON document); ``xbackend.report`` renders it.

``--quick`` keeps all five shape classes at their ``QUICK_SHAPE_CLASSES``
sizes (square stays 4096 x 4096; the other bandwidth classes lose three
quarters of their long axis but still read >= 64 MiB in float32, twice a
32 MiB LLC, and are rotated where a cache is larger) and cuts the time budget
per cell: 0.1 s warm-up and 0.3 s of samples (at least 5) instead of 0.5 s
and 1.5 s (at least 10).

``--load N`` is the loaded scenario: N background processes, each spinning on
one CPU, run for the whole measurement (grid and scaling), so a report shows
which strategies degrade gracefully when cores are taken. The floor is
measured under the same load, so fractions compare strategies on the busy
machine. The report records it (``options.load``); ``selection.build_table``
keeps loaded and unloaded reports apart.
"""

from __future__ import annotations

import contextlib
import datetime
import math
import platform
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import __version__
from .backends.base import Adapter
from .core import dtypes as _dtypes
from .core.probes import (
    available_memory_bytes,
    cpu_count,
    cpu_last_level_cache_bytes,
    cpu_model,
    total_memory_bytes,
)
from .core.shapes import LARGE_SHAPE_CLASSES
from .measure import (
    DEFAULT_BUDGET,
    DEFAULT_DTYPES,
    QUICK_BUDGET,
    QUICK_SHAPE_CLASSES,
    SHAPE_CLASSES,
    Budget,
    CellResult,
    Floor,
    GridCell,
    GridInterrupted,
    GridResult,
    Progress,
    Shape,
    bytes_moved,
    host_inputs,
    measure_at_threads,
    measure_grid,
    thread_counts,
)
from .registry import STRATEGIES, get_adapter
from .selection import (
    backend_of,
    build_table,
    cell_costs,
    mark_fastest,
    ok_cells_by_key,
    tuned_table_path,
    write_table,
)

SCHEMA = "xbackend.compare/1"


@dataclass(frozen=True)
class CompareOptions:
    """What to run. ``pairs`` None means every registered (adapter, device) pair."""

    pairs: Sequence[tuple[str, str]] | None = None
    devices: Sequence[str] | None = None
    shapes: dict[str, Shape] | None = None
    dtypes: Sequence[str] = DEFAULT_DTYPES
    quick: bool = False
    large: bool = False
    budget: Budget | None = None
    seed: int = 0
    threads: int | None = None
    # Raw per-call times (``samples_s``) are kept in each CellResult but left out of
    # the report unless asked for: they are most of a JSON file's size.
    samples: bool = False
    # Thread scaling (``--scaling``): the ``-auto`` CPU adapters and the floor at
    # 1, 2, 4, ... every CPU thread, on this shape class.
    scaling: bool = False
    scaling_shape: str = "square"
    # The loaded scenario (``--load``): this many background processes each keep one CPU busy.
    load: int = 0

    def effective_budget(self) -> Budget:
        return self.budget or (QUICK_BUDGET if self.quick else DEFAULT_BUDGET)

    def effective_shapes(self) -> dict[str, Shape]:
        if self.shapes is not None:
            return dict(self.shapes)
        return dict(shape_classes(quick=self.quick, large=self.large))


# -- parsing options (errors name what was wrong, before any work) ------------
def shape_classes(*, quick: bool = False, large: bool = False) -> dict[str, Shape]:
    """The shape classes' sizes: ``--large`` (GPU-sized), else ``--quick``, else the default grid."""
    return LARGE_SHAPE_CLASSES if large else QUICK_SHAPE_CLASSES if quick else SHAPE_CLASSES


def parse_shapes(text: str, *, quick: bool = False, large: bool = False, option: str = "--shapes") -> dict[str, Shape]:
    """Comma-separated shape class names (their ``--quick`` / ``--large`` sizes) or explicit shapes ("1000x32"),
    given to the command-line ``option``."""
    classes = shape_classes(quick=quick, large=large)
    shapes: dict[str, Shape] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        if item in classes:
            shapes[item] = classes[item]
            continue
        try:
            shape = tuple(int(n) for n in item.lower().split("x"))
        except ValueError:
            raise ValueError(
                f"unknown shape {item!r}: use a class ({', '.join(SHAPE_CLASSES)}) or NxK such as 1000x32"
            ) from None
        if min(shape) < 1:
            raise ValueError(f"shape {item!r} has an empty axis")
        shapes[item] = shape
    if not shapes:
        raise ValueError(f"{option} {text!r} names no shape")
    return shapes


def parse_dtypes(text: str) -> tuple[str, ...]:
    dtypes = tuple(filter(None, (part.strip() for part in text.split(","))))
    for dtype in dtypes:
        _dtypes.check_supported(dtype, where="--dtypes")
    if not dtypes:
        raise ValueError("no dtypes given")
    return dtypes


def select_adapters(options: CompareOptions) -> tuple[list[Adapter], list[dict[str, str]]]:
    """The available adapters to run, and the skipped pairs with the reason."""
    pairs = options.pairs or [(name, device) for name, cls in STRATEGIES.items() for device in cls.devices]
    if options.devices:
        known = {device for cls in STRATEGIES.values() for device in cls.devices}
        unknown = set(options.devices) - known
        if unknown:
            raise ValueError(f"unknown device(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        pairs = [pair for pair in pairs if pair[1] in options.devices]
    chosen, skipped = [], []
    for name, device in pairs:
        reason = STRATEGIES[name].unavailable_reason(device)
        if reason is None:
            chosen.append(get_adapter(name, device))
        else:
            skipped.append({"adapter": name, "device": device, "reason": reason})
    if not chosen:
        raise ValueError(
            "no available adapter matches the selection: "
            + "; ".join(f"{s['adapter']} on {s['device']}: {s['reason']}" for s in skipped)
            if skipped
            else "nothing selected"
        )
    return chosen, skipped


def validate(options: CompareOptions) -> None:
    """Refuse, with a ``ValueError`` naming what was wrong, a run that could not work: before any measurement.

    The load must fit the CPUs, the adapters must exist and be available, each dtype must be computed by at
    least one of them, and every shape's inputs must fit in memory.
    """
    check_load(options.load)
    adapters, _ = select_adapters(options)
    for dtype in options.dtypes:
        refusing = [adapter for adapter in adapters if dtype in adapter.unsupported_dtypes()]
        if len(refusing) == len(adapters):
            raise ValueError(f"no selected adapter computes {dtype}: {refusing[0].unsupported_dtype_reason(dtype)}")
    check_fits_memory(options.effective_shapes(), options.dtypes)


# Measured inputs may take at most this share of the memory available when the run starts.
MEMORY_SHARE = 0.5


def input_bytes(shape: Shape, dtype: str) -> int:
    """Bytes of one cell's inputs: 2 arrays x itemsize x elements x input sets (rotated past the CPU cache)."""
    size = bytes_moved(shape, dtype)
    cache = cpu_last_level_cache_bytes() or 0
    sets = math.ceil(2 * cache / size) if 0 < size < 2 * cache else 1
    return size * sets


def check_fits_memory(shapes: dict[str, Shape], dtypes: Sequence[str]) -> None:
    """``ValueError`` naming the shape, its input size and the limit when a cell's inputs cannot fit in memory."""
    available = available_memory_bytes()
    if available is None:
        return
    limit = int(available * MEMORY_SHARE)
    for name, shape in shapes.items():
        for dtype in dtypes:
            need = input_bytes(shape, dtype)
            if need > limit:
                dims = "x".join(map(str, shape))
                raise ValueError(
                    f"shape {name if name == dims else f'{name} ({dims})'} in {dtype} needs {_gib(need)} of inputs; the limit is "
                    f"{_gib(limit)} (half of the {_gib(available)} available): choose a smaller shape"
                )


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"


# -- the loaded scenario -------------------------------------------------------
def check_load(workers: object) -> int:
    """``workers`` as a load (``--load``): an integer from 0 to the CPUs this process may run on, else ``ValueError``.

    The limit is ``core.probes.cpu_count()`` (the affinity mask), the count the
    measurement sizes its thread pools by: more workers than CPUs would only
    time-slice among themselves.
    """
    cpus = cpu_count()
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= cpus:
        raise ValueError(
            f"{workers!r} is not a count of busy background processes (the load) from 0 to {cpus}, "
            f"the CPUs this process may run on"
        )
    return workers


# One load worker: a separate interpreter (not a thread, which would share this
# process's GIL and load nothing but the interpreter lock) spinning on
# pure-Python arithmetic. It writes one byte once running, so the measurement
# starts only under load, and leaves by itself when its parent changes (this
# process was killed), so even a SIGKILL leaves nothing spinning.
_LOAD_WORKER = (
    "import os, sys\n"
    "parent = os.getppid()\n"
    "sys.stdout.write('r')\n"
    "sys.stdout.flush()\n"
    "while os.getppid() == parent:\n"
    "    for _ in range(100_000):\n"
    "        pass\n"
)


@contextlib.contextmanager
def background_load(workers: int) -> Iterator[list[int]]:
    """``workers`` busy processes, running on entry (their pids are yielded) and stopped and reaped on exit.

    Exit covers errors and Ctrl-C too: each worker is terminated (killed if it
    does not stop within a few seconds) and waited for. ``workers`` 0 starts nothing.
    """
    check_load(workers)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(workers):
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", _LOAD_WORKER],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,  # Ctrl-C reaches the workers too: no tracebacks
                )
            )
        for process in processes:
            if process.stdout is None or process.stdout.read(1) != b"r":
                raise RuntimeError(f"load worker {process.pid} did not start (exit status {process.wait()})")
        yield [process.pid for process in processes]
    finally:
        _stop(processes)


def _stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    """Terminate every worker, then reap each (killing any that ignores SIGTERM)."""
    for process in processes:
        process.terminate()  # a no-op for one already reaped
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


# -- the run ------------------------------------------------------------------
class CompareInterrupted(KeyboardInterrupt):
    """``run_compare`` interrupted (Ctrl-C): ``document`` is the report of the cells measured so far (``partial``)."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(f"interrupted after {len(document['cells'])} cells")
        self.document = document


def run_compare(options: CompareOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the grid and return the report (see ``xbackend.report`` for rendering).

    Interrupted (Ctrl-C), it raises ``CompareInterrupted`` carrying the report of
    the cells measured so far, marked ``"partial": true``. With ``options.load``
    the background load runs from before the first cell to after the last.
    """
    started, clock = datetime.datetime.now(datetime.UTC), time.perf_counter()
    adapters, skipped = select_adapters(options)
    threads = options.threads or cpu_count()
    shapes = options.effective_shapes()
    grid = [
        GridCell(adapter, shape_class, shape, dtype)
        for dtype in options.dtypes
        for shape_class, shape in shapes.items()
        for adapter in adapters
    ]
    with background_load(options.load):
        try:
            result = measure_grid(
                grid, budget=options.effective_budget(), seed=options.seed, threads=threads, progress=progress
            )
        except GridInterrupted as stop:
            document = _assemble(
                options, adapters, skipped, stop.partial, threads, started, time.perf_counter() - clock, partial=True
            )
            raise CompareInterrupted(document) from stop
        scaling = run_scaling(options, adapters, threads, progress) if options.scaling else None
    document = _assemble(options, adapters, skipped, result, threads, started, time.perf_counter() - clock)
    if scaling is not None:
        document["scaling"] = scaling
    return document


def scaling_adapters(adapters: Sequence[Adapter]) -> list[Adapter]:
    """Whose thread scaling ``--scaling`` measures: the selected ``-auto`` CPU adapters, else every selected CPU one."""
    cpu = [adapter for adapter in adapters if adapter.device == "cpu"]
    auto = [adapter for adapter in cpu if adapter.name.endswith("-auto")]
    return auto or cpu


def run_scaling(
    options: CompareOptions, adapters: Sequence[Adapter], threads: int, progress: Progress | None = None
) -> dict[str, Any]:
    """GB/s and fraction of the floor per thread count (``measure.measure_at_threads``), for the report."""
    shapes = options.effective_shapes()
    shape_class = options.scaling_shape if options.scaling_shape in shapes else next(iter(shapes))
    shape, dtype = shapes[shape_class], options.dtypes[0]
    inputs = host_inputs(shape, dtype, options.seed)
    chosen, counts = scaling_adapters(adapters), thread_counts(threads)
    points = []
    for adapter in chosen:
        for count in counts:
            if progress:
                progress(len(points), len(chosen) * len(counts), f"scaling {adapter.name} at {count} threads")
            point = measure_at_threads(adapter, shape, dtype, count, budget=options.effective_budget(), inputs=inputs)
            points.append(asdict(point))
    return {"shape_class": shape_class, "shape": list(shape), "dtype": dtype, "threads": counts, "points": points}


def _floor_record(shape_class: str, dtype: str, key: str, floor: Floor | None) -> dict[str, Any]:
    hardware_name, memory = key.split("/")
    record: dict[str, Any] = {"shape_class": shape_class, "dtype": dtype, "hardware": hardware_name, "memory": memory}
    if floor is None:
        return record | {"gbps": None, "median_s": None, "noise": None, "bytes": None, "method": None}
    return record | {
        "gbps": floor.gbps,
        "median_s": floor.timing.median_s,
        "p20_s": floor.timing.p20_s,
        "p80_s": floor.timing.p80_s,
        "noise": floor.timing.noise,
        "bytes": floor.bytes,
        "method": floor.method,
        "allocator_ratio": floor.allocator_ratio,
        "fastest_memory": floor.fastest_memory,
    }


# -- report assembly ----------------------------------------------------------
def _machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_model(),
        "cpus": cpu_count(),
        "memory_bytes": total_memory_bytes(),
        "cpu_last_level_cache_bytes": cpu_last_level_cache_bytes(),
    }


def _frameworks() -> dict[str, str | None]:
    return {"xbackend": __version__} | {cls.framework: cls.framework_version() for cls in STRATEGIES.values()}


def _describe_devices(adapters: Sequence[Adapter]) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    for adapter in adapters:
        key = f"{adapter.framework}:{adapter.device}"
        if key not in devices:
            devices[key] = {"hardware": adapter.device_description(), "cache_bytes": adapter.cache_bytes()}
    return devices


def _thread_report(adapters: Sequence[Adapter], threads: int) -> dict[str, Any]:
    report: dict[str, Any] = {"requested": threads}
    for adapter in adapters:
        if adapter.device == "cpu" and adapter.framework not in report:
            report[adapter.framework] = adapter.thread_report()
    return report


def _assemble(
    options: CompareOptions,
    adapters: Sequence[Adapter],
    skipped: list[dict[str, str]],
    result: GridResult,
    threads: int,
    started: datetime.datetime,
    elapsed_s: float,
    *,
    partial: bool = False,
) -> dict[str, Any]:
    cell_dicts = [_cell_record(cell, samples=options.samples) for _, cell in result.cells]
    floors = [_floor_record(shape_class, dtype, key, floor) for shape_class, dtype, key, floor in result.floors]
    mark_fastest(cell_dicts)
    return {
        "schema": SCHEMA,
        "partial": partial,
        "created_utc": started.isoformat(timespec="seconds"),
        "elapsed_s": elapsed_s,
        "options": {
            "quick": options.quick,
            "shapes": {name: list(shape) for name, shape in options.effective_shapes().items()},
            "dtypes": list(options.dtypes),
            "budget": asdict(options.effective_budget()),
            "seed": options.seed,
            "adapters": [f"{a.name}@{a.device}" for a in adapters],
            "scaling": options.scaling,
            "load": options.load,
        },
        "machine": _machine(),
        "devices": _describe_devices(adapters),
        "frameworks": _frameworks(),
        "threads": _thread_report(adapters, threads),
        "skipped": skipped,
        "floors": floors,
        "cells": cell_dicts,
        "verdicts": verdicts(cell_dicts),
        "warnings": warnings(cell_dicts),
    }


def _cell_record(cell: CellResult, *, samples: bool) -> dict[str, Any]:
    record = cell.to_dict()
    if not samples:
        del record["samples_s"]
    return record


def verdicts(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per backend (framework on device): its fastest strategy and how far the others are behind."""
    by_backend: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        by_backend.setdefault(backend_of(cell), []).append(cell)
    return [_backend_verdict(backend, group) for backend, group in by_backend.items()]


def _geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def _backend_verdict(backend: str, cells: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [c for c in cells if c["status"] == "ok"]
    slowdowns: dict[str, list[float]] = {}
    for group in ok_cells_by_key(cells, by_backend=False).values():
        costs = cell_costs(group)
        for cell, cost in zip(group, costs, strict=True):
            slowdowns.setdefault(cell["adapter"], []).append(cost / min(costs))
    failed = sorted({c["adapter"] for c in cells if c["status"] != "ok"})
    if not slowdowns:
        return {"backend": backend, "fastest": None, "behind": {}, "text": f"{backend}: every cell failed"}
    ranked = sorted(slowdowns, key=lambda name: _geomean(slowdowns[name]))
    fastest = ranked[0]
    wins = sum(1 for c in ok if c["adapter"] == fastest and c["fastest"])
    fractions = [c["fraction_of_floor"] for c in ok if c["adapter"] == fastest and c["fraction_of_floor"]]
    text = f"{backend}: {fastest} is fastest ({wins} of {len(slowdowns[fastest])} cells"
    text += f"; {_geomean(fractions):.2f} of floor, geomean)" if fractions else ")"
    behind = {
        name: {"geomean": _geomean(slowdowns[name]), "min": min(slowdowns[name]), "max": max(slowdowns[name])}
        for name in ranked[1:]
    }
    for name, factor in behind.items():
        text += f"; {name} {factor['geomean']:.2g}x slower (geomean, {factor['min']:.2g}x to {factor['max']:.2g}x)"
    if len(ranked) == 1:
        text += "; the only strategy"
    if failed:
        text += f"; failed or unsupported cells: {', '.join(failed)}"
    return {"backend": backend, "fastest": fastest, "behind": behind, "text": text}


def warnings(cells: list[dict[str, Any]]) -> list[str]:
    notes = []
    for cell in cells:
        where = f"{cell['adapter']} on {cell['device']}, {cell['shape_class']} {cell['dtype']}"
        if cell["status"] != "ok":
            notes.append(f"{where}: {cell['status']}: {cell['error']}")
        elif cell["noisy"]:
            notes.append(f"{where}: noise {cell['noise']:.0%} (p80-p20)/median exceeds 10%; rerun on a quiet machine")
        if cell["status"] == "ok" and cell["error_failure"]:
            notes.append(f"{where}: WRONG RESULT: {cell['error_failure']}")
    return notes


# -- tuning -------------------------------------------------------------------
class UnsavedReport(Exception):
    """The run measured ``document`` but its result could not be written to ``target`` (the cause is chained)."""

    def __init__(self, document: dict[str, Any], target: Path, problem: str) -> None:
        super().__init__(f"cannot write {target}: {problem}")
        self.document, self.target = document, target


def tune(
    options: CompareOptions, *, path: Path | None = None, progress: Progress | None = None
) -> tuple[Path, dict[str, Any]]:
    """Measure the candidate strategies on this machine and write its selection table.

    Returns where the table was written (default: ``selection.tuned_table_path()``)
    and the table; the next ``xbackend.mul_sum`` calls use it. When the table
    cannot be written, ``UnsavedReport`` carries the measured compare report.
    """
    document = run_compare(options, progress=progress)
    table = build_table([document], command="xbackend tune (on this machine)")
    target = path or tuned_table_path()
    try:
        write_table(table, target)
    except OSError as exc:
        raise UnsavedReport(document, target, exc.strerror or str(exc)) from exc
    return target, table
