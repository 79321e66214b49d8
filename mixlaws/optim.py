"""AdamW and the learning-rate schedules, measured in tokens so batch ramp-up cannot bend them.

Schedules (optax building blocks, evaluated at the tokens seen before the step):
- `cosine`: linear warmup to the peak, cosine decay to `final_lr_fraction`·peak at the end of training
  (Krajewski et al. 2024: 2e-4 → 2e-5).
- `wsd`: warmup, constant, linear decay to 0 over the final `decay_fraction` of tokens — the
  trapezoidal schedule of Ludziejewski et al. 2025 (PAPERS.md §2.6, llm-random TrapezoidalScheduler).
- `constant`: warmup, then the peak.
Warmup is given in steps, tokens or a fraction of steps; all three become a token count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mixlaws import budget, sharding
from mixlaws.config import Config


def tokens_before_step(cfg: Config):
  """A jit-friendly step → tokens-seen function (piecewise linear over the ramp-up segments)."""
  segments = budget.segments(cfg.train, cfg.model.seq_len)

  def tokens(step):
    step = jnp.asarray(step, jnp.float32)
    seen = jnp.zeros((), jnp.float32)
    for seg in segments:
      seen += jnp.clip(step - seg.start_step, 0, seg.steps) * (seg.batch_size * cfg.model.seq_len)
    return seen

  return tokens


def warmup_tokens(cfg: Config) -> int:
  t = cfg.train
  if t.warmup_tokens:
    return t.warmup_tokens
  steps = t.warmup_steps or round(t.warmup_fraction * budget.total_steps(cfg))
  return budget.tokens_after(cfg, steps)


def learning_rate(cfg: Config) -> optax.Schedule:
  """Step → learning rate."""
  t = cfg.train
  total = float(budget.total_tokens(cfg))
  warm = float(min(warmup_tokens(cfg), total))
  warmup = optax.linear_schedule(0.0, t.lr, max(warm, 1.0))
  if t.schedule == "cosine":
    after = optax.cosine_decay_schedule(t.lr, max(total - warm, 1.0), alpha=t.final_lr_fraction)
    by_tokens = optax.join_schedules([warmup, after], [warm])
  elif t.schedule == "wsd":
    decay_start = max(total * (1 - t.decay_fraction), warm)
    constant = optax.constant_schedule(t.lr)
    decay = optax.linear_schedule(t.lr, 0.0, max(total - decay_start, 1.0))
    by_tokens = optax.join_schedules([warmup, constant, decay], [warm, decay_start])
  else:
    by_tokens = optax.join_schedules([warmup, optax.constant_schedule(t.lr)], [warm])
  tokens = tokens_before_step(cfg)
  return lambda step: by_tokens(tokens(step))


def _decay_mask(params):
  # Decoupled weight decay on weight matrices only, not norm scales. Judged by the logical axes a
  # parameter was created with, so the stacked `layers` axis does not turn a scale into a matrix.
  def is_matrix(variable) -> bool:
    return sum(a not in (None, "layers") for a in sharding.logical_axes(variable)) >= 2

  return jax.tree.map(is_matrix, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def optimizer(cfg: Config) -> optax.GradientTransformation:
  """Global-norm clipping (when set) then AdamW with the schedule."""
  t = cfg.train
  adamw = optax.adamw(learning_rate(cfg), b1=t.beta1, b2=t.beta2, eps=t.eps, weight_decay=t.weight_decay,
                      mask=_decay_mask)  # fmt: skip
  return optax.chain(optax.clip_by_global_norm(t.grad_clip), adamw) if t.grad_clip > 0 else adamw
