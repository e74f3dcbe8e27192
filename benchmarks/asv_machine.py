"""Record this machine for asv, GPU included: ``python benchmarks/asv_machine.py NAME``.

``asv machine --yes --machine NAME`` (asv 0.6.6) stores only the name, not the CPU,
OS and memory, and asv has no fields for a GPU. This writes the full entry into
``~/.asv-machine.json`` with asv's own defaults plus ``gpu``, ``gpu_driver`` and
``cuda`` (from ``nvidia-smi``; "none" on a machine without one). Every key is
copied into each result and becomes a filter on the dashboard.

``--frameworks`` also records the installed numpy / torch / jax / cupy versions:
use it for runs in an existing environment (``asv run -E existing:...``), where
asv records no package versions of its own.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess

from asv.machine import Machine, MachineCollection


def gpu_info() -> dict[str, str]:
    """Name, driver and CUDA version of GPU 0 as ``nvidia-smi`` reports them."""
    if shutil.which("nvidia-smi") is None:
        return {"gpu": "none", "gpu_driver": "none", "cuda": "none"}
    query = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()[0]
    name, driver = (field.strip() for field in query.split(","))
    header = subprocess.run(["nvidia-smi"], check=True, capture_output=True, text=True).stdout
    # The header's "CUDA Version" is the newest CUDA this driver runs.
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", header)
    return {"gpu": name, "gpu_driver": driver, "cuda": cuda.group(1) if cuda else "unknown"}


FRAMEWORK_DISTRIBUTIONS = ("numpy", "torch", "jax", "jaxlib", "cupy-cuda13x", "cupy-cuda12x", "cupy")


def framework_versions() -> dict[str, str]:
    """Installed versions of the benchmarked frameworks, read from package metadata (nothing is imported)."""
    versions = {}
    for dist in FRAMEWORK_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="machine name: the results folder and the dashboard's label")
    parser.add_argument("--frameworks", action="store_true", help="record the installed framework versions")
    args = parser.parse_args(argv)
    entry = {**Machine.get_defaults(), **gpu_info(), "machine": args.name}
    if args.frameworks:
        entry.update(framework_versions())
    MachineCollection.save(args.name, entry)
    for key, value in entry.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
