"""Krajewski, Shidani, Busbridge, Wiseman, Ramapuram 2025: downstream metrics at fixed TPR (PAPERS.md §6).

The paper (arXiv 2512.08894) fits −ln Acc = A·C^−α (Eq. 2) on models trained at a fixed
tokens-per-parameter ratio (TPR), and −ln Acc = A·N^−α + B·D^−β (Eq. 4) across ratios. What
PAPERS.md §6.2 confirms from the released data: dense models from 122.8M parameters (2.68B tokens)
to 7.05B parameters (136.9B tokens) at TPR 20 on C4, TPR 20, 40 and 80 on the DCLM mixture, up to
17B parameters and 350B tokens; FLOPs = 6·N·D; benchmarks arc_challenge, arc_easy, hellaswag, piqa,
winogrande (and more). UNVERIFIED: the shapes in between (here the d_model = 64·n_blocks rule from
122.8M to 17B total parameters), which N the TPR counts (here total parameters, embeddings
included), the recipe (here the base config with cosine decay) and the evaluation sizes (the
benchmarks' usual validation splits; scored tokens per example are estimates).

From checkpoints to the law (README, "Downstream laws"): `mixlaws run`, `mixlaws eval STUDY --tasks
hellaswag,…` scores each run's final checkpoint into its run dir, `mixlaws collect`, then `mixlaws fit
--law downstream_tpr STUDY --metric hellaswag/acc_norm`. The plan adds the evaluation's forward FLOPs
to the training cost.

Variant `tiny`: d_model = 16·n_blocks for 2–4 blocks, byte tokens, TPR 20, 40, 80 on the total
count, the embedded tasks line_end and close_brackets (500 and 200 examples).
"""

from __future__ import annotations

from mixlaws import config, counting, registry

from . import _common

VARIANTS = ("tiny",)

BLOCKS = (10, 14, 18, 24, 32, 42, 54, 68)  # 113M … 17B total with GPT-2's vocabulary (UNVERIFIED in between)
RATIOS = (20, 40, 80)  # TPR (PAPERS.md §6.2: 20 on C4; 20, 40, 80 on the DCLM mixture)
MAX_TOKENS = 350e9  # the paper's largest token count
SEQ_LEN = 2048  # UNVERIFIED
BATCH = 512  # UNVERIFIED
# Benchmarks in the released data that `mixlaws eval` scores; (task, examples, scored tokens per example) with
# the usual validation/test split sizes and estimated tokens per example (context + every choice; UNVERIFIED).
EVALUATION = registry.EvalPlan(
  tasks=(
    ("hellaswag", 10042, 340),
    ("arc_easy", 2376, 150),
    ("arc_challenge", 1172, 160),
    ("piqa", 1838, 110),
    ("winogrande", 1267, 60),
  ),  # fmt: skip
)

TINY_BLOCKS = (2, 3, 4)  # larger ones pass 8M tokens even at TPR 20
TINY_WIDTH = 16
TINY_SEQ_LEN = 64
TINY_BATCH = 32
TINY_MAX_TOKENS = 8e6
TINY_EVALUATION = registry.EvalPlan(tasks=(("line_end", 500, 64), ("close_brackets", 200, 64)))


def _total_params(cfg: config.Config) -> float:
  return counting.param_counts(counting.Shape.from_config(cfg)).total


def _tokens(ratio: float):
  """train.tokens = ratio × total parameters (the TPR's N is UNVERIFIED; PAPERS.md §6.2 caveat)."""
  return lambda cfg: round(ratio * _total_params(cfg))


def get_study(variant: str | None = None) -> registry.Study:
  tiny = variant == "tiny"
  base = config.base_config()
  base.model.seq_len = SEQ_LEN
  base.model.compute_dtype = "bfloat16"
  base.train.batch_size = BATCH
  base.train.schedule = "cosine"
  _common.paper_data(base, "c4/en:3.1.0")  # the C4 mixture of §6.2; the DCLM mixture is not a TFDS dataset
  if tiny:
    _common.cpu_data(base)
    base.model.seq_len = TINY_SEQ_LEN
    base.train.batch_size = TINY_BATCH
    shapes = registry.size_rule(TINY_BLOCKS, TINY_WIDTH, TINY_WIDTH)
  else:
    shapes = registry.size_rule(BLOCKS)
  limit = TINY_MAX_TOKENS if tiny else MAX_TOKENS
  sweep = []
  for shape in shapes:
    total = _total_params(registry.resolve_point(base, shape))
    sweep += [{**shape, "train.tokens": _tokens(r)} for r in RATIOS if r * total <= limit]
  return registry.Study(
    name="krajewski2025_downstream",
    description="Dense models at fixed tokens-per-parameter ratios for downstream-accuracy laws (UNVERIFIED shapes)",
    base=base,
    sweep=sweep,
    evaluation=TINY_EVALUATION if tiny else EVALUATION,
  )
