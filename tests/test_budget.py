"""Steps, tokens and batch-size ramp-up."""

import pytest

from mixlaws import budget, config


def _cfg(*overrides):
  return config.resolve(config.apply_overrides(config.base_config(), list(overrides)))


@pytest.mark.parametrize("steps", [1, 5000, 7629, 7630, 11443, 11444, 20000])
def test_ludziejewski_rampup_token_formula(steps):
  # Ludziejewski et al. 2025 (PAPERS.md §2.6): 128 sequences, 256 after 0.5B tokens, 512 after 1B;
  # tokens after s steps = 512·(512 s − 128·min(s, 7629) − 256·min(s, 11443)).
  cfg = _cfg("train.batch_size=512", "train.batch_rampup=128:5e8,256:1e9", "train.tokens=0", f"train.steps={steps}")
  assert budget.tokens_after(cfg, steps) == 512 * (512 * steps - 128 * min(steps, 7629) - 256 * min(steps, 11443))
  assert budget.total_tokens(cfg) == budget.tokens_after(cfg, steps)


def test_rampup_batch_sizes_at_thresholds():
  cfg = _cfg("train.batch_size=512", "train.batch_rampup=128:5e8,256:1e9", "train.tokens=2e9")
  assert [budget.batch_size_at(cfg, s) for s in (0, 7628, 7629, 11442, 11443)] == [128, 128, 256, 256, 512]
  assert budget.total_tokens(cfg) >= 2e9
  assert budget.total_tokens(cfg) - 2e9 < 512 * 512  # rounds up by less than one step


def test_token_budget_without_rampup():
  cfg = _cfg("train.batch_size=4", "model.seq_len=8", "train.tokens=100")
  assert budget.total_steps(cfg) == 4 and budget.total_tokens(cfg) == 128
  segs = budget.segments(cfg.train, cfg.model.seq_len)
  assert segs == (budget.Segment(batch_size=4, steps=4, start_step=0, start_tokens=0),)
