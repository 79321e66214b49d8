"""Wang et al. 2024, Scaling Laws Across Model Architectures: dense vs 8-expert top-2 MoE (PAPERS.md §3).

Only the abstract of this paper is verified; its model grid, token budgets, batch sizes and
learning rates are MISSING from PAPERS.md. This study is therefore a reconstruction, UNVERIFIED
in every number, that spans what §3 reports: a dense family of ~50M–7B parameters and an MoE
family of 8 experts with top-2 routing at ~200M–3B active parameters, up to ~100B tokens, AdamW
(β2 0.95), cosine decay to 10% of the peak, and a peak LR from 1.5e-3 (smallest) to 2e-4 (largest).
Both families are laid out as isoFLOP grids, since the paper's headline results are compute-optimal
allocations N_opt(C) and D_opt(C) for each architecture.

Beside the isoFLOP grids, a learning-rate × batch-size grid at a few shapes and token budgets of
each family locates the optimal LR and batch size per (N, D), for the paper's comparison of dense and
MoE optima (`mixlaws fit --law steplaw wang2024` fits the Step Law per family and prints the optima
side by side). PAPERS.md §3 confirms none of this study's numbers (only the abstract is verified:
"the power-law framework carries over to MoE for ... optimal batch size and learning-rate scaling"),
so every value below stays UNVERIFIED, the LR range and batch size included.

Variant `tiny`: the same two families and isoFLOP design at d_model = 16·n_blocks with heads of
width 16, byte tokens, budgets of 1e11–1e12 FLOPs, and a wider tokens-per-parameter band (at tiny
sizes the embeddings dominate N, so the paper-scale band keeps almost nothing); its lr × batch grid
is 3 × 3 at two shapes and two token counts per family.
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

# The lr × batch grid (UNVERIFIED: MISSING from PAPERS.md §3): shapes and token budgets per family, the
# LR as multiples of the size rule below, and batch sizes in sequences around the 1M-token default.
LR_BS_DENSE_BLOCKS = (8, 12, 16)  # 95M … 600M
LR_BS_MOE_BLOCKS = (12, 16)  # 8 experts, top-2
LR_BS_TOKENS = (5e9, 2e10)
LR_MULTIPLIERS = (0.25, 0.5, 1, 2, 4)
BATCHES = (128, 256, 512, 1024, 2048)

TINY_DENSE_BLOCKS = (2, 3, 4, 5, 6, 7, 8)
TINY_MOE_BLOCKS = (2, 3, 4, 5, 6)
TINY_WIDTH = 16  # d_model per block and head width
TINY_BUDGETS = (1e11, 3e11, 1e12)
TINY_TOKENS_PER_PARAM = (2, 200)
TINY_SEQ_LEN = 64
TINY_BATCH = 32
TINY_LR_BS_BLOCKS = (2, 4)
TINY_LR_BS_TOKENS = (2e5, 8e5)
TINY_LR_MULTIPLIERS = (0.5, 1, 2)
TINY_BATCHES = (8, 16, 32)


def _lr(cfg: config.Config) -> float:
  """Peak LR falling log-linearly in N_act from 1.5e-3 at 50M to 2e-4 at 7B (UNVERIFIED rule)."""
  (n_lo, lr_lo), (n_hi, lr_hi) = LR_RANGE
  n_act = counting.convention_count(counting.Shape.from_config(cfg), "ludziejewski2025").active_params
  frac = min(max(math.log(n_act / n_lo) / math.log(n_hi / n_lo), 0.0), 1.0)
  return math.exp(math.log(lr_lo) + frac * math.log(lr_hi / lr_lo))


def _scaled_lr(multiplier: float) -> registry.Derived:
  """train.lr = multiplier × the size rule `_lr`."""
  return lambda cfg: multiplier * _lr(cfg)


def _lr_batch(tiny: bool) -> registry.Sweep:
  """Dense and MoE shapes at each token budget, at every (LR multiple, batch size) pair."""
  if tiny:
    shapes = registry.size_rule(TINY_LR_BS_BLOCKS, TINY_WIDTH, TINY_WIDTH)
    dense, moe, tokens, multipliers, batches = shapes, shapes, TINY_LR_BS_TOKENS, TINY_LR_MULTIPLIERS, TINY_BATCHES
  else:
    dense, moe = registry.size_rule(LR_BS_DENSE_BLOCKS), registry.size_rule(LR_BS_MOE_BLOCKS)
    tokens, multipliers, batches = LR_BS_TOKENS, LR_MULTIPLIERS, BATCHES
  shapes = registry.chain(dense, registry.product(moe, [{"moe.expansion_rate": 8, "moe.top_k": 2}]))
  points = registry.product(shapes, [{"train.tokens": int(d), "train.steps": 0} for d in tokens])
  return registry.lr_batch_grid(points, [_scaled_lr(m) for m in multipliers], batches)


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
  isoflop = [{**point, "train.lr": _lr} for point in registry.isoflop_grid(budgets, recipe)]
  return registry.Study(
    name="wang2024",
    description="Dense vs 8-expert top-2 MoE isoFLOP grids and lr x batch grids (UNVERIFIED reconstruction)",
    base=base,
    sweep=registry.chain(isoflop, _lr_batch(tiny)),
    slice=None if tiny else planner.smallest_slice("v5p"),
  )
