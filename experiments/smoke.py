"""smoke: a CPU-sized study — dense and MoE at several E and G over a few token budgets.

Built to finish on 2 CPU cores in a few minutes and still show a trend in N and D: byte tokens
from this Python's standard library, d_model 32–96, 2 layers, 128-token context, 0.26M and 0.52M
tokens per run. One learning rate for every size: probed at d ∈ {32, 48, 64, 96, 128} with
0.52M tokens, 1e-3 gave eval losses that fall monotonically with width (3.16, 3.02, 2.91, 2.83,
2.75), while 2e-3 and 3e-3 were lower for some widths but out of order (d96 above d64), which no
law can fit. MoE runs are dropless, so they compare architectures rather than token dropping.
"""

from __future__ import annotations

from mixlaws import config, registry

from . import _common

VARIANTS = ()

SEQ_LEN = 128
BATCH = 16  # sequences: 2,048 tokens per step; divisible by 8 devices
TOKENS = (2**18, 2**19)  # 128 and 256 steps
LR = 1e-3  # see the module docstring
# Dense sizes: (d_model, n_layers); heads of width 16 so the smallest model still has two.
DENSE = {"xs": (32, 2), "s": (48, 2), "m": (64, 2), "l": (96, 2)}
HEAD_WIDTH = 16
MOE_SIZE = "s"  # MoE runs share the dense "s" shape, so E and G change nothing else
MOE = ((4, 1), (8, 1), (4, 2), (8, 2))  # (E, G); token choice with top-k = G keeps active params fixed


def _shape(d_model: int, n_layers: int) -> registry.Point:
  return {"model.d_model": d_model, "model.n_layers": n_layers, "model.n_heads": d_model // HEAD_WIDTH}


def get_study(variant: str | None = None) -> registry.Study:
  base = config.base_config()
  _common.cpu_data(base)
  base.model.seq_len = SEQ_LEN
  base.moe.router = "token_choice"
  base.moe.capacity_factor = 0.0  # dropless
  # Combine weights × E·G/top_k (mixlaws/config.py MoEConfig.output_scale). Issue 18, d48, 2 layers,
  # 2.1M tokens, lr 1e-3, seeds 0/1: token choice E=8 2.286/2.262 with the papers' probabilities,
  # 2.187/2.182 with unit_mean; dense 2.267/2.314. This study with it (demo, 2026-12-06, one seed):
  # E=8 − dense(d48) = −0.083 at both budgets, loss over E = 1, 4, 8 at 524K: 3.016, 2.961, 2.933
  # (before: E=8 3.032 above E=4 2.977).
  base.moe.output_scale = "unit_mean"
  base.train.batch_size = BATCH
  base.train.lr = LR
  base.train.schedule = "cosine"
  base.train.final_lr_fraction = 0.1
  base.train.warmup_fraction = 0.05
  base.train.eval_tokens = 2**16  # 32 batches of held-out text at the end
  base.checkpoint.every_steps = 64
  base.output.log_every = 8

  tokens = registry.axis("train.tokens", TOKENS)
  dense = registry.product([_shape(*DENSE[name]) for name in DENSE], tokens)
  moe = registry.product(
    [_shape(*DENSE[MOE_SIZE])],
    [{"moe.expansion_rate": e, "moe.granularity": g} for e, g in MOE],
    tokens,
  )
  return registry.Study(
    name="smoke",
    description="CPU: dense at 4 sizes and MoE at E in {4, 8}, G in {1, 2}, 2 token budgets",
    base=base,
    sweep=registry.chain(dense, moe),
  )
