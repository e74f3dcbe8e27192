"""Rendering an ``xbackend compare`` report: the terminal table, the JSON file, the PNG pictures, the progress line,
and the Markdown tables of the docs (``render_markdown_tables``, kept in sync by ``xbackend docs``).

The report is the dict ``xbackend.compare.run_compare`` returns. The JSON file
is written atomically (temporary file in the same directory, fsync,
``os.replace``), so an interrupted run leaves the previous file, never a
truncated one. matplotlib is imported only by the plot writers (``write_plot``,
``write_scaling_plot``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .core.files import write_text_atomic
from .core.shapes import LARGE_SHAPE_CLASSES, SHAPE_CLASSES
from .measure import NOISE_WARNING
from .selection import build_table, mark_fastest, report_load


# -- numbers ------------------------------------------------------------------
def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 0:  # a difference of two timings (the dispatch overhead's spread)
        return "-" + format_seconds(-seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_bytes(count: int | None) -> str:
    if count is None:
        return "n/a"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} B"


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):  # "inf" / "nan" as written to JSON
        return value
    return f"{value:.2g}"


# -- the table ----------------------------------------------------------------
_MEMORY_ABBREVIATIONS = (
    ("tracemalloc", "tracemalloc"),
    ("RSS", "RSS hwm"),
    ("memory_analysis", "XLA temp"),
    ("max_memory_allocated", "cuda peak"),
    ("MemoryHook", "cupy hook"),
)


def _memory_method(method: str | None) -> str:
    for needle, short in _MEMORY_ABBREVIATIONS:
        if method and needle in method:
            return short
    return method or "-"


_HEADER = (
    "",
    "adapter",
    "device",
    "median",
    "p20..p80",
    "noise",
    "GB/s",
    "floor",
    "frac",
    "extra mem",
    "err/bound",
    "compile",
    "1st call",
)


def _row(cell: dict[str, Any]) -> tuple[str, ...]:
    mark = "*" if _contested_win(cell) else ""
    if cell["status"] != "ok":
        return (mark, cell["adapter"], cell["device"], f"{cell['status'].upper()}: {_shorten(cell['error'], 90)}")
    noise = f"{cell['noise']:.0%}" + ("!" if cell["noise"] > NOISE_WARNING else "")
    extra = f"{format_bytes(cell['extra_memory_bytes'])} ({_memory_method(cell['extra_memory_method'])})"
    return (
        mark,
        cell["adapter"],
        cell["device"],
        format_seconds(cell["median_s"]),
        f"{format_seconds(cell['p20_s'])}..{format_seconds(cell['p80_s'])}",
        noise,
        _number(cell["gbps"], ".3g"),
        _number(cell["floor_gbps"], ".3g"),
        _number(cell["fraction_of_floor"], ".2f"),
        extra,
        _ratio(cell["error_ratio"]) + ("" if not cell["error_failure"] else " WRONG"),
        format_seconds(cell["compile_s"]),
        format_seconds(cell["first_call_s"]),
    )


def _contested_win(cell: dict[str, Any]) -> bool:
    return bool(cell.get("fastest")) and cell.get("rivals", 0) > 0


def _shorten(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _align(rows: Sequence[tuple[str, ...]], columns: int | None = None) -> list[str]:
    """Rows of ``columns`` cells (default: the cell table's) padded to one width; longer rows keep a free tail."""
    columns = columns or len(_HEADER)
    full = [row for row in rows if len(row) == columns]
    widths = [max(len(row[i]) for row in full) for i in range(columns)]
    lines = []
    for row in rows:
        cells = row if len(row) == columns else row[:-1]
        line = "  ".join(cell.ljust(width) for cell, width in zip(cells, widths))
        if len(row) != columns:
            line += "  " + row[-1]
        lines.append(line.rstrip())
    return lines


def _group_title(report: dict[str, Any], cells: list[dict[str, Any]]) -> str:
    first = cells[0]
    shape = "x".join(map(str, first["shape"]))
    title = f"{first['shape_class']} ({shape}) {first['dtype']}, {format_bytes(first['bytes_moved'])} read"
    states = sorted({c["cache_state"] for c in cells if c["cache_state"]})
    if states:
        title += "; " + " | ".join(states)
    return title


def format_table(report: dict[str, Any]) -> str:
    """The whole report as text: one block per (shape, dtype), then verdicts, floors and warnings."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for cell in report["cells"]:
        groups.setdefault((cell["shape_class"], cell["dtype"]), []).append(cell)
    lines: list[str] = []
    for cells in groups.values():
        lines.append(_group_title(report, cells))
        lines += ["  " + line for line in _align([_HEADER] + [_row(cell) for cell in cells])]
        lines.append("")
    lines.append(
        "* fastest of its backend's strategies (framework on device) for that shape and dtype, where it has several"
    )
    lines.append(
        "GB/s = 2*N*K*itemsize / median; floor = the fastest read of the same bytes in the same memory (best kernel"
    )
    lines.append(
        "over the cell's framework's buffers, or a strategy that beat it), timed in rounds alternating with the cell's;"
    )
    lines.append("frac = GB/s / floor GB/s; err/bound = worst |out - exact| / rigorous bound (<= 1 is correct);")
    lines.append("latency cells report time only. ! = noise (p80-p20)/median above 10%.")
    lines.append("")
    lines += _floor_lines(report)
    lines += _overhead_lines(report)
    lines += _scaling_lines(report)
    lines.append("")
    lines.append("verdicts:")
    lines += [f"  {verdict['text']}" for verdict in report["verdicts"]]
    lines += _context_lines(report)
    noisy = [c for c in report["cells"] if c["status"] == "ok" and c["noisy"]]
    others = [note for note in report["warnings"] if "exceeds 10%" not in note]
    if noisy or others:
        lines.append("")
        lines.append("warnings:")
    if noisy:
        lines.append(
            f"  noise above 10% in {len(noisy)} of {len(report['cells'])} cells (marked !): "
            "the machine was busy; rerun on a quiet machine (every cell is in the JSON warnings)"
        )
    lines += [f"  {_shorten(note, 200)}" for note in others]
    return "\n".join(lines)


def _scaling_lines(report: dict[str, Any]) -> list[str]:
    scaling = report.get("scaling")
    if not scaling:
        return []
    shape = "x".join(map(str, scaling["shape"]))
    lines = [
        "",
        f"thread scaling ({scaling['shape_class']} {shape} {scaling['dtype']}; floor pinned to the same count):",
    ]
    rows = [("adapter", "threads", "GB/s", "floor GB/s", "frac", "floor")]
    for point in scaling["points"]:
        if point["error"]:
            rows.append((point["adapter"], str(point["threads"]), "failed", "", "", _shorten(point["error"], 60)))
            continue
        name = point["adapter"] + ("" if point["honours_threads"] else " (ignores the count)")
        rows.append(
            (
                name,
                str(point["threads"]),
                _number(point["gbps"], ".3g"),
                _number(point["floor_gbps"], ".3g"),
                _number(point["fraction_of_floor"], ".2f"),
                _shorten(point["floor_method"], 60),
            )
        )
    return lines + ["  " + line for line in _align(rows, columns=len(rows[0]))]


def _overhead_lines(report: dict[str, Any]) -> list[str]:
    cells = [c for c in report["cells"] if c.get("dispatch_overhead_s") is not None]
    if not cells:
        return []
    lines = [
        "dispatch overhead (xbackend.mul_sum minus the plain call it ends in, timed in the same rounds; "
        "median [p20..p80] per call):"
    ]
    rows = [("adapter", "device", "shape", "dtype", "overhead", "[p20..p80]", "mul_sum", "plain call")]
    for cell in cells:
        spread = (
            f"[{format_seconds(cell['dispatch_overhead_p20_s'])}..{format_seconds(cell['dispatch_overhead_p80_s'])}]"
        )
        rows.append(
            (
                cell["adapter"],
                cell["device"],
                "x".join(map(str, cell["shape"])),
                cell["dtype"],
                format_seconds(cell["dispatch_overhead_s"]),
                spread,
                format_seconds(cell["dispatch_call_s"]),
                f"{format_seconds(cell['plain_call_s'])}: {cell['plain_call']}",
            )
        )
    return lines + ["  " + line for line in _align(rows, columns=len(rows[0]))]


def _floor_lines(report: dict[str, Any]) -> list[str]:
    methods = sorted({f["method"] for f in report["floors"] if f["method"]})
    lines = ["floor: " + "; ".join(methods)] if methods else ["floor: not measured"]
    ratios: dict[str, list[str]] = {}
    for floor in report["floors"]:
        if floor.get("allocator_ratio") is not None:
            group = f"{floor['shape_class']} {floor['dtype']}"
            ratios.setdefault(group, []).append(f"{floor['memory']} {floor['allocator_ratio']:.2f}")
    if ratios:
        lines.append("allocators (each memory's floor / the fastest memory's, same rounds; not in the fractions):")
        lines += [f"  {group}: {', '.join(figures)}" for group, figures in ratios.items()]
    return lines


def _context_lines(report: dict[str, Any]) -> list[str]:
    machine = report["machine"]
    lines = [
        "",
        f"machine: {machine['cpu']}, {machine['cpus']} CPUs, LLC {format_bytes(machine['cpu_last_level_cache_bytes'])}, Python {machine['python']}",
    ]
    versions = ", ".join(f"{name} {version}" for name, version in report["frameworks"].items() if version)
    lines.append(f"versions: {versions}")
    threads = report["threads"]
    parts = [
        f"{name}: " + ", ".join(f"{k} {v}" for k, v in info.items())
        for name, info in threads.items()
        if isinstance(info, dict)
    ]
    lines.append(f"threads (fixed at {threads['requested']}): " + "; ".join(parts))
    if load := report["options"].get("load"):
        lines.append(
            f"background load: {load} busy process(es) on {machine['cpus']} CPUs during the whole run (--load {load}); "
            "the floors were measured under the same load"
        )
    for skipped in report["skipped"]:
        lines.append(f"skipped {skipped['adapter']} on {skipped['device']}: {_shorten(skipped['reason'], 120)}")
    budget = report["options"]["budget"]
    lines.append(
        f"budget per cell: {budget['warmup_s']} s warm-up, {budget['measure_s']} s of samples (>= {budget['min_repeats']}); "
        f"run took {report['elapsed_s']:.0f} s"
    )
    if report.get("partial"):
        lines.append(PARTIAL_NOTE)
    return lines


# -- JSON ---------------------------------------------------------------------
def write_json_atomic(path: str | os.PathLike[str], document: Any) -> None:
    """Write ``document`` as JSON so that ``path`` holds either the old file or the whole new one."""
    write_text_atomic(
        path, json.dumps(document, indent=1, allow_nan=False) + "\n"
    )  # serialised before the disk is touched


PARTIAL_NOTE = "the run was stopped before its end: a cell missing here was not measured"


def partial_path(target: str | os.PathLike[str]) -> Path:
    """Where a run keeps what it measured when ``target`` cannot be written: ``X.partial.json`` next to ``X.json``."""
    target = Path(target)
    stem = target.name[: -len(".json")] if target.name.endswith(".json") else target.name
    return target.with_name(f"{stem}.partial.json")


def keep_partial(target: str | os.PathLike[str], document: Any) -> Path | None:
    """Write ``document`` to ``partial_path(target)``, else to the temporary folder; where it went, or None."""
    candidates = [partial_path(target), Path(tempfile.gettempdir()) / partial_path(target).name]
    for candidate in candidates:
        try:
            write_json_atomic(candidate, document)
        except (OSError, ValueError):
            continue
        return candidate
    return None


# -- the pictures ---------------------------------------------------------------
# A heatmap of the fraction of the floor (strategies down, shape classes across,
# one panel per library and device, one column of panels per dtype) and, when the
# report has a scaling section, GB/s against threads. matplotlib is imported by
# the writers only; the data they draw comes from the pure functions below, which
# the tests check against the report's cells.
@dataclass(frozen=True)
class FractionPanel:
    """Fraction of the floor of each strategy (rows) per bandwidth shape class (columns) of one library and device.

    ``fractions[i, j]`` is NaN where the cell did not run, was unsupported,
    failed or has no fraction.
    """

    library: str
    device: str
    dtype: str
    strategies: list[str]
    shapes: list[str]
    fractions: np.ndarray


# -- what the pictures read of a report: checked before anything is drawn ------
_TEXT, _SHAPE, _NUMBER, _MAYBE_NUMBER = "text", "list of sizes", "number", "number or null"
_HEATMAP_CELL_FIELDS = {
    "adapter": _TEXT,
    "framework": _TEXT,
    "device": _TEXT,
    "shape_class": _TEXT,
    "shape": _SHAPE,
    "dtype": _TEXT,
    "status": _TEXT,
    "cache_kind": _TEXT,
    "fraction_of_floor": _MAYBE_NUMBER,
    "median_s": _MAYBE_NUMBER,
    "rivals": _MAYBE_NUMBER,
}
_SCALING_FIELDS = {"shape_class": _TEXT, "shape": _SHAPE, "dtype": _TEXT}
_SCALING_POINT_FIELDS = {
    "adapter": _TEXT,
    "threads": _NUMBER,
    "gbps": _MAYBE_NUMBER,
    "floor_gbps": _MAYBE_NUMBER,
    "fraction_of_floor": _MAYBE_NUMBER,
}


def _is(value: Any, kind: str) -> bool:
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _SHAPE:
        return isinstance(value, list) and all(isinstance(n, int) and not isinstance(n, bool) for n in value)
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return is_number or (kind == _MAYBE_NUMBER and value is None)


def _check_fields(item: Any, fields: dict[str, str], where: str) -> None:
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    for key, kind in fields.items():
        if not _is(item.get(key), kind):
            raise ValueError(f"{where} has no {kind} {key!r} (found {item.get(key)!r})")


def _check_hardware(report: dict[str, Any]) -> None:
    """The fields of the pictures' titles (``_hardware_line``)."""
    machine, devices = report.get("machine"), report.get("devices")
    if not isinstance(machine, dict) or not isinstance(machine.get("cpu"), str) or "cpus" not in machine:
        raise ValueError("the report's 'machine' has no 'cpu' and 'cpus'")
    if not isinstance(devices, dict) or not all(
        isinstance(d, dict) and isinstance(d.get("hardware"), str) for k, d in devices.items() if not k.endswith(":cpu")
    ):
        raise ValueError("the report's 'devices' is not an object of devices, each with its 'hardware'")


def check_heatmap_report(report: dict[str, Any]) -> None:
    """``ValueError`` naming the first thing ``write_plot`` cannot draw (a hand-edited or truncated report)."""
    cells = report.get("cells")
    if not isinstance(cells, list) or not cells:
        raise ValueError("the report has no cells to draw ('cells' is not a non-empty list)")
    for index, cell in enumerate(cells):
        name = f"cell {index}" + (
            f" ({cell.get('adapter')}, {cell.get('shape_class')})" if isinstance(cell, dict) else ""
        )
        _check_fields(cell, _HEATMAP_CELL_FIELDS, name)
        if cell["status"] == "ok" and cell["cache_kind"] == "latency" and cell["median_s"] is None:
            raise ValueError(f"{name} ran but has no 'median_s'")
    _check_hardware(report)


def check_scaling_report(report: dict[str, Any]) -> None:
    """``ValueError`` naming the first thing ``write_scaling_plot`` cannot draw."""
    scaling = report.get("scaling")
    if not scaling:
        raise ValueError("the report has no thread-scaling section: make it with `xbackend compare --scaling`")
    _check_fields(scaling, _SCALING_FIELDS, "the scaling section")
    threads, points = scaling.get("threads"), scaling.get("points")
    if not isinstance(threads, list) or not threads or not all(_is(t, _NUMBER) for t in threads):
        raise ValueError(f"the scaling section has no list of thread counts 'threads' (found {threads!r})")
    if not isinstance(points, list) or not points:
        raise ValueError("the scaling section has no 'points' to draw")
    for index, point in enumerate(points):
        _check_fields(point, _SCALING_POINT_FIELDS, f"scaling point {index}")
    _check_hardware(report)


def _bandwidth_shapes(report: dict[str, Any]) -> list[str]:
    """The shape classes with a floor (latency cells have none), in the report's order."""
    return list(dict.fromkeys(c["shape_class"] for c in report["cells"] if c["cache_kind"] != "latency"))


def _latency_shapes(report: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(c["shape_class"] for c in report["cells"] if c["cache_kind"] == "latency"))


def panel_keys(report: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """The (library, device) pairs and the dtypes of the report, in the order the cells come."""
    groups = list(dict.fromkeys((c["framework"], c["device"]) for c in report["cells"]))
    return groups, list(dict.fromkeys(c["dtype"] for c in report["cells"]))


def fraction_matrix(report: dict[str, Any], library: str, device: str, dtype: str) -> FractionPanel:
    """The heatmap's data for ``library`` on ``device`` in ``dtype``; ValueError if the report has no such cells.

    The rows are every strategy of that library and device in the report (in
    any dtype, so that the panels of several dtypes line up), the columns every
    bandwidth shape class of the report (so that the panels of several libraries line up).
    """
    ours = [c for c in report["cells"] if c["framework"] == library and c["device"] == device]
    if not any(c["dtype"] == dtype for c in ours):
        raise ValueError(f"the report has no {dtype} cells of {library} on {device}")
    strategies = list(dict.fromkeys(c["adapter"] for c in ours))
    shapes = _bandwidth_shapes(report)
    fractions = np.full((len(strategies), len(shapes)), np.nan)
    for cell in ours:
        fraction = cell["fraction_of_floor"]
        if cell["dtype"] != dtype or cell["shape_class"] not in shapes or cell["status"] != "ok" or fraction is None:
            continue
        fractions[strategies.index(cell["adapter"]), shapes.index(cell["shape_class"])] = fraction
    return FractionPanel(library, device, dtype, strategies, shapes, fractions)


def _hardware_line(report: dict[str, Any]) -> str:
    machine = report["machine"]
    accelerators = sorted({d["hardware"] for key, d in report["devices"].items() if not key.endswith(":cpu")})
    return " + ".join([f"{machine['cpu']} ({machine['cpus']} CPUs)", *accelerators])


def _shape_label(report: dict[str, Any], shape_class: str) -> str:
    shape = next(c["shape"] for c in report["cells"] if c["shape_class"] == shape_class)
    size = "x".join(map(str, shape))
    return f"{shape_class}\n{size}" + ("\n(time)" if shape_class in _latency_shapes(report) else "")


_ROW_INCHES, _COLUMN_INCHES, _PANEL_INCHES = 0.3, 1.0, 0.35
_PICKED_COLOUR = "red"  # not a viridis colour: the outline stands out on any cell


def write_plot(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """The fraction-of-floor heatmap of ``report`` as a PNG (see ``fraction_matrix``)."""
    check_heatmap_report(report)  # before matplotlib starts
    mark_fastest(report["cells"])  # by today's rule: a report made under an older one is marked alike
    plt = _pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    groups, dtypes = panel_keys(report)
    latency = _latency_shapes(report)
    heights = [len(fraction_matrix(report, lib, dev, _first_dtype(report, lib, dev)).strategies) for lib, dev in groups]
    columns = len(dtypes) * (len(_bandwidth_shapes(report)) + len(latency))
    figure = plt.figure(
        # at least wide and tall enough for the notes and the colour bar of a one-row report
        figsize=(
            max(7.5, 2.9 + columns * _COLUMN_INCHES),
            max(3.6, 1.6 + sum(heights) * _ROW_INCHES + len(groups) * _PANEL_INCHES),
        ),
        layout="constrained",
    )
    grid = figure.add_gridspec(len(groups), len(dtypes), height_ratios=heights)
    norm, cmap = Normalize(0.0, 1.0), plt.get_cmap("viridis")
    axes = []
    for row, (library, device) in enumerate(groups):
        for column, dtype in enumerate(dtypes):
            axis = figure.add_subplot(grid[row, column])
            axes.append(axis)
            if any(
                c["framework"] == library and c["device"] == device and c["dtype"] == dtype for c in report["cells"]
            ):
                panel = fraction_matrix(report, library, device, dtype)
                _draw_panel(axis, report, panel, latency, cmap, norm, column_labels=row == 0, row_labels=column == 0)
            else:
                axis.set_axis_off()
            title = f"{library} on {device}" + (f", {dtype}" if len(dtypes) > 1 else "")
            axis.set_title(title, loc="left", fontsize=9, fontweight="bold")
    bar = figure.colorbar(ScalarMappable(norm, cmap), ax=axes, shrink=min(1.0, 6 / sum(heights) + 0.3), aspect=30)
    bar.set_label("fraction of the floor", fontsize=8)
    dtype_text = f"{', '.join(dtypes)}; " if len(dtypes) == 1 else ""
    figure.suptitle(
        f"xbackend compare: fraction of the floor, {dtype_text}{_hardware_line(report)}", fontsize=10, x=0.02, ha="left"
    )
    figure.supxlabel(_heatmap_notes(report, latency), fontsize=7.5, x=0.01, ha="left")
    _save(plt, figure, path)


def _heatmap_notes(report: dict[str, Any], latency: list[str]) -> str:
    """The key under the heatmap: only what this picture shows."""
    notes = ["fraction = GB/s / floor, the fastest streaming read of the same bytes in the same run"]
    marks = ["* fastest strategy of its library for that shape"]
    if any(c["adapter"].endswith("-auto") for c in report["cells"]):
        marks.insert(0, "red outline: the -auto adapter, i.e. what xbackend.mul_sum ran")
    notes.append(";  ".join(marks))
    missing = ["hatched grey: not run (unsupported dtype, failed or not selected)"]
    if latency:
        missing.append(f"{', '.join(latency)}: time per call (too small for a floor)")
    notes.append(";  ".join(missing))
    return "\n".join(notes)


def _first_dtype(report: dict[str, Any], library: str, device: str) -> str:
    return next(c["dtype"] for c in report["cells"] if c["framework"] == library and c["device"] == device)


def _draw_panel(
    axis: Any,
    report: dict[str, Any],
    panel: FractionPanel,
    latency: list[str],
    cmap: Any,
    norm: Any,
    *,
    column_labels: bool,
    row_labels: bool,
) -> None:
    from matplotlib.patches import Rectangle

    cells = {
        (c["adapter"], c["shape_class"]): c
        for c in report["cells"]
        if c["framework"] == panel.library and c["device"] == panel.device and c["dtype"] == panel.dtype
    }
    columns = panel.shapes + latency
    for i, strategy in enumerate(panel.strategies):
        for j, shape_class in enumerate(columns):
            cell = cells.get((strategy, shape_class))
            value = panel.fractions[i, j] if j < len(panel.shapes) else np.nan
            _draw_cell(axis, Rectangle, i, j, cell, value, cmap, norm)
        if strategy.endswith("-auto"):
            axis.add_patch(
                Rectangle((-0.47, i - 0.45), len(columns) - 0.06, 0.9, fill=False, lw=2.2, ec=_PICKED_COLOUR, zorder=3)
            )
    if latency and panel.shapes:  # a gap between the fractions and the times
        axis.axvline(len(panel.shapes) - 0.5, color="white", lw=4, zorder=2)
    axis.set_xlim(-0.5, len(columns) - 0.5)
    axis.set_ylim(len(panel.strategies) - 0.5, -0.5)
    axis.set_yticks(range(len(panel.strategies)))
    if row_labels:  # the panels of the other dtypes have the same rows
        names = [f"{s} (mul_sum)" if s.endswith("-auto") else s for s in panel.strategies]
        for label, strategy in zip(axis.set_yticklabels(names, fontsize=8), panel.strategies):
            if strategy.endswith("-auto"):
                label.set_fontweight("bold")
    else:
        axis.set_yticklabels([])
    axis.xaxis.tick_top()
    axis.set_xticks(range(len(columns)))
    axis.set_xticklabels([_shape_label(report, s) for s in columns] if column_labels else [], fontsize=7.5)
    axis.tick_params(length=0)
    for side in axis.spines.values():
        side.set_visible(False)


def _draw_cell(
    axis: Any, rectangle: Any, i: int, j: int, cell: dict[str, Any] | None, value: float, cmap: Any, norm: Any
) -> None:
    box = (j - 0.5, i - 0.5)
    ran = cell is not None and cell["status"] == "ok"
    if ran and not np.isnan(value):
        face = cmap(norm(min(value, 1.0)))
        text = f"{value:.2f}" if value >= 0.005 else "<0.01"  # not a misleading 0.00
    elif ran and cell["cache_kind"] == "latency":
        face, text = "white", format_seconds(cell["median_s"])
    else:
        axis.add_patch(rectangle(box, 1, 1, facecolor="0.88", hatch="////", edgecolor="0.7", lw=0))
        if cell is not None and cell["status"] == "failed":
            axis.text(j, i, "failed", ha="center", va="center", fontsize=7.5, color="darkred")
        return
    axis.add_patch(rectangle(box, 1, 1, facecolor=face, edgecolor="white", lw=1))
    if _contested_win(cell):
        text += "*"
    colour = "white" if _luminance(face) < 0.5 else "black"
    if cell.get("error_failure"):
        text, colour = text + "\nWRONG", "red"
    axis.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)


def _luminance(colour: Any) -> float:
    from matplotlib.colors import to_rgb

    red, green, blue = to_rgb(colour)
    return 0.299 * red + 0.587 * green + 0.114 * blue


def scaling_series(report: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """Per adapter of the scaling section: threads, GB/s, floor GB/s and fraction (NaN where a point failed).

    ValueError if the report has no scaling section (``xbackend compare --scaling``).
    """
    check_scaling_report(report)
    scaling = report["scaling"]
    series: dict[str, dict[str, list[float]]] = {}
    for point in scaling["points"]:
        line = series.setdefault(point["adapter"], {"threads": [], "gbps": [], "floor_gbps": [], "fraction": []})
        line["threads"].append(point["threads"])
        for key, field in (("gbps", "gbps"), ("floor_gbps", "floor_gbps"), ("fraction", "fraction_of_floor")):
            line[key].append(np.nan if point["error"] or point[field] is None else point[field])
    return series


def write_scaling_plot(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """GB/s and fraction of the floor against CPU threads (``scaling_series``) as a PNG."""
    series = scaling_series(report)  # refuses a report without the section before matplotlib starts
    plt = _pyplot()
    scaling = report["scaling"]
    ignoring = {p["adapter"] for p in scaling["points"] if not p["honours_threads"]}
    figure, (speed, fraction) = plt.subplots(1, 2, figsize=(9, 4.4), layout="constrained")
    colours = plt.get_cmap("tab10")
    for k, (adapter, line) in enumerate(series.items()):
        name = adapter + (" (ignores the count)" if adapter in ignoring else "")
        speed.plot(line["threads"], line["gbps"], "o-", color=colours(k % 10), label=name)
        speed.plot(
            line["threads"], line["floor_gbps"], "s--", color=colours(k % 10), alpha=0.6, label=f"floor for {adapter}"
        )
        fraction.plot(line["threads"], line["fraction"], "o-", color=colours(k % 10), label=name)
    for axis in (speed, fraction):
        axis.set_xscale("log", base=2)
        axis.set_xticks(scaling["threads"], [str(t) for t in scaling["threads"]])
        axis.minorticks_off()
        axis.set_xlabel("CPU threads")
        axis.grid(alpha=0.3)
    speed.set_ylabel("GB/s")
    speed.set_ylim(bottom=0)
    # under the panels, where it hides no line
    figure.legend(
        *speed.get_legend_handles_labels(), loc="outside lower center", ncol=min(len(series), 3), fontsize=7.5
    )
    fraction.set_ylabel("fraction of the floor at that count")
    fraction.set_ylim(0, max(1.1, np.nanmax([v for line in series.values() for v in line["fraction"]] + [0]) + 0.05))
    fraction.axhline(1.0, color="black", lw=0.8)
    shape = "x".join(map(str, scaling["shape"]))
    figure.suptitle(
        f"thread scaling, {scaling['shape_class']} {shape} {scaling['dtype']} on {_hardware_line(report)}\n"
        "solid: the strategy; dashed: the floor pinned to the same thread count",
        fontsize=9,
    )
    _save(plt, figure, path)


def scaling_plot_path(path: str | os.PathLike[str]) -> Path:
    """Where ``compare --plot X.png --scaling`` puts the scaling plot: ``X-scaling.png`` next to ``X.png``."""
    path = Path(path)
    return path.with_name(f"{path.stem}-scaling{path.suffix or '.png'}")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never a window, whatever the user's backend
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, figure: Any, path: str | os.PathLike[str]) -> None:
    try:
        figure.savefig(path, dpi=110)
    finally:
        plt.close(figure)


# -- progress -----------------------------------------------------------------
class ProgressLine:
    """A one-line progress bar on stderr (a line per step when stderr is not a terminal)."""

    def __init__(self, stream: IO[str] | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.width = width
        self.start = time.perf_counter()
        self.interactive = self.stream.isatty()

    def __call__(self, done: int, total: int, label: str) -> None:
        filled = round(self.width * done / total) if total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        text = f"[{bar}] {done}/{total} {elapsed:5.0f} s  {label}"
        if self.interactive:
            self.stream.write("\r" + text.ljust(100)[:100] + ("\n" if done == total and label == "done" else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# -- Markdown tables for the docs ---------------------------------------------
# Every measured figure in README.md and docs/*.md lives between these markers and
# is rewritten from the named report by ``xbackend docs`` (``sync_markdown``), so
# no figure is copied by hand; tests/test_docs.py fails when one is stale.
GENERATED_REGION = re.compile(
    r"^<!-- generated: (?P<view>[a-z-]+) from (?P<source>\S+\.json) -->\n(?P<body>.*?)^<!-- end generated -->$",
    re.M | re.S,
)
_OPENING_MARKER = re.compile(r"^<!-- generated:", re.M)


def render_markdown_tables(report: dict[str, Any], view: str = "cells", source: str | None = None) -> str:
    """Markdown for one ``view`` of a compare report, naming the machine and, when given, the report's path.

    Views: ``cells`` (median, GB/s and fraction of the floor per adapter and
    shape class), ``fractions`` (fraction of the floor only), ``selection``
    (the strategy ``xbackend select`` would choose from this report, per key),
    ``fastest`` (the same choices, one row per library and device) and
    ``scaling`` (the thread-scaling section of ``compare --scaling``).
    """
    if view not in MARKDOWN_VIEWS:
        raise ValueError(f"unknown view {view!r}; choose from {', '.join(MARKDOWN_VIEWS)}")
    mark_fastest(report["cells"])  # by today's rule: a report made under an older one is marked alike
    body = MARKDOWN_VIEWS[view](report) if report["cells"] else ["No cell was measured."]
    return "\n".join([_provenance(report, source), "", *body]) + "\n"


def _provenance(report: dict[str, Any], source: str | None) -> str:
    machine, options, budget = report["machine"], report["options"], report["options"]["budget"]
    accelerators = sorted({d["hardware"] for key, d in report["devices"].items() if not key.endswith(":cpu")})
    hardware = " + ".join([machine["cpu"], *accelerators])
    memory = f"LLC {format_bytes(machine['cpu_last_level_cache_bytes'])}, {format_bytes(machine['memory_bytes'])} RAM"
    system = f"{machine['cpus']} CPUs, {memory}; {machine['platform']}, Python {machine['python']}"
    frameworks = report["frameworks"].items()
    versions = ", ".join(f"{name} {version}" for name, version in frameworks if version and name != "xbackend")
    grid = _grid_name(options)
    run = (
        f"threads fixed at {report['threads']['requested']}; {budget['warmup_s']} s warm-up and "
        f"{budget['measure_s']} s of samples per cell; "
        f"run took {report['elapsed_s']:.0f} s, {report['created_utc'][:10]}"
    )
    if report.get("partial"):
        run += f"; {PARTIAL_NOTE}"
    where = "Measured" if source is None else f"From `{source}`"
    dtypes = ", ".join(options["dtypes"])
    if load := options.get("load"):
        # The first thing a reader of a loaded table must know: it is not the quiet machine.
        grid += f", under a background load of {load} busy process(es) (`--load {load}`)"
    return f"{where}: `xbackend compare`, {grid}, {dtypes}, on {hardware} ({system}); {versions}; {run}."


def _grid_name(options: dict[str, Any]) -> str:
    shapes = options["shapes"]
    if shapes == {name: list(shape) for name, shape in LARGE_SHAPE_CLASSES.items()}:
        return "the `--large` (GPU-sized) grid" + (" with `--quick`'s budget" if options["quick"] else "")
    if options["quick"]:
        return "the `--quick` grid"
    return (
        "the default grid"
        if shapes == {name: list(shape) for name, shape in SHAPE_CLASSES.items()}
        else "chosen shapes"
    )


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(row) + " |" for row in rows
    ]


def _by_dtype(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for cell in report["cells"]:
        groups.setdefault(cell["dtype"], []).append(cell)
    return groups


def _adapter_label(report: dict[str, Any], cell: dict[str, Any]) -> str:
    devices = {c["device"] for c in report["cells"]}
    return f"`{cell['adapter']}`" if len(devices) == 1 else f"`{cell['adapter']}@{cell['device']}`"


def _grid_table(
    report: dict[str, Any],
    cells: list[dict[str, Any]],
    figure: Callable[[dict[str, Any]], str],
    *,
    by_dtype: bool = False,
) -> list[str]:
    """Adapters (and, ``by_dtype``, dtypes) down, shape classes across; each ok cell rendered by ``figure``,
    contested wins in bold."""
    shapes = list(dict.fromkeys(c["shape_class"] for c in cells))
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for cell in cells:
        if cell["status"] != "ok":
            text = cell["status"]
        else:
            text = figure(cell) + (" WRONG" if cell["error_failure"] else "")
            text = f"**{text}**" if _contested_win(cell) else text
        label = (_adapter_label(report, cell), cell["dtype"]) if by_dtype else (_adapter_label(report, cell),)
        rows.setdefault(label, {})[cell["shape_class"]] = text
    header = ["adapter", *(["dtype"] if by_dtype else [])]
    header += [f"{shape} {'x'.join(map(str, _shape_of(cells, shape)))}" for shape in shapes]
    return _markdown_table(header, [[*label] + [row.get(shape, "") for shape in shapes] for label, row in rows.items()])


def _shape_of(cells: list[dict[str, Any]], shape_class: str) -> list[int]:
    return next(c["shape"] for c in cells if c["shape_class"] == shape_class)


def _median_gbps_fraction(cell: dict[str, Any]) -> str:
    if cell["gbps"] is None:
        return format_seconds(cell["median_s"])
    return f"{format_seconds(cell['median_s'])}, {cell['gbps']:.3g} GB/s, {_number(cell['fraction_of_floor'], '.2f')}"


def _fraction_or_time(cell: dict[str, Any]) -> str:
    return format_seconds(cell["median_s"]) if cell["fraction_of_floor"] is None else f"{cell['fraction_of_floor']:.2f}"


def _floors_line(report: dict[str, Any], dtype: str) -> str:
    floors = [f for f in report["floors"] if f["dtype"] == dtype and f["gbps"] is not None]
    hardware = {f["hardware"] for f in floors}
    per_shape: dict[str, list[str]] = {}
    for floor in floors:
        label = floor["memory"] if len(hardware) == 1 else f"{floor['hardware']}/{floor['memory']}"
        ratio = floor.get("allocator_ratio")
        figure = f"{label} {floor['gbps']:.3g}" + (f" ({ratio:.2f})" if ratio is not None else "")
        per_shape.setdefault(floor["shape_class"], []).append(figure)
    text = "; ".join(f"{shape}: {', '.join(values)}" for shape, values in per_shape.items())
    ratios = " (in brackets: over the fastest memory's, in the same rounds)" if "(" in text else ""
    return f"Floors (GB/s of the fastest read of the same bytes, per allocator{ratios}): {text or 'none measured'}."


def _error_line(cells: list[dict[str, Any]]) -> str:
    wrong = [f"`{c['adapter']}` {c['shape_class']}" for c in cells if c["status"] == "ok" and c["error_failure"]]
    if wrong:
        return f"**Out of the error bound**: {', '.join(wrong)}."
    ratios = [c["error_ratio"] for c in cells if c["status"] == "ok" and isinstance(c["error_ratio"], (int, float))]
    return (
        f"Every cell's error was within the bound (worst {max(ratios):.2g} of it)."
        if ratios
        else "No error was checked."
    )


def _view_cells(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for dtype, cells in _by_dtype(report).items():
        lines += [
            f"{dtype}; each cell: median time, GB/s, fraction of the floor (latency cells: median time); "
            "**bold**: the fastest strategy of its library and device for that shape, where it has several.",
            "",
        ]
        lines += _grid_table(report, cells, _median_gbps_fraction)
        lines += ["", _floors_line(report, dtype), _error_line(cells), ""]
    return lines[:-1]


def _view_fractions(report: dict[str, Any]) -> list[str]:
    if len(_by_dtype(report)) > 1:  # one table, a row per adapter and dtype: a page, not a table per dtype
        return [
            "Fraction of the floor (latency: median time per call); **bold**: fastest of its library.",
            "",
            *_grid_table(report, report["cells"], _fraction_or_time, by_dtype=True),
            "",
            _error_line(report["cells"]),
        ]
    lines: list[str] = []
    for dtype, cells in _by_dtype(report).items():
        lines += [
            f"{dtype}; fraction of the floor (latency: median time per call); **bold**: fastest of its library.",
            "",
        ]
        lines += _grid_table(report, cells, _fraction_or_time)
        lines += ["", _error_line(cells), ""]
    return lines[:-1]


def _selection_entries(report: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
    """What ``xbackend select`` would choose from ``report`` (sorted by library, device, dtype, shape class),
    and the report's correct cells by ``_selection_key``: figures are read from the cells, the entries are rounded."""
    cells = {_selection_key(c["adapter"], c): c for c in report["cells"] if c["status"] == "ok"}
    order = {name: i for i, name in enumerate(report["options"]["shapes"])}
    entries = build_table([report], command="xbackend docs", load=report_load(report))["entries"]
    entries.sort(key=lambda e: (e["library"], e["device"], e["dtype"], order.get(e["shape_class"], len(order))))
    return entries, cells


def _view_fastest(report: dict[str, Any]) -> list[str]:
    """Per dtype, one row per library and device: its fastest correct strategy on each shape class."""
    entries, cells = _selection_entries(report)
    shapes = list(report["options"]["shapes"])
    headers = [f"{shape} {'x'.join(map(str, size))}" for shape, size in report["options"]["shapes"].items()]
    if not entries:
        return ["No correct cell of a strategy `xbackend select` could choose is in this report."]
    lines: list[str] = []
    for dtype in dict.fromkeys(entry["dtype"] for entry in entries):
        rows: dict[str, list[str]] = {}
        for entry in (e for e in entries if e["dtype"] == dtype):
            row = rows.setdefault(f"{entry['library']}@{entry['device']}", ["-"] * len(shapes))
            figure = _fraction_or_time(cells[_selection_key(entry["strategy"], entry)])
            row[shapes.index(entry["shape_class"])] = f"`{entry['strategy']}` {figure}"
        lines += [
            f"{dtype}; per library, its fastest strategy and that strategy's fraction of the floor "
            "(latency: median time per call).",
            "",
            *_markdown_table(["library", *headers], [[name, *row] for name, row in rows.items()]),
            "",
        ]
    return lines[:-1]


def _view_selection(report: dict[str, Any]) -> list[str]:
    entries, cells = _selection_entries(report)
    rows = []
    for entry in entries:
        chosen = _fraction_or_time(cells[_selection_key(entry["strategy"], entry)])
        others = ", ".join(
            f"`{name}` {_fraction_or_time(cells[_selection_key(name, entry)])}" for name in entry["alternatives"]
        )
        library, device, dtype, shape_class = (entry[key] for key in ("library", "device", "dtype", "shape_class"))
        rows.append([library, device, dtype, shape_class, f"`{entry['strategy']}`", chosen, others or "-"])
    header = [
        "library",
        "device",
        "dtype",
        "shape class",
        "chosen",
        "its fraction of the floor (latency: time)",
        "the others",
    ]
    return _markdown_table(header, rows)


def _view_scaling(report: dict[str, Any]) -> list[str]:
    """The thread-scaling section (``compare --scaling``) as a table; ValueError if the report has none."""
    scaling_series(report)  # the one check that the section is there
    scaling = report["scaling"]
    rows = []
    for point in scaling["points"]:
        name = f"`{point['adapter']}`" + ("" if point["honours_threads"] else " (ignores the count)")
        if point["error"]:
            rows.append([name, str(point["threads"]), "failed", "", "", _shorten(point["error"], 80)])
            continue
        figures = [_number(point[key], ".3g") for key in ("gbps", "floor_gbps")]
        rows.append(
            [name, str(point["threads"]), *figures, _number(point["fraction_of_floor"], ".2f"), point["floor_method"]]
        )
    shape = "x".join(map(str, scaling["shape"]))
    return [
        f"Thread scaling, {scaling['shape_class']} {shape} {scaling['dtype']}; the floor pinned to the same count.",
        "",
        *_markdown_table(["adapter", "threads", "GB/s", "floor GB/s", "fraction", "floor kernel"], rows),
    ]


def _selection_key(adapter: str, where: dict[str, Any]) -> tuple[str, str, str, tuple[int, ...]]:
    """A cell's key from a cell or a selection entry (both have device, dtype and shape)."""
    return adapter, where["device"], where["dtype"], tuple(where["shape"])


MARKDOWN_VIEWS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "cells": _view_cells,
    "fractions": _view_fractions,
    "selection": _view_selection,
    "fastest": _view_fastest,
    "scaling": _view_scaling,
}


def regenerate_markdown(text: str, root: Path, where: str = "<text>") -> str:
    """``text`` with every generated region rewritten from its report (paths relative to ``root``)."""
    regions = list(GENERATED_REGION.finditer(text))
    if len(regions) != len(_OPENING_MARKER.findall(text)):
        raise ValueError(
            f"{where}: a '<!-- generated: VIEW from PATH.json -->' line has no '<!-- end generated -->' line after it, "
            "or names no .json report"
        )
    reports: dict[str, dict[str, Any]] = {}
    pieces, last = [], 0
    for region in regions:
        source, view = region["source"], region["view"]
        try:
            if source not in reports:
                reports[source] = read_report(root / source)
            body = render_markdown_tables(reports[source], view, source=source)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        pieces += [text[last : region.start("body")], body]
        last = region.end("body")
    return "".join(pieces) + text[last:]


def read_report(path: Path) -> dict[str, Any]:
    """A compare report (``xbackend compare --json``) from ``path``; ValueError naming the path if it is not one."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read the report {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("schema") != "xbackend.compare/1":
        raise ValueError(f"{path} is not an xbackend compare report (schema xbackend.compare/1)")
    return document


def markdown_files(root: Path) -> list[Path]:
    """The files ``xbackend docs`` keeps in sync: README.md and docs/*.md under ``root``."""
    readme = root / "README.md"
    if not readme.is_file():
        raise ValueError(f"{root} has no README.md: run from the repository root or pass --root")
    return [readme] + sorted((root / "docs").glob("*.md"))


def sync_markdown(root: Path, *, check: bool = False) -> list[Path]:
    """Rewrite the generated regions of ``markdown_files(root)``; return the files that changed.

    With ``check``, nothing is written: the returned files are those out of date.
    """
    stale = []
    for path in markdown_files(root):
        text = path.read_text(encoding="utf-8")
        fresh = regenerate_markdown(text, root, where=str(path.relative_to(root)))
        if fresh != text:
            stale.append(path)
            if not check:
                write_text_atomic(path, fresh)
    return stale
