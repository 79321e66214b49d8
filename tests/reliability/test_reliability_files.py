"""Corrupt files skip or repair one run, never stop the study: status.json, config.json, a metrics chunk,
the latest checkpoint."""

import json
import os

import pytest
from click.testing import CliRunner
from launch_helpers import train_losses

from mixlaws import cli, collect, rundir, sweep, train

STUDY = "rel"  # tests/reliability/conftest.py


def _invoke(*args):
  return CliRunner().invoke(cli.main, [str(a) for a in args])


@pytest.mark.parametrize("name", ["status.json", "config.json"])
def test_a_corrupt_run_file_skips_that_run_in_collect_status_worker_and_run(study, name):
  bad = study.pending.path / name
  bad.write_text('{"state": "pend')  # truncated mid-write by a full disk, say
  said = f"{bad}: not valid JSON"

  result = _invoke("collect", STUDY, "--root", study.root)
  assert result.exit_code == 0, result.output
  assert f"warning: {said}" in result.stderr and "1 unreadable runs skipped" in result.stdout
  report = collect.collect(study.root, STUDY)
  assert report.runs == 2 and report.unreadable == 1 and any(w.startswith(said) for w in report.warnings)

  result = _invoke("status", STUDY, "--root", study.root, "--format", "json")
  assert result.exit_code == 0, result.output
  shown = json.loads(result.stdout)
  states = {r["run_id"]: (r["state"], r["error"]) for r in shown["runs"]}
  assert states[study.trained.path.name] == ("done", None)
  assert states[study.pending.path.name][0] == "unreadable" and states[study.pending.path.name][1].startswith(said)

  lines = []
  report = sweep.work(study.root, STUDY, log=lines.append)
  assert report.trained == [] and any(line.startswith(f"warning: {said}") for line in lines)

  errors = []
  assert sweep.enqueue(study.specs, study.root, on_error=errors.append) == {"new": 0, "existing": 1}
  assert len(errors) == 1 and errors[0].startswith(said)
  assert bad.read_text() == '{"state": "pend'  # left as it was, for the user to look at


def _truncate_last_chunk(run):
  """Cuts the last chunk (train 3, train 4, eval 4) inside its second record, as a crash mid-write would."""
  chunk = run.metric_chunks()[-1]
  lines = chunk.read_bytes().splitlines(keepends=True)
  assert [json.loads(line)["step"] for line in lines] == [3, 4, 4]
  chunk.write_bytes(lines[0] + lines[1][:25])
  return chunk


def test_a_truncated_chunk_counts_the_lost_records_and_its_warning_outlives_the_collect(study):
  chunk = _truncate_last_chunk(study.trained)
  report = collect.collect(study.root, STUDY)
  assert report.skipped_lines == 2  # train step 4 and the final eval, not "1 corrupt line"
  assert report.warnings == [
    f"{chunk}: skipped 2 corrupt line(s) — line 2: truncated last line: about 2 record(s) of steps 4–4 lost"
  ]
  # A later collect (after one that stopped part-way, say) still shows it, and so does `status`.
  again = collect.collect(study.root, STUDY)
  assert again.warnings == [] and again.earlier_warnings == report.warnings and again.earlier_skipped == 2
  assert "(2 more in earlier collects)" in again.summary()
  result = _invoke("collect", STUDY, "--root", study.root)
  assert f"warning (earlier collect): {chunk}: skipped 2" in result.stderr
  result = _invoke("status", STUDY, "--root", study.root, "--format", "json")
  assert json.loads(result.stdout)["skipped_lines"] == report.warnings


def test_a_truncated_latest_checkpoint_is_named_and_the_run_resumes_from_the_one_before(study, capfd):
  before = train_losses(study.trained.path)
  metadata = study.trained.checkpoints_dir / "4" / "data" / "metadata"
  metadata.write_bytes(metadata.read_bytes()[:20])
  assert train.train(study.cfg, os.fspath(study.trained.path), progress=False) == "done"
  err = capfd.readouterr().err
  assert f"warning: {metadata}: JSONDecodeError" in err and "resumed from step 2 instead" in err
  assert train_losses(study.trained.path) == before  # steps 3-4 trained again, from step 2, identically
  assert {rundir.parse_chunk_name(c.name)[2] for c in study.trained.metric_chunks()} == {0, 1}
  assert [p.name.split("-")[0] for p in (study.trained.path / "corrupt_checkpoints").iterdir()] == ["4"]
  assert study.trained.read_status()["state"] == "done"
