"""Render an HTML report with headless Chromium and save a PNG screenshot of its top.

Run from anywhere: ``python scripts/screenshot_report.py REPORT.html OUT.png [--width 1280
--height 2400 --max-bytes 1000000]``. Needs a Chromium binary (Debian: ``apt-get install -y
chromium``); ``--chromium PATH`` names one that is not on the ``PATH``. The browser runs with
a fresh profile in a temporary folder, no sandbox (so it runs as root in a container), no
GPU and no network services, and is given the page as a ``file://`` URL: a self-contained
report renders completely offline. When the PNG is larger than ``--max-bytes`` and Pillow is
installed, it is re-saved with a 256-colour palette, then downscaled until it fits.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def screenshot(report: Path, out: Path, *, browser: str, width: int, height: int) -> None:
    """Render ``report`` in a ``width`` x ``height`` window and save the window as ``out``."""
    with tempfile.TemporaryDirectory(prefix="perturbsim-chromium-") as profile:
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={out.resolve()}",
            f"--window-size={width},{height}",
            report.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not out.is_file():
        sys.exit(f"chromium failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def shrink(path: Path, max_bytes: int) -> None:
    """Re-save ``path`` with a palette, then at smaller sizes, until it has ``max_bytes``."""
    try:
        from PIL import Image
    except ImportError:
        print(f"{path} has {path.stat().st_size} bytes; install Pillow to shrink it")
        return
    original = Image.open(path).convert("RGB")
    scale = 1.0
    while path.stat().st_size > max_bytes and scale > 0.3:
        size = (round(original.width * scale), round(original.height * scale))
        image = original.resize(size, Image.Resampling.LANCZOS) if scale < 1 else original
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
        scale *= 0.85


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the HTML file")
    parser.add_argument("out", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280, help="window width (px)")
    parser.add_argument("--height", type=int, default=2400, help="window height (px)")
    parser.add_argument("--max-bytes", type=int, default=1_000_000, help="largest PNG kept")
    parser.add_argument("--chromium", help="browser binary (default: the first on the PATH)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        sys.exit(f"no such file: {args.report}")
    browser = args.chromium or next(filter(None, map(shutil.which, BROWSERS)), None)
    if browser is None:
        sys.exit("no Chromium found: apt-get install -y chromium, or pass --chromium PATH")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    screenshot(args.report, args.out, browser=browser, width=args.width, height=args.height)
    shrink(args.out, args.max_bytes)
    print(f"{args.out}: {args.out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
