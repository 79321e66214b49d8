"""Wang et al. 2024, Scaling Laws Across Model Architectures: dense vs 8-expert top-2 MoE (PAPERS.md §3).

Only the abstract of this paper is verified; its model grid, token budgets, batch sizes and
learning rates are MISSING from PAPERS.md. This study is therefore a reconstruction, UNVERIFIED
in every number, that spans what §3 reports: a dense family of ~50M–7B parameters and an MoE
family of 8 experts with top-2 routing at ~200M–3B active parameters, up to ~100B tokens, AdamW
(β2 0.95), cosine decay to 10% of the peak, and a peak LR from 1.5e-3 (smallest) to 2e-4 (largest).
Both families are laid out as isoFLOP grids, since the paper's headline results are compute-optimal
allocations N_opt(C) and D_opt(C) for each architecture.

Variant `tiny`: the same two families and isoFLOP design at d_model = 16·n_blocks with heads of
width 16, byte tokens, budgets of 1e11–1e12 FLOPs, and a wider tokens-per-parameter band (at tiny
sizes the embeddings dominate N, so the paper-scale band keeps almost nothing).
"""

from __future__ import annotations

import math

from mixlaws import config, counting, planner, registry

from . import _common

VARIANTS = ("tiny",)

# UNVERIFIED reconstruction: shapes by the d_model = 64·n_blocks rule, spanning the reported ranges.
DENSE_BLOCKS = (6, 8, 10, 12, 14, 16, 18, 20, 24, 28, 32, 36, 42, 50)  # 50M … 7.0B (embeddings included)
MOE_BLOCKS = (12, 14, 16, 18, 20, 24, 28, 30)  # 233M … 2.6B active, 8 experts, top-2
BUDGETS = (1e18, 3e18, 1e19, 3e19, 1e20, 3e20, 1e21, 3e21)  # training FLOPs (Chinchilla convention)
TOKENS_PER_PARAM = (5, 80)  # keep a (budget, model) pair only inside this band of D / N_act
LR_RANGE = ((50e6, 1.5e-3), (7e9, 2e-4))  # (N_act, peak LR) at the two ends; log-linear between
SEQ_LEN = 2048  # UNVERIFIED
BATCH = 512  # UNVERIFIED: 1M tokens per batch

TINY_DENSE_BLOCKS = (2, 3, 4, 5, 6, 7, 8)
TINY_MOE_BLOCKS = (2, 3, 4, 5, 6)
TINY_WIDTH = 16  # d_model per block and head width
TINY_BUDGETS = (1e11, 3e11, 1e12)
TINY_TOKENS_PER_PARAM = (2, 200)
TINY_SEQ_LEN = 64
TINY_BATCH = 32


def _lr(cfg: config.Config) -> float:
  """Peak LR falling log-linearly in N_act from 1.5e-3 at 50M to 2e-4 at 7B (UNVERIFIED rule)."""
  (n_lo, lr_lo), (n_hi, lr_hi) = LR_RANGE
  n_act = counting.convention_count(counting.Shape.from_config(cfg), "ludziejewski2025").active_params
  frac = min(max(math.log(n_act / n_lo) / math.log(n_hi / n_lo), 0.0), 1.0)
  return math.exp(math.log(lr_lo) + frac * math.log(lr_hi / lr_lo))


def _base(tiny: bool):
  base = config.base_config()
  m, moe, t = base.model, base.moe, base.train
  m.seq_len = SEQ_LEN
  m.compute_dtype = "bfloat16"
  moe.router = "token_choice"
  t.batch_size = BATCH
  t.schedule = "cosine"
  t.final_lr_fraction = 0.1
  t.warmup_fraction = 0.01  # UNVERIFIED
  t.beta1 = 0.9
  t.beta2 = 0.95
  _common.paper_data(base, "pile")  # UNVERIFIED (PAPERS.md §3 doubts "The Pile"); prepared into the data dir
  if tiny:
    _common.cpu_data(base)
    m.seq_len = TINY_SEQ_LEN
    t.batch_size = TINY_BATCH
  return base


def get_study(variant: str | None = None) -> registry.Study:
  tiny = variant == "tiny"
  base = _base(tiny)
  if tiny:
    dense = registry.size_rule(TINY_DENSE_BLOCKS, TINY_WIDTH, TINY_WIDTH)
    moe = registry.size_rule(TINY_MOE_BLOCKS, TINY_WIDTH, TINY_WIDTH)
    budgets, (lo, hi) = TINY_BUDGETS, TINY_TOKENS_PER_PARAM
  else:
    dense, moe = registry.size_rule(DENSE_BLOCKS), registry.size_rule(MOE_BLOCKS)
    budgets, (lo, hi) = BUDGETS, TOKENS_PER_PARAM
  shapes = registry.chain(dense, registry.product(moe, [{"moe.expansion_rate": 8, "moe.top_k": 2}]))
  recipe = registry.IsoflopRecipe(base, shapes, "chinchilla", min_tokens_per_param=lo, max_tokens_per_param=hi)
  return registry.Study(
    name="wang2024",
    description="Dense vs 8-expert top-2 MoE isoFLOP grids (UNVERIFIED reconstruction)",
    base=base,
    sweep=registry.isoflop_grid(budgets, recipe),
    derived={"train.lr": _lr},
    slice=None if tiny else planner.smallest_slice("v5p"),
  )
