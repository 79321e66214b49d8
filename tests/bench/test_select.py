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
