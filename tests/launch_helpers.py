"""Helpers of the launch tests: tiny studies and run-dir readers."""

import json

from mixlaws import config, data, registry, rundir


def tiny_base(data_dir, *overrides):
  """The tiniest real run: d_model 16, one layer, 16-token context, 4 steps on stdlib bytes."""
  base = ["model.d_model=16", "model.n_layers=1", "model.n_heads=1", "model.vocab_size=259", "model.seq_len=16",
          "train.batch_size=8", "train.tokens=0", "train.steps=4", "train.lr=3e-3", "train.warmup_fraction=0",
          "train.eval_tokens=128", "checkpoint.every_steps=0", "data.max_documents=8",
          f"data.data_dir={data_dir}"]  # fmt: skip
  return config.apply_overrides(config.base_config(), base + list(overrides))


def prepared_data_dir(tmp_path_factory) -> str:
  """A data dir prepared once per session, before any worker starts, so workers never race to prepare it."""
  path = str(tmp_path_factory.mktemp("data"))
  cfg = config.resolve(tiny_base(path))
  data.prepare(cfg.data, data.tokenizer(cfg.data))
  return path


def tiny_study(data_dir, name, sweep):
  return registry.Study(name, "launch test", tiny_base(data_dir), sweep)


def claims(run_dir):
  path = rundir.RunDir(run_dir).path / "claims"
  return sorted(p.name for p in path.iterdir()) if path.exists() else []


def chunk_attempts(run_dir):
  return {rundir.parse_chunk_name(c.name)[2] for c in rundir.RunDir(run_dir).metric_chunks()}


def train_losses(run_dir):
  """Train losses by step; for a resumed run the newest attempt wins (as the collector does)."""
  best = {}
  for chunk in rundir.RunDir(run_dir).metric_chunks():
    attempt = rundir.parse_chunk_name(chunk.name)[2]
    for line in chunk.read_text().splitlines():
      rec = json.loads(line)
      if rec["split"] == "train" and attempt >= best.get(rec["step"], (-1, None))[0]:
        best[rec["step"]] = (attempt, rec["loss"])
  return {step: loss for step, (_, loss) in sorted(best.items())}
