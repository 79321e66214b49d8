"""`mixlaws bench model`: forward+backward speed of dense and MoE models against an in-process matmul peak.

For each case the command measures the float32 matmul peak (`bench.matmul_peak_flops`) and then
the best time of one jitted forward+backward step (cross-entropy plus the weighted auxiliary
losses) right after it, so each ratio is taken within a few seconds on the same machine.
FLOPs follow the `chinchilla` convention of `mixlaws.counting` (Hoffmann et al. 2022 App. F:
every matmul including attention logits and the router, backward = 2 × forward), which charges
the model for the work it really does; MoE counts only the active experts.

Targets (issue 3, on a CPU): the ~20M non-embedding dense model reaches >= 50% of the matmul peak;
MoE with E = 8 and G in {1, 2, 4} reaches >= 80% of the dense model's tokens/s at equal active
FLOPs with the best CPU dispatch. The machine's load drifts, so `vs_dense` divides each model's
tokens/s by the peak measured just before it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import ml_collections

from mixlaws import bench, config, counting
from mixlaws.config import Config

# ~20M non-embedding parameters (d = 512, 6 blocks, SwiGLU 3d), byte vocabulary, batch 8 × 256 tokens;
# E = 8 routed experts (per granularity step) for the MoE cases; groups of the whole batch.
MODEL_OVERRIDES = (
  "model.d_model=512",
  "model.n_layers=6",
  "model.vocab_size=259",
  "model.seq_len=256",
  "train.batch_size=8",
  "moe.expansion_rate=8",
  "moe.group_size=8",
)
DENSE_TARGET = 0.5
MOE_TARGET = 0.8
SWEEP_GRANULARITIES = (1, 2, 4)
CPU_DISPATCH = "gather"  # ragged_dot runs every expert on every row on CPU; einsum pays S·E·C one-hot matmuls


def cases() -> Iterator[tuple[str, tuple[str, ...]]]:
  """(name, overrides): dense, every router × dispatch at G = 2, then the G sweep with the CPU dispatch."""
  yield "dense", ("moe.expansion_rate=1", "moe.granularity=1")
  for router in config.ROUTERS:
    # mixture of tokens mixes every token of a group into every expert: one dense contraction, no dispatch
    dispatches = ("einsum",) if router == "mixture_of_tokens" else config.DISPATCHES
    for dispatch in dispatches:
      name = f"{router}/{'mixture' if router == 'mixture_of_tokens' else dispatch} G=2"
      yield name, (f"moe.router={router}", f"moe.dispatch={dispatch}", "moe.granularity=2")
  for router in ("token_choice", "expert_choice"):
    for g in SWEEP_GRANULARITIES:
      if g != 2:
        yield (
          f"{router}/{CPU_DISPATCH} G={g}",
          (f"moe.router={router}", f"moe.dispatch={CPU_DISPATCH}", f"moe.granularity={g}"),
        )


def case_config(base: ml_collections.ConfigDict, overrides: tuple[str, ...]) -> Config:
  """The resolved config of one case: the base (unresolved, so top_k is derived per case) plus its overrides."""
  return config.resolve(config.apply_overrides(base, overrides))


def step_fn(cfg: Config):
  """A jitted (params, tokens) → (loss, grads) of cross-entropy plus the weighted aux losses, and its inputs."""
  import jax
  import jax.numpy as jnp
  import optax
  from flax import nnx

  from mixlaws import models

  with nnx.use_eager_sharding(False):
    model = models.Transformer(cfg.model, cfg.moe, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  b, t = cfg.train.batch_size, cfg.model.seq_len
  tokens_bt = jax.random.randint(jax.random.key(1), (b, t + 1), 0, cfg.model.vocab_size, jnp.int32)

  def loss_fn(params, tokens_bt):
    logits_btv, aux = nnx.merge(graphdef, params)(tokens_bt[:, :-1], train=True)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_btv, tokens_bt[:, 1:]).mean()
    return ce + cfg.moe.load_balance_weight * aux["load_balance_loss"] + cfg.moe.z_loss_weight * aux["z_loss"], aux

  return jax.jit(jax.value_and_grad(loss_fn, has_aux=True)), params, tokens_bt


def measure(cfg: Config, repeats: int) -> dict[str, Any]:
  """One row: compile time, best step time, tokens/s and achieved FLOP/s against the peak just before."""
  import jax

  step, params, tokens_bt = step_fn(cfg)
  start = time.perf_counter()
  compiled = step.lower(params, tokens_bt).compile()
  compile_s = time.perf_counter() - start
  (_, aux), _ = compiled(params, tokens_bt)
  peak = bench.matmul_peak_flops()
  seconds = bench.best_time(lambda: jax.block_until_ready(compiled(params, tokens_bt)), repeats=repeats)
  shape = counting.Shape.from_config(cfg)
  counts = counting.param_counts(shape)
  tokens = cfg.train.batch_size * cfg.model.seq_len
  flops = counting.convention_count(shape, "chinchilla").flops_per_token * tokens
  return {
    "non_embedding_params": int(counts.non_embedding),
    "active_non_embedding_params": round(counts.active_non_embedding),
    "compile_s": compile_s,
    "step_s": seconds,
    "tokens_per_s": tokens / seconds,
    "peak_flops": peak,
    "achieved_flops": flops / seconds,
    "fraction_of_peak": flops / seconds / peak,
    "dropped_frac": float(aux["dropped_frac"]),
  }


def run(base: ml_collections.ConfigDict, repeats: int = 3, only: str = "") -> dict[str, Any]:
  """Every case (the dense one and those whose name contains `only`), the dense and MoE targets checked."""
  rows = []
  dense = None
  for name, overrides in cases():
    if only and only not in name and name != "dense":
      continue
    cfg = case_config(base, overrides)
    row = {"case": name, "router": cfg.moe.router if cfg.moe.is_moe else "dense"}
    row.update(
      dispatch=cfg.moe.dispatch, experts=cfg.moe.n_experts, granularity=cfg.moe.granularity, top_k=cfg.moe.top_k
    )
    row.update(measure(cfg, repeats))
    if dense is None:
      dense, dense_cfg = row, cfg
    # tokens/s per unit of the peak measured just before, relative to the dense model's
    row["vs_dense"] = (row["tokens_per_s"] / row["peak_flops"]) / (dense["tokens_per_s"] / dense["peak_flops"])
    rows.append(row)
  sweep = [r for r in rows if r["dispatch"] == CPU_DISPATCH and r["router"] == "token_choice"]
  summary = {
    "flops_convention": "chinchilla (all matmuls incl. attention logits and router; training = 3 × forward)",
    "dense_fraction_of_peak": dense["fraction_of_peak"],
    "dense_target_met": dense["fraction_of_peak"] >= DENSE_TARGET,
    "moe_min_vs_dense": min((r["vs_dense"] for r in sweep), default=float("nan")),
    "moe_target_met": bool(sweep) and all(r["vs_dense"] >= MOE_TARGET for r in sweep),
  }
  return {"machine": bench.machine(), "model": dataclasses.asdict(dense_cfg.model), "summary": summary, "results": rows}
