"""Shared pieces of the training tests: a tiny config and metric records read back from a run dir."""

import json

import numpy as np

from mixlaws import config, rundir

MOE = ["moe.expansion_rate=4", "moe.granularity=2", "moe.router=token_choice", "moe.capacity_factor=0"]


def tiny(data_dir, *overrides, n_devices=8):
  base = [
      "model.d_model=32", "model.n_layers=2", "model.n_heads=2", "model.vocab_size=259", "model.seq_len=16",
      "train.batch_size=8", "train.tokens=0", "train.steps=5", "train.lr=3e-3", "train.warmup_fraction=0",
      "train.eval_tokens=256", "checkpoint.every_steps=0", "data.max_documents=40", f"data.data_dir={data_dir}",
  ]  # fmt: skip
  return config.resolve(config.apply_overrides(config.base_config(), base + list(overrides)), n_devices=n_devices)


def records(run_dir, split="train"):
  """Metric records by step; for a resumed run the newest attempt wins (as the collector does)."""
  best = {}
  for chunk in rundir.RunDir(run_dir).metric_chunks():
    attempt = rundir.parse_chunk_name(chunk.name)[2]
    for line in chunk.read_text().splitlines():
      rec = json.loads(line)
      if rec["split"] == split and attempt >= best.get(rec["step"], (-1, None))[0]:
        best[rec["step"]] = (attempt, rec)
  return {step: rec for step, (_, rec) in sorted(best.items())}


def losses(run_dir):
  return np.array([rec["loss"] for rec in records(run_dir).values()])
