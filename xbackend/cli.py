"""The ``xbackend`` command: a thin layer over the library."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from ._registry import STRATEGIES, adapters


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xbackend",
        description="The dim-0 multiply-sum sum(a * b, axis=0) across NumPy, PyTorch, JAX and CuPy.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
