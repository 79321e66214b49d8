"""The MoE FFN: E·G experts of width d_ff / G with G active per token (Krajewski et al. 2024 §3)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from mixlaws.config import ModelConfig, MoEConfig
from mixlaws.models import dispatch, expert_parallel, routers
from mixlaws.models.layers import Experts, Mlp, norm, param


class MoE(nnx.Module):
  """Router (float32) → dispatch → experts → combine, plus optional shared experts and output norm.

  Returns the output and this layer's router statistics: load_balance_loss, z_loss (unweighted),
  dropped_frac, load_cv, router_entropy (see `routers`). Training uses moe.capacity_factor,
  evaluation moe.eval_capacity_factor; a factor of 0 sizes every buffer for all tokens (dropless).
  """

  def __init__(self, cfg: ModelConfig, moe: MoEConfig, *, rngs: nnx.Rngs):
    width = cfg.d_ff // moe.granularity
    self.moe = moe
    self.router = param(rngs, cfg, (cfg.d_model, moe.n_experts), cfg.d_model, ("embed", "expert"))
    down_fan_in = moe.n_experts * width if moe.expert_fan_in == "all_experts" else width
    self.experts = Experts(cfg, moe.n_experts, width, rngs=rngs, down_fan_in=down_fan_in)
    # n always-active experts of width w act as one dense FFN of width n·w: same function, one matmul.
    self.shared = Mlp(cfg, moe.n_shared_experts * width, rngs=rngs) if moe.n_shared_experts else None
    # Krajewski et al. 2024 App. A: an extra norm before the MoE output, crucial for expert choice at G > 1.
    use_output_norm = moe.router == "expert_choice" and moe.output_norm
    self.output_norm = norm(cfg, rngs) if use_output_norm else None

  def __call__(self, x_btd: jax.Array, train: bool) -> tuple[jax.Array, dict[str, jax.Array]]:
    b, t, d = x_btd.shape
    moe = self.moe
    # Router in float32 (Krajewski et al. 2024 App. A; Ludziejewski et al. 2025 §5.1).
    x_sd = x_btd.reshape(b * t, d)
    logits_bte = (x_sd.astype(jnp.float32) @ self.router[...].astype(jnp.float32)).reshape(b, t, -1)
    if expert_parallel.expert_mesh() is not None:
      group_size = 1 if moe.router in ("token_choice", "switch") else moe.group_size
      y_sd, stats = expert_parallel.apply(
        x_btd, logits_bte, self.experts, functools.partial(route, moe=moe, train=train),
        functools.partial(dispatch_tokens, moe=moe), group_size,
      )  # fmt: skip
    else:
      routing, stats = route(logits_bte, moe, train)
      y_sd = dispatch_tokens(x_sd, routing, self.experts, moe)
    scale = routers.output_scale(moe.output_scale, moe.router, moe.n_experts, moe.top_k, moe.granularity)
    y_btd = y_sd.reshape(b, t, d) * jnp.asarray(scale, y_sd.dtype) if scale != 1 else y_sd.reshape(b, t, d)
    if self.output_norm is not None:
      y_btd = self.output_norm(y_btd)
    if self.shared is not None:
      y_btd = y_btd + self.shared(x_btd)
    return y_btd, stats


def route(logits_bte: jax.Array, moe: MoEConfig, train: bool):
  """(routing, statistics) of the configured router for float32 logits; capacity from these B·T tokens."""
  b, t, _ = logits_bte.shape
  if moe.router in ("token_choice", "switch"):
    factor = moe.capacity_factor if train else moe.eval_capacity_factor
    c = routers.capacity(b * t, moe.top_k, moe.n_experts, factor)
    order, renorm = (moe.softmax_order, moe.renormalize) if moe.router == "token_choice" else ("before_topk", False)
    routing, stats = routers.token_choice(logits_bte, moe.top_k, c, order, renorm)
    if moe.dispatch == "ragged":
      stats = dict(stats, dropped_frac=jnp.zeros(()))  # ragged_dot never drops
    return routing, stats
  if moe.router == "expert_choice":
    quota = routers.expert_quota(moe.group_size, moe.granularity, moe.n_experts)
    return routers.expert_choice(logits_bte, moe.group_size, quota)
  if moe.discrete_routing:
    return routers.discrete_mixture(logits_bte, moe.group_size, moe.temperature)
  return routers.mixture_weights(logits_bte, moe.group_size, moe.temperature)


def dispatch_tokens(x_sd: jax.Array, routing, experts: Experts, moe: MoEConfig) -> jax.Array:
  """Tokens through the experts their routing names, combined back: (S, D) → (S, D)."""
  if isinstance(routing, routers.TokenRouting):
    return dispatch.TOKEN_DISPATCH[moe.dispatch](x_sd, routing, experts)
  if isinstance(routing, routers.ExpertRouting):
    return dispatch.EXPERT_DISPATCH[moe.dispatch](x_sd, routing, experts)
  return dispatch.mixture(x_sd, routing, experts)  # continuous mixture of tokens: merge weights
