"""The ``xbackend`` command: a thin layer over the library.

Every option is checked before anything is measured. A user's mistake (a bad
value, an unwritable output path, a malformed input file) ends with one line
on stderr, ``xbackend <command>: <what was wrong>``, and exit status 2; an
internal error keeps its traceback (exit 1). Ctrl-C exits 130; ``compare`` and
``tune`` then keep what they measured in ``X.partial.json`` next to their
output ``X``, as they do when the final write fails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .backends import SELECTABLE_LIBRARIES
from .registry import STRATEGIES, adapters


# -- usage errors: one line, exit 2 ---------------------------------------------
class UsageError(Exception):
    """A user's mistake: ``main`` prints it as one line after ``xbackend <command>:`` and exits 2."""


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split())


@contextlib.contextmanager
def _usage() -> Iterator[None]:
    """Inside: the option parsers' ``ValueError``/``TypeError``/``KeyError`` are the user's mistakes (exit 2)."""
    try:
        yield
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(_one_line(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad option is one line (``xbackend compare: argument --threads: ...``), not usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {_one_line(ValueError(message))}\n")


def _threads(text: str) -> int:
    """``--threads``: a positive integer, at most the machine's CPUs (more would only oversubscribe them)."""
    limit = os.cpu_count() or 1
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if not 1 <= threads <= limit:
        raise argparse.ArgumentTypeError(f"{text!r} is not a thread count from 1 to {limit} (the CPUs of this machine)")
    return threads


def _non_negative(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}: use an integer >= 0")
    return value


def _seed(text: str) -> int:
    """``--seed``: a non-negative integer (NumPy's generators take no negative seed)."""
    return _non_negative(text, "a seed")


def _count(text: str) -> int:
    """An integer >= 0 (``select --load``: the reports may come from a machine with more CPUs than this one)."""
    return _non_negative(text, "a count")


def _load(text: str) -> int:
    """``--load``: busy background processes, from 0 to the CPUs this process may run on (``compare.check_load``)."""
    from .compare import check_load

    try:
        workers = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    try:
        return check_load(workers)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _output_path(text: str, option: str, *, create_folder: bool = False) -> Path:
    """``text`` as a file ``option`` can write: not a folder, in an existing folder where a file can be created.

    The check creates and removes a probe file, so that read-only filesystems,
    permissions (root included) and pseudo-filesystems all answer as a real write would.
    """
    path = Path(text)
    folder = path.parent
    if path.is_dir():
        raise UsageError(f"{option} {text} is a folder; name a file in it")
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{option} {text}: cannot create the folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise UsageError(f"{option} {text}: {folder} {what}")
    try:
        handle, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise UsageError(f"{option} {text}: cannot write in {folder}: {exc.strerror or exc}") from None
    os.close(handle)
    os.unlink(probe)
    return path


def _keep(command: str, target: Path, document: dict[str, Any], why: str) -> None:
    """Save what a run measured next to ``target`` and say where, on stderr."""
    from .report import keep_partial

    kept = keep_partial(target, document)
    where = f"what was measured is kept in {kept}" if kept else "what was measured could not be saved anywhere"
    print(f"xbackend {command}: {why}; {where}", file=sys.stderr)


def _list(args: argparse.Namespace) -> int:
    infos = adapters()
    rows = [("adapter", "device", "status", "computes")]
    for info in infos:
        status = "available" if info.available else f"unavailable: {info.reason}"
        rows.append((info.name, info.device, status, info.formulation))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[3])
    print()
    versions = {cls.framework: cls.framework_version() for cls in STRATEGIES.values()}
    print("frameworks: " + ", ".join(f"{name} {version or 'not installed'}" for name, version in versions.items()))
    return 0


def _add_list(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("list", help="every adapter and device, available or why not")
    parser.set_defaults(run=_list)


# Each subcommand registers its parser here; the work lives in the library.
SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_list]


def _check(args: argparse.Namespace) -> int:
    from .testing import sweep as correctness

    with _usage():
        pairs = _selected_pairs(args.adapters) or correctness.select_pairs(None)  # not given: all
        dtypes = _sweep_dtypes(args.dtypes)
    rows = correctness.sweep_pairs(pairs, dtypes, seed=args.seed)
    print(correctness.format_rows(rows))
    failed = [row for row in rows if not row.passed]
    print(f"\n{len(failed)} of {len(rows)} rows failed" if failed else f"\nall {len(rows)} rows passed or were skipped")
    return 1 if failed else 0


def _sweep_dtypes(text: str) -> list[str]:
    from .core.dtypes import check_supported
    from .testing.sweep import SWEEP_DTYPES

    dtypes = [part.strip() for part in text.split(",") if part.strip()]
    for dtype in dtypes:
        check_supported(dtype, where="--dtypes")
        if dtype not in SWEEP_DTYPES:
            raise ValueError(f"--dtypes {dtype}: the sweep covers {', '.join(SWEEP_DTYPES)}")
    if not dtypes:
        raise ValueError("--dtypes names no dtype")
    return dtypes


def _add_check(commands: argparse._SubParsersAction) -> None:
    from .testing.sweep import SWEEP_DTYPES

    parser = commands.add_parser(
        "check",
        help="run the correctness sweep for every available adapter; exit 1 on any failure",
        description=(
            "Runs the seeded correctness sweep (shapes, broadcasting, layouts, magnitudes, NaN/inf, "
            "long sums) on every available adapter and prints one row per (adapter, device, dtype): "
            "cases run, worst error / rigorous bound, pass or fail. JAX 64-bit dtypes run only with "
            "JAX_ENABLE_X64=1."
        ),
    )
    parser.add_argument("--adapters", metavar="NAME[@DEVICE],...", default=None, help="default: all")
    parser.add_argument("--dtypes", default=",".join(SWEEP_DTYPES), help="comma-separated (default: %(default)s)")
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (default: 0)")
    parser.set_defaults(run=_check)


SUBCOMMANDS.append(_add_check)


def _compare(args: argparse.Namespace) -> int:
    from . import compare, report

    with _usage():
        options = compare.CompareOptions(
            pairs=_selected_pairs(args.adapters),
            devices=_names(args.devices, "--devices", "device"),
            shapes=_shapes(args.shapes, quick=args.quick, large=args.large),
            dtypes=compare.parse_dtypes(args.dtypes),
            quick=args.quick,
            large=args.large,
            seed=args.seed,
            threads=args.threads,
            samples=args.samples,
            scaling=args.scaling,
            load=args.load,
        )
        compare.validate(options)  # refuse a bad selection, dtype or size before any work
    outputs = [_output_path(path, option) for path, option in ((args.json, "--json"), (args.plot, "--plot")) if path]
    if args.plot and args.scaling:
        _output_path(str(report.scaling_plot_path(args.plot)), "--plot (its -scaling.png)")
    try:
        document = compare.run_compare(options, progress=report.ProgressLine())
    except compare.CompareInterrupted as stop:
        if outputs:
            _keep("compare", outputs[0], stop.document, "interrupted")
        return 130
    print(report.format_table(document))
    return _write_compare_outputs(args, document)


def _write_compare_outputs(args: argparse.Namespace, document: dict[str, Any]) -> int:
    from . import report

    scaling_plot = report.scaling_plot_path(args.plot) if args.plot and "scaling" in document else None
    for path, option, write in (
        (args.json, "--json", report.write_json_atomic),
        (args.plot, "--plot", report.write_plot),
        (scaling_plot, "--plot", report.write_scaling_plot),
    ):
        if not path:
            continue
        try:
            write(path, document)
        except OSError as exc:
            _keep("compare", Path(args.json or path), document, f"cannot write {option} {path}: {exc.strerror or exc}")
            return 1
        print(f"wrote {path}")
    return 0


def _selected_pairs(selection: str | None) -> list[tuple[str, str]] | None:
    names = _names(selection, "--adapters", "adapter")
    if names is None:
        return None
    from .testing.sweep import select_pairs

    return select_pairs(",".join(names))


def _names(text: str | None, option: str, what: str) -> list[str] | None:
    """The comma-separated names given to ``option``, or None where it was not given.

    Given blank (``--libraries "$UNSET"``), it is refused rather than read as
    the default, which would run every library, adapter or device.
    """
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError(f"{option} {text!r} names no {what}: leave the option out for all")
    return names


def _shapes(text: str | None, *, quick: bool, large: bool = False) -> dict[str, tuple[int, ...]] | None:
    from . import compare

    return None if text is None else compare.parse_shapes(text, quick=quick, large=large)


def _add_compare(commands: argparse._SubParsersAction) -> None:
    from .measure import DEFAULT_DTYPES, SHAPE_CLASSES

    parser = commands.add_parser(
        "compare",
        help="time every available adapter over shapes and dtypes: GB/s, fraction of floor, memory, error",
        description=(
            "Runs every available adapter (all strategies, all devices) over a grid of shapes and dtypes and "
            "reports per cell: median time with p20/p80 and noise, compile/first-call time, GB/s and fraction of "
            "a floor timed in rounds alternating with the cell's (the fastest library dot over the same bytes), extra "
            "memory with its method, "
            "and worst error / rigorous bound. A failing cell is reported and the run goes on."
        ),
    )
    parser.add_argument(
        "--adapters", metavar="NAME[@DEVICE],...", default=None, help="default: every available adapter"
    )
    parser.add_argument("--devices", metavar="DEVICE,...", default=None, help="e.g. cpu or cuda,gpu (default: all)")
    parser.add_argument(
        "--shapes",
        metavar="SHAPE,...",
        default=None,
        help=f"shape classes ({', '.join(SHAPE_CLASSES)}) or NxK, comma-separated (default: all classes)",
    )
    parser.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES), help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            "reduced grid: every shape class at a smaller size that still reads >= 64 MiB (square stays 4096x4096), "
            "and a shorter budget per cell (0.1 s warm-up, 0.3 s of samples instead of 0.5 s and 1.5 s)"
        ),
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="GPU-sized shape classes: each bandwidth class reads 2 x 256 MiB in float32 (the budget stays --quick's or the default)",
    )
    parser.add_argument(
        "--threads", type=_threads, default=None, help="CPU threads for BLAS and torch (default: all CPUs)"
    )
    parser.add_argument("--seed", type=_seed, default=0, help="seed of the random inputs (default: 0)")
    parser.add_argument(
        "--json", metavar="PATH", default=None, help="write every figure, machine and versions (atomically)"
    )
    parser.add_argument(
        "--plot",
        metavar="PATH",
        default=None,
        help=(
            "write a PNG heatmap of the fraction of the floor per strategy and shape class, and with --scaling "
            "PATH's -scaling.png of GB/s per thread count (needs matplotlib; `xbackend plot` redraws them from a JSON)"
        ),
    )
    parser.add_argument(
        "--samples", action="store_true", help="keep every cell's raw per-call times (samples_s) in the report"
    )
    parser.add_argument(
        "--scaling",
        action="store_true",
        help=(
            "also measure thread scaling: the selected -auto CPU adapters (else every selected CPU adapter) and the "
            "floor at 1, 2, 4, ... all CPU threads on the square shape: GB/s and fraction of floor per count"
        ),
    )
    parser.add_argument(
        "--load",
        type=_load,
        default=0,
        metavar="N",
        help=(
            "the loaded scenario: N background processes each keep one CPU busy during the whole measurement "
            "(0 to the CPU count; default 0, none); the report records it, and xbackend select keeps it apart"
        ),
    )
    parser.set_defaults(run=_compare)


SUBCOMMANDS.append(_add_compare)


def _select(args: argparse.Namespace) -> int:
    import json

    from . import report
    from . import selection as _selection

    with _usage():
        documents = [report.read_report(Path(path)) for path in args.sources]
        table = _selection.build_table(
            _checked_documents(documents, args.sources, args.load),
            command="xbackend select "
            + " ".join(f"--from {p}" for p in args.sources)
            + (f" --load {args.load}" if args.load else ""),
            load=args.load,
        )
    if args.out:
        out = _output_path(args.out, "--out")
        _selection.write_table(table, out)
        print(f"wrote {len(table['entries'])} entries to {args.out}")
    else:
        print(json.dumps(table, indent=1))
    return 0


def _checked_documents(documents: list[dict[str, Any]], paths: Sequence[str], load: int) -> list[dict[str, Any]]:
    """Each report on its own through ``build_table``, so that an error names the file it is in."""
    from . import selection as _selection

    for document, path in zip(documents, paths):
        try:
            _selection.build_table([document], command="check", load=load)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return documents


def _add_select(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "select",
        help="make a selection table from xbackend compare --json reports (the shipped xbackend/selection.json)",
        description=(
            "Per (library, device, dtype, shape class), picks the strategy with the lowest median time per element among the "
            "correct cells of the given reports, keeping the measured fractions of the floor that justified it. "
            "The package's table is made with: xbackend compare --json cpu.json && "
            "xbackend select --from cpu.json [--from gpu.json] --out xbackend/selection.json"
        ),
    )
    parser.add_argument("--from", dest="sources", metavar="COMPARE.json", action="append", required=True)
    parser.add_argument("--out", metavar="PATH", default=None, help="write the table here (default: print it)")
    parser.add_argument(
        "--load",
        type=_count,
        default=0,
        metavar="N",
        help=(
            "build a table for the loaded scenario: take only reports measured with xbackend compare --load N "
            "(default 0: only unloaded reports; a loaded report is refused, so that it cannot decide for the quiet machine)"
        ),
    )
    parser.set_defaults(run=_select)


def _tune(args: argparse.Namespace) -> int:
    from . import compare, report
    from . import selection as _selection

    with _usage():
        options = compare.CompareOptions(
            pairs=_selection.candidate_pairs(_names(args.libraries, "--libraries", "library")),
            shapes=_shapes(args.shapes, quick=args.quick),
            dtypes=compare.parse_dtypes(args.dtypes),
            quick=args.quick,
            threads=args.threads,
        )
        compare.validate(options)
    target = _output_path(args.out or str(_selection.tuned_table_path()), "--out", create_folder=not args.out)
    try:
        path, table = compare.tune(options, path=target, progress=report.ProgressLine())
    except compare.CompareInterrupted as stop:
        _keep("tune", target, stop.document, "interrupted; no table written")
        return 130
    except compare.UnsavedReport as failed:
        _keep("tune", target, failed.document, f"{failed}; no table written")
        return 1
    for entry in table["entries"]:
        print(
            f"{entry['library']:6s} {entry['device']:5s} {entry['dtype']:9s} {entry['shape_class']:12s} -> {entry['strategy']}"
        )
    print(f"wrote {path}; xbackend.mul_sum now prefers it on this machine (delete it to go back to the shipped table)")
    return 0


def _add_tune(commands: argparse._SubParsersAction) -> None:
    from .measure import DEFAULT_DTYPES

    parser = commands.add_parser(
        "tune",
        help="measure every strategy on this machine and cache the selection table xbackend.mul_sum uses here",
        description=(
            "Opt-in: runs xbackend compare over the selectable strategies of the installed libraries and writes "
            "the per-machine table $XDG_CACHE_HOME/xbackend/selection-<machine id>.json (default ~/.cache), which "
            "xbackend.mul_sum prefers over the shipped table."
        ),
    )
    parser.add_argument(
        "--libraries", metavar="LIB,...", default=None, help="numpy, torch, jax, cupy (default: all installed)"
    )
    parser.add_argument(
        "--shapes", metavar="SHAPE,...", default=None, help="shape classes or NxK (default: all classes)"
    )
    parser.add_argument("--dtypes", default=",".join(DEFAULT_DTYPES), help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--quick", action="store_true", help="the smaller --quick shapes and budget of xbackend compare"
    )
    parser.add_argument(
        "--threads", type=_threads, default=None, help="CPU threads for BLAS and torch (default: all CPUs)"
    )
    parser.add_argument(
        "--out", metavar="PATH", default=None, help="write the table here instead of the per-machine cache"
    )
    parser.set_defaults(run=_tune)


def _explain(args: argparse.Namespace) -> int:
    from .compare import parse_shapes
    from .dispatch import choose_for

    with _usage():
        shapes = parse_shapes(args.shape, option="--shape")
        if len(shapes) != 1:
            raise ValueError(f"--shape takes one shape, got {len(shapes)}: {', '.join(shapes)}")
        (shape,) = shapes.values()
        _dtypes_check(args.dtype)
        choice = choose_for(args.library, args.device, shape, args.dtype)
        if args.trial:  # the trial allocates the inputs: a shape that cannot fit is refused, not a MemoryError
            from .compare import check_fits_memory

            check_fits_memory({args.shape: shape}, [args.dtype])
    _check_runs_here(choice.strategy, args.device, args.dtype)
    if args.trial:
        from .measure import first_dispatch

        seconds, choice = first_dispatch(args.library, args.device, shape, args.dtype)
        print(choice)
        print(f"first mul_sum call of this signature in this process: {seconds:.3g} s (any trial included)")
        return 0
    print(choice)
    return 0


def _dtypes_check(dtype: str) -> None:
    from .core.dtypes import check_supported

    check_supported(dtype, where="--dtype")


def _check_runs_here(strategy: str, device: str, dtype: str) -> None:
    """The chosen strategy must run on ``device`` here and compute ``dtype``: explain names nothing that cannot run."""
    from .core.errors import AdapterUnavailable
    from .registry import get_adapter

    try:
        adapter = get_adapter(strategy, device)
    except AdapterUnavailable as exc:
        raise UsageError(f"{strategy} cannot run on {device} here: {_one_line(exc)}") from None
    if dtype in adapter.unsupported_dtypes():
        raise UsageError(adapter.unsupported_dtype_reason(dtype))


def _add_explain(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "explain",
        help="which strategy xbackend.mul_sum runs for a library, device, shape and dtype, and why",
    )
    parser.add_argument("--library", choices=SELECTABLE_LIBRARIES, required=True)
    parser.add_argument("--device", default="cpu", help="cpu, cuda (torch, cupy) or gpu (jax); default: cpu")
    parser.add_argument("--shape", required=True, help="a shape class (square, ...) or NxK")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--trial",
        action="store_true",
        help="call xbackend.mul_sum once on seeded inputs of that shape first, so that the first-call trial runs "
        "where one is due (and is recorded in the wisdom file); print the choice and that call's seconds",
    )
    parser.set_defaults(run=_explain)


SUBCOMMANDS += [_add_select, _add_tune, _add_explain]


def _docs(args: argparse.Namespace) -> int:
    from . import report

    try:
        if args.show:
            print(
                report.render_markdown_tables(report.read_report(Path(args.show)), args.view, source=args.show), end=""
            )
            return 0
        stale = report.sync_markdown(Path(args.root), check=args.check)
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(_one_line(exc)) from None
    names = ", ".join(str(path.relative_to(args.root)) for path in stale)
    if args.check:
        print(f"out of date: {names} (run `xbackend docs`)" if stale else "every generated table is up to date")
        return 1 if stale else 0
    print(f"rewrote {names}" if stale else "every generated table was already up to date")
    return 0


def _add_docs(commands: argparse._SubParsersAction) -> None:
    from .report import MARKDOWN_VIEWS

    parser = commands.add_parser(
        "docs",
        help="rewrite the result tables in README.md and docs/*.md from the committed compare reports",
        description=(
            "Rewrites every region between '<!-- generated: VIEW from REPORT.json -->' and '<!-- end generated -->' "
            "in README.md and docs/*.md with the table VIEW of that xbackend compare report (path relative to the "
            "repository root). --check writes nothing and exits 1 if a region is out of date."
        ),
    )
    parser.add_argument("--root", default=".", help="the repository root (default: the current directory)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a generated table is stale")
    parser.add_argument("--show", metavar="REPORT.json", default=None, help="print one view of a report instead")
    parser.add_argument(
        "--view", choices=list(MARKDOWN_VIEWS), default="cells", help="with --show (default: %(default)s)"
    )
    parser.set_defaults(run=_docs)


SUBCOMMANDS.append(_add_docs)


def _plot(args: argparse.Namespace) -> int:
    from . import report

    for path, option in ((args.heatmap, "--heatmap"), (args.scaling, "--scaling")):
        if path is not None and not path.strip():
            raise UsageError(f"{option} is empty: name the PNG file to write")
    if not (args.heatmap or args.scaling):
        raise UsageError("nothing to draw: give --heatmap PATH, --scaling PATH or both")
    if args.heatmap and args.scaling and Path(args.heatmap).resolve() == Path(args.scaling).resolve():
        raise UsageError(
            f"--heatmap and --scaling both name {args.scaling}: the second picture would overwrite the first"
        )
    with _usage():  # a report the pictures cannot draw is refused before anything is drawn
        document = report.read_report(Path(args.report))
        if args.heatmap:
            report.check_heatmap_report(document)
        if args.scaling:
            report.check_scaling_report(document)
    outputs = [
        (_output_path(path, option), write)
        for path, option, write in (
            (args.heatmap, "--heatmap", report.write_plot),
            (args.scaling, "--scaling", report.write_scaling_plot),
        )
        if path
    ]  # every path checked before anything is drawn
    for path, write in outputs:
        write(path, document)
        print(f"wrote {path}")
    return 0


def _add_plot(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "plot",
        help="draw the pictures of an xbackend compare --json report (the PNGs in docs/)",
        description=(
            "--heatmap: the fraction of the floor per strategy (rows) and shape class (columns), one panel per "
            "library and device, the -auto adapter (what xbackend.mul_sum runs) outlined. --scaling: GB/s and "
            "fraction of the floor per CPU thread count, from a report made with xbackend compare --scaling. "
            "Needs matplotlib."
        ),
    )
    parser.add_argument("report", metavar="REPORT.json")
    parser.add_argument("--heatmap", metavar="PATH", default=None, help="write the heatmap PNG here")
    parser.add_argument("--scaling", metavar="PATH", default=None, help="write the thread-scaling PNG here")
    parser.set_defaults(run=_plot)


SUBCOMMANDS.append(_add_plot)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xbackend",
        description="The dim-0 multiply-sum sum(a * b, axis=0) across NumPy, PyTorch, JAX and CuPy.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # JAX would otherwise take 75% of GPU memory when its backend starts, starving
    # torch and CuPy measured in the same process.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"xbackend {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"xbackend {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
