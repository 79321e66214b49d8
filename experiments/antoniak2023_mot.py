"""Antoniak et al. 2023, Mixture of Tokens: MoT against expert choice and dense (PAPERS.md §5.2).

The v2-era llm-random configs (`configs/mot/*`, §5.2; not all confirmed as the paper's final grid):
GPT medium (d 512, 8 blocks, LR 7e-4) and base (d 768, 12 blocks, LR 2e-4), MoT only in the second
half of the blocks, groups of 32 sequences, 32 experts' worth of parameters (E = 32) split at
granularity 8/16/32 into 256/512/1024 experts, temperature 1.0, 150K steps of 256 × 256 tokens on
C4; the base model is also run with groups of 64 and 2048 experts (E = 64, G = 32). Baselines:
dense, and the "simulated expert choice" of `expert_choice_simulated.yaml` (expansion 32, groups of
32, softmax over experts, extra norm), here at the same E, G and blocks as MoT.

With E = group size each expert sees one mixed token per group, so MoT's FLOPs match the dense FFN
(`flop_matched`, §5.1 step 6); expert width is 4·d_model / G.

Variant `tiny`: the same runs with widths /8, depths /4 (rounded up), heads of width 16, 150
steps of 64 sequences × 64 byte tokens.
"""

from __future__ import annotations

from mixlaws import config, registry

from . import _common

VARIANTS = ("tiny",)

SIZES = {
  "medium": {"model.d_model": 512, "model.n_layers": 8, "train.lr": 7e-4},
  "base": {"model.d_model": 768, "model.n_layers": 12, "train.lr": 2e-4},
}
GRANULARITIES = (8, 16, 32)
GROUP_SIZE = 32
# The base model's larger MoT: groups of 64 and 2048 experts.
BASE_LARGE_GROUP = {
  "moe.router": "mixture_of_tokens",
  "moe.expansion_rate": 64,
  "moe.granularity": 32,
  "moe.group_size": 64,
}
STEPS = 150_000

TINY_WIDTH = 8
TINY_HEAD_WIDTH = 16
TINY_STEPS = 150
TINY_SEQ_LEN = 64
TINY_BATCH = 64  # divisible by both group sizes


def _base(tiny: bool):
  base = config.base_config()
  m, moe, t = base.model, base.moe, base.train
  m.activation = "relu"  # MoT experts are ReLU MLPs (continuous_moe.py); the dense FFN matches them
  m.ffn_multiplier = 4.0
  m.seq_len = 256
  m.compute_dtype = "bfloat16"
  m.init_scale = 0.1
  m.norm = "layernorm"  # UNVERIFIED: llm-random's counting implies LayerNorm (§7.5)
  m.positional = "learned"  # UNVERIFIED: llm-random's counting includes a cutoff·d table (§7.5)
  moe.layers = "second_half"
  moe.group_size = GROUP_SIZE
  moe.temperature = 1.0
  moe.output_norm = True  # the simulated expert choice's layernorm
  moe.load_balance_weight = 0.0  # neither MoT nor expert choice needs a balancing loss
  moe.z_loss_weight = 0.0
  t.batch_size = 256
  t.steps = STEPS
  t.tokens = 0
  t.schedule = "cosine"  # UNVERIFIED for v2: the v1 blog's 1% warmup and cosine to 10%
  t.warmup_fraction = 0.01
  t.final_lr_fraction = 0.1
  t.weight_decay = 0.1
  _common.paper_data(base, "c4/en:3.1.0")
  if tiny:
    _common.cpu_data(base)
    m.seq_len = TINY_SEQ_LEN
    t.batch_size = TINY_BATCH
    t.steps = TINY_STEPS
  return base


def get_study(variant: str | None = None) -> registry.Study:
  tiny = variant == "tiny"
  sizes = {}
  for name, size in SIZES.items():
    d_model = size["model.d_model"] // TINY_WIDTH if tiny else size["model.d_model"]
    n_layers = _common.shrink_depth(size["model.n_layers"]) if tiny else size["model.n_layers"]
    heads = d_model // TINY_HEAD_WIDTH if tiny else d_model // config.HEAD_WIDTH
    sizes[name] = {**size, "model.d_model": d_model, "model.n_layers": n_layers, "model.n_heads": heads}
  routed = registry.product(
    registry.axis("moe.router", ["mixture_of_tokens", "expert_choice"]),
    [{"moe.expansion_rate": GROUP_SIZE}],
    registry.axis("moe.granularity", GRANULARITIES),
  )
  return registry.Study(
    name="antoniak2023_mot",
    description="Mixture of Tokens vs expert choice vs dense, GPT medium and base (v2-era configs)",
    base=_base(tiny),
    sweep=registry.chain(
      registry.sizes(sizes),  # dense baselines
      registry.product(registry.sizes(sizes), routed),
      registry.product(registry.sizes(sizes, ["base"]), [BASE_LARGE_GROUP]),
    ),
  )
