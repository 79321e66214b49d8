"""`mixlaws bench train` end to end on a tiny model: loop vs bare step, and start-up from a warm cache."""

from click.testing import CliRunner

from mixlaws import cli
from mixlaws.bench import suite
from mixlaws.bench import train as bench_train

TINY = ("model.d_model=16", "model.n_layers=1", "model.n_heads=1", "model.seq_len=16", "data.max_documents=40")


def test_bench_train_reports_overhead_and_a_warm_start_faster_than_a_cold_one(data_dir, tmp_path):
  overrides = (*TINY, f"data.data_dir={data_dir}")  # the data the other training tests prepare
  report = bench_train.run(overrides, steps=12, rounds=1, work_dir=str(tmp_path), log=lambda line: None)
  overhead, startup = report["host_overhead"], report["startup"]
  assert overhead["loop_ms_per_step"] > 0 and overhead["bare_ms_per_step"] > 0
  assert 0 <= overhead["host_overhead"] < 1 and overhead["meets_target"] == (overhead["host_overhead"] < 0.05)
  assert startup["cold_startup_s"] > 0 and startup["warm_startup_s"] > 0
  # the second process loads its programs from the run root's cache instead of compiling them
  assert 0 < startup["warm_first_step_s"] < startup["cold_first_step_s"]
  rows = suite.headline("train", report)
  assert [row["benchmark"] for row in rows] == ["train", "train"]
  assert rows[0]["ratio"] == overhead["host_overhead"] and rows[1]["met"] == startup["meets_target"]
  assert "| train | training loop step time" in suite.to_markdown({"machine": report["machine"], "figures": rows,
                                                                    "seconds": {}})  # fmt: skip
  assert list(tmp_path.iterdir()) == []  # its runs are removed afterwards


def test_bench_all_names_an_unknown_benchmark(tmp_path):
  result = CliRunner().invoke(cli.main, ["bench", "all", "--only", "data,nope", "--out", str(tmp_path)])
  assert result.exit_code == 2 and "nope" in result.output and "model, data, train, collect, fit" in result.output
  assert list(tmp_path.iterdir()) == []
