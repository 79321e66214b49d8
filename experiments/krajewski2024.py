"""Krajewski et al. 2024, Scaling Laws for Fine-Grained MoE: the granularity grid (PAPERS.md §1.6-1.7).

Tables 3 (MoE, E = 64) and 4 (dense) of Appendix A, and Table 7 (E = 16) of Appendix D, row for
row, with the Appendix A recipe: expert choice with tokens grouped by position across 256
sequences, GELU FFN of width 4·d_model, 2,048 sequences of 256 tokens per batch, AdamW at 2e-4
with 1% warmup and cosine decay to 2e-5, extra norm before the MoE output.

Variant `tiny`: the same rows with widths /8, depths /4 (rounded up), heads of width 16, tokens
/200,000, 64 sequences of 64 byte tokens per batch and expert-choice groups of 64.

Variants `wsd` and `tiny-wsd`: not the paper's recipe (cosine, one run per point) but a cheaper
sweep: a warmup-stable-decay schedule with a 20% cooldown (Hägele et al. 2024 find it matches
cosine), the budgets of each shape trained as cooldown branches of one trunk. The 1% warmup
becomes the tokens it gives each shape's smallest budget.
"""

from __future__ import annotations

from mixlaws import config, planner, registry

from . import _common

VARIANTS = ("tiny", "wsd", "tiny-wsd")

# (E, name, d_model, n_blocks, n_heads, tokens, granularities). Dense rows have E = 1.
GRID = (
  # Table 3: MoE, E = 64; the name is E x N_act with N_act = 12·d²·n.
  (64, "64x3M", 256, 4, 4, (16e9, 33e9, 66e9), (1, 2, 4, 8, 16)),
  (64, "64x7M", 384, 4, 6, (16e9, 33e9, 66e9), (1, 2, 4, 8, 16)),
  (64, "64x13M", 512, 4, 8, (16e9, 33e9, 66e9), (1, 2, 4, 8, 16)),
  (64, "64x13M", 512, 4, 8, (130e9,), (1, 2, 4)),
  (64, "64x25M", 512, 8, 8, (16e9, 33e9), (1, 2, 4, 8, 16)),
  (64, "64x25M", 512, 8, 8, (66e9,), (1, 2, 4, 8)),
  (64, "64x49M", 640, 10, 10, (16e9, 33e9), (1, 2, 4, 8, 16)),
  (64, "64x49M", 640, 10, 10, (66e9,), (1, 2, 4)),
  (64, "64x85M", 768, 12, 12, (33e9,), (1, 2, 4)),
  # Table 4: dense, FLOP-matched to the MoE rows of equal d_model.
  (1, "3M", 256, 4, 4, (16e9, 24e9, 33e9, 66e9), (1,)),
  (1, "6M", 256, 8, 4, (16e9, 24e9, 33e9, 66e9), (1,)),
  (1, "13M", 512, 4, 8, (16e9, 24e9, 33e9, 66e9), (1,)),
  (1, "25M", 512, 8, 8, (16e9, 24e9, 33e9, 66e9), (1,)),
  (1, "49M", 640, 10, 10, (16e9, 24e9, 33e9, 66e9), (1,)),
  (1, "85M", 768, 12, 12, (16e9, 33e9), (1,)),
  # Table 7 (Appendix D): E = 16. The table keeps the "64x" labels; "64x7M" there is d256/8 blocks (6.3M).
  (16, "64x3M", 256, 4, 4, (8e9, 16e9, 33e9), (1, 2, 4, 8, 16)),
  (16, "64x7M", 256, 8, 4, (8e9, 16e9, 33e9), (1, 2, 4, 8, 16)),
  (16, "64x13M", 512, 4, 8, (8e9, 16e9, 33e9), (1, 2, 4, 8, 16)),
  (16, "64x13M", 512, 4, 8, (66e9,), (1, 2, 4)),
  (16, "64x25M", 512, 8, 8, (8e9, 16e9, 33e9), (1, 2, 4, 8, 16)),
  (16, "64x49M", 640, 10, 10, (8e9,), (1, 2, 4, 8, 16)),
)

# Tiny variant: widths and token counts divided by these, depths by 4 (rounded up).
TINY_WIDTH = 8
TINY_HEAD_WIDTH = 16
TINY_TOKENS = 200_000
TINY_SEQ_LEN = 64
TINY_BATCH = 64  # sequences; also the expert-choice group, so E = 64 experts keep a quota of 1 token at G = 1
WSD_COOLDOWN = 0.2  # variants wsd, tiny-wsd: the cooldown fraction of Hägele et al. 2024 (arXiv 2405.18392)


def _base(tiny: bool):
  base = config.base_config()
  m, moe, t = base.model, base.moe, base.train
  m.activation = "gelu"
  m.ffn_multiplier = 4.0
  m.seq_len = 256  # 0.5M tokens packed into 2,048 sequences
  m.compute_dtype = "bfloat16"  # mixed precision; attention and router stay float32
  m.init_scale = 0.1  # truncated normal at reduced scale (after Fedus et al.)
  m.norm = "layernorm"  # UNVERIFIED: the paper is silent; llm-random counts 4d of norm params per block (§7.5)
  m.positional = "learned"  # UNVERIFIED: the paper is silent; llm-random's counts include a cutoff·d table (§7.5)
  moe.router = "expert_choice"
  moe.group_size = 256  # tokens at one position grouped across 256 sequences
  moe.output_norm = True  # "crucial" for G > 1
  moe.load_balance_weight = 0.0  # expert choice balances load by construction
  moe.z_loss_weight = 0.0
  t.batch_size = 2048
  t.lr = 2e-4
  t.schedule = "cosine"
  t.final_lr_fraction = 0.1  # 2e-5 / 2e-4
  t.warmup_fraction = 0.01
  t.weight_decay = 0.1
  t.beta2 = 0.999  # UNVERIFIED: llm-random's Adam default (§2.6); the paper does not state betas
  t.grad_clip = 0.5  # UNVERIFIED: llm-random's granularity-era baselines (§7.8); the paper does not state it
  base.output.flops_convention = "krajewski2024"
  _common.paper_data(base, "c4/en:3.1.0")
  if tiny:
    _common.cpu_data(base)
    m.seq_len = TINY_SEQ_LEN
    moe.group_size = TINY_BATCH
    t.batch_size = TINY_BATCH
  return base


def get_study(variant: str | None = None) -> registry.Study:
  tiny = variant in ("tiny", "tiny-wsd")
  sweep = []
  for experts, _, d_model, n_blocks, n_heads, tokens, granularities in GRID:
    if tiny:
      d_model //= TINY_WIDTH
      n_blocks = _common.shrink_depth(n_blocks)
      n_heads = d_model // TINY_HEAD_WIDTH
      tokens = [t / TINY_TOKENS for t in tokens]
    shape = {"model.d_model": d_model, "model.n_layers": n_blocks, "model.n_heads": n_heads}
    sweep += registry.product(
      [{**shape, "moe.expansion_rate": experts}],
      registry.axis("train.tokens", [round(t) for t in tokens]),
      registry.axis("moe.granularity", granularities),
    )
  return registry.Study(
    name="krajewski2024",
    description="Fine-grained MoE: Tables 3-4 (E=64, dense) and Table 7 (E=16), expert choice",
    base=_base(tiny),
    sweep=sweep,
    cooldown=WSD_COOLDOWN if variant in ("wsd", "tiny-wsd") else 0.0,
    slice=None if tiny else planner.smallest_slice("v5p"),
  )
