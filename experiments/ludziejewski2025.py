"""Ludziejewski et al. 2025, Joint MoE Scaling Laws: the Appendix E grid (PAPERS.md §2.6-2.7).

All 53 configuration rows with their token counts D, 270 runs, with the §5.1 recipe and the
authors' configs: Switch (top-1) MoE with z-loss 1e-3 and load-balancing loss 1e-2, SwiGLU of
width 3·d_model, RoPE, 512-token context, batch ramp-up 128 → 256 → 512 sequences, WSD schedule
with 130M warmup tokens and linear decay over the final 20%, peak LR from Eq. 8.

As in the paper ("longer runs branch from checkpoints of the constant phase", PAPERS.md §2.6 and
§7.6), the budgets of each shape train as cooldown branches of one trunk: 51 trunks (two pairs
of rows share a model) and 270 branches, one per (N, D) point (registry.branch_runs).

Variant `tiny`: the same rows with widths /16 (same head counts), depths /4 (rounded up), tokens
/10,000, 64 byte tokens per sequence, ramp-up 8 → 16 → 32 sequences at the same token fractions,
and each row's learning rate from Eq. 8 at its full-size shape (Eq. 8 at tiny sizes gives rates
far above anything trainable).
"""

from __future__ import annotations

from mixlaws import config, planner, registry

from . import _common

VARIANTS = ("tiny",)

# Appendix E, as printed: (n_heads, n_blocks, d_model, E, D values); comments give N_total / N_act.
GRID = (
  (16, 16, 1024, 32, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 5.0B / 321M
  (28, 28, 1792, 4, (11.1e9, 5.6e9, 2.8e9, 2e9)),  # 3.8B / 1.3B
  (11, 21, 1408, 8, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 3.3B / 683M
  (26, 26, 1664, 4, (80e9, 64e9, 48e9, 32e9, 16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 3.0B / 1.1B
  (36, 36, 2304, 1, (9.2e9, 5.5e9, 2.8e9, 2e9, 1.4e9, 980e6)),  # 2.7B / 2.7B
  (30, 30, 1920, 2, (5.4e9, 2.7e9)),  # 2.6B / 1.6B
  (16, 16, 1024, 16, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 2.6B / 321M
  (28, 28, 1792, 2, (18.6e9, 11.1e9, 5.6e9, 4e9, 2.8e9, 2e9)),  # 2.2B / 1.3B
  (12, 12, 768, 32, (8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 2.1B / 169M
  (10, 16, 1280, 8, (32e9, 16e9, 8e9, 4e9, 2e9, 1e9)),  # 2.1B / 469M
  (22, 22, 1408, 4, (35.3e9, 12.2e9, 10.6e9, 7.7e9, 5.3e9, 3.8e9)),  # 1.9B / 709M
  (11, 21, 1408, 4, (8e9, 16e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.8B / 683M
  (26, 26, 1664, 2, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.8B / 1.1B
  (30, 30, 1920, 1, (5.4e9, 2.7e9)),  # 1.6B / 1.6B
  (16, 16, 1024, 8, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.4B / 321M
  (28, 28, 1792, 1, (6.5e9, 3.3e9, 18.6e9, 11.1e9, 5.6e9, 4e9, 2.8e9, 2e9)),  # 1.3B / 1.3B
  (10, 10, 640, 32, (4e9, 2e9, 1e9, 0.5e9)),  # 1.3B / 118M
  (10, 16, 1280, 4, (32e9, 16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.2B / 469M
  (12, 12, 768, 16, (8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.1B / 169M
  (26, 26, 1664, 1, (14e9, 12e9, 10e9, 80e9, 64e9, 48e9, 32e9)),  # 1.1B / 1.1B
  (26, 26, 1664, 1, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.1B / 1.1B
  (22, 22, 1408, 2, (3.8e9, 49.8e9, 24.9e9, 12.5e9, 6.2e9, 3.1e9, 1.6e9, 778e6)),  # 1.1B / 709M
  (22, 22, 1408, 2, (21.8e9, 18.7e9, 15.6e9, 35.3e9, 12.2e9, 10.6e9, 7.7e9, 5.3e9)),  # 1.1B / 709M
  (18, 18, 1152, 4, (31e9, 25.9e9, 20.7e9, 10.4e9, 5.2e9, 2.6e9, 1.3e9)),  # 1.1B / 426M
  (11, 21, 1408, 2, (32e9, 16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 1.1B / 683M
  (24, 24, 1536, 1, (9.9e9, 5e9)),  # 890M / 890M
  (20, 20, 1280, 2, (16e9, 8e9)),  # 850M / 555M
  (16, 16, 1024, 4, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 774M / 321M
  (22, 22, 1408, 1, (35.3e9, 12.2e9, 10.6e9, 7.7e9, 5.3e9, 3.8e9, 12.5e9, 6.2e9)),  # 709M / 709M
  (10, 16, 1280, 2, (32e9, 16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 705M / 469M
  (11, 21, 1408, 1, (32e9, 16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 683M / 683M
  (10, 10, 640, 16, (4e9, 2e9, 1e9, 0.5e9)),  # 671M / 118M
  (8, 8, 512, 32, (2e9, 1e9, 0.5e9)),  # 664M / 79M
  (12, 12, 768, 8, (8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 615M / 169M
  (20, 20, 1280, 1, (16e9, 8e9)),  # 555M / 555M
  (16, 16, 1024, 2, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 472M / 321M
  (10, 16, 1280, 1, (32e9, 16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 469M / 469M
  (10, 10, 640, 8, (4e9, 2e9, 1e9, 0.5e9)),  # 376M / 118M
  (8, 8, 512, 16, (2e9, 1e9, 0.5e9)),  # 362M / 79M
  (12, 12, 768, 4, (8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 360M / 169M
  (16, 16, 1024, 1, (16e9, 8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 321M / 321M
  (11, 11, 704, 4, (4.5e9, 2.3e9, 1.1e9)),  # 289M / 142M
  (9, 9, 576, 8, (3.3e9, 1.7e9)),  # 285M / 97M
  (13, 13, 832, 2, (6.4e9, 3.2e9, 1.6e9, 800e6)),  # 282M / 201M
  (12, 12, 768, 2, (8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 233M / 169M
  (10, 10, 640, 4, (4e9, 2e9, 1e9, 0.5e9)),  # 228M / 118M
  (8, 8, 512, 8, (2e9, 1e9, 0.5e9)),  # 211M / 79M
  (12, 12, 768, 1, (8e9, 4e9, 2e9, 1e9, 0.5e9)),  # 169M / 169M
  (10, 10, 640, 2, (4e9, 2e9, 1e9, 0.5e9)),  # 154M / 118M
  (8, 8, 512, 4, (2e9, 1e9, 0.5e9)),  # 135M / 79M
  (10, 10, 640, 1, (4e9, 2e9, 1e9, 0.5e9)),  # 118M / 118M
  (8, 8, 512, 2, (2e9, 1e9, 0.5e9)),  # 98M / 79M
  (8, 8, 512, 1, (2e9, 1e9, 0.5e9)),  # (blank) / 79M
)

SEQ_LEN = 512
BATCH = 512  # sequences after the ramp-up (256K tokens)
RAMPUP = ((128, 0.5e9), (256, 1e9))  # 64K tokens per batch, 128K after 0.5B tokens, 256K after 1B
WARMUP_TOKENS = 130e6
DECAY_FRACTION = 0.2  # linear decay to 0 over the final 20% of each budget's tokens (PAPERS.md §2.6, §7.6)

TINY_WIDTH = 16
TINY_TOKENS = 10_000
TINY_SEQ_LEN = 64
TINY_BATCH = 32
TINY_RAMPUP = ((8, 0.5e9 / TINY_TOKENS), (16, 1e9 / TINY_TOKENS))


def _base():
  base = config.base_config()
  m, moe, t = base.model, base.moe, base.train
  m.activation = "swiglu"
  m.ffn_multiplier = 3.0
  m.positional = "rope"
  m.seq_len = SEQ_LEN
  m.compute_dtype = "bfloat16"  # bf16 mixed precision; attention, RoPE and router stay float32
  m.init_scale = 0.1
  m.norm = "layernorm"  # UNVERIFIED: the paper is silent; llm-random counts 4d of norm params per block (§7.5)
  moe.router = "switch"
  moe.capacity_factor = 1.0
  moe.eval_capacity_factor = 1.5  # the fitting notebook's final evaluation (PAPERS.md §2.1)
  moe.z_loss_weight = 1e-3
  moe.load_balance_weight = 1e-2
  t.batch_size = BATCH
  t.batch_rampup = registry.batch_rampup(RAMPUP)
  t.schedule = "wsd"
  t.warmup_fraction = 0.0
  t.warmup_tokens = round(WARMUP_TOKENS)
  t.decay_fraction = DECAY_FRACTION
  t.weight_decay = 0.1  # UNVERIFIED: from the authors' configs, not stated in the paper
  t.beta2 = 0.999  # UNVERIFIED: llm-random's Adam default, not stated in the paper
  t.grad_clip = 0.1  # UNVERIFIED: from the authors' configs, not stated in the paper
  base.output.flops_convention = "ludziejewski2025"
  _common.paper_data(base, "fineweb_edu")  # FineWeb-Edu, prepared into the data dir under this name
  return base


def _tiny_base():
  base = _base()
  _common.cpu_data(base)
  base.model.seq_len = TINY_SEQ_LEN
  base.train.batch_size = TINY_BATCH
  base.train.batch_rampup = registry.batch_rampup(TINY_RAMPUP)
  base.train.warmup_tokens = round(WARMUP_TOKENS / TINY_TOKENS)
  return base


def _shape(n_heads: int, n_blocks: int, d_model: int, experts: int) -> registry.Point:
  return {"model.d_model": d_model, "model.n_layers": n_blocks, "model.n_heads": n_heads, "moe.expansion_rate": experts}


def get_study(variant: str | None = None) -> registry.Study:
  tiny = variant == "tiny"
  base = _base()
  sweep = []
  for n_heads, n_blocks, d_model, experts, tokens in GRID:
    full = _shape(n_heads, n_blocks, d_model, experts)
    if tiny:
      row = _shape(n_heads, _common.shrink_depth(n_blocks), d_model // TINY_WIDTH, experts)
      row["train.lr"] = registry.lr_eq8()(registry.resolve_point(base, full))
      tokens = [t / TINY_TOKENS for t in tokens]
    else:
      row = {**full, "train.lr": registry.lr_eq8()}
    sweep += registry.product([row], registry.axis("train.tokens", [round(t) for t in tokens]))
  return registry.Study(
    name="ludziejewski2025",
    description="Joint MoE: Appendix E, 53 configurations x D (270 points as WSD branches of 51 trunks), Switch, Eq. 8 LR",
    base=_tiny_base() if tiny else base,
    sweep=sweep,
    cooldown=DECAY_FRACTION,
    slice=None if tiny else planner.smallest_slice("v5p"),
  )
