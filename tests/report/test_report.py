"""`mixlaws report`: what the page says about a sweep, its figures' legends and ticks, the command."""

import re

import pytest
from click.testing import CliRunner

from mixlaws import cli, store
from mixlaws.fit import fitter, laws
from mixlaws.report import study as report_study


@pytest.fixture(scope="module")
def smoke_page(smoke_root):
  with store.open(smoke_root) as st:
    return report_study.build(st, "smoke", law_names=("wang2024",), bootstrap=5, starts=20)


def _svg_texts(page: str) -> list[str]:
  """The text matplotlib drew (it writes each text as glyph paths after a comment holding the text)."""
  return re.findall(r"<!-- (.*?) -->", page)


def test_the_report_of_a_sweep_with_a_failed_run(smoke_page):
  assert "partial sweep: 15 of 16 planned runs are done" in smoke_page
  health = smoke_page[smoke_page.index('id="health"') :]
  assert "1 of 16 runs failed, hit NaN or were preempted" in health
  assert re.search(r"smoke-d32l2-262K-\w+</td><td>failed</td>.*?failed, NaN loss", health)
  assert "41k" in health  # tokens/s: 2,048 tokens per step in 0.05 s
  fits = smoke_page[smoke_page.index('id="fits"') : smoke_page.index('id="optimal"')]
  assert "wang2024 on all finished runs" in fits and "95% low" in fits
  rows = re.findall(r"<tr><td>(alpha|gamma|beta)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td></tr>", fits)
  assert len(rows) == 3 and all(low and high for _, _, low, high in rows)  # every coefficient has an interval
  assert "held-out error, the lowest-loss run" in fits
  assert "line_end/acc" in smoke_page[smoke_page.index('id="downstream"') :]
  assert "no two compute budgets" in smoke_page  # smoke is not an isoFLOP study


def test_the_figures_name_configurations_and_print_plain_ticks(smoke_page):
  texts = _svg_texts(smoke_page)
  for label in ("dense N=43.4k", "MoE E=4", "MoE E=8 G=2", "D = 262k tokens", "D = 524k tokens", "MoE E=8 G=2 runs"):
    assert label in texts
  assert "wang2024: loss vs N_act at fixed D (line style) and E (colour)" in "\n".join(texts)
  ticks = [t for t in texts if re.fullmatch(r"[-−\d.,kMBTe×^{}\\mathdefault$]+", t)]
  assert "100k" in ticks and not any("×" in t or "mathdefault" in t for t in texts)


def test_the_krajewski_figure_draws_loss_vs_n_per_g_and_loss_vs_g(tmp_path):
  import pandas as pd

  from mixlaws import plots

  law = laws.get("krajewski2024")
  published = next(iter(law.published.values()))
  points = pd.DataFrame([{"params": n, "tokens": d, "granularity": g} for n in (1e7, 1e8) for d in (2e9, 8e9)
                         for g in (1, 4, 16)])  # fmt: skip
  points["loss"] = fitter.predict(law, published, points)
  fit = fitter.Fit(law.name, dict(published), 0.0, len(points), 1, 1, "gtol", 0.0, "jax", {}, {})
  svg = open(plots.fit(law, fit, points, str(tmp_path))[1]).read()
  texts = _svg_texts(svg)
  assert {"G=1", "G=4", "G=16", "D = 2B", "D = 8B", "N = 10M", "N = 100M"} <= set(texts)
  assert "krajewski2024: loss vs G at fixed N (colour) and D = 8B" in texts


def test_the_report_command_writes_a_partial_page_over_a_stale_one(toy_report):
  path, output = toy_report
  assert output.strip() == f"wrote {path}"
  page = path.read_text()
  assert "stale" not in page and "<svg" in page
  assert "partial sweep: 3 of 4 planned runs are done" in page and "chinchilla: 1 finished run(s)" in page


def test_a_study_without_runs_is_a_one_line_error(toy_root):
  result = CliRunner().invoke(cli.main, ["report", "nope", "--root", str(toy_root)])
  assert result.exit_code == 2 and "nope: no runs in the results store" in result.output
  assert len(result.output.strip().splitlines()) == 1


def test_a_ludziejewski_fit_gets_compute_and_memory_optimal_tables_with_intervals():
  import pandas as pd

  law = laws.get("ludziejewski2025")
  published = dict(next(iter(law.published.values())))
  shifted = {**published, "c": published["c"] * 1.01}  # a second "resample", so the interval has width
  fit = fitter.Fit(law.name, published, 0.0, 10, 1, 1, "gtol", 0.0, "jax", {}, {}, samples=[published, shifted], ci=0.9)
  page = report_study.optimal_section([report_study.Fitted(law, "all runs", pd.DataFrame({"flops": [1e20]}), fit)])
  for caption in ("compute-optimal (N, D, E, G)", "memory-optimal at 24 GB", "memory-optimal at 80 GB"):
    assert caption in page
  memory = re.findall(r"<td>([\d.]+) GB</td>", page)
  assert memory and all(float(m) <= 80.001 for m in memory)  # the cap holds in every row
  assert "memory-optimal allocation needs" not in page


@pytest.mark.parametrize(
  "value, suffixes, text",
  [(3.8, True, "3.8"), (4.0, True, "4"), (999.7, True, "1k"), (1000, True, "1k"), (26_000, True, "26k"),
   (1.5e6, True, "1.5M"), (2e9, True, "2B"), (1e21, True, "1e21"), (2.5e-5, True, "2.5e-5"), (1000, False, "1000"),
   (1e11, False, "1e11")],
)  # fmt: skip
def test_numbers_are_written_plainly(value, suffixes, text):
  from mixlaws import plots

  assert plots.number(value, suffixes) == text
