"""`mixlaws fit STUDY --metric TASK/acc --law downstream_power`: accuracy laws from `mixlaws eval` results."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from mixlaws import cli, collect, config, counting, rundir

ALPHA, LOG_A, CHANCE = 0.12, 4.0, 0.25  # −ln Acc' = A·C^−α (arXiv 2512.08894, Eq. 2), Acc' chance-corrected


def _runs(root, widths=(32, 48, 64, 96, 128, 192)):
  """Finished runs whose downstream accuracy follows the law exactly in their chinchilla FLOPs."""
  for width in widths:
    cfg = config.resolve(config.apply_overrides(config.base_config(), [
      f"model.d_model={width}", "model.n_heads=2", "model.n_layers=2", "model.vocab_size=259",
      "model.seq_len=64", "train.batch_size=8", "train.tokens=0", "train.steps=40"]))  # fmt: skip
    counts = counting.run_counts(cfg).to_dict()
    flops = counts["flops_chinchilla"]
    corrected = np.exp(-np.exp(LOG_A - ALPHA * np.log(flops)))
    acc = CHANCE + (1 - CHANCE) * corrected
    run = rundir.RunDir(root / "acc" / f"acc-{width}")
    run.write_config({"study": "acc", "run_id": f"acc-{width}", "config": cfg.to_dict(), "counts": counts})
    run.write_status("done", step=40)
    run.write_metrics([{"step": 40, "tokens": counts["tokens"], "split": "eval", "loss": 3.0},
                       {"step": 40, "tokens": counts["tokens"], "split": "train", "loss": 3.0}], 0)  # fmt: skip
    run.write_metrics([{"step": 40, "tokens": counts["tokens"], "split": "downstream", "line_end/acc": acc,
                        "line_end/chance": CHANCE}], 1_000_000)  # fmt: skip
  collect.collect(root, "acc")


def test_fit_metric_recovers_the_accuracy_law(tmp_path):
  _runs(tmp_path)
  out = tmp_path / "fit.json"
  args = ["fit", "acc", "--metric", "line_end/acc", "--law", "downstream_power", "--root", str(tmp_path),
          "--convention", "chinchilla", "--out", str(out)]  # fmt: skip
  result = CliRunner().invoke(cli.main, args)
  assert result.exit_code == 0, result.output
  written = json.loads(out.read_text())
  assert written["source"] == "study acc, line_end/acc (chance 0.25)"
  params = written["fit"]["params"]
  assert params["alpha"] == pytest.approx(ALPHA, rel=1e-6) and params["A"] == pytest.approx(np.exp(LOG_A), rel=1e-6)


def test_fit_metric_errors(tmp_path):
  _runs(tmp_path, widths=(32, 64))
  base = ["fit", "acc", "--root", str(tmp_path)]
  missing = CliRunner().invoke(cli.main, [*base, "--metric", "next_line/acc", "--law", "downstream_power"])
  assert missing.exit_code == 2 and "no finished run has the downstream metric next_line/acc" in missing.output
  wrong_law = CliRunner().invoke(cli.main, [*base, "--metric", "line_end/acc", "--law", "chinchilla"])
  assert wrong_law.exit_code == 2 and "--metric: needs a STUDY and a downstream law" in wrong_law.output
