"""The run-dir contract: config written once, status records, immutable metric chunks."""

import json

import pytest

from mixlaws import rundir


def test_config_written_once(tmp_path):
  run = rundir.RunDir(tmp_path / "study" / "run")
  record = {"study": "s", "run_id": "r", "config": {"model": {"d_model": 8}}, "counts": {}}
  assert run.write_config(record) is True
  assert run.write_config(record) is False  # identical: nothing to do
  with pytest.raises(ValueError, match="exists with a different config"):
    run.write_config({**record, "run_id": "other"})
  assert run.read_config() == record


def test_missing_and_corrupt_config(tmp_path):
  run = rundir.RunDir(tmp_path)
  with pytest.raises(ValueError, match="run dir has no config.json"):
    run.read_config()
  run.config_path.write_text("{")
  with pytest.raises(ValueError, match="config.json: not valid JSON"):
    run.read_config()


def test_status_records(tmp_path):
  run = rundir.RunDir(tmp_path)
  assert run.read_status() is None
  run.write_status("running", step=3, attempt=1)
  status = run.read_status()
  assert status["state"] == "running" and status["step"] == 3 and status["attempt"] == 1
  assert set(status) == {"state", "step", "attempt", "updated_at", "host", "error"}
  with pytest.raises(ValueError, match="status.state: unknown 'exploded'"):
    run.write_status("exploded")
  assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_metric_chunks_are_named_by_steps_and_attempt(tmp_path):
  run = rundir.RunDir(tmp_path)
  assert run.write_metrics([], attempt=0) is None
  first = run.write_metrics([{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}], attempt=0)
  later = run.write_metrics([{"step": 2, "loss": 2.4}], attempt=1)
  (run.metrics_dir / "notes.txt").write_text("ignored")
  assert first.name == "000000001-000000002-a0.jsonl" and later.name == "000000002-000000002-a1.jsonl"
  assert [p.name for p in run.metric_chunks()] == [first.name, later.name]
  assert [json.loads(line)["loss"] for line in first.read_text().splitlines()] == [3.0, 2.5]
  assert rundir.parse_chunk_name("000000010-000000020-a3.jsonl") == (10, 20, 3)
  assert rundir.parse_chunk_name("000000010-000000020.jsonl") is None
