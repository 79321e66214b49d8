"""`mixlaws bench select`: its pieces, and the figures recorded in docs/bench/select.json."""

import json
import pathlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mixlaws import cli
from mixlaws.bench import select

RECORD = pathlib.Path(__file__).resolve().parents[2] / "docs" / "bench" / "select.json"


def test_cost_expressions_and_r_squared():
  frame = pd.DataFrame({"N": [1.0, 2.0], "D": [10.0, 20.0], "M": [3.0, 4.0]})
  assert select.parse_cost("6*N*D+2*M")(frame) == pytest.approx([66.0, 248.0])
  with pytest.raises(ValueError, match="'Q' is neither a number nor a column"):
    select.parse_cost("6*Q")(frame)
  y = np.array([1.0, 2.0, 3.0])
  assert select.r_squared(y, y) == 1.0
  assert select.r_squared(y, y + 10) == -1.0  # clipped, as ScaleBench's metrics.r_squared
  assert select.r_squared(y, np.array([1.0, np.nan, 3.0])) == -1.0


def test_shipped_tasks_load_with_the_papers_costs():
  groups = select.load(f"{select.DATA}/parallel_scaling_law", select.TASKS["parallel"])
  assert len(groups) == 2 and all(g.space.n == 18 for g in groups)  # pile and stack, 18 pool runs each
  assert groups[0].space.cost == pytest.approx(groups[0].space.x["params"])  # ScaleBench _cost_parallel: N
  sparsity = select.load(f"{select.DATA}/sparsity_scaling_law", select.TASKS["sparsity"])
  assert sum(g.space.n for g in sparsity) == 70 and sum(len(g.y_test) for g in sparsity) == 18


def test_a_task_folder_without_the_mapped_columns_is_one_line(tmp_path):
  pd.DataFrame({"group": ["a"], "N": [1.0], "loss": [2.0]}).to_parquet(tmp_path / "train.parquet")
  pd.DataFrame({"group": ["a"], "N": [1.0], "loss": [2.0]}).to_parquet(tmp_path / "test.parquet")
  result = CliRunner().invoke(
    cli.main, ["bench", "select", "--task", str(tmp_path), "--law", "chinchilla", "--map", "N=N,D=D", "--cost", "N"]
  )
  assert result.exit_code != 0 and "--map: train.parquet lacks column(s) D" in result.output
  result = CliRunner().invoke(cli.main, ["bench", "select", "--task", str(tmp_path)])
  assert result.exit_code != 0 and "needs --law, --map and --cost" in result.output


def test_recorded_figures():
  """docs/bench/select.json, written by `mixlaws bench select` (commands in the file): ≥ 10 seeds, the
  targets of issue 25 that are met stay met, and the shortfalls are the recorded ones."""
  report = json.loads(RECORD.read_text())
  assert report["seeds"] >= 10 and report["budgets"] == [0.01, 0.05, 0.1]
  tasks = report["tasks"]
  assert set(tasks) == {"farseer", "data_con", "vocab", "parallel", "sparsity"}
  for e in tasks.values():
    for method in ("variance", "random", "cheapest"):
      assert all(-1.0 <= m <= 1.0 for m in e[method]["mean"]) and all(s >= 0 for s in e[method]["std"])
  # arXiv 2604.22753, Table 2 (data/README.md §6): MSPE at 10% of the pool's cost.
  assert tasks["vocab"]["variance"]["mean"][-1] >= 0.98
  assert tasks["parallel"]["variance"]["mean"][-1] >= 0.99
  # Met against our own all-data fit on farseer, vocab and parallel ...
  for name in ("farseer", "vocab", "parallel"):
    assert tasks[name]["variance"]["mean"][-1] >= tasks[name]["all"]["mean"] - 1e-3
  # ... and better than both baselines at 10% on farseer (paper: random 0.79, cheapest 0.68).
  farseer = tasks["farseer"]
  assert farseer["variance"]["mean"][-1] > max(farseer["random"]["mean"][-1], farseer["cheapest"]["mean"][-1])
  # Not met (recorded in select.md): farseer and data_con below the paper's 0.93 and 0.86; data_con and
  # sparsity below their all-data fits.
  assert select.targets(report)["data_con"].count("short by") == 2
  k = report["krajewski2024"]
  assert k["max_flops_share"] <= 0.25 and k["G_right_selected"] >= k["G_right_all"]
  assert k["mean_abs_ln_N_error_selected"] > k["mean_abs_ln_N_error_all"]  # the N target is not met
