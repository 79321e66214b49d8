"""Hand-made run dirs written to the run-dir contract, and a collected study shared by the tests."""

import types

import pytest

from mixlaws import collect, config, counting, rundir

STUDY = "toy"
# (run suffix, overrides, state): a dense run, two MoE runs and one still running.
RUNS = (
  ("dense", [], "done"),
  ("e8g2", ["moe.expansion_rate=8", "moe.granularity=2", "moe.router=token_choice"], "done"),
  ("e32", ["moe.expansion_rate=32"], "done"),
  ("e32-running", ["moe.expansion_rate=32", "train.lr=1e-3"], "running"),
)
STEPS = 12
TOKENS_PER_STEP = 1024


def make_run(root, study, name, overrides=(), state="done", attempt=0):
  """A run dir with config.json and status.json (no metrics yet); returns (RunDir, run_id)."""
  base = ["model.d_model=64", "model.n_layers=2", "model.vocab_size=259", "model.seq_len=64", "train.batch_size=16"]
  cfg = config.resolve(
    config.apply_overrides(config.base_config(), [*base, f"train.steps={STEPS}", "train.tokens=0", *overrides])
  )
  run_id = f"{study}-{name}"
  run = rundir.RunDir(root / study / run_id)
  run.write_config(
    {"study": study, "run_id": run_id, "config": cfg.to_dict(), "counts": counting.run_counts(cfg).to_dict()}
  )
  run.write_status(state, step=STEPS if state == "done" else STEPS // 2, attempt=attempt)
  return run, run_id


def train_record(step, loss, **extra):
  tokens = step * TOKENS_PER_STEP
  return {"step": step, "tokens": tokens, "flops": 6.0e6 * tokens, "split": "train", "loss": loss, **extra}


def eval_record(step, loss):
  tokens = step * TOKENS_PER_STEP
  return {"step": step, "tokens": tokens, "flops": 6.0e6 * tokens, "split": "eval", "loss": loss}


def write_toy_study(root):
  """Writes the toy study; returns {run_id: {"train": {step: loss}, "eval": {step: loss}, "acc": value}}."""
  written = {}
  for i, (name, overrides, state) in enumerate(RUNS):
    run, run_id = make_run(root, STUDY, name, overrides, state)
    last = STEPS if state == "done" else STEPS // 2
    train = {s: round(4.0 + i * 0.25 - 0.1 * s + 0.001 * i * s, 6) for s in range(1, last + 1)}
    records = [train_record(s, loss, lr=1e-3 / s, grad_norm=0.5 + s) for s, loss in train.items()]
    evals = {6: train[6] + 0.05}
    if state == "done":
      evals[STEPS] = train[STEPS] + 0.05
    half = len(records) // 2
    run.write_metrics(records[:half] + [eval_record(6, evals[6])], attempt=0)  # two chunks, as a loop flushes
    run.write_metrics(records[half:] + [eval_record(s, v) for s, v in evals.items() if s > 6], attempt=0)
    acc = 0.25 + 0.05 * i
    run.write_metrics(
      [{"step": last, "tokens": last * TOKENS_PER_STEP, "split": "downstream", "next_line/acc": acc}], 0
    )
    written[run_id] = {"train": train, "eval": evals, "acc": acc, "state": state}
  return written


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
  """The toy study written and collected once: (root, written values, collect report)."""
  root = tmp_path_factory.mktemp("runs")
  written = write_toy_study(root)
  report = collect.collect(root, STUDY)
  return root, written, report


@pytest.fixture(scope="session")
def runs():
  """The helpers above, for test modules (conftest modules are not importable by name)."""
  return types.SimpleNamespace(
    STUDY=STUDY,
    STEPS=STEPS,
    RUNS=RUNS,
    make_run=make_run,
    train_record=train_record,
    eval_record=eval_record,
    write_toy_study=write_toy_study,
  )
