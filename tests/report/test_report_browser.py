"""The study report in a real browser: headless Chromium loads it from file:// with no network."""

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         "--enable-logging=stderr", "--v=0"]  # fmt: skip

if CHROMIUM is None and os.environ.get("CI"):
  raise RuntimeError("chromium is missing: .ci/run installs it with apt-get install -y chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (apt-get install -y chromium)")


def chromium(url: str, *args: str, tmp_path) -> subprocess.CompletedProcess:
  profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"
  return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True, text=True,
                        timeout=60, check=True)  # fmt: skip


def test_the_report_loads_in_chromium_with_every_figure_and_table_and_no_console_message(toy_report, tmp_path):
  toy_report = toy_report[0]
  source = open(toy_report, encoding="utf-8").read()
  assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?https?:|<script""", source)  # no network
  url = f"file://{toy_report}"
  dom = chromium(url, "--dump-dom", tmp_path=tmp_path)
  console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
  assert console == []  # the page logs nothing: no error, no failed load
  figures = re.findall(r"<figure>(.*?)</figure>", dom.stdout, re.S)
  assert len(figures) == source.count("<figure>") >= 1
  assert all("<svg" in f and "<path" in f for f in figures)  # every figure parsed as SVG with drawn paths
  tables = re.findall(r"<table>.*?</table>", dom.stdout, re.S)
  assert len(tables) == source.count("<table>") >= 5 and all("<td>" in t for t in tables)
  for heading in ("The study", "Loss curves", "Loss table", "Fitted laws", "Run health"):
    assert f"<h2>{heading}</h2>" in dom.stdout
  assert "partial sweep: 3 of 4 planned runs are done" in dom.stdout


def test_a_screenshot_of_the_report_is_not_blank(toy_report, tmp_path):
  toy_report = toy_report[0]
  shot = tmp_path / "shot.png"
  chromium(f"file://{toy_report}", f"--screenshot={shot}", "--window-size=1000,1400", tmp_path=tmp_path)
  pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
  assert pixels.shape == (1400, 1000)
  assert pixels.std() > 20 and (pixels < 100).mean() > 0.005  # dark text and lines on a light page
