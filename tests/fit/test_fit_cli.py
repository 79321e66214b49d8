"""Store rows → fitting points, and `mixlaws fit / optimal / plot` end to end on a tiny collected study."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mixlaws import cli, collect, config, counting, rundir
from mixlaws.fit import laws, points, study

DATA = pathlib.Path(__file__).parent / "data"
TRUTH = {"A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28, "E": 1.69}


def test_points_from_runs_per_convention():
  runs = pd.DataFrame(
    {
      "run_id": ["a", "b", "c"],
      "tokens": [1e9, 2e9, 4e9],
      "loss": [3.0, 2.9, np.nan],
      "expansion_rate": [1, 8, 64],
      "granularity": [1, 2, 8],
      "n_experts": [1, 16, 512],
      "router": ["dense", "token_choice", "expert_choice"],
      **{f"params_{c}": [1e8 * (i + 1), 2e8 * (i + 1), 3e8 * (i + 1)] for i, c in enumerate(counting.CONVENTIONS)},
      **{
        f"active_params_{c}": [1e7 * (i + 1), 2e7 * (i + 1), 3e7 * (i + 1)] for i, c in enumerate(counting.CONVENTIONS)
      },
      **{f"flops_{c}": [1e18 * (i + 1), 2e18 * (i + 1), 3e18 * (i + 1)] for i, c in enumerate(counting.CONVENTIONS)},
    }
  )
  for i, convention in enumerate(counting.CONVENTIONS):
    out = points.from_runs(runs, convention)
    assert list(out["label"]) == ["a", "b"]  # the run without a loss is dropped
    assert list(out["params"]) == [1e8 * (i + 1), 2e8 * (i + 1)]
    assert list(out["active_params"]) == [1e7 * (i + 1), 2e7 * (i + 1)]
    assert list(out["flops"]) == [1e18 * (i + 1), 2e18 * (i + 1)]
    assert list(out["experts"]) == [1.0, 8.0]  # E is the expansion rate, not E·G
    assert list(out["granularity"]) == [1.0, 2.0]
    assert list(out["tokens"]) == [1e9, 2e9] and list(out["loss"]) == [3.0, 2.9]
  with pytest.raises(ValueError, match="convention"):
    points.from_runs(runs, "gpt3")
  with pytest.raises(ValueError, match="flops_kaplan"):
    points.from_runs(runs.drop(columns=["flops_kaplan"]), "kaplan")


def test_command_line_helpers():
  assert study.parse_map("N=n, D=t,loss=val") == {"params": "n", "tokens": "t", "loss": "val"}
  assert (
    study.parse_bytes("80GB") == 80e9 and study.parse_bytes("24GiB") == 24 * 2**30 and study.parse_bytes("1e9") == 1e9
  )
  frame = pd.DataFrame({"params": [1, 2, 3, 4], "loss": [4.0, 3.0, 2.0, 1.0]})
  assert list(study.holdout_mask(frame, "lowest:1")) == [False, False, False, True]
  assert list(study.holdout_mask(frame, "params > 2")) == [False, False, True, True]
  for bad, message in (("N", "NAME=COLUMN"),):
    with pytest.raises(ValueError, match=message):
      study.parse_map(bad)
  with pytest.raises(ValueError, match="--memory"):
    study.parse_bytes("lots")
  with pytest.raises(ValueError, match="--holdout"):
    study.holdout_mask(frame, "params +")


def make_study(root, name="tiny"):
  """Runs at three compute budgets and three sizes, losses from Hoffmann et al.'s law (0.3% noise), collected."""
  base = ["model.vocab_size=259", "model.seq_len=64", "train.batch_size=16", "train.tokens=0"]
  rng = np.random.default_rng(0)
  for budget in (2e12, 8e12, 3.2e13):
    for d_model, n_layers in ((32, 1), (64, 2), (128, 2)):
      overrides = [*base, f"model.d_model={d_model}", f"model.n_layers={n_layers}", "train.steps=1"]
      per_step = counting.run_counts(config.resolve(config.apply_overrides(config.base_config(), overrides))).flops(
        "chinchilla"
      )
      steps = max(2, round(budget / per_step))
      cfg = config.resolve(config.apply_overrides(config.base_config(), [*overrides[:-1], f"train.steps={steps}"]))
      counts = counting.run_counts(cfg)
      run_id = f"{name}-d{d_model}-c{budget:.0e}"
      run = rundir.RunDir(root / name / run_id)
      run.write_config({"study": name, "run_id": run_id, "config": cfg.to_dict(), "counts": counts.to_dict()})
      n = counts.conventions["chinchilla"].params
      final = float(laws.evaluate(laws.CHINCHILLA, TRUTH, {"params": [n], "tokens": [counts.tokens]})[0])
      final *= float(np.exp(rng.normal(0.0, 0.003)))
      per = counts.tokens / steps
      records = [
        {"step": s, "tokens": int(s * per), "flops": s * per_step, "split": "train", "loss": final * (1 + 1 / s)}
        for s in range(1, steps + 1, max(1, steps // 5))
      ]
      records.append(
        {"step": steps, "tokens": counts.tokens, "flops": steps * per_step, "split": "train", "loss": final}
      )
      records.append(
        {"step": steps, "tokens": counts.tokens, "flops": steps * per_step, "split": "eval", "loss": final}
      )
      run.write_metrics(records, attempt=0)
      run.write_status("done", step=steps)
  collect.collect(root, name)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp("runs")
  make_study(root)
  return root


def invoke(*args):
  return CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)


def test_fit_from_a_csv_with_a_holdout(tmp_path):
  pairs = pd.read_csv(DATA / "porian" / "optimal_pairs.csv").dropna()
  csv = tmp_path / "pairs.csv"
  pairs[pairs.config == "rw|tuned|short|const|standard|val"].to_csv(csv, index=False)
  out = tmp_path / "fit.json"
  result = invoke(
    "fit", "--csv", csv, "--map", "C=flops,loss=loss_star", "--law", "compute", "--holdout", "lowest:2", "--out", out
  )
  assert result.exit_code == 0, result.output
  report = json.loads(out.read_text())
  assert (
    report["holdout"]["n_test"] == 2
    and report["fit"]["n_points"] == len(pairs[pairs.config == "rw|tuned|short|const|standard|val"]) - 2
  )
  assert report["holdout"]["max_error"] >= report["holdout"]["rmse"] > 0
  assert "held out 2 point(s)" in result.output and "alpha" in result.output


def test_optimal_with_published_coefficients_and_memory():
  result = invoke(
    "optimal",
    "--law",
    "ludziejewski2025",
    "--published",
    "--budget",
    "1e22",
    "--memory",
    "80GB",
    "--kv-tokens",
    "16384",
  )
  assert result.exit_code == 0, result.output
  best_row = next(
    line for line in result.output.splitlines() if line.rstrip().endswith("* │") or "*" in line.split("│")[-2:][0]
  )
  assert best_row.split("│")[1].strip() == "16"  # Ludziejewski et al. 2025, Table 2: E = 16 at 1e22 and 80 GB
  cells = [cell.strip() for cell in best_row.split("│")]
  assert cells[3] != cells[4] and cells[7].endswith(" GB")  # N_total beside N_act; weights + KV in GB
  assert float(cells[7].split()[0]) == pytest.approx(80, abs=0.01)  # the cap binds at E = 16
  result = invoke("optimal", "--law", "krajewski2024", "--published", "--budget", "1.93e20")
  assert result.exit_code == 0 and "2.47" in result.output  # Table 2 row: G = 16, loss 2.472


@pytest.mark.parametrize(
  "args, message",
  [
    (("optimal", "--law", "chinchilla", "--budget", "1e21"), "exactly one of --fit"),
    (("optimal", "--law", "compute", "--published", "--budget", "1e21"), "no published coefficients"),
    (("optimal", "--law", "nope", "--published", "--budget", "1e21"), "unknown 'nope'"),
    (("fit", "--law", "chinchilla"), "STUDY or --csv"),
    (("fit", "--law", "chinchilla", "--csv", "missing.csv", "--map", "N=a"), "cannot read"),
  ],
)
def test_errors_are_one_line(args, message):
  result = invoke(*args)
  assert result.exit_code == 2
  assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_fit(tiny):
  out = tiny / "fit.json"
  result = invoke("fit", "tiny", "--law", "chinchilla", "--root", tiny, "--starts", 500, "--out", out)
  assert result.exit_code == 0, result.output
  return out


def test_fit_a_study_from_the_store_then_allocate(tiny_fit):
  report = json.loads(tiny_fit.read_text())
  assert report["fit"]["n_points"] == 9 and report["source"] == "study tiny" and report["fit"]["n_starts"] == 500
  assert report["fit"]["params"]["E"] == pytest.approx(TRUTH["E"], rel=0.2)  # 0.3% noise on the law's losses
  result = invoke("optimal", "--law", "chinchilla", "--fit", tiny_fit, "--budget", "1e21")
  assert result.exit_code == 0, result.output
  best = study.allocation(laws.CHINCHILLA, report["fit"]["params"], 1e21)[0]
  assert f"{best.loss:.4f}" in result.output


@pytest.mark.parametrize("kind", ["curves", "isoflop", "fit", "residuals", "optimal"])
def test_plot_kinds_write_png_and_svg(tiny, tiny_fit, tmp_path, kind):
  result = invoke("plot", "tiny", "--kind", kind, "--root", tiny, "--fit", tiny_fit, "--out", tmp_path)
  assert result.exit_code == 0, result.output
  for ext in ("png", "svg"):
    path = tmp_path / f"{kind}.{ext}"
    assert path.exists() and path.stat().st_size > 1000
  svg = (tmp_path / f"{kind}.svg").read_text()
  assert "loss" in svg or "parameters" in svg  # labelled axes
