"""Store queries (final losses, loss at tokens, curves, metric at end) and the schema's versions."""

import sqlite3
import time

import numpy as np
import pytest

from mixlaws import collect, store


def test_runs_have_every_config_and_counting_column(toy, runs):
  root, written, _ = toy
  with store.open(root) as st:
    frame = st.runs(runs.STUDY)
    assert st.studies() == [runs.STUDY]
  assert list(frame.columns) == list(store.RUN_COLUMNS)
  assert len(frame) == len(written)
  for column in ("flops_krajewski2024", "active_params_ludziejewski2025", "params_chinchilla", "params_active"):
    assert frame[column].notna().all(), column
  row = frame.set_index("run_id").loc["toy-e8g2"]
  assert (row.n_experts, row.expansion_rate, row.granularity, row.router, row.d_model) == (16, 8, 2, "token_choice", 64)


def test_final_losses(toy, runs):
  root, written, _ = toy
  with store.open(root) as st:
    final_eval = st.final_losses(runs.STUDY)
    by_count = st.final_losses(runs.STUDY, loss="smoothed_train", window=4)
    by_fraction = st.final_losses(runs.STUDY, loss="smoothed_train", window=0.25)
  done = sorted(r for r, w in written.items() if w["state"] == "done")
  assert sorted(final_eval.run_id) == done
  assert final_eval.attrs["left_out"] == {"toy-e32-running": "state is running"}
  for run_id in done:
    train = written[run_id]["train"]
    assert final_eval.set_index("run_id").loss[run_id] == written[run_id]["eval"][runs.STEPS]
    # Hoffmann et al.-style smoothing: the mean of the final logged train losses.
    assert by_count.set_index("run_id").loss[run_id] == pytest.approx(np.mean([train[s] for s in (9, 10, 11, 12)]))
    # A quarter of the 12 steps' tokens: records after 0.75 x final tokens, steps 10, 11, 12.
    assert by_fraction.set_index("run_id").loss[run_id] == pytest.approx(np.mean([train[s] for s in (10, 11, 12)]))
  assert "params_active" in final_eval.columns and final_eval.loss.dtype == float


def test_final_eval_needs_an_eval_after_the_last_train_step(tmp_path, runs):
  run, _ = runs.make_run(tmp_path, "s", "late")
  run.write_metrics([runs.train_record(s, 3.0) for s in (1, 2, 3)] + [runs.eval_record(2, 3.5)], attempt=0)
  run, _ = runs.make_run(tmp_path, "s", "noeval")
  run.write_metrics([runs.train_record(1, 3.0)], attempt=0)
  run, _ = runs.make_run(tmp_path, "s", "failed", state="failed")
  run.write_status("failed", step=1, error="step 1: loss is nan")
  collect.collect(tmp_path, "s")
  with store.open(tmp_path) as st:
    frame = st.final_losses("s")
  assert frame.empty
  assert frame.attrs["left_out"] == {
    "s-failed": "state is failed (step 1: loss is nan)",
    "s-late": "last eval at step 2 precedes the last train step 3",
    "s-noeval": "no eval loss logged",
  }


def test_loss_at_tokens_curves_and_metric_at_end(toy, runs):
  root, written, _ = toy
  tokens_per_step = 1024
  with store.open(root) as st:
    at = st.loss_at_tokens(runs.STUDY, [3 * tokens_per_step, 7.5 * tokens_per_step, 12 * tokens_per_step], window=2)
    at_eval = st.loss_at_tokens(runs.STUDY, [6 * tokens_per_step], split="eval", window=1)
    curves = st.curves(runs.STUDY, split="train", names=("loss", "grad_norm"))
    acc = st.metric_at_end(runs.STUDY, "next_line/acc")
  train = written["toy-dense"]["train"]
  dense = at[at.run_id == "toy-dense"].set_index("tokens")
  assert dense.loss[3 * tokens_per_step] == pytest.approx((train[2] + train[3]) / 2)
  assert dense.loss[7.5 * tokens_per_step] == pytest.approx((train[6] + train[7]) / 2) and dense.step[7.5 * 1024] == 7
  # The running run stopped at step 6: it has not reached 7.5 or 12 steps' tokens.
  assert sorted(at[at.run_id == "toy-e32-running"].tokens) == [3 * tokens_per_step]
  assert at.attrs["left_out"][("toy-e32-running", 12 * tokens_per_step)] == "reached only 6144 tokens"
  assert at_eval.set_index("run_id").loss["toy-e8g2"] == written["toy-e8g2"]["eval"][6]
  assert list(curves.columns) == ["run_id", "split", "step", "tokens", "flops", "name", "value"]
  assert set(curves.name) == {"loss", "grad_norm"} and len(curves) == 2 * sum(len(w["train"]) for w in written.values())
  assert dict(zip(acc.run_id, acc.value)) == {r: w["acc"] for r, w in written.items()}


def test_window_validation():
  for bad, reason in ((0, "at least 1"), (1.5, r"in \(0, 1\]"), (True, "expected a record count")):
    with pytest.raises(ValueError, match=f"^window: .*{reason}"):
      store.check_window(bad)
  assert store.parse_window("20") == 20 and store.parse_window("0.05") == 0.05
  with pytest.raises(ValueError, match="^window: expected a record count or a fraction, got 'x'$"):
    store.parse_window("x")
  tokens, values = np.array([1.0, 2.0, 3.0, 4.0]), np.array([4.0, 3.0, 2.0, 1.0])
  assert store.window_mean(tokens, values, 3, 2) == 1.5
  assert store.window_mean(tokens, values, 3, 0.01) == 1.0  # the window always holds its last record
  assert store.window_mean(tokens, values, 2, 1.0) == 3.0


def test_schema_is_versioned_and_migrates(tmp_path):
  path = tmp_path / "old.sqlite"
  sqlite3.connect(path).close()  # an empty file at schema version 0
  with store.Store(path) as st:
    assert st.version == store.SCHEMA_VERSION
  db = sqlite3.connect(path)
  db.execute("ALTER TABLE runs DROP COLUMN flops_kaplan")  # as if written before that convention existed
  db.commit()
  db.close()
  with store.Store(path) as st:
    assert "flops_kaplan" in st.runs().columns
  db = sqlite3.connect(path)
  db.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
  db.commit()
  db.close()
  with pytest.raises(ValueError, match=rf"^{path}: results store has schema version 2, newer than this mixlaws reads"):
    store.Store(path)


def test_store_errors_are_one_line(tmp_path):
  with pytest.raises(
    ValueError, match=f"^{tmp_path / 'none.sqlite'}: no results store; run `mixlaws collect STUDY` first$"
  ):
    store.Store(tmp_path / "none.sqlite", create=False)
  (tmp_path / "junk.sqlite").write_text("not a database, just text " * 100)
  with pytest.raises(ValueError, match=r"junk.sqlite: not a usable results store \(file is not a database\)$"):
    store.Store(tmp_path / "junk.sqlite")
  with store.Store(tmp_path / "s.sqlite") as st:
    with pytest.raises(ValueError, match="^loss: unknown 'best'; expected one of final_eval, smoothed_train$"):
      st.final_losses(loss="best")
  with pytest.raises(ValueError, match="^config.json: the config lacks model.n_layers$"):
    store.run_row({"study": "s", "run_id": "r", "config": {"model": {}}, "counts": {}}, None)
  with pytest.raises(ValueError, match="^config.json: lacks the field 'counts'$"):
    store.run_row({"study": "s", "run_id": "r", "config": {}}, None)


def test_a_store_opens_while_another_process_briefly_holds_the_new_file(tmp_path, monkeypatch):
  # Switching a new file to WAL needs it to itself; SQLite then reports "database is locked" instead of
  # waiting, so the store retries until its timeout (three collectors starting together hit this).
  path = tmp_path / "results.sqlite"
  other = sqlite3.connect(path, isolation_level=None)
  other.execute("CREATE TABLE held (x)")
  other.execute("BEGIN IMMEDIATE")
  other.execute("INSERT INTO held VALUES (1)")  # a write under way: the switch to WAL fails at once
  released = []
  monkeypatch.setattr(time, "sleep", lambda seconds: released.append(other.execute("COMMIT")))
  with store.Store(path, timeout=5) as st:
    assert st.version == store.SCHEMA_VERSION
  assert len(released) == 1
  other.close()
