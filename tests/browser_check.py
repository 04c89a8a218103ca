"""A real headless Chromium (Debian's package) looking at our HTML pages: load the page, report
console messages, dump the DOM, take a screenshot, and measure whether the screenshot shows
anything.  Used by the HTML report tests (unit and network)."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr", "--v=0",
         "--hide-scrollbars", "--allow-file-access-from-files"]
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:|//)|@import|url\(\s*["']?(?:https?:|//)""", re.I)


@dataclass
class Look:
    dom: str
    console: list          # console messages (errors, warnings, logs): a page of ours has none
    png: Path


def need_chromium() -> str:
    assert CHROMIUM, "Chromium is missing: apt-get install chromium (./quickstart installs it)"
    return CHROMIUM


def look(page: Path, png: Path | None, size=(1400, 1800)) -> Look:
    """Load ``page``; with ``png``, also take a screenshot of it there."""
    chromium = need_chromium()
    url = page.resolve().as_uri()
    dump = subprocess.run([chromium, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr[-2000:]
    stderr = dump.stderr
    if png is not None:
        shot = subprocess.run([chromium, *FLAGS, f"--window-size={size[0]},{size[1]}", f"--screenshot={png}", url],
                              capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
        stderr += shot.stderr
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return Look(dump.stdout, console, png)


def pixels(png: Path) -> np.ndarray:
    import matplotlib.image
    return matplotlib.image.imread(str(png))[..., :3]


def has_colour(png: Path, rgb_hex: str, tolerance: float = 0.06) -> int:
    """How many pixels are (close to) this colour."""
    want = np.array([int(rgb_hex[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(pixels(png) - want).max(axis=-1) < tolerance).sum())
