"""Headless Debian Chromium for the tests that must see a page rendered (report, dashboard).

Chromium is a test requirement (``.ci/run`` installs Debian's ``chromium``); a machine without
it fails these tests with the command that installs it, rather than skipping them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"  # only loopback resolves


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "these tests need Debian's chromium: apt-get install -y chromium"
    return path


def _run(url: str, *flags: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        OFFLINE,
        "--virtual-time-budget=10000",
        *flags,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def rendered_dom(url: str) -> str:
    """The page's DOM after its scripts ran, with every outside host unreachable."""
    result = _run(url, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def screenshot(url: str, out: Path, width: int = 1400, height: int = 900) -> Path:
    result = _run(url, f"--window-size={width},{height}", f"--screenshot={out}")
    assert result.returncode == 0 and out.is_file(), result.stderr[-2000:]
    return out
