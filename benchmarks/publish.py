"""Build the dashboard with ``asv publish`` and make it work without internet access.

    python benchmarks/publish.py [--config benchmarks/asv.publish.json]

The default config publishes the curated results (``benchmarks/results``, every
machine folder in it) into ``.asv/html-published``; ``--config asv.conf.json``
publishes local runs (``.asv/results`` -> ``.asv/html``). asv 0.6.6's
``index.html`` loads jQuery, flot and bootstrap from CDNs; this copies the
vendored files of ``benchmarks/dashboard_assets`` into the site and points the
page at them. View it with ``python -m http.server -d <html dir>`` or
``asv preview --config <config>``; ``--screenshot VIEW PNG`` draws one page of it
in headless Chromium (the picture in docs/history.md).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from asv import util

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "benchmarks" / "dashboard_assets"
ASSET_DIR_NAME = "vendor"

# Each CDN file asv 0.6.6's index.html loads, and the vendored file that replaces it.
CDN_FILES = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "jquery.flot.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": "jquery.flot.time.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": "jquery.flot.selection.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": "jquery.flot.categories.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": "stupidtable.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": "md5.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": "bootstrap.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": "bootstrap.min.css",
}
_EXTERNAL_TAG = re.compile(r"<(script|link)\b[^>]*?(?:src|href)=\"(https?://[^\"]+)\"[^>]*>")
# Subresource-integrity and CORS attributes only make sense for the CDN copies.
_CDN_ATTRIBUTES = re.compile(r"\s+(?:integrity|crossorigin|referrerpolicy)=\"[^\"]*\"")


class PublishError(Exception):
    pass


def html_dir_of(config: Path) -> Path:
    """The ``html_dir`` of an asv config; relative paths are relative to the config's folder (asv runs there)."""
    html_dir = Path(util.load_json(str(config), js_comments=True).get("html_dir", "html"))
    return html_dir if html_dir.is_absolute() else (config.parent / html_dir).resolve()


def localize(html_dir: Path) -> int:
    """Point ``index.html`` at vendored copies of its CDN files; the number of tags rewritten."""
    index = html_dir / "index.html"
    page = index.read_text()
    unknown = sorted({url for _, url in _EXTERNAL_TAG.findall(page)} - CDN_FILES.keys())
    if unknown:
        raise PublishError(
            f"{index} loads files with no vendored copy: {', '.join(unknown)} "
            "(a new asv version?): add them to benchmarks/dashboard_assets and CDN_FILES"
        )
    target = html_dir / ASSET_DIR_NAME
    target.mkdir(exist_ok=True)
    for name in CDN_FILES.values():
        shutil.copy2(ASSETS / name, target / name)

    def local_tag(match: re.Match[str]) -> str:
        tag = match.group(0).replace(match.group(2), f"{ASSET_DIR_NAME}/{CDN_FILES[match.group(2)]}")
        return _CDN_ATTRIBUTES.sub("", tag)

    page, count = _EXTERNAL_TAG.subn(local_tag, page)
    index.write_text(page)
    return count


def publish(config: Path) -> Path:
    """``asv publish`` with ``config``, then ``localize``; the site's folder."""
    subprocess.run([sys.executable, "-m", "asv", "publish", "--no-pull", "--config", str(config)], check=True)
    html_dir = html_dir_of(config)
    localize(html_dir)
    return html_dir


@contextlib.contextmanager
def served(html_dir: Path) -> Iterator[str]:
    """The site served over HTTP on 127.0.0.1 (its pages fetch JSON, which ``file://`` refuses); yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(html_dir), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(base + "index.json", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def screenshot(html_dir: Path, view: str, png: Path) -> None:
    """Headless Chromium's picture of the dashboard page ``index.html#<view>`` (a graph and its parameters)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise PublishError("no chromium on PATH (apt-get install -y chromium)")
    with served(html_dir) as base, tempfile.TemporaryDirectory(prefix="xbackend-chromium-") as profile:
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,900"]
        flags += ["--virtual-time-budget=15000", f"--user-data-dir={profile}", f"--screenshot={png.resolve()}"]
        subprocess.run([browser, *flags, f"{base}index.html#{view}"], check=True, capture_output=True, timeout=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "benchmarks" / "asv.publish.json")
    parser.add_argument(
        "--screenshot",
        nargs=2,
        metavar=("VIEW", "PNG"),
        help="then draw the page index.html#VIEW (e.g. a benchmark and p-adapter=... parameters) into PNG",
    )
    args = parser.parse_args(argv)
    if args.screenshot and not Path(args.screenshot[1]).parent.is_dir():
        parser.error(f"--screenshot: {Path(args.screenshot[1]).parent} is not a folder")
    try:
        html_dir = publish(args.config.resolve())
        if args.screenshot:
            screenshot(html_dir, args.screenshot[0], Path(args.screenshot[1]))
    except (PublishError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 1
    print(f"dashboard: {html_dir}/index.html")
    if args.screenshot:
        print(f"wrote {args.screenshot[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
