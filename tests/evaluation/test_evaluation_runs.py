"""Results into run dirs and the results store: collect → export, an idempotent `mixlaws eval`, one-line errors."""

import json
import os

import pytest
from click.testing import CliRunner

from mixlaws import budget, cli, collect, counting, export, rundir, store
from mixlaws.evaluation import runner


def _chunks(run_dir):
  return sorted(p.name for p in (run_dir / "metrics").iterdir())


def test_results_survive_collect_and_export(trained, run_copy):
  root, study = run_copy.parent.parent, trained.study
  options = runner.Options(limit=60, samples=2, batch_size=64)
  results = runner.evaluate_run(run_copy, ["line_end", "close_brackets"], options)
  assert [(r.task, r.step, r.skipped) for r in results] == [("line_end", 300, ""), ("close_brackets", 300, "")]
  downstream = [n for n in _chunks(run_copy) if rundir.parse_chunk_name(n)[2] >= runner.ATTEMPT_BASE]
  assert downstream == ["000000300-000000300-a1000000.jsonl", "000000300-000000300-a1000001.jsonl"]
  assert not collect.collect(root, study).warnings
  with store.Store(store.default_path(root)) as st:
    at_end = st.metric_at_end(study, "line_end/acc")
    table = export.loss_table(st, study, columns=("line_end/acc", "close_brackets/pass@2", "downstream:line_end/bpb"))
    train_steps = st.curves(study, split="train")["step"].tolist()
  tokens = budget.tokens_after(trained.cfg, 300)
  flops = counting.run_counts(trained.cfg).conventions[trained.cfg.output.flops_convention].flops_per_token * tokens
  assert at_end[["step", "tokens"]].values.tolist() == [[300, tokens]]
  assert at_end["flops"][0] == pytest.approx(flops) and at_end["value"][0] == results[0].metrics["acc"]
  assert table["line_end/acc"][0] == results[0].metrics["acc"]
  assert table["close_brackets/pass@2"][0] == results[1].metrics["pass@2"]
  assert table["downstream:line_end/bpb"][0] == pytest.approx(results[0].metrics["bpb"])
  assert train_steps == list(range(1, 301))  # the training curve is untouched


def test_a_second_eval_does_nothing(trained, run_copy):
  root, study = run_copy.parent.parent, trained.study
  waiting = root / study / f"{study}-waiting"  # queued, no checkpoint yet
  record = json.loads((run_copy / "config.json").read_text())
  rundir.RunDir(waiting).write_config({**record, "run_id": waiting.name})
  args = ["eval", study, "--root", str(root), "--tasks", "line_end", "--limit", "40", "--batch-size", "64"]
  first = CliRunner().invoke(cli.main, args)
  assert first.exit_code == 0, first.output
  assert f"{run_copy.name} step 300 line_end: acc " in first.stdout
  assert "note: 1 run(s) have no checkpoint yet" in first.stderr
  marker = runner.marker_path(rundir.RunDir(run_copy), "line_end", 300)
  before = (_chunks(run_copy), os.stat(marker).st_mtime_ns)

  again = CliRunner().invoke(cli.main, args)
  assert again.exit_code == 0 and "(already done)" in again.stdout, again.output
  assert (_chunks(run_copy), os.stat(marker).st_mtime_ns) == before

  older = CliRunner().invoke(cli.main, [*args, "--step", "150"])  # another checkpoint is another result
  assert older.exit_code == 0 and "step 150 line_end" in older.stdout, older.output
  changed = CliRunner().invoke(cli.main, [*args[:-4], "--limit", "30", "--batch-size", "64"])  # another identity
  assert changed.exit_code == 0 and "(already done)" not in changed.stdout, changed.output
  assert set(_chunks(run_copy)) - set(before[0]) == {
    "000000150-000000150-a1000000.jsonl",
    "000000300-000000300-a1000001.jsonl",  # a higher attempt: the collector keeps the newest value
  }


def test_errors_are_one_line(run_copy, tmp_path):
  result = CliRunner().invoke(cli.main, ["eval", str(run_copy), "--tasks", "line_end,nope"])
  assert result.exit_code == 2 and result.stderr.startswith("error: --tasks: unknown task 'nope'; expected one of")
  result = CliRunner().invoke(cli.main, ["eval", str(run_copy), "--step", "7"])
  assert (
    result.exit_code == 2 and result.stderr == f"error: --step: 7 is not a checkpoint of {run_copy} (it has 150, 300)\n"
  )
  result = CliRunner().invoke(cli.main, ["eval", "absent", "--root", str(tmp_path)])
  assert (
    result.exit_code == 2
    and result.stderr == f"error: {tmp_path / 'absent'}: no such study directory under the run root\n"
  )
