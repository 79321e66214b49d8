"""Krajewski, Chochowski, Korzekwa 2025, Fine-Grained MoE Beyond 50B: G = 1 vs G = 8 (PAPERS.md §4).

Only the abstract is verified: fine-grained against standard MoE at up to 56B total (17B active)
parameters. Everything else is UNVERIFIED (§4): 8 experts, and at G = 8 64 experts of 1/8 the
width; "1xFLOPs" routes to top-1 (top-8 at G = 8), "2xFLOPs" to top-2 (top-16); softmax after
top-k; scales of about 11B and 56B total. The shapes, token budgets, context, batch, capacity
factor, z-loss and data are MISSING; the values below are stand-ins chosen to hit the reported
totals (11.1B and 56.5B total, 16.4B active for 2xFLOPs at 56B) and are marked as such.

Variant `tiny`: the same 8 runs with widths /64, depths /8 (rounded up), heads of width 8, byte
tokens, and 2 tokens per active parameter.
"""

from __future__ import annotations

from mixlaws import config, planner, registry

from . import _common

VARIANTS = ("tiny",)

# MISSING in PAPERS.md; stand-in shapes that give the reported totals with GPT-2's vocabulary.
SIZES = {
  "11B": {"model.d_model": 2560, "model.n_layers": 24, "model.d_ff": 6912},  # 11.1B total
  "56B": {"model.d_model": 4096, "model.n_layers": 38, "model.d_ff": 14336},  # 56.5B total, 16.4B active at top-2
}
GRANULARITIES = (1, 8)
FLOPS_MULTIPLIERS = (1, 2)  # "1xFLOPs" / "2xFLOPs": G·1 or G·2 experts per token
TOKENS_PER_PARAM = 20  # MISSING: Chinchilla's ratio on active parameters (embeddings included)

TINY_WIDTH = 64
TINY_DEPTH = 8
TINY_HEAD_WIDTH = 8
TINY_TOKENS_PER_PARAM = 2
TINY_SEQ_LEN = 64
TINY_BATCH = 32


def _base(tiny: bool):
  base = config.base_config()
  m, moe, t = base.model, base.moe, base.train
  m.seq_len = 4096  # MISSING
  m.compute_dtype = "bfloat16"
  moe.expansion_rate = 8
  moe.router = "token_choice"
  moe.softmax_order = "after_topk"  # renormalise over the selected experts: matters for fine-grained MoE
  moe.capacity_factor = 1.0  # MISSING: a capacity factor is used, its value is not given
  moe.load_balance_weight = 1e-2  # UNVERIFIED: "standard 1e-2 auxiliary loss" is likely
  t.batch_size = 1024  # MISSING
  t.schedule = "cosine"
  t.final_lr_fraction = 0.1  # UNVERIFIED
  t.lr = 3e-4  # MISSING
  _common.paper_data(base, "c4/en:3.1.0")  # stand-in: the paper's multilingual + code mixture is not public
  if tiny:
    _common.cpu_data(base)
    m.seq_len = TINY_SEQ_LEN
    t.batch_size = TINY_BATCH
  return base


def _tiny(size: registry.Point) -> registry.Point:
  d_model = size["model.d_model"] // TINY_WIDTH
  return {
    "model.d_model": d_model,
    "model.n_layers": _common.shrink_depth(size["model.n_layers"], TINY_DEPTH),
    "model.n_heads": d_model // TINY_HEAD_WIDTH,
    # Rounded to a multiple of 8 so that G = 8 experts split it evenly.
    "model.d_ff": round(size["model.d_ff"] / TINY_WIDTH / 8) * 8,
  }


def get_study(variant: str | None = None) -> registry.Study:
  tiny = variant == "tiny"
  shapes = registry.sizes(SIZES)
  if tiny:
    shapes = [_tiny(s) for s in shapes]
  routing = [{"moe.granularity": g, "moe.top_k": g * k} for k in FLOPS_MULTIPLIERS for g in GRANULARITIES]
  ratio = TINY_TOKENS_PER_PARAM if tiny else TOKENS_PER_PARAM
  return registry.Study(
    name="krajewski2025_50b",
    description="Fine-grained (G=8) vs standard (G=1) MoE at ~11B and ~56B total (UNVERIFIED)",
    base=_base(tiny),
    sweep=registry.product(shapes, routing),
    derived={"train.tokens": registry.tokens_per_param(ratio)},
    slice=None if tiny else planner.smallest_slice("v5p"),
  )
