"""Studies for the report tests: the store tests' toy study, and the smoke study's grid with made-up losses."""

import importlib.util
import math
import pathlib

import pytest

from mixlaws import collect, registry, sweep
from mixlaws.rundir import RunDir

_STORE_CONFTEST = pathlib.Path(__file__).parents[1] / "store" / "conftest.py"


def _store_helpers():
  """tests/store/conftest.py as a module (conftest modules are not importable by name)."""
  spec = importlib.util.spec_from_file_location("store_conftest", _STORE_CONFTEST)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def smoke_loss(active: float, tokens: float, experts: float) -> float:
  """A Chinchilla-shaped loss with a small gain from experts, for made-up curves."""
  return 1.8 + 60.0 / (active**0.4 * experts**0.08) + 40.0 / tokens**0.28


def write_smoke(root, *, failed: int = 0) -> list[str]:
  """The smoke study's 16 runs, done, with made-up curves, throughput and a downstream accuracy.

  The first `failed` runs are marked failed (a NaN loss) instead. Returns the run ids.
  """
  specs = registry.expand("smoke")
  sweep.enqueue(specs, root)
  for i, spec in enumerate(specs):
    run = RunDir(sweep.study_dir(root, spec.study) / spec.run_id)
    cfg, counts = spec.config, spec.counts
    steps, per_step = counts.steps, cfg.train.batch_size * cfg.model.seq_len
    active, experts = counts.params.active, cfg.moe.expansion_rate
    records = []
    for step in range(8, steps + 1, 8):
      tokens = step * per_step
      loss = smoke_loss(active, tokens, experts) * (1 + 0.004 * math.sin(2.3 * i))  # a little scatter
      records.append({"step": step, "tokens": tokens, "flops": 6.0 * active * tokens, "split": "train",
                      "loss": loss, "lr": 1e-3, "step_time": 0.05, "mfu": 0.01 + 0.001 * i})  # fmt: skip
    if i < failed:
      records[-1]["loss"] = math.nan
      run.write_metrics(records, attempt=0)
      run.write_status("failed", step=steps, attempt=0, error="loss is nan at step 128")
      continue
    last = records[-1]
    records.append({**last, "split": "eval", "loss": last["loss"] + 0.02})
    records = [{k: v for k, v in r.items() if r["split"] == "train" or k not in ("lr", "step_time", "mfu")}
               for r in records]  # fmt: skip
    records.append({"step": steps, "tokens": last["tokens"], "split": "downstream", "line_end/acc": 0.2 + 0.01 * i})
    run.write_metrics(records, attempt=0)
    run.write_status("done", step=steps, attempt=0)
  collect.collect(root, "smoke")
  return [s.run_id for s in specs]


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
  """The store tests' toy study (three runs done, one running), collected: the run root."""
  root = tmp_path_factory.mktemp("toy")
  _store_helpers().write_toy_study(root)
  collect.collect(root, "toy")
  return root


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
  """The smoke study's grid with made-up losses, one run failed, collected: the run root."""
  root = tmp_path_factory.mktemp("smoke")
  write_smoke(root, failed=1)
  return root


@pytest.fixture(scope="module")
def toy_report(toy_root):
  """`mixlaws report toy` written over a stale file: (path, the command's output)."""
  from click.testing import CliRunner

  from mixlaws import cli

  path = toy_root / "report.html"
  path.write_text("stale")
  result = CliRunner().invoke(
    cli.main, ["report", "toy", "--root", str(toy_root), "--out", str(path), "--bootstrap", "0"]
  )
  assert result.exit_code == 0, result.output
  return path, result.output
