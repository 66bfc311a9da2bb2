"""Headless Chromium for the tests (Debian's chromium and chromium-driver, installed by
scripts/services; nothing is downloaded), and where their screenshots go."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).parents[2]
DOCS_IMAGES = ROOT / "docs" / "images"
DOCS_SHOTS = os.environ.get("OMNIQ_DOCS_SHOTS", "") not in ("", "0")
"""Whether the tests also refresh the screenshots the docs show."""
# Debian's chromium-driver; CI images with Google Chrome name their driver's folder.
CHROMEDRIVER = (
    "/usr/bin/chromedriver"
    if os.path.exists("/usr/bin/chromedriver")
    else os.path.join(os.environ.get("CHROMEWEBDRIVER", "/usr/bin"), "chromedriver")
)


@contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a profile of its own, removed afterwards."""
    profile = tempfile.mkdtemp(prefix="omniq-chromium-")
    opts = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.binary_location = shutil.which("chromium") or shutil.which("google-chrome") or ""
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def save_shot(driver: webdriver.Chrome, folder: Path, name: str) -> Path:
    """A screenshot of the page as ``folder/name.png`` (kept as a test artifact)."""
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
