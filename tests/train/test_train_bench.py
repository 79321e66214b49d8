"""`mixlaws bench train` end to end on a tiny model: loop vs bare step, and start-up from a warm cache."""

import json

from click.testing import CliRunner

from mixlaws import cli
from mixlaws.bench import suite

TINY = ("model.d_model=16", "model.n_layers=1", "model.n_heads=1", "model.seq_len=16", "data.max_documents=40")


def test_bench_train_reports_overhead_and_a_warm_start_faster_than_a_cold_one(data_dir, tmp_path):
  overrides = [arg for o in (*TINY, f"data.data_dir={data_dir}") for arg in ("-o", o)]  # the tests' prepared data
  work, out = tmp_path / "work", tmp_path / "out"
  work.mkdir()
  args = ["bench", "train", *overrides, "--steps", "12", "--rounds", "1", "--work-dir", str(work), "--out", str(out)]
  result = CliRunner().invoke(cli.main, args)
  assert result.exit_code == 0, result.output
  report = json.loads((out / "train.json").read_text())
  assert "## host_overhead" in (out / "train.md").read_text() and f"wrote {out / 'train.json'}" in result.output
  overhead, startup = report["host_overhead"], report["startup"]
  assert overhead["loop_ms_per_step"] > 0 and overhead["bare_ms_per_step"] > 0
  assert 0 <= overhead["host_overhead"] < 1 and overhead["meets_target"] == (overhead["host_overhead"] < 0.05)
  assert startup["cold_startup_s"] > 0 and startup["warm_startup_s"] > 0
  # the second process loads its programs from the run root's cache instead of compiling them
  assert 0 < startup["warm_first_step_s"] < startup["cold_first_step_s"]
  rows = suite.headline("train", report)
  assert [row["benchmark"] for row in rows] == ["train", "train"]
  assert rows[0]["ratio"] == overhead["host_overhead"] and rows[1]["met"] == startup["meets_target"]
  assert "| train | training loop: host time per step" in suite.to_markdown({"machine": report["machine"], "figures": rows,
                                                                    "seconds": {}})  # fmt: skip
  assert list(work.iterdir()) == []  # its runs are removed afterwards


def test_bench_all_names_an_unknown_benchmark(tmp_path):
  result = CliRunner().invoke(cli.main, ["bench", "all", "--only", "data,nope", "--out", str(tmp_path)])
  assert result.exit_code == 2 and "nope" in result.output and "model, data, train, collect, fit" in result.output
  assert list(tmp_path.iterdir()) == []
