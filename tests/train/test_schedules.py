"""Learning-rate schedules against hand-computed values; ramp-up thresholds (PAPERS.md §2.6)."""

import math

import pytest

from mixlaws import budget, config, optim


def _cfg(*overrides):
  base = ["train.tokens=0", "train.steps=100", "train.batch_size=4", "model.seq_len=8", "train.lr=1.0",
          "train.warmup_fraction=0", "train.warmup_steps=10"]  # fmt: skip
  return config.resolve(config.apply_overrides(config.base_config(), base + list(overrides)))


def _lr(cfg, step):
  return float(optim.learning_rate(cfg)(step))


def test_cosine_warmup_plateau_and_end():
  cfg = _cfg("train.schedule=cosine", "train.final_lr_fraction=0.1")
  assert _lr(cfg, 0) == 0.0
  assert _lr(cfg, 5) == pytest.approx(0.5)  # half-way through the linear warmup
  assert _lr(cfg, 10) == pytest.approx(1.0)  # warmup end = peak
  assert _lr(cfg, 55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-5)
  assert _lr(cfg, 100) == pytest.approx(0.1)  # decays to final_lr_fraction · peak (Krajewski et al. 2024)


def test_wsd_warmup_constant_and_linear_decay_to_zero():
  cfg = _cfg("train.schedule=wsd", "train.decay_fraction=0.2")
  assert _lr(cfg, 10) == pytest.approx(1.0)
  assert _lr(cfg, 50) == pytest.approx(1.0)  # plateau
  assert _lr(cfg, 80) == pytest.approx(1.0)  # decay starts at 80% of tokens (Ludziejewski et al. 2025)
  assert _lr(cfg, 90) == pytest.approx(0.5, rel=1e-5)
  assert _lr(cfg, 100) == pytest.approx(0.0, abs=1e-7)


def test_constant_and_fractional_warmup():
  cfg = _cfg("train.schedule=constant", "train.warmup_steps=0", "train.warmup_fraction=0.2")
  assert _lr(cfg, 10) == pytest.approx(0.5)  # 20% of 100 steps
  assert _lr(cfg, 20) == pytest.approx(1.0) and _lr(cfg, 99) == pytest.approx(1.0)


def test_schedule_follows_tokens_under_rampup():
  # Ludziejewski et al. 2025: 128 → 256 sequences after 0.5B tokens, 512 after 1B; WSD in tokens.
  cfg = config.resolve(config.apply_overrides(config.base_config(), [
      "train.batch_size=512", "train.batch_rampup=128:5e8,256:1e9", "train.tokens=4e9", "train.schedule=wsd",
      "train.warmup_fraction=0", "train.warmup_tokens=130000000", "train.lr=1.0", "train.decay_fraction=0.2"]))  # fmt: skip
  tokens = optim.tokens_before_step(cfg)
  for step in (1000, 7629, 9000, 11443, 12000):
    assert float(tokens(step)) == pytest.approx(budget.tokens_after(cfg, step), rel=1e-6)
  warm_step = 130_000_000 / (128 * 512)  # still in the first ramp-up stage
  assert _lr(cfg, warm_step / 2) == pytest.approx(0.5, rel=1e-4)
  total = budget.total_tokens(cfg)
  decay_start_step = 11443 + (0.8 * total - budget.tokens_after(cfg, 11443)) / (512 * 512)
  assert _lr(cfg, decay_start_step - 10) == pytest.approx(1.0)
  assert _lr(cfg, budget.total_steps(cfg)) == pytest.approx(0.0, abs=1e-3)


def test_weight_decay_mask_skips_norm_scales():
  import jax.numpy as jnp
  from flax import nnx

  class Tiny(nnx.Module):
    def __init__(self):
      self.w = nnx.Param(jnp.ones((4, 4)), out_sharding=("embed", "mlp"))
      self.scale = nnx.Param(jnp.ones((3, 4)), out_sharding=("layers", "embed"))  # stacked norm scales

  with nnx.use_eager_sharding(False):
    params = nnx.state(Tiny(), nnx.Param)
  mask = optim._decay_mask(params)
  assert mask["w"] is True and mask["scale"] is False
