"""AdamW and the learning-rate schedules, measured in tokens so batch ramp-up cannot bend them.

Schedules (evaluated at the tokens seen before each step):
- `cosine`: linear warmup to the peak, cosine decay to `final_lr_fraction`·peak at the end of training
  (Krajewski et al. 2024: 2e-4 → 2e-5).
- `wsd`: warmup, constant, linear decay to 0 over the final `decay_fraction` of tokens — the
  trapezoidal schedule of Ludziejewski et al. 2025 (PAPERS.md §2.6, llm-random TrapezoidalScheduler).
- `constant`: warmup, then the peak.
Warmup is given in steps, tokens or a fraction of steps; all three become a token count.

The schedule is evaluated on the host (numpy, once per run) and the step receives its learning
rate as an input: `optimizer` is AdamW without its final `-lr` scaling, which the step applies.
This keeps the compiled step independent of the run's length, so runs that share a shape share
one compilation through the persistent cache (optax's schedules would bake the budget into it).
"""

from __future__ import annotations

import jax
import numpy as np
import optax
from flax import nnx

from mixlaws import budget, sharding
from mixlaws.config import Config


def tokens_before_step(cfg: Config):
  """step(s) → tokens seen before them: piecewise linear over the ramp-up segments (vectorised)."""
  segments = budget.segments(cfg.train, cfg.model.seq_len)

  def tokens(step):
    step = np.asarray(step, np.float64)
    return sum(np.clip(step - s.start_step, 0, s.steps) * (s.batch_size * cfg.model.seq_len) for s in segments)

  return tokens


def warmup_tokens(cfg: Config) -> int:
  t = cfg.train
  if t.warmup_tokens:
    return t.warmup_tokens
  steps = t.warmup_steps or round(t.warmup_fraction * budget.total_steps(cfg))
  return budget.tokens_after(cfg, steps)


def decay_start_tokens(cfg: Config) -> float:
  """wsd: the token count where the linear decay begins (never before the warmup ends).

  Everything before it is warmup and constant, the same for every budget of one shape: a WSD
  cooldown branch forks from its trunk at the last step boundary at or below this count.
  """
  total = float(budget.total_tokens(cfg))
  return max(total * (1 - cfg.train.decay_fraction), float(min(warmup_tokens(cfg), total)))


def learning_rate(cfg: Config):
  """step(s) → learning rate (vectorised over numpy arrays of steps)."""
  t = cfg.train
  total = float(budget.total_tokens(cfg))
  warm = float(min(warmup_tokens(cfg), total))
  tokens_of = tokens_before_step(cfg)

  def schedule(step):
    tokens = tokens_of(step)
    warmup = np.minimum(tokens / warm, 1.0) if warm > 0 else np.ones_like(tokens)
    if t.schedule == "cosine":
      progress = np.clip((tokens - warm) / max(total - warm, 1.0), 0.0, 1.0)
      shape = t.final_lr_fraction + (1 - t.final_lr_fraction) * 0.5 * (1 + np.cos(np.pi * progress))
    elif t.schedule == "wsd":
      decay_start = decay_start_tokens(cfg)
      shape = np.clip(1 - (tokens - decay_start) / max(total - decay_start, 1.0), 0.0, 1.0)
    else:
      shape = np.ones_like(tokens)
    return t.lr * np.where(tokens < warm, warmup, shape)

  return schedule


def _decay_mask(params):
  # Decoupled weight decay on weight matrices only, not norm scales. Judged by the logical axes a
  # parameter was created with, so the stacked `layers` axis does not turn a scale into a matrix.
  def is_matrix(variable) -> bool:
    return sum(a not in (None, "layers") for a in sharding.logical_axes(variable)) >= 2

  return jax.tree.map(is_matrix, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def optimizer(cfg: Config) -> optax.GradientTransformation:
  """Global-norm clipping (when set), then AdamW's update direction; the step scales it by −lr.

  optax.adamw = chain(scale_by_adam, add_decayed_weights, scale_by_learning_rate); the last stage
  is left to the step, which gets the learning rate as an input (see the module docstring).
  """
  t = cfg.train
  direction = optax.chain(
    optax.scale_by_adam(b1=t.beta1, b2=t.beta2, eps=t.eps),
    optax.add_decayed_weights(t.weight_decay, mask=_decay_mask),
  )
  return optax.chain(optax.clip_by_global_norm(t.grad_clip), direction) if t.grad_clip > 0 else direction
