"""Collect: round trip, idempotence, resume dedup, corrupt lines, concurrent collectors, watch, bad input."""

import io
import sqlite3
import subprocess
import sys

import pandas as pd
import pytest

from mixlaws import collect, export, rundir, store


def _dump(path):
  """Every row of every table, for comparing whole stores."""
  db = sqlite3.connect(path)
  tables = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in ("runs", "metrics", "chunks")}
  db.close()
  return tables


def test_round_trip_values_equal_what_was_written(toy, runs):
  root, written, report = toy
  assert report.runs == len(runs.RUNS) and report.warnings == [] and report.skipped_lines == 0
  with store.open(root, create=False) as st:
    table = export.loss_table(st, runs.STUDY, convention="krajewski2024", columns=("next_line/acc", "lr"))
    text = export.write(table, "csv")
    curves = pd.read_csv(io.StringIO(export.write(st.curves(runs.STUDY, names=None), "csv")))
  back = pd.read_csv(io.StringIO(text)).set_index("run_id")
  assert sorted(back.index) == sorted(written)
  for run_id, values in written.items():
    counts = rundir.RunDir(root / runs.STUDY / run_id).read_config()["counts"]
    row = back.loc[run_id]
    for column in ("params_total", "params_active", "params_non_embedding", "tokens", "flops_krajewski2024"):
      assert row[column] == counts[column], (run_id, column)
    assert row["state"] == values["state"]
    assert row["next_line/acc"] == values["acc"]
    if values["state"] == "done":
      assert row["loss"] == values["eval"][runs.STEPS]
    else:
      assert pd.isna(row["loss"])
    logged = curves[(curves.run_id == run_id) & (curves.name == "loss")]
    for split in ("train", "eval"):
      got = dict(zip(logged[logged.split == split].step, logged[logged.split == split].value))
      assert got == values[split], (run_id, split)
    lrs = curves[(curves.run_id == run_id) & (curves.name == "lr")]
    assert dict(zip(lrs.step, lrs.value)) == {s: 1e-3 / s for s in values["train"]}
  assert back.loc["toy-dense", "router"] == "dense" and back.loc["toy-e8g2", "router"] == "token_choice"
  assert (back.loc["toy-e8g2", ["expansion_rate", "granularity", "top_k"]] == [8, 2, 2]).all()


def test_collect_twice_gives_the_same_rows_and_rebuilds_from_run_dirs(tmp_path, runs):
  runs.write_toy_study(tmp_path)
  first = collect.collect(tmp_path, runs.STUDY)
  before = _dump(store.default_path(tmp_path))
  again = collect.collect(tmp_path, runs.STUDY)
  assert _dump(store.default_path(tmp_path)) == before
  assert (again.runs_written, again.chunks, again.values) == (0, 0, 0)
  assert first.values == len(before["metrics"]) and first.chunks == len(before["chunks"])
  # The run dirs are the source of truth: a store built elsewhere from them holds the same rows.
  collect.collect(tmp_path, runs.STUDY, tmp_path / "rebuilt.sqlite")
  assert _dump(tmp_path / "rebuilt.sqlite") == before
  # A status change alone is picked up.
  run = rundir.RunDir(tmp_path / runs.STUDY / "toy-e32-running")
  run.write_status("failed", step=7, attempt=0, error="NaN loss")
  assert collect.collect(tmp_path, runs.STUDY).runs_written == 1
  with store.open(tmp_path) as st:
    assert st.runs(runs.STUDY).set_index("run_id").loc["toy-e32-running", ["state", "step"]].tolist() == ["failed", 7]


def _losses(root, study, run_id):
  with store.open(root) as st:
    c = st.curves(study, split="train")
  c = c[c.run_id == run_id]
  return dict(zip(c.step, c.value))


@pytest.mark.parametrize("together", [True, False], ids=["one-collect", "collect-between-attempts"])
def test_resume_keeps_the_newest_attempt_for_each_step(tmp_path, runs, together):
  run, run_id = runs.make_run(tmp_path, "resume", "r")
  run.write_metrics([runs.train_record(s, 10.0 + s) for s in range(1, 7)], attempt=0)
  if not together:
    collect.collect(tmp_path, "resume")
  # Attempt 1 resumed from the checkpoint at step 3 and re-logged steps 4..6 with other values.
  run.write_metrics([runs.train_record(s, 20.0 + s) for s in range(4, 9)], attempt=1)
  collect.collect(tmp_path, "resume")
  expected = {1: 11.0, 2: 12.0, 3: 13.0, 4: 24.0, 5: 25.0, 6: 26.0, 7: 27.0, 8: 28.0}
  assert _losses(tmp_path, "resume", run_id) == expected
  # An older attempt's chunk seen late (say, a slow listing) does not override the newer one.
  run.write_metrics([runs.train_record(5, 99.0)], attempt=0)
  collect.collect(tmp_path, "resume")
  assert _losses(tmp_path, "resume", run_id) == expected


def test_corrupt_lines_are_skipped_with_file_and_line(tmp_path, runs):
  run, run_id = runs.make_run(tmp_path, "corrupt", "r")
  good = run.write_metrics([runs.train_record(s, 5.0 - 0.1 * s) for s in range(1, 4)], attempt=0)
  bad_chunk = run.metrics_dir / rundir.chunk_name(4, 8, 0)
  lines = [
    '{"step": 4, "tokens": 4096, "flops": 1.0, "split": "train", "loss": 4.6}',
    "{not json",
    '{"step": 6, "split": "train", "loss": "high"}',
    '{"step": 7, "tokens": 7168, "flops": 1.0, "split": "train", "loss": 4.3}',
    '{"step": 8, "tokens": 8192, "flo',  # truncated: the writer died mid-line
  ]
  bad_chunk.write_text("\n".join(lines))
  (run.metrics_dir / rundir.chunk_name(9, 9, 0)).write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")  # 3 "lines"
  report = collect.collect(tmp_path, "corrupt")
  assert report.skipped_lines == 6
  assert len(report.warnings) == 2
  text = "\n".join(report.warnings)
  assert f"{bad_chunk}: skipped 3 corrupt line(s)" in text
  assert "line 2: not valid JSON" in text and "line 3: loss is str" in text and "line 5: truncated last line" in text
  assert f"{rundir.chunk_name(9, 9, 0)}: skipped 3 corrupt line(s) — line 1: not valid JSON" in text
  assert _losses(tmp_path, "corrupt", run_id) == {1: 4.9, 2: 4.8, 3: 4.7, 4: 4.6, 7: 4.3}
  assert good.exists()
  # Remembered as ingested: no warning again until the file changes.
  assert collect.collect(tmp_path, "corrupt").warnings == []


# A collector process that waits on stdin after its imports, so that all of them start together.
_COLLECTOR = """
import sys
from mixlaws import collect
print("ready", flush=True)
sys.stdin.readline()
print(collect.collect(sys.argv[1], sys.argv[2]).runs_written, flush=True)
"""


def test_concurrent_collectors_neither_corrupt_nor_duplicate(tmp_path, runs):
  written = runs.write_toy_study(tmp_path)
  for i in range(12):  # more runs, so that the collectors' writes overlap
    run, _ = runs.make_run(tmp_path, runs.STUDY, f"extra{i}")
    for first in range(1, 400, 100):
      run.write_metrics([runs.train_record(s, 3.0 + i, lr=0.1) for s in range(first, first + 100)], attempt=0)
  args = [sys.executable, "-c", _COLLECTOR, str(tmp_path), runs.STUDY]
  procs = [subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(3)]
  assert [p.stdout.readline() for p in procs] == ["ready\n"] * 3
  for p in procs:
    p.stdin.write("go\n")
    p.stdin.flush()
  written_by = [int(p.communicate(timeout=120)[0]) for p in procs]
  assert [p.returncode for p in procs] == [0, 0, 0]
  assert max(written_by) == len(written) + 12
  path = store.default_path(tmp_path)
  db = sqlite3.connect(path)
  assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
  assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
  db.close()
  together = _dump(path)
  collect.collect(tmp_path, runs.STUDY, tmp_path / "alone.sqlite")
  assert together == _dump(tmp_path / "alone.sqlite")
  expected_values = sum(len(w["train"]) * 3 + len(w["eval"]) + 1 for w in written.values()) + 12 * 400 * 2
  assert len(together["metrics"]) == expected_values and len(together["runs"]) == len(written) + 12


def test_watch_keeps_collecting_new_chunks(tmp_path, runs):
  run, run_id = runs.make_run(tmp_path, "live", "r", state="running")
  run.write_metrics([runs.train_record(1, 5.0)], attempt=0)
  reports = []

  def sleep(seconds):
    assert seconds == 30
    run.write_metrics([runs.train_record(len(reports) + 1, 5.0 - len(reports))], attempt=0)

  collect.watch(tmp_path, "live", 30, polls=3, on_report=reports.append, sleep=sleep)
  assert [r.chunks for r in reports] == [1, 1, 1]
  assert _losses(tmp_path, "live", run_id) == {1: 5.0, 2: 4.0, 3: 3.0}
  with pytest.raises(ValueError, match="^watch: the polling interval must be a positive number of seconds, got 0$"):
    collect.watch(tmp_path, "live", 0)


def test_bad_input_is_one_line(tmp_path, runs):
  with pytest.raises(ValueError, match=f"^{tmp_path / 'nowhere'}: run root does not exist$"):
    collect.collect(tmp_path / "nowhere", "s")
  with pytest.raises(ValueError, match="no such study directory under the run root$"):
    collect.collect(tmp_path, "nostudy")
  runs.make_run(tmp_path, "s", "ok")
  (tmp_path / "s" / "s-empty").mkdir()
  report = collect.collect(tmp_path, "s")  # one run dir without config.json is skipped, not the whole study
  assert report.warnings == [f"{tmp_path / 's' / 's-empty'}: run dir has no config.json; run skipped"]
  assert (report.unreadable, report.runs_written) == (1, 1)
  with pytest.raises(ValueError, match="a remote run root needs a local results-store path"):
    collect.collect("gs://bucket/runs", "s")
  # A run dir whose config names another run (copied by hand, say).
  (tmp_path / "s" / "s-empty").rmdir()
  run, _ = runs.make_run(tmp_path, "t", "a")
  (tmp_path / "t" / "t-b").mkdir()
  (tmp_path / "t" / "t-b" / "config.json").write_text(run.config_path.read_text())
  with pytest.raises(ValueError, match=r"config.json: names study 't', run 't-a' but lies in t/t-b$"):
    collect.collect(tmp_path, "t")
