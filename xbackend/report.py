"""Rendering an ``xbackend compare`` report: the terminal table, the JSON file, the PNG plot, the progress line,
and the Markdown tables of the docs (``render_markdown_tables``, kept in sync by ``xbackend docs``).

The report is the dict ``xbackend.compare.run_compare`` returns. The JSON file
is written atomically (temporary file in the same directory, fsync,
``os.replace``), so an interrupted run leaves the previous file, never a
truncated one. matplotlib is imported only by ``write_plot``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from .core.files import write_text_atomic
from .core.shapes import LARGE_SHAPE_CLASSES, SHAPE_CLASSES
from .measure import NOISE_WARNING
from .selection import build_table


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
    lines.append("GB/s = 2*N*K*itemsize / median; floor = library dot over the same bytes, same device, same run;")
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
    return ["floor: " + "; ".join(methods)] if methods else ["floor: not measured"]


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
    for skipped in report["skipped"]:
        lines.append(f"skipped {skipped['adapter']} on {skipped['device']}: {_shorten(skipped['reason'], 120)}")
    budget = report["options"]["budget"]
    lines.append(
        f"budget per cell: {budget['warmup_s']} s warm-up, {budget['measure_s']} s of samples (>= {budget['min_repeats']}); "
        f"run took {report['elapsed_s']:.0f} s"
    )
    return lines


# -- JSON ---------------------------------------------------------------------
def write_json_atomic(path: str | os.PathLike[str], document: Any) -> None:
    """Write ``document`` as JSON so that ``path`` holds either the old file or the whole new one."""
    write_text_atomic(
        path, json.dumps(document, indent=1, allow_nan=False) + "\n"
    )  # serialised before the disk is touched


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


# -- the plot -----------------------------------------------------------------
def write_plot(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    """A PNG of GB/s per adapter and shape class (log scale), one panel per dtype, floors drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = list(dict.fromkeys(cell["dtype"] for cell in report["cells"]))
    figure, axes = plt.subplots(len(dtypes), 1, figsize=(11, 4.8 * len(dtypes)), squeeze=False)
    for axis, dtype in zip(axes[:, 0], dtypes):
        _plot_dtype(axis, report, dtype)
    machine = report["machine"]
    figure.suptitle(f"xbackend compare: sum(a*b, axis=0) on {machine['cpu']} ({machine['cpus']} CPUs)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_dtype(axis: Any, report: dict[str, Any], dtype: str) -> None:
    cells = [c for c in report["cells"] if c["dtype"] == dtype and c["cache_kind"] != "latency"]
    shapes = list(
        dict.fromkeys(c["shape_class"] for c in report["cells"] if c["dtype"] == dtype and c["cache_kind"] != "latency")
    )
    series = list(dict.fromkeys(f"{c['adapter']}@{c['device']}" for c in report["cells"] if c["dtype"] == dtype))
    if not shapes:
        axis.text(0.5, 0.5, f"{dtype}: no bandwidth cells (latency only)", ha="center", transform=axis.transAxes)
        return
    width = 0.8 / max(1, len(series))
    colours = matplotlib_colours(len(series))
    for s, name in enumerate(series):
        for x, shape in enumerate(shapes):
            cell = next(
                (c for c in cells if c["shape_class"] == shape and f"{c['adapter']}@{c['device']}" == name), None
            )
            left = x - 0.4 + s * width
            if cell is None or cell["gbps"] is None:
                axis.text(
                    left + width / 2,
                    0.02,
                    "failed" if cell else "",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    transform=axis.get_xaxis_transform(),
                    fontsize=7,
                    color="firebrick",
                )
                continue
            axis.bar(left, cell["gbps"], width, align="edge", color=colours[s], label=name if x == 0 else None)
            label = _number(cell["fraction_of_floor"], ".2g") + (" *" if _contested_win(cell) else "")
            axis.text(left + width / 2, cell["gbps"], label, ha="center", va="bottom", fontsize=7)
    _draw_floors(axis, report, dtype, shapes)
    axis.set_yscale("log")
    axis.set_xticks(range(len(shapes)))
    axis.set_xticklabels([f"{s}\n{'x'.join(map(str, report['options']['shapes'].get(s, [])))}" for s in shapes])
    axis.set_ylabel("GB/s (log)")
    axis.set_title(
        f"{dtype}: GB/s per adapter, labelled with the fraction of floor (* fastest of its framework's strategies); "
        "dashed: floor (library dot, same bytes)",
        fontsize=9,
    )
    axis.grid(axis="y", which="both", alpha=0.3)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _draw_floors(axis: Any, report: dict[str, Any], dtype: str, shapes: list[str]) -> None:
    styles = {"cpu": "black", "gpu": "darkgreen"}
    labelled: set[str] = set()
    for floor in report["floors"]:
        if floor["dtype"] != dtype or floor["gbps"] is None or floor["shape_class"] not in shapes:
            continue
        x = shapes.index(floor["shape_class"])
        hardware = floor["hardware"]
        label = None if hardware in labelled else f"floor ({hardware})"
        labelled.add(hardware)
        axis.hlines(
            floor["gbps"], x - 0.45, x + 0.45, colors=styles.get(hardware, "grey"), linestyles="dashed", label=label
        )


def matplotlib_colours(count: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(count)]


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
    shape class), ``fractions`` (fraction of the floor only) and ``selection``
    (the strategy ``xbackend select`` would choose from this report, per key).
    """
    if view not in MARKDOWN_VIEWS:
        raise ValueError(f"unknown view {view!r}; choose from {', '.join(MARKDOWN_VIEWS)}")
    return "\n".join([_provenance(report, source), "", *MARKDOWN_VIEWS[view](report)]) + "\n"


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
    where = "Measured" if source is None else f"From `{source}`"
    dtypes = ", ".join(options["dtypes"])
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
    report: dict[str, Any], cells: list[dict[str, Any]], figure: Callable[[dict[str, Any]], str]
) -> list[str]:
    """Adapters down, shape classes across; each ok cell rendered by ``figure``, contested wins in bold."""
    shapes = list(dict.fromkeys(c["shape_class"] for c in cells))
    rows: dict[str, dict[str, str]] = {}
    for cell in cells:
        if cell["status"] != "ok":
            text = cell["status"]
        else:
            text = figure(cell) + (" WRONG" if cell["error_failure"] else "")
            text = f"**{text}**" if _contested_win(cell) else text
        rows.setdefault(_adapter_label(report, cell), {})[cell["shape_class"]] = text
    header = ["adapter"] + [f"{shape} {'x'.join(map(str, _shape_of(cells, shape)))}" for shape in shapes]
    return _markdown_table(header, [[label] + [row.get(shape, "") for shape in shapes] for label, row in rows.items()])


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
        per_shape.setdefault(floor["shape_class"], []).append(f"{label} {floor['gbps']:.3g}")
    text = "; ".join(f"{shape}: {', '.join(values)}" for shape, values in per_shape.items())
    return f"Floors (GB/s of a library dot over the same bytes, per allocator): {text or 'none measured'}."


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
    lines: list[str] = []
    for dtype, cells in _by_dtype(report).items():
        lines += [
            f"{dtype}; fraction of the floor (latency: median time per call); **bold**: fastest of its library.",
            "",
        ]
        lines += _grid_table(report, cells, _fraction_or_time)
        lines += ["", _error_line(cells), ""]
    return lines[:-1]


def _view_selection(report: dict[str, Any]) -> list[str]:
    # Figures are read from the cells themselves: the table's entries are rounded.
    cells = {_selection_key(c["adapter"], c): c for c in report["cells"] if c["status"] == "ok"}
    order = {name: i for i, name in enumerate(report["options"]["shapes"])}
    entries = build_table([report], command="xbackend docs")["entries"]
    entries.sort(key=lambda e: (e["library"], e["device"], e["dtype"], order.get(e["shape_class"], len(order))))
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


def _selection_key(adapter: str, where: dict[str, Any]) -> tuple[str, str, str, tuple[int, ...]]:
    """A cell's key from a cell or a selection entry (both have device, dtype and shape)."""
    return adapter, where["device"], where["dtype"], tuple(where["shape"])


MARKDOWN_VIEWS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "cells": _view_cells,
    "fractions": _view_fractions,
    "selection": _view_selection,
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
